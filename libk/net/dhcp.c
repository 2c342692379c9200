#include "net/dhcp.h"
#include "core/bytes.h"
#include "core/err.h"
#include "core/xio.h"
#include "net/net.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const uint8_t cookie[4] = { 99, 130, 83, 99 };


const char *dhcp_type_name(int type)
{
	static const char *const names[] = { "BOOTP", "DISCOVER", "OFFER", "REQUEST", "DECLINE",
					     "ACK", "NAK", "RELEASE", "INFORM" };
	return type >= 0 && type <= 8 ? names[type] : "UNKNOWN";
}

static void copy_string(char *dst, size_t cap, const uint8_t *src, size_t n)
{
	if (n >= cap)
		n = cap - 1;
	memcpy(dst, src, n);
	dst[n] = 0;
	dst[strnlen(dst, n)] = 0;       /* an embedded NUL ends it */
}

/* One option area [p, p+n).  *overload is set from option 52 when ALLOW. */
static int parse_options(struct dhcp_msg *m, const uint8_t *p, size_t n, int *overload, int allow)
{
	for (size_t i = 0; i < n;) {
		uint8_t code = p[i];
		if (code == DHO_PAD) {
			i++;
			continue;
		}
		if (code == DHO_END)
			return 0;
		if (i + 2 > n || i + 2 + p[i + 1] > n)
			return k_seterr("DHCP option %u runs past the end of the message", code);
		size_t len = p[i + 1];
		const uint8_t *v = p + i + 2;
#define NEED(cond) do { if (!(cond)) return k_seterr("DHCP option %u has a bad length %zu", code, len); } while (0)
		switch (code) {
		case DHO_SUBNET_MASK: NEED(len == 4); m->mask = k_be32(v); m->have |= DH_MASK; break;
		case DHO_ROUTER: NEED(len >= 4 && len % 4 == 0); m->router = k_be32(v); m->have |= DH_ROUTER; break;
		case DHO_DNS:
			NEED(len >= 4 && len % 4 == 0);
			for (size_t k = 0; k < len / 4 && m->ndns < 4; k++)
				m->dns[m->ndns++] = k_be32(v + 4 * k);
			m->have |= DH_DNS;
			break;
		case DHO_HOSTNAME: NEED(len >= 1); copy_string(m->hostname, sizeof(m->hostname), v, len);
			if (len >= sizeof(m->hostname))
				m->hostname[0] = 0;     /* too long to be a host name: ignore it */
			else
				m->have |= DH_HOSTNAME;
			break;
		case DHO_DOMAIN: NEED(len >= 1); copy_string(m->domain, sizeof(m->domain), v, len); m->have |= DH_DOMAIN; break;
		case DHO_BROADCAST: NEED(len == 4); m->bcast = k_be32(v); m->have |= DH_BROADCAST_ADDR; break;
		case DHO_MTU:
			NEED(len == 2);
			m->mtu = k_be16(v);
			if (m->mtu >= 68)       /* RFC 2132's least; a smaller one is ignored */
				m->have |= DH_MTU;
			break;
		case DHO_REQUESTED_IP: NEED(len == 4); m->reqip = k_be32(v); m->have |= DH_REQIP; break;
		case DHO_LEASE_TIME: NEED(len == 4); m->lease = k_be32(v); m->have |= DH_LEASE; break;
		case DHO_OVERLOAD:
			NEED(len == 1 && v[0] >= 1 && v[0] <= 3);
			if (allow)
				*overload = v[0];
			break;
		case DHO_MSG_TYPE: NEED(len == 1); m->type = v[0]; break;
		case DHO_SERVER_ID: NEED(len == 4); m->serverid = k_be32(v); m->have |= DH_SERVERID; break;
		case DHO_MESSAGE: copy_string(m->message, sizeof(m->message), v, len); m->have |= DH_MESSAGE; break;
		case DHO_T1: NEED(len == 4); m->t1 = k_be32(v); m->have |= DH_T1; break;
		case DHO_T2: NEED(len == 4); m->t2 = k_be32(v); m->have |= DH_T2; break;
		case DHO_CLIENT_ID:
			NEED(len >= 2 && len <= sizeof(m->clientid));
			memcpy(m->clientid, v, len);
			m->clientid_len = len;
			m->have |= DH_CLIENTID;
			break;
		}
#undef NEED
		i += 2 + len;
	}
	return 0;                       /* no end option: tolerated, as most servers do */
}

