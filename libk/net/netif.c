#include "net/netif.h"
#include "core/err.h"
#include "core/sha256.h"

#include <arpa/inet.h>
#include <errno.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netpacket/packet.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

int netif_open_switch(struct netif *ni, const char *ctl_path, const uint8_t mac[6], const char *service)
{
	memset(ni, 0, sizeof(*ni));
	ni->on_switch = 1;
	ni->pfd = -1;
	ni->answer_arp = 1;
	snprintf(ni->name, sizeof(ni->name), "%s", ctl_path);
	memcpy(ni->mac, mac, 6);
	return sw_port_open(&ni->port, ctl_path, service);
}

/* From <linux/if_packet.h> (musl's headers stop at PACKET_AUXDATA). */
struct k_tpacket_auxdata {
	uint32_t tp_status, tp_len, tp_snaplen;
	uint16_t tp_mac, tp_net, tp_vlan_tci, tp_vlan_tpid;
};
#define K_TP_STATUS_CSUMNOTREADY (1u << 3)

int netif_open_packet(struct netif *ni, const char *ifname)
{
	struct sockaddr_ll sll;

	memset(ni, 0, sizeof(*ni));
	ni->port.ctl = ni->port.data = -1;
	snprintf(ni->name, sizeof(ni->name), "%s", ifname);
	if (netif_if_info(ifname, ni->mac, &ni->ip, &ni->mask) < 0)
		return -1;
	ni->ifindex = (int)if_nametoindex(ifname);
	ni->pfd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, htons(ETH_P_ALL));
	if (ni->pfd < 0)
		return k_seterr("%s: packet socket: %s%s", ifname, strerror(errno),
				errno == EPERM ? " (needs root or CAP_NET_RAW)" : "");
	memset(&sll, 0, sizeof(sll));
	sll.sll_family = AF_PACKET;
	sll.sll_protocol = htons(ETH_P_ALL);
	sll.sll_ifindex = ni->ifindex;
	/* Tell us when a frame's checksum is left for the hardware to fill. */
	int one = 1;
	setsockopt(ni->pfd, SOL_PACKET, PACKET_AUXDATA, &one, sizeof(one));
	if (bind(ni->pfd, (struct sockaddr *)&sll, sizeof(sll)) < 0) {
		int e = errno;
		close(ni->pfd);
		ni->pfd = -1;
		errno = e;
		return k_seterr("%s: binding a packet socket:", ifname);
	}
	return 0;
}

void netif_close(struct netif *ni)
{
	if (ni->on_switch)
		sw_port_close(&ni->port);
	else if (ni->pfd >= 0)
		close(ni->pfd);
	ni->pfd = -1;
}

int netif_fd(const struct netif *ni)
{
	return ni->on_switch ? ni->port.data : ni->pfd;
}

int netif_ctl_fd(const struct netif *ni)
{
	return ni->on_switch ? ni->port.ctl : -1;
}

ssize_t netif_recv(struct netif *ni, uint8_t *buf, size_t cap)
{
	if (ni->on_switch)
		return sw_port_recv(&ni->port, buf, cap);
	for (;;) {
		struct sockaddr_ll from;
		union { struct cmsghdr h; char b[CMSG_SPACE(sizeof(struct k_tpacket_auxdata))]; } ctl;
		struct iovec v = { buf, cap };
		struct msghdr m = { .msg_name = &from, .msg_namelen = sizeof(from), .msg_iov = &v,
				    .msg_iovlen = 1, .msg_control = &ctl, .msg_controllen = sizeof(ctl) };
		ssize_t r = recvmsg(ni->pfd, &m, MSG_DONTWAIT | MSG_TRUNC);
		if (r < 0)
			return (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -1;
		if (from.sll_pkttype == PACKET_OUTGOING || (size_t)r > cap)
			continue;               /* our own frames, or oversized */
		ni->csum_partial = 0;
		for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
			if (c->cmsg_level == SOL_PACKET && c->cmsg_type == PACKET_AUXDATA &&
			    c->cmsg_len >= CMSG_LEN(sizeof(struct k_tpacket_auxdata))) {
				struct k_tpacket_auxdata a;
				memcpy(&a, CMSG_DATA(c), sizeof(a));
				ni->csum_partial = (a.tp_status & K_TP_STATUS_CSUMNOTREADY) != 0;
			}
		}
		return r;
	}
}

ssize_t netif_wait(struct netif *ni, uint8_t *buf, size_t cap, int timeout_ms)
{
	struct timespec t0, t;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		ssize_t r = netif_recv(ni, buf, cap);
		if (r != 0)
			return r;
		clock_gettime(CLOCK_MONOTONIC, &t);
		long long spent = (t.tv_sec - t0.tv_sec) * 1000LL + (t.tv_nsec - t0.tv_nsec) / 1000000;
		if (spent >= timeout_ms)
			return 0;
		struct pollfd p[2] = { { .fd = netif_fd(ni), .events = POLLIN },
				       { .fd = netif_ctl_fd(ni), .events = POLLIN } };
		int r2 = poll(p, ni->on_switch ? 2 : 1, (int)(timeout_ms - spent));
		if (r2 < 0 && errno != EINTR)
			return -1;
		if (ni->on_switch && p[1].revents) {
			char c;
			if (read(ni->port.ctl, &c, 1) == 0) {
				errno = ECONNRESET;     /* the switch went away */
				return -1;
			}
		}
	}
}

