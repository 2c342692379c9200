/* xio: memory and file I/O that either works or says why.
 *
 * x* functions exit through xdie() on failure; the others return -1 and set
 * errno.  struct kout is an output file that appears under its final name
 * only when complete (temporary name in the same directory, renamed on
 * commit, removed on failure or signal).  struct ksrc is an input read by
 * offset, from a file or from memory (for fuzzers and tests).
 */
#ifndef UMLK_XIO_H
#define UMLK_XIO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
char *xstrdup(const char *s);

/* Loop until all bytes moved.  Return bytes done (short only at EOF), -1 on error. */
ssize_t full_read(int fd, void *buf, size_t n);
ssize_t full_pread(int fd, void *buf, size_t n, uint64_t off);
int full_write(int fd, const void *buf, size_t n);
int full_pwrite(int fd, const void *buf, size_t n, uint64_t off);

/* Open a spool file that vanishes on close (O_TMPFILE in TMPDIR, or /tmp). */
int xtmpfile(void);

/* Output file. "-" is stdout. */
struct kout {
	int fd;
	const char *name;       /* what the user called it, for messages */
	char *tmp;              /* temporary path, NULL when writing in place */
	int regular;            /* a regular file: may hold holes */
	int seekable;
};
void xout_open(struct kout *o, const char *path);
void xout_commit(struct kout *o);        /* fsync nothing, rename into place */
void kout_abort(struct kout *o);

/* Input: a file descriptor or a memory buffer, read by offset. */
struct ksrc {
	int fd;                 /* -1 for memory */
	const uint8_t *mem;
	uint64_t base;          /* where offset 0 lies in the file */
	uint64_t size;
	const char *name;
};
/* Open PATH ("-" is stdin); a pipe is first copied to a spool file. */
void xsrc_open(struct ksrc *s, const char *path);
void ksrc_mem(struct ksrc *s, const void *buf, size_t n, const char *name);
void ksrc_close(struct ksrc *s);
/* Narrow S to LEN bytes at OFF (a file inside an ISO image, say). */
void ksrc_window(struct ksrc *s, uint64_t off, uint64_t len);
/* Read exactly n bytes at off; -1 with k_seterr() on short read or error. */
int ksrc_read(const struct ksrc *s, void *buf, size_t n, uint64_t off);

/* True when all n bytes are zero. */
int k_iszero(const void *buf, size_t n);

/* "1.5 GiB" style; buf of at least 16 bytes. */
const char *k_human(uint64_t bytes, char *buf, size_t len);
/* Parse "64K", "1M", "512", "2G"; -1 on error. */
int k_parse_size(const char *s, uint64_t *out);

#endif
