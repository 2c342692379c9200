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
	uint32_t sectorsize;    /* DIFF_FILES: a diff of files (fdiff.h) */
	uint64_t image_size, nsectors;  /* nsectors: entries, for a diff of files */
	uint8_t base[32];
};
#define DIFF_HEAD 64
#define DIFF_FILES 0
int diff_parse_head(const uint8_t *b, size_t n, const char *name, struct diffhead *d);

/* The container, for other kinds of body (a diff of files): the writer
 * puts header D, then deflates the body, then the trailer; the reader
 * checks the trailer first and inflates the body in order. */
struct kout;
struct dwriter *xdiff_writer_open(struct kout *out, const struct diffhead *d);
void xdiff_writer_body(struct dwriter *w, const void *p, size_t n);
void xdiff_writer_finish(struct dwriter *w);    /* the trailer; frees W */
struct dreader *xdiff_reader_open(const char *path);
const struct diffhead *diff_reader_head(const struct dreader *r);
int diff_reader_read(struct dreader *r, void *buf, size_t n);  /* all N bytes: 0, else -1 */
int diff_reader_end(struct dreader *r);         /* nothing after: 0, else -1 */
void diff_reader_close(struct dreader *r);
/* SHA-256 of the file at PATH, its size in *SIZE; progress on a terminal. */
void xdiff_hash_file(const char *path, uint8_t out[32], uint64_t *size);
/* Check a whole diff held in memory: trailing hash, runs, counts. */
int diff_check_mem(const uint8_t *buf, size_t n, const char *name);

#endif
