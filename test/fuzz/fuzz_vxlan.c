/* libFuzzer target: datagrams a VXLAN port receives, from any sender (the
 * switch's allow list, the header, the VNI, the inner frame's size and
 * source), and the addresses -vxlan-remote and -vxlan-local parse. */
#include "net/vxlan.h"

#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct vxlan_conf c;
	static int ready;

	if (!ready) {
		ready = 1;
		c.vni = 42;
		c.enabled = 1;
		vxlan_parse_addr("10.9.0.2", VXLAN_PORT, &c.remote[c.nremotes++]);
		vxlan_parse_addr("[fd00::2]:4790", VXLAN_PORT, &c.remote[c.nremotes++]);
		vxlan_parse_addr("::ffff:10.9.0.3", VXLAN_PORT, &c.remote[c.nremotes++]);
	}
	if (size < 1)
		return 0;
	/* The first byte picks the sender: a remote, its IPv4-mapped form,
	 * or a stranger of either family. */
	struct vxlan_addr from;
	static const char *const senders[] = { "10.9.0.2:40000", "[::ffff:10.9.0.2]:1", "[fd00::2]:4789",
					       "10.9.0.3", "10.9.0.9", "[fd00::9]" };
	vxlan_parse_addr(senders[data[0] % 6], 1, &from);
	int remote = -1;
	size_t flen = 0;
	size_t maxframe = 1468 + (data[0] >> 4);
	enum vxlan_verdict v = vxlan_receive(&c, &from, data + 1, size - 1, maxframe, &remote, &flen);
	if (v == VX_OK) {
		if (remote < 0 || remote >= c.nremotes || flen > maxframe || flen + VXLAN_HLEN != size - 1)
			__builtin_trap();
		volatile uint8_t last = data[size - 1];         /* the frame is all there */
		(void)last;
	}
	(void)vxlan_verdict_name[v];
	/* The input as an address, as the command line gives one. */
	char text[80], buf[64];
	size_t n = size - 1 < sizeof(text) - 1 ? size - 1 : sizeof(text) - 1;
	memcpy(text, data + 1, n);
	text[n] = 0;
	struct vxlan_addr a, b;
	if (vxlan_parse_addr(text, VXLAN_PORT, &a) == 0) {
		vxlan_fmt_addr(&a, buf);
		if (vxlan_parse_addr(buf, 1, &b) < 0 || !vxlan_same_host(&a, &b))
			__builtin_trap();       /* what we print reads back as the same */
		(void)vxlan_addr_as(&a, AF_INET6, &b);
	}
	return 0;
}
