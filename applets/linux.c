#include "applets.h"
#include "core/args.h"
#include "core/err.h"
#include "guest/payload.h"

#include <stdlib.h>
#include <string.h>

static const char usage[] =
	"Usage: umlk linux [--kernel PATH] [KERNEL-ARGUMENTS...]\n"
	"\n"
	"Run the UML kernel with these arguments, as if it were a program named\n"
	"'linux' (for example: umlk linux mem=256M ubda=root.cow,root.img).  The\n"
	"kernel is the one embedded in this file, inflated into memory and run\n"
	"from there (nothing is written to disk, so this works from a noexec\n"
	"mount); without an embedded kernel, build/linux beside this binary.\n"
	"Only a first argument --kernel is umlk's; the rest are the kernel's.\n";

static const struct kopt opts[] = {
	{ 'k', "--kernel", "PATH", "run this kernel binary instead" },
	{ 0 },
};

APPLET(linux, "linux", "run the embedded UML kernel with kernel arguments", usage, opts);

int linux_main(int argc, char **argv)
{
	const char *kernel = NULL, *what;
	int first = 1;

	/* Kernel arguments look like options to nobody; only --kernel is ours. */
	if (argc > 2 && !strcmp(argv[1], "--kernel")) {
		kernel = argv[2];
		first = 3;
	} else if (argc > 1 && !strncmp(argv[1], "--kernel=", 9)) {
		kernel = argv[1] + 9;
		first = 2;
	}
	int fd = xkernel_open(kernel, &what);
	char **kargv = calloc(argc - first + 2, sizeof(char *));
	if (!kargv)
		xdie("out of memory");
	kargv[0] = "linux";
	for (int i = first; i < argc; i++)
		kargv[i - first + 1] = argv[i];
	kernel_exec(fd, kargv);
	xdie("cannot run %s:", what);
}
