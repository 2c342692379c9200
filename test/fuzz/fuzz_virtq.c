/* libFuzzer target: the split-virtqueue walker and the virtio-blk request
 * parser, on guest memory the input fills.
 *
 * Input: u16 ring size (made a power of two, at most 256), u16 avail
 * index, u16 last avail index, u8 descriptor-table, avail and used ring
 * positions (in 256-byte units), then the bytes of a 64 KiB guest memory
 * (descriptors, rings, indirect tables, request headers).  Everything is
 * popped and served until the queue is empty or broken: loops, indirect
 * tables, addresses outside the memory, lengths of 0 and 4 GiB, index
 * wrap-around. */
#include "block/bsrc.h"
#include "core/bytes.h"
#include "vhost/vblk.h"
#include "vhost/vhost.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define MEM (64 << 10)
#define GPA 0x100000                    /* where the memory lies for the guest */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t *mem;
	static struct bsrc *disk;
	static struct vblk b;

	if (size < 9)
		return 0;
	if (!mem) {
		mem = malloc(MEM);
		int dfd = memfd_create("fuzz-disk", 0);
		if (!mem || dfd < 0 || ftruncate(dfd, 1 << 16) < 0)
			abort();
		disk = bsrc_file(dfd, "fuzz-disk", 0, 1 << 16, 1, NULL);
	}
	memset(mem, 0, MEM);
	memcpy(mem, data + 9, size - 9 < MEM ? size - 9 : MEM);
	unsigned num = 1u << (data[0] % 9);             /* 1 .. 256 */
	memset(&b, 0, sizeof(b));
	b.disk = disk;
	static const struct vu_ops ops = { .features = 0, .nqueues = 1 };
	vu_init(&b.srv.dev, "fuzz", &ops, &b);
	struct vu_dev *d = &b.srv.dev;
	d->nregions = 1;
	d->region[0] = (struct vu_region){ GPA, MEM, GPA, mem, NULL, 0 };
	struct vu_queue *q = &d->q[0];
	q->num = num;
	q->desc = (struct vring_desc *)(mem + 256 * (data[6] % 200) / 16 * 16);
	uint64_t avail = 256 * (uint64_t)(data[7] % 200), used = 256 * (uint64_t)(data[8] % 200);
	if (avail + 4 + 2 * num + 2 > MEM || used + 4 + 8 * num + 2 > MEM ||
	    (uint8_t *)q->desc + 16 * num > mem + MEM) {
		vu_free(d);
		return 0;
	}
	q->avail = (uint16_t *)(mem + avail);
	q->used = mem + used;
	q->avail[1] = k_le16(data + 2);
	q->last_avail = k_le16(data + 4);
	q->used_idx = q->last_avail;
	q->started = q->enabled = 1;
	struct vu_chain *c = malloc(sizeof(*c));
	for (int k = 0; k < 1000 && vq_pop(d, 0, c) > 0; k++)
		vblk_request(&b, 0, c);
	free(c);
	d->nregions = 0;                /* nothing of ours to unmap */
	vu_free(d);
	return 0;
}
