/* A cloop image read as a disk: each block is inflated when first read,
 * and kept in a bounded cache (least recently used goes first).  Several
 * threads may want the same block: the first inflates it, the others wait
 * for it.  Two reads of consecutive blocks in a row start read-ahead: the
 * next blocks are inflated on helper threads before they are asked for. */
#include "block/bsrc.h"
#include "core/err.h"
#include "core/pool.h"
#include "core/xio.h"
#include "image/cloop.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

enum { LOADING, READY, FAILED };
#define READAHEAD 8                     /* blocks */

struct centry {
	uint32_t block;
	int state, refs;
	uint8_t *data;                  /* a slot of the arena, or (heap) its own */
	int heap;
	struct centry *prev, *next;     /* LRU list, most recent first */
	struct centry *hnext;           /* hash chain */
	char err[240];
};

struct csrc {
	struct bsrc b;
	struct ksrc k;
	struct cloop c;
	pthread_mutex_t lock;
	pthread_cond_t done;
	struct centry **hash;
	size_t hsize, n, max;
	struct centry lru;              /* sentinel */
	z_stream **zfree;               /* inflaters not in use */
	int nzfree, zcap;
	struct pool *ra;
	uint32_t last;                  /* the block read last */
	int run;                        /* consecutive blocks read in a row */
	unsigned ra_pending;
	/* The blocks' memory: one mapping of max blocks, its pages touched
	 * as slots are first used, handed from block to block after that,
	 * and unmapped at once at the end.  A block of its own from the heap
	 * for each past max (every entry in use) or when there is no arena. */
	uint8_t *arena;
	size_t arena_len, next_slot, nfree;
	uint32_t *free_slots;
};

struct prefetch {
	struct csrc *s;
	struct centry *e;
};

static struct centry *find(struct csrc *s, uint32_t block)
{
	for (struct centry *e = s->hash[block % s->hsize]; e; e = e->hnext)
		if (e->block == block)
			return e;
	return NULL;
}

static void lru_unlink(struct centry *e)
{
	e->prev->next = e->next;
	e->next->prev = e->prev;
}

static void lru_front(struct csrc *s, struct centry *e)
{
	e->next = s->lru.next;
	e->prev = &s->lru;
	s->lru.next->prev = e;
	s->lru.next = e;
}

static void drop(struct csrc *s, struct centry *e)
{
	struct centry **pp = &s->hash[e->block % s->hsize];

	while (*pp != e)
		pp = &(*pp)->hnext;
	*pp = e->hnext;
	lru_unlink(e);
	s->n--;
	if (e->heap)
		free(e->data);
	else
		s->free_slots[s->nfree++] = (uint32_t)((size_t)(e->data - s->arena) / s->c.block_size);
	free(e);
}

/* A new LOADING entry for BLOCK with one reference (lock held): the
 * oldest unused entries go to make room. */
static struct centry *add(struct csrc *s, uint32_t block)
{
	for (struct centry *e = s->lru.prev; s->n >= s->max && e != &s->lru;) {
		struct centry *older = e->prev;
		if (!e->refs && e->state != LOADING)
			drop(s, e);
		e = older;
	}
	struct centry *e = xcalloc(1, sizeof(*e));
	e->block = block;
	e->state = LOADING;
	e->refs = 1;
	if (s->nfree)
		e->data = s->arena + (size_t)s->free_slots[--s->nfree] * s->c.block_size;
	else if (s->arena && s->next_slot < s->max)
		e->data = s->arena + s->next_slot++ * s->c.block_size;
	else {
		e->data = xmalloc(s->c.block_size);
		e->heap = 1;
	}
	e->hnext = s->hash[block % s->hsize];
	s->hash[block % s->hsize] = e;
	lru_front(s, e);
	s->n++;
	return e;
}

static z_stream *take_z(struct csrc *s)
{
	z_stream *z = NULL;

	pthread_mutex_lock(&s->lock);
	if (s->nzfree)
		z = s->zfree[--s->nzfree];
	pthread_mutex_unlock(&s->lock);
	return z ? z : xcalloc(1, sizeof(*z));
}

static void give_z(struct csrc *s, z_stream *z)
{
	pthread_mutex_lock(&s->lock);
	if (s->nzfree == s->zcap) {
		s->zcap = s->zcap ? 2 * s->zcap : 8;
		s->zfree = xrealloc(s->zfree, (size_t)s->zcap * sizeof(*s->zfree));
	}
	s->zfree[s->nzfree++] = z;
	pthread_mutex_unlock(&s->lock);
}

/* Inflate E's block (no lock held), then publish it. */
static void load(struct csrc *s, struct centry *e)
{
	uint64_t from = s->c.ofs[e->block], len = s->c.ofs[e->block + 1] - from;
	uint8_t *in = xmalloc(len ? len : 1);
	const char *why = NULL;
	char msg[sizeof(e->err)];

	if (ksrc_read(&s->k, in, len, from) < 0) {
		snprintf(msg, sizeof(msg), "%s", k_errmsg());
		why = msg;
	} else {
		z_stream *z = take_z(s);
		why = cloop_decode(z, s->c.comp[e->block], in, len, e->data, s->c.block_size);
		give_z(s, z);
		if (why) {
			snprintf(msg, sizeof(msg), "%.150s: block %" PRIu32 ": %.60s", s->b.name, e->block, why);
			why = msg;
		}
	}
	free(in);
	pthread_mutex_lock(&s->lock);
	e->state = why ? FAILED : READY;
	if (why)
		snprintf(e->err, sizeof(e->err), "%s", why);
	pthread_cond_broadcast(&s->done);
	pthread_mutex_unlock(&s->lock);
}

