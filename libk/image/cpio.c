#include "image/cpio.h"
#include "core/err.h"
#include "core/xio.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

static void put(struct cpio *c, const void *p, size_t n)
{
	if (c->cap - c->len < n) {
		size_t cap = c->cap ? c->cap : 65536;
		while (cap - c->len < n)
			cap *= 2;
		c->buf = xrealloc(c->buf, cap);
		c->cap = cap;
	}
	memcpy(c->buf + c->len, p, n);
	c->len += n;
}

static void pad4(struct cpio *c)
{
	static const uint8_t zero[4];

	put(c, zero, (4 - c->len % 4) % 4);
}

void cpio_init(struct cpio *c)
{
	memset(c, 0, sizeof(*c));
	c->ino = 1;
}

static void entry(struct cpio *c, const char *name, unsigned mode, const void *data,
		  size_t len, unsigned rmaj, unsigned rmin)
{
	char h[111];
	size_t nlen = strlen(name) + 1;

	/* magic, then 13 fields of 8 hex digits: ino mode uid gid nlink mtime
	 * filesize devmajor devminor rdevmajor rdevminor namesize check */
	snprintf(h, sizeof(h), "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		 c->ino++, mode, 0u, 0u, S_ISDIR(mode) ? 2u : 1u, 0u, (unsigned)len,
		 0u, 0u, rmaj, rmin, (unsigned)nlen, 0u);
	put(c, h, 110);
	put(c, name, nlen);
	pad4(c);
	if (len && data) {      /* (no data: cpio_file_header's caller writes it) */
		put(c, data, len);
		pad4(c);
	}
}

void cpio_dir(struct cpio *c, const char *name, unsigned perm)
{
	entry(c, name, S_IFDIR | perm, NULL, 0, 0, 0);
}

void cpio_file(struct cpio *c, const char *name, unsigned perm, const void *data, size_t len)
{
	if (len > 0xffffffffu) {
		if (!c->err)
			k_seterr("%s: too large for a cpio archive", name);
		c->err = 1;
		return;
	}
	entry(c, name, S_IFREG | perm, data, len, 0, 0);
}

void cpio_file_header(struct cpio *c, const char *name, unsigned perm, size_t len)
{
	cpio_file(c, name, perm, NULL, len);    /* (no data: entry() writes the header alone) */
}

int cpio_flush(struct cpio *c, int fd)
{
	/* (Every entry ends on a multiple of 4, so the padding computed
	 * from an emptied buffer stays right.) */
	if (full_write(fd, c->buf, c->len) < 0)
		return -1;
	c->len = 0;
	return 0;
}

void cpio_symlink(struct cpio *c, const char *name, const char *target)
{
	entry(c, name, S_IFLNK | 0777, target, strlen(target), 0, 0);
}

void cpio_chardev(struct cpio *c, const char *name, unsigned perm, unsigned major, unsigned minor)
{
	entry(c, name, S_IFCHR | perm, NULL, 0, major, minor);
}

int cpio_finish(struct cpio *c)
{
	entry(c, "TRAILER!!!", 0, NULL, 0, 0, 0);
	return c->err ? -1 : 0;
}

void cpio_free(struct cpio *c)
{
	free(c->buf);
	memset(c, 0, sizeof(*c));
}

void xgzip(const void *in, size_t n, uint8_t **out, size_t *outlen, int level)
{
	z_stream zs;

	memset(&zs, 0, sizeof(zs));
	if (deflateInit2(&zs, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
		xdie("zlib: cannot initialise");
	size_t cap = deflateBound(&zs, n);
	*out = xmalloc(cap);
	zs.next_in = (Bytef *)in;
	zs.avail_in = n;
	zs.next_out = *out;
	zs.avail_out = cap;
	if (deflate(&zs, Z_FINISH) != Z_STREAM_END)
		xdie("zlib: gzip failed");
	*outlen = zs.total_out;
	deflateEnd(&zs);
}
