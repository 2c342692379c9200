#include "block/bsrc.h"
#include "core/err.h"
#include "core/xio.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int bsrc_read(struct bsrc *s, void *buf, size_t n, uint64_t off)
{
	if (off > s->size || n > s->size - off)
		return k_seterr("%s: read of %zu bytes at %" PRIu64 " is past its end (%" PRIu64 " bytes)",
				s->name, n, off, s->size);
	return n ? s->ops->read(s, buf, n, off) : 0;
}

int bsrc_write(struct bsrc *s, const void *buf, size_t n, uint64_t off)
{
	if (s->readonly || !s->ops->write)
		return k_seterr("%s: read-only", s->name);
	if (off > s->size || n > s->size - off)
		return k_seterr("%s: write of %zu bytes at %" PRIu64 " is past its end (%" PRIu64 " bytes)",
				s->name, n, off, s->size);
	return n ? s->ops->write(s, buf, n, off) : 0;
}

int bsrc_flush(struct bsrc *s)
{
	return s->ops->flush ? s->ops->flush(s) : 0;
}

void bsrc_close(struct bsrc *s)
{
	if (s)
		s->ops->close(s);
}

static int ksrc_through(void *ctx, void *buf, size_t n, uint64_t off)
{
	return bsrc_read(ctx, buf, n, off);
}

void bsrc_ksrc(struct ksrc *k, struct bsrc *s)
{
	memset(k, 0, sizeof(*k));
	k->fd = -1;
	k->readfn = ksrc_through;
	k->ctx = s;
	k->size = s->size;
	k->name = s->name;
}

/* ---- a file, or a range of one */

struct fsrc {
	struct bsrc b;
	int fd;
	uint64_t off;
	uint64_t *counter;
};

static int file_read(struct bsrc *s, void *buf, size_t n, uint64_t off)
{
	struct fsrc *f = (struct fsrc *)s;
	ssize_t r = full_pread(f->fd, buf, n, f->off + off);

	if (r < 0)
		return k_seterr("%s: read error at offset %" PRIu64 ":", s->name, off);
	if ((size_t)r != n)
		return k_seterr("%s: shorter than it was (nothing at offset %" PRIu64 ")", s->name, off + (uint64_t)r);
	if (f->counter)
		__atomic_add_fetch(f->counter, n, __ATOMIC_RELAXED);
	return 0;
}

static int file_write(struct bsrc *s, const void *buf, size_t n, uint64_t off)
{
	struct fsrc *f = (struct fsrc *)s;

	if (full_pwrite(f->fd, buf, n, f->off + off) < 0)
		return k_seterr("%s: write error at offset %" PRIu64 ":", s->name, off);
	return 0;
}

static int file_flush(struct bsrc *s)
{
	struct fsrc *f = (struct fsrc *)s;

	if (!s->readonly && fdatasync(f->fd) < 0)
		return k_seterr("%s: fdatasync:", s->name);
	return 0;
}

static void file_close(struct bsrc *s)
{
	struct fsrc *f = (struct fsrc *)s;

	close(f->fd);
	free(f);
}

static const struct bsrc_ops file_ops = { "file", file_read, file_write, file_flush, file_close };

struct bsrc *bsrc_file(int fd, const char *name, uint64_t off, uint64_t len, int writable,
		       uint64_t *counter)
{
	struct fsrc *f = xcalloc(1, sizeof(*f));

	f->b.ops = &file_ops;
	snprintf(f->b.name, sizeof(f->b.name), "%s", name);
	f->b.size = len;
	f->b.readonly = !writable;
	f->fd = fd;
	f->off = off;
	f->counter = counter;
	return &f->b;
}

/* ---- a range of another source */

struct rsrc_range {
	struct bsrc b;
	struct bsrc *under;     /* not owned */
	uint64_t off;
};

static int range_read(struct bsrc *s, void *buf, size_t n, uint64_t off)
{
	struct rsrc_range *r = (struct rsrc_range *)s;
	return bsrc_read(r->under, buf, n, r->off + off);
}

static void range_close(struct bsrc *s)
{
	free(s);
}

static const struct bsrc_ops range_ops = { "range", range_read, NULL, NULL, range_close };

struct bsrc *bsrc_range(struct bsrc *lower, const char *name, uint64_t off, uint64_t len)
{
	if (off > lower->size || len > lower->size - off) {
		k_seterr("%s: %" PRIu64 " bytes at %" PRIu64 " lie past the end of %s", name, len, off, lower->name);
		return NULL;
	}
	struct rsrc_range *r = xcalloc(1, sizeof(*r));
	r->b.ops = &range_ops;
	snprintf(r->b.name, sizeof(r->b.name), "%s", name);
	r->b.size = len;
	r->b.readonly = 1;
	r->under = lower;
	r->off = off;
	return &r->b;
}
