#include "image/fdiff.h"
#include "core/bytes.h"
#include "core/err.h"

#include <inttypes.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

int fdiff_path_ok(const char *path, size_t len)
{
	if (len == 0 || len > FDIFF_PATH_MAX || memchr(path, 0, len))
		return 0;
	for (size_t i = 0; i < len;) {
		size_t j = i;
		while (j < len && path[j] != '/')
			j++;
		size_t c = j - i;
		if (c == 0 || c > 255 || (c == 1 && path[i] == '.') || (c == 2 && path[i] == '.' && path[i + 1] == '.'))
			return 0;
		if (j == len)
			break;
		i = j + 1;
		if (i == len)
			return 0;       /* a trailing '/' */
	}
	return 1;
}

static int known_type(uint8_t t)
{
	return t && strchr("dflhwcbp", t) != NULL;
}

int fdent_add_xattr(struct fdent *e, const char *name, const void *value, uint32_t len)
{
	size_t nl = strlen(name);
	if (e->nx >= FDIFF_XATTRS_MAX || nl == 0 || nl > 255 || len > FDIFF_XATTR_BYTES ||
	    e->xused + nl + 1 + len > sizeof(e->xbuf))
		return -1;
	char *n = (char *)e->xbuf + e->xused;
	memcpy(n, name, nl + 1);
	memcpy(e->xbuf + e->xused + nl + 1, value, len);
	e->x[e->nx].name = n;
	e->x[e->nx].value = e->xbuf + e->xused + nl + 1;
	e->x[e->nx].len = len;
	e->nx++;
	e->xused += nl + 1 + len;
	return 0;
}

size_t fdent_size(const struct fdent *e)
{
	size_t n = FDIFF_HEAD + strlen(e->path);
	for (unsigned i = 0; i < e->nx; i++)
		n += 5 + strlen(e->x[i].name) + e->x[i].len;
	if (e->type == 'l' || e->type == 'h')
		n += strlen(e->target);
	return n;
}

size_t fdent_format(const struct fdent *e, uint8_t *buf)
{
	size_t pl = strlen(e->path), tl = e->type == 'l' || e->type == 'h' ? strlen(e->target) : 0;
	uint8_t *p = buf;

	memset(p, 0, FDIFF_HEAD);
	p[0] = e->type;
	k_put_be16(p + 2, (uint16_t)pl);
	k_put_be32(p + 4, e->mode & 07777);
	k_put_be32(p + 8, e->uid);
	k_put_be32(p + 12, e->gid);
	k_put_be64(p + 16, (uint64_t)e->mtime);
	k_put_be32(p + 24, e->mtime_ns);
	k_put_be32(p + 28, e->major);
	k_put_be32(p + 32, e->minor);
	k_put_be16(p + 36, (uint16_t)e->nx);
	k_put_be64(p + 40, tl ? tl : e->type == 'f' ? e->datalen : 0);
	p += FDIFF_HEAD;
	memcpy(p, e->path, pl);
	p += pl;
	for (unsigned i = 0; i < e->nx; i++) {
		size_t nl = strlen(e->x[i].name);
		p[0] = (uint8_t)nl;
		k_put_be32(p + 1, e->x[i].len);
		memcpy(p + 5, e->x[i].name, nl);
		memcpy(p + 5 + nl, e->x[i].value, e->x[i].len);
		p += 5 + nl + e->x[i].len;
	}
	memcpy(p, e->target, tl);
	return (size_t)(p + tl - buf);
}

int fdin_data(struct fdin *in, void *buf, size_t n)
{
	if (n > in->left)
		return k_seterr("%s: reading past a file's contents", in->name);
	if (n && in->read(in->ctx, buf, n) < 0)
		return -1;
	in->left -= n;
	return 0;
}

