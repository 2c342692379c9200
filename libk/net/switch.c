#include "net/switch.h"
#include "core/bytes.h"
#include "core/daemon.h"
#include "core/err.h"
#include "core/sys.h"
#include "core/xio.h"
#include "net/net.h"
#include "net/switchproto.h"
#include "net/vnet.h"
#include "net/vxlan.h"
#include "vhost/vhost.h"

#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

/* From <linux/if_tun.h>, which musl's headers do not carry (stable ABI). */
#ifndef TUNSETIFF
#define TUNSETIFF _IOW('T', 202, int)
#endif
#define K_IFF_TAP 0x0002
#define K_IFF_NO_PI 0x1000

#define BATCH 32
#define MAX_PENDING 32
#define PENDING_MS 5000
#define MAC_SLOTS 4096                  /* a power of two */
#define MAC_PROBE 16

/* Frames waiting for a port whose socket is full (UML's data socket holds
 * only net.unix.max_dgram_qlen datagrams, 10 by default).  Queued, not
 * dropped, so TCP between guests does not see losses on every burst; but
 * bounded, so a port that never reads costs only its own frames. */
#define TXQ 512
struct txq {
	unsigned head, n;
	uint16_t len[TXQ];
	uint8_t (*buf)[NET_FRAME_MAX + 4];      /* allocated when first needed */
};

/* A virtio-net port: a guest's virtio_uml connected over vhost-user.
 * Queue 0 receives (the guest's empty buffers), queue 1 transmits.
 * Frames for it wait in a queue of their own while it has no buffers. */
#define VQ_RX 0
#define VQ_TX 1
#define VQ_FRAMES 512
#define VQ_BYTES (16u << 20)
#define TX_BATCH 256                    /* requests served per kick before others get a turn */
#define TX_HEAD 256                     /* bytes of a frame the switch copies to look at */
_Static_assert(TX_HEAD >= VNET_HEAD_MAX, "every header the switch checks lies in its copy");
#define VQ_SPARE 64                     /* waiting frames' buffers kept for reuse */
#define VQ_POOLED 16384                 /* ... for frames larger than this */
struct vframe {
	struct vnet_hdr h;
	size_t n;
	uint8_t data[];
};
struct vport {
	struct vu_dev dev;
	struct sw *s;
	int port;
	struct vframe *q[VQ_FRAMES];
	unsigned head, n;
	size_t bytes;
	int tx_more;                    /* TX_BATCH reached: serve again without a kick */
	int rx_unpub;                   /* receive buffers filled, not yet shown to the guest */
	unsigned long long large_in, large_out;
};

struct port {
	int used;
	struct vport *vp;               /* a virtio-net port, or NULL */
	int ctl;                        /* control connection; -1 for the tap */
	int tap;                        /* the host tap device's fd, or -1 */
	int vx;                         /* a VXLAN remote: its index, or -1 */
	int probe;                      /* connected to the port: POLLOUT when it has room */
	struct txq q;
	struct sockaddr_un addr;
	socklen_t addrlen;              /* what we send to */
	unsigned gen;                   /* bumped when the slot is reused */
	time_t since;
	unsigned long long in, out, drops;
	unsigned long long bytes_in, bytes_out;         /* VXLAN remotes' */
	char descr[129];                /* VDE's description, or the tap's name */
	char service[32];               /* a umlk service port (dhcpd), or "" */
};

struct pending {
	int fd;
	size_t n;
	long long deadline;
	uint8_t buf[SW_REQ_VDE];
};

struct mac_entry {
	uint8_t mac[6];
	int port;                       /* -1: never used */
	unsigned gen;
	long long seen;                 /* ms */
};

struct sw {
	const struct switch_conf *c;
	int listen, data;
	struct sockaddr_un data_addr;
	struct port *ports;
	int nports;
	struct pending pend[MAX_PENDING];
	int npend;
	struct mac_entry macs[MAC_SLOTS];
	long long age_ms;
	time_t started;
	unsigned long long frames_in, forwarded, flooded, dropped, strangers, malformed, refused;
	unsigned long long large_in, large_whole, large_cut, segments, csums;
	int last_port;                  /* the port the previous datagram came from */
	/* The poll set of one turn of the loop, each entry saying what it is: */
	struct pollfd *pf;
	struct who { int kind, idx; unsigned gen; } *who;
	int npf;
	int stuck, more;                /* ports with frames to push without a probe; tx to finish */
	/* The VXLAN port: its socket, each remote's port and address (in
	 * the socket's family), the largest frame it carries each way. */
	int vxfd;
	int vxport[VXLAN_REMOTES_MAX];
	struct vxlan_addr vxdest[VXLAN_REMOTES_MAX];
	size_t vxmax;
	int vxmtu;
	unsigned long long vxdrop[VX_NVERDICTS];
	/* Datagrams go out many to a send (UDP segmentation offload, until
	 * the kernel refuses it once) and come in many to a read (UDP GRO,
	 * where the kernel has it); a TCP flow's consecutive segments from
	 * one remote are joined into one frame again (vxm). */
	int vxgso, vxgro;
	unsigned long long vx_dgrams_out, vx_sends, vx_dgrams_in, vx_reads, vx_joined, vx_joins;
	struct vnet_merge *vxm;
	int vxm_port;
	/* Frames that waited for a guest's buffers, kept for the next:
	 * musl maps and unmaps a block this size at each malloc and free,
	 * and an unmapping stops every CPU the switch ran on to flush its
	 * TLB (one frame in ten of a guest-to-guest transfer waits). */
	struct vframe *spare[VQ_SPARE];
	int nspare;
};
enum { W_LISTEN, W_DATA, W_PENDING, W_CTL, W_TAP, W_PROBE, W_VU, W_KICK, W_VXLAN };

/* The memory a waiting frame of N bytes holds (counted against VQ_BYTES). */
static size_t frame_cost(size_t n)
{
	return n > VQ_POOLED ? VNET_FRAME_MAX : n;
}

/* A buffer for a waiting frame of N bytes: a large one of the largest
 * frame's size, kept for reuse (small ones cost musl no mapping). */
static struct vframe *frame_get(struct sw *s, size_t n)
{
	if (n <= VQ_POOLED)
		return malloc(sizeof(struct vframe) + n);
	return s->nspare ? s->spare[--s->nspare] : malloc(sizeof(struct vframe) + VNET_FRAME_MAX);
}

static void frame_put(struct sw *s, struct vframe *fr)
{
	if (fr->n > VQ_POOLED && s->nspare < VQ_SPARE)
		s->spare[s->nspare++] = fr;
	else
		free(fr);
}

static volatile sig_atomic_t stopping;
static void on_stop(int sig) { (void)sig; stopping = 1; }

#define LOG(...) do { if (s->c->log) s->c->log(__VA_ARGS__); } while (0)

/* ---- MAC learning */


static int mac_live(struct sw *s, const struct mac_entry *e, long long now)
{
	return e->port >= 0 && s->ports[e->port].used && s->ports[e->port].gen == e->gen &&
	       now - e->seen < s->age_ms;
}

static int mac_lookup(struct sw *s, const uint8_t m[6], long long now)
{
	unsigned h = net_mac_hash(m);
	for (int i = 0; i < MAC_PROBE; i++) {
		struct mac_entry *e = &s->macs[(h + i) & (MAC_SLOTS - 1)];
		if (e->port < 0)
			return -1;
		if (!memcmp(e->mac, m, 6))
			return mac_live(s, e, now) ? e->port : -1;
	}
	return -1;
}

static void mac_learn(struct sw *s, const uint8_t m[6], int port, long long now)
{
	unsigned h = net_mac_hash(m);
	struct mac_entry *reuse = NULL;

	for (int i = 0; i < MAC_PROBE; i++) {
		struct mac_entry *e = &s->macs[(h + i) & (MAC_SLOTS - 1)];
		if (e->port >= 0 && !memcmp(e->mac, m, 6)) {
			if (e->port != port || e->gen != s->ports[port].gen)
				LOG("%02x:%02x:%02x:%02x:%02x:%02x is on port %d", m[0], m[1], m[2], m[3],
				    m[4], m[5], port);
			e->port = port;
			e->gen = s->ports[port].gen;
			e->seen = now;
			return;
		}
		if (!reuse && (e->port < 0 || !mac_live(s, e, now)))
			reuse = e;
		if (e->port < 0)
			break;                  /* the chain ends here */
	}
	if (!reuse) {                           /* all live: take the stalest */
		reuse = &s->macs[h & (MAC_SLOTS - 1)];
		for (int i = 1; i < MAC_PROBE; i++) {
			struct mac_entry *e = &s->macs[(h + i) & (MAC_SLOTS - 1)];
			if (e->seen < reuse->seen)
				reuse = e;
		}
	}
	memcpy(reuse->mac, m, 6);
	reuse->port = port;
	reuse->gen = s->ports[port].gen;
	reuse->seen = now;
}

