#include "vhost/vblk.h"
#include "core/bytes.h"
#include "core/err.h"
#include "core/xio.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SECTOR 512
#define BLK_T_IN 0
#define BLK_T_OUT 1
#define BLK_T_FLUSH 4
#define BLK_T_GET_ID 8
#define BLK_T_WRITE_ZEROES 13
#define BLK_S_OK 0
#define BLK_S_IOERR 1
#define BLK_S_UNSUPP 2
#define BLK_F_SEG_MAX 2
#define BLK_F_RO 5
#define BLK_F_BLK_SIZE 6
#define BLK_F_FLUSH 9
#define BLK_F_MQ 12
#define BLK_F_WRITE_ZEROES 14
#define ZEROES_MAX_SECTORS (1u << 22)   /* 2 GiB a request */
#define SEG_MAX 126                     /* a 128-entry ring less header and status */
#define ID_BYTES 20
/* A queue for each guest CPU, up to 4 (the guest takes as many as it has
 * CPUs): each CPU submits on its own, and the guest's kernel gives a disk
 * of several queues no I/O scheduler, as it does QEMU's (whose virtio-blk
 * has a queue per CPU).  One of its own (mq-deadline, for one queue) only
 * added its work to each request: 3000 random 4 KiB reads on CPU 0,
 * 0.051 s against 0.043 s.  Switching it off from the guest's init cost
 * each disk 50 ms of the boot instead (the queue frozen for RCU). */
#define QUEUES VU_MAX_QUEUES

static void get_config(struct vu_dev *d, uint8_t *buf, uint32_t off, uint32_t len)
{
	struct vblk *b = d->ctx;
	uint8_t cfg[64];

	memset(cfg, 0, sizeof(cfg));
	k_put_le64(cfg, b->disk->size / SECTOR);        /* capacity, in 512-byte sectors */
	k_put_le32(cfg + 12, SEG_MAX);
	k_put_le32(cfg + 20, SECTOR);                    /* blk_size */
	k_put_le16(cfg + 34, QUEUES);                    /* num_queues */
	k_put_le32(cfg + 48, ZEROES_MAX_SECTORS);        /* max_write_zeroes_sectors */
	k_put_le32(cfg + 52, 1);                         /* max_write_zeroes_seg */
	if (off < sizeof(cfg))
		memcpy(buf, cfg + off, len < sizeof(cfg) - off ? len : sizeof(cfg) - off);
}

/* Move LEN bytes between the disk at OFF and the vectors V[0..N) (past
 * SKIP bytes): the guest's memory is read or written in place. */
static int transfer(struct vblk *b, const struct iovec *v, unsigned n, size_t skip, size_t len,
		    uint64_t off, int write)
{
	for (unsigned i = 0; i < n && len; i++) {
		size_t l = v[i].iov_len;
		if (skip >= l) {
			skip -= l;
			continue;
		}
		size_t k = l - skip < len ? l - skip : len;
		uint8_t *p = (uint8_t *)v[i].iov_base + skip;
		if (write ? bsrc_write(b->disk, p, k, off) : bsrc_read(b->disk, p, k, off))
			return -1;
		off += k;
		len -= k;
		skip = 0;
	}
	return 0;
}

/* WRITE_ZEROES: one segment (sector, count, flags) after the header, its
 * sectors written with zeros.  The guest's kernel asks this instead of
 * writing its zero page, which lies in its own image, outside the memory
 * it shares with us (a write from there could not be served). */
static int write_zeroes(struct vblk *b, struct vu_chain *c, size_t hdr)
{
	struct vu_dev *d = &b->srv.dev;
	uint8_t seg[16];
	static const uint8_t zero[65536];

	if (c->in_len - hdr != sizeof(seg))
		return vu_log(d, "WRITE_ZEROES with %zu bytes of segments (one is 16)", c->in_len - hdr), -1;
	vu_iov_to_buf(c->in, c->nin, hdr, seg, sizeof(seg));
	uint64_t sector = k_le64(seg), cap = b->disk->size / SECTOR;
	uint32_t n = k_le32(seg + 8), flags = k_le32(seg + 12);
	if (flags & ~1u || n > ZEROES_MAX_SECTORS || sector > cap || n > cap - sector)
		return vu_log(d, "WRITE_ZEROES of %u sectors at %" PRIu64 " of %" PRIu64 " (flags 0x%x)", n, sector,
			      cap, flags), -1;
	if (b->disk->readonly)
		return vu_log(d, "a write to a read-only disk"), -1;
	for (uint64_t off = sector * SECTOR, end = off + (uint64_t)n * SECTOR; off < end;) {
		size_t k = end - off < sizeof(zero) ? (size_t)(end - off) : sizeof(zero);
		if (bsrc_write(b->disk, zero, k, off) < 0) {
			if (!b->disk->says_errors)
				vu_log(d, "%s", k_errmsg());
			return -1;
		}
		off += k;
	}
	return 0;
}

