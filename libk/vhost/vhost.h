/* vhost: umlk as the guest's hardware, over vhost-user.
 *
 * The UML kernel's virtio_uml driver is a vhost-user front end: given
 * virtio_uml.device=SOCKET:ID it connects to SOCKET, hands over its memory
 * (one region: its physical-memory file) and the addresses of each
 * virtqueue, and from then on kicks an eventfd when it has put requests in
 * a queue and waits for the "call" descriptor (a pipe) to say some are
 * done.  This module is the back end: the protocol on the socket
 * (QEMU's docs/interop/vhost-user.rst), the guest's memory mapped here,
 * and split virtqueues (virtio 1.x section 2.7) walked into I/O vectors.
 * Devices (vblk.c, vfs.c, net/vnet.c) see only descriptor chains that
 * have already been checked against the guest's memory.
 *
 * Everything the guest hands over is hostile: message sizes, region
 * tables, ring addresses, indices, descriptor chains (loops, indirect
 * tables, lengths, addresses outside the memory it gave us).  A bad
 * message is answered with an error (REPLY_ACK) and otherwise ignored; a
 * bad ring marks that queue broken (logged once) and it is served no
 * more.  The connection itself is never closed while the guest runs:
 * UML panicked when its device went away (6.12, "Segfault with no mm").
 *
 * Not done: IOTLB, packed rings, postcopy, host notifiers, inflight
 * tracking, dirty logging.  Not offered, so never negotiated.  The
 * back-end request channel is offered and kept but not used: UML only
 * gets an interrupt number for its virtqueues when it is (without it,
 * the queues asked for IRQ 0, the timer's, and the probe failed: 6.12).
 */
#ifndef UMLK_VHOST_H
#define UMLK_VHOST_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

/* Messages (front end to back end) */
enum {
	VU_GET_FEATURES = 1, VU_SET_FEATURES = 2, VU_SET_OWNER = 3, VU_RESET_OWNER = 4,
	VU_SET_MEM_TABLE = 5, VU_SET_LOG_BASE = 6, VU_SET_LOG_FD = 7, VU_SET_VRING_NUM = 8,
	VU_SET_VRING_ADDR = 9, VU_SET_VRING_BASE = 10, VU_GET_VRING_BASE = 11,
	VU_SET_VRING_KICK = 12, VU_SET_VRING_CALL = 13, VU_SET_VRING_ERR = 14,
	VU_GET_PROTOCOL_FEATURES = 15, VU_SET_PROTOCOL_FEATURES = 16, VU_GET_QUEUE_NUM = 17,
	VU_SET_VRING_ENABLE = 18, VU_SEND_RARP = 19, VU_NET_SET_MTU = 20,
	VU_SET_BACKEND_REQ_FD = 21, VU_IOTLB_MSG = 22, VU_SET_VRING_ENDIAN = 23,
	VU_GET_CONFIG = 24, VU_SET_CONFIG = 25,
};

#define VU_HDR 12                       /* request, flags, size: u32 each */
#define VU_VERSION 1
#define VU_FLAG_REPLY (1u << 2)
#define VU_FLAG_NEED_REPLY (1u << 3)
#define VU_PAYLOAD_MAX 4096             /* larger messages are refused */
#define VU_MAX_FDS 8

/* Feature bits */
#define VU_F_PROTOCOL_FEATURES 30
#define VIRTIO_F_INDIRECT_DESC 28
#define VIRTIO_RING_F_EVENT_IDX 29
#define VIRTIO_F_VERSION_1 32
#define VU_PROTO_REPLY_ACK 3
#define VU_PROTO_BACKEND_REQ 5
#define VU_PROTO_CONFIG 9

#define VU_MAX_REGIONS 8
#define VU_MAX_QUEUES 4
#define VU_QUEUE_MAX 1024               /* ring entries, and entries of an indirect table */
#define VU_CHAIN_MAX 1024               /* I/O vectors in one chain */

/* Split ring layout (little-endian; x86 guests only, so native). */
struct vring_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags, next;
};
#define VRING_DESC_F_NEXT 1
#define VRING_DESC_F_WRITE 2
#define VRING_DESC_F_INDIRECT 4
#define VRING_AVAIL_F_NO_INTERRUPT 1

struct vu_region {
	uint64_t gpa, size, uva;        /* guest-physical and front-end addresses */
	uint8_t *host;                  /* where gpa lies here */
	void *map;                      /* the mmap, and its length */
	size_t maplen;
};

struct vu_queue {
	unsigned num;                   /* ring size; 0: not set up */
	uint64_t desc_uva, avail_uva, used_uva;
	struct vring_desc *desc;        /* into guest memory, after SET_VRING_ADDR */
	uint16_t *avail;                /* flags, idx, ring[num] */
	uint8_t *used;                  /* flags, idx, ring[num] of {u32 id, u32 len} */
	uint16_t last_avail, used_idx;
	int kick_fd, call_fd;           /* -1: none */
	int enabled, started, broken;
	unsigned inflight;              /* popped, not yet pushed */
	uint16_t unpublished;           /* used entries written after used_idx, not yet shown */
};

/* One request, as a device sees it: the buffers the guest wrote (in) and
 * the ones it wants filled (out), in order. */
struct vu_chain {
	uint16_t head;
	unsigned nin, nout;
	size_t in_len, out_len;
	struct iovec in[VU_CHAIN_MAX], out[VU_CHAIN_MAX];
};

struct vu_dev;
struct vu_job;
struct vu_ops {
	uint64_t features;              /* device feature bits offered */
	int nqueues;
	/* Fill LEN bytes of config space at OFF (zero what does not exist). */
	void (*get_config)(struct vu_dev *d, uint8_t *buf, uint32_t off, uint32_t len);
	/* Queue Q was kicked (or just started): pop and serve what it holds.
	 * Called on the device's own thread with d->lock not held. */
	void (*kick)(struct vu_dev *d, int q);
};

