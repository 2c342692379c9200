#include "net/dhcpc.h"
#include "core/err.h"
#include "core/sys.h"
#include "core/xio.h"
#include "net/dhcp.h"

#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <net/route.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static uint32_t new_xid(void)
{
	uint32_t x;
	if (getrandom(&x, sizeof(x), GRND_NONBLOCK) != sizeof(x))
		x = (uint32_t)k_now_ms() ^ (uint32_t)getpid() << 16;
	return x;
}

static int send_msg(struct netif *ni, const struct dhcp_msg *m, uint32_t saddr, uint32_t daddr,
		    const uint8_t dst_mac[6])
{
	uint8_t buf[DHCP_MAX_MSG], frame[NET_FRAME_MAX];
	struct net_ends e;
	size_t len = dhcp_build(buf, m);

	memcpy(e.src_mac, ni->mac, 6);
	memcpy(e.dst_mac, dst_mac, 6);
	e.saddr = saddr;
	e.daddr = daddr;
	e.sport = DHCP_CLIENT_PORT;
	e.dport = DHCP_SERVER_PORT;
	size_t n = net_build_udp(frame, sizeof(frame), &e, buf, len);
	return n && netif_send(ni, frame, n) == 0 ? 0 : -1;
}

/* Wait until DEADLINE for a reply to XID of one of the wanted types. */
static int wait_reply(struct netif *ni, uint32_t xid, long long deadline, struct dhcp_msg *m,
		      uint8_t from_mac[6])
{
	static uint8_t frame[NET_FRAME_MAX + 64];

	for (;;) {
		long long left = deadline - k_now_ms();
		if (left <= 0)
			return 0;
		ssize_t n = netif_wait(ni, frame, sizeof(frame), (int)left);
		if (n < 0)
			return k_seterr("%s:", ni->name);
		if (n == 0)
			return 0;
		struct net_pkt p;
		if (net_parse_ex(&p, frame, (size_t)n, !ni->csum_partial) < 0)
			continue;
		if (netif_answer(ni, &p))
			continue;
		if (p.ethertype != NET_ETH_IPV4 || p.fragment || p.proto != NET_IP_UDP ||
		    p.dport != DHCP_CLIENT_PORT || p.sport != DHCP_SERVER_PORT)
			continue;
		if (dhcp_parse(m, p.data, p.datalen) < 0)
			continue;
		if (m->op != 2 || m->xid != xid || memcmp(m->chaddr, ni->mac, 6))
			continue;
		if (m->type != DHCPOFFER && m->type != DHCPACK && m->type != DHCPNAK)
			continue;
		memcpy(from_mac, p.src, 6);
		return 1;
	}
}

static void base_request(struct dhcp_msg *m, struct netif *ni, uint32_t xid, int type, const char *name)
{
	memset(m, 0, sizeof(*m));
	m->op = 1;
	m->xid = xid;
	m->type = (uint8_t)type;
	memcpy(m->chaddr, ni->mac, 6);
	m->clientid[0] = 1;             /* Ethernet */
	memcpy(m->clientid + 1, ni->mac, 6);
	m->clientid_len = 7;
	m->have = DH_CLIENTID;
	if (name && *name && strlen(name) < sizeof(m->hostname)) {
		memcpy(m->hostname, name, strlen(name) + 1);
		m->have |= DH_HOSTNAME;
	}
}