int dhcp_parse(struct dhcp_msg *m, const uint8_t *b, size_t len)
{
	memset(m, 0, sizeof(*m));
	if (len < 240)
		return k_seterr("DHCP message of %zu bytes is too short (at least 240)", len);
	if (b[0] != 1 && b[0] != 2)
		return k_seterr("DHCP op %u is neither request nor reply", b[0]);
	if (b[1] != 1 || b[2] != 6)
		return k_seterr("DHCP hardware type %u length %u: only Ethernet", b[1], b[2]);
	if (memcmp(b + 236, cookie, 4))
		return k_seterr("DHCP magic cookie missing");
	m->op = b[0];
	m->xid = k_be32(b + 4);
	m->secs = k_be16(b + 8);
	m->flags = k_be16(b + 10);
	m->ciaddr = k_be32(b + 12);
	m->yiaddr = k_be32(b + 16);
	m->siaddr = k_be32(b + 20);
	m->giaddr = k_be32(b + 24);
	memcpy(m->chaddr, b + 28, 6);
	int overload = 0;
	if (parse_options(m, b + 240, len - 240, &overload, 1) < 0)
		return -1;
	/* RFC 2131 4.1: options, then 'file', then 'sname'. */
	if ((overload & 1) && parse_options(m, b + 108, 128, &overload, 0) < 0)
		return -1;
	if ((overload & 2) && parse_options(m, b + 44, 64, &overload, 0) < 0)
		return -1;
	if (m->type > DHCPINFORM)
		return k_seterr("DHCP message type %u is unknown", m->type);
	return 0;
}

static uint8_t *opt(uint8_t *p, uint8_t code, const void *v, size_t len)
{
	*p++ = code;
	*p++ = (uint8_t)len;
	memcpy(p, v, len);
	return p + len;
}

static uint8_t *opt32(uint8_t *p, uint8_t code, uint32_t v)
{
	uint8_t b[4];

	k_put_be32(b, v);
	return opt(p, code, b, 4);
}

size_t dhcp_build(uint8_t *b, const struct dhcp_msg *m)
{
	memset(b, 0, DHCP_MAX_MSG);
	b[0] = m->op;
	b[1] = 1;
	b[2] = 6;
	k_put_be32(b + 4, m->xid);
	k_put_be16(b + 8, m->secs);
	k_put_be16(b + 10, m->flags);
	k_put_be32(b + 12, m->ciaddr);
	k_put_be32(b + 16, m->yiaddr);
	k_put_be32(b + 20, m->siaddr);
	k_put_be32(b + 24, m->giaddr);
	memcpy(b + 28, m->chaddr, 6);
	memcpy(b + 236, cookie, 4);
	uint8_t *p = b + 240;
	p = opt(p, DHO_MSG_TYPE, &m->type, 1);
	if (m->have & DH_SERVERID) p = opt32(p, DHO_SERVER_ID, m->serverid);
	if (m->have & DH_REQIP) p = opt32(p, DHO_REQUESTED_IP, m->reqip);
	if (m->have & DH_LEASE) p = opt32(p, DHO_LEASE_TIME, m->lease);
	if (m->have & DH_T1) p = opt32(p, DHO_T1, m->t1);
	if (m->have & DH_T2) p = opt32(p, DHO_T2, m->t2);
	if (m->have & DH_MASK) p = opt32(p, DHO_SUBNET_MASK, m->mask);
	if (m->have & DH_BROADCAST_ADDR) p = opt32(p, DHO_BROADCAST, m->bcast);
	if (m->have & DH_ROUTER) p = opt32(p, DHO_ROUTER, m->router);
	if (m->have & DH_MTU) {
		uint8_t v[2];
		k_put_be16(v, m->mtu);
		p = opt(p, DHO_MTU, v, 2);
	}
	if ((m->have & DH_DNS) && m->ndns > 0) {
		uint8_t d[16];
		for (int i = 0; i < m->ndns && i < 4; i++)
			k_put_be32(d + 4 * i, m->dns[i]);
		p = opt(p, DHO_DNS, d, 4 * (size_t)(m->ndns < 4 ? m->ndns : 4));
	}
	if ((m->have & DH_HOSTNAME) && m->hostname[0])
		p = opt(p, DHO_HOSTNAME, m->hostname, strlen(m->hostname));
	if ((m->have & DH_DOMAIN) && m->domain[0])
		p = opt(p, DHO_DOMAIN, m->domain, strlen(m->domain));
	if ((m->have & DH_MESSAGE) && m->message[0])
		p = opt(p, DHO_MESSAGE, m->message, strlen(m->message));
	if (m->have & DH_CLIENTID)
		p = opt(p, DHO_CLIENT_ID, m->clientid, m->clientid_len);
	if (m->op == 1) {
		static const uint8_t want[] = { DHO_SUBNET_MASK, DHO_ROUTER, DHO_DNS, DHO_HOSTNAME, DHO_DOMAIN,
						 DHO_BROADCAST, DHO_LEASE_TIME, DHO_T1, DHO_T2, DHO_MTU };
		uint8_t max[2];
		k_put_be16(max, 576);
		p = opt(p, DHO_MAX_SIZE, max, 2);
		p = opt(p, DHO_PARAM_LIST, want, sizeof(want));
	}
	*p++ = DHO_END;
	size_t n = (size_t)(p - b);
	return n < 300 ? 300 : n;       /* the BOOTP minimum some clients insist on */
}

