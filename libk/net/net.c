#include "net/net.h"
#include "core/bytes.h"
#include "core/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const uint8_t net_broadcast_mac[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };


uint32_t net_sum(uint32_t sum, const void *buf, size_t n)
{
	const uint8_t *p = buf;

	/* Eight bytes at a time in the machine's order: the ones' complement
	 * sum of byte-swapped words is the byte-swapped sum (RFC 1071, 2B),
	 * so the folded result is swapped back on a little-endian machine.
	 * Each step adds less than 2^33: a 64-bit sum cannot overflow. */
	uint64_t wide = 0;
	while (n >= 8) {
		uint64_t w;
		memcpy(&w, p, 8);
		wide += (w & 0xffffffffu) + (w >> 32);
		p += 8;
		n -= 8;
	}
	while (wide >> 16)
		wide = (wide & 0xffff) + (wide >> 16);
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	wide = (wide >> 8 | wide << 8) & 0xffff;
#endif
	sum += (uint32_t)wide;
	while (n > 1) {
		sum += k_be16(p);
		p += 2;
		n -= 2;
	}
	if (n)
		sum += (uint32_t)p[0] << 8;
	/* Fold now and then so a long buffer cannot overflow 32 bits. */
	return (sum & 0xffff) + (sum >> 16);
}

uint16_t net_sum_fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

/* The TCP/UDP pseudo-header sum. */
static uint32_t pseudo_sum(uint32_t saddr, uint32_t daddr, uint8_t proto, size_t len)
{
	uint8_t ph[12];

	k_put_be32(ph, saddr);
	k_put_be32(ph + 4, daddr);
	ph[8] = 0;
	ph[9] = proto;
	k_put_be16(ph + 10, (uint16_t)len);
	return net_sum(0, ph, sizeof(ph));
}

static int parse_arp(struct net_pkt *p, const uint8_t *a, size_t n)
{
	if (n < 28)
		return k_seterr("ARP packet of %zu bytes is too short", n);
	/* Only Ethernet hardware and IPv4 protocol addresses. */
	if (k_be16(a) != 1 || k_be16(a + 2) != NET_ETH_IPV4 || a[4] != 6 || a[5] != 4)
		return k_seterr("ARP packet for other than Ethernet/IPv4");
	p->arp.op = k_be16(a + 6);
	memcpy(p->arp.sha, a + 8, 6);
	p->arp.spa = k_be32(a + 14);
	memcpy(p->arp.tha, a + 18, 6);
	p->arp.tpa = k_be32(a + 24);
	return 0;
}

static int check_l4;            /* set by net_parse_ex for one call */

static int parse_tcp(struct net_pkt *p, const uint8_t *t, size_t n)
{
	if (n < 20)
		return k_seterr("TCP segment of %zu bytes is too short", n);
	size_t hl = (size_t)(t[12] >> 4) * 4;
	if (hl < 20 || hl > n)
		return k_seterr("TCP header length %zu does not fit a %zu-byte segment", hl, n);
	if (check_l4 && net_sum_fold(net_sum(pseudo_sum(p->saddr, p->daddr, NET_IP_TCP, n), t, n)) != 0)
		return k_seterr("TCP checksum is wrong");
	p->sport = k_be16(t);
	p->dport = k_be16(t + 2);
	p->seq = k_be32(t + 4);
	p->ack = k_be32(t + 8);
	p->tcp_flags = t[13] & 0x3f;
	p->window = k_be16(t + 14);
	/* Options: only MSS matters here; walk them all with bounds. */
	for (size_t i = 20; i < hl;) {
		uint8_t kind = t[i];
		if (kind == 0)
			break;
		if (kind == 1) {
			i++;
			continue;
		}
		if (i + 1 >= hl || t[i + 1] < 2 || i + t[i + 1] > hl)
			return k_seterr("TCP option %u has a bad length", kind);
		if (kind == 2 && t[i + 1] == 4)
			p->mss = k_be16(t + i + 2);
		i += t[i + 1];
	}
	p->data = t + hl;
	p->datalen = n - hl;
	return 0;
}

