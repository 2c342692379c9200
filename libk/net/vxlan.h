/* vxlan: Ethernet over UDP between hosts (RFC 7348), as the switch's
 * VXLAN port speaks it: the Linux kernel's vxlan device, Open vSwitch and
 * hardware switches speak the same.
 *
 * A datagram is an 8-byte header (flags with the I bit, 24-bit VNI) and
 * one Ethernet frame.  vxlan_check() reads a datagram as hostile input:
 * its length, the I flag, the VNI, the inner frame's size and source MAC
 * are checked before any of it is used; the verdict names why one is
 * dropped, for the switch to count.  VXLAN has no authentication: the
 * switch takes datagrams only from the remotes it was given (matched by
 * address, not port: the kernel sends from a port of its own choosing).
 */
#ifndef UMLK_VXLAN_H
#define UMLK_VXLAN_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define VXLAN_PORT 4789                 /* IANA's */
#define VXLAN_HLEN 8
#define VXLAN_VNI_MAX 0xffffff
#define VXLAN_REMOTES_MAX 64
/* Outer headers a frame gains: IP, UDP, VXLAN and the inner Ethernet
 * header; the default MTU is what fits a 1500-byte underlay. */
#define VXLAN_OVERHEAD_V4 (20 + 8 + VXLAN_HLEN + 14)
#define VXLAN_OVERHEAD_V6 (40 + 8 + VXLAN_HLEN + 14)
#define VXLAN_UNDERLAY_MTU 1500
#define VXLAN_MTU_MIN 576
#define VXLAN_MTU_MAX 9000
#define VXLAN_FRAME_MAX (VXLAN_MTU_MAX + 14 + 4)        /* Ethernet header, a VLAN tag */

/* Why a datagram is not delivered (or a frame not sent). */
enum vxlan_verdict {
	VX_OK, VX_SHORT, VX_FLAGS, VX_VNI, VX_SIZE, VX_SOURCE, VX_STRANGER, VX_TOO_BIG, VX_SEND,
	VX_NVERDICTS
};
/* Its words in -status ("short", "no VNI flag", ...). */
extern const char *const vxlan_verdict_name[VX_NVERDICTS];

struct vxlan_addr {
	struct sockaddr_storage sa;
	socklen_t len;
};

/* The VXLAN port's configuration (umlswitch -vxlan...). */
struct vxlan_conf {
	uint32_t vni;
	int enabled;
	struct vxlan_addr local;        /* len 0: any address, port 4789 */
	struct vxlan_addr remote[VXLAN_REMOTES_MAX];
	int nremotes;
	int mtu;                        /* the guests' IP MTU; 0: what fits the underlay */
};

/* "ADDR", "ADDR:PORT", "[ADDR6]" or "[ADDR6]:PORT" (a bare IPv6 address
 * takes no port): -1 with k_seterr() when it is none of those. */
int vxlan_parse_addr(const char *s, uint16_t default_port, struct vxlan_addr *a);
/* "ADDR:PORT" or "[ADDR6]:PORT" into BUF (64 bytes), returned. */
const char *vxlan_fmt_addr(const struct vxlan_addr *a, char *buf);
/* Do A and B name the same host (the port not counted; an IPv4 address
 * and its IPv4-mapped IPv6 form are the same)? */
int vxlan_same_host(const struct vxlan_addr *a, const struct vxlan_addr *b);
/* A as the family FAMILY takes (IPv4 as IPv4-mapped for AF_INET6): -1
 * when it cannot be (IPv6 for an IPv4 socket). */
int vxlan_addr_as(const struct vxlan_addr *a, int family, struct vxlan_addr *out);

/* The MTU C gives guests: C->mtu, or what fits a 1500-byte underlay. */
int vxlan_mtu(const struct vxlan_conf *c);

/* The datagram D (N bytes) for VNI: VX_OK with the inner frame at
 * D + VXLAN_HLEN (*FLEN bytes, at most MAXFRAME), or why not. */
enum vxlan_verdict vxlan_check(uint32_t vni, const uint8_t *d, size_t n, size_t maxframe, size_t *flen);
/* The datagram D (N bytes) from FROM, for the port C configures: VX_OK
 * with the remote it came from in *REMOTE and the frame as
 * vxlan_check() gives it, or why not (a sender that is no remote first). */
enum vxlan_verdict vxlan_receive(const struct vxlan_conf *c, const struct vxlan_addr *from, const uint8_t *d,
				 size_t n, size_t maxframe, int *remote, size_t *flen);
/* The header for VNI, into H. */
void vxlan_header(uint8_t h[VXLAN_HLEN], uint32_t vni);

#endif