static void take_lease(struct dhcpc_lease *l, const struct dhcp_msg *m, const uint8_t from[6])
{
	memset(l, 0, sizeof(*l));
	l->ip = m->yiaddr;
	l->server = (m->have & DH_SERVERID) ? m->serverid : 0;
	memcpy(l->server_mac, from, 6);
	l->mask = (m->have & DH_MASK) ? m->mask : 0xffffff00;
	l->bcast = (m->have & DH_BROADCAST_ADDR) ? m->bcast : (l->ip | ~l->mask);
	l->router = (m->have & DH_ROUTER) ? m->router : 0;
	memcpy(l->dns, m->dns, sizeof(l->dns));
	l->ndns = m->ndns;
	l->mtu = (m->have & DH_MTU) ? m->mtu : 0;
	l->lease = (m->have & DH_LEASE) ? m->lease : NET_DEFAULT_LEASE;
	l->t1 = (m->have & DH_T1) ? m->t1 : l->lease / 2;
	l->t2 = (m->have & DH_T2) ? m->t2 : l->lease / 8 * 7;
	if (m->have & DH_HOSTNAME)
		snprintf(l->hostname, sizeof(l->hostname), "%s", m->hostname);
	if (m->have & DH_DOMAIN)
		snprintf(l->domain, sizeof(l->domain), "%s", m->domain);
}

int dhcpc_acquire(struct netif *ni, const char *send_name, int timeout_ms, struct dhcpc_lease *l)
{
	long long deadline = k_now_ms() + timeout_ms;
	int backoff = 1000, naks = 0;

	while (k_now_ms() < deadline) {
		uint32_t xid = new_xid();
		struct dhcp_msg m, r;
		uint8_t from[6];
		long long until = k_now_ms() + backoff;
		if (until > deadline)
			until = deadline;
		base_request(&m, ni, xid, DHCPDISCOVER, send_name);
		if (send_msg(ni, &m, 0, 0xffffffff, net_broadcast_mac) < 0)
			return k_seterr("%s: sending DISCOVER:", ni->name);
		int got = wait_reply(ni, xid, until, &r, from);
		if (got < 0)
			return -1;
		if (!got || r.type != DHCPOFFER || !r.yiaddr || !(r.have & DH_SERVERID)) {
			if (backoff < 8000)
				backoff *= 2;
			continue;
		}
		/* REQUEST what was offered, from that server. */
		base_request(&m, ni, xid, DHCPREQUEST, send_name);
		m.reqip = r.yiaddr;
		m.serverid = r.serverid;
		m.have |= DH_REQIP | DH_SERVERID;
		for (int tries = 0; tries < 3 && k_now_ms() < deadline; tries++) {
			if (send_msg(ni, &m, 0, 0xffffffff, net_broadcast_mac) < 0)
				return k_seterr("%s: sending REQUEST:", ni->name);
			until = k_now_ms() + 2000;
			if (until > deadline)
				until = deadline;
			struct dhcp_msg a;
			do {
				got = wait_reply(ni, xid, until, &a, from);
			} while (got > 0 && a.type == DHCPOFFER);      /* a late offer */
			if (got < 0)
				return -1;
			if (!got)
				continue;
			if (a.type == DHCPNAK) {
				naks++;
				break;                  /* start over */
			}
			take_lease(l, &a, from);
			if (!l->ip)
				break;
			return 0;
		}
	}
	if (naks)
		return k_seterr("%s: no lease: the server refused (NAK) %d time%s", ni->name, naks,
				naks == 1 ? "" : "s");
	return k_seterr("%s: no DHCP server answered within %d s", ni->name, timeout_ms / 1000);
}

int dhcpc_renew(struct netif *ni, struct dhcpc_lease *l, int timeout_ms)
{
	uint32_t xid = new_xid();
	struct dhcp_msg m, a;
	uint8_t from[6];

	/* RENEWING: unicast to the server that gave the lease, ciaddr set. */
	base_request(&m, ni, xid, DHCPREQUEST, l->hostname[0] ? l->hostname : NULL);
	m.ciaddr = l->ip;
	if (send_msg(ni, &m, l->ip, l->server ? l->server : 0xffffffff,
		     l->server ? l->server_mac : net_broadcast_mac) < 0)
		return k_seterr("%s: sending REQUEST:", ni->name);
	int got = wait_reply(ni, xid, k_now_ms() + timeout_ms, &a, from);
	if (got <= 0)
		return got < 0 ? -1 : k_seterr("%s: no answer to the renewal", ni->name);
	if (a.type != DHCPACK || a.yiaddr != l->ip)
		return k_seterr("%s: the server refused to renew %s", ni->name, "the lease");
	char name[64];
	snprintf(name, sizeof(name), "%s", l->hostname);
	take_lease(l, &a, from);
	if (!l->hostname[0])
		snprintf(l->hostname, sizeof(l->hostname), "%s", name);
	return 0;
}