/* ---- sending */

/* A frame on its way through the switch.  Its first HAVE bytes are in the
 * switch's own memory, and every header the switch reads lies in them:
 * checked there, so a guest rewriting its buffers meanwhile changes
 * nothing the switch decided.  The rest of a frame from a virtio-net
 * guest stays in its buffers (SRC, from byte OFF) and goes from there
 * straight into the receiving guest's.  A port that needs the frame
 * whole gets it in REST (after the first HAVE bytes). */
struct frame {
	const uint8_t *b;
	size_t have, n;
	uint8_t *rest;
	const struct iovec *src;
	unsigned nsrc;
	size_t off;
};

static struct frame frame_of(const uint8_t *b, size_t n)
{
	return (struct frame){ .b = b, .have = n, .n = n };
}

static const uint8_t *frame_whole(struct frame *f)
{
	if (f->have < f->n) {
		vu_iov_to_buf(f->src, f->nsrc, f->off, f->rest, f->n - f->have);
		f->have = f->n;
	}
	return f->b;
}

/* LEN bytes of the frame from byte FROM into the vectors DST, past SKIP. */
static void frame_copy(const struct frame *f, size_t from, const struct iovec *dst, unsigned ndst, size_t skip,
		       size_t len)
{
	if (from < f->have) {
		size_t k = f->have - from < len ? f->have - from : len;
		vu_buf_to_iov(dst, ndst, skip, f->b + from, k);
		from += k;
		skip += k;
		len -= k;
	}
	if (len)
		vu_iov_to_iov(dst, ndst, skip, f->src, f->nsrc, f->off + (from - f->have), len);
}

static int enqueue(struct sw *s, struct port *pt, const uint8_t *frame, size_t n)
{
	struct txq *q = &pt->q;

	if (q->n == TXQ || n > sizeof(q->buf[0]) ||
	    (!q->buf && !(q->buf = malloc(TXQ * sizeof(q->buf[0]))))) {
		pt->drops++;
		s->dropped++;
		return -1;
	}
	unsigned i = (q->head + q->n++) % TXQ;
	memcpy(q->buf[i], frame, n);
	q->len[i] = (uint16_t)n;
	return 0;
}

/* One frame to the port, now: 1 sent, 0 it has no room (try later), -1 lost. */
static int send_now(struct sw *s, struct port *pt, const uint8_t *frame, size_t n)
{
	ssize_t r;

	if (pt->tap >= 0)
		r = write(pt->tap, frame, n);
	else
		r = sendto(s->data, frame, n, MSG_DONTWAIT, (struct sockaddr *)&pt->addr, pt->addrlen);
	if (r == (ssize_t)n) {
		pt->out++;
		return 1;
	}
	if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS))
		return 0;
	pt->drops++;                    /* gone, or refused: this frame is lost */
	s->dropped++;
	return -1;
}

/* Send what is queued for the port, in order, as far as it has room. */
static void drain(struct sw *s, struct port *pt)
{
	struct txq *q = &pt->q;

	while (q->n) {
		if (send_now(s, pt, q->buf[q->head], q->len[q->head]) == 0)
			return;
		q->head = (q->head + 1) % TXQ;
		q->n--;
	}
}

static void legacy_send(struct sw *s, struct port *pt, const uint8_t *frame, size_t n)
{
	if (n > NET_FRAME_MAX + 4) {
		pt->drops++;
		s->dropped++;
		return;
	}
	if (pt->q.n || send_now(s, pt, frame, n) == 0)
		enqueue(s, pt, frame, n);       /* behind what already waits */
}

/* Frames for the tunnel leave in batches: datagrams of one size (but the
 * last) back to back, one send for all, the kernel cutting them apart
 * (UDP_SEGMENT); one at a time when there is one, when the kernel has no
 * such offload or the path refuses it (an IPsec transport, a smaller
 * route MTU).  A frame over the tunnel's MTU, or one the socket refuses,
 * is dropped and counted (UDP: a frame lost here is one the guests' TCP
 * sends again). */
#define VX_BATCH_BYTES 65507            /* the most one UDP send carries over IPv4 */
#define VX_BATCH_MAX 64                 /* segments a send (the kernel's UDP_MAX_SEGMENTS) */
struct vx_batch {
	struct sw *s;
	struct port *pt;
	size_t len, seg;                /* bytes so far; the datagrams' size */
	int count, closed;              /* a shorter datagram ends the batch */
	uint8_t buf[VX_BATCH_BYTES];
};
static struct vx_batch vx_out;

static void vx_drop(struct sw *s, struct port *pt, enum vxlan_verdict why)
{
	s->vxdrop[why]++;
	pt->drops++;
	s->dropped++;
}

/* The batch as one send with UDP_SEGMENT: 0 sent, -1 not (the offload
 * refused: off from now on; or the socket full). */
static int vx_send_gso(struct vx_batch *b)
{
	struct sw *s = b->s;
	struct vxlan_addr *to = &s->vxdest[b->pt->vx];
	struct iovec v = { b->buf, b->len };
	union { struct cmsghdr c; uint8_t room[CMSG_SPACE(sizeof(uint16_t))]; } ctl;
	struct msghdr m = { .msg_name = &to->sa, .msg_namelen = to->len, .msg_iov = &v, .msg_iovlen = 1,
			    .msg_control = &ctl, .msg_controllen = sizeof(ctl) };
	memset(&ctl, 0, sizeof(ctl));
	ctl.c.cmsg_level = SOL_UDP;
	ctl.c.cmsg_type = UDP_SEGMENT;
	ctl.c.cmsg_len = CMSG_LEN(sizeof(uint16_t));
	uint16_t seg = (uint16_t)b->seg;
	memcpy(CMSG_DATA(&ctl.c), &seg, sizeof(seg));
	ssize_t r = sendmsg(s->vxfd, &m, MSG_DONTWAIT);
	if (r != (ssize_t)b->len) {
		if (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != ENOBUFS)
			s->vxgso = 0;
		return -1;
	}
	s->vx_sends++;
	s->vx_dgrams_out += (unsigned)b->count;
	b->pt->out += (unsigned)b->count;
	b->pt->bytes_out += b->len - (size_t)b->count * VXLAN_HLEN;
	return 0;
}

/* Each datagram of the batch by itself, in one sendmmsg. */
static void vx_send_each(struct vx_batch *b)
{
	struct sw *s = b->s;
	struct vxlan_addr *to = &s->vxdest[b->pt->vx];
	struct mmsghdr m[VX_BATCH_MAX];
	struct iovec v[VX_BATCH_MAX];
	int k = 0;

	for (size_t off = 0; off < b->len; off += b->seg, k++) {
		v[k].iov_base = b->buf + off;
		v[k].iov_len = b->len - off < b->seg ? b->len - off : b->seg;
		memset(&m[k], 0, sizeof(m[k]));
		m[k].msg_hdr.msg_name = &to->sa;
		m[k].msg_hdr.msg_namelen = to->len;
		m[k].msg_hdr.msg_iov = &v[k];
		m[k].msg_hdr.msg_iovlen = 1;
	}
	int sent = sendmmsg(s->vxfd, m, (unsigned)k, MSG_DONTWAIT);
	sent = sent < 0 ? 0 : sent;
	s->vx_sends++;
	s->vx_dgrams_out += (unsigned)sent;
	for (int i = 0; i < k; i++) {
		if (i < sent) {
			b->pt->out++;
			b->pt->bytes_out += v[i].iov_len - VXLAN_HLEN;
		} else {
			vx_drop(s, b->pt, VX_SEND);
		}
	}
}

static void vx_flush(struct vx_batch *b)
{
	if (!b->count)
		return;
	/* (After a send refused, each by itself: a full socket loses them
	 * there as it would have.) */
	if (b->count == 1 || !b->s->vxgso || vx_send_gso(b) < 0)
		vx_send_each(b);
	b->len = 0;
	b->count = b->closed = 0;
}

