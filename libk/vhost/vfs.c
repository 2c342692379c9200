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

void vfs_request(struct vfs *f, int q, struct vu_chain *c)
{
	size_t inlen = c->in_len < MSG_MAX ? c->in_len : MSG_MAX;
	size_t outcap = c->out_len < MSG_MAX ? c->out_len : MSG_MAX;
	uint8_t *in = xmalloc(inlen), *out = xmalloc(outcap ? outcap : 1);

	vu_iov_to_buf(c->in, c->nin, 0, in, inlen);
	size_t n = fshare_request(f->share, in, inlen, out, outcap);
	if (n)
		n = vu_buf_to_iov(c->out, c->nout, 0, out, n);
	free(in);
	free(out);
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

int vfs_start(struct vfs *f, const char *path, const char *tag, struct fshare *share, struct pool *pool)
{
	memset(f, 0, sizeof(*f));
	f->share = share;
	f->pool = pool;
	snprintf(f->tag, sizeof(f->tag), "%s", tag);
	vu_init(&f->srv.dev, tag, &fs_ops, f);
	if (vu_listen(&f->srv, path) < 0 || vu_start(&f->srv) < 0) {
		vu_stop(&f->srv);
		vu_free(&f->srv.dev);
		return -1;
	}
	return 0;
}

void vfs_stop(struct vfs *f)
{
	vu_stop(&f->srv);
	pool_drain(f->pool);
	vu_free(&f->srv.dev);
}
