#include "image/cloop.h"
#include "core/err.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define OFFSET_MASK 0x0fffffffffffffffULL

static const char *comp_names[16] = {
	"zlib", "none", "xz", "lz4", "lzo",
};

const char *cloop_comp_name(int comp)
{
	return comp >= 0 && comp < 16 && comp_names[comp] ? comp_names[comp] : "unknown";
}

size_t cloop_max_csize(uint32_t bs)
{
	/* zlib's compressBound() is smaller than this for every block size;
	 * the extra slack admits other deflate encoders (7-zip's). */
	return (size_t)bs + bs / 1000 + 64;
}

/* Signature at 0x0b: 2 or 4, 0 if none, 3 for the unsupported V3.0. */
static int signature(const uint8_t *h)
{
	const char *s = (const char *)h + CLOOP_SIG_OFFSET;

	if (!memcmp(s, "V2.0", 4))
		return 2;
	if (!memcmp(s, "V4.0", 4))
		return 4;
	if (!memcmp(s, "V3.0", 4))
		return 3;
	return 0;
}

int cloop_open(struct cloop *c, const struct ksrc *src)
{
	uint8_t head[CLOOP_HEAD_SIZE];
	const char *name = src->name;
	uint64_t size = src->size;

	memset(c, 0, sizeof(*c));
	c->src = src;
	if (size < CLOOP_HEAD_SIZE)
		return k_seterr("%s: not a cloop image: only %" PRIu64 " bytes", name, size);
	if (ksrc_read(src, head, sizeof(head), 0) < 0)
		return -1;
	c->version = signature(head);
	if (!c->version) {
		if (ksrc_read(src, head, sizeof(head), size - CLOOP_HEAD_SIZE) < 0)
			return -1;
		if (signature(head) == 4) {
			c->version = 4;
			c->footer = 1;
		}
	}
	if (c->version == 3)
		return k_seterr("%s: cloop V3.0 images are not supported (only V2.0 and V4.0)", name);
	if (!c->version)
		return k_seterr("%s: not a cloop image (no V2.0 or V4.0 signature)", name);

	c->block_size = k_be32(head + 128);
	c->num_blocks = k_be32(head + 132);
	if (c->block_size == 0 || c->block_size % 512)
		return k_seterr("%s: block size %" PRIu32 " is not a positive multiple of 512",
				name, c->block_size);
	if (c->block_size > CLOOP_MAX_BLOCK)
		return k_seterr("%s: block size %" PRIu32 " is too large (at most %u)",
				name, c->block_size, CLOOP_MAX_BLOCK);

	/* 64-bit arithmetic: (2^32) * 8 cannot overflow, and the comparison
	 * with the file size bounds the allocation below. */
	uint64_t idx_bytes = ((uint64_t)c->num_blocks + 1) * 8;
	if (idx_bytes > size - CLOOP_HEAD_SIZE)
		return k_seterr("%s: block count %" PRIu32 " needs a %" PRIu64
				"-byte index, more than the file holds (%" PRIu64 " bytes)",
				name, c->num_blocks, idx_bytes, size);
	uint64_t lo, hi;        /* where block data may lie */
	if (c->footer) {
		c->index_off = size - CLOOP_HEAD_SIZE - idx_bytes;
		lo = 0;
		hi = c->index_off;
	} else {
		c->index_off = CLOOP_HEAD_SIZE;
		lo = CLOOP_HEAD_SIZE + idx_bytes;
		hi = size;
	}

	uint8_t *raw = malloc(idx_bytes);
	c->ofs = malloc(idx_bytes);
	c->comp = malloc((size_t)c->num_blocks + 1);
	if (!raw || !c->ofs || !c->comp) {
		free(raw);
		cloop_close(c);
		return k_seterr("%s: out of memory for a %" PRIu64 "-byte index", name, idx_bytes);
	}
	if (ksrc_read(src, raw, idx_bytes, c->index_off) < 0)
		goto fail;

	size_t maxz = cloop_max_csize(c->block_size);
	for (uint64_t i = 0; i <= c->num_blocks; i++) {
		uint64_t v = k_be64(raw + i * 8);
		int comp = 0;
		if (c->version == 4) {
			comp = (int)(v >> 60);
			v &= OFFSET_MASK;
		}
		c->ofs[i] = v;
		c->comp[i] = comp;
		if (v < lo || v > hi) {
			k_seterr("%s: corrupt index: offset %" PRIu64 " of block %" PRIu64
				 " lies outside the data area (%" PRIu64 "..%" PRIu64 ")%s",
				 name, v, i, lo, hi, v > hi && !c->footer ? "; file truncated?" : "");
			goto fail;
		}
		if (i == 0)
			continue;
		uint64_t b = i - 1;
		if (v < c->ofs[b]) {
			k_seterr("%s: corrupt index: offset of block %" PRIu64
				 " goes backwards (%" PRIu64 " < %" PRIu64 ")", name, i, v, c->ofs[b]);
			goto fail;
		}
		uint64_t len = v - c->ofs[b];
		int bc = c->comp[b];
		if (bc >= CLOOP_NCOMP) {
			k_seterr("%s: block %" PRIu64 " has unknown compressor number %d",
				 name, b, bc);
			goto fail;
		}
		if (len == 0) {
			k_seterr("%s: corrupt index: block %" PRIu64 " is empty", name, b);
			goto fail;
		}
		if (bc == CLOOP_NONE ? len != c->block_size : len > maxz) {
			k_seterr("%s: corrupt index: block %" PRIu64 " is %" PRIu64
				 " bytes compressed, impossible for %" PRIu32 "-byte blocks",
				 name, b, len, c->block_size);
			goto fail;
		}
		c->count[bc]++;
	}
	free(raw);
	return 0;
fail:
	free(raw);
	cloop_close(c);
	return -1;
}