int dhcpc_release(struct netif *ni, const struct dhcpc_lease *l)
{
	struct dhcp_msg m;

	if (!l->ip || !l->server)
		return 0;
	base_request(&m, ni, new_xid(), DHCPRELEASE, NULL);
	m.ciaddr = l->ip;
	m.serverid = l->server;
	m.have |= DH_SERVERID;
	if (send_msg(ni, &m, l->ip, l->server, l->server_mac) < 0)
		return k_seterr("%s: sending RELEASE:", ni->name);
	return 0;
}

static int sin_ioctl(int sk, const char *ifname, unsigned long req, uint32_t addr)
{
	struct ifreq ifr;
	struct sockaddr_in *sin = (struct sockaddr_in *)&ifr.ifr_addr;

	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
	sin->sin_family = AF_INET;
	sin->sin_addr.s_addr = htonl(addr);
	return ioctl(sk, req, &ifr);
}

int dhcpc_configure(const char *ifname, const struct dhcpc_lease *l)
{
	int sk = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	const char *what = "socket";

	if (sk < 0)
		goto fail;
	what = "setting the address";
	if (sin_ioctl(sk, ifname, SIOCSIFADDR, l->ip) < 0)
		goto fail;
	what = "setting the netmask";
	if (sin_ioctl(sk, ifname, SIOCSIFNETMASK, l->mask) < 0)
		goto fail;
	what = "setting the broadcast address";
	if (sin_ioctl(sk, ifname, SIOCSIFBRDADDR, l->bcast) < 0)
		goto fail;
	if (l->mtu) {
		struct ifreq ifr;
		memset(&ifr, 0, sizeof(ifr));
		snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
		ifr.ifr_mtu = l->mtu;
		what = "setting the MTU";
		if (ioctl(sk, SIOCSIFMTU, &ifr) < 0)
			goto fail;
	}
	if (l->router) {
		struct rtentry rt;
		struct sockaddr_in *s;
		memset(&rt, 0, sizeof(rt));
		s = (struct sockaddr_in *)&rt.rt_dst;
		s->sin_family = AF_INET;
		s = (struct sockaddr_in *)&rt.rt_genmask;
		s->sin_family = AF_INET;
		s = (struct sockaddr_in *)&rt.rt_gateway;
		s->sin_family = AF_INET;
		s->sin_addr.s_addr = htonl(l->router);
		rt.rt_flags = RTF_UP | RTF_GATEWAY;
		rt.rt_dev = (char *)ifname;
		what = "adding the default route";
		if (ioctl(sk, SIOCADDRT, &rt) < 0 && errno != EEXIST)
			goto fail;
	}
	close(sk);
	return 0;
fail:
	{
		int e = errno;
		if (sk >= 0)
			close(sk);
		errno = e;
		return k_seterr("%s: %s:", ifname, what);
	}
}

char *dhcpc_resolv_text(const struct dhcpc_lease *l)
{
	char a[16];
	char *t;
	size_t n = 0, cap = 512;

	if (!l->ndns)
		return NULL;
	t = xmalloc(cap);
	n += (size_t)snprintf(t + n, cap - n, "# written by umlk's DHCP client\n");
	if (l->domain[0])
		n += (size_t)snprintf(t + n, cap - n, "search %s\n", l->domain);
	for (int i = 0; i < l->ndns && i < 4; i++)
		n += (size_t)snprintf(t + n, cap - n, "nameserver %s\n", net_fmt_ip(l->dns[i], a));
	return t;
}
