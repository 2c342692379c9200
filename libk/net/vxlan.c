#include "net/vxlan.h"
#include "core/err.h"
#include "net/net.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const vxlan_verdict_name[VX_NVERDICTS] = {
	[VX_OK] = "delivered", [VX_SHORT] = "short", [VX_FLAGS] = "no VNI flag", [VX_VNI] = "other VNI",
	[VX_SIZE] = "oversized", [VX_SOURCE] = "group source MAC", [VX_STRANGER] = "not from a remote",
	[VX_TOO_BIG] = "over the MTU (not sent)", [VX_SEND] = "send failed",
};

#define VX_FLAG_I 0x08

static int parse_port(const char *s, uint16_t *port)
{
	char *end;
	unsigned long v = strtoul(s, &end, 10);

	if (!*s || *end || v == 0 || v > 65535)
		return -1;
	*port = (uint16_t)v;
	return 0;
}

int vxlan_parse_addr(const char *s, uint16_t default_port, struct vxlan_addr *a)
{
	char host[64];
	const char *port = NULL, *all = s;
	size_t n;

	memset(a, 0, sizeof(*a));
	if (s[0] == '[') {
		const char *close = strchr(s, ']');
		if (!close || (close[1] && close[1] != ':'))
			return k_seterr("'%s': not [IPV6] or [IPV6]:PORT", s);
		n = (size_t)(close - s - 1);
		if (close[1] == ':')
			port = close + 2;
		s++;
	} else {
		const char *colon = strchr(s, ':');
		/* One colon: ADDR:PORT; more: a bare IPv6 address. */
		if (colon && !strchr(colon + 1, ':')) {
			n = (size_t)(colon - s);
			port = colon + 1;
		} else {
			n = strlen(s);
		}
	}
	if (n == 0 || n >= sizeof(host))
		return k_seterr("'%s': no address", all);
	memcpy(host, s, n);
	host[n] = 0;
	uint16_t p = default_port;
	if (port && parse_port(port, &p) < 0)
		return k_seterr("'%s': the port is not a number from 1 to 65535", all);
	struct sockaddr_in *v4 = (struct sockaddr_in *)&a->sa;
	struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&a->sa;
	if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
		v4->sin_family = AF_INET;
		v4->sin_port = htons(p);
		a->len = sizeof(*v4);
	} else if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
		v6->sin6_family = AF_INET6;
		v6->sin6_port = htons(p);
		a->len = sizeof(*v6);
	} else {
		return k_seterr("'%s': not an IPv4 or IPv6 address (names are not looked up)", all);
	}
	return 0;
}

const char *vxlan_fmt_addr(const struct vxlan_addr *a, char *buf)
{
	char h[INET6_ADDRSTRLEN];

	if (a->sa.ss_family == AF_INET) {
		const struct sockaddr_in *v4 = (const struct sockaddr_in *)&a->sa;
		inet_ntop(AF_INET, &v4->sin_addr, h, sizeof(h));
		snprintf(buf, 64, "%s:%u", h, ntohs(v4->sin_port));
	} else if (a->sa.ss_family == AF_INET6) {
		const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)&a->sa;
		inet_ntop(AF_INET6, &v6->sin6_addr, h, sizeof(h));
		snprintf(buf, 64, "[%s]:%u", h, ntohs(v6->sin6_port));
	} else {
		snprintf(buf, 64, "(no address)");
	}
	return buf;
}

/* A's address as 16 bytes of IPv6 (IPv4 mapped): 0, or -1 for neither. */
static int as_v6(const struct vxlan_addr *a, uint8_t out[16])
{
	if (a->sa.ss_family == AF_INET6) {
		memcpy(out, &((const struct sockaddr_in6 *)&a->sa)->sin6_addr, 16);
		return 0;
	}
	if (a->sa.ss_family == AF_INET) {
		memset(out, 0, 10);
		out[10] = out[11] = 0xff;
		memcpy(out + 12, &((const struct sockaddr_in *)&a->sa)->sin_addr, 4);
		return 0;
	}
	return -1;
}

int vxlan_same_host(const struct vxlan_addr *a, const struct vxlan_addr *b)
{
	uint8_t x[16], y[16];

	return as_v6(a, x) == 0 && as_v6(b, y) == 0 && !memcmp(x, y, 16);
}

static uint16_t port_of(const struct vxlan_addr *a)
{
	return a->sa.ss_family == AF_INET ? ((const struct sockaddr_in *)&a->sa)->sin_port
					  : ((const struct sockaddr_in6 *)&a->sa)->sin6_port;
}

int vxlan_addr_as(const struct vxlan_addr *a, int family, struct vxlan_addr *out)
{
	if (a->sa.ss_family == family) {
		*out = *a;
		return 0;
	}
	if (family != AF_INET6 || a->sa.ss_family != AF_INET)
		return -1;
	memset(out, 0, sizeof(*out));
	struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&out->sa;
	v6->sin6_family = AF_INET6;
	v6->sin6_port = port_of(a);
	as_v6(a, v6->sin6_addr.s6_addr);
	out->len = sizeof(*v6);
	return 0;
}

/* Does A travel as IPv6 (not IPv4, nor IPv4-mapped)? */
static int is_v6(const struct vxlan_addr *a)
{
	return a->sa.ss_family == AF_INET6 &&
	       !IN6_IS_ADDR_V4MAPPED(&((const struct sockaddr_in6 *)&a->sa)->sin6_addr);
}

int vxlan_mtu(const struct vxlan_conf *c)
{
	int v6 = 0;

	if (c->mtu)
		return c->mtu;
	for (int i = 0; i < c->nremotes; i++)
		v6 |= is_v6(&c->remote[i]);
	return VXLAN_UNDERLAY_MTU - (v6 ? VXLAN_OVERHEAD_V6 : VXLAN_OVERHEAD_V4);
}

enum vxlan_verdict vxlan_check(uint32_t vni, const uint8_t *d, size_t n, size_t maxframe, size_t *flen)
{
	if (n < VXLAN_HLEN + NET_ETH_HLEN)
		return VX_SHORT;
	if (!(d[0] & VX_FLAG_I))
		return VX_FLAGS;
	/* The other flag bits and the reserved bytes are ignored on receipt
	 * (RFC 7348, 5). */
	if ((uint32_t)(d[4] << 16 | d[5] << 8 | d[6]) != vni)
		return VX_VNI;
	if (n - VXLAN_HLEN > maxframe)
		return VX_SIZE;
	if (net_mac_is_group(d + VXLAN_HLEN + 6))
		return VX_SOURCE;
	*flen = n - VXLAN_HLEN;
	return VX_OK;
}

enum vxlan_verdict vxlan_receive(const struct vxlan_conf *c, const struct vxlan_addr *from, const uint8_t *d,
				 size_t n, size_t maxframe, int *remote, size_t *flen)
{
	for (int r = 0; r < c->nremotes; r++) {
		if (vxlan_same_host(from, &c->remote[r])) {
			*remote = r;
			return vxlan_check(c->vni, d, n, maxframe, flen);
		}
	}
	return VX_STRANGER;
}

void vxlan_header(uint8_t h[VXLAN_HLEN], uint32_t vni)
{
	memset(h, 0, VXLAN_HLEN);
	h[0] = VX_FLAG_I;
	h[4] = (uint8_t)(vni >> 16);
	h[5] = (uint8_t)(vni >> 8);
	h[6] = (uint8_t)vni;
}
