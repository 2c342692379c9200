/* pool: a fixed set of worker threads taking jobs from one queue.
 *
 * For work that must not wait behind other work: guest disk requests (one
 * slow read does not stall the others) and read-ahead.  Jobs run in the
 * order they were submitted, as many at once as there are threads.  The
 * queue is unbounded; callers bound what they submit (a virtqueue holds at
 * most its ring size of requests).  Not for ordered block pipelines: see
 * pipeline.h. */
#ifndef UMLK_POOL_H
#define UMLK_POOL_H

struct pool;

/* NTHREADS workers, named NAME in /proc (at most 15 bytes); NULL with
 * k_seterr() when a thread cannot be started. */
struct pool *pool_start(int nthreads, const char *name);
/* Run FN(ARG) on a worker. */
void pool_submit(struct pool *p, void (*fn)(void *arg), void *arg);
/* True when no job is queued or running. */
int pool_idle(struct pool *p);
/* Wait until every job submitted so far has finished. */
void pool_drain(struct pool *p);
/* Finish the queued jobs, then stop the threads and free the pool. */
void pool_stop(struct pool *p);

#endif
