#include "applets.h"
#include "core/args.h"
#include "core/err.h"
#include "guest/payload.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static const char usage[] =
	"Usage: umlk kernel-info [FILE]\n"
	"       umlk kernel-info --attach KERNEL [--release VERSION] -o OUT [FILE]\n"
	"\n"
	"Print the UML kernel embedded in FILE (default: this umlk): its Linux\n"
	"release, size, compressed size and CRC.  Exits 1 if there is none.\n"
	"\n"
	"With --attach, write OUT: FILE (default: this umlk) with KERNEL appended\n"
	"as a compressed payload; an existing payload is replaced.  This is how\n"
	"'make release' builds the single-file release.\n";

static const struct kopt opts[] = {
	{ 'a', "-a --attach", "KERNEL", "the kernel binary to embed" },
	{ 'r', "-r --release", "VERSION", "its Linux release, for kernel-info to show" },
	{ 'o', "-o --output", "OUT", "where to write the result" },
	{ 0 },
};

APPLET(kernel_info, "kernel-info", "show or attach the UML kernel embedded in this file", usage, opts);

int kernel_info_main(int argc, char **argv)
{
	const char *attach = NULL, *release = "unknown", *out = NULL;
	int c;

	while ((c = xkopt_next(argc, argv, opts)) != -1) {
		switch (c) {
		case 'a': attach = optarg; break;
		case 'r': release = optarg; break;
		case 'o': out = optarg; break;
		}
	}
	xarg_count(argc, argv, 0, 1);
	const char *file = optind < argc ? argv[optind] : "/proc/self/exe";
	if (attach) {
		if (!out)
			xusage("--attach needs -o OUT");
		if (strlen(release) > 23)
			xusage("--release: '%s' is longer than 23 characters", release);
		xpayload_attach(file, attach, release, out);
		return 0;
	}
	if (out)
		xusage("-o goes with --attach");

	struct payload p;
	const char *name = optind < argc ? argv[optind] : "this umlk";
	switch (payload_find(file, &p)) {
	case -1:
		xdie("%s", k_errmsg());
	case 0:
		xdie("%s: no embedded kernel", name);
	}
	printf("release: %s\n", p.release);
	printf("size: %" PRIu64 "\n", p.size);
	printf("compressed: %" PRIu64 "\n", p.csize);
	printf("offset: %" PRIu64 "\n", p.offset);
	printf("crc32: %08" PRIx32 "\n", p.crc);
	return 0;
}
