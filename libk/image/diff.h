/* diff: the container of a portable diff, the file cow-merge --export
 * writes and --apply reads.
 *
 *  0  "UMLKDIFF"
 *  8  u32 format version (1)          all numbers big-endian
 * 12  u32 sector size (0: a diff of files, fdiff.h)
 * 16  u64 image size in bytes
 * 24  32 bytes: SHA-256 of the image the diff applies to
 * 56  u64 number of changed sectors (of entries, for a diff of files)
 * 64  a zlib stream: runs (u64 first sector, u32 count, count sectors),
 *     or the entries of a diff of files
 * end 32 bytes: SHA-256 of everything before it
 *
 * A format only: bytes in, bytes out.  What makes a diff from a COW file
 * or applies one to an image is merge/cowmerge.h (and guest/upperdiff.h
 * for an overlay's upper layer).  A diff is hostile input: the reader
 * checks the trailer before it believes anything, then every run.
 */
#ifndef UMLK_DIFF_H
#define UMLK_DIFF_H

#include <stddef.h>
#include <stdint.h>

/* Diff header, parsed from its first 64 bytes (pure, for fuzzing). */
struct diffhead {
	uint32_t sectorsize;    /* DIFF_FILES: a diff of files (fdiff.h) */
	uint64_t image_size, nsectors;  /* nsectors: entries, for a diff of files */
	uint8_t base[32];
};
#define DIFF_HEAD 64
#define DIFF_FILES 0
#define DIFF_RUN_MAX (1u << 20)         /* bytes in one run of sectors, at most */
int diff_parse_head(const uint8_t *b, size_t n, const char *name, struct diffhead *d);

/* The writer puts header D, then deflates the body, then the trailer. */
struct kout;
struct dwriter *xdiff_writer_open(struct kout *out, const struct diffhead *d);
void xdiff_writer_body(struct dwriter *w, const void *p, size_t n);
void xdiff_writer_finish(struct dwriter *w);    /* the trailer; frees W */

/* The reader checks the trailer first and inflates the body in order. */
struct dreader *xdiff_reader_open(const char *path);
const struct diffhead *diff_reader_head(const struct dreader *r);
int diff_reader_read(struct dreader *r, void *buf, size_t n);  /* all N bytes: 0, else -1 */
/* The next run of a diff of sectors into BUF (room for DIFF_RUN_MAX
 * bytes): 1, 0 at the clean end of the diff, -1 with k_seterr() for
 * anything malformed. */
int diff_reader_run(struct dreader *r, uint64_t *sector, uint64_t *count, uint8_t *buf);
int diff_reader_end(struct dreader *r);         /* nothing after: 0, else -1 */
void diff_reader_close(struct dreader *r);

/* SHA-256 of the file at PATH, its size in *SIZE; progress on a terminal. */
void xdiff_hash_file(const char *path, uint8_t out[32], uint64_t *size);
/* Check a whole diff held in memory: trailing hash, runs, counts. */
int diff_check_mem(const uint8_t *buf, size_t n, const char *name);

#endif
