/* vnet: frames as virtio-net carries them, and turning them into frames
 * that any Ethernet port can take.
 *
 * A virtio-net frame is preceded by a header (virtio 1.x section 5.1.6):
 * the guest may leave its TCP/UDP checksum to the device (NEEDS_CSUM:
 * csum_start and csum_offset say where; the field holds the pseudo-header
 * sum) and may hand over one TCP segment of up to 64 KiB to be cut into
 * gso_size pieces (gso_type TCPV4 or TCPV6).  A port that negotiated the
 * same offloads takes the frame as it is; for the others (daemon-protocol
 * guests, the tap, umlk's services) vnet_plain() completes the checksum
 * or cuts the segment into ordinary frames, each with its IP and TCP
 * checksums computed.
 *
 * Header and frame come from a guest: every field is checked against the
 * frame before it is used (vnet_check), and the cutting parses the
 * Ethernet, IP and TCP headers itself rather than trusting hdr_len.
 */
#ifndef UMLK_VNET_H
#define UMLK_VNET_H

#include <stddef.h>
#include <stdint.h>

#define VNET_HDR_LEN 12                 /* with VIRTIO_F_VERSION_1: num_buffers included */
#define VNET_FRAME_MAX (14 + 4 + 65535) /* Ethernet, a VLAN tag, the largest IP packet */
#define VNET_GSO_MIN 48                 /* the smallest segment size taken */

/* Feature bits of virtio-net */
#define VIRTIO_NET_F_CSUM 0
#define VIRTIO_NET_F_GUEST_CSUM 1
#define VIRTIO_NET_F_MTU 3
#define VIRTIO_NET_F_MAC 5
#define VIRTIO_NET_F_GUEST_TSO4 7
#define VIRTIO_NET_F_GUEST_TSO6 8
#define VIRTIO_NET_F_HOST_TSO4 11
#define VIRTIO_NET_F_HOST_TSO6 12
#define VIRTIO_NET_F_MRG_RXBUF 15

#define VNET_F_NEEDS_CSUM 1
#define VNET_F_DATA_VALID 2
#define VNET_GSO_NONE 0
#define VNET_GSO_TCPV4 1
#define VNET_GSO_TCPV6 4

struct vnet_hdr {
	uint8_t flags, gso_type;
	uint16_t hdr_len, gso_size, csum_start, csum_offset, num_buffers;
};

void vnet_hdr_get(struct vnet_hdr *h, const uint8_t b[VNET_HDR_LEN]);
void vnet_hdr_put(const struct vnet_hdr *h, uint8_t b[VNET_HDR_LEN]);

/* 0 when H can go with the N-byte FRAME; -1 with k_seterr() saying what
 * is wrong (an unknown GSO type, a checksum place past the end, a GSO
 * frame that is not TCP over IPv4/IPv6, ...). */
int vnet_check(const struct vnet_hdr *h, const uint8_t *frame, size_t n);

/* Is the frame more than an ordinary port takes (needs cutting or a
 * checksum)?  H must have passed vnet_check. */
static inline int vnet_is_plain(const struct vnet_hdr *h)
{
	return !(h->flags & VNET_F_NEEDS_CSUM) && h->gso_type == VNET_GSO_NONE;
}

/* Hand EMIT the frame as ordinary frames of at most MAXLEN bytes (Ethernet
 * header included), checksums complete: the frame itself (checksum
 * filled in) or, for a GSO frame, its segments.  SCRATCH has room for
 * MAXLEN bytes (and at least the frame, for a non-GSO one).  H must have
 * passed vnet_check.  Returns the number of frames emitted, -1 with
 * k_seterr() when a segment would exceed MAXLEN. */
int vnet_plain(const struct vnet_hdr *h, const uint8_t *frame, size_t n, uint8_t *scratch,
	       size_t maxlen, void (*emit)(void *ctx, const uint8_t *f, size_t len), void *ctx);

#endif
