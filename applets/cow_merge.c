#include "applets.h"
#include "core/args.h"
#include "core/err.h"
#include "core/progress.h"
#include "guest/upperdiff.h"
#include "merge/cowmerge.h"
#include "image/cow.h"
#include "image/upper.h"

#include <stdlib.h>

static const char usage[] =
	"Usage: umlk cow-merge [-b BACKING] COW NEWIMAGE       merge into a new image\n"
	"       umlk cow-merge [-b BACKING] -d COW             merge into the backing image\n"
	"       umlk cow-merge --info COW\n"
	"       umlk cow-merge --create [-f] COW BACKING       a new, empty COW file\n"
	"       umlk cow-merge [-b BACKING] --export COW DIFF  a portable diff\n"
	"       umlk cow-merge --apply DIFF [--apply DIFF...] [--image] BACKING OUT\n"
	"\n"
	"Work with UML copy-on-write files (versions 1, 2 and 3, as the kernel\n"
	"writes them).  The first two forms are uml_moo's command line; --create\n"
	"is uml_mkcow's.  The backing image is the one named in the COW header\n"
	"unless -b names another; its size and mtime must match the header, as the\n"
	"kernel requires.\n"
	"\n"
	"NEWIMAGE is written under a temporary name and renamed when complete;\n"
	"it is sparse where the data is zero.  -d copies the changed sectors into\n"
	"the backing image itself: a journal file COW.merging marks the merge as\n"
	"in progress, so a merge that is interrupted (even by a crash) is\n"
	"completed by running the same command again.  After -d the COW file is\n"
	"used up: its recorded mtime no longer matches the image.\n"
	"\n"
	"A diff holds the changed sectors, compressed, and the SHA-256 of the\n"
	"image they apply to, not its path or mtime, so it can be applied on\n"
	"another host.  --apply checks that hash and refuses a different image;\n"
	"several diffs apply in the order given, each to the image the ones\n"
	"before it made.  OUT is a new COW file over BACKING, or with --image a\n"
	"merged image.\n"
	"\n"
	"The --cow file of a read-only or stacked root (squashfs, iso9660, a live\n"
	"ISO's layers) is not a COW file of sectors but an overlay's upper layer,\n"
	"an ext4 of files ('--info' tells the kinds apart).  It cannot be merged\n"
	"into a read-only image, but --export writes it as a diff of files (each\n"
	"changed file with its owner, mode, time and extended attributes, each\n"
	"deleted one as overlayfs's whiteout), keyed by the SHA-256 of the image\n"
	"file; --apply of such diffs makes a new upper layer OUT over BACKING,\n"
	"for 'umlk boot --cow OUT BACKING' (a later diff's file replaces an\n"
	"earlier one's).  Both run a small guest, since it is the guest kernel\n"
	"that reads ext4: they need the kernel 'umlk boot' uses.\n";

static const struct kopt opts[] = {
	{ 'b', "-b --backing", "FILE", "use FILE as the backing image" },
	{ 'd', "-d --destructive", NULL, "merge into the backing image in place" },
	{ 'i', "-i --info", NULL, "describe the COW file" },
	{ 'c', "-c --create", NULL, "create an empty COW file over BACKING" },
	{ 'f', "-f --force", NULL, "with --create: replace an existing COW file" },
	{ 'e', "-e --export", NULL, "write a portable diff" },
	{ 'a', "-a --apply", "DIFF", "apply a diff (may be repeated)" },
	{ 'I', "--image", NULL, "with --apply: write a merged image, not a COW file" },
	{ 'K', "--kernel", "PATH", "for the guest of an upper layer's --export or\n--apply, as in 'umlk boot'" },
	{ 'N', "--init", "PATH", "the same" },
	{ 'q', "-q --quiet", NULL, "no progress bar (it is shown only on a terminal anyway)" },
	{ 0 },
};

APPLET(cow_merge, "cow-merge", "merge, inspect, create and share UML COW files", usage, opts);

int cow_merge_main(int argc, char **argv)
{
	struct cowjob j = { 0 };
	struct upper_guest g = { 0 };
	int mode = 0, force = 0, as_image = 0, ndiffs = 0, c;
	const char **diffs = calloc(argc, sizeof(char *));

	if (!diffs)
		xdie("out of memory");
	while ((c = xkopt_next(argc, argv, opts)) != -1) {
		switch (c) {
		case 'b': j.backing = optarg; break;
		case 'd': case 'i': case 'c': case 'e':
			if (mode && mode != c)
				xusage("choose one of -d, --info, --create, --export, --apply");
			mode = c;
			break;
		case 'a':
			if (mode && mode != 'a')
				xusage("choose one of -d, --info, --create, --export, --apply");
			mode = 'a';
			diffs[ndiffs++] = optarg;
			break;
		case 'f': force = 1; break;
		case 'I': as_image = 1; break;
		case 'q': k_quiet = 1; break;
		case 'K': g.kernel = optarg; break;
		case 'N': g.init = optarg; break;
		}
	}
	if ((g.kernel || g.init) && mode != 'e' && mode != 'a')
		xusage("--kernel and --init go with --export and --apply");
	if (force && mode != 'c')
		xusage("-f goes with --create");
	if (as_image && mode != 'a')
		xusage("--image goes with --apply");
	if (j.backing && (mode == 'i' || mode == 'c' || mode == 'a'))
		xusage("-b does not go with --info, --create or --apply");
	switch (mode) {
	case 0:
		xarg_count(argc, argv, 2, 2);
		j.cowpath = argv[optind];
		xcow_merge_new(&j, argv[optind + 1]);
		break;
	case 'd':
		xarg_count(argc, argv, 1, 1);
		j.cowpath = argv[optind];
		xcow_merge_inplace(&j);
		break;
	case 'i':
		xarg_count(argc, argv, 1, 1);
		xcow_info(argv[optind]);
		break;
	case 'c':
		xarg_count(argc, argv, 2, 2);
		xcow_create(argv[optind], argv[optind + 1], force);
		break;
	case 'e':
		xarg_count(argc, argv, 2, 2);
		j.cowpath = argv[optind];
		struct upper_hdr uh;
		if (upper_read(-1, j.cowpath, &uh) > 0)
			xupper_export(&g, j.cowpath, j.backing, argv[optind + 1]);
		else
			xcow_export(&j, argv[optind + 1]);
		break;
	case 'a':
		xarg_count(argc, argv, 2, 2);
		if (upper_is_fdiff(diffs[0])) {
			if (as_image)
				xusage("%s is a diff of files (an upper layer's): --image is for diffs of sectors",
				       diffs[0]);
			xupper_apply(&g, diffs, ndiffs, argv[optind], argv[optind + 1]);
		} else {
			xcow_apply(diffs, ndiffs, argv[optind], argv[optind + 1], as_image);
		}
		break;
	}
	free(diffs);
	return 0;
}
