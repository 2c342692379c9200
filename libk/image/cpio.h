/* cpio: builds "newc" archives in memory (the initramfs format the Linux
 * kernel unpacks), and gzip-compresses buffers.
 *
 * Entries are added in order; parents must come before children. */
#ifndef UMLK_CPIO_H
#define UMLK_CPIO_H

#include <stddef.h>
#include <stdint.h>

struct cpio {
	uint8_t *buf;
	size_t len, cap;
	unsigned ino;
	int err;                /* an entry could not be added (k_seterr says why) */
};

void cpio_init(struct cpio *c);
void cpio_dir(struct cpio *c, const char *name, unsigned perm);
void cpio_file(struct cpio *c, const char *name, unsigned perm, const void *data, size_t len);
/* A file's header alone: its LEN bytes of data are the caller's to write
 * after what the archive holds so far (cpio_flush), then padding to 4
 * bytes (CPIO_PAD(LEN) zeros). */
void cpio_file_header(struct cpio *c, const char *name, unsigned perm, size_t len);
#define CPIO_PAD(len) ((4 - (len) % 4) % 4)
/* What the archive holds so far, written to FD and dropped from memory
 * (the entries after it are built as before): 0, or -1 with errno. */
int cpio_flush(struct cpio *c, int fd);
void cpio_symlink(struct cpio *c, const char *name, const char *target);
void cpio_chardev(struct cpio *c, const char *name, unsigned perm, unsigned major, unsigned minor);
/* The TRAILER!!! entry; -1 with k_seterr() if an entry could not be added. */
int cpio_finish(struct cpio *c);
void cpio_free(struct cpio *c);

/* gzip (RFC 1952) of IN; *OUT is malloc'ed.  Exits on failure. */
void xgzip(const void *in, size_t n, uint8_t **out, size_t *outlen, int level);

#endif