/* One frame into the batch for the port's remote (also vnet_plain's emit). */
static void vx_emit(void *arg, const uint8_t *f, size_t n)
{
	struct vx_batch *b = arg;
	size_t d = VXLAN_HLEN + n;

	if (n > b->s->vxmax) {
		vx_drop(b->s, b->pt, VX_TOO_BIG);
		return;
	}
	if (b->count && (d > b->seg || b->closed || b->len + d > sizeof(b->buf) || b->count == VX_BATCH_MAX))
		vx_flush(b);
	if (!b->count)
		b->seg = d;
	else if (d < b->seg)
		b->closed = 1;
	vxlan_header(b->buf + b->len, b->s->c->vxlan->vni);
	memcpy(b->buf + b->len + VXLAN_HLEN, f, n);
	b->len += d;
	b->count++;
}

/* A batch for the port's remote, empty. */
static struct vx_batch *vx_batch_for(struct sw *s, struct port *pt)
{
	vx_out.s = s;
	vx_out.pt = pt;
	return &vx_out;
}

/* One frame into the tunnel, to the port's remote. */
static void vx_send(struct sw *s, struct port *pt, const uint8_t *f, size_t n)
{
	struct vx_batch *b = vx_batch_for(s, pt);

	vx_emit(b, f, n);
	vx_flush(b);
}

static void vport_send(struct sw *s, struct port *pt, const struct vnet_hdr *h, struct frame *f);

/* A frame the port can take as it is (H says so), by the port's kind. */
static void port_send(struct sw *s, struct port *pt, const struct vnet_hdr *h, struct frame *f)
{
	if (pt->vp)
		vport_send(s, pt, h, f);
	else if (pt->vx >= 0)
		vx_send(s, pt, frame_whole(f), f->n);
	else
		legacy_send(s, pt, frame_whole(f), f->n);
}

struct emit_ctx { struct sw *s; struct port *pt; };

static void emit_plain(void *arg, const uint8_t *f, size_t n)
{
	struct emit_ctx *e = arg;
	static const struct vnet_hdr plain;

	struct frame w = frame_of(f, n);
	port_send(e->s, e->pt, &plain, &w);
}

/* Can the port take H's frame as it is? */
static int takes(const struct port *pt, const struct vnet_hdr *h)
{
	if (vnet_is_plain(h))
		return 1;
	if (!pt->vp)
		return 0;
	uint64_t f = pt->vp->dev.features;
	if (!(f & 1ULL << VIRTIO_NET_F_GUEST_CSUM))
		return 0;
	switch (h->gso_type & 0x7f) {
	case VNET_GSO_TCPV4: return !!(f & 1ULL << VIRTIO_NET_F_GUEST_TSO4);
	case VNET_GSO_TCPV6: return !!(f & 1ULL << VIRTIO_NET_F_GUEST_TSO6);
	default: return 1;
	}
}

static void send_to(struct sw *s, int p, const struct vnet_hdr *h, struct frame *f)
{
	struct port *pt = &s->ports[p];

	if (takes(pt, h)) {
		if (f->n > NET_FRAME_MAX)
			s->large_whole++;
		port_send(s, pt, h, f);
		return;
	}
	const uint8_t *frame = frame_whole(f);
	size_t n = f->n;
	/* Checksum filled in, or the segment cut into frames (for the tunnel,
	 * frames that fit its MTU, sent in batches). */
	static uint8_t scratch[VNET_FRAME_MAX];
	struct emit_ctx e = { s, pt };
	size_t max = pt->vx >= 0 ? (size_t)s->vxmtu + NET_ETH_HLEN : NET_FRAME_MAX;
	int k;
	if (pt->vx >= 0) {
		struct vx_batch *b = vx_batch_for(s, pt);
		k = vnet_plain(h, frame, n, scratch, max, vx_emit, b);
		vx_flush(b);
	} else {
		k = vnet_plain(h, frame, n, scratch, max, emit_plain, &e);
	}
	if (k < 0) {
		pt->drops++;
		s->dropped++;
	} else if (h->gso_type != VNET_GSO_NONE) {
		s->large_cut++;
		s->segments += (unsigned)k;
	} else
		s->csums++;
}

static void forward(struct sw *s, int in, const struct vnet_hdr *h, struct frame *f, long long now)
{
	size_t n = f->n;

	s->frames_in++;
	s->ports[in].in++;
	size_t max = s->ports[in].vp || !vnet_is_plain(h) ? VNET_FRAME_MAX
			: s->ports[in].vx >= 0 ? s->vxmax : NET_FRAME_MAX + 4;
	if (n < NET_ETH_HLEN || n > max) {
		s->malformed++;
		return;
	}
	if (n > NET_FRAME_MAX) {
		s->large_in++;
		if (s->ports[in].vp)
			s->ports[in].vp->large_in++;
	}
	const uint8_t *dst = f->b, *src = f->b + 6;
	if (!net_mac_is_group(src))
		mac_learn(s, src, in, now);
	int to = -1;
	if (!s->c->hub && !net_mac_is_group(dst))
		to = mac_lookup(s, dst, now);
	/* Split horizon: what came through the tunnel never goes back into
	 * it (every host sends to every other itself; passing frames on
	 * would loop them). */
	int from_tunnel = s->ports[in].vx >= 0;
	if (to == in || (to >= 0 && from_tunnel && s->ports[to].vx >= 0)) {
		s->dropped++;           /* both ends behind the same port, or the tunnel */
		return;
	}
	if (to >= 0) {
		s->forwarded++;
		send_to(s, to, h, f);
		return;
	}
	s->flooded++;
	for (int p = 0; p < s->nports; p++)
		if (s->ports[p].used && p != in && !(from_tunnel && s->ports[p].vx >= 0))
			send_to(s, p, h, f);
}

/* ---- virtio-net ports */

/* Put one frame into the guest's receive buffers: 1 done, 0 no room (the
 * buffers it took are given back), -1 it can never fit (dropped). */
static int vport_put(struct vport *v, const struct vnet_hdr *h, const struct frame *f)
{
	size_t n = f->n;
	static struct vu_chain first, more;
	static uint16_t heads[VU_QUEUE_MAX];
	static uint32_t lens[VU_QUEUE_MAX];
	struct vu_dev *d = &v->dev;
	int mrg = !!(d->features & 1ULL << VIRTIO_NET_F_MRG_RXBUF);
	size_t total = VNET_HDR_LEN + n, done = 0;
	unsigned nb = 0;

	while (done < total) {
		struct vu_chain *c = nb ? &more : &first;
		int r = vq_pop(d, VQ_RX, c);
		if (r <= 0 || nb == VU_QUEUE_MAX) {
			vq_rewind(d, VQ_RX, nb + (r > 0));
			return r < 0 ? -1 : 0;
		}
		if (!c->out_len) {
			/* A receive buffer we may not write: the frame is lost,
			 * and every buffer taken for it goes back empty. */
			heads[nb] = c->head;
			for (unsigned i = 0; i <= nb; i++)
				vq_put(d, VQ_RX, heads[i], 0);
			v->rx_unpub = 1;
			vu_log(d, "a receive buffer with no room to write in");
			return -1;
		}
		size_t take = c->out_len < total - done ? c->out_len : total - done;
		if (!mrg && take < total) {
			vq_rewind(d, VQ_RX, 1);
			vu_log(d, "a frame of %zu bytes does not fit a receive buffer of %zu (no mergeable"
			       " buffers)", n, c->out_len);
			return -1;
		}
		/* The header goes in last, once the buffer count is known. */
		size_t skip = done ? 0 : VNET_HDR_LEN;
		size_t from = done ? done - VNET_HDR_LEN : 0;
		frame_copy(f, from, c->out, c->nout, skip, take - skip);
		heads[nb] = c->head;
		lens[nb++] = (uint32_t)take;
		done += take;
	}
	uint8_t hb[VNET_HDR_LEN];
	struct vnet_hdr hh = *h;
	hh.num_buffers = (uint16_t)nb;
	if (!(hh.flags & VNET_F_NEEDS_CSUM) && hh.gso_type == VNET_GSO_NONE)
		hh.hdr_len = hh.gso_size = hh.csum_start = hh.csum_offset = 0;
	vnet_hdr_put(&hh, hb);
	vu_buf_to_iov(first.out, first.nout, 0, hb, sizeof(hb));
	for (unsigned i = 0; i < nb; i++)
		vq_put(d, VQ_RX, heads[i], lens[i]);
	v->rx_unpub = 1;
	return 1;
}

