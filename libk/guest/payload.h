/* payload: a UML kernel carried inside the umlk file itself.
 *
 * The release file is the static umlk binary, then the kernel compressed
 * with gzip, then a 64-byte trailer at the very end (little-endian):
 *
 *   0  magic   "UMLKPAY1"
 *   8  u64     offset of the compressed kernel in the file
 *  16  u64     compressed size
 *  24  u64     uncompressed size
 *  32  u32     CRC-32 of the uncompressed kernel
 *  36  u32     reserved, 0
 *  40  char[24] kernel release, NUL-padded ("6.12.117")
 *
 * The ELF loader ignores bytes after the program's segments, so the file
 * stays a valid umlk for every applet.  The kernel is inflated into a
 * memfd and executed from there: nothing is written to disk, and nothing
 * is executed from the directory the file lives in.
 */
#ifndef UMLK_PAYLOAD_H
#define UMLK_PAYLOAD_H

#include <stdint.h>

#define PAYLOAD_TRAILER 64
#define PAYLOAD_MAX (512u << 20)        /* a kernel larger than this is refused */

struct payload {
	uint64_t offset, csize, size;
	uint32_t crc;
	char release[25];
};

/* Read PATH's trailer: 1 found, 0 no payload, -1 damaged (k_seterr). */
int payload_find(const char *path, struct payload *p);
/* Inflate the payload of PATH into a new memfd; -1 with k_seterr(). */
int payload_memfd(const char *path, const struct payload *p);
/* Write IN + gzip(KERNEL) + trailer to OUT (exits on failure). */
void xpayload_attach(const char *in, const char *kernel, const char *release, const char *out);

/* Where the kernel comes from: an explicit path, the payload of this
 * binary, or build/linux beside it.  Returns an fd to execute and sets
 * *what to a description for messages.  Exits on failure. */
int xkernel_open(const char *explicit_path, const char **what);
/* execveat(fd) with ARGV; returns only on failure (errno set). */
int kernel_exec(int fd, char **argv);

#endif
