/* bsrc: block sources, the layers a guest's disk is made of.
 *
 * A block source is a disk addressed by byte: read a range, write one
 * (when writable), flush, and its size.  One kind a file:
 *   bsrc_file.c   a file, or a byte range of one (a cloop inside an ISO)
 *   bsrc_cloop.c  a cloop image over another source, inflated one block
 *                 at a time as it is read, with a bounded LRU cache of
 *                 inflated blocks and read-ahead on sequential reads
 *   bsrc_cow.c    a UML COW v3 file over another source, exactly as the
 *                 kernel's ubd driver lays it out
 *   remote/       an image on a web server, verified chunk by chunk
 *                 (remote.h)
 * Stacking is composition: a cloop or COW source holds the one beneath it
 * and closes it with itself.
 *
 * Every operation may be called from several threads at once.  Failures
 * return -1 with k_seterr() (kept per thread) naming the file and offset.
 */
#ifndef UMLK_BSRC_H
#define UMLK_BSRC_H

#include <stddef.h>
#include <stdint.h>

#include "core/xio.h"

struct bsrc;

struct bsrc_ops {
	const char *kind;               /* "file", "cloop", "cow" */
	int (*read)(struct bsrc *s, void *buf, size_t n, uint64_t off);
	int (*write)(struct bsrc *s, const void *buf, size_t n, uint64_t off);    /* NULL: read-only */
	int (*flush)(struct bsrc *s);                                           /* NULL: nothing to do */
	void (*close)(struct bsrc *s);
};

struct bsrc {
	const struct bsrc_ops *ops;
	char name[256];                 /* for messages: the file, and where in it */
	uint64_t size;                  /* bytes */
	int readonly;
	struct bsrc *lower;             /* the source beneath, if any */
};

/* Reads and writes inside [0, size); -1 with k_seterr() otherwise. */
int bsrc_read(struct bsrc *s, void *buf, size_t n, uint64_t off);
int bsrc_write(struct bsrc *s, const void *buf, size_t n, uint64_t off);
int bsrc_flush(struct bsrc *s);
void bsrc_close(struct bsrc *s);        /* and everything beneath it */

/* A ksrc reading through S (for the format parsers: cloop, ISO9660). */
void bsrc_ksrc(struct ksrc *k, struct bsrc *s);

/* ---- kinds */

/* LEN bytes at OFF of the open file FD (taken over; closed with the
 * source), named NAME.  WRITABLE: writes go to the file.  Counts what it
 * reads in *COUNTER, if given (atomically). */
struct bsrc *bsrc_file(int fd, const char *name, uint64_t off, uint64_t len, int writable,
		       uint64_t *counter);

/* LEN bytes at OFF of LOWER, which stays LOWER's owner's (it must
 * outlive this source): a file inside an ISO. */
struct bsrc *bsrc_range(struct bsrc *lower, const char *name, uint64_t off, uint64_t len);

/* A cloop image held by LOWER.  CACHE_BYTES bounds the inflated blocks
 * kept (at least 4 blocks are); THREADS inflate read-ahead in parallel
 * (0: none).  NULL with k_seterr() when LOWER is no cloop this build
 * reads. */
struct bsrc *bsrc_cloop(struct bsrc *lower, uint64_t cache_bytes, int threads);
#define BSRC_CLOOP_CACHE_DEFAULT (32ULL << 20)

/* The COW file at PATH over LOWER, whose image is the file BACKING (an
 * absolute path, recorded in the header) with modification time MTIME.
 * An existing file must belong to that image (path, size and mtime, as
 * the kernel checks); a missing one is made when CREATE (the file appears
 * whole or not at all).  FD >= 0: a file already open (an unnamed
 * temporary), which gets a new header. */
struct bsrc *bsrc_cow(const char *path, int fd, struct bsrc *lower, const char *backing,
		      uint64_t mtime, int create);

#endif
