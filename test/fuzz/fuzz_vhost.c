/* libFuzzer target: vhost-user messages as a front end sends them.
 *
 * The input is a sequence of messages: request (u32), flags (u32), size
 * (u32), then the payload; the size field is trusted only as far as the
 * input goes.  Messages that carry descriptors get real ones: a 1 MiB
 * memfd for SET_MEM_TABLE (as many as it names regions, up to the limit),
 * an eventfd for the ring descriptor messages.  After each message queue
 * 0 is kicked, so the rings a message sequence sets up get walked. */
#include "block/bsrc.h"
#include "core/bytes.h"
#include "core/pool.h"
#include "vhost/vblk.h"
#include "vhost/vhost.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#define MEM (1 << 20)

static int memfd = -1;
static struct bsrc *disk;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct vblk b;
	uint8_t reply[VU_HDR + VU_PAYLOAD_MAX];
	size_t rl;

	if (memfd < 0) {
		memfd = memfd_create("fuzz-guest-memory", 0);
		if (memfd < 0 || ftruncate(memfd, MEM) < 0)
			abort();
		int dfd = memfd_create("fuzz-disk", 0);
		if (dfd < 0 || ftruncate(dfd, 1 << 16) < 0)
			abort();
		disk = bsrc_file(dfd, "fuzz-disk", 0, 1 << 16, 1, NULL);
	}
	memset(&b, 0, sizeof(b));
	b.disk = disk;
	snprintf(b.serial, sizeof(b.serial), "fuzz");
	/* The ops of the real device, by starting nothing: vblk's kick is
	 * not used here; requests are popped and answered inline below. */
	static const struct vu_ops ops = { .features = 0, .nqueues = 1 };
	vu_init(&b.srv.dev, "fuzz", &ops, &b);
	struct vu_dev *d = &b.srv.dev;
	size_t at = 0;
	for (int m = 0; m < 64 && size - at >= VU_HDR; m++) {
		uint32_t req = k_le32(data + at), flags = k_le32(data + at + 4), len = k_le32(data + at + 8);
		at += VU_HDR;
		if (len > size - at)
			len = (uint32_t)(size - at);
		if (len > VU_PAYLOAD_MAX)
			len = VU_PAYLOAD_MAX;
		int fds[VU_MAX_FDS], nfds = 0;
		if (req == VU_SET_MEM_TABLE && len >= 4) {
			uint32_t n = k_le32(data + at);
			for (uint32_t i = 0; i < n && i < VU_MAX_FDS; i++)
				fds[nfds++] = dup(memfd);
		} else if (req >= VU_SET_VRING_KICK && req <= VU_SET_VRING_ERR && len == 8 &&
			   !(data[at + 1] & 1)) {
			fds[nfds++] = eventfd(0, EFD_CLOEXEC);
		}
		vu_message(d, req, flags, data + at, len, fds, nfds, reply, &rl);
		at += len;
		/* Serve what queue 0 holds, as the device would. */
		struct vu_chain *c = malloc(sizeof(*c));
		for (int k = 0; k < 300 && vq_pop(d, 0, c) > 0; k++)
			vblk_request(&b, 0, c);
		free(c);
	}
	vu_free(d);
	return 0;
}