static int parse_ipv4(struct net_pkt *p, const uint8_t *ip, size_t n)
{
	if (n < 20)
		return k_seterr("IPv4 packet of %zu bytes is too short", n);
	if (ip[0] >> 4 != 4)
		return k_seterr("IP version %d, not 4", ip[0] >> 4);
	size_t hl = (size_t)(ip[0] & 15) * 4, total = k_be16(ip + 2);
	if (hl < 20 || total < hl || total > n)
		return k_seterr("IPv4 lengths (header %zu, total %zu) do not fit %zu bytes", hl, total, n);
	if (net_sum_fold(net_sum(0, ip, hl)) != 0)
		return k_seterr("IPv4 header checksum is wrong");
	p->ttl = ip[8];
	p->proto = ip[9];
	p->saddr = k_be32(ip + 12);
	p->daddr = k_be32(ip + 16);
	uint16_t frag = k_be16(ip + 6);
	if (frag & 0x3fff) {            /* more fragments, or an offset */
		p->fragment = 1;
		return 0;
	}
	const uint8_t *l4 = ip + hl;
	size_t l4len = total - hl;
	switch (p->proto) {
	case NET_IP_UDP: {
		if (l4len < 8)
			return k_seterr("UDP datagram of %zu bytes is too short", l4len);
		size_t ulen = k_be16(l4 + 4);
		if (ulen < 8 || ulen > l4len)
			return k_seterr("UDP length %zu does not fit %zu bytes", ulen, l4len);
		if (check_l4 && k_be16(l4 + 6) &&        /* 0: the sender computed none */
		    net_sum_fold(net_sum(pseudo_sum(p->saddr, p->daddr, NET_IP_UDP, ulen), l4, ulen)) != 0)
			return k_seterr("UDP checksum is wrong");
		p->sport = k_be16(l4);
		p->dport = k_be16(l4 + 2);
		p->data = l4 + 8;
		p->datalen = ulen - 8;
		return 0;
	}
	case NET_IP_TCP:
		return parse_tcp(p, l4, l4len);
	case NET_IP_ICMP:
		if (l4len < 8)
			return k_seterr("ICMP message of %zu bytes is too short", l4len);
		if (check_l4 && net_sum_fold(net_sum(0, l4, l4len)) != 0)
			return k_seterr("ICMP checksum is wrong");
		p->icmp_type = l4[0];
		p->icmp_code = l4[1];
		p->data = l4 + 4;
		p->datalen = l4len - 4;
		return 0;
	}
	return 0;
}

int net_parse(struct net_pkt *p, const uint8_t *f, size_t len)
{
	return net_parse_ex(p, f, len, 1);
}

int net_parse_ex(struct net_pkt *p, const uint8_t *f, size_t len, int l4)
{
	check_l4 = l4;
	memset(p, 0, sizeof(*p));
	if (len < NET_ETH_HLEN)
		return k_seterr("Ethernet frame of %zu bytes is too short", len);
	memcpy(p->dst, f, 6);
	memcpy(p->src, f + 6, 6);
	p->ethertype = k_be16(f + 12);
	if (p->ethertype == NET_ETH_ARP)
		return parse_arp(p, f + NET_ETH_HLEN, len - NET_ETH_HLEN);
	if (p->ethertype == NET_ETH_IPV4)
		return parse_ipv4(p, f + NET_ETH_HLEN, len - NET_ETH_HLEN);
	return 0;
}

/* ---- building */

static size_t eth_header(uint8_t *f, const uint8_t dst[6], const uint8_t src[6], uint16_t type)
{
	memcpy(f, dst, 6);
	memcpy(f + 6, src, 6);
	k_put_be16(f + 12, type);
	return NET_ETH_HLEN;
}

/* Pad to the Ethernet minimum, as a NIC would. */
static size_t pad(uint8_t *f, size_t n, size_t cap)
{
	if (n < NET_ETH_MIN && cap >= NET_ETH_MIN) {
		memset(f + n, 0, NET_ETH_MIN - n);
		n = NET_ETH_MIN;
	}
	return n;
}

size_t net_build_arp(uint8_t *f, size_t cap, uint16_t op, const uint8_t dst_mac[6],
		     const uint8_t sha[6], uint32_t spa, const uint8_t tha[6], uint32_t tpa)
{
	if (cap < NET_ETH_HLEN + 28)
		return 0;
	uint8_t *a = f + eth_header(f, dst_mac, sha, NET_ETH_ARP);
	k_put_be16(a, 1);
	k_put_be16(a + 2, NET_ETH_IPV4);
	a[4] = 6;
	a[5] = 4;
	k_put_be16(a + 6, op);
	memcpy(a + 8, sha, 6);
	k_put_be32(a + 14, spa);
	memcpy(a + 18, tha, 6);
	k_put_be32(a + 24, tpa);
	return pad(f, NET_ETH_HLEN + 28, cap);
}

/* The IPv4 header for L4LEN bytes of PROTO after it; returns where L4 starts. */
static uint8_t *ip_header(uint8_t *f, const struct net_ends *e, uint8_t proto, size_t l4len)
{
	static uint16_t ident;
	uint8_t *ip = f + eth_header(f, e->dst_mac, e->src_mac, NET_ETH_IPV4);

	ip[0] = 0x45;
	ip[1] = 0;
	k_put_be16(ip + 2, (uint16_t)(20 + l4len));
	k_put_be16(ip + 4, ident++);
	k_put_be16(ip + 6, 0x4000);          /* don't fragment */
	ip[8] = 64;
	ip[9] = proto;
	k_put_be16(ip + 10, 0);
	k_put_be32(ip + 12, e->saddr);
	k_put_be32(ip + 16, e->daddr);
	k_put_be16(ip + 10, net_sum_fold(net_sum(0, ip, 20)));
	return ip + 20;
}

