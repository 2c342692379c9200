#include "vhost/vhost.h"
#include "core/bytes.h"
#include "core/err.h"
#include "core/pool.h"
#include "core/sys.h"
#include "core/xio.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/epoll.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* A request on its way to a thread of the pool. */
struct vu_job {
	struct vu_dev *d;
	int q;
	void (*serve)(struct vu_dev *d, int q, struct vu_chain *c);
	struct vu_job *next;            /* on d->spare */
	struct vu_chain c;
};

/* ---- the device and its memory */

void vu_init(struct vu_dev *d, const char *name, const struct vu_ops *ops, void *ctx)
{
	memset(d, 0, sizeof(*d));
	snprintf(d->name, sizeof(d->name), "%s", name);
	d->sock = -1;
	d->backend_fd = -1;
	d->ops = ops;
	d->ctx = ctx;
	pthread_mutex_init(&d->lock, NULL);
	pthread_cond_init(&d->idle, NULL);
	for (int i = 0; i < VU_MAX_QUEUES; i++)
		d->q[i].kick_fd = d->q[i].call_fd = -1;
}

static void unmap_all(struct vu_dev *d)
{
	for (int i = 0; i < d->nregions; i++)
		munmap(d->region[i].map, d->region[i].maplen);
	d->nregions = 0;
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

void vu_free(struct vu_dev *d)
{
	unmap_all(d);
	for (int i = 0; i < VU_MAX_QUEUES; i++) {
		close_fd(&d->q[i].kick_fd);
		close_fd(&d->q[i].call_fd);
	}
	close_fd(&d->sock);
	close_fd(&d->backend_fd);
	while (d->spare) {
		struct vu_job *j = d->spare;
		d->spare = j->next;
		free(j);
	}
	d->nspare = 0;
	pthread_mutex_destroy(&d->lock);
	pthread_cond_destroy(&d->idle);
}

void vu_log(struct vu_dev *d, const char *fmt, ...)
{
	long long now = k_now_ms();
	char msg[400];
	va_list ap;

	/* Called from any thread: the counters are atomic, the limit loose. */
	unsigned long n = __atomic_add_fetch(&d->errors, 1, __ATOMIC_RELAXED);
	if (n > 1 && now - __atomic_load_n(&d->last_log_ms, __ATOMIC_RELAXED) < 1000)
		return;
	__atomic_store_n(&d->last_log_ms, now, __ATOMIC_RELAXED);
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	k_warn("%s: %s", d->name, msg);
}

/* [ADDR, ADDR+LEN) in one region, by guest-physical (USE_UVA 0) or
 * front-end (1) address. */
static void *translate(struct vu_dev *d, uint64_t addr, uint64_t len, int use_uva)
{
	for (int i = 0; i < d->nregions; i++) {
		const struct vu_region *r = &d->region[i];
		uint64_t base = use_uva ? r->uva : r->gpa;
		if (addr < base || addr - base >= r->size)
			continue;
		uint64_t off = addr - base;
		if (len > r->size - off)
			return NULL;            /* runs off the end of its region */
		return r->host + off;
	}
	return NULL;
}

void *vu_gpa(struct vu_dev *d, uint64_t gpa, uint64_t len)
{
	return translate(d, gpa, len, 0);
}

/* The requests in flight of every queue: waits for 0 (d->lock held). */
void vu_wait_idle(struct vu_dev *d)
{
	for (;;) {
		unsigned n = 0;
		for (int i = 0; i < VU_MAX_QUEUES; i++)
			n += d->q[i].inflight;
		if (!n)
			return;
		pthread_cond_wait(&d->idle, &d->lock);
	}
}

/* ---- rings */

static size_t avail_bytes(unsigned num) { return 4 + 2 * (size_t)num + 2; }
static size_t used_bytes(unsigned num) { return 4 + 8 * (size_t)num + 2; }

/* Find the rings of Q in the current memory table; -1 when they are not
 * (all) in it or misaligned. */
static int map_rings(struct vu_dev *d, struct vu_queue *q)
{
	q->desc = NULL;
	q->avail = NULL;
	q->used = NULL;
	if (!q->num || !q->desc_uva)
		return 0;
	if (q->desc_uva % 16 || q->avail_uva % 2 || q->used_uva % 4)
		return k_seterr("ring addresses are not aligned");
	void *desc = translate(d, q->desc_uva, 16 * (uint64_t)q->num, 1);
	void *avail = translate(d, q->avail_uva, avail_bytes(q->num), 1);
	void *used = translate(d, q->used_uva, used_bytes(q->num), 1);
	if (!desc || !avail || !used)
		return k_seterr("a ring lies outside the guest's memory");
	q->desc = desc;
	q->avail = avail;
	q->used = used;
	return 0;
}

static void broken(struct vu_dev *d, struct vu_queue *q, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void broken(struct vu_dev *d, struct vu_queue *q, const char *fmt, ...)
{
	char msg[300];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	q->broken = 1;
	vu_log(d, "queue %d is broken, not served any more: %s", (int)(q - d->q), msg);
}

/* Add the guest buffer [ADDR, ADDR+LEN) to the chain, as several vectors
 * if it spans regions.  -1 with k_seterr() when it is not guest memory or
 * the chain is too long. */
static int add_buffer(struct vu_dev *d, struct vu_chain *c, uint64_t addr, uint32_t len, int writable)
{
	while (len) {
		uint8_t *p = NULL;
		uint64_t piece = 0;
		for (int i = 0; i < d->nregions; i++) {
			const struct vu_region *r = &d->region[i];
			if (addr >= r->gpa && addr - r->gpa < r->size) {
				uint64_t off = addr - r->gpa;
				p = r->host + off;
				piece = r->size - off < len ? r->size - off : len;
				break;
			}
		}
		if (!p)
			return k_seterr("a buffer at guest address 0x%llx (%u bytes) is outside the guest's memory",
					(unsigned long long)addr, len);
		unsigned *n = writable ? &c->nout : &c->nin;
		if (*n >= VU_CHAIN_MAX)
			return k_seterr("more than %d buffers in one request", VU_CHAIN_MAX);
		struct iovec *v = writable ? &c->out[*n] : &c->in[*n];
		v->iov_base = p;
		v->iov_len = (size_t)piece;
		(*n)++;
		if (writable)
			c->out_len += (size_t)piece;
		else
			c->in_len += (size_t)piece;
		addr += piece;
		len -= (uint32_t)piece;
	}
	return 0;
}

/* Walk the chain at HEAD into C; -1 with k_seterr() when it is malformed. */
static int walk_chain(struct vu_dev *d, struct vu_queue *q, uint16_t head, struct vu_chain *c)
{
	const struct vring_desc *table = q->desc;
	unsigned n = q->num, i = head, count = 0;
	int indirect = 0;

	c->head = head;
	c->nin = c->nout = 0;
	c->in_len = c->out_len = 0;
	for (;;) {
		struct vring_desc dsc;
		/* One copy, then only the copy is believed: the guest may
		 * change the table under us. */
		memcpy(&dsc, (const uint8_t *)table + 16 * (size_t)i, sizeof(dsc));
		if (dsc.flags & VRING_DESC_F_INDIRECT) {
			if (indirect)
				return k_seterr("an indirect table inside an indirect table");
			if (dsc.flags & VRING_DESC_F_NEXT)
				return k_seterr("an indirect descriptor with a next one");
			if (!dsc.len || dsc.len % 16 || dsc.len / 16 > VU_QUEUE_MAX)
				return k_seterr("an indirect table of %u bytes", dsc.len);
			table = vu_gpa(d, dsc.addr, dsc.len);
			if (!table)
				return k_seterr("an indirect table outside the guest's memory");
			n = dsc.len / 16;
			i = 0;
			count = 0;
			indirect = 1;
			continue;
		}
		if (++count > n)
			return k_seterr("the descriptors form a loop");
		int writable = (dsc.flags & VRING_DESC_F_WRITE) != 0;
		if (!writable && c->nout)
			return k_seterr("a buffer to read after one to write");
		if (add_buffer(d, c, dsc.addr, dsc.len, writable) < 0)
			return -1;
		if (!(dsc.flags & VRING_DESC_F_NEXT))
			return 0;
		if (dsc.next >= n)
			return k_seterr("descriptor %u points past the table (%u)", dsc.next, n);
		i = dsc.next;
	}
}

/* The guest and we said when to wake each other (VIRTIO_RING_F_EVENT_IDX). */
static int event_idx(const struct vu_dev *d)
{
	return (d->features >> VIRTIO_RING_F_EVENT_IDX) & 1;
}

static int queue_live(const struct vu_queue *q)
{
	return q->num && q->desc && q->started && q->enabled && !q->broken;
}

/* The queue calls' lock: none when one thread does all (umlswitch: a
 * lock and an unlock per 4 KiB receive buffer were 16% of its samples in
 * a transfer between two guests). */
static void qlock(struct vu_dev *d)
{
	if (!d->one_thread)
		pthread_mutex_lock(&d->lock);
}

static void qunlock(struct vu_dev *d)
{
	if (!d->one_thread)
		pthread_mutex_unlock(&d->lock);
}

int vq_pop(struct vu_dev *d, int qi, struct vu_chain *c)
{
	struct vu_queue *q = &d->q[qi];

	qlock(d);
	for (;;) {
		if (!queue_live(q)) {
			qunlock(d);
			return q->broken ? -1 : 0;
		}
		uint16_t idx = __atomic_load_n(&q->avail[1], __ATOMIC_ACQUIRE);
		uint16_t pending = (uint16_t)(idx - q->last_avail);
		if (!pending && event_idx(d)) {
			/* Kick me when the next one comes (avail_event, after the
			 * used ring), then look once more: one may have come
			 * before the guest could see that. */
			__atomic_store_n((uint16_t *)(q->used + 4 + 8 * (size_t)q->num), q->last_avail, __ATOMIC_RELAXED);
			__atomic_thread_fence(__ATOMIC_SEQ_CST);
			idx = __atomic_load_n(&q->avail[1], __ATOMIC_ACQUIRE);
			pending = (uint16_t)(idx - q->last_avail);
		}
		if (!pending) {
			qunlock(d);
			return 0;
		}
		if (pending > q->num) {
			broken(d, q, "%u requests waiting in a ring of %u", pending, q->num);
			continue;
		}
		uint16_t head = __atomic_load_n(&q->avail[2 + q->last_avail % q->num], __ATOMIC_RELAXED);
		if (head >= q->num) {
			broken(d, q, "request %u starts at descriptor %u of %u", q->last_avail, head, q->num);
			continue;
		}
		q->last_avail++;
		q->inflight++;
		if (walk_chain(d, q, head, c) == 0) {
			qunlock(d);
			return 1;
		}
		/* A malformed request: give it back untouched, go on. */
		vu_log(d, "queue %d: request refused: %s", qi, k_errmsg());
		qunlock(d);
		vq_push(d, qi, head, 0);
		qlock(d);
	}
}

/* Write one used entry, not yet visible to the guest (d->lock held). */
static void put_locked(struct vu_dev *d, struct vu_queue *q, uint16_t head, uint32_t len)
{
	(void)d;
	if (q->inflight)
		q->inflight--;
	if (q->num && q->used && !q->broken) {
		uint8_t *e = q->used + 4 + 8 * (size_t)((uint16_t)(q->used_idx + q->unpublished) % q->num);
		uint32_t id = head;
		__atomic_store_n((uint32_t *)e, id, __ATOMIC_RELAXED);
		__atomic_store_n((uint32_t *)(e + 4), len, __ATOMIC_RELAXED);
		q->unpublished++;
	}
}

/* Make the entries written visible and wake the guest unless it asked
 * not to be (d->lock held). */
static void publish_locked(struct vu_dev *d, int qi)
{
	struct vu_queue *q = &d->q[qi];
	static const uint64_t one = 1;

	if (q->unpublished && q->num && q->used && !q->broken) {
		uint16_t old = q->used_idx;
		q->used_idx = (uint16_t)(q->used_idx + q->unpublished);
		__atomic_store_n((uint16_t *)(q->used + 2), q->used_idx, __ATOMIC_RELEASE);
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
		int wake;
		if (event_idx(d)) {
			/* The guest says after which entry it wants a wake-up
			 * (used_event, after the avail ring): only when this
			 * publication crosses it. */
			uint16_t ev = __atomic_load_n(&q->avail[2 + q->num], __ATOMIC_RELAXED);
			wake = (uint16_t)(q->used_idx - ev - 1) < (uint16_t)(q->used_idx - old);
		} else {
			wake = !(__atomic_load_n(&q->avail[0], __ATOMIC_RELAXED) & VRING_AVAIL_F_NO_INTERRUPT);
		}
		if (wake && q->call_fd >= 0) {
			/* A full pipe means a wake-up is already waiting. */
			if (write(q->call_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
				vu_log(d, "cannot wake the guest (queue %d):", qi);
		}
	}
	q->unpublished = 0;
	int idle = 1;
	for (int i = 0; i < VU_MAX_QUEUES; i++)
		idle &= d->q[i].inflight == 0;
	if (idle)
		pthread_cond_broadcast(&d->idle);
}

void vq_push(struct vu_dev *d, int qi, uint16_t head, uint32_t len)
{
	qlock(d);
	put_locked(d, &d->q[qi], head, len);
	publish_locked(d, qi);
	qunlock(d);
}

void vq_put(struct vu_dev *d, int qi, uint16_t head, uint32_t len)
{
	qlock(d);
	put_locked(d, &d->q[qi], head, len);
	qunlock(d);
}

void vq_publish(struct vu_dev *d, int qi)
{
	qlock(d);
	publish_locked(d, qi);
	qunlock(d);
}

void vq_rewind(struct vu_dev *d, int qi, unsigned n)
{
	struct vu_queue *q = &d->q[qi];

	qlock(d);
	if (n > q->inflight)
		n = q->inflight;
	q->last_avail = (uint16_t)(q->last_avail - n);
	q->inflight -= n;
	qunlock(d);
}

/* Copy LEN bytes between the vectors (past SKIP bytes) and BUF, in the
 * direction TO_IOV says: bytes copied. */
static size_t iov_copy(const struct iovec *iov, unsigned n, size_t skip, uint8_t *buf, size_t len,
		       int to_iov)
{
	size_t done = 0;

	for (unsigned i = 0; i < n && done < len; i++) {
		size_t l = iov[i].iov_len;
		if (skip >= l) {
			skip -= l;
			continue;
		}
		size_t k = l - skip < len - done ? l - skip : len - done;
		uint8_t *v = (uint8_t *)iov[i].iov_base + skip;
		if (to_iov)
			memcpy(v, buf + done, k);
		else
			memcpy(buf + done, v, k);
		done += k;
		skip = 0;
	}
	return done;
}

size_t vu_iov_to_buf(const struct iovec *iov, unsigned n, size_t skip, void *buf, size_t len)
{
	return iov_copy(iov, n, skip, buf, len, 0);
}

size_t vu_buf_to_iov(const struct iovec *iov, unsigned n, size_t skip, const void *buf, size_t len)
{
	return iov_copy(iov, n, skip, (uint8_t *)buf, len, 1);
}

size_t vu_iov_to_iov(const struct iovec *dst, unsigned nd, size_t dskip, const struct iovec *src,
		     unsigned ns, size_t sskip, size_t len)
{
	unsigned i = 0, j = 0;
	size_t done = 0;

	while (i < nd && dskip >= dst[i].iov_len)
		dskip -= dst[i++].iov_len;
	while (j < ns && sskip >= src[j].iov_len)
		sskip -= src[j++].iov_len;
	while (done < len && i < nd && j < ns) {
		size_t k = len - done, a = dst[i].iov_len - dskip, b = src[j].iov_len - sskip;
		if (a < k)
			k = a;
		if (b < k)
			k = b;
		memmove((uint8_t *)dst[i].iov_base + dskip, (const uint8_t *)src[j].iov_base + sskip, k);
		done += k;
		dskip += k;
		sskip += k;
		if (dskip == dst[i].iov_len) {
			i++;
			dskip = 0;
		}
		if (sskip == src[j].iov_len) {
			j++;
			sskip = 0;
		}
	}
	return done;
}

/* ---- serving queues on a pool of threads */

/* A job is 32 KiB (its chain's vectors): musl's allocator maps and unmaps
 * blocks that size at every malloc and free, and each unmapping stops
 * every CPU the process ran on to flush its TLB.  A random 4 KiB read
 * paid for that twice, so jobs are kept for reuse: at most as many as
 * were ever in flight at once, up to SPARE_MAX. */
#define SPARE_MAX 64

static struct vu_job *job_get(struct vu_dev *d)
{
	pthread_mutex_lock(&d->lock);
	struct vu_job *j = d->spare;
	if (j) {
		d->spare = j->next;
		d->nspare--;
	}
	pthread_mutex_unlock(&d->lock);
	return j ? j : xmalloc(sizeof(*j));
}

static void job_put(struct vu_dev *d, struct vu_job *j)
{
	pthread_mutex_lock(&d->lock);
	if (d->nspare < SPARE_MAX) {
		j->next = d->spare;
		d->spare = j;
		d->nspare++;
		j = NULL;
	}
	pthread_mutex_unlock(&d->lock);
	free(j);
}

static void run_job(void *arg)
{
	struct vu_job *j = arg;

	j->serve(j->d, j->q, &j->c);
	job_put(j->d, j);
}

void vu_pop_to_pool(struct vu_dev *d, int q, struct pool *pool,
		    void (*serve)(struct vu_dev *d, int q, struct vu_chain *c))
{
	struct vu_job *held = NULL;

	for (;;) {
		struct vu_job *j = job_get(d);
		j->d = d;
		j->q = q;
		j->serve = serve;
		if (vq_pop(d, q, &j->c) <= 0) {
			job_put(d, j);
			break;
		}
		/* The first request waits to see whether another comes with it:
		 * a lone one is served here, saving two thread switches per
		 * request when the guest has one at a time in flight. */
		if (!held) {
			held = j;
			continue;
		}
		pool_submit(pool, run_job, held);
		held = j;
	}
	if (held && pool_idle(pool))
		run_job(held);
	else if (held)
		pool_submit(pool, run_job, held);
}

/* ---- messages */

static uint64_t offered_features(const struct vu_dev *d)
{
	return d->ops->features | 1ULL << VIRTIO_F_VERSION_1 | 1ULL << VIRTIO_F_INDIRECT_DESC |
	       1ULL << VIRTIO_RING_F_EVENT_IDX | 1ULL << VU_F_PROTOCOL_FEATURES;
}

/* The channel to the front end (BACKEND_REQ) is offered though nothing
 * is sent on it: UML's front end in 6.12 (bench/kernel-6.12) allocates a
 * device's interrupt line only with it; without, it asks for line 0, the
 * timer's, and the disk never comes (7.2's front end reads the channel at
 * every interrupt, which costs too little to measure). */
static const uint64_t offered_proto = 1ULL << VU_PROTO_REPLY_ACK | 1ULL << VU_PROTO_CONFIG |
				      1ULL << VU_PROTO_BACKEND_REQ;

static size_t reply_u64(uint8_t *reply, uint32_t req, uint64_t v)
{
	k_put_le32(reply, req);
	k_put_le32(reply + 4, VU_VERSION | VU_FLAG_REPLY);
	k_put_le32(reply + 8, 8);
	k_put_le64(reply + VU_HDR, v);
	return VU_HDR + 8;
}

/* The queue named by a message, or NULL with k_seterr(). */
static struct vu_queue *queue_of(struct vu_dev *d, uint32_t index)
{
	if (index >= (uint32_t)d->ops->nqueues)
		return k_seterr("queue %u: this device has %d", index, d->ops->nqueues), NULL;
	return &d->q[index];
}

static int set_mem_table(struct vu_dev *d, const uint8_t *p, uint32_t size, int *fds, int nfds)
{
	if (size < 8)
		return k_seterr("SET_MEM_TABLE: %u bytes", size);
	uint32_t n = k_le32(p);
	if (n == 0 || n > VU_MAX_REGIONS || size < 8 + 32 * n)
		return k_seterr("SET_MEM_TABLE: %u regions in %u bytes", n, size);
	if ((uint32_t)nfds != n)
		return k_seterr("SET_MEM_TABLE: %u regions but %d descriptors", n, nfds);
	struct vu_region r[VU_MAX_REGIONS];
	int mapped = 0;
	for (uint32_t i = 0; i < n; i++) {
		const uint8_t *e = p + 8 + 32 * i;
		uint64_t gpa = k_le64(e), len = k_le64(e + 8), uva = k_le64(e + 16), off = k_le64(e + 24);
		struct stat st;
		if (!len || len > SIZE_MAX / 2 || gpa + len < gpa || uva + len < uva || off + len < off) {
			k_seterr("SET_MEM_TABLE: region %u: impossible size or address", i);
			goto fail;
		}
		/* Never map past the end of the file: a touch there is SIGBUS. */
		if (fstat(fds[i], &st) < 0 || (uint64_t)st.st_size < off + len) {
			k_seterr("SET_MEM_TABLE: region %u: the descriptor holds less than offset %llu + %llu bytes",
				 i, (unsigned long long)off, (unsigned long long)len);
			goto fail;
		}
		uint64_t pg = off & ~(uint64_t)4095;
		size_t maplen = (size_t)(len + (off - pg));
		void *m = mmap(NULL, maplen, PROT_READ | PROT_WRITE, MAP_SHARED, fds[i], (off_t)pg);
		if (m == MAP_FAILED) {
			k_seterr("SET_MEM_TABLE: region %u: mmap of %zu bytes:", i, maplen);
			goto fail;
		}
		r[i] = (struct vu_region){ gpa, len, uva, (uint8_t *)m + (off - pg), m, maplen };
		mapped++;
	}
	vu_wait_idle(d);
	unmap_all(d);
	memcpy(d->region, r, sizeof(r[0]) * n);
	d->nregions = (int)n;
	for (int i = 0; i < VU_MAX_QUEUES; i++)
		if (map_rings(d, &d->q[i]) < 0)
			broken(d, &d->q[i], "after a new memory table: %s", k_errmsg());
	for (int i = 0; i < nfds; i++)
		close(fds[i]);
	return 0;
fail:
	for (int i = 0; i < mapped; i++)
		munmap(r[i].map, r[i].maplen);
	return -1;
}

/* The descriptor of a SET_VRING_KICK/CALL/ERR, its queue, or -1 with
 * k_seterr().  FD is -1 for "no descriptor" (bit 8), and must be. */
static int vring_fd(struct vu_dev *d, const uint8_t *p, uint32_t size, int *fds, int nfds,
		    struct vu_queue **q, int *fd)
{
	if (size != 8)
		return k_seterr("a ring descriptor message of %u bytes", size);
	uint64_t v = k_le64(p);
	int nofd = (v & 0x100) != 0;
	if ((*q = queue_of(d, (uint32_t)(v & 0xff))) == NULL)
		return -1;
	if (nofd != (nfds == 0) || nfds > 1)
		return k_seterr("ring descriptor: %d descriptors passed, flag says %s", nfds,
				nofd ? "none" : "one");
	*fd = nofd ? -1 : fds[0];
	if (*fd >= 0) {
		int fl = fcntl(*fd, F_GETFL);
		if (fl < 0 || fcntl(*fd, F_SETFL, fl | O_NONBLOCK) < 0)
			return k_seterr("ring descriptor:");
	}
	return 0;
}

/* One handler per message, in the table below: the message's payload P
 * of SIZE bytes and the descriptors passed with it (FDS, *NFDS; a handler
 * that keeps them sets *NFDS to 0, the rest are closed after it), the
 * reply written to REPLY (its length in *REPLYLEN).  Called with d->lock
 * held; -1 with k_seterr() refuses the message. */
struct vu_msg {
	uint32_t req;
	const uint8_t *p;
	uint32_t size;
	int *fds, nfds;
	uint8_t *reply;
	size_t replylen;
};
typedef int vu_handler(struct vu_dev *d, struct vu_msg *m);

static int on_get_features(struct vu_dev *d, struct vu_msg *m)
{
	m->replylen = reply_u64(m->reply, m->req, offered_features(d));
	return 0;
}

static int on_set_features(struct vu_dev *d, struct vu_msg *m)
{
	if (m->size != 8)
		return k_seterr("SET_FEATURES: %u bytes", m->size);
	uint64_t v = k_le64(m->p);
	if (v & ~offered_features(d))
		return k_seterr("SET_FEATURES: bits 0x%llx were not offered",
				(unsigned long long)(v & ~offered_features(d)));
	d->features = v;
	return 0;
}

static int on_get_protocol_features(struct vu_dev *d, struct vu_msg *m)
{
	(void)d;
	m->replylen = reply_u64(m->reply, m->req, offered_proto);
	return 0;
}

static int on_set_protocol_features(struct vu_dev *d, struct vu_msg *m)
{
	if (m->size != 8 || (k_le64(m->p) & ~offered_proto))
		return k_seterr("SET_PROTOCOL_FEATURES: not what was offered");
	d->proto = k_le64(m->p);
	return 0;
}

static int on_set_owner(struct vu_dev *d, struct vu_msg *m)
{
	(void)m;
	d->owner = 1;
	return 0;
}

/* Messages taken and ignored: RESET_OWNER, SET_CONFIG (nothing in our
 * config space is writable), SET_LOG_FD (not offered; its fd is closed). */
static int on_ignored(struct vu_dev *d, struct vu_msg *m)
{
	(void)d;
	(void)m;
	return 0;
}

static int on_get_queue_num(struct vu_dev *d, struct vu_msg *m)
{
	m->replylen = reply_u64(m->reply, m->req, (uint64_t)d->ops->nqueues);
	return 0;
}

static int on_set_mem_table(struct vu_dev *d, struct vu_msg *m)
{
	if (set_mem_table(d, m->p, m->size, m->fds, m->nfds) < 0)
		return -1;
	m->nfds = 0;                    /* taken: closed after mapping */
	return 0;
}

/* The queue a ring message (of exactly SIZE bytes) names, or NULL with
 * k_seterr() naming the message WHAT. */
static struct vu_queue *ring_queue(struct vu_dev *d, const struct vu_msg *m, uint32_t size, const char *what)
{
	if (m->size != size)
		return k_seterr("%s: %u bytes", what, m->size), NULL;
	return queue_of(d, k_le32(m->p));
}

static int on_set_vring_num(struct vu_dev *d, struct vu_msg *m)
{
	struct vu_queue *q = ring_queue(d, m, 8, "SET_VRING_NUM");
	if (!q)
		return -1;
	uint64_t v = k_le32(m->p + 4);
	if (!v || v > VU_QUEUE_MAX || (v & (v - 1)))
		return k_seterr("SET_VRING_NUM: %llu entries", (unsigned long long)v);
	vu_wait_idle(d);
	q->num = (unsigned)v;
	q->broken = 0;
	return map_rings(d, q);
}

static int on_set_vring_addr(struct vu_dev *d, struct vu_msg *m)
{
	struct vu_queue *q = ring_queue(d, m, 40, "SET_VRING_ADDR");
	if (!q)
		return -1;
	vu_wait_idle(d);
	q->desc_uva = k_le64(m->p + 8);
	q->used_uva = k_le64(m->p + 16);
	q->avail_uva = k_le64(m->p + 24);
	q->broken = 0;
	if (map_rings(d, q) < 0) {
		q->desc_uva = 0;
		return k_seterr("SET_VRING_ADDR: %s", k_errmsg());
	}
	return 0;
}

static int on_set_vring_base(struct vu_dev *d, struct vu_msg *m)
{
	struct vu_queue *q = ring_queue(d, m, 8, "SET_VRING_BASE");
	if (!q)
		return -1;
	vu_wait_idle(d);
	q->last_avail = q->used_idx = (uint16_t)k_le32(m->p + 4);
	q->unpublished = 0;
	return 0;
}

static int on_get_vring_base(struct vu_dev *d, struct vu_msg *m)
{
	struct vu_queue *q = ring_queue(d, m, 8, "GET_VRING_BASE");
	if (!q)
		return -1;
	vu_wait_idle(d);
	q->started = q->enabled = 0;    /* the ring stops */
	close_fd(&q->kick_fd);
	k_put_le32(m->reply, m->req);
	k_put_le32(m->reply + 4, VU_VERSION | VU_FLAG_REPLY);
	k_put_le32(m->reply + 8, 8);
	k_put_le32(m->reply + VU_HDR, k_le32(m->p));
	k_put_le32(m->reply + VU_HDR + 4, q->last_avail);
	m->replylen = VU_HDR + 8;
	return 0;
}

/* A ring's descriptor message: its queue and descriptor, taken from M. */
static int take_ring_fd(struct vu_dev *d, struct vu_msg *m, struct vu_queue **q, int *fd)
{
	if (vring_fd(d, m->p, m->size, m->fds, m->nfds, q, fd) < 0)
		return -1;
	m->nfds = 0;
	return 0;
}

static int on_set_vring_kick(struct vu_dev *d, struct vu_msg *m)
{
	struct vu_queue *q;
	int fd;
	if (take_ring_fd(d, m, &q, &fd) < 0)
		return -1;
	close_fd(&q->kick_fd);
	q->kick_fd = fd;
	q->started = 1;
	/* Without protocol features a ring is enabled when started; with
	 * them, SET_VRING_ENABLE says. */
	if (!(d->features & 1ULL << VU_F_PROTOCOL_FEATURES))
		q->enabled = 1;
	return 0;
}

static int on_set_vring_call(struct vu_dev *d, struct vu_msg *m)
{
	struct vu_queue *q;
	int fd;
	if (take_ring_fd(d, m, &q, &fd) < 0)
		return -1;
	close_fd(&q->call_fd);
	q->call_fd = fd;
	return 0;
}

static int on_set_vring_err(struct vu_dev *d, struct vu_msg *m)
{
	struct vu_queue *q;
	int fd;
	if (take_ring_fd(d, m, &q, &fd) < 0)
		return -1;
	close_fd(&fd);                  /* errors are not reported this way */
	return 0;
}

static int on_set_vring_enable(struct vu_dev *d, struct vu_msg *m)
{
	struct vu_queue *q = ring_queue(d, m, 8, "SET_VRING_ENABLE");
	if (!q)
		return -1;
	q->enabled = k_le32(m->p + 4) != 0;
	return 0;
}

static int on_get_config(struct vu_dev *d, struct vu_msg *m)
{
	if (m->size < 12 || m->size > VU_PAYLOAD_MAX)
		return k_seterr("GET_CONFIG: %u bytes", m->size);
	uint32_t off = k_le32(m->p), len = k_le32(m->p + 4);
	if (len > 256 || off > 256 || off + len > 256 || m->size != 12 + len)
		return k_seterr("GET_CONFIG: %u bytes at %u in a message of %u", len, off, m->size);
	k_put_le32(m->reply, m->req);
	k_put_le32(m->reply + 4, VU_VERSION | VU_FLAG_REPLY);
	k_put_le32(m->reply + 8, m->size);
	memcpy(m->reply + VU_HDR, m->p, 12);
	memset(m->reply + VU_HDR + 12, 0, len);
	if (d->ops->get_config)
		d->ops->get_config(d, m->reply + VU_HDR + 12, off, len);
	m->replylen = VU_HDR + m->size;
	return 0;
}

static int on_set_backend_req_fd(struct vu_dev *d, struct vu_msg *m)
{
	if (m->nfds != 1)
		return k_seterr("SET_BACKEND_REQ_FD with %d descriptors", m->nfds);
	close_fd(&d->backend_fd);
	d->backend_fd = m->fds[0];
	m->nfds = 0;
	return 0;
}

/* The messages served: what is not here is refused ("unknown message"). */
static vu_handler *const handlers[] = {
	[VU_GET_FEATURES] = on_get_features,
	[VU_SET_FEATURES] = on_set_features,
	[VU_SET_OWNER] = on_set_owner,
	[VU_RESET_OWNER] = on_ignored,
	[VU_SET_MEM_TABLE] = on_set_mem_table,
	[VU_SET_LOG_FD] = on_ignored,
	[VU_SET_VRING_NUM] = on_set_vring_num,
	[VU_SET_VRING_ADDR] = on_set_vring_addr,
	[VU_SET_VRING_BASE] = on_set_vring_base,
	[VU_GET_VRING_BASE] = on_get_vring_base,
	[VU_SET_VRING_KICK] = on_set_vring_kick,
	[VU_SET_VRING_CALL] = on_set_vring_call,
	[VU_SET_VRING_ERR] = on_set_vring_err,
	[VU_GET_PROTOCOL_FEATURES] = on_get_protocol_features,
	[VU_SET_PROTOCOL_FEATURES] = on_set_protocol_features,
	[VU_GET_QUEUE_NUM] = on_get_queue_num,
	[VU_SET_VRING_ENABLE] = on_set_vring_enable,
	[VU_SET_BACKEND_REQ_FD] = on_set_backend_req_fd,
	[VU_GET_CONFIG] = on_get_config,
	[VU_SET_CONFIG] = on_ignored,
};

int vu_message(struct vu_dev *d, uint32_t req, uint32_t flags, const uint8_t *p, uint32_t size,
	       int *fds, int nfds, uint8_t *reply, size_t *replylen)
{
	struct vu_msg m = { .req = req, .p = p, .size = size, .fds = fds, .nfds = nfds, .reply = reply };
	vu_handler *h = req < sizeof(handlers) / sizeof(handlers[0]) ? handlers[req] : NULL;
	int r;

	if ((flags & 3) != VU_VERSION) {
		r = k_seterr("message %u: version %u, not %u", req, flags & 3, VU_VERSION);
	} else if (!h) {
		r = k_seterr("unknown message %u", req);
	} else {
		pthread_mutex_lock(&d->lock);
		r = h(d, &m);
		pthread_mutex_unlock(&d->lock);
	}
	for (int i = 0; i < m.nfds; i++)
		close(fds[i]);
	/* REPLY_ACK: a message that has no reply of its own gets a status. */
	if (!m.replylen && (flags & VU_FLAG_NEED_REPLY) && (d->proto & 1ULL << VU_PROTO_REPLY_ACK))
		m.replylen = reply_u64(reply, req, r < 0 ? 1 : 0);
	*replylen = m.replylen;
	return r;
}

int vu_serve_one(struct vu_dev *d)
{
	uint8_t hdr[VU_HDR], payload[VU_PAYLOAD_MAX], reply[VU_HDR + VU_PAYLOAD_MAX];
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(VU_MAX_FDS * sizeof(int))];
	} cm;
	struct iovec iov = { hdr, sizeof(hdr) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm.buf,
			     .msg_controllen = sizeof(cm.buf) };
	int fds[VU_MAX_FDS], nfds = 0;

	ssize_t n = recvmsg(d->sock, &mh, MSG_CMSG_CLOEXEC | MSG_WAITALL);
	if (n < 0 && errno == EINTR)
		return 1;
	/* (A kernel that exits with a message of ours unread resets the
	 * connection: gone, as at its end of file.) */
	if (n == 0 || (n < 0 && errno == ECONNRESET))
		return 0;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < k; i++) {
			int fd;
			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
			if (nfds < VU_MAX_FDS)
				fds[nfds++] = fd;
			else
				close(fd);
		}
	}
	if (n < 0 || (size_t)n != sizeof(hdr) || (mh.msg_flags & MSG_CTRUNC)) {
		for (int i = 0; i < nfds; i++)
			close(fds[i]);
		if (n < 0)
			return k_seterr("%s: reading a message:", d->name);
		return k_seterr("%s: a message cut short (%zd bytes of its header)", d->name, n);
	}
	uint32_t req = k_le32(hdr), flags = k_le32(hdr + 4), size = k_le32(hdr + 8);
	if (size > VU_PAYLOAD_MAX) {
		for (int i = 0; i < nfds; i++)
			close(fds[i]);
		return k_seterr("%s: message %u of %u bytes (at most %d): the connection cannot be trusted"
				" any more", d->name, req, size, VU_PAYLOAD_MAX);
	}
	if (size && full_read(d->sock, payload, size) != (ssize_t)size) {
		for (int i = 0; i < nfds; i++)
			close(fds[i]);
		return k_seterr("%s: message %u cut short", d->name, req);
	}
	size_t rl;
	if (vu_message(d, req, flags, payload, size, fds, nfds, reply, &rl) < 0)
		vu_log(d, "%s", k_errmsg());
	if (rl && full_write(d->sock, reply, rl) < 0)
		return errno == EPIPE || errno == ECONNRESET ? 0 : k_seterr("%s: writing a reply:", d->name);
	return 1;
}

