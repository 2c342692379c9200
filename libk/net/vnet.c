#include "net/vnet.h"
#include "core/bytes.h"
#include "core/err.h"
#include "net/net.h"

#include <string.h>

void vnet_hdr_get(struct vnet_hdr *h, const uint8_t b[VNET_HDR_LEN])
{
	h->flags = b[0];
	h->gso_type = b[1];
	h->hdr_len = k_le16(b + 2);
	h->gso_size = k_le16(b + 4);
	h->csum_start = k_le16(b + 6);
	h->csum_offset = k_le16(b + 8);
	h->num_buffers = k_le16(b + 10);
}

void vnet_hdr_put(const struct vnet_hdr *h, uint8_t b[VNET_HDR_LEN])
{
	b[0] = h->flags;
	b[1] = h->gso_type;
	k_put_le16(b + 2, h->hdr_len);
	k_put_le16(b + 4, h->gso_size);
	k_put_le16(b + 6, h->csum_start);
	k_put_le16(b + 8, h->csum_offset);
	k_put_le16(b + 10, h->num_buffers);
}

/* Where the headers of a TCP segment lie. */
struct tcp_frame {
	size_t l3, l4, hl;              /* IP header, TCP header, first payload byte */
	int v6;
};

static int parse_tcp(const uint8_t *f, size_t n, int want_v6, struct tcp_frame *t)
{
	if (n < 14)
		return k_seterr("a frame of %zu bytes", n);
	size_t l3 = 14;
	uint16_t type = k_be16(f + 12);
	if (type == 0x8100) {           /* one VLAN tag */
		if (n < 18)
			return k_seterr("a VLAN frame of %zu bytes", n);
		type = k_be16(f + 16);
		l3 = 18;
	}
	t->l3 = l3;
	t->v6 = want_v6;
	if (!want_v6) {
		if (type != 0x0800 || n < l3 + 20 || f[l3] >> 4 != 4)
			return k_seterr("a TCPv4 segment offload that is not IPv4");
		size_t ihl = (size_t)(f[l3] & 15) * 4;
		if (ihl < 20 || n < l3 + ihl)
			return k_seterr("an IPv4 header of %zu bytes", ihl);
		if (f[l3 + 9] != 6)
			return k_seterr("a TCPv4 segment offload of IP protocol %u", f[l3 + 9]);
		if (k_be16(f + l3 + 6) & 0x3fff)
			return k_seterr("a TCPv4 segment offload of an IP fragment");
		t->l4 = l3 + ihl;
	} else {
		if (type != 0x86dd || n < l3 + 40 || f[l3] >> 4 != 6)
			return k_seterr("a TCPv6 segment offload that is not IPv6");
		if (f[l3 + 6] != 6)
			return k_seterr("a TCPv6 segment offload with next header %u (extension headers"
					" are not cut)", f[l3 + 6]);
		t->l4 = l3 + 40;
	}
	if (n < t->l4 + 20)
		return k_seterr("a TCP header cut short");
	size_t thl = (size_t)(f[t->l4 + 12] >> 4) * 4;
	if (thl < 20 || n < t->l4 + thl)
		return k_seterr("a TCP header of %zu bytes", thl);
	t->hl = t->l4 + thl;
	return 0;
}

int vnet_check(const struct vnet_hdr *h, const uint8_t *frame, size_t n)
{
	return vnet_check_head(h, frame, n, n);
}

int vnet_check_head(const struct vnet_hdr *h, const uint8_t *frame, size_t have, size_t n)
{
	if (have > n)
		have = n;
	if (have < n && have < VNET_HEAD_MAX)
		return k_seterr("only %zu bytes of a %zu-byte frame to check", have, n);
	if (n < 14)
		return k_seterr("a frame of %zu bytes", n);
	if (n > VNET_FRAME_MAX)
		return k_seterr("a frame of %zu bytes (at most %d)", n, VNET_FRAME_MAX);
	if (h->flags & ~(VNET_F_NEEDS_CSUM | VNET_F_DATA_VALID))
		return k_seterr("header flags 0x%x", h->flags);
	if (h->flags & VNET_F_NEEDS_CSUM) {
		if ((size_t)h->csum_start + h->csum_offset + 2 > n)
			return k_seterr("its checksum at %u+%u lies past the frame's %zu bytes", h->csum_start,
					h->csum_offset, n);
	}
	struct tcp_frame t;
	switch (h->gso_type & 0x7f) {  /* 0x80: ECN, which changes nothing here */
	case VNET_GSO_NONE:
		if (h->gso_type & 0x80)
			return k_seterr("ECN without a segment offload");
		return 0;
	case VNET_GSO_TCPV4:
	case VNET_GSO_TCPV6:
		if (h->gso_size < VNET_GSO_MIN)
			return k_seterr("a segment size of %u (at least %d)", h->gso_size, VNET_GSO_MIN);
		return parse_tcp(frame, have, (h->gso_type & 0x7f) == VNET_GSO_TCPV6, &t);
	default:
		return k_seterr("segment offload type %u (only TCPv4 and TCPv6 are offered)", h->gso_type);
	}
}

