/* Parallel cloop extraction: the calling thread reads compressed blocks and
 * writes results in order; workers inflate and find the zero pages, so the
 * output gets holes wherever the image has 4 KiB of zeros. */
#include "core/err.h"
#include "core/pipeline.h"
#include "core/progress.h"
#include "image/cloop.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PAGE 4096u

enum { ALL_ZERO = 1 };

struct xctx {
	const struct cloop *c;
	z_stream *zs;           /* one per worker */
	size_t page, npages;
	/* The compressed bytes of a block known to inflate to zeros: live
	 * images hold thousands of identical empty blocks, and comparing is
	 * much cheaper than inflating. */
	pthread_mutex_t zlock;
	uint8_t *zbuf;
	_Atomic size_t zlen;
};

static void inflate_block(void *arg, int w, struct pl_slot *s)
{
	struct xctx *x = arg;
	const struct cloop *c = x->c;
	size_t zl = atomic_load_explicit(&x->zlen, memory_order_acquire);

	if (zl && zl == s->inlen && !memcmp(x->zbuf, s->in, zl)) {
		s->flags = ALL_ZERO;
		return;
	}
	const char *e = cloop_decode(&x->zs[w], c->comp[s->index], s->in, s->inlen,
				     s->out, c->block_size);
	if (e) {
		s->err = 1;
		snprintf(s->errmsg, sizeof(s->errmsg), "block %" PRIu64 " (%zu bytes at offset %"
			 PRIu64 ") %s", s->index, s->inlen, c->ofs[s->index], e);
		return;
	}
	uint8_t *nonzero = s->aux;
	int any = 0;
	for (size_t p = 0; p < x->npages; p++) {
		size_t off = p * x->page;
		size_t n = c->block_size - off < x->page ? c->block_size - off : x->page;
		nonzero[p] = !k_iszero(s->out + off, n);
		any |= nonzero[p];
	}
	if (!any) {
		s->flags = ALL_ZERO;
		if (!atomic_load(&x->zlen)) {
			pthread_mutex_lock(&x->zlock);
			if (!atomic_load(&x->zlen)) {
				memcpy(x->zbuf, s->in, s->inlen);
				atomic_store_explicit(&x->zlen, s->inlen, memory_order_release);
			}
			pthread_mutex_unlock(&x->zlock);
		}
	}
}

/* Write the nonzero pages of a block; runs of them in one pwrite. */
static void xwrite_sparse(struct kout *o, const struct xctx *x, const struct pl_slot *s)
{
	const uint8_t *nonzero = s->aux;
	uint32_t bs = x->c->block_size;
	uint64_t base = s->index * (uint64_t)bs;

	for (size_t p = 0; p < x->npages;) {
		if (!nonzero[p]) {
			p++;
			continue;
		}
		size_t q = p;
		while (q < x->npages && nonzero[q])
			q++;
		size_t off = p * x->page, end = q * x->page;
		if (end > bs)
			end = bs;
		if (full_pwrite(o->fd, s->out + off, end - off, base + off) < 0)
			xdie("%s: write failed:", o->name);
		p = q;
	}
}

void xcloop_extract(struct cloop *c, struct kout *o, int threads)
{
	struct xctx x;
	const uint32_t bs = c->block_size;
	const int sparse = o->regular && o->seekable;

	if (cloop_check_supported(c) < 0)
		xdie("%s", k_errmsg());
	memset(&x, 0, sizeof(x));
	x.c = c;
	x.zs = xcalloc(threads, sizeof(*x.zs));
	x.page = bs < PAGE ? bs : PAGE;
	x.npages = (bs + x.page - 1) / x.page;
	x.zbuf = xmalloc(cloop_max_csize(bs));
	pthread_mutex_init(&x.zlock, NULL);

	struct pipeline *pl = xpl_start(threads, cloop_max_csize(bs), bs, inflate_block, &x);
	uint8_t *zeros = sparse ? NULL : xcalloc(1, bs);
	for (int i = 0; i < pl_depth(pl); i++)
		pl_slot_at(pl, i)->aux = xmalloc(x.npages);

	struct progress prog;
	uint64_t raw_total = (uint64_t)c->num_blocks * bs;
	prog_start(&prog, "extract-cloop", raw_total);

	uint32_t next_read = 0;
	for (uint32_t done = 0; done < c->num_blocks; done++) {
		struct pl_slot *s;
		while (next_read < c->num_blocks && (s = pl_next_free(pl))) {
			s->inlen = c->ofs[next_read + 1] - c->ofs[next_read];
			if (ksrc_read(c->src, s->in, s->inlen, c->ofs[next_read]) < 0)
				xdie("%s", k_errmsg());
			pl_submit(pl, s);
			next_read++;
		}
		s = pl_next_done(pl);
		if (s->err)
			xdie("%s: %s", c->src->name, s->errmsg);
		if (sparse) {
			if (!(s->flags & ALL_ZERO))
				xwrite_sparse(o, &x, s);
		} else if (full_write(o->fd, s->flags & ALL_ZERO ? zeros : s->out, bs) < 0) {
			xdie("%s: write failed:", o->name);
		}
		pl_release(pl, s);
		prog_update(&prog, (uint64_t)(done + 1) * bs);
	}
	prog_end(&prog);
	/* Trailing zero blocks leave the file short: extend it with a hole. */
	if (sparse && ftruncate(o->fd, raw_total) < 0)
		xdie("%s: cannot set size:", o->name);

	for (int i = 0; i < pl_depth(pl); i++)
		free(pl_slot_at(pl, i)->aux);
	pl_stop(pl);
	for (int i = 0; i < threads; i++)
		cloop_zfree(&x.zs[i]);
	free(x.zs);
	free(x.zbuf);
	free(zeros);
	pthread_mutex_destroy(&x.zlock);
}