/* ---- the server */

static int valid_hostname(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 63)
		return 0;
	for (const char *c = s; *c; c++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
		      (*c >= '0' && *c <= '9') || *c == '-' || *c == '.' || *c == '_'))
			return 0;
	return 1;
}

static int in_subnet(const struct dhcps_conf *c, uint32_t ip)
{
	uint32_t host = ip & ~c->mask;
	return (ip & c->mask) == (c->server_ip & c->mask) && host != 0 && host != ~c->mask;
}

int dhcps_init(struct dhcps *s, const struct dhcps_conf *c)
{
	char a[16], b[16];

	memset(s, 0, sizeof(*s));
	s->c = *c;
	if (net_mask_bits(c->mask) < 8 || net_mask_bits(c->mask) > 30)
		return k_seterr("netmask %s: the subnet must be between /8 and /30",
				net_fmt_ip(c->mask, a));
	if (!in_subnet(c, c->server_ip))
		return k_seterr("the server address %s is not a host address in its subnet",
				net_fmt_ip(c->server_ip, a));
	if (c->pool_first > c->pool_last || !in_subnet(c, c->pool_first) || !in_subnet(c, c->pool_last))
		return k_seterr("the pool %s-%s is not a range of host addresses in the server's subnet",
				net_fmt_ip(c->pool_first, a), net_fmt_ip(c->pool_last, b));
	if (c->pool_last - c->pool_first >= (1u << 20))
		return k_seterr("a pool of more than %u addresses is not supported", 1u << 20);
	if (c->server_ip >= c->pool_first && c->server_ip <= c->pool_last)
		return k_seterr("the server's own address %s is inside the pool",
				net_fmt_ip(c->server_ip, a));
	for (int i = 0; i < c->nstatics; i++) {
		if (!in_subnet(c, c->statics[i].ip))
			return k_seterr("static lease %s is not in the server's subnet",
					net_fmt_ip(c->statics[i].ip, a));
		if (c->statics[i].ip == c->server_ip)
			return k_seterr("static lease %s is the server's own address",
					net_fmt_ip(c->statics[i].ip, a));
	}
	if (c->lease_secs < 10)
		return k_seterr("a lease time under 10 seconds is not useful");
	s->by_ip = calloc((size_t)(c->pool_last - c->pool_first) + 1, sizeof(*s->by_ip));
	if (!s->by_ip)
		return k_seterr("out of memory");
	return 0;
}

void dhcps_free(struct dhcps *s)
{
	free(s->leases);
	free(s->by_ip);
	free(s->by_mac);
	s->leases = NULL;
	s->by_ip = s->by_mac = NULL;
	s->n = s->cap = s->mac_slots = 0;
}


static const uint8_t no_mac[6];

static struct lease *by_mac(struct dhcps *s, const uint8_t mac[6])
{
	if (!s->mac_slots)
		return NULL;
	for (size_t i = net_mac_hash(mac) & (s->mac_slots - 1);; i = (i + 1) & (s->mac_slots - 1)) {
		uint32_t k = s->by_mac[i];
		if (!k)
			return NULL;
		if (!memcmp(s->leases[k - 1].mac, mac, 6))
			return &s->leases[k - 1];
	}
}

