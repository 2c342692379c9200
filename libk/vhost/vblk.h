/* vblk: a virtio-blk device (virtio 1.x section 5.2) over a block source,
 * served to the guest over vhost-user (see vhost.h).
 *
 * Requests: IN (read), OUT (write), FLUSH, GET_ID; anything else is
 * answered "unsupported".  A read-only source is offered as a read-only
 * disk, and a write to it is an I/O error.  Requests run on a pool of
 * worker threads, straight between the source and the guest's buffers, so
 * one slow read (a cloop block to inflate, a chunk to fetch) does
 * not hold up the others.  A source that fails gives the guest an I/O
 * error for that request and a line on stderr; the guest goes on.
 */
#ifndef UMLK_VBLK_H
#define UMLK_VBLK_H

#include <stdint.h>

#include "block/bsrc.h"
#include "core/pool.h"
#include "vhost/vhost.h"

#define VIRTIO_ID_BLOCK 2
#define VIRTIO_ID_NET 1

struct vblk {
	struct vu_server srv;
	struct bsrc *disk;
	struct pool *pool;
	char serial[21];
	uint64_t requests, errors;      /* counted atomically */
};

/* Listen on PATH and serve DISK (not taken over: the caller closes it
 * after vblk_stop) as a device named NAME ("vda"), on POOL's threads. */
int vblk_start(struct vblk *b, const char *path, const char *name, struct bsrc *disk,
	       struct pool *pool);
/* Finish what is in flight and stop serving. */
void vblk_stop(struct vblk *b);

/* One request, for the fuzzer and tests: serve chain C of queue Q. */
void vblk_request(struct vblk *b, int q, struct vu_chain *c);

#endif