/* ---- the server */

int vu_listen(struct vu_server *s, const char *path)
{
	struct sockaddr_un a;

	s->listen_fd = -1;
	s->stop_fd[0] = s->stop_fd[1] = -1;
	s->running = 0;
	if (k_unix_addr(&a, path) < 0)
		return -1;
	snprintf(s->path, sizeof(s->path), "%s", path);
	s->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s->listen_fd < 0)
		return k_seterr("socket:");
	unlink(path);
	if (bind(s->listen_fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(s->listen_fd, 1) < 0) {
		k_seterr("%s:", path);
		close_fd(&s->listen_fd);
		return -1;
	}
	if (pipe2(s->stop_fd, O_CLOEXEC) < 0) {
		k_seterr("pipe:");
		close_fd(&s->listen_fd);
		unlink(path);
		return -1;
	}
	return 0;
}

/* Wait for one of FD (readable) or the stop pipe: 1 FD, 0 stop. */
static int wait_or_stop(struct vu_server *s, int fd)
{
	for (;;) {
		struct pollfd p[2] = { { .fd = fd, .events = POLLIN }, { .fd = s->stop_fd[0], .events = POLLIN } };
		if (poll(p, 2, -1) < 0 && errno != EINTR)
			return 0;
		if (p[1].revents)
			return 0;
		if (p[0].revents)
			return 1;
	}
}

