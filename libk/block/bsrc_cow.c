/* A UML COW file over a source: written sectors live in the COW file (at
 * data_off + sector * sectorsize) and are marked in its bitmap; the rest
 * is read from beneath.  The layout is the kernel's (see image/cow.h), so
 * cow-merge, uml_moo and the kernel's ubd driver read these files.
 *
 * Order of writes: a write's data goes to the file before the bitmap bits
 * that point at it are set in memory, and the bitmap bytes are written
 * after that, so at any instant the file's bitmap only marks sectors whose
 * data is in the file: a SIGKILL (of umlk or of the kernel) never leaves a
 * bit pointing at nothing.  A flush (the guest's FLUSH) makes both
 * durable with one fdatasync, since they share the file. */
#include "block/bsrc.h"
#include "core/err.h"
#include "core/xio.h"
#include "image/cow.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct cowsrc {
	struct bsrc b;
	struct cow c;
	int fd;
};

static int bit(const struct cowsrc *s, uint64_t sector)
{
	uint8_t byte = __atomic_load_n(&s->c.bitmap[sector / 8], __ATOMIC_ACQUIRE);
	return (byte >> (sector % 8)) & 1;
}

static int cow_read(struct bsrc *b, void *buf, size_t n, uint64_t off)
{
	struct cowsrc *s = (struct cowsrc *)b;
	uint64_t ss = s->c.sectorsize;

	while (n) {
		/* A run of sectors that all come from the same place. */
		uint64_t sec = off / ss;
		int here = sec < s->c.nsectors && bit(s, sec);
		uint64_t end = (sec + 1) * ss;
		while (end - off < n && (end / ss < s->c.nsectors && bit(s, end / ss)) == here)
			end += ss;
		size_t k = end - off < n ? (size_t)(end - off) : n;
		if (here) {
			ssize_t r = full_pread(s->fd, buf, k, s->c.data_off + off);
			if (r < 0)
				return k_seterr("%s: read error at offset %" PRIu64 ":", b->name,
						s->c.data_off + off);
			if ((size_t)r != k)
				return k_seterr("%s: shorter than its header says (nothing at %" PRIu64 ")",
						b->name, s->c.data_off + off + (uint64_t)r);
		} else if (bsrc_read(b->lower, buf, k, off) < 0) {
			return -1;
		}
		buf = (uint8_t *)buf + k;
		off += k;
		n -= k;
	}
	return 0;
}

static int cow_write(struct bsrc *b, const void *buf, size_t n, uint64_t off)
{
	struct cowsrc *s = (struct cowsrc *)b;
	uint64_t ss = s->c.sectorsize;

	if (off % ss || n % ss)
		return k_seterr("%s: a write of %zu bytes at %" PRIu64 " is not whole %" PRIu64 "-byte sectors",
				b->name, n, off, ss);
	if (full_pwrite(s->fd, buf, n, s->c.data_off + off) < 0)
		return k_seterr("%s: write error at offset %" PRIu64 ":", b->name, s->c.data_off + off);
	uint64_t first = off / ss, last = (off + n) / ss - 1;
	int changed = 0;
	for (uint64_t sec = first; sec <= last && sec < s->c.nsectors; sec++) {
		uint8_t m = (uint8_t)(1u << (sec % 8));
		if (!(__atomic_fetch_or(&s->c.bitmap[sec / 8], m, __ATOMIC_RELEASE) & m))
			changed = 1;
	}
	if (!changed)
		return 0;
	/* The bitmap bytes covering the write, as they are now (other
	 * writers' bits in them have their data in the file already). */
	uint64_t b0 = first / 8, b1 = (last < s->c.nsectors ? last : s->c.nsectors - 1) / 8;
	uint8_t stack[512], *copy = b1 - b0 + 1 <= sizeof(stack) ? stack : xmalloc(b1 - b0 + 1);
	for (uint64_t i = b0; i <= b1; i++)
		copy[i - b0] = __atomic_load_n(&s->c.bitmap[i], __ATOMIC_ACQUIRE);
	int r = full_pwrite(s->fd, copy, b1 - b0 + 1, s->c.bitmap_off + b0) < 0 ? -1 : 0;
	if (copy != stack)
		free(copy);
	if (r < 0)
		return k_seterr("%s: writing its bitmap:", b->name);
	return 0;
}

