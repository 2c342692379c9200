#include "applets.h"
#include "core/args.h"
#include "core/err.h"
#include "core/progress.h"
#include "core/sys.h"
#include "image/cloop.h"
#include "image/iso9660.h"

#include <inttypes.h>
#include <stdio.h>

static const char usage[] =
	"Usage: umlk extract-cloop [-q] [-j THREADS] IN OUT\n"
	"       umlk extract-cloop --info IN\n"
	"\n"
	"Decompress the cloop image IN (format V2.0, or V4.0 with its index at the\n"
	"start or at the end) into the raw image OUT.  IN may also be a KNOPPIX-\n"
	"style ISO: the cloop file KNOPPIX/KNOPPIX inside it is read in place,\n"
	"without mounting anything.  IN or OUT may be '-' for\n"
	"standard input or output.  OUT is written under a temporary name and\n"
	"renamed when complete, and is sparse: runs of 4 KiB of zeros become holes.\n"
	"\n"
	"The cloop format records no byte length, only whole blocks: the last block\n"
	"was padded with zeros when the image was made.  OUT is therefore the\n"
	"original image followed by that padding, exactly as extract_compressed_fs\n"
	"gives it; its size is always a whole number of blocks.\n"
	"\n"
	"Blocks compressed with zlib or stored raw are read; xz, lz4 and lzo blocks\n"
	"are refused with an error.\n";

static const struct kopt opts[] = {
	{ 'j', "-j --jobs", "N", "decompress with N threads (default: one per CPU)" },
	{ 'i', "-i --info", NULL, "print version, layout, block size and count, sizes" },
	{ 'q', "-q --quiet", NULL, "no progress bar (it is shown only on a terminal anyway)" },
	{ 0 },
};

APPLET(extract_cloop, "extract-cloop", "decompress a cloop image into a raw image", usage, opts);

static void info(struct cloop *c)
{
	uint64_t raw = (uint64_t)c->num_blocks * c->block_size;
	uint64_t comp = c->ofs[c->num_blocks] - c->ofs[0];

	printf("file: %s\n", c->src->name);
	printf("version: V%d.0\n", c->version);
	printf("layout: %s\n", c->footer ? "index at the end (footer)" : "index at the start");
	printf("block size: %" PRIu32 "\n", c->block_size);
	printf("blocks: %" PRIu32 "\n", c->num_blocks);
	printf("file size: %" PRIu64 "\n", c->src->size);
	printf("compressed size: %" PRIu64 "\n", comp);
	printf("raw size: %" PRIu64 "\n", raw);
	if (raw)
		printf("ratio: %.1f%%\n", 100.0 * comp / raw);
	printf("compressors:");
	for (int i = 0; i < CLOOP_NCOMP; i++)
		if (c->count[i])
			printf(" %s=%" PRIu64, cloop_comp_name(i), c->count[i]);
	printf("\n");
}

int extract_cloop_main(int argc, char **argv)
{
	int threads = k_ncpus(), want_info = 0, c;

	while ((c = xkopt_next(argc, argv, opts)) != -1) {
		switch (c) {
		case 'j': threads = xarg_num("-j", optarg, 1, 256); break;
		case 'i': want_info = 1; break;
		case 'q': k_quiet = 1; break;
		}
	}
	xarg_count(argc, argv, want_info ? 1 : 2, want_info ? 1 : 2);

	struct ksrc src;
	struct cloop cl;
	xsrc_open(&src, argv[optind]);
	if (iso_open_knoppix(&src) < 0 || cloop_open(&cl, &src) < 0)
		xdie("%s", k_errmsg());
	if (want_info) {
		info(&cl);
	} else {
		struct kout out;
		xout_open(&out, argv[optind + 1]);
		xcloop_extract(&cl, &out, threads);
		xout_commit(&out);
	}
	cloop_close(&cl);
	ksrc_close(&src);
	return 0;
}
