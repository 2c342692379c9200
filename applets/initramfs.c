#include "applets.h"
#include "core/args.h"
#include "core/err.h"
#include "core/xio.h"
#include "guest/guest.h"

#include <stdlib.h>

static const char usage[] =
	"Usage: umlk initramfs OUT\n"
	"\n"
	"Write a gzip'ed cpio (newc) initramfs to OUT ('-' for standard output)\n"
	"whose /init is this umlk binary, with /dev/console, /dev/null and the\n"
	"mount points /proc, /sys, /dev.  Boot it with a UML kernel:\n"
	"  linux mem=64M initrd=OUT\n"
	"'umlk boot' builds the same thing in memory; this applet is for\n"
	"looking inside it or booting kernels by hand.\n";

static const struct kopt opts[] = { { 0 } };

APPLET(initramfs, "initramfs", "write an initramfs whose /init is this binary", usage, opts);

int initramfs_main(int argc, char **argv)
{
	uint8_t *img;
	size_t len;
	struct kout out;

	while (xkopt_next(argc, argv, opts) != -1)
		;
	xarg_count(argc, argv, 1, 1);
	xinitramfs_self(&img, &len);
	xout_open(&out, argv[optind]);
	if (full_write(out.fd, img, len) < 0)
		xdie("%s: write failed:", out.name);
	xout_commit(&out);
	free(img);
	return 0;
}
