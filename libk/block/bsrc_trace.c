/* The recorder: a source over another that notes which chunks reads
 * touch, in the order first touched (bsrc.h). */
#include "block/bsrc.h"
#include "core/xio.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct tsrc {
	struct bsrc b;
	uint32_t chunk;
	pthread_mutex_t lock;
	uint8_t *seen;
	uint32_t *list, n, room;
};

static int trace_read(struct bsrc *s, void *buf, size_t n, uint64_t off)
{
	struct tsrc *t = (struct tsrc *)s;
	pthread_mutex_lock(&t->lock);
	for (uint64_t c = off / t->chunk; c <= (off + n - 1) / t->chunk; c++) {
		if (t->seen[c])
			continue;
		t->seen[c] = 1;
		if (t->n == t->room)
			t->list = xrealloc(t->list, (t->room = t->room ? t->room * 2 : 256) * sizeof(*t->list));
		t->list[t->n++] = (uint32_t)c;
	}
	pthread_mutex_unlock(&t->lock);
	return bsrc_read(t->b.lower, buf, n, off);
}

static void trace_close(struct bsrc *s)
{
	struct tsrc *t = (struct tsrc *)s;
	bsrc_close(t->b.lower);
	free(t->seen);
	free(t->list);
	pthread_mutex_destroy(&t->lock);
	free(t);
}

static const struct bsrc_ops trace_ops = { "trace", trace_read, NULL, NULL, trace_close };

struct bsrc *bsrc_trace(struct bsrc *s, uint32_t chunk)
{
	struct tsrc *t = xcalloc(1, sizeof(*t));
	t->b.ops = &trace_ops;
	snprintf(t->b.name, sizeof(t->b.name), "%s", s->name);
	t->b.size = s->size;
	t->b.readonly = 1;
	t->b.lower = s;
	t->chunk = chunk;
	t->seen = xcalloc((size_t)(s->size / chunk + 1), 1);
	pthread_mutex_init(&t->lock, NULL);
	return &t->b;
}

uint32_t *bsrc_trace_list(struct bsrc *s, uint32_t *n)
{
	struct tsrc *t = (struct tsrc *)s;
	pthread_mutex_lock(&t->lock);
	uint32_t *l = xmalloc((size_t)t->n * sizeof(*l) + 1);
	memcpy(l, t->list, (size_t)t->n * sizeof(*l));
	*n = t->n;
	pthread_mutex_unlock(&t->lock);
	return l;
}
