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

/* The most bytes of a frame vnet_check reads: Ethernet with a VLAN tag,
 * the longest IPv4 header, the longest TCP header. */
#define VNET_HEAD_MAX (18 + 60 + 60)

/* vnet_check of an N-byte frame of which only the first HAVE bytes are at
 * hand (HAVE >= N or >= VNET_HEAD_MAX): the same answer, from the headers
 * alone, so a switch can check a copy of them and leave the rest where it
 * is. */
int vnet_check_head(const struct vnet_hdr *h, const uint8_t *frame, size_t have, size_t n);

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

/* Putting TCP segments back together, as a port that negotiated segment
 * offload takes them: consecutive segments of one TCP flow (ordinary
 * frames, as the tunnel delivers them) become one frame of up to 64 KiB
 * with a GSO header, so a guest handles one frame where the wire carried
 * forty.  A segment joins when it is TCP over IPv4 (no fragment) or IPv6
 * (no extension headers), at most one VLAN tag, carries data and no flag
 * but ACK and PSH (PSH ends the run), every header byte is the first
 * segment's except those that differ segment to segment (IPv4 id,
 * lengths, checksums, the sequence number), its sequence number is where
 * the run ends, it is no longer than the first, and its IP and TCP
 * checksums are right (a damaged segment joins nothing: it goes on as it
 * is, for the guest to drop).  The frames are hostile input: every length
 * is checked against the bytes there. */
struct vnet_merge {
	size_t n;                       /* bytes in frame; 0: empty */
	size_t l3, l4, hl;              /* as in the first segment */
	int v6, segs, closed;
	uint16_t mss;                   /* the first segment's payload */
	uint32_t next;                  /* the sequence number that continues the run */
	uint8_t frame[VNET_FRAME_MAX];
};

/* Offer the N-byte frame F to M: 1 it joined M's run (or began it, M
 * being empty); 0 it does not continue the run (take M's frame, then
 * offer F again); -1 it can join no run (send it as it is).  An empty M
 * never answers 0. */
int vnet_merge_add(struct vnet_merge *m, const uint8_t *f, size_t n);
/* M's frame (at M->frame) and its header into H: one segment as it came
 * (a plain header), more as one TCP segment offload whose checksum is
 * left to the port (NEEDS_CSUM, the pseudo-header sum in the field, as
 * a guest hands one over).  Returns its length; M is empty after, the
 * bytes stay until the next vnet_merge_add. */
size_t vnet_merge_take(struct vnet_merge *m, struct vnet_hdr *h);

#endif
