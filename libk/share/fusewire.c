#include "share/fusewire.h"
#include "core/bytes.h"

#include <errno.h>
#include <limits.h>
#include <string.h>

int fw_parse(struct fuse_req *r, void *ctx, const uint8_t *in, size_t inlen, const struct iovec *data,
	     unsigned ndata, size_t datalen, uint8_t *out, size_t outcap)
{
	memset(r, 0, sizeof(*r));
	r->ctx = ctx;
	r->out = out;
	r->cap = outcap;
	r->len = FUSE_HDR_OUT;
	r->data = data;
	r->ndata = ndata;
	r->datalen = datalen;
	if (inlen < FUSE_HDR_IN)
		return -1;
	r->op = k_le32(in + 4);
	r->unique = k_le64(in + 8);
	r->nodeid = k_le64(in + 16);
	/* FORGET is answered with nothing, and the guest gives no room
	 * for an answer: refusing it for want of room would keep every
	 * node (and --home DIR's descriptor for it) the guest ever saw. */
	int silent = fw_unanswered(r->op);
	if (outcap < FUSE_HDR_OUT && !silent)
		return -1;
	uint32_t len = k_le32(in);
	if (len < FUSE_HDR_IN)
		return silent ? -1 : 1;
	r->arg = in + FUSE_HDR_IN;
	r->arglen = (len < inlen ? len : inlen) - FUSE_HDR_IN;
	return 0;
}

size_t fw_reply(struct fuse_req *r, int err)
{
	if (err > 0)
		err = -err;
	if (err < -4095)
		err = -EIO;             /* never a value the guest's kernel takes for a pointer */
	if (err) {
		r->len = FUSE_HDR_OUT;
		r->extra = 0;
	}
	k_put_le32(r->out, (uint32_t)(r->len + r->extra));
	k_put_le32(r->out + 4, (uint32_t)err);
	k_put_le64(r->out + 8, r->unique);
	return r->len + r->extra;       /* the data in place counts too */
}

uint8_t *fw_room(struct fuse_req *r, size_t n)
{
	if (r->cap - r->len < n)
		return NULL;
	uint8_t *p = r->out + r->len;
	memset(p, 0, n);
	r->len += n;
	return p;
}

void fw_put_attr(uint8_t *p, uint64_t id, const struct stat *st)
{
	k_put_le64(p, id);
	k_put_le64(p + 8, (uint64_t)st->st_size);
	k_put_le64(p + 16, (uint64_t)st->st_blocks);
	k_put_le64(p + 24, (uint64_t)st->st_atim.tv_sec);
	k_put_le64(p + 32, (uint64_t)st->st_mtim.tv_sec);
	k_put_le64(p + 40, (uint64_t)st->st_ctim.tv_sec);
	k_put_le32(p + 48, (uint32_t)st->st_atim.tv_nsec);
	k_put_le32(p + 52, (uint32_t)st->st_mtim.tv_nsec);
	k_put_le32(p + 56, (uint32_t)st->st_ctim.tv_nsec);
	k_put_le32(p + 60, st->st_mode);
	k_put_le32(p + 64, (uint32_t)st->st_nlink);
	k_put_le32(p + 68, st->st_uid);
	k_put_le32(p + 72, st->st_gid);
	k_put_le32(p + 76, (uint32_t)st->st_rdev);
	k_put_le32(p + 80, (uint32_t)st->st_blksize);
}

void fw_put_entry(const struct fuse_req *r, uint8_t *p, uint64_t id, const struct stat *st)
{
	k_put_le64(p, id);
	k_put_le64(p + 8, 0);                   /* generation */
	k_put_le64(p + 16, r->valid_secs);
	k_put_le64(p + 24, r->valid_secs);
	fw_put_attr(p + 40, id, st);
}

size_t fw_reply_entry(struct fuse_req *r, uint64_t id, const struct stat *st)
{
	uint8_t *p = fw_room(r, ENTRY_OUT);
	if (!p)
		return fw_reply(r, EINVAL);
	fw_put_entry(r, p, id, st);
	return fw_reply(r, 0);
}

size_t fw_reply_missing(struct fuse_req *r, int e)
{
	if (e != ENOENT || !r->valid_secs)
		return fw_reply(r, e);
	uint8_t *p = fw_room(r, ENTRY_OUT);
	if (!p)
		return fw_reply(r, e);
	k_put_le64(p + 16, 1);                  /* node 0: a second, however long names live */
	return fw_reply(r, 0);
}

