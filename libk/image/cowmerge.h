/* cowmerge: what cow-merge does with UML COW files.
 *
 *  - merge into a new image: the backing image's data extents are copied
 *    (copy_file_range, holes kept), then the changed sectors are written;
 *    zero pages become holes.  Temporary name, renamed when complete.
 *  - merge in place (-d): a journal file COW.merging is written first; the
 *    changed sectors are then copied into the backing image, which is
 *    synced, and the journal removed.  Copying is idempotent, so a merge
 *    killed at any point is completed by running it again: the journal
 *    tells the next run to skip the mtime check the half-merged image no
 *    longer passes.
 *  - portable diffs: the changed sectors, compressed, plus the SHA-256 of
 *    the image they apply to (see README "Portable diffs" for the format).
 */
#ifndef UMLK_COWMERGE_H
#define UMLK_COWMERGE_H

#include "image/cow.h"

struct cowjob {
	const char *cowpath;
	const char *backing;    /* -b, or NULL for the path in the header */
};

void xcow_merge_new(const struct cowjob *j, const char *newimage);
void xcow_merge_inplace(const struct cowjob *j);
void xcow_info(const char *cowpath);
void xcow_export(const struct cowjob *j, const char *diffpath);
/* Apply NDIFFS diffs in order over BACKING, writing a new COW file over
 * it, or with AS_IMAGE a merged image. */
void xcow_apply(const char *const *diffs, int ndiffs, const char *backing,
		const char *out, int as_image);

/* Diff header, parsed from its first 64 bytes (pure, for fuzzing). */
struct diffhead {
	uint32_t sectorsize;
	uint64_t image_size, nsectors;
	uint8_t base[32];
};
#define DIFF_HEAD 64
int diff_parse_head(const uint8_t *b, size_t n, const char *name, struct diffhead *d);
/* Check a whole diff held in memory: trailing hash, runs, counts. */
int diff_check_mem(const uint8_t *buf, size_t n, const char *name);

#endif
