/* bsrc: block sources, the layers a guest's disk is made of.
 *
 * A block source is a disk addressed by byte: read a range, write one
 * (when writable), flush, and its size.  One kind a file:
 *   bsrc.c        a file, or a byte range of one (a cloop inside an ISO)
 *   bsrc_cloop.c  a cloop image over another source, inflated one block
 *                 at a time as it is read, with a bounded LRU cache of
 *                 inflated blocks and read-ahead on sequential reads
 *   bsrc_cow.c    a UML COW v3 file over another source, exactly as the
 *                 kernel's ubd driver lays it out
 *   bsrc_trace.c  a recorder of the chunks read (a boot profile)
 *   bsrc_hold.c   writes that wait for room on a full disk
 *   remote/       an image on a web server, verified chunk by chunk
 *                 (remote/remote.h, a layer above this one)
 * Stacking is composition: a cloop or COW source holds the one beneath it
 * and closes it with itself.
 *
 * Every operation may be called from several threads at once.  Failures
 * return -1 with k_seterr() (kept per thread) naming the file and offset.
 */
#ifndef UMLK_BSRC_H
#define UMLK_BSRC_H

#include <pthread.h>
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
	int says_errors;                /* it reports its own failures (bsrc_hold): callers need not */
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

/* Writes that wait for room: a source over LOWER (taken over) whose writes
 * and flushes, when they fail for want of space (ENOSPC, EDQUOT), are
 * tried again every 2 s, holding the caller (the guest's request), until
 * they work, until the policy's wait runs out (P->expired set: the
 * launcher stops the guest), or until the policy is stopped; one line on
 * stderr says which file and filesystem are full.  Other failures (EIO,
 * EROFS, EFBIG) return at once, said once on stderr and counted in
 * P->write_errors.  FSPATH is the file, or a directory on its filesystem
 * (an unnamed temporary's), for the message.  Reads pass through. */
struct hold_policy {
	int wait_s;                     /* how long a write may wait: -1 for ever, 0 not at all */
	pthread_mutex_t lock;
	pthread_cond_t wake;
	int waiting;                    /* writes waiting now */
	int said_full;                  /* the line saying so is out */
	int stopped;                    /* hold_policy_stop: waiting writes fail, new ones do not wait */
	int expired;                    /* a write waited WAIT_S: the guest is to be stopped */
	char full_file[256];            /* ... the file that was full */
	uint64_t write_errors;          /* writes that failed otherwise (atomically) */
};
void hold_policy_init(struct hold_policy *p, int wait_s);
void hold_policy_stop(struct hold_policy *p);
void hold_policy_free(struct hold_policy *p);
struct bsrc *bsrc_hold(struct bsrc *lower, const char *fspath, struct hold_policy *p);

/* Record the chunks (of CHUNK bytes) of S that reads touch, in the order
 * first touched: a source over S (taking it over) that counts into a list
 * read back (malloc'ed, *N entries) with bsrc_trace_list.  What a boot
 * profile is made of (umlk index --profile). */
struct bsrc *bsrc_trace(struct bsrc *s, uint32_t chunk);
uint32_t *bsrc_trace_list(struct bsrc *t, uint32_t *n);

/* The COW file at PATH over LOWER, whose image is the file BACKING (an
 * absolute path, recorded in the header) with modification time MTIME.
 * An existing file must belong to that image (path, size and mtime, as
 * the kernel checks); a missing one is made when CREATE (the file appears
 * whole or not at all).  FD >= 0: a file already open (an unnamed
 * temporary), which gets a new header, and whose flushes do not wait
 * for the disk (it cannot outlive us). */
struct bsrc *bsrc_cow(const char *path, int fd, struct bsrc *lower, const char *backing,
		      uint64_t mtime, int create);

#endif
