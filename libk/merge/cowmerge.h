/* cowmerge: what cow-merge does with UML COW files and the images under
 * them (read through block/, so an ISO or cloop is read as its disk).
 *
 *  - merge into a new image: the backing image's data extents are copied
 *    (holes kept), then the changed sectors are written; zero pages
 *    become holes.  Temporary name, renamed when complete.
 *  - merge in place (-d): a journal file COW.merging is written first; the
 *    changed sectors are then copied into the backing image, which is
 *    synced, and the journal removed.  Copying is idempotent, so a merge
 *    killed at any point is completed by running it again: the journal
 *    tells the next run to skip the mtime check the half-merged image no
 *    longer passes.
 *  - portable diffs: the changed sectors in the container of
 *    image/diff.h, keyed by the SHA-256 of the image they apply to.
 */
#ifndef UMLK_COWMERGE_H
#define UMLK_COWMERGE_H

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

#endif