static void mac_insert(struct dhcps *s, uint32_t idx)
{
	size_t i = net_mac_hash(s->leases[idx].mac) & (s->mac_slots - 1);
	while (s->by_mac[i])
		i = (i + 1) & (s->mac_slots - 1);
	s->by_mac[i] = idx + 1;
}

static int in_pool(const struct dhcps *s, uint32_t ip)
{
	return ip >= s->c.pool_first && ip <= s->c.pool_last;
}

/* The record holding IP, if any (each address is in one record at most). */
static struct lease *ip_owner(struct dhcps *s, uint32_t ip)
{
	if (in_pool(s, ip)) {
		uint32_t k = s->by_ip[ip - s->c.pool_first];
		return k ? &s->leases[k - 1] : NULL;
	}
	for (size_t i = 0; i < s->n; i++)       /* static addresses outside the pool: few */
		if (s->leases[i].ip == ip)
			return &s->leases[i];
	return NULL;
}

/* Give L the address IP (0: none), taking it from whoever had it. */
static void set_ip(struct dhcps *s, struct lease *l, uint32_t ip)
{
	if (l->ip == ip)
		return;
	if (l->ip && in_pool(s, l->ip) && s->by_ip[l->ip - s->c.pool_first] == (uint32_t)(l - s->leases) + 1)
		s->by_ip[l->ip - s->c.pool_first] = 0;
	if (ip) {
		struct lease *o = ip_owner(s, ip);
		if (o && o != l) {
			o->ip = 0;
			if (o->state != LEASE_DECLINED)
				o->state = LEASE_FREE;
		}
		if (in_pool(s, ip))
			s->by_ip[ip - s->c.pool_first] = (uint32_t)(l - s->leases) + 1;
	}
	l->ip = ip;
}

static const struct dhcp_static *static_for_mac(const struct dhcps *s, const uint8_t mac[6])
{
	for (int i = 0; i < s->c.nstatics; i++)
		if (!memcmp(s->c.statics[i].mac, mac, 6))
			return &s->c.statics[i];
	return NULL;
}

static const struct dhcp_static *static_for_ip(const struct dhcps *s, uint32_t ip)
{
	for (int i = 0; i < s->c.nstatics; i++)
		if (s->c.statics[i].ip == ip)
			return &s->c.statics[i];
	return NULL;
}

/* A new record for MAC (all zeros: an address owned by no client). */
static struct lease *new_lease(struct dhcps *s, const uint8_t mac[6])
{
	if (s->n >= (1u << 24))
		return NULL;                    /* a flood of made-up MACs ends here */
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 64;
		struct lease *l = realloc(s->leases, cap * sizeof(*l));
		if (!l)
			return NULL;
		s->leases = l;
		s->cap = cap;
	}
	if ((s->n + 1) * 2 > s->mac_slots) {    /* keep the MAC table half empty */
		size_t slots = s->mac_slots ? s->mac_slots * 2 : 128;
		uint32_t *t = calloc(slots, sizeof(*t));
		if (!t)
			return NULL;
		free(s->by_mac);
		s->by_mac = t;
		s->mac_slots = slots;
		for (size_t i = 0; i < s->n; i++)
			if (memcmp(s->leases[i].mac, no_mac, 6))
				mac_insert(s, (uint32_t)i);
	}
	struct lease *l = &s->leases[s->n++];
	memset(l, 0, sizeof(*l));
	memcpy(l->mac, mac, 6);
	if (memcmp(mac, no_mac, 6))
		mac_insert(s, (uint32_t)(s->n - 1));
	return l;
}

/* Is IP free for MAC at NOW: in the subnet, not the server, not someone
 * else's static address, not held (offered, bound, declined) by another. */
static int available(struct dhcps *s, uint32_t ip, const uint8_t mac[6], time_t now)
{
	if (!in_subnet(&s->c, ip) || ip == s->c.server_ip)
		return 0;
	const struct dhcp_static *st = static_for_ip(s, ip);
	if (st && memcmp(st->mac, mac, 6))
		return 0;
	struct lease *o = ip_owner(s, ip);
	return !o || !memcmp(o->mac, mac, 6) || o->state == LEASE_FREE || o->expires <= now;
}