static void vport_drop(struct sw *s, struct port *pt)
{
	pt->drops++;
	s->dropped++;
}

static void vport_send(struct sw *s, struct port *pt, const struct vnet_hdr *h, struct frame *f)
{
	struct vport *v = pt->vp;
	size_t n = f->n;

	if (!v->n) {
		int r = vport_put(v, h, f);
		if (r != 0) {
			if (r > 0) {
				pt->out++;
				v->large_out += n > NET_FRAME_MAX;
			} else
				vport_drop(s, pt);
			return;
		}
	}
	/* No room now: wait for the guest's buffers, within bounds. */
	struct vframe *fr;
	if (v->n == VQ_FRAMES || v->bytes + frame_cost(n) > VQ_BYTES || !(fr = frame_get(s, n))) {
		vport_drop(s, pt);
		return;
	}
	fr->h = *h;
	fr->n = n;
	memcpy(fr->data, frame_whole(f), n);
	v->q[(v->head + v->n++) % VQ_FRAMES] = fr;
	v->bytes += frame_cost(n);
}

/* The guest gave us receive buffers: fill them with what waits. */
static void vport_drain(struct sw *s, struct port *pt)
{
	struct vport *v = pt->vp;

	while (v->n) {
		struct vframe *fr = v->q[v->head];
		struct frame w = frame_of(fr->data, fr->n);
		int r = vport_put(v, &fr->h, &w);
		if (r == 0)
			return;
		if (r > 0) {
			pt->out++;
			v->large_out += fr->n > NET_FRAME_MAX;
		} else
			vport_drop(s, pt);
		v->head = (v->head + 1) % VQ_FRAMES;
		v->n--;
		v->bytes -= frame_cost(fr->n);
		frame_put(s, fr);
	}
}

/* The guest has frames for us. */
static void vport_tx(struct sw *s, int p)
{
	static struct vu_chain c;
	static uint8_t buf[VNET_HDR_LEN + VNET_FRAME_MAX];
	struct vport *v = s->ports[p].vp;
	struct vu_dev *d = &v->dev;
	int k;

	v->tx_more = 0;
	for (k = 0; k < TX_BATCH; k++) {
		if (vq_pop(d, VQ_TX, &c) <= 0)
			break;
		size_t len = c.in_len;
		if (len > sizeof(buf) || len < VNET_HDR_LEN) {
			vq_put(d, VQ_TX, c.head, 0);
			s->frames_in++;
			s->malformed++;
			vu_log(d, "a frame of %zu bytes with its header (at most %zu)", len, sizeof(buf));
			continue;
		}
		/* The header and the frame's headers into our own copy; the
		 * rest stays in the guest's buffers until it is copied on,
		 * so the request goes back only after forward(). */
		size_t have = len < VNET_HDR_LEN + TX_HEAD ? len : VNET_HDR_LEN + TX_HEAD;
		vu_iov_to_buf(c.in, c.nin, 0, buf, have);
		struct vnet_hdr h;
		vnet_hdr_get(&h, buf);
		if (vnet_check_head(&h, buf + VNET_HDR_LEN, have - VNET_HDR_LEN, len - VNET_HDR_LEN) < 0) {
			vq_put(d, VQ_TX, c.head, 0);
			s->frames_in++;
			s->malformed++;
			vu_log(d, "frame dropped: %s", k_errmsg());
			continue;
		}
		struct frame f = { .b = buf + VNET_HDR_LEN, .have = have - VNET_HDR_LEN, .n = len - VNET_HDR_LEN,
				   .rest = buf + have, .src = c.in, .nsrc = c.nin, .off = have };
		forward(s, p, &h, &f, k_now_ms());
		if (!s->ports[p].used)
			return;
		vq_put(d, VQ_TX, c.head, 0);
	}
	vq_publish(d, VQ_TX);
	if (k == TX_BATCH)
		v->tx_more = 1;
}

static void vport_kick(struct vu_dev *d, int q)
{
	struct vport *v = d->ctx;

	if (q == VQ_TX)
		vport_tx(v->s, v->port);
	else
		vport_drain(v->s, &v->s->ports[v->port]);
}

/* virtio_net_config: no MAC offered (the guest picks or is told its
 * own); with a tunnel, its MTU (at byte 10, after the MAC, status and
 * queue pairs). */
static void vport_config(struct vu_dev *d, uint8_t *buf, uint32_t off, uint32_t len)
{
	struct vport *v = d->ctx;
	uint8_t cfg[12] = { 0 };

	if (v->s->vxfd >= 0)
		k_put_le16(cfg + 10, (uint16_t)v->s->vxmtu);
	memset(buf, 0, len);
	if (off < sizeof(cfg))
		memcpy(buf, cfg + off, len < sizeof(cfg) - off ? len : sizeof(cfg) - off);
}

#define VPORT_FEATURES (1ULL << VIRTIO_NET_F_CSUM | 1ULL << VIRTIO_NET_F_GUEST_CSUM | \
			1ULL << VIRTIO_NET_F_GUEST_TSO4 | 1ULL << VIRTIO_NET_F_GUEST_TSO6 | \
			1ULL << VIRTIO_NET_F_HOST_TSO4 | 1ULL << VIRTIO_NET_F_HOST_TSO6 | \
			1ULL << VIRTIO_NET_F_MRG_RXBUF)
static const struct vu_ops vport_ops = {
	.features = VPORT_FEATURES,
	.nqueues = 2,
	.get_config = vport_config,
	.kick = vport_kick,
};
/* On a switch with a tunnel: the same, telling the guest its MTU. */
static const struct vu_ops vport_ops_mtu = {
	.features = VPORT_FEATURES | 1ULL << VIRTIO_NET_F_MTU,
	.nqueues = 2,
	.get_config = vport_config,
	.kick = vport_kick,
};

static void vport_free(struct vport *v)
{
	while (v->n) {
		frame_put(v->s, v->q[v->head]);
		v->head = (v->head + 1) % VQ_FRAMES;
		v->n--;
	}
	vu_free(&v->dev);
	free(v);
}

/* ---- ports and control connections */

static int port_by_addr(struct sw *s, const struct sockaddr_un *a, socklen_t len)
{
	int l = s->last_port;

	if (l >= 0 && l < s->nports && s->ports[l].used && s->ports[l].ctl >= 0 &&
	    sw_addr_match(a, len, &s->ports[l].addr))
		return l;
	for (int p = 0; p < s->nports; p++) {
		if (s->ports[p].used && s->ports[p].ctl >= 0 && sw_addr_match(a, len, &s->ports[p].addr)) {
			s->last_port = p;
			/* Send back with the length the port really bound with. */
			if (s->ports[p].addrlen != len) {
				s->ports[p].addrlen = len;
				if (s->ports[p].probe >= 0)
					connect(s->ports[p].probe, (struct sockaddr *)&s->ports[p].addr, len);
			}
			return p;
		}
	}
	return -1;
}

static void port_remove(struct sw *s, int p, const char *why)
{
	struct port *pt = &s->ports[p];

	LOG("port %d: %s (frames in %llu, out %llu, dropped %llu)", p, why, pt->in, pt->out, pt->drops);
	if (pt->ctl >= 0)
		close(pt->ctl);
	if (pt->tap >= 0)
		close(pt->tap);
	if (pt->probe >= 0)
		close(pt->probe);
	free(pt->q.buf);
	memset(&pt->q, 0, sizeof(pt->q));
	if (pt->vp) {
		vport_free(pt->vp);
		pt->vp = NULL;
	}
	pt->used = 0;
	pt->ctl = pt->tap = pt->probe = pt->vx = -1;
	pt->gen++;
}

static int port_new(struct sw *s)
{
	for (int p = 0; p < s->nports; p++) {
		if (!s->ports[p].used) {
			struct port *pt = &s->ports[p];
			unsigned gen = pt->gen;
			memset(pt, 0, sizeof(*pt));
			pt->gen = gen;
			pt->used = 1;
			pt->ctl = pt->tap = pt->probe = pt->vx = -1;
			pt->since = time(NULL);
			return p;
		}
	}
	return -1;
}

static void pending_close(struct sw *s, int i)
{
	close(s->pend[i].fd);
	s->pend[i] = s->pend[--s->npend];
}