uint32_t fw_suidgid_bits(uint32_t mode)
{
	if ((mode & S_IFMT) != S_IFREG)
		return 0;
	return mode & (S_ISUID | ((mode & S_IXGRP) ? S_ISGID : 0));
}

size_t fw_reply_attr(struct fuse_req *r, uint64_t id, const struct stat *st)
{
	uint8_t *p = fw_room(r, 16 + ATTR_OUT);
	if (!p)
		return fw_reply(r, EINVAL);
	k_put_le64(p, r->valid_secs);
	fw_put_attr(p + 16, id, st);
	return fw_reply(r, 0);
}

const char *fw_name_at(const struct fuse_req *r, size_t off, size_t *end)
{
	if (off >= r->arglen)
		return NULL;
	const char *p = (const char *)r->arg + off;
	size_t n = strnlen(p, r->arglen - off);
	if (n == r->arglen - off || n == 0 || n > NAME_MAX || memchr(p, '/', n) ||
	    !strcmp(p, ".") || !strcmp(p, ".."))
		return NULL;
	if (end)
		*end = off + n + 1;
	return p;
}

size_t fw_init(struct fuse_req *r, uint32_t want, uint32_t max_write)
{
	if (r->arglen < 16)
		return fw_reply(r, EINVAL);
	uint32_t major = k_le32(r->arg), minor = k_le32(r->arg + 4), ra = k_le32(r->arg + 8);
	uint32_t flags = k_le32(r->arg + 12);
	if (major != 7)
		return fw_reply(r, EPROTO);
	uint8_t *p = fw_room(r, 64);
	if (!p)
		return fw_reply(r, EINVAL);
	k_put_le32(p, 7);
	k_put_le32(p + 4, minor < 31 ? minor : 31);
	k_put_le32(p + 8, ra);
	k_put_le32(p + 12, flags & want);
	k_put_le16(p + 16, 16);                 /* max_background */
	k_put_le16(p + 18, 12);                 /* congestion_threshold */
	k_put_le32(p + 20, max_write);
	k_put_le32(p + 24, 1);                  /* time_gran: nanoseconds */
	k_put_le16(p + 28, (uint16_t)(max_write / 4096));       /* max_pages */
	return fw_reply(r, 0);
}

size_t fw_reply_statfs(struct fuse_req *r, uint64_t blocks, uint64_t bfree, uint64_t bavail, uint64_t files,
		       uint64_t ffree, uint32_t bsize, uint32_t namelen, uint32_t frsize)
{
	uint8_t *p = fw_room(r, 80);
	if (!p)
		return fw_reply(r, EINVAL);
	k_put_le64(p, blocks);
	k_put_le64(p + 8, bfree);
	k_put_le64(p + 16, bavail);
	k_put_le64(p + 24, files);
	k_put_le64(p + 32, ffree);
	k_put_le32(p + 40, bsize);
	k_put_le32(p + 44, namelen);
	k_put_le32(p + 48, frsize);
	return fw_reply(r, 0);
}

void fw_forget(struct fuse_req *r, void (*fn)(void *ctx, uint64_t node, uint64_t count))
{
	if (r->arglen < 8)
		return;
	if (r->op == OP_FORGET) {
		fn(r->ctx, r->nodeid, k_le64(r->arg));
		return;
	}
	uint32_t count = k_le32(r->arg);
	for (uint32_t i = 0; i < count && 8 + 16 * (size_t)i + 16 <= r->arglen; i++) {
		const uint8_t *e = r->arg + 8 + 16 * (size_t)i;
		fn(r->ctx, k_le64(e), k_le64(e + 8));
	}
}

size_t fw_dirent_size(int plus, size_t namelen)
{
	return ((plus ? ENTRY_OUT : 0) + 24 + namelen + 7) & ~(size_t)7;
}

void fw_put_dirent(uint8_t *p, uint64_t ino, uint64_t next, const char *name, size_t namelen, unsigned type)
{
	k_put_le64(p, ino);
	k_put_le64(p + 8, next);
	k_put_le32(p + 16, (uint32_t)namelen);
	k_put_le32(p + 20, type);
	memcpy(p + 24, name, namelen);
}
