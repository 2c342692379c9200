/* net: Ethernet frames carrying ARP, IPv4, UDP, TCP and ICMP, read and
 * written byte by byte (no struct overlays, so no alignment or padding
 * questions).
 *
 * net_parse() treats a frame as hostile: every length field is checked
 * against the bytes that are really there, checksums are verified, and a
 * frame that does not add up is refused (-1, k_seterr()) without reading
 * past its end.  The net_build_* functions write a whole frame into a
 * caller's buffer and return its length, or 0 when it does not fit.
 *
 * Conventions: MAC addresses are uint8_t[6]; IPv4 addresses and ports are
 * in host byte order everywhere outside the wire bytes.
 */
#ifndef UMLK_NET_H
#define UMLK_NET_H

#include <stddef.h>
#include <stdint.h>

#define NET_ETH_HLEN 14
#define NET_MTU 1500
#define NET_FRAME_MAX (NET_ETH_HLEN + NET_MTU)
#define NET_ETH_MIN 60                  /* shorter frames are padded */

enum { NET_ETH_IPV4 = 0x0800, NET_ETH_ARP = 0x0806 };
enum { NET_IP_ICMP = 1, NET_IP_TCP = 6, NET_IP_UDP = 17 };
enum { NET_ARP_REQUEST = 1, NET_ARP_REPLY = 2 };
enum { NET_TCP_FIN = 1, NET_TCP_SYN = 2, NET_TCP_RST = 4, NET_TCP_PSH = 8, NET_TCP_ACK = 16 };

extern const uint8_t net_broadcast_mac[6];

/* umlk's own network (dhcpd on a switch, --net auto): the addresses QEMU's
 * user network made familiar.  The server (and gateway) is .2, guests get
 * .15 and up, and the switch --net auto starts stops this many seconds
 * after its last guest. */
#define NET_AUTO_SUBNET 0x0a000200u     /* 10.0.2.0 */
#define NET_AUTO_MASK 0xffffff00u       /* /24 */
#define NET_AUTO_SERVER (NET_AUTO_SUBNET | 2)
#define NET_AUTO_POOL_HOST 15
#define NET_AUTO_IDLE_EXIT 600
#define NET_DEFAULT_LEASE 3600          /* seconds */

/* A hash of a MAC address for tables (FNV-1a). */
static inline uint32_t net_mac_hash(const uint8_t m[6])
{
	uint32_t h = 2166136261u;
	for (int i = 0; i < 6; i++)
		h = (h ^ m[i]) * 16777619u;
	return h;
}

struct net_pkt {
	uint8_t dst[6], src[6];
	uint16_t ethertype;

	/* ARP over Ethernet/IPv4 (ethertype NET_ETH_ARP).  A struct, not
	 * arp_* names: libc headers define arp_op as a macro. */
	struct {
		uint16_t op;
		uint8_t sha[6], tha[6];
		uint32_t spa, tpa;
	} arp;

	/* IPv4 (ethertype NET_ETH_IPV4) */
	uint32_t saddr, daddr;
	uint8_t proto, ttl;
	int fragment;                   /* a fragment: nothing below IP is parsed */

	/* UDP, TCP: ports; TCP: the rest */
	uint16_t sport, dport;
	uint32_t seq, ack;
	uint8_t tcp_flags;
	uint16_t window;
	uint16_t mss;                   /* TCP MSS option on a SYN, else 0 */

	/* ICMP */
	uint8_t icmp_type, icmp_code;

	/* The payload of UDP/TCP, or an ICMP message after its first 4 bytes */
	const uint8_t *data;
	size_t datalen;
};

/* Parse LEN bytes of FRAME.  Unknown ethertypes and IP protocols are fine
 * (only the outer layers are filled in); -1 with k_seterr() when a header
 * is short, a length field lies, or a checksum is wrong. */
int net_parse(struct net_pkt *p, const uint8_t *frame, size_t len);
/* The same, but with CHECK_L4 0 the UDP/TCP/ICMP checksums are not
 * verified: for frames a host's packet socket saw before the checksum was
 * filled in (offload; the kernel says so, see netif). */
int net_parse_ex(struct net_pkt *p, const uint8_t *frame, size_t len, int check_l4);

/* The two ends of a UDP/TCP/ICMP exchange, as the sender sees them. */
struct net_ends {
	uint8_t src_mac[6], dst_mac[6];
	uint32_t saddr, daddr;
	uint16_t sport, dport;
};

size_t net_build_arp(uint8_t *f, size_t cap, uint16_t op, const uint8_t dst_mac[6],
		     const uint8_t sha[6], uint32_t spa, const uint8_t tha[6], uint32_t tpa);
size_t net_build_udp(uint8_t *f, size_t cap, const struct net_ends *e, const void *data, size_t n);
/* ICMP: TYPE, CODE, then REST (the 4 bytes after the checksum, then data). */
size_t net_build_icmp(uint8_t *f, size_t cap, const struct net_ends *e, uint8_t type,
		      uint8_t code, const void *rest, size_t n);
/* TCP with an MSS option when MSS is not 0 (for SYNs). */
size_t net_build_tcp(uint8_t *f, size_t cap, const struct net_ends *e, uint32_t seq, uint32_t ack,
		     uint8_t flags, uint16_t window, uint16_t mss, const void *data, size_t n);

/* The Internet checksum of N bytes, continuing from SUM (0 to start). */
uint32_t net_sum(uint32_t sum, const void *buf, size_t n);
uint16_t net_sum_fold(uint32_t sum);

/* Text forms.  Parsers return 0 or -1; formatters write into BUF and return it. */
int net_parse_mac(const char *s, uint8_t mac[6]);
int net_parse_ip(const char *s, uint32_t *ip);
const char *net_fmt_mac(const uint8_t mac[6], char buf[18]);
const char *net_fmt_ip(uint32_t ip, char buf[16]);
/* A netmask given as dotted quad or prefix length ("24"); contiguous only. */
int net_parse_mask(const char *s, uint32_t *mask);
int net_mask_bits(uint32_t mask);        /* prefix length, -1 if not contiguous */

static inline int net_mac_is_group(const uint8_t mac[6]) { return mac[0] & 1; }

#endif