/* What an event of the serving thread is: a queue's kick (its index),
 * the front end's message, or the stop pipe. */
enum { EV_SOCK = VU_MAX_QUEUES, EV_STOP };

/* A queue's kick is watched edge-triggered: every write to an eventfd
 * wakes its watchers, so each kick is an event of its own, and the
 * counter need not be read back to zero (a read(), 5% of a random 4 KiB
 * read on the guest's CPU 0).  The guest would need 2^64 kicks to fill
 * it; and a full counter only blocks the guest's own writes.  A kick
 * reported with a front end's message, whose turn skips the kicks, is not
 * lost: watch_kicks() adds every kick descriptor again after a message,
 * and adding one whose counter is not zero reports it at once. */
static int watch(int ep, int fd, uint32_t what)
{
	struct epoll_event e = { .events = EPOLLIN | (what < VU_MAX_QUEUES ? EPOLLET : 0), .data.u32 = what };
	return epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e);
}

/* Watch the kick descriptor of each started queue, KICKS[] the ones
 * watched so far.  The front end replaces them by message, and a closed
 * descriptor's number can come back as a new one, so all go and come
 * again (messages are few: the device's setup). */
static void watch_kicks(struct vu_dev *d, int ep, int *kicks)
{
	for (int i = 0; i < VU_MAX_QUEUES; i++) {
		if (kicks[i] >= 0)
			epoll_ctl(ep, EPOLL_CTL_DEL, kicks[i], NULL);   /* gone with its close, maybe */
		kicks[i] = -1;
	}
	pthread_mutex_lock(&d->lock);
	for (int i = 0; i < d->ops->nqueues && i < VU_MAX_QUEUES; i++) {
		if (d->q[i].kick_fd < 0 || !d->q[i].started)
			continue;
		if (watch(ep, d->q[i].kick_fd, (uint32_t)i) < 0)
			vu_log(d, "queue %d: cannot watch its kicks:", i);
		else
			kicks[i] = d->q[i].kick_fd;
	}
	pthread_mutex_unlock(&d->lock);
}