/* The sum of the TCP pseudo-header of the segment in F (N bytes). */
static uint32_t pseudo_sum(const uint8_t *f, const struct tcp_frame *t, size_t n)
{
	uint32_t sum = 0;
	uint8_t tail[8];

	if (t->v6)
		sum = net_sum(sum, f + t->l3 + 8, 32);         /* source and destination */
	else
		sum = net_sum(sum, f + t->l3 + 12, 8);
	k_put_be32(tail, (uint32_t)(n - t->l4));
	k_put_be32(tail + 4, 6);
	return net_sum(sum, tail, 8);
}

/* The TCP checksum of the segment in F (N bytes), pseudo-header included. */
static uint16_t tcp_csum(const uint8_t *f, const struct tcp_frame *t, size_t n)
{
	return net_sum_fold(net_sum(pseudo_sum(f, t, n), f + t->l4, n - t->l4));
}

int vnet_plain(const struct vnet_hdr *h, const uint8_t *frame, size_t n, uint8_t *scratch,
	       size_t maxlen, void (*emit)(void *ctx, const uint8_t *f, size_t len), void *ctx)
{
	if (h->gso_type == VNET_GSO_NONE) {
		if (n > maxlen)
			return k_seterr("a frame of %zu bytes for a port that takes %zu", n, maxlen);
		if (!(h->flags & VNET_F_NEEDS_CSUM)) {
			emit(ctx, frame, n);
			return 1;
		}
		memcpy(scratch, frame, n);
		uint16_t c = net_sum_fold(net_sum(0, scratch + h->csum_start, n - h->csum_start));
		k_put_be16(scratch + h->csum_start + h->csum_offset, c ? c : 0xffff);
		emit(ctx, scratch, n);
		return 1;
	}

	struct tcp_frame t;
	if (parse_tcp(frame, n, (h->gso_type & 0x7f) == VNET_GSO_TCPV6, &t) < 0)
		return -1;
	size_t mss = h->gso_size, payload = n - t.hl;
	size_t first = payload < mss ? payload : mss;
	if (t.hl + first > maxlen)
		return k_seterr("segments of %zu bytes for a port that takes %zu", t.hl + first, maxlen);
	uint32_t seq0 = k_be32(frame + t.l4 + 4);
	uint16_t id0 = t.v6 ? 0 : k_be16(frame + t.l3 + 4);
	uint8_t flags0 = frame[t.l4 + 13];
	int count = 0;

	for (size_t off = 0; off < payload || (payload == 0 && count == 0); off += mss) {
		size_t len = payload - off < mss ? payload - off : mss;
		int last = off + len >= payload;
		size_t seglen = t.hl + len;
		memcpy(scratch, frame, t.hl);
		memcpy(scratch + t.hl, frame + t.hl + off, len);
		uint8_t *ip = scratch + t.l3, *tcp = scratch + t.l4;
		if (t.v6) {
			k_put_be16(ip + 4, (uint16_t)(seglen - t.l4));
		} else {
			k_put_be16(ip + 2, (uint16_t)(seglen - t.l3));
			k_put_be16(ip + 4, (uint16_t)(id0 + count));
			k_put_be16(ip + 10, 0);
			k_put_be16(ip + 10, net_sum_fold(net_sum(0, ip, t.l4 - t.l3)));
		}
		k_put_be32(tcp + 4, seq0 + (uint32_t)off);
		uint8_t fl = flags0;
		if (!last)
			fl &= (uint8_t)~0x09;   /* FIN and PSH go with the last segment */
		if (count)
			fl &= (uint8_t)~0x80;   /* CWR with the first */
		tcp[13] = fl;
		k_put_be16(tcp + 16, 0);
		k_put_be16(tcp + 16, tcp_csum(scratch, &t, seglen));
		emit(ctx, scratch, seglen);
		count++;
		if (payload == 0)
			break;
	}
	return count;
}

/* ---- putting segments back together */

/* F's TCP segment as a run may take it: its headers in T, payload in
 * *PAYLOAD; -1 when it is no such segment. */
