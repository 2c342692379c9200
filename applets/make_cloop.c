#include "applets.h"
#include "core/args.h"
#include "core/err.h"
#include "core/progress.h"
#include "core/sys.h"
#include "image/cloop.h"

static const char usage[] =
	"Usage: umlk make-cloop [-q] [-B BLOCKSIZE] [-L LEVEL] [-j THREADS] [--v4] IN OUT\n"
	"\n"
	"Compress the raw image IN into the cloop image OUT.  IN or OUT may be '-'\n"
	"for standard input or output.  OUT is written under a temporary name and\n"
	"renamed when complete.  If IN is not a whole number of blocks, the last\n"
	"block is padded with zeros (the format has no byte length).\n"
	"\n"
	"The default format is V2.0, which extract_compressed_fs and every cloop\n"
	"kernel module read.  With --v4, blocks that compression would not shrink\n"
	"are stored uncompressed, and output to a pipe uses V4.0's footer layout\n"
	"(index at the end) so it can be streamed.\n";

static const struct kopt opts[] = {
	{ 'B', "-B --block-size", "N", "block size, a multiple of 512 (default 64K; K and M suffixes)" },
	{ 'L', "-L --level", "N", "zlib compression level, 0 to 9 (default 9)" },
	{ 'j', "-j --jobs", "N", "compress with N threads (default: one per CPU)" },
	{ '4', "--v4", NULL, "write format V4.0" },
	{ 'q', "-q --quiet", NULL, "no progress bar (it is shown only on a terminal anyway)" },
	{ 0 },
};

APPLET(make_cloop, "make-cloop", "compress a raw image into a cloop image", usage, opts);

int make_cloop_main(int argc, char **argv)
{
	struct cloop_make_opts o = { .block_size = 65536, .level = 9, .threads = k_ncpus() };
	int c;

	while ((c = xkopt_next(argc, argv, opts)) != -1) {
		switch (c) {
		case 'B':
			o.block_size = xarg_size("-B", optarg, 512, CLOOP_MAX_BLOCK);
			if (o.block_size % 512)
				xusage("-B: block size %s is not a multiple of 512", optarg);
			break;
		case 'L': o.level = xarg_num("-L", optarg, 0, 9); break;
		case 'j': o.threads = xarg_num("-j", optarg, 1, 256); break;
		case '4': o.v4 = 1; break;
		case 'q': k_quiet = 1; break;
		}
	}
	xarg_count(argc, argv, 2, 2);

	struct kout out;
	xout_open(&out, argv[optind + 1]);
	xcloop_make(&o, argv[optind], &out);
	xout_commit(&out);
	return 0;
}
