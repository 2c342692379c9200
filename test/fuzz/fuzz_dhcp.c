/* libFuzzer target: a frame as dhcpd sees it.  net_parse() on the whole
 * input, dhcp_parse() on its UDP payload (and on the raw input too, so
 * the DHCP parser is reached directly), then the server's answer through
 * a lease table that lives across inputs, and a round trip of the reply
 * (what the server builds, it must be able to read). */
#include "net/dhcp.h"
#include "net/net.h"

#include <stdlib.h>
#include <string.h>

static struct dhcps server;
static int ready;

static void answer(const struct dhcp_msg *in)
{
	struct dhcp_msg out, back;
	uint8_t buf[DHCP_MAX_MSG];
	uint32_t dst;

	if (!dhcps_handle(&server, in, &out, 1000000))
		return;
	size_t n = dhcp_build(buf, &out);
	if (dhcp_parse(&back, buf, n) < 0 || back.type != out.type || back.yiaddr != out.yiaddr)
		abort();
	dhcps_reply_dest(in, &out, &dst);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct net_pkt p;
	struct dhcp_msg m;

	if (!ready) {
		static struct dhcp_static st = { { 2, 0, 0, 0, 0, 1 }, 0x0a000264, "fixed" };
		struct dhcps_conf c;
		memset(&c, 0, sizeof(c));
		c.server_ip = 0x0a000202;
		c.mask = 0xffffff00;
		c.pool_first = 0x0a00020f;
		c.pool_last = 0x0a000214;       /* six addresses: exhaustion is reachable */
		c.lease_secs = 60;
		memcpy(c.hostname_prefix, "guest-", 7);
		c.statics = &st;
		c.nstatics = 1;
		if (dhcps_init(&server, &c) < 0)
			abort();
		ready = 1;
	}
	if (net_parse(&p, data, size) == 0 && p.ethertype == NET_ETH_IPV4 && p.proto == NET_IP_UDP &&
	    !p.fragment && dhcp_parse(&m, p.data, p.datalen) == 0)
		answer(&m);
	if (dhcp_parse(&m, data, size) == 0)
		answer(&m);
	if (server.n > 4096) {          /* keep the table from growing forever */
		dhcps_free(&server);
		ready = 0;
	}
	return 0;
}