static int reserved(const struct dhcps *s, uint32_t ip)
{
	return ip == s->c.server_ip || static_for_ip(s, ip);
}

/* The address for MAC: its static one, the one it has or had, the one it
 * asks for, a never-used one, or the one free longest.  0: none. */
static uint32_t choose(struct dhcps *s, const uint8_t mac[6], uint32_t want, time_t now)
{
	const struct dhcp_static *st = static_for_mac(s, mac);
	if (st)
		return st->ip;
	struct lease *l = by_mac(s, mac);
	if (l && l->ip && l->state != LEASE_DECLINED && in_pool(s, l->ip) && available(s, l->ip, mac, now))
		return l->ip;
	if (want && in_pool(s, want) && !reserved(s, want) && available(s, want, mac, now))
		return want;
	/* Never used (or given up): from where the last search stopped. */
	uint32_t size = s->c.pool_last - s->c.pool_first + 1;
	for (uint32_t k = 0; k < size; k++) {
		uint32_t ip = s->c.pool_first + (s->cursor + k) % size;
		if (!s->by_ip[ip - s->c.pool_first] && !reserved(s, ip)) {
			s->cursor = (s->cursor + k + 1) % size;
			return ip;
		}
	}
	/* All taken once: the one whose lease ended longest ago. */
	uint32_t best = 0;
	time_t best_t = now + 1;
	for (uint32_t ip = s->c.pool_first; ip <= s->c.pool_last && ip; ip++) {
		struct lease *o = ip_owner(s, ip);
		if (reserved(s, ip) || !o)
			continue;
		time_t t = o->state == LEASE_FREE ? (o->expires < now ? o->expires : now) : o->expires;
		if (t <= now && t < best_t) {
			best = ip;
			best_t = t;
		}
	}
	return best;
}

static void hostname_for(struct dhcps *s, const uint8_t mac[6], uint32_t ip, char *out, size_t cap)
{
	const struct dhcp_static *st = static_for_mac(s, mac);

	out[0] = 0;
	if (st && st->hostname[0])
		snprintf(out, cap, "%s", st->hostname);
	else if (s->c.hostname_prefix[0])
		snprintf(out, cap, "%s%" PRIu32, s->c.hostname_prefix, ip & ~s->c.mask);
}

static void reply_base(struct dhcps *s, const struct dhcp_msg *in, struct dhcp_msg *out, int type)
{
	memset(out, 0, sizeof(*out));
	out->op = 2;
	out->type = (uint8_t)type;
	out->xid = in->xid;
	out->flags = in->flags;
	out->giaddr = in->giaddr;
	if (in->giaddr && type == DHCPNAK)
		out->flags |= 0x8000;   /* the relay broadcasts it to the client */
	memcpy(out->chaddr, in->chaddr, 6);
	out->serverid = s->c.server_ip;
	out->have = DH_SERVERID;
}

static void reply_params(struct dhcps *s, struct dhcp_msg *out, int with_lease)
{
	out->mask = s->c.mask;
	out->bcast = s->c.bcast ? s->c.bcast : (s->c.server_ip | ~s->c.mask);
	out->have |= DH_MASK | DH_BROADCAST_ADDR;
	if (s->c.mtu) {
		out->mtu = s->c.mtu;
		out->have |= DH_MTU;
	}
	if (with_lease) {
		out->lease = s->c.lease_secs;
		out->t1 = s->c.lease_secs / 2;
		out->t2 = (uint32_t)((uint64_t)s->c.lease_secs * 7 / 8);
		out->have |= DH_LEASE | DH_T1 | DH_T2;
	}
	if (s->c.router) {
		out->router = s->c.router;
		out->have |= DH_ROUTER;
	}
	if (s->c.ndns) {
		memcpy(out->dns, s->c.dns, sizeof(out->dns));
		out->ndns = s->c.ndns;
		out->have |= DH_DNS;
	}
	if (s->c.domain[0]) {
		snprintf(out->domain, sizeof(out->domain), "%s", s->c.domain);
		out->have |= DH_DOMAIN;
	}
}

#define LOG(...) do { if (s->c.log) s->c.log(__VA_ARGS__); } while (0)