size_t net_build_udp(uint8_t *f, size_t cap, const struct net_ends *e, const void *data, size_t n)
{
	size_t total = NET_ETH_HLEN + 20 + 8 + n;

	if (n > NET_MTU - 28 || cap < total)
		return 0;
	uint8_t *u = ip_header(f, e, NET_IP_UDP, 8 + n);
	k_put_be16(u, e->sport);
	k_put_be16(u + 2, e->dport);
	k_put_be16(u + 4, (uint16_t)(8 + n));
	k_put_be16(u + 6, 0);
	memcpy(u + 8, data, n);
	uint16_t sum = net_sum_fold(net_sum(pseudo_sum(e->saddr, e->daddr, NET_IP_UDP, 8 + n), u, 8 + n));
	k_put_be16(u + 6, sum ? sum : 0xffff);       /* 0 would mean "no checksum" */
	return pad(f, total, cap);
}

size_t net_build_icmp(uint8_t *f, size_t cap, const struct net_ends *e, uint8_t type,
		      uint8_t code, const void *rest, size_t n)
{
	size_t total = NET_ETH_HLEN + 20 + 4 + n;

	if (n > NET_MTU - 24 || cap < total)
		return 0;
	uint8_t *m = ip_header(f, e, NET_IP_ICMP, 4 + n);
	m[0] = type;
	m[1] = code;
	k_put_be16(m + 2, 0);
	memcpy(m + 4, rest, n);
	k_put_be16(m + 2, net_sum_fold(net_sum(0, m, 4 + n)));
	return pad(f, total, cap);
}

size_t net_build_tcp(uint8_t *f, size_t cap, const struct net_ends *e, uint32_t seq, uint32_t ack,
		     uint8_t flags, uint16_t window, uint16_t mss, const void *data, size_t n)
{
	size_t hl = mss ? 24 : 20, total = NET_ETH_HLEN + 20 + hl + n;

	if (n > NET_MTU - 20 - hl || cap < total)
		return 0;
	uint8_t *t = ip_header(f, e, NET_IP_TCP, hl + n);
	k_put_be16(t, e->sport);
	k_put_be16(t + 2, e->dport);
	k_put_be32(t + 4, seq);
	k_put_be32(t + 8, ack);
	t[12] = (uint8_t)(hl / 4) << 4;
	t[13] = flags;
	k_put_be16(t + 14, window);
	k_put_be16(t + 16, 0);
	k_put_be16(t + 18, 0);
	if (mss) {
		t[20] = 2;
		t[21] = 4;
		k_put_be16(t + 22, mss);
	}
	if (n)
		memcpy(t + hl, data, n);
	k_put_be16(t + 16, net_sum_fold(net_sum(pseudo_sum(e->saddr, e->daddr, NET_IP_TCP, hl + n), t, hl + n)));
	return pad(f, total, cap);
}

/* ---- text */

int net_parse_mac(const char *s, uint8_t mac[6])
{
	for (int i = 0; i < 6; i++) {
		int v = 0;
		for (int d = 0; d < 2; d++, s++) {
			int c = *s;
			if (c >= '0' && c <= '9')
				v = v * 16 + c - '0';
			else if (c >= 'a' && c <= 'f')
				v = v * 16 + c - 'a' + 10;
			else if (c >= 'A' && c <= 'F')
				v = v * 16 + c - 'A' + 10;
			else
				return -1;
		}
		mac[i] = (uint8_t)v;
		if (i < 5 && *s++ != ':')
			return -1;
	}
	return *s ? -1 : 0;
}

int net_parse_ip(const char *s, uint32_t *ip)
{
	uint32_t v = 0;

	for (int i = 0; i < 4; i++) {
		unsigned part = 0;
		int digits = 0;
		while (*s >= '0' && *s <= '9') {
			part = part * 10 + (unsigned)(*s++ - '0');
			if (++digits > 3 || part > 255)
				return -1;
		}
		if (!digits)
			return -1;
		v = v << 8 | part;
		if (i < 3 && *s++ != '.')
			return -1;
	}
	if (*s)
		return -1;
	*ip = v;
	return 0;
}

int net_mask_bits(uint32_t mask)
{
	int bits = 0;

	while (bits < 32 && (mask & (0x80000000u >> bits)))
		bits++;
	if (bits < 32 && (mask << bits))
		return -1;
	return bits;
}

int net_parse_mask(const char *s, uint32_t *mask)
{
	if (strchr(s, '.')) {
		if (net_parse_ip(s, mask) < 0 || net_mask_bits(*mask) < 0)
			return -1;
		return 0;
	}
	char *end;
	long bits = strtol(s, &end, 10);
	if (end == s || *end || bits < 0 || bits > 32)
		return -1;
	*mask = bits ? ~0u << (32 - bits) : 0;
	return 0;
}

const char *net_fmt_mac(const uint8_t m[6], char buf[18])
{
	snprintf(buf, 18, "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]);
	return buf;
}

const char *net_fmt_ip(uint32_t ip, char buf[16])
{
	snprintf(buf, 16, "%u.%u.%u.%u", ip >> 24, (ip >> 16) & 255, (ip >> 8) & 255, ip & 255);
	return buf;
}