static int cow_flush(struct bsrc *b)
{
	struct cowsrc *s = (struct cowsrc *)b;

	if (fdatasync(s->fd) < 0)
		return k_seterr("%s: fdatasync:", b->name);
	return 0;
}

static void cow_src_close(struct bsrc *b)
{
	struct cowsrc *s = (struct cowsrc *)b;

	if (fdatasync(s->fd) < 0 && errno != EINVAL)
		k_warn("%s: fdatasync:", b->name);
	close(s->fd);
	cow_close(&s->c);
	bsrc_close(b->lower);
	free(s);
}

static const struct bsrc_ops cow_ops = { "cow", cow_read, cow_write, cow_flush, cow_src_close };

/* Write a new, empty COW header over LOWER into FD. */
static int init_file(int fd, const char *name, struct cow *c, const struct bsrc *lower,
		     const char *backing, uint64_t mtime)
{
	uint8_t head[COW_V3_HEADER];

	cow_init_v3(c, backing, lower->size, mtime);
	cow_header_v3(c, head);
	/* Like the kernel: the header, a bitmap of zeros left a hole, and the
	 * file extended to data_off + size. */
	if (ftruncate(fd, 0) < 0 || full_pwrite(fd, head, sizeof(head), 0) < 0 ||
	    ftruncate(fd, (off_t)(c->data_off + c->size)) < 0)
		return k_seterr("%s: writing a COW header:", name);
	return 0;
}

struct bsrc *bsrc_cow(const char *path, int fd, struct bsrc *lower, const char *backing,
		      uint64_t mtime, int create)
{
	struct cowsrc *s = xcalloc(1, sizeof(*s));
	const char *name = path ? path : "temporary COW file";

	snprintf(s->b.name, sizeof(s->b.name), "%s", name);
	s->fd = fd;
	if (strlen(backing) >= COW_PATH_MAX) {
		k_seterr("%s: path longer than the %d bytes a COW header holds", backing, COW_PATH_MAX - 1);
		goto fail;
	}
	if (fd >= 0) {
		if (init_file(fd, name, &s->c, lower, backing, mtime) < 0)
			goto fail;
	} else if (access(path, F_OK) < 0 && errno == ENOENT && create) {
		/* Made whole under a temporary name, then renamed: never a
		 * half-written COW file under the user's name. */
		struct kout o;
		struct cow c;
		if (kout_open(&o, path) < 0)
			goto fail;
		if (!o.regular || init_file(o.fd, name, &c, lower, backing, mtime) < 0) {
			if (!o.regular)
				k_seterr("%s: a COW file must be a regular file", path);
			kout_abort(&o);
			goto fail;
		}
		cow_close(&c);
		if (kout_commit(&o, 1) < 0)
			goto fail;
	}
	if (fd < 0) {
		struct ksrc k;
		s->fd = open(path, O_RDWR | O_CLOEXEC);
		if (s->fd < 0) {
			k_seterr("%s:", path);
			goto fail;
		}
		memset(&k, 0, sizeof(k));
		struct stat st;
		if (fstat(s->fd, &st) < 0 || !S_ISREG(st.st_mode)) {
			k_seterr("%s: not a regular file", path);
			goto fail;
		}
		k.fd = s->fd;
		k.size = (uint64_t)st.st_size;
		k.name = path;
		if (cow_open(&s->c, &k) < 0)
			goto fail;
		if (strcmp(s->c.backing, backing)) {
			k_seterr("%s: this COW file belongs to another image (%s)", path, s->c.backing);
			goto fail;
		}
		if (s->c.size != lower->size || s->c.mtime != (uint32_t)mtime) {
			k_seterr("%s: the image %s changed since this COW file was made over it (%s): the"
				 " changes in it no longer apply", path, backing,
				 s->c.size != lower->size ? "its size differs" : "its modification time differs");
			goto fail;
		}
	}
	s->b.ops = &cow_ops;
	s->b.size = lower->size;
	s->b.readonly = 0;
	s->b.lower = lower;
	return &s->b;
fail:
	if (s->fd >= 0)
		close(s->fd);
	cow_close(&s->c);
	free(s);
	return NULL;
}
