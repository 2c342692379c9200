/* For tests: are the IPv4 header checksum and the TCP checksum of a
 * plain Ethernet frame (IPv4 or IPv6, TCP, no VLAN) right?  1 yes, 0 no,
 * -1 not such a frame.  Written apart from libk's checksum code, so the
 * two check each other. */
#ifndef UMLK_TEST_TCPCHECK_H
#define UMLK_TEST_TCPCHECK_H

#include <stddef.h>
#include <stdint.h>

static uint32_t tc_add(uint32_t s, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i + 1 < n; i += 2)
		s += (uint32_t)p[i] << 8 | p[i + 1];
	if (n & 1)
		s += (uint32_t)p[n - 1] << 8;
	return s;
}

static int tc_ok(uint32_t s)
{
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return s == 0xffff;
}

static int tcp_frame_ok(const uint8_t *f, size_t n)
{
	if (n < 14)
		return -1;
	unsigned type = (unsigned)f[12] << 8 | f[13];
	const uint8_t *ip = f + 14;
	size_t iplen = n - 14;
	uint32_t s = 0;
	if (type == 0x0800) {
		if (iplen < 20)
			return -1;
		size_t ihl = (size_t)(ip[0] & 15) * 4;
		size_t tot = (size_t)ip[2] << 8 | ip[3];
		if (ihl < 20 || tot > iplen || tot < ihl || ip[9] != 6)
			return -1;
		if (!tc_ok(tc_add(0, ip, ihl)))
			return 0;
		size_t tl = tot - ihl;
		s = tc_add(s, ip + 12, 8);
		s += 6 + (uint32_t)tl;
		s = tc_add(s, ip + ihl, tl);
	} else if (type == 0x86dd) {
		if (iplen < 40 || ip[6] != 6)
			return -1;
		size_t tl = (size_t)ip[4] << 8 | ip[5];
		if (tl > iplen - 40)
			return -1;
		s = tc_add(s, ip + 8, 32);
		s += 6 + (uint32_t)tl;
		s = tc_add(s, ip + 40, tl);
	} else
		return -1;
	return tc_ok(s);
}

#endif
