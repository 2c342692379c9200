#include "core/pipeline.h"
#include "core/err.h"
#include "core/xio.h"

#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

enum { FREE, QUEUED, RUNNING, DONE };

struct pipeline {
	pthread_mutex_t lock;
	pthread_cond_t work_cv, done_cv;
	struct pl_slot *slots;
	int depth, nthreads;
	uint64_t next_fill, next_take, next_work;
	int stopping;
	pl_work_fn work;
	void *ctx;
	pthread_t *threads;
	struct worker_arg { struct pipeline *pl; int id; } *args;
};

static void *worker(void *arg)
{
	struct worker_arg *wa = arg;
	struct pipeline *pl = wa->pl;

	pthread_mutex_lock(&pl->lock);
	for (;;) {
		while (!pl->stopping && pl->next_work == pl->next_fill)
			pthread_cond_wait(&pl->work_cv, &pl->lock);
		if (pl->stopping)
			break;
		struct pl_slot *s = &pl->slots[pl->next_work % pl->depth];
		pl->next_work++;
		s->state = RUNNING;
		pthread_mutex_unlock(&pl->lock);
		pl->work(pl->ctx, wa->id, s);
		pthread_mutex_lock(&pl->lock);
		s->state = DONE;
		pthread_cond_broadcast(&pl->done_cv);
	}
	pthread_mutex_unlock(&pl->lock);
	return NULL;
}

struct pipeline *xpl_start(int threads, size_t in_cap, size_t out_cap,
			  pl_work_fn work, void *ctx)
{
	struct pipeline *pl = xcalloc(1, sizeof(*pl));

	if (threads < 1)
		threads = 1;
	pl->nthreads = threads;
	pl->depth = threads * 3 + 2;    /* keeps workers fed while I/O waits */
	pl->work = work;
	pl->ctx = ctx;
	pl->slots = xcalloc(pl->depth, sizeof(*pl->slots));
	for (int i = 0; i < pl->depth; i++) {
		pl->slots[i].in = in_cap ? xmalloc(in_cap) : NULL;
		pl->slots[i].out = out_cap ? xmalloc(out_cap) : NULL;
	}
	pthread_mutex_init(&pl->lock, NULL);
	pthread_cond_init(&pl->work_cv, NULL);
	pthread_cond_init(&pl->done_cv, NULL);
	pl->threads = xcalloc(threads, sizeof(*pl->threads));
	pl->args = xcalloc(threads, sizeof(*pl->args));
	for (int i = 0; i < threads; i++) {
		pl->args[i].pl = pl;
		pl->args[i].id = i;
		/* musl's default thread stack is small; zlib wants more. */
		pthread_attr_t attr;
		pthread_attr_init(&attr);
		pthread_attr_setstacksize(&attr, 1 << 20);
		if (pthread_create(&pl->threads[i], &attr, worker, &pl->args[i]))
			xdie("cannot start worker threads");
		pthread_attr_destroy(&attr);
	}
	return pl;
}

int pl_depth(const struct pipeline *pl)
{
	return pl->depth;
}

struct pl_slot *pl_slot_at(struct pipeline *pl, int i)
{
	return &pl->slots[i];
}

struct pl_slot *pl_next_free(struct pipeline *pl)
{
	if (pl->next_fill - pl->next_take >= (uint64_t)pl->depth)
		return NULL;
	struct pl_slot *s = &pl->slots[pl->next_fill % pl->depth];
	s->index = pl->next_fill;
	s->err = 0;
	s->flags = 0;
	s->errmsg[0] = 0;
	return s;
}

void pl_submit(struct pipeline *pl, struct pl_slot *s)
{
	pthread_mutex_lock(&pl->lock);
	s->state = QUEUED;
	pl->next_fill++;
	pthread_cond_signal(&pl->work_cv);
	pthread_mutex_unlock(&pl->lock);
}

struct pl_slot *pl_next_done(struct pipeline *pl)
{
	if (pl->next_take == pl->next_fill)
		return NULL;
	struct pl_slot *s = &pl->slots[pl->next_take % pl->depth];
	pthread_mutex_lock(&pl->lock);
	while (s->state != DONE)
		pthread_cond_wait(&pl->done_cv, &pl->lock);
	pthread_mutex_unlock(&pl->lock);
	return s;
}

void pl_release(struct pipeline *pl, struct pl_slot *s)
{
	s->state = FREE;
	pl->next_take++;
}

void pl_stop(struct pipeline *pl)
{
	pthread_mutex_lock(&pl->lock);
	/* Let queued work finish first: a worker may be using a slot. */
	while (pl->next_work != pl->next_fill)
		pthread_cond_wait(&pl->done_cv, &pl->lock);
	for (uint64_t i = pl->next_take; i < pl->next_fill; i++)
		while (pl->slots[i % pl->depth].state != DONE)
			pthread_cond_wait(&pl->done_cv, &pl->lock);
	pl->stopping = 1;
	pthread_cond_broadcast(&pl->work_cv);
	pthread_mutex_unlock(&pl->lock);
	for (int i = 0; i < pl->nthreads; i++)
		pthread_join(pl->threads[i], NULL);
	for (int i = 0; i < pl->depth; i++) {
		free(pl->slots[i].in);
		free(pl->slots[i].out);
	}
	free(pl->slots);
	free(pl->threads);
	free(pl->args);
	pthread_mutex_destroy(&pl->lock);
	pthread_cond_destroy(&pl->work_cv);
	pthread_cond_destroy(&pl->done_cv);
	free(pl);
}