int netif_send(struct netif *ni, const uint8_t *frame, size_t n)
{
	if (ni->on_switch)
		return sw_port_send(&ni->port, frame, n) == (ssize_t)n ? 0 : -1;
	struct sockaddr_ll to;
	memset(&to, 0, sizeof(to));
	to.sll_family = AF_PACKET;
	to.sll_ifindex = ni->ifindex;
	to.sll_halen = 6;
	memcpy(to.sll_addr, frame, 6);
	return sendto(ni->pfd, frame, n, 0, (struct sockaddr *)&to, sizeof(to)) == (ssize_t)n ? 0 : -1;
}

int netif_answer(struct netif *ni, const struct net_pkt *p)
{
	uint8_t out[NET_FRAME_MAX];
	size_t n;

	if (!ni->ip)
		return 0;
	if (p->ethertype == NET_ETH_ARP) {
		if (p->arp.op == NET_ARP_REQUEST && p->arp.tpa == ni->ip && ni->answer_arp) {
			n = net_build_arp(out, sizeof(out), NET_ARP_REPLY, p->arp.sha, ni->mac, ni->ip,
					  p->arp.sha, p->arp.spa);
			if (n)
				netif_send(ni, out, n);
		}
		return 1;
	}
	if (p->ethertype == NET_ETH_IPV4 && !p->fragment && p->proto == NET_IP_ICMP &&
	    p->daddr == ni->ip && p->icmp_type == 8 && ni->answer_arp) {
		struct net_ends e;
		memcpy(e.src_mac, ni->mac, 6);
		memcpy(e.dst_mac, p->src, 6);
		e.saddr = ni->ip;
		e.daddr = p->saddr;
		e.sport = e.dport = 0;
		n = net_build_icmp(out, sizeof(out), &e, 0, 0, p->data, p->datalen);
		if (n)
			netif_send(ni, out, n);
		return 1;
	}
	return 0;
}

void netif_mac_from(const char *name, const char *salt, uint8_t mac[6])
{
	struct sha256 h;
	uint8_t d[32];

	sha256_init(&h);
	sha256_update(&h, salt, strlen(salt));
	sha256_update(&h, name, strlen(name));
	sha256_final(&h, d);
	mac[0] = 0x52;                  /* locally administered, unicast */
	memcpy(mac + 1, d, 5);
}

static int if_ioctl(const char *ifname, unsigned long req, struct ifreq *ifr)
{
	int sk = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (sk < 0)
		return k_seterr("socket:");
	if (strlen(ifname) >= sizeof(ifr->ifr_name)) {
		close(sk);
		return k_seterr("%s: interface name too long", ifname);
	}
	snprintf(ifr->ifr_name, sizeof(ifr->ifr_name), "%s", ifname);
	int r = ioctl(sk, req, ifr);
	int e = errno;
	close(sk);
	errno = e;
	return r;
}

int netif_if_up(const char *ifname)
{
	struct ifreq ifr;

	memset(&ifr, 0, sizeof(ifr));
	if (if_ioctl(ifname, SIOCGIFFLAGS, &ifr) < 0)
		return k_seterr("%s:", ifname);
	ifr.ifr_flags |= IFF_UP;
	if (if_ioctl(ifname, SIOCSIFFLAGS, &ifr) < 0)
		return k_seterr("%s: bringing it up:", ifname);
	return 0;
}

int netif_set_mac(const char *ifname, const uint8_t mac[6])
{
	struct ifreq ifr;

	memset(&ifr, 0, sizeof(ifr));
	ifr.ifr_hwaddr.sa_family = 1;   /* ARPHRD_ETHER */
	memcpy(ifr.ifr_hwaddr.sa_data, mac, 6);
	if (if_ioctl(ifname, SIOCSIFHWADDR, &ifr) < 0)
		return k_seterr("%s:", ifname);
	return 0;
}

int netif_if_info(const char *ifname, uint8_t mac[6], uint32_t *ip, uint32_t *mask)
{
	struct ifreq ifr;

	memset(&ifr, 0, sizeof(ifr));
	if (if_ioctl(ifname, SIOCGIFHWADDR, &ifr) < 0)
		return k_seterr("%s:", ifname);
	memcpy(mac, ifr.ifr_hwaddr.sa_data, 6);
	*ip = *mask = 0;
	memset(&ifr, 0, sizeof(ifr));
	if (if_ioctl(ifname, SIOCGIFADDR, &ifr) == 0)
		*ip = ntohl(((struct sockaddr_in *)&ifr.ifr_addr)->sin_addr.s_addr);
	memset(&ifr, 0, sizeof(ifr));
	if (if_ioctl(ifname, SIOCGIFNETMASK, &ifr) == 0)
		*mask = ntohl(((struct sockaddr_in *)&ifr.ifr_netmask)->sin_addr.s_addr);
	return 0;
}