static char *status_text(struct sw *s, size_t *len)
{
	char *buf = NULL;
	size_t sz = 0;
	FILE *f = open_memstream(&buf, &sz);
	long long now = k_now_ms();
	int used = 0;

	if (!f)
		return NULL;
	for (int p = 0; p < s->nports; p++)
		used += s->ports[p].used;
	fprintf(f, "umlk umlswitch on %s: %s, pid %d, up %lld s\n", s->c->ctl_path,
		s->c->hub ? "hub" : "switch", (int)getpid(), (long long)(time(NULL) - s->started));
	fprintf(f, "ports: %d of %d\n", used, s->nports);
	for (int p = 0; p < s->nports; p++) {
		struct port *pt = &s->ports[p];
		if (!pt->used)
			continue;
		if (pt->vp) {
			uint64_t ft = pt->vp->dev.features;
			fprintf(f, "  port %d: virtio-net%s%s%s, up %lld s, frames in %llu, out %llu, dropped %llu,"
				" queued %u, over 1514 bytes in %llu, out %llu\n", p,
				ft & 1ULL << VIRTIO_NET_F_HOST_TSO4 ? " tso" : "",
				ft & 1ULL << VIRTIO_NET_F_GUEST_TSO4 ? " gro" : "",
				ft & 1ULL << VIRTIO_NET_F_MRG_RXBUF ? " mrg" : "",
				(long long)(time(NULL) - pt->since), pt->in, pt->out, pt->drops, pt->vp->n,
				pt->vp->large_in, pt->vp->large_out);
			continue;
		}
		if (pt->vx >= 0) {
			char a[64];
			fprintf(f, "  port %d: vxlan remote %s, frames in %llu (%llu bytes), out %llu (%llu bytes),"
				" dropped %llu\n", p, vxlan_fmt_addr(&s->c->vxlan->remote[pt->vx], a), pt->in,
				pt->bytes_in, pt->out, pt->bytes_out, pt->drops);
			continue;
		}
		fprintf(f, "  port %d: %s%s%s%s, up %lld s, frames in %llu, out %llu, dropped %llu, queued %u\n", p,
			pt->tap >= 0 ? "tap " : pt->service[0] ? "service " : "uml",
			pt->tap >= 0 ? pt->descr : pt->service,
			pt->tap < 0 && pt->descr[0] ? " " : "", pt->tap < 0 ? pt->descr : "",
			(long long)(time(NULL) - pt->since), pt->in, pt->out, pt->drops, pt->q.n);
	}
	int nmac = 0;
	for (int i = 0; i < MAC_SLOTS; i++)
		nmac += mac_live(s, &s->macs[i], now);
	fprintf(f, "macs: %d (forgotten after %d s)\n", nmac, s->c->age_secs);
	for (int i = 0; i < MAC_SLOTS; i++) {
		struct mac_entry *e = &s->macs[i];
		char m[18];
		if (mac_live(s, e, now))
			fprintf(f, "  %s port %d, seen %lld s ago\n", net_fmt_mac(e->mac, m), e->port,
				(now - e->seen) / 1000);
	}
	fprintf(f, "frames: in %llu, forwarded %llu, flooded %llu, dropped %llu, malformed %llu,"
		" from strangers %llu\n", s->frames_in, s->forwarded, s->flooded, s->dropped,
		s->malformed, s->strangers);
	fprintf(f, "large frames (over 1514 bytes): in %llu, delivered whole %llu, cut %llu (into %llu"
		" frames); checksums filled in %llu\n", s->large_in, s->large_whole, s->large_cut, s->segments,
		s->csums);
	fprintf(f, "control: requests refused %llu\n", s->refused);
	if (s->vxfd >= 0) {
		char a[64];
		struct vxlan_addr local;
		local.len = sizeof(local.sa);
		if (getsockname(s->vxfd, (struct sockaddr *)&local.sa, &local.len) < 0)
			local.sa.ss_family = AF_UNSPEC;
		fprintf(f, "vxlan: vni %u, local %s, mtu %d, %d remotes; dropped:", s->c->vxlan->vni,
			vxlan_fmt_addr(&local, a), s->vxmtu, s->c->vxlan->nremotes);
		for (int v = VX_OK + 1; v < VX_NVERDICTS; v++)
			fprintf(f, "%s %s %llu", v > VX_OK + 1 ? "," : "", vxlan_verdict_name[v], s->vxdrop[v]);
		fprintf(f, "\n");
		fprintf(f, "vxlan batches: %llu datagrams out in %llu sends (segmentation offload %s), %llu in"
			" through %llu reads (GRO %s); %llu TCP segments joined into %llu frames\n",
			s->vx_dgrams_out, s->vx_sends, s->vxgso ? "on" : "off", s->vx_dgrams_in, s->vx_reads,
			s->vxgro ? "on" : "off", s->vx_joined, s->vx_joins);
	}
	fclose(f);
	*len = sz;
	return buf;
}

/* A guest's virtio_uml on the control socket: the connection becomes a
 * virtio-net port.  Its first message is not read yet. */
static void vport_new(struct sw *s, int i)
{
	int fd = s->pend[i].fd;
	int p = port_new(s);

	s->pend[i] = s->pend[--s->npend];
	if (p < 0) {
		s->refused++;
		LOG("virtio port refused: all %d ports are in use", s->nports);
		close(fd);
		return;
	}
	struct port *pt = &s->ports[p];
	struct vport *v = calloc(1, sizeof(*v));
	if (!v) {
		close(fd);
		port_remove(s, p, "out of memory");
		return;
	}
	char name[32];
	snprintf(name, sizeof(name), "port %d", p);
	vu_init(&v->dev, name, s->vxfd >= 0 ? &vport_ops_mtu : &vport_ops, v);
	v->s = s;
	v->port = p;
	/* Messages are read whole, blocking; a front end that stops halfway
	 * through one holds the switch up for 2 s at most, then loses its
	 * port. */
	struct timeval tv = { 2, 0 };
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0) {
		close(fd);
		vu_free(&v->dev);
		free(v);
		port_remove(s, p, "cannot set up its connection");
		return;
	}
	v->dev.sock = fd;
	v->dev.one_thread = 1;        /* (switch_run()'s loop is its only thread) */
	pt->vp = v;
	snprintf(pt->descr, sizeof(pt->descr), "virtio-net");
	LOG("port %d: new, virtio-net", p);
}

