/* xio: memory and file I/O that either works or says why.
 *
 * x* functions exit through xdie() on failure; full_* return -1 and leave
 * errno; k* functions return -1 with k_seterr().  struct kout is the one
 * way umlk writes a file a user owns: it appears under its final name only
 * when complete (a randomly named temporary beside it, created O_EXCL,
 * renamed on commit, removed on failure or signal).  struct ksrc is an
 * input read by offset, from a file or from memory (for fuzzers and tests).
 */
#ifndef UMLK_XIO_H
#define UMLK_XIO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Out of memory ends the program wherever it happens (err.h's one
 * exception): these never return NULL, and k_oom() says so and exits. */
_Noreturn void k_oom(void);
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);

/* Loop until all bytes moved (EINTR retried).  Return the bytes moved
 * (short only for a read that meets end of file), -1 with errno. */
ssize_t full_read(int fd, void *buf, size_t n);
ssize_t full_pread(int fd, void *buf, size_t n, uint64_t off);
ssize_t full_write(int fd, const void *buf, size_t n);
ssize_t full_pwrite(int fd, const void *buf, size_t n, uint64_t off);

/* A whole regular file in memory (malloc'ed). */
uint8_t *k_read_file(const char *path, size_t *len);
uint8_t *xread_file(const char *path, size_t *len);

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
int kout_open(struct kout *o, const char *path);
/* Close and rename into place; DURABLE: fsync the file first and its
 * directory after, so the new contents survive a crash. */
int kout_commit(struct kout *o, int durable);
void kout_abort(struct kout *o);        /* remove the temporary, if any */
void xout_open(struct kout *o, const char *path);
void xout_commit(struct kout *o);        /* kout_commit(o, 0) or die */
/* fsync the directory holding PATH, so a rename or unlink in it is
 * durable; -1 with errno. */
int k_sync_dir_of(const char *path);
/* The whole of PATH at once: N bytes, MODE, through a kout. */
int kout_write_file(const char *path, const void *data, size_t n, mode_t mode, int durable);

/* Input: a file descriptor, a memory buffer, or a read function (a block
 * source, say), read by offset. */
struct ksrc {
	int fd;                 /* -1 for memory or a function */
	const uint8_t *mem;
	int (*readfn)(void *ctx, void *buf, size_t n, uint64_t off);   /* -1 with k_seterr() */
	void *ctx;
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

/* The bytes [SKIP, SKIP + LEN) of the iovecs V[0..N), as iovecs in OUT
 * (room for N): their count. */
struct iovec;
unsigned k_iov_slice(const struct iovec *v, unsigned n, size_t skip, size_t len, struct iovec *out);
/* Copy LEN bytes of SRC to the bytes from SKIP of V[0..N) (as many as fit). */
void k_iov_put(const struct iovec *v, unsigned n, size_t skip, const void *src, size_t len);

/* "1.5 GiB" style; buf of at least 16 bytes. */
const char *k_human(uint64_t bytes, char *buf, size_t len);
/* Parse a size: a whole number of bytes, optionally followed by K, M, G or
 * T (powers of 1024, any case), which may be followed by "iB" or "B":
 * "512", "64K", "1M", "2GiB".  Anything else ("5i", "1.5G", "", "-1", a
 * value over 2^64 - 1) is -1 with k_seterr(). */
int k_parse_size(const char *s, uint64_t *out);

#endif
