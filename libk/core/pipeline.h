/* pipeline: process a sequence of blocks on worker threads, in order.
 *
 * The calling thread does the I/O: it fills free slots in sequence
 * (pl_next_free + pl_submit), and takes finished ones back in the same
 * sequence (pl_next_done + pl_release).  Worker threads run WORK on each
 * submitted slot.  Memory stays bounded: DEPTH slots, each with an input
 * buffer of IN_CAP bytes and an output buffer of OUT_CAP bytes.
 */
#ifndef UMLK_PIPELINE_H
#define UMLK_PIPELINE_H

#include <stddef.h>
#include <stdint.h>

struct pl_slot {
	uint64_t index;         /* sequence number of the block */
	uint8_t *in, *out;
	size_t inlen, outlen;
	unsigned flags;         /* free for the work function's use */
	int err;                /* nonzero: failed, message in errmsg */
	char errmsg[200];
	void *aux;              /* per-slot extra buffer, owned by the caller */
	int state;
};

/* Runs on a worker thread; WORKER is 0..threads-1, for per-thread state. */
typedef void (*pl_work_fn)(void *ctx, int worker, struct pl_slot *slot);

struct pipeline;
struct pipeline *xpl_start(int threads, size_t in_cap, size_t out_cap,
			  pl_work_fn work, void *ctx);
int pl_depth(const struct pipeline *pl);
struct pl_slot *pl_slot_at(struct pipeline *pl, int i);
/* The next slot to fill, or NULL when all slots are in flight. */
struct pl_slot *pl_next_free(struct pipeline *pl);
void pl_submit(struct pipeline *pl, struct pl_slot *s);
/* The oldest submitted slot, waiting until it is done; NULL if none in flight. */
struct pl_slot *pl_next_done(struct pipeline *pl);
void pl_release(struct pipeline *pl, struct pl_slot *s);
void pl_stop(struct pipeline *pl);      /* joins workers, frees everything */

#endif
