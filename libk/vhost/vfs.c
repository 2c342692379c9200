#include "vhost/vfs.h"
#include "core/bytes.h"
#include "core/err.h"
#include "core/xio.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The largest request or reply handled whole: a WRITE or READ of
 * FUSE_MAX_WRITE bytes, its header and arguments. */
#define MSG_MAX (FUSE_MAX_WRITE + 4096)

static void get_config(struct vu_dev *d, uint8_t *buf, uint32_t off, uint32_t len)
{
	struct vfs *f = d->ctx;
	uint8_t cfg[40];

	memset(cfg, 0, sizeof(cfg));
	memcpy(cfg, f->tag, strnlen(f->tag, sizeof(f->tag)));
	k_put_le32(cfg + 36, 1);                        /* one request queue */
	if (off < sizeof(cfg))
		memcpy(buf, cfg + off, len < sizeof(cfg) - off ? len : sizeof(cfg) - off);
}

#define RW_ARGS (FUSE_HDR_IN + 40)      /* the header and fuse_read_in/fuse_write_in */

/* What one request needs besides the guest's buffers.  musl maps and
 * unmaps a block this size at each malloc and free (and an unmapping
 * flushes the TLB of every CPU the process ran on), so these are kept:
 * one per request served at once. */
struct vfs_scratch {
	struct iovec v[VU_CHAIN_MAX];
	uint8_t *in, *out;              /* grown to what a request needed, up to MSG_MAX */
	size_t incap, outcap;
	struct vfs_scratch *next;
};

static struct vfs_scratch *scratch_get(struct vfs *f)
{
	pthread_mutex_lock(&f->lock);
	struct vfs_scratch *s = f->spare;
	if (s)
		f->spare = s->next;
	pthread_mutex_unlock(&f->lock);
	return s ? s : xcalloc(1, sizeof(*s));
}

static void scratch_put(struct vfs *f, struct vfs_scratch *s)
{
	pthread_mutex_lock(&f->lock);
	s->next = f->spare;
	f->spare = s;
	pthread_mutex_unlock(&f->lock);
}

/* *BUF with room for at least N bytes (and 1), kept in *CAP. */
static uint8_t *room(uint8_t **buf, size_t *cap, size_t n)
{
	if (!n)
		n = 1;
	if (*cap < n) {
		free(*buf);
		*buf = xmalloc(n);
		*cap = n;
	}
	return *buf;
}

void vfs_request(struct vfs *f, int q, struct vu_chain *c)
{
	uint8_t head[RW_ARGS];
	size_t got = vu_iov_to_buf(c->in, c->nin, 0, head, sizeof(head));
	uint32_t op = got >= 8 ? k_le32(head + 4) : 0;
	size_t n;
	struct vfs_scratch *s = scratch_get(f);

	if ((op == OP_READ || op == OP_WRITE) && got == RW_ARGS && c->out_len >= FUSE_HDR_OUT + 8) {
		/* The data moves between the file and the guest's buffers
		 * with no copy here. */
		struct iovec *v = s->v;
		uint8_t reply[FUSE_HDR_OUT + 8];
		size_t len = op == OP_READ ? c->out_len - FUSE_HDR_OUT : c->in_len - RW_ARGS;
		uint32_t size = k_le32(head + 40 + 16);         /* what the request asks */
		if (size < len)
			len = size;
		unsigned nv = op == OP_READ ? k_iov_slice(c->out, c->nout, FUSE_HDR_OUT, len, v)
					    : k_iov_slice(c->in, c->nin, RW_ARGS, len, v);
		n = f->serve(f->fs, head, RW_ARGS, v, nv, len, reply, sizeof(reply));
		scratch_put(f, s);
		/* A READ's data is in place already: only its header is copied. */
		size_t hdr = op == OP_READ ? FUSE_HDR_OUT : sizeof(reply);
		if (n < hdr)
			hdr = n;
		vu_buf_to_iov(c->out, c->nout, 0, reply, hdr);
		vq_push(&f->srv.dev, q, c->head, (uint32_t)n);
		return;
	}
	size_t inlen = c->in_len < MSG_MAX ? c->in_len : MSG_MAX;
	size_t outcap = c->out_len < MSG_MAX ? c->out_len : MSG_MAX;
	uint8_t *in = room(&s->in, &s->incap, inlen), *out = room(&s->out, &s->outcap, outcap);

	vu_iov_to_buf(c->in, c->nin, 0, in, inlen);
	n = f->serve(f->fs, in, inlen, NULL, 0, 0, out, outcap);
	if (n)
		n = vu_buf_to_iov(c->out, c->nout, 0, out, n);
	scratch_put(f, s);
	vq_push(&f->srv.dev, q, c->head, (uint32_t)n);
}

static void serve(struct vu_dev *d, int q, struct vu_chain *c)
{
	vfs_request(d->ctx, q, c);
}

static void kick(struct vu_dev *d, int q)
{
	vu_pop_to_pool(d, q, ((struct vfs *)d->ctx)->pool, serve);
}

static const struct vu_ops fs_ops = {
	.features = 0,
	.nqueues = 2,
	.get_config = get_config,
	.kick = kick,
};

int vfs_start(struct vfs *f, const char *path, const char *tag, fuse_serve_fn *serve, void *fs,
	      struct pool *pool)
{
	memset(f, 0, sizeof(*f));
	f->serve = serve;
	f->fs = fs;
	f->pool = pool;
	snprintf(f->tag, sizeof(f->tag), "%s", tag);
	pthread_mutex_init(&f->lock, NULL);
	if (vu_device_start(&f->srv, path, tag, &fs_ops, f) < 0) {
		pthread_mutex_destroy(&f->lock);
		return -1;
	}
	return 0;
}

void vfs_stop(struct vfs *f)
{
	vu_device_stop(&f->srv, f->pool);
	while (f->spare) {
		struct vfs_scratch *s = f->spare;
		f->spare = s->next;
		free(s->in);
		free(s->out);
		free(s);
	}
	pthread_mutex_destroy(&f->lock);
}