static void pending_input(struct sw *s, int i)
{
	struct pending *pd = &s->pend[i];
	if (pd->n == 0) {
		/* Which protocol: a daemon-protocol request starts with the
		 * magic 0xfeedface (little-endian: 0xce first), a vhost-user
		 * front end with a small request number (GET_FEATURES, 1). */
		uint8_t b;
		ssize_t k = recv(pd->fd, &b, 1, MSG_PEEK);
		if (k == 1 && b >= VU_GET_FEATURES && b <= VU_SET_CONFIG) {
			vport_new(s, i);
			return;
		}
	}
	ssize_t r = read(pd->fd, pd->buf + pd->n, sizeof(pd->buf) - pd->n);

	if (r < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (r <= 0) {
		pending_close(s, i);
		return;
	}
	pd->n += (size_t)r;
	struct sw_request req;
	int ok = sw_parse_request(&req, pd->buf, pd->n);
	if (ok == 0 && pd->n < sizeof(pd->buf))
		return;
	if (ok <= 0) {
		s->refused++;
		LOG("control connection refused: %s", ok < 0 ? k_errmsg() : "request too long");
		pending_close(s, i);
		return;
	}
	if (req.type == SW_REQ_STATUS) {
		size_t len;
		char *text = status_text(s, &len);
		if (text) {
			/* Best effort, never blocking: a reader that cannot take
			 * the report gets part of it. */
			if (write(pd->fd, text, len) < 0)
				s->refused++;
			free(text);
		}
		pending_close(s, i);
		return;
	}
	int p = port_new(s);
	if (p < 0) {
		s->refused++;
		LOG("port refused: all %d ports are in use", s->nports);
		pending_close(s, i);
		return;
	}
	struct port *pt = &s->ports[p];
	pt->ctl = pd->fd;
	pt->addr = req.addr;
	pt->addrlen = sizeof(pt->addr);
	if (!sw_addr_service(&pt->addr, pt->service, sizeof(pt->service)))
		pt->service[0] = 0;
	/* A socket connected to the port, never sent on: poll() says POLLOUT
	 * on it when the port's receive queue has room again. */
	pt->probe = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (pt->probe >= 0 && connect(pt->probe, (struct sockaddr *)&pt->addr, pt->addrlen) < 0) {
		close(pt->probe);
		pt->probe = -1;         /* then queued frames are retried on a timer */
	}
	/* A client's words go into our log: printable characters only. */
	for (size_t k = 0; k < sizeof(req.descr) && req.descr[k]; k++)
		pt->descr[k] = (req.descr[k] >= 32 && req.descr[k] < 127) ? req.descr[k] : '?';
	/* The answer: our data socket's address, exactly sizeof(sockaddr_un). */
	if (write(pt->ctl, &s->data_addr, sizeof(s->data_addr)) != (ssize_t)sizeof(s->data_addr)) {
		s->pend[i] = s->pend[--s->npend];
		port_remove(s, p, "could not answer its request");
		return;
	}
	s->pend[i] = s->pend[--s->npend];
	LOG("port %d: new%s%s%s%s", p, pt->service[0] ? ", service " : "", pt->service,
	    pt->descr[0] ? ", " : "", pt->descr);
}

static void accept_one(struct sw *s)
{
	int fd = accept4(s->listen, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

	if (fd < 0)
		return;
	if (s->npend == MAX_PENDING) {
		/* Too many half-made connections: drop the oldest. */
		int old = 0;
		for (int i = 1; i < s->npend; i++)
			if (s->pend[i].deadline < s->pend[old].deadline)
				old = i;
		s->refused++;
		/* Once a second at most: this is what a flood looks like. */
		static time_t last;
		if (time(NULL) != last) {
			last = time(NULL);
			LOG("more than %d unfinished control connections: closing the oldest", MAX_PENDING);
		}
		pending_close(s, old);
	}
	s->pend[s->npend].fd = fd;
	s->pend[s->npend].n = 0;
	s->pend[s->npend].deadline = k_now_ms() + PENDING_MS;
	s->npend++;
}

static void ctl_input(struct sw *s, int p)
{
	char junk[512];
	ssize_t r = read(s->ports[p].ctl, junk, sizeof(junk));

	if (r < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (r <= 0)
		port_remove(s, p, "left");
	/* Anything a port says on its control connection is ignored, as
	 * uml_switch does. */
}

/* ---- frames */

static const struct vnet_hdr plain_hdr;

/* Up to BATCH datagrams from FD without blocking: datagram i into BUF +
 * i * BUFSZ, its sender into NAME + i * NAMESZ, its control messages (when
 * CTL) into CTL + i * CTLSZ.  The count (0 or less: none). */
static int recv_batch(int fd, struct mmsghdr *m, struct iovec *v, uint8_t *buf, size_t bufsz, uint8_t *name,
		      size_t namesz, uint8_t *ctl, size_t ctlsz)
{
	for (int i = 0; i < BATCH; i++) {
		v[i].iov_base = buf + (size_t)i * bufsz;
		v[i].iov_len = bufsz;
		memset(&m[i].msg_hdr, 0, sizeof(m[i].msg_hdr));
		m[i].msg_hdr.msg_name = name + (size_t)i * namesz;
		m[i].msg_hdr.msg_namelen = (socklen_t)namesz;
		m[i].msg_hdr.msg_iov = &v[i];
		m[i].msg_hdr.msg_iovlen = 1;
		if (ctl) {
			m[i].msg_hdr.msg_control = ctl + (size_t)i * ctlsz;
			m[i].msg_hdr.msg_controllen = ctlsz;
		}
	}
	return recvmmsg(fd, m, BATCH, MSG_DONTWAIT, NULL);
}

static void data_input(struct sw *s)
{
	static uint8_t bufs[BATCH][NET_FRAME_MAX + 64];
	struct mmsghdr m[BATCH];
	struct iovec v[BATCH];
	struct sockaddr_un from[BATCH];

	for (int round = 0; round < 8; round++) {
		int n = recv_batch(s->data, m, v, bufs[0], sizeof(bufs[0]), (uint8_t *)from, sizeof(from[0]), NULL, 0);
		if (n <= 0)
			break;
		long long now = k_now_ms();
		for (int i = 0; i < n; i++) {
			if (m[i].msg_hdr.msg_flags & MSG_TRUNC) {
				s->malformed++;
				continue;
			}
			int p = port_by_addr(s, &from[i], m[i].msg_hdr.msg_namelen);
			if (p < 0) {
				s->strangers++;
				continue;
			}
			struct frame f = frame_of(bufs[i], m[i].msg_len);
			forward(s, p, &plain_hdr, &f, now);
		}
		if (n < BATCH)
			break;
	}
}

/* The run of segments joined so far goes on into the switch. */
static void vx_merge_flush(struct sw *s, long long now)
{
	struct vnet_hdr h;

	if (!s->vxm->n)
		return;
	int segs = s->vxm->segs;
	size_t n = vnet_merge_take(s->vxm, &h);
	if (segs > 1) {
		s->vx_joins++;
		s->vx_joined += (unsigned)segs;
	}
	struct frame f = frame_of(s->vxm->frame, n);
	forward(s, s->vxm_port, &h, &f, now);
}

/* A frame out of the tunnel from port P: joined to the run of segments
 * it continues, or (after the run, to keep the order) on its own. */
static void vx_deliver(struct sw *s, int p, const uint8_t *f, size_t n, long long now)
{
	if (s->vxm->n && s->vxm_port != p)
		vx_merge_flush(s, now);
	int r = vnet_merge_add(s->vxm, f, n);
	if (r == 0) {
		vx_merge_flush(s, now);
		r = vnet_merge_add(s->vxm, f, n);
	}
	if (r > 0) {
		s->vxm_port = p;
		return;
	}
	vx_merge_flush(s, now);
	struct frame w = frame_of(f, n);
	forward(s, p, &plain_hdr, &w, now);
}

/* One datagram of N bytes from FROM (CUT: it was longer): a remote, our
 * VNI, a frame that fits; anything else dropped and counted by why. */
static void vx_datagram(struct sw *s, const struct vxlan_addr *from, const uint8_t *d, size_t n, int cut,
			long long now)
{
	int r = -1;
	size_t flen = 0;
	enum vxlan_verdict why = vxlan_receive(s->c->vxlan, from, d, n, s->vxmax, &r, &flen);

	if (why == VX_OK && cut)
		why = VX_SIZE;          /* longer than the read took */
	s->vx_dgrams_in++;
	if (why != VX_OK) {
		s->vxdrop[why]++;
		return;
	}
	s->ports[s->vxport[r]].bytes_in += flen;
	vx_deliver(s, s->vxport[r], d + VXLAN_HLEN, flen, now);
}

/* The size of the datagrams a read put back to back (UDP GRO's control
 * message), or 0 for one datagram. */
static size_t gro_size(struct msghdr *mh)
{
	for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
		if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO && c->cmsg_len >= CMSG_LEN(sizeof(int))) {
			int v;
			memcpy(&v, CMSG_DATA(c), sizeof(v));
			return v > 0 ? (size_t)v : 0;
		}
	}
	return 0;
}

/* Datagrams on the VXLAN socket, many to a read: each buffer holds one
 * datagram, or (UDP GRO) several of one size from one sender, the last
 * perhaps shorter. */
#define VX_READ 65536
static void vx_input(struct sw *s)
{
	static uint8_t bufs[BATCH][VX_READ];
	static union { struct cmsghdr c; uint8_t room[CMSG_SPACE(sizeof(int))]; } ctl[BATCH];
	struct mmsghdr m[BATCH];
	struct iovec v[BATCH];
	struct vxlan_addr from[BATCH];

	for (int round = 0; round < 8; round++) {
		/* (Each sender into its vxlan_addr's sa, the first member; the kernel
		 * writes only the address's own length.  A slot holds the largest
		 * datagram, GRO or not: one longer than a frame is judged
		 * oversized whole.) */
		int n = recv_batch(s->vxfd, m, v, bufs[0], sizeof(bufs[0]), (uint8_t *)&from[0].sa, sizeof(from[0]),
				   (uint8_t *)ctl, sizeof(ctl[0]));
		if (n <= 0)
			break;
		s->vx_reads++;
		long long now = k_now_ms();
		for (int i = 0; i < n; i++) {
			from[i].len = m[i].msg_hdr.msg_namelen;
			size_t len = m[i].msg_len, seg = gro_size(&m[i].msg_hdr);
			int cut = !!(m[i].msg_hdr.msg_flags & MSG_TRUNC);
			if (!seg || seg > len || cut)
				seg = len;
			size_t off = 0;
			do {
				size_t k = len - off < seg ? len - off : seg;
				vx_datagram(s, &from[i], bufs[i] + off, k, cut, now);
				off += k;
			} while (off < len);
		}
		if (n < BATCH)
			break;
	}
	vx_merge_flush(s, k_now_ms());
}

static void tap_input(struct sw *s, int p)
{
	static uint8_t buf[NET_FRAME_MAX + 64];

	for (int i = 0; i < BATCH; i++) {
		ssize_t r = read(s->ports[p].tap, buf, sizeof(buf));
		if (r <= 0)
			break;
		struct frame f = frame_of(buf, (size_t)r);
		forward(s, p, &plain_hdr, &f, k_now_ms());
	}
}

/* ---- set-up */

static int open_tap(const char *name)
{
	struct ifreq ifr;
	int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);

	if (fd < 0)
		return k_seterr("-tap %s: /dev/net/tun:", name);
	memset(&ifr, 0, sizeof(ifr));
	ifr.ifr_flags = K_IFF_TAP | K_IFF_NO_PI;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
		int e = errno;
		close(fd);
		return k_seterr("-tap %s: %s%s", name, strerror(e),
				e == EPERM ? " (creating a tap device needs root or CAP_NET_ADMIN,"
					     " or a persistent tap owned by you: ip tuntap add NAME mode tap user YOU)"
					   : "");
	}
	/* Bring it up if we may; an unprivileged user's persistent tap is
	 * brought up by whoever made it. */
	int sk = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (sk >= 0) {
		if (ioctl(sk, SIOCGIFFLAGS, &ifr) == 0) {
			ifr.ifr_flags |= IFF_UP;
			ioctl(sk, SIOCSIFFLAGS, &ifr);
		}
		close(sk);
	}
	return fd;
}

