/* libFuzzer target: a virtio-net frame as a guest hands it to umlswitch,
 * header and all, through the checks and the cutting into ordinary frames
 * that a daemon-protocol port or the tap takes.
 *
 * Input: the 12-byte virtio-net header, then the frame.  Headers that lie
 * (GSO types, segment sizes, checksum places past the end, hdr_len), IP
 * and TCP headers that lie (lengths, options, fragments, versions).  What
 * passes vnet_check must cut without reading or writing out of bounds,
 * into frames no longer than the port takes; every segment of a TCP
 * offload must carry right IP and TCP checksums (checked by an
 * independent implementation).  The check of the headers alone
 * (vnet_check_head, as the switch makes it) must agree with the whole
 * frame's. */
#include "core/err.h"
#include "net/vnet.h"
#include "../unit/tcpcheck.h"

#include <stdlib.h>
#include <string.h>

#define MAXLEN 1514

static int gso;
static size_t segments;

static void emit(void *ctx, const uint8_t *f, size_t n)
{
	(void)ctx;
	if (n > MAXLEN || n < 14)
		abort();
	if (gso && tcp_frame_ok(f, n) == 0)
		abort();                /* a segment with a wrong checksum */
	segments++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t scratch[VNET_FRAME_MAX];

	if (size < VNET_HDR_LEN)
		return 0;
	struct vnet_hdr h;
	vnet_hdr_get(&h, data);
	/* The frame on the heap, exactly its size: ASan sees every overrun. */
	size_t n = size - VNET_HDR_LEN;
	uint8_t *f = malloc(n ? n : 1);
	memcpy(f, data + VNET_HDR_LEN, n);
	/* The switch checks a copy of the first VNET_HEAD_MAX bytes alone:
	 * the answer must be the full check's, reading none past them. */
	int full = vnet_check(&h, f, n);
	size_t have = n < VNET_HEAD_MAX ? n : VNET_HEAD_MAX;
	uint8_t *head = malloc(have ? have : 1);
	memcpy(head, f, have);
	if (vnet_check_head(&h, head, have, n) != full)
		abort();
	free(head);
	if (full == 0) {
		gso = h.gso_type != VNET_GSO_NONE;
		segments = 0;
		int k = vnet_plain(&h, f, n, scratch, MAXLEN, emit, NULL);
		if (k >= 0 && (size_t)k != segments)
			abort();
		if (gso && k > (int)(n / VNET_GSO_MIN) + 1)
			abort();
	}
	free(f);
	return 0;
}
