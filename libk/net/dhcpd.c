#include "net/dhcpd.h"
#include "core/err.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* A malformed packet is worth a log line, but a flood of them is not
 * worth a flood of lines: at most one a second. */
static void log_malformed(struct dhcps *s, const uint8_t mac[6], const char *what)
{
	static time_t last;
	char m[18];
	time_t now = time(NULL);

	if (s->c.log && now != last) {
		last = now;
		s->c.log("malformed packet from %s dropped: %s", net_fmt_mac(mac, m), what);
	}
}

void dhcpd_frame(struct netif *ni, struct dhcps *s, struct dhcpd_stats *st,
		 const uint8_t *frame, size_t n, time_t now)
{
	struct net_pkt p;
	struct dhcp_msg in, out;
	uint8_t buf[DHCP_MAX_MSG], reply[NET_FRAME_MAX];

	st->frames++;
	if (net_parse_ex(&p, frame, n, !ni->csum_partial) < 0) {
		st->malformed++;
		if (n >= 12)
			log_malformed(s, frame + 6, k_errmsg());
		return;
	}
	if (netif_answer(ni, &p))
		return;
	if (p.ethertype != NET_ETH_IPV4 || p.fragment || p.proto != NET_IP_UDP ||
	    p.dport != DHCP_SERVER_PORT)
		return;
	uint32_t bcast = ni->ip | ~ni->mask;
	if (p.daddr != ni->ip && p.daddr != 0xffffffff && p.daddr != bcast)
		return;
	st->dhcp++;
	if (dhcp_parse(&in, p.data, p.datalen) < 0) {
		st->malformed++;
		log_malformed(s, p.src, k_errmsg());
		return;
	}
	if (!dhcps_handle(s, &in, &out, now))
		return;
	size_t len = dhcp_build(buf, &out);
	struct net_ends e;
	uint32_t dst;
	int broadcast = dhcps_reply_dest(&in, &out, &dst);
	memcpy(e.src_mac, ni->mac, 6);
	/* Unicast to the client's hardware address: no ARP needed (it may
	 * not have an address yet). */
	/* A relay or a renewing client gets it at the MAC it came from. */
	memcpy(e.dst_mac, broadcast ? net_broadcast_mac : (in.giaddr || in.ciaddr) ? p.src : in.chaddr, 6);
	e.saddr = ni->ip;
	e.daddr = dst;
	e.sport = DHCP_SERVER_PORT;
	e.dport = in.giaddr ? DHCP_SERVER_PORT : DHCP_CLIENT_PORT;
	size_t fl = net_build_udp(reply, sizeof(reply), &e, buf, len);
	if (fl && netif_send(ni, reply, fl) == 0)
		st->replies++;
}

int dhcpd_serve(struct netif *ni, struct dhcps *s, volatile sig_atomic_t *stop)
{
	static uint8_t frame[NET_FRAME_MAX + 64];
	struct dhcpd_stats st;
	time_t saved = 0;
	int ret = 0;

	memset(&st, 0, sizeof(st));
	while (!*stop) {
		struct pollfd p[2] = { { .fd = netif_fd(ni), .events = POLLIN },
				       { .fd = netif_ctl_fd(ni), .events = POLLIN } };
		int r = poll(p, p[1].fd >= 0 ? 2 : 1, 1000);
		if (r < 0 && errno != EINTR) {
			ret = k_seterr("poll:");
			break;
		}
		if (r > 0 && p[1].fd >= 0 && p[1].revents) {
			char junk[256];
			ssize_t n = read(p[1].fd, junk, sizeof(junk));
			if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
				ret = k_seterr("%s: the switch went away", ni->name);
				break;
			}
		}
		for (int i = 0; i < 256; i++) {
			ssize_t n = netif_recv(ni, frame, sizeof(frame));
			if (n <= 0)
				break;
			dhcpd_frame(ni, s, &st, frame, (size_t)n, time(NULL));
		}
		time_t now = time(NULL);
		if (s->dirty && now != saved) {
			saved = now;
			if (dhcps_save(s) < 0 && s->c.log)
				s->c.log("saving leases: %s", k_errmsg());
		}
	}
	if (s->dirty && dhcps_save(s) < 0 && s->c.log)
		s->c.log("saving leases: %s", k_errmsg());
	if (s->c.log)
		s->c.log("stopping: %llu frames, %llu DHCP messages, %llu replies, %llu malformed",
			 st.frames, st.dhcp, st.replies, st.malformed);
	return ret;
}
