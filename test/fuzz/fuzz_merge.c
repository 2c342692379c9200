/* libFuzzer target: frames out of the VXLAN tunnel as the switch puts
 * TCP segments back together (vnet_merge), any of them hostile: lengths
 * that lie, options, flags, sequence numbers, checksums.
 *
 * Input: frames, each a 2-byte big-endian length and its bytes.  Every
 * run taken must pass vnet_check; cut again as a port without offloads
 * would have it, it must give exactly as many segments as joined, each
 * with right IP and TCP checksums (checked by tcpcheck.h, written apart),
 * and carry exactly the data of the segments that joined, in order. */
#include "core/bytes.h"
#include "net/vnet.h"
#include "../unit/tcpcheck.h"

#include <stdlib.h>
#include <string.h>

static struct vnet_merge m;
static uint8_t want[VNET_FRAME_MAX], got[VNET_FRAME_MAX], scratch[VNET_FRAME_MAX];
static size_t nwant, ngot, hl;
static int cuts;

static void emit(void *ctx, const uint8_t *f, size_t n)
{
	(void)ctx;
	if (tcp_frame_ok(f, n) != 1 || n < hl || ngot + n - hl > sizeof(got))
		abort();
	memcpy(got + ngot, f + hl, n - hl);
	ngot += n - hl;
	cuts++;
}

static void take(void)
{
	struct vnet_hdr h;
	int segs = m.segs;

	if (!m.n)
		return;
	hl = m.hl;
	size_t n = vnet_merge_take(&m, &h);
	if (segs > 1) {
		if (vnet_check(&h, m.frame, n) < 0 || n - hl != nwant)
			abort();
		ngot = 0;
		cuts = 0;
		if (vnet_plain(&h, m.frame, n, scratch, sizeof(scratch), emit, NULL) != segs || cuts != segs ||
		    ngot != nwant || memcmp(got, want, nwant))
			abort();
	} else if (!vnet_is_plain(&h) || tcp_frame_ok(m.frame, n) != 1) {
		abort();                /* one segment goes on as it came, checksums right */
	}
	nwant = 0;
}

static void offer(const uint8_t *f, size_t n)
{
	int r = vnet_merge_add(&m, f, n);
	if (r == 0) {
		take();
		r = vnet_merge_add(&m, f, n);
		if (r == 0)
			abort();        /* an empty run takes what can join any */
	}
	if (r > 0) {
		if (n < m.hl || nwant + n - m.hl > sizeof(want))
			abort();
		memcpy(want + nwant, f + m.hl, n - m.hl);
		nwant += n - m.hl;
	} else {
		take();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	m.n = 0;
	nwant = 0;
	while (size >= 2) {
		size_t n = k_be16(data);
		data += 2;
		size -= 2;
		if (n > size)
			n = size;
		/* Each frame on the heap, exactly its size: ASan sees overruns. */
		uint8_t *f = malloc(n ? n : 1);
		memcpy(f, data, n);
		offer(f, n);
		free(f);
		data += n;
		size -= n;
	}
	take();
	return 0;
}