static void release(struct csrc *s, struct centry *e)
{
	pthread_mutex_lock(&s->lock);
	if (--e->refs == 0 && e->state == FAILED)
		drop(s, e);             /* so that a later read tries again */
	pthread_mutex_unlock(&s->lock);
}

static void prefetch_job(void *arg)
{
	struct prefetch *p = arg;

	load(p->s, p->e);
	release(p->s, p->e);
	pthread_mutex_lock(&p->s->lock);
	p->s->ra_pending--;
	pthread_mutex_unlock(&p->s->lock);
	free(p);
}

/* Read-ahead after BLOCK, when the reads go in sequence (lock held). */
static void read_ahead(struct csrc *s, uint32_t block)
{
	if (block == s->last + 1)
		s->run++;
	else if (block != s->last)
		s->run = 0;
	s->last = block;
	if (!s->ra || s->run < 2)
		return;
	for (uint32_t b = block + 1; b <= block + READAHEAD && b < s->c.num_blocks; b++) {
		if (s->ra_pending >= READAHEAD || s->n + 1 >= s->max)
			break;
		if (find(s, b))
			continue;
		struct prefetch *p = xmalloc(sizeof(*p));
		p->s = s;
		p->e = add(s, b);
		s->ra_pending++;
		pool_submit(s->ra, prefetch_job, p);
	}
}

/* BLOCK, inflated, with a reference held; NULL with k_seterr(). */
static struct centry *get(struct csrc *s, uint32_t block)
{
	pthread_mutex_lock(&s->lock);
	read_ahead(s, block);
	struct centry *e = find(s, block);
	if (e) {
		e->refs++;
		lru_unlink(e);
		lru_front(s, e);
		while (e->state == LOADING)
			pthread_cond_wait(&s->done, &s->lock);
		pthread_mutex_unlock(&s->lock);
	} else {
		e = add(s, block);
		pthread_mutex_unlock(&s->lock);
		load(s, e);
	}
	if (e->state == FAILED) {
		k_seterr("%s", e->err);
		release(s, e);
		return NULL;
	}
	return e;
}

static int cloop_read(struct bsrc *b, void *buf, size_t n, uint64_t off)
{
	struct csrc *s = (struct csrc *)b;
	uint32_t bs = s->c.block_size;

	while (n) {
		uint32_t block = (uint32_t)(off / bs), within = (uint32_t)(off % bs);
		size_t k = bs - within < n ? bs - within : n;
		struct centry *e = get(s, block);
		if (!e)
			return -1;
		memcpy(buf, e->data + within, k);
		release(s, e);
		buf = (uint8_t *)buf + k;
		off += k;
		n -= k;
	}
	return 0;
}

static void cloop_src_close(struct bsrc *b)
{
	struct csrc *s = (struct csrc *)b;

	pool_stop(s->ra);               /* read-ahead finishes first */
	while (s->lru.next != &s->lru)
		drop(s, s->lru.next);
	free(s->hash);
	if (s->arena)
		munmap(s->arena, s->arena_len);
	free(s->free_slots);
	for (int i = 0; i < s->nzfree; i++) {
		cloop_zfree(s->zfree[i]);
		free(s->zfree[i]);
	}
	free(s->zfree);
	cloop_close(&s->c);
	pthread_mutex_destroy(&s->lock);
	pthread_cond_destroy(&s->done);
	bsrc_close(s->b.lower);
	free(s);
}

static const struct bsrc_ops cloop_ops = { "cloop", cloop_read, NULL, NULL, cloop_src_close };

struct bsrc *bsrc_cloop(struct bsrc *lower, uint64_t cache_bytes, int threads)
{
	struct csrc *s = xcalloc(1, sizeof(*s));

	bsrc_ksrc(&s->k, lower);
	if (cloop_open(&s->c, &s->k) < 0 || cloop_check_supported(&s->c) < 0) {
		free(s);
		return NULL;
	}
	s->b.ops = &cloop_ops;
	snprintf(s->b.name, sizeof(s->b.name), "%s", lower->name);
	s->b.size = (uint64_t)s->c.num_blocks * s->c.block_size;
	s->b.readonly = 1;
	s->b.lower = lower;
	s->max = (size_t)(cache_bytes / s->c.block_size);
	if (s->max < 4 + READAHEAD)
		s->max = 4 + READAHEAD;
	s->hsize = s->max * 2 + 1;
	s->hash = xcalloc(s->hsize, sizeof(*s->hash));
	s->free_slots = xcalloc(s->max, sizeof(*s->free_slots));
	s->arena_len = s->max * s->c.block_size;
	s->arena = mmap(NULL, s->arena_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
			-1, 0);
	if (s->arena == MAP_FAILED)
		s->arena = NULL;        /* (each block from the heap, as it comes) */
	s->lru.next = s->lru.prev = &s->lru;
	s->last = UINT32_MAX - 1;
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->done, NULL);
	if (threads > 0 && !(s->ra = pool_start(threads, "umlk-inflate"))) {
		cloop_src_close(&s->b);
		return NULL;
	}
	return &s->b;
}