static int bind_ctl(const char *path)
{
	struct sockaddr_un a;
	struct stat st;

	if (k_unix_addr(&a, path) < 0)
		return -1;
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode))
			return k_seterr("%s: exists and is not a socket", path);
		if (sw_alive(path))
			return k_seterr("%s: a switch is already running there", path);
		unlink(path);           /* left over from a switch that died */
	}
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return k_seterr("socket:");
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 64) < 0) {
		int e = errno;
		close(fd);
		errno = e;
		return k_seterr("%s:", path);
	}
	return fd;
}

static int bind_data(struct sw *s)
{
	struct timeval tv;
	struct { char zero; char tag[11]; int pid; int usecs; } name;

	s->data = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s->data < 0)
		return k_seterr("socket:");
	/* An abstract name as long as the whole sockaddr_un: UML sends to
	 * what we answer with sizeof(struct sockaddr_un), every byte counting. */
	memset(&s->data_addr, 0, sizeof(s->data_addr));
	memset(&name, 0, sizeof(name));
	memcpy(name.tag, "umlk-switch", sizeof(name.tag));
	gettimeofday(&tv, NULL);
	name.pid = getpid();
	name.usecs = (int)tv.tv_usec;
	s->data_addr.sun_family = AF_UNIX;
	memcpy(s->data_addr.sun_path, &name, sizeof(name));
	if (bind(s->data, (struct sockaddr *)&s->data_addr, sizeof(s->data_addr)) < 0)
		return k_seterr("binding the data socket:");
	/* Room for bursts from many ports. */
	int sz = 4 << 20;
	setsockopt(s->data, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
	setsockopt(s->data, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	return 0;
}

/* The VXLAN port: its UDP socket (the local address's family, else IPv4
 * unless a remote is IPv6: then IPv6 taking IPv4 too), one port for each
 * remote. */
static int open_vxlan(struct sw *s)
{
	const struct vxlan_conf *c = s->c->vxlan;
	struct vxlan_addr local = c->local;
	int family = local.len ? local.sa.ss_family : AF_INET;
	char a[64];

	for (int r = 0; !local.len && r < c->nremotes; r++)
		if (c->remote[r].sa.ss_family == AF_INET6)
			family = AF_INET6;
	if (!local.len) {
		local.sa.ss_family = (sa_family_t)family;
		local.len = family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
		((struct sockaddr_in *)&local.sa)->sin_port = htons(VXLAN_PORT);  /* same place in both */
	}
	s->vxmtu = vxlan_mtu(c);
	s->vxmax = (size_t)s->vxmtu + NET_ETH_HLEN + 4;         /* a VLAN tag's room too */
	if (s->vxmax > VXLAN_FRAME_MAX)
		return k_seterr("-vxlan-mtu %d: at most %d", s->vxmtu, VXLAN_FRAME_MAX - NET_ETH_HLEN - 4);
	s->vxfd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s->vxfd < 0)
		return k_seterr("vxlan: socket:");
	int off = 0, sz = 4 << 20;
	if (family == AF_INET6)
		setsockopt(s->vxfd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof(off));
	setsockopt(s->vxfd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
	setsockopt(s->vxfd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	int on = 1;
	s->vxgso = 1;           /* tried at the first batch */
	s->vxgro = setsockopt(s->vxfd, SOL_UDP, UDP_GRO, &on, sizeof(on)) == 0;
	if (!(s->vxm = malloc(sizeof(*s->vxm))))
		return k_seterr("vxlan:");
	s->vxm->n = 0;
	for (int r = 0; r < c->nremotes; r++)
		if (vxlan_addr_as(&c->remote[r], family, &s->vxdest[r]) < 0)
			return k_seterr("vxlan: remote %s is IPv6, the local address IPv4",
					vxlan_fmt_addr(&c->remote[r], a));
	if (bind(s->vxfd, (struct sockaddr *)&local.sa, local.len) < 0)
		return k_seterr("vxlan: binding %s:", vxlan_fmt_addr(&local, a));
	for (int r = 0; r < c->nremotes; r++) {
		int p = port_new(s);
		s->ports[p].vx = r;
		s->vxport[r] = p;
		snprintf(s->ports[p].descr, sizeof(s->ports[p].descr), "vxlan %s", vxlan_fmt_addr(&c->remote[r], a));
	}
	return 0;
}

static void sw_free(struct sw *s)
{
	if (s->listen >= 0) {
		close(s->listen);
		unlink(s->c->ctl_path);
	}
	if (s->data >= 0)
		close(s->data);
	if (s->vxfd >= 0)
		close(s->vxfd);
	for (int p = 0; s->ports && p < s->nports; p++) {
		if (s->ports[p].ctl >= 0)
			close(s->ports[p].ctl);
		if (s->ports[p].tap >= 0)
			close(s->ports[p].tap);
		if (s->ports[p].probe >= 0)
			close(s->ports[p].probe);
		free(s->ports[p].q.buf);
		if (s->ports[p].vp)
			vport_free(s->ports[p].vp);
	}
	for (int i = 0; i < s->npend; i++)
		close(s->pend[i].fd);
	free(s->ports);
	free(s->vxm);
	free(s->pf);
	free(s->who);
	while (s->nspare)
		free(s->spare[--s->nspare]);
	free(s);
}

/* The switch of C: its ports, its tap, its sockets bound; NULL with
 * k_seterr(). */
static struct sw *sw_open(const struct switch_conf *c)
{
	struct sw *s = calloc(1, sizeof(*s));

	if (!s)
		return k_seterr("out of memory"), NULL;
	s->c = c;
	s->listen = s->data = s->vxfd = -1;
	s->last_port = -1;
	s->nports = c->max_ports + (c->tap != NULL) + (c->vxlan ? c->vxlan->nremotes : 0);
	s->ports = calloc((size_t)s->nports, sizeof(*s->ports));
	s->age_ms = (long long)c->age_secs * 1000;
	s->started = time(NULL);
	for (int i = 0; i < MAC_SLOTS; i++)
		s->macs[i].port = -1;
	size_t maxfds = 2 + MAX_PENDING + (2 + VU_MAX_QUEUES) * (size_t)s->nports;
	s->pf = calloc(maxfds, sizeof(*s->pf));
	s->who = calloc(maxfds, sizeof(*s->who));
	if (!s->ports || !s->pf || !s->who) {
		k_seterr("out of memory");
		goto fail;
	}
	for (int p = 0; p < s->nports; p++)
		s->ports[p].ctl = s->ports[p].tap = s->ports[p].probe = s->ports[p].vx = -1;
	if (c->tap) {
		int fd = open_tap(c->tap);
		if (fd < 0)
			goto fail;
		int p = port_new(s);
		s->ports[p].tap = fd;
		snprintf(s->ports[p].descr, sizeof(s->ports[p].descr), "%s", c->tap);
	}
	if (c->vxlan && open_vxlan(s) < 0)
		goto fail;
	if (bind_data(s) < 0 || (s->listen = bind_ctl(c->ctl_path)) < 0)
		goto fail;
	return s;
fail:
	sw_free(s);
	return NULL;
}

static void watch(struct sw *s, int fd, short events, int kind, int idx, unsigned gen)
{
	s->pf[s->npf] = (struct pollfd){ .fd = fd, .events = events };
	s->who[s->npf++] = (struct who){ kind, idx, gen };
}

/* What this turn of the loop waits on; notes ports that need a push
 * without a descriptor to wait for (stuck, more). */
static void watch_all(struct sw *s)
{
	s->npf = s->stuck = s->more = 0;
	watch(s, s->listen, POLLIN, W_LISTEN, 0, 0);
	watch(s, s->data, POLLIN, W_DATA, 0, 0);
	if (s->vxfd >= 0)
		watch(s, s->vxfd, POLLIN, W_VXLAN, 0, 0);
	for (int i = 0; i < s->npend; i++)
		watch(s, s->pend[i].fd, POLLIN, W_PENDING, i, 0);
	for (int p = 0; p < s->nports; p++) {
		struct port *pt = &s->ports[p];
		if (!pt->used || pt->vx >= 0)
			continue;
		if (pt->vp) {
			struct vu_dev *d = &pt->vp->dev;
			watch(s, d->sock, POLLIN, W_VU, p, pt->gen);
			for (int q = 0; q < 2; q++)
				if (d->q[q].kick_fd >= 0 && d->q[q].started)
					watch(s, d->q[q].kick_fd, POLLIN, W_KICK, p | q << 16, pt->gen);
			s->more |= pt->vp->tx_more;
			continue;
		}
		if (pt->tap >= 0)
			watch(s, pt->tap, POLLIN | (pt->q.n ? POLLOUT : 0), W_TAP, p, 0);
		else
			watch(s, pt->ctl, POLLIN, W_CTL, p, 0);
		if (pt->tap < 0 && pt->q.n) {
			if (pt->probe >= 0)
				watch(s, pt->probe, POLLOUT, W_PROBE, p, 0);
			else
				s->stuck = 1;
		}
	}
}

/* How long poll() may wait: until the next pending connection's
 * deadline, a moment when frames wait to be pushed, a second with
 * -idle-exit (to check it), else for ever. */
static long long wait_ms(const struct sw *s)
{
	long long now = k_now_ms(), wait = s->c->idle_exit ? 1000 : -1;

	if (s->stuck)
		wait = 10;
	if (s->more)
		wait = 0;
	for (int i = 0; i < s->npend; i++) {
		long long left = s->pend[i].deadline - now;
		if (wait < 0 || left < wait)
			wait = left < 0 ? 0 : left;
	}
	return wait;
}

/* The frames put into guests' receive buffers this turn shown to them,
 * one wake-up each (at the end of every turn: nothing may stay unshown
 * while the loop sleeps). */
static void rx_publish(struct sw *s)
{
	for (int p = 0; p < s->nports; p++) {
		struct vport *v = s->ports[p].vp;
		if (s->ports[p].used && v && v->rx_unpub) {
			v->rx_unpub = 0;
			vq_publish(&v->dev, VQ_RX);
		}
	}
}

/* Room first (queued frames go before new ones), then frames, then
 * control; pending indexes shift when one closes, so those are walked
 * from the end. */
static void dispatch(struct sw *s)
{
	struct pollfd *pf = s->pf;
	struct who *who = s->who;
	int n = s->npf;

	for (int i = 0; i < n; i++) {
		if (who[i].kind == W_VU || who[i].kind == W_KICK)
			continue;
		struct port *pt = &s->ports[who[i].idx];
		if ((who[i].kind == W_PROBE || who[i].kind == W_TAP) && (pf[i].revents & POLLOUT) && pt->used)
			drain(s, pt);
	}
	for (int p = 0; p < s->nports; p++) {
		if (s->stuck && s->ports[p].used && s->ports[p].q.n && s->ports[p].probe < 0)
			drain(s, &s->ports[p]);
		if (s->more && s->ports[p].used && s->ports[p].vp && s->ports[p].vp->tx_more)
			vport_tx(s, p);
	}
	for (int i = 0; i < n; i++) {
		if (!(pf[i].revents & (POLLIN | POLLERR | POLLHUP)))
			continue;
		if (who[i].kind == W_KICK) {
			struct port *pt = &s->ports[who[i].idx & 0xffff];
			if (!pt->used || !pt->vp || pt->gen != who[i].gen)
				continue;
			uint64_t cnt;
			if (read(pf[i].fd, &cnt, sizeof(cnt)) < 0 && errno != EAGAIN)
				continue;
			vport_kick(&pt->vp->dev, who[i].idx >> 16);
		} else if (who[i].kind == W_DATA) {
			data_input(s);
		} else if (who[i].kind == W_VXLAN) {
			vx_input(s);
		} else if (who[i].kind == W_TAP && s->ports[who[i].idx].used && s->ports[who[i].idx].tap == pf[i].fd) {
			tap_input(s, who[i].idx);
		}
	}
	for (int i = n - 1; i >= 0; i--) {
		if (!(pf[i].revents & (POLLIN | POLLERR | POLLHUP)))
			continue;
		int k = who[i].idx;
		if (who[i].kind == W_LISTEN) {
			accept_one(s);
		} else if (who[i].kind == W_PENDING && k < s->npend && s->pend[k].fd == pf[i].fd) {
			pending_input(s, k);
		} else if (who[i].kind == W_CTL && s->ports[k].used && s->ports[k].ctl == pf[i].fd) {
			ctl_input(s, k);
		} else if (who[i].kind == W_VU && s->ports[k].used && s->ports[k].vp && s->ports[k].gen == who[i].gen) {
			int rr = vu_serve_one(&s->ports[k].vp->dev);
			if (rr < 0)
				LOG("%s", k_errmsg());
			if (rr <= 0)
				port_remove(s, k, rr < 0 ? "broken connection" : "left");
		}
	}
	rx_publish(s);          /* (a queue a message started may have sent frames too) */
}

/* Control connections that sent no complete request in time. */
static void expire_pending(struct sw *s)
{
	long long now = k_now_ms();

	for (int i = s->npend - 1; i >= 0; i--) {
		if (s->pend[i].deadline <= now) {
			s->refused++;
			LOG("control connection closed: no complete request within %d s", PENDING_MS / 1000);
			pending_close(s, i);
		}
	}
}

/* With -idle-exit: has no guest been connected for that long? */
static int idle_too_long(struct sw *s, long long *idle_since)
{
	int guests = 0;

	for (int p = 0; p < s->nports; p++)
		guests += s->ports[p].used && !s->ports[p].service[0] && s->ports[p].tap < 0 && s->ports[p].vx < 0;
	if (guests)
		*idle_since = k_now_ms();
	return !guests && k_now_ms() - *idle_since >= s->c->idle_exit * 1000LL;
}

int switch_run(const struct switch_conf *c)
{
	struct sw *s = sw_open(c);
	int ret = 0;

	if (!s)
		return -1;
	k_on_stop(on_stop);
	if (c->ready)
		c->ready();
	LOG("%s on %s, up to %d ports%s%s", c->hub ? "hub" : "switch", c->ctl_path, c->max_ports,
	    c->tap ? ", tap " : "", c->tap ? c->tap : "");
	long long idle_since = k_now_ms();
	while (!stopping) {
		if (c->idle_exit && idle_too_long(s, &idle_since)) {
			LOG("no guests for %d s", c->idle_exit);
			break;
		}
		watch_all(s);
		int r = poll(s->pf, (nfds_t)s->npf, (int)wait_ms(s));
		if (r < 0 && errno != EINTR) {
			ret = k_seterr("poll:");
			break;
		}
		if (r > 0 || s->stuck || s->more)
			dispatch(s);
		expire_pending(s);
	}
	if (ret == 0)
		LOG("stopping");
	sw_free(s);
	return ret;
}