static int mergeable(const uint8_t *f, size_t n, struct tcp_frame *t, size_t *payload)
{
	if (n < 14)
		return -1;
	size_t l3 = k_be16(f + 12) == 0x8100 ? 18 : 14;
	if (n < l3 + 40)
		return -1;
	int v6 = f[l3] >> 4 == 6;
	if (f[l3 + (v6 ? 6 : 9)] != 6 || parse_tcp(f, n, v6, t) < 0)
		return -1;              /* not TCP (checked first: parse_tcp's errors cost a message) */
	size_t iplen = v6 ? (size_t)k_be16(f + l3 + 4) + 40 : k_be16(f + l3 + 2);
	if (iplen != n - l3 || n == t->hl)
		return -1;              /* padding or a lying length; no data */
	uint8_t flags = f[t->l4 + 13];
	if ((flags & ~0x08) != 0x10)
		return -1;              /* ACK, perhaps PSH: nothing else */
	if (!v6 && net_sum_fold(net_sum(0, f + l3, t->l4 - l3)) != 0)
		return -1;
	if (tcp_csum(f, t, n) != 0)
		return -1;
	*payload = n - t->hl;
	return 0;
}

/* Are F's headers M's, but for the fields each segment has its own? */
static int same_headers(const struct vnet_merge *m, const uint8_t *f, const struct tcp_frame *t)
{
	const uint8_t *a = m->frame, *b = f;
	if (t->hl != m->hl || t->l4 != m->l4 || t->l3 != m->l3 || t->v6 != m->v6)
		return 0;
	if (memcmp(a, b, m->l3))
		return 0;               /* Ethernet, the VLAN tag */
	a += m->l3;
	b += m->l3;
	if (m->v6) {
		if (memcmp(a, b, 4) || memcmp(a + 6, b + 6, 34))
			return 0;       /* all but the payload length */
	} else if (a[0] != b[0] || a[1] != b[1] || memcmp(a + 6, b + 6, 4) || memcmp(a + 12, b + 12, m->l4 - m->l3 - 12)) {
		return 0;               /* all but the length, id and checksum */
	}
	a = m->frame + m->l4;
	b = f + m->l4;
	/* Ports, acknowledgement, window, urgent pointer and options; not the
	 * sequence number, flags or checksum. */
	return !memcmp(a, b, 4) && !memcmp(a + 8, b + 8, 5) && !memcmp(a + 14, b + 14, 2) &&
	       !memcmp(a + 18, b + 18, m->hl - m->l4 - 18);
}

int vnet_merge_add(struct vnet_merge *m, const uint8_t *f, size_t n)
{
	struct tcp_frame t;
	size_t payload;

	if (mergeable(f, n, &t, &payload) < 0)
		return -1;
	uint32_t seq = k_be32(f + t.l4 + 4);
	if (!m->n) {
		if (payload > 0xffff)
			return -1;
		memcpy(m->frame, f, n);
		m->n = n;
		m->l3 = t.l3;
		m->l4 = t.l4;
		m->hl = t.hl;
		m->v6 = t.v6;
		m->segs = 1;
		m->mss = (uint16_t)payload;
		m->next = seq + (uint32_t)payload;
		m->closed = (f[t.l4 + 13] & 0x08) || payload < VNET_GSO_MIN;
		return 1;
	}
	if (m->closed || seq != m->next || payload > m->mss || m->n + payload - m->l3 > 0xffff ||
	    !same_headers(m, f, &t))
		return 0;
	memcpy(m->frame + m->n, f + t.hl, payload);
	m->n += payload;
	m->next += (uint32_t)payload;
	m->segs++;
	m->frame[m->l4 + 13] |= f[t.l4 + 13] & 0x08;
	/* A short segment or PSH ends the run. */
	m->closed = payload < m->mss || (f[t.l4 + 13] & 0x08);
	return 1;
}

size_t vnet_merge_take(struct vnet_merge *m, struct vnet_hdr *h)
{
	size_t n = m->n;

	memset(h, 0, sizeof(*h));
	m->n = 0;
	if (m->segs < 2)
		return n;
	uint8_t *ip = m->frame + m->l3;
	struct tcp_frame t = { m->l3, m->l4, m->hl, m->v6 };
	if (m->v6) {
		k_put_be16(ip + 4, (uint16_t)(n - m->l4));
	} else {
		k_put_be16(ip + 2, (uint16_t)(n - m->l3));
		k_put_be16(ip + 10, 0);
		k_put_be16(ip + 10, net_sum_fold(net_sum(0, ip, m->l4 - m->l3)));
	}
	/* The pseudo-header's sum, not inverted, for the port to finish. */
	k_put_be16(m->frame + m->l4 + 16, (uint16_t)~net_sum_fold(pseudo_sum(m->frame, &t, n)));
	h->flags = VNET_F_NEEDS_CSUM;
	h->gso_type = m->v6 ? VNET_GSO_TCPV6 : VNET_GSO_TCPV4;
	h->gso_size = m->mss;
	h->hdr_len = (uint16_t)m->hl;
	h->csum_start = (uint16_t)m->l4;
	h->csum_offset = 16;
	return n;
}
