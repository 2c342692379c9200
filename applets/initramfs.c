#include "applets.h"
#include "core/args.h"
#include "core/err.h"
#include "core/xio.h"
#include "guest/guest.h"

#include <stdlib.h>

const char initramfs_usage[] =
	"Usage: umlk initramfs OUT\n"
	"\n"
	"Write a gzip'ed cpio (newc) initramfs to OUT ('-' for standard output)\n"
	"whose /init is this umlk binary, with /dev/console, /dev/null and the\n"
	"mount points /proc, /sys, /dev.  Boot it with a UML kernel:\n"
	"  linux mem=64M initrd=OUT\n"
	"'umlk boot' builds the same thing in memory; this applet is for\n"
	"looking inside it or booting kernels by hand.\n";

int initramfs_main(int argc, char **argv)
{
	static const struct option lo[] = { { 0 } };
	uint8_t *img;
	size_t len;
	struct kout out;

	while (xgetopt(argc, argv, "", lo) != -1)
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
