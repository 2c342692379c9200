/* image: what a boot image file holds, found by reading it (nothing is
 * mounted or extracted), and the disk the guest is served from it.
 *
 * Kinds read: an ISO9660 image with a KNOPPIX cloop (KNOPPIX/KNOPPIX), a
 * bare cloop image, and a filesystem image (ext2/3/4, squashfs,
 * iso9660).  The disk is a stack of block sources (see bsrc.h): the file,
 * or the byte range of the cloop inside the ISO, then the cloop inflated
 * block by block.  The root filesystem's type is read from its superblock.
 */
#ifndef UMLK_IMAGE_H
#define UMLK_IMAGE_H

#include <limits.h>
#include <stdint.h>

#include "block/bsrc.h"

struct image {
	char path[PATH_MAX];            /* absolute, as recorded in COW headers */
	uint64_t mtime;                 /* of the file, seconds */
	uint64_t file_size;
	char kind[96];                  /* "ISO image, KNOPPIX cloop KNOPPIX/KNOPPIX", ... */
	const char *fstype;             /* the root's filesystem: "ext2", "ext4", "squashfs", "iso9660" */
	struct bsrc *disk;              /* the root filesystem, read-only */
	uint64_t bytes_read;            /* of the file, so far (updated atomically) */
};

/* Open PATH (named so in messages); CACHE_BYTES bounds a cloop's cache of
 * inflated blocks.  -1 with k_seterr() naming the file and what is wrong. */
int image_open(struct image *im, const char *path, uint64_t cache_bytes);
void image_close(struct image *im);

/* The filesystem a disk starts with, by its superblock: "ext2", "ext3",
 * "ext4", "squashfs", "iso9660", or NULL. */
const char *image_fstype(struct bsrc *disk);

#endif