static void *serve(void *arg)
{
	struct vu_server *s = arg;
	struct vu_dev *d = &s->dev;

	pthread_setname_np(pthread_self(), "umlk-vhost");
	if (!wait_or_stop(s, s->listen_fd))
		return NULL;
	d->sock = accept4(s->listen_fd, NULL, NULL, SOCK_CLOEXEC);
	close_fd(&s->listen_fd);
	unlink(s->path);                /* nothing left behind once connected */
	if (d->sock < 0) {
		k_warn("%s: accept:", d->name);
		return NULL;
	}
	int ep = epoll_create1(EPOLL_CLOEXEC);
	if (ep < 0 || watch(ep, s->stop_fd[0], EV_STOP) < 0 || watch(ep, d->sock, EV_SOCK) < 0) {
		k_warn("%s: epoll:", d->name);
		if (ep >= 0)
			close(ep);
		return NULL;
	}
	int kicks[VU_MAX_QUEUES];
	for (int i = 0; i < VU_MAX_QUEUES; i++)
		kicks[i] = -1;
	for (;;) {
		struct epoll_event ev[2 + VU_MAX_QUEUES];
		int n = epoll_wait(ep, ev, 2 + VU_MAX_QUEUES, -1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			k_warn("%s: epoll_wait:", d->name);
			break;
		}
		int stop = 0, msg = 0;
		for (int i = 0; i < n; i++) {
			stop |= ev[i].data.u32 == EV_STOP;
			msg |= ev[i].data.u32 == EV_SOCK;
		}
		if (stop)
			break;
		if (msg) {
			int r = vu_serve_one(d);
			if (r <= 0) {
				/* 0: the kernel is gone, wait for stop.  Never close
				 * the socket while the guest runs (it would panic):
				 * stop listening instead. */
				if (r < 0)
					vu_log(d, "%s", k_errmsg());
				epoll_ctl(ep, EPOLL_CTL_DEL, d->sock, NULL);
			}
			watch_kicks(d, ep, kicks);
			continue;       /* the kick descriptors may have changed */
		}
		for (int i = 0; i < n; i++) {
			int q = (int)ev[i].data.u32;
			if (q >= VU_MAX_QUEUES || kicks[q] < 0)
				continue;
			d->ops->kick(d, q);
		}
	}
	close(ep);
	return NULL;
}