static int nak(struct dhcps *s, const struct dhcp_msg *in, struct dhcp_msg *out, const char *why)
{
	char m[18], a[16];
	uint32_t ip = in->have & DH_REQIP ? in->reqip : in->ciaddr;

	LOG("NAK %s to %s: %s", net_fmt_ip(ip, a), net_fmt_mac(in->chaddr, m), why);
	reply_base(s, in, out, DHCPNAK);
	snprintf(out->message, sizeof(out->message), "%s", why);
	out->have |= DH_MESSAGE;
	return 1;
}

/* One handler per message type: 1 with a reply in OUT, 0 for none. */
static int on_discover(struct dhcps *s, const struct dhcp_msg *in, struct dhcp_msg *out, time_t now)
{
	char m[18], a[16];
	uint32_t ip = choose(s, in->chaddr, in->have & DH_REQIP ? in->reqip : 0, now);

	if (!ip) {
		LOG("pool exhausted: no address to offer %s", net_fmt_mac(in->chaddr, m));
		return 0;
	}
	struct lease *l = by_mac(s, in->chaddr);
	if (!l && !(l = new_lease(s, in->chaddr)))
		return 0;
	if (l->state != LEASE_BOUND || l->ip != ip || l->expires <= now) {
		l->state = LEASE_OFFERED;
		l->expires = now + 60;  /* held that long for the REQUEST */
	}
	set_ip(s, l, ip);
	reply_base(s, in, out, DHCPOFFER);
	out->yiaddr = ip;
	reply_params(s, out, 1);
	hostname_for(s, in->chaddr, ip, out->hostname, sizeof(out->hostname));
	if (out->hostname[0])
		out->have |= DH_HOSTNAME;
	LOG("OFFER %s to %s", net_fmt_ip(ip, a), net_fmt_mac(in->chaddr, m));
	return 1;
}

/* A REQUEST's address and lease (in *IP, *LP): 1 to go on, else what to
 * return (a NAK's 1, or 0 for no answer). */
static int request_lease(struct dhcps *s, const struct dhcp_msg *in, struct dhcp_msg *out, time_t now,
			 uint32_t *ip, struct lease **lp)
{
	struct lease *l;

	if (in->have & DH_SERVERID) {           /* SELECTING */
		l = by_mac(s, in->chaddr);
		if (in->serverid != s->c.server_ip) {
			/* It chose another server: forget our offer. */
			if (l && l->state == LEASE_OFFERED)
				l->state = LEASE_FREE;
			return 0;
		}
		if (!(in->have & DH_REQIP))
			return nak(s, in, out, "no requested address");
		*ip = in->reqip;
		if (!l || l->ip != *ip || (l->state != LEASE_OFFERED && l->state != LEASE_BOUND))
			return nak(s, in, out, "not the address offered");
	} else {                                /* INIT-REBOOT, RENEWING, REBINDING */
		*ip = in->ciaddr ? in->ciaddr : (in->have & DH_REQIP ? in->reqip : 0);
		if (!*ip)
			return nak(s, in, out, "no address requested");
		if (!in_subnet(&s->c, *ip))
			return nak(s, in, out, "wrong network");
		const struct dhcp_static *st = static_for_mac(s, in->chaddr);
		if (st && st->ip != *ip)
			return nak(s, in, out, "this client has a static address");
		if (!st && !in_pool(s, *ip))
			return nak(s, in, out, "address outside the pool");
		if (!available(s, *ip, in->chaddr, now))
			return nak(s, in, out, "address in use by another client");
		l = by_mac(s, in->chaddr);
		if (!l && !(l = new_lease(s, in->chaddr)))
			return 0;
	}
	*lp = l;
	return 2;
}