void vblk_request(struct vblk *b, int q, struct vu_chain *c)
{
	struct vu_dev *d = &b->srv.dev;
	uint8_t hdr[16], status = BLK_S_IOERR;
	uint32_t written = 0;

	__atomic_add_fetch(&b->requests, 1, __ATOMIC_RELAXED);
	if (c->in_len < sizeof(hdr) || c->out_len < 1) {
		vu_log(d, "a request without its header or status byte (%zu and %zu bytes)", c->in_len,
		       c->out_len);
		vq_push(d, q, c->head, 0);
		return;
	}
	vu_iov_to_buf(c->in, c->nin, 0, hdr, sizeof(hdr));
	uint32_t type = k_le32(hdr);
	uint64_t sector = k_le64(hdr + 8), cap = b->disk->size / SECTOR;
	size_t data_in = c->in_len - sizeof(hdr), data_out = c->out_len - 1;

	switch (type) {
	case BLK_T_IN:
	case BLK_T_OUT: {
		int w = type == BLK_T_OUT;
		size_t len = w ? data_in : data_out;
		if (len % SECTOR || sector > cap || len / SECTOR > cap - sector) {
			vu_log(d, "%s of %zu bytes at sector %" PRIu64 " of %" PRIu64, w ? "write" : "read",
			       len, sector, cap);
			break;
		}
		if (w && b->disk->readonly) {
			vu_log(d, "a write to a read-only disk");
			break;
		}
		int r = w ? transfer(b, c->in, c->nin, sizeof(hdr), len, sector * SECTOR, 1)
			  : transfer(b, c->out, c->nout, 0, len, sector * SECTOR, 0);
		if (r < 0) {
			if (!(w && b->disk->says_errors))       /* (a source that said it already) */
				vu_log(d, "%s", k_errmsg());
			break;
		}
		status = BLK_S_OK;
		written = w ? 0 : (uint32_t)len;
		break;
	}
	case BLK_T_FLUSH:
		if (bsrc_flush(b->disk) < 0) {
			if (!b->disk->says_errors)
				vu_log(d, "%s", k_errmsg());
			break;
		}
		status = BLK_S_OK;
		break;
	case BLK_T_WRITE_ZEROES:
		if (write_zeroes(b, c, sizeof(hdr)) == 0)
			status = BLK_S_OK;
		break;
	case BLK_T_GET_ID: {
		size_t n = data_out < ID_BYTES ? data_out : ID_BYTES;
		uint8_t id[ID_BYTES];
		memset(id, 0, sizeof(id));
		memcpy(id, b->serial, strnlen(b->serial, ID_BYTES));
		vu_buf_to_iov(c->out, c->nout, 0, id, n);
		written = (uint32_t)n;
		status = BLK_S_OK;
		break;
	}
	default:
		status = BLK_S_UNSUPP;
		break;
	}
	if (status == BLK_S_IOERR)
		__atomic_add_fetch(&b->errors, 1, __ATOMIC_RELAXED);
	vu_buf_to_iov(c->out, c->nout, data_out, &status, 1);
	vq_push(d, q, c->head, written + 1);
}

static void serve(struct vu_dev *d, int q, struct vu_chain *c)
{
	vblk_request(d->ctx, q, c);
}

static void kick(struct vu_dev *d, int q)
{
	vu_pop_to_pool(d, q, ((struct vblk *)d->ctx)->pool, serve);
}

/* What every disk offers; a writable one adds WRITE_ZEROES, a read-only one RO. */
#define BLK_FEATURES (1ULL << BLK_F_SEG_MAX | 1ULL << BLK_F_BLK_SIZE | 1ULL << BLK_F_FLUSH | 1ULL << BLK_F_MQ)

static const struct vu_ops blk_ops = {
	.features = BLK_FEATURES | 1ULL << BLK_F_WRITE_ZEROES,
	.nqueues = QUEUES,
	.get_config = get_config,
	.kick = kick,
};
static const struct vu_ops blk_ro_ops = {
	.features = BLK_FEATURES | 1ULL << BLK_F_RO,
	.nqueues = QUEUES,
	.get_config = get_config,
	.kick = kick,
};

int vblk_start(struct vblk *b, const char *path, const char *name, struct bsrc *disk,
	       struct pool *pool)
{
	memset(b, 0, sizeof(*b));
	b->disk = disk;
	b->pool = pool;
	snprintf(b->serial, sizeof(b->serial), "umlk-%s", name);
	return vu_device_start(&b->srv, path, name, disk->readonly ? &blk_ro_ops : &blk_ops, b);
}

void vblk_stop(struct vblk *b)
{
	vu_device_stop(&b->srv, b->pool);
}