void cloop_close(struct cloop *c)
{
	free(c->ofs);
	free(c->comp);
	c->ofs = NULL;
	c->comp = NULL;
}

int cloop_check_supported(const struct cloop *c)
{
	for (uint32_t i = 0; i < c->num_blocks; i++)
		if (c->comp[i] != CLOOP_ZLIB && c->comp[i] != CLOOP_NONE)
			return k_seterr("%s: block %" PRIu32 " uses %s compression;"
					" compressor not supported (only zlib and none)",
					c->src->name, i, cloop_comp_name(c->comp[i]));
	return 0;
}

const char *cloop_decode(z_stream *zs, int comp, const uint8_t *in, size_t len,
			 uint8_t *out, uint32_t bs)
{
	if (comp == CLOOP_NONE) {
		if (len != bs)
			return "uncompressed block has the wrong size";
		memcpy(out, in, bs);
		return NULL;
	}
	if (comp != CLOOP_ZLIB)
		return "compressor not supported (only zlib and none)";
	if (!zs->state) {
		zs->zalloc = Z_NULL;
		zs->zfree = Z_NULL;
		zs->opaque = Z_NULL;
		zs->next_in = Z_NULL;
		zs->avail_in = 0;
		if (inflateInit(zs) != Z_OK)
			return "cannot initialise zlib";
	} else if (inflateReset(zs) != Z_OK) {
		return "cannot reset zlib";
	}
	zs->next_in = (Bytef *)in;
	zs->avail_in = len;
	zs->next_out = out;
	zs->avail_out = bs;
	int r = inflate(zs, Z_FINISH);
	if (r == Z_STREAM_END)
		return zs->avail_out ? "inflates to less than the block size" : NULL;
	if (r == Z_BUF_ERROR && zs->avail_out == 0)
		return "inflates to more than the block size";
	if (r == Z_BUF_ERROR)
		return "compressed data ends too soon";
	return "fails to inflate: corrupt zlib data";
}

void cloop_zfree(z_stream *zs)
{
	if (zs->state)
		inflateEnd(zs);
}

void cloop_make_head(uint8_t *head, int version, uint32_t bs, uint32_t nblocks)
{
	/* The preamble is a shell script by tradition; the signature must sit
	 * at offset 0x0b, right after "#!/bin/sh\n#". */
	static const char v2[] = "#!/bin/sh\n#V2.0 Format\n"
		"modprobe cloop file=$0 && mount -r /dev/cloop $1\nexit $?\n";
	static const char v4[] = "#!/bin/sh\n#V4.0 Format\n"
		"modprobe cloop file=$0 && mount -r /dev/cloop $1\nexit $?\n";

	memset(head, 0, CLOOP_HEAD_SIZE);
	memcpy(head, version == 4 ? v4 : v2, sizeof(v2) - 1);
	k_put_be32(head + 128, bs);
	k_put_be32(head + 132, nblocks);
}