int vu_start(struct vu_server *s)
{
	int e = pthread_create(&s->thread, NULL, serve, s);

	if (e) {
		errno = e;
		return k_seterr("%s: cannot start its thread:", s->dev.name);
	}
	s->running = 1;
	return 0;
}

int vu_keep_on_cpu(struct vu_server *s, int cpu)
{
	cpu_set_t set;

	if (!s->running || cpu < 0 || cpu >= CPU_SETSIZE)
		return EINVAL;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	return pthread_setaffinity_np(s->thread, sizeof(set), &set);
}

void vu_stop(struct vu_server *s)
{
	if (s->running) {
		static const char c = 1;
		if (write(s->stop_fd[1], &c, 1) < 0)
			k_warn("%s: stopping:", s->dev.name);
		pthread_join(s->thread, NULL);
		s->running = 0;
	}
	close_fd(&s->listen_fd);
	close_fd(&s->stop_fd[0]);
	close_fd(&s->stop_fd[1]);
	if (s->path[0])
		unlink(s->path);
}

int vu_device_start(struct vu_server *s, const char *path, const char *name, const struct vu_ops *ops, void *ctx)
{
	vu_init(&s->dev, name, ops, ctx);
	if (vu_listen(s, path) < 0 || vu_start(s) < 0) {
		vu_stop(s);
		vu_free(&s->dev);
		return -1;
	}
	return 0;
}

void vu_device_stop(struct vu_server *s, struct pool *pool)
{
	vu_stop(s);                     /* no more kicks */
	pool_drain(pool);               /* the requests taken finish */
	vu_free(&s->dev);
}
