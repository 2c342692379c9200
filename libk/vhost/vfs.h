/* vfs: a virtio-fs device (virtio 1.2 section 5.11): a filesystem served
 * to the guest, FUSE requests carried over virtqueues (see share/fuse.h
 * and share/sftpfs.h for what is served and how it is confined).
 *
 * Queues: 0 is the "hiprio" queue (FORGET, INTERRUPT), 1 the one request
 * queue.  Requests run on a pool of worker threads. */
#ifndef UMLK_VFS_H
#define UMLK_VFS_H

#include "core/pool.h"
#include "share/fusewire.h"
#include "vhost/vhost.h"

#define VIRTIO_ID_FS 26

struct vfs_scratch;
struct vfs {
	struct vu_server srv;
	fuse_serve_fn *serve;
	void *fs;
	struct pool *pool;
	char tag[36];
	pthread_mutex_t lock;           /* spare */
	struct vfs_scratch *spare;      /* request buffers kept for reuse */
};

/* Listen on PATH and serve the filesystem FS (not taken over) with SERVE
 * under TAG (what the guest mounts: mount -t virtiofs TAG DIR). */
int vfs_start(struct vfs *f, const char *path, const char *tag, fuse_serve_fn *serve, void *fs,
	      struct pool *pool);
void vfs_stop(struct vfs *f);

/* One request of queue Q, for the fuzzer and tests. */
void vfs_request(struct vfs *f, int q, struct vu_chain *c);

#endif