static int on_request(struct dhcps *s, const struct dhcp_msg *in, struct dhcp_msg *out, time_t now)
{
	char m[18], a[16];
	uint32_t ip = 0;
	struct lease *l = NULL;
	int r = request_lease(s, in, out, now, &ip, &l);

	if (r != 2)
		return r;
	/* Whoever had the address before loses its record of it. */
	set_ip(s, l, ip);
	l->state = LEASE_BOUND;
	l->expires = now + s->c.lease_secs;
	hostname_for(s, in->chaddr, ip, l->hostname, sizeof(l->hostname));
	if (!l->hostname[0] && (in->have & DH_HOSTNAME) && valid_hostname(in->hostname))
		snprintf(l->hostname, sizeof(l->hostname), "%s", in->hostname);
	s->dirty = 1;
	reply_base(s, in, out, DHCPACK);
	out->yiaddr = ip;
	out->ciaddr = in->ciaddr;
	reply_params(s, out, 1);
	hostname_for(s, in->chaddr, ip, out->hostname, sizeof(out->hostname));
	if (out->hostname[0])
		out->have |= DH_HOSTNAME;
	LOG("ACK %s to %s%s%s", net_fmt_ip(ip, a), net_fmt_mac(in->chaddr, m), l->hostname[0] ? " " : "",
	    l->hostname);
	return 1;
}

static int on_decline(struct dhcps *s, const struct dhcp_msg *in, struct dhcp_msg *out, time_t now)
{
	char m[18], a[16];

	(void)out;
	if (!(in->have & DH_REQIP) || (in->have & DH_SERVERID && in->serverid != s->c.server_ip))
		return 0;
	struct lease *l = by_mac(s, in->chaddr);
	if (!l || l->ip != in->reqip || !l->ip)
		return 0;
	/* Something else answers on that address: the client loses it, and
	 * it stays out of the pool for a lease time, owned by no one. */
	uint32_t ip = l->ip;
	size_t li = (size_t)(l - s->leases);
	struct lease *d = new_lease(s, no_mac);  /* may move the table */
	l = &s->leases[li];
	l->state = LEASE_FREE;
	if (d) {
		d->state = LEASE_DECLINED;
		d->expires = now + s->c.lease_secs;
		set_ip(s, d, ip);
	} else {
		set_ip(s, l, 0);
	}
	s->dirty = 1;
	LOG("DECLINE %s by %s: address kept out of use", net_fmt_ip(ip, a), net_fmt_mac(in->chaddr, m));
	return 0;
}

static int on_release(struct dhcps *s, const struct dhcp_msg *in, struct dhcp_msg *out, time_t now)
{
	char m[18], a[16];
	struct lease *l = by_mac(s, in->chaddr);

	(void)out;
	if (l && l->ip == in->ciaddr && l->state == LEASE_BOUND) {
		l->state = LEASE_FREE;
		l->expires = now;
		s->dirty = 1;
		LOG("RELEASE %s by %s", net_fmt_ip(in->ciaddr, a), net_fmt_mac(in->chaddr, m));
	}
	return 0;
}

static int on_inform(struct dhcps *s, const struct dhcp_msg *in, struct dhcp_msg *out, time_t now)
{
	char m[18], a[16];

	(void)now;
	if (!in->ciaddr)
		return 0;
	reply_base(s, in, out, DHCPACK);
	out->ciaddr = in->ciaddr;
	reply_params(s, out, 0);
	LOG("INFORM answered for %s at %s", net_fmt_mac(in->chaddr, m), net_fmt_ip(in->ciaddr, a));
	return 1;
}

int dhcps_handle(struct dhcps *s, const struct dhcp_msg *in, struct dhcp_msg *out, time_t now)
{
	static int (*const handlers[])(struct dhcps *, const struct dhcp_msg *, struct dhcp_msg *, time_t) = {
		[DHCPDISCOVER] = on_discover, [DHCPREQUEST] = on_request, [DHCPDECLINE] = on_decline,
		[DHCPRELEASE] = on_release, [DHCPINFORM] = on_inform,
	};
	static const uint8_t zero[6];
	char m[18], a[16];

	if (in->op != 1 || !in->type)
		return 0;
	if (in->giaddr && !in_subnet(&s->c, in->giaddr)) {
		/* One subnet is served: a relay elsewhere asks for another. */
		LOG("%s from %s through relay %s ignored: not in the served subnet", dhcp_type_name(in->type),
		    net_fmt_mac(in->chaddr, m), net_fmt_ip(in->giaddr, a));
		return 0;
	}
	if (net_mac_is_group(in->chaddr) || !memcmp(in->chaddr, zero, 6))
		return 0;
	if (in->type >= sizeof(handlers) / sizeof(handlers[0]) || !handlers[in->type])
		return 0;
	return handlers[in->type](s, in, out, now);
}

