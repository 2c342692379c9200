/* bootimage: what a boot image file holds, found by reading it (nothing is
 * mounted or extracted), and the disk the guest is served from it.
 *
 * Kinds read: a live ISO (KNOPPIX cloops, Debian Live, casper, Fedora
 * LiveOS, Arch and SystemRescue squashfs images: see live.h), a bare cloop
 * image, and a filesystem image (ext2/3/4, squashfs, iso9660).  The disk is a stack of block sources (see bsrc.h): the file,
 * or the byte range of the cloop inside the ISO, then the cloop inflated
 * block by block.  The root filesystem's type is read from its superblock.
 */
#ifndef UMLK_BOOTIMAGE_H
#define UMLK_BOOTIMAGE_H

#include <limits.h>
#include <stdint.h>

#include "block/bsrc.h"
#include "image/live.h"

struct image {
	char path[PATH_MAX];            /* absolute, as recorded in COW headers */
	uint64_t mtime;                 /* of the file, seconds */
	uint64_t file_size;
	char kind[400];                 /* "ISO image, KNOPPIX: KNOPPIX/KNOPPIX", ... */
	const char *fstype;             /* the root's filesystem: "ext2", "ext4", "squashfs", "iso9660" */
	struct bsrc *disk;              /* the root filesystem (its bottom layer), read-only */
	uint64_t bytes_read;            /* of the file, so far (updated atomically) */
	/* A live ISO's root may be several images stacked (overlayfs in the
	 * guest): layer[0] is disk, the others go over it in order.  Every
	 * other image kind has one layer. */
	int nlayers;
	struct bsrc *layer[LIVE_LAYERS_MAX];
	const char *layer_fstype[LIVE_LAYERS_MAX];
	struct live_layout live;        /* for an ISO: the layout found, and its boot parameters */
	int is_iso;
	struct bsrc *base;              /* an ISO's file, which the layers are ranges of */
	int has_cloop;
	struct bsrc *trace;             /* image_open_traced: the recorder (bsrc_trace, bsrc.h) */
};
/* Can the guest write the root straight onto its disk (one ext2/3/4
 * layer), or does it need an overlay (read-only or stacked layers)? */
int image_writable(const struct image *im);

/* Open PATH (named so in messages); ROOT names the root's file inside an
 * ISO (NULL: find it, see live.h); CACHE_BYTES bounds each cloop's cache
 * of inflated blocks.  -1 with k_seterr() naming the file and what is
 * wrong. */
int image_open(struct image *im, const char *path, const char *root, uint64_t cache_bytes);
/* The same, recording the chunks of TRACE_CHUNK bytes a boot reads in
 * im->trace (bsrc_trace_list, bsrc.h); 0: no recording. */
int image_open_traced(struct image *im, const char *path, const char *root, uint64_t cache_bytes,
		      uint32_t trace_chunk);
/* The image FILE holds (taken over, closed with the image; a remote one),
 * known as IDENTITY (in COW headers and messages) modified at MTIME. */
int image_open_src(struct image *im, struct bsrc *file, const char *identity, uint64_t mtime, const char *root,
		   uint64_t cache_bytes);
void image_close(struct image *im);

/* The filesystem a disk starts with, by its superblock: "ext2", "ext3",
 * "ext4", "squashfs", "iso9660", or NULL. */
const char *image_fstype(struct bsrc *disk);

#endif