struct vu_dev {
	char name[64];                  /* for messages: "vda" */
	int sock;                       /* the connection; -1 before one */
	const struct vu_ops *ops;
	void *ctx;                      /* the device's own */
	uint64_t features, proto;       /* negotiated */
	int owner;
	int backend_fd;                 /* the channel to the front end (SET_BACKEND_REQ_FD), or -1 */
	pthread_mutex_t lock;           /* memory table, queues, used rings */
	int one_thread;                 /* served by one thread alone: the vq_ calls take no lock */
	pthread_cond_t idle;            /* signalled when inflight drops to 0 */
	int nregions;
	struct vu_region region[VU_MAX_REGIONS];
	struct vu_queue q[VU_MAX_QUEUES];
	unsigned long errors;           /* problems logged so far */
	long long last_log_ms;
	struct vu_job *spare;           /* jobs kept for reuse (d->lock) */
	unsigned nspare;
};

void vu_init(struct vu_dev *d, const char *name, const struct vu_ops *ops, void *ctx);
void vu_free(struct vu_dev *d);         /* unmaps memory, closes descriptors */

/* Handle one message (header fields, PAYLOAD of SIZE bytes, FDS passed
 * with it) and write the reply, if any, to REPLY (room for VU_HDR +
 * VU_PAYLOAD_MAX): its length, 0 when none.  Takes ownership of the fds.
 * Returns -1 with k_seterr() for a message refused (the reply, if one was
 * asked for, then says so).  Pure but for the fds and mmap: the fuzzer's
 * entry point. */
int vu_message(struct vu_dev *d, uint32_t req, uint32_t flags, const uint8_t *payload,
	       uint32_t size, int *fds, int nfds, uint8_t *reply, size_t *replylen);
/* Read one message from the socket and answer it.  1 handled, 0 the
 * front end closed or reset the connection (a kernel gone), -1 a broken
 * one (k_seterr). */
int vu_serve_one(struct vu_dev *d);

/* The guest-physical range [GPA, GPA+LEN) as a host pointer, or NULL when
 * it does not lie inside one region of the guest's memory. */
void *vu_gpa(struct vu_dev *d, uint64_t gpa, uint64_t len);

/* Take the next request from queue Q into C: 1 got one, 0 none waiting,
 * -1 the queue is broken (logged; it is served no more).  Takes d->lock. */
int vq_pop(struct vu_dev *d, int q, struct vu_chain *c);
/* Give request HEAD back with LEN bytes written into its buffers, and
 * wake the guest unless it asked not to be.  Takes d->lock. */
void vq_push(struct vu_dev *d, int q, uint16_t head, uint32_t len);
/* The same in two steps, for many requests and one wake-up: vq_put
 * writes the used entry, vq_publish shows all put so far to the guest and
 * wakes it once. */
void vq_put(struct vu_dev *d, int q, uint16_t head, uint32_t len);
void vq_publish(struct vu_dev *d, int q);
/* Give back the last N requests popped and not pushed, as if never
 * taken (a device that found too little room in them). */
void vq_rewind(struct vu_dev *d, int q, unsigned n);
/* Wait until no request of any queue is in flight (d->lock held). */
void vu_wait_idle(struct vu_dev *d);

/* Copy between a chain's vectors and a flat buffer: bytes copied. */
size_t vu_iov_to_buf(const struct iovec *iov, unsigned n, size_t skip, void *buf, size_t len);
size_t vu_buf_to_iov(const struct iovec *iov, unsigned n, size_t skip, const void *buf, size_t len);
/* Copy LEN bytes from one chain's vectors (past SSKIP) into another's (past
 * DSKIP), with no buffer between: bytes copied.  The two may overlap (a
 * guest chooses both), which only garbles its own bytes. */
size_t vu_iov_to_iov(const struct iovec *dst, unsigned nd, size_t dskip, const struct iovec *src,
		     unsigned ns, size_t sskip, size_t len);

/* Pop every request waiting in queue Q and hand each to SERVE on a
 * thread of POOL (which pushes it back when done): a device's kick.  A
 * lone request while the pool is idle is served on the calling thread. */
struct pool;
void vu_pop_to_pool(struct vu_dev *d, int q, struct pool *pool,
		    void (*serve)(struct vu_dev *d, int q, struct vu_chain *c));

/* Log a problem with the guest (at most once a second, and counted). */
void vu_log(struct vu_dev *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- a server: a listening socket, one front end, one thread */

struct vu_server {
	struct vu_dev dev;
	char path[108];
	int listen_fd, stop_fd[2];
	pthread_t thread;
	int running;
};
/* Listen on PATH (made here; removed once the front end connects, or on
 * stop) and serve one front end on a thread of its own until vu_stop. */
int vu_listen(struct vu_server *s, const char *path);
int vu_start(struct vu_server *s);
void vu_stop(struct vu_server *s);
/* Keep a started server's thread on host CPU CPU: 0 or an errno.  A lone
 * request is served on that thread, so the guest's kick and the reply's
 * wake-up then stay on one host CPU. */
int vu_keep_on_cpu(struct vu_server *s, int cpu);
/* A device's server in one step: vu_init, listen on PATH and start (-1
 * with k_seterr() and nothing left on failure); and stopped: no more
 * kicks, what POOL runs for it finished, freed. */
int vu_device_start(struct vu_server *s, const char *path, const char *name, const struct vu_ops *ops, void *ctx);
void vu_device_stop(struct vu_server *s, struct pool *pool);

#endif