int dhcps_reply_dest(const struct dhcp_msg *in, const struct dhcp_msg *out, uint32_t *ip)
{
	if (in->giaddr) {               /* through a relay: to the relay, always */
		*ip = in->giaddr;
		return 0;
	}
	if (out->type == DHCPNAK || (!in->ciaddr && (in->flags & 0x8000))) {
		*ip = 0xffffffff;
		return 1;
	}
	if (in->ciaddr) {
		*ip = in->ciaddr;
		return 0;
	}
	*ip = out->yiaddr;
	return 0;
}

/* ---- the lease file: one lease a line, "MAC IP EXPIRES STATE HOSTNAME" */

int dhcps_load(struct dhcps *s, time_t now)
{
	const char *path = s->c.lease_file;
	char line[512];
	int lineno = 0;

	(void)now;
	if (!path)
		return 0;
	FILE *f = fopen(path, "re");
	if (!f)
		return errno == ENOENT ? 0 : k_seterr("%s:", path);
	while (fgets(line, sizeof(line), f)) {
		lineno++;
		if (!strchr(line, '\n') && !feof(f)) {
			fclose(f);
			return k_seterr("%s:%d: line too long", path, lineno);
		}
		line[strcspn(line, "\n")] = 0;
		if (line[0] == '#' || !line[0])
			continue;
		char mac[32], ip[32], state[16], host[128];
		long long exp;
		struct lease l;
		memset(&l, 0, sizeof(l));
		if (sscanf(line, "%31s %31s %lld %15s %127s", mac, ip, &exp, state, host) != 5 ||
		    net_parse_mac(mac, l.mac) < 0 || net_parse_ip(ip, &l.ip) < 0 || exp < 0) {
			fclose(f);
			return k_seterr("%s:%d: not a lease (MAC IP EXPIRES STATE HOSTNAME)", path, lineno);
		}
		if (!in_subnet(&s->c, l.ip)) {
			fclose(f);
			return k_seterr("%s:%d: %s is not in the server's subnet", path, lineno, ip);
		}
		if (!strcmp(state, "bound"))
			l.state = LEASE_BOUND;
		else if (!strcmp(state, "declined"))
			l.state = LEASE_DECLINED;
		else {
			fclose(f);
			return k_seterr("%s:%d: state '%s' is not bound or declined", path, lineno, state);
		}
		if (strcmp(host, "-")) {
			if (!valid_hostname(host)) {
				fclose(f);
				return k_seterr("%s:%d: '%s' is not a host name", path, lineno, host);
			}
			memcpy(l.hostname, host, strlen(host) + 1);     /* valid: at most 63 */
		}
		l.expires = (time_t)exp;
		if (l.state == LEASE_DECLINED)
			memset(l.mac, 0, 6);
		struct lease *dst = (l.state == LEASE_BOUND) ? by_mac(s, l.mac) : NULL;
		if (!dst && !(dst = new_lease(s, l.mac))) {
			fclose(f);
			return k_seterr("out of memory");
		}
		uint32_t addr = l.ip;
		l.ip = dst->ip;         /* set_ip() moves it, keeping the index right */
		*dst = l;
		set_ip(s, dst, addr);
	}
	fclose(f);
	return 0;
}

int dhcps_save(struct dhcps *s)
{
	const char *path = s->c.lease_file;
	char m[18], a[16], *text = NULL;
	size_t len = 0;

	if (!path || !s->dirty)
		return 0;
	FILE *f = open_memstream(&text, &len);
	if (!f)
		return k_seterr("%s: out of memory", path);
	fprintf(f, "# umlk dhcpd leases: MAC IP EXPIRES(Unix time) STATE HOSTNAME\n");
	for (size_t i = 0; i < s->n; i++) {
		struct lease *l = &s->leases[i];
		if (l->state != LEASE_BOUND && l->state != LEASE_DECLINED)
			continue;
		fprintf(f, "%s %s %lld %s %s\n", net_fmt_mac(l->mac, m), net_fmt_ip(l->ip, a),
			(long long)l->expires, l->state == LEASE_BOUND ? "bound" : "declined",
			l->hostname[0] ? l->hostname : "-");
	}
	if (fclose(f)) {
		free(text);
		return k_seterr("%s: out of memory", path);
	}
	int r = kout_write_file(path, text, len, 0644, 1);
	free(text);
	if (r < 0)
		return -1;
	s->dirty = 0;
	return 0;
}