int fdin_next(struct fdin *in, struct fdent *e)
{
	uint8_t h[FDIFF_HEAD], skip[4096];
	const char *name = in->name;

	while (in->left) {
		size_t m = in->left < sizeof(skip) ? (size_t)in->left : sizeof(skip);
		if (fdin_data(in, skip, m) < 0)
			return -1;
	}
	if (in->read(in->ctx, h, sizeof(h)) < 0)
		return k_seterr("%s: damaged diff: cut short after %" PRIu64 " entries (%s)", name, in->entries,
				k_errmsg());
	memset(e, 0, offsetof(struct fdent, path));
	e->type = h[0];
	size_t pl = k_be16(h + 2);
	e->mode = k_be32(h + 4);
	e->uid = k_be32(h + 8);
	e->gid = k_be32(h + 12);
	e->mtime = (int64_t)k_be64(h + 16);
	e->mtime_ns = k_be32(h + 24);
	e->major = k_be32(h + 28);
	e->minor = k_be32(h + 32);
	unsigned nx = k_be16(h + 36);
	e->datalen = k_be64(h + 40);
	e->path[0] = e->target[0] = 0;
	e->nx = 0;
	e->xused = 0;
	if (e->type == FDIFF_END) {
		for (size_t i = 1; i < sizeof(h); i++)
			if (h[i])
				return k_seterr("%s: damaged diff: an end mark with data in it", name);
		return 0;
	}
	uint64_t n = in->entries + 1;
	if (!known_type(e->type))
		return k_seterr("%s: damaged diff: entry %" PRIu64 " has unknown type 0x%02x", name, n, e->type);
	if (h[1] || h[38] || h[39] || e->mode > 07777 || e->mtime_ns >= 1000000000u)
		return k_seterr("%s: damaged diff: entry %" PRIu64 " has bad mode, time or padding", name, n);
	if (e->type != 'c' && e->type != 'b' && (e->major || e->minor))
		return k_seterr("%s: damaged diff: entry %" PRIu64 " has a device number but is no device", name, n);
	if (e->major > 4095 || e->minor > 0xfffff)
		return k_seterr("%s: damaged diff: entry %" PRIu64 " has device number %" PRIu32 ":%" PRIu32
				" (out of range)", name, n, e->major, e->minor);
	if (pl == 0 || pl > FDIFF_PATH_MAX || nx > FDIFF_XATTRS_MAX)
		return k_seterr("%s: damaged diff: entry %" PRIu64 " has a path of %zu bytes and %u attributes",
				name, n, pl, nx);
	if (in->read(in->ctx, e->path, pl) < 0)
		return k_seterr("%s: damaged diff: cut short in entry %" PRIu64, name, n);
	e->path[pl] = 0;
	if (!fdiff_path_ok(e->path, pl))
		return k_seterr("%s: damaged diff: entry %" PRIu64 " has a bad path (empty component, '.',"
				" '..', NUL, or too long): %.100s", name, n, e->path);
	for (unsigned i = 0; i < nx; i++) {
		uint8_t xh[5];
		char xn[256];
		if (in->read(in->ctx, xh, sizeof(xh)) < 0)
			return k_seterr("%s: damaged diff: cut short in %s's attributes", name, e->path);
		size_t nl = xh[0];
		uint32_t vl = k_be32(xh + 1);
		if (nl == 0 || vl > FDIFF_XATTR_BYTES || e->xused + nl + 1 + vl > sizeof(e->xbuf))
			return k_seterr("%s: damaged diff: %s's attributes are too large or unnamed", name, e->path);
		if (in->read(in->ctx, xn, nl) < 0)
			return k_seterr("%s: damaged diff: cut short in %s's attributes", name, e->path);
		xn[nl] = 0;
		if (strlen(xn) != nl)
			return k_seterr("%s: damaged diff: an attribute name of %s holds a NUL", name, e->path);
		uint8_t *v = e->xbuf + e->xused + nl + 1;
		if (in->read(in->ctx, v, vl) < 0)
			return k_seterr("%s: damaged diff: cut short in %s's attributes", name, e->path);
		memcpy(e->xbuf + e->xused, xn, nl + 1);
		e->x[i].name = (const char *)e->xbuf + e->xused;
		e->x[i].value = v;
		e->x[i].len = vl;
		e->xused += nl + 1 + vl;
		e->nx = i + 1;
	}
	switch (e->type) {
	case 'f':
		in->left = e->datalen;
		break;
	case 'l':
	case 'h':
		if (e->datalen == 0 || e->datalen > FDIFF_PATH_MAX)
			return k_seterr("%s: damaged diff: %s's link target is %" PRIu64 " bytes", name, e->path,
					e->datalen);
		if (in->read(in->ctx, e->target, (size_t)e->datalen) < 0)
			return k_seterr("%s: damaged diff: cut short in %s's link target", name, e->path);
		e->target[e->datalen] = 0;
		if (strlen(e->target) != e->datalen)
			return k_seterr("%s: damaged diff: %s's link target holds a NUL", name, e->path);
		if (e->type == 'h' && !fdiff_path_ok(e->target, (size_t)e->datalen))
			return k_seterr("%s: damaged diff: hard link %s names a bad path", name, e->path);
		e->datalen = 0;
		break;
	default:
		if (e->datalen)
			return k_seterr("%s: damaged diff: %s has %" PRIu64 " bytes of data but is no file", name,
					e->path, e->datalen);
	}
	in->entries = n;
	return 1;
}

static int mem_read(void *ctx, void *buf, size_t n)
{
	struct fdmem *m = ctx;
	if (n > m->n - m->off)
		return k_seterr("end of data");
	memcpy(buf, m->p + m->off, n);
	m->off += n;
	return 0;
}

void fdin_mem(struct fdin *in, struct fdmem *m, const uint8_t *buf, size_t n, const char *name)
{
	*m = (struct fdmem){ buf, n, 0 };
	*in = (struct fdin){ mem_read, m, name, 0, 0 };
}

int fdiff_check_mem(const uint8_t *buf, size_t n, const char *name, uint64_t *entries)
{
	struct fdent *e = malloc(sizeof(*e));
	struct fdmem m;
	struct fdin in;
	int r;

	fdin_mem(&in, &m, buf, n, name);
	if (!e)
		return k_seterr("out of memory");
	while ((r = fdin_next(&in, e)) > 0)
		;
	free(e);
	if (r < 0)
		return -1;
	if (m.off != n)
		return k_seterr("%s: damaged diff: %zu bytes after its end mark", name, n - m.off);
	if (entries)
		*entries = in.entries;
	return 0;
}
