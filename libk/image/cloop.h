/* cloop: the compressed loop image format of KNOPPIX and its kernel module.
 *
 * Layout (all numbers big-endian):
 *   V2.0: 128-byte preamble ("V2.0" at 0x0b), u32 block_size, u32 num_blocks,
 *         num_blocks+1 u64 absolute offsets, then the zlib-compressed blocks.
 *   V4.0: the same header and index, either at the start ("header first") or
 *         at the very end ("footer": blocks, index, header).  The top 4 bits of
 *         each offset name the block's compressor: 0 zlib, 1 none, 2 xz,
 *         3 lz4, 4 lzo.
 * Every block decompresses to exactly block_size bytes; the last is padded
 * with zeros, because the format does not record the image's byte length.
 *
 * cloop_open() treats the file as hostile: every offset, size and count is
 * checked before use, and errors are reported through k_seterr().
 */
#ifndef UMLK_CLOOP_H
#define UMLK_CLOOP_H

#include <stddef.h>
#include <stdint.h>
#include <zlib.h>

#include "core/bytes.h"
#include "core/xio.h"

#define CLOOP_HEAD_SIZE 136             /* preamble + block_size + num_blocks */
#define CLOOP_SIG_OFFSET 0x0b
#define CLOOP_MAX_BLOCK (64u << 20)     /* larger blocks are refused */

enum cloop_comp { CLOOP_ZLIB, CLOOP_NONE, CLOOP_XZ, CLOOP_LZ4, CLOOP_LZO, CLOOP_NCOMP };

struct cloop {
	const struct ksrc *src;
	int version;            /* 2 or 4 */
	int footer;             /* header and index stored at the end */
	uint32_t block_size, num_blocks;
	uint64_t *ofs;          /* num_blocks+1 offsets, compressor bits removed */
	uint8_t *comp;          /* compressor of each block */
	uint64_t index_off;     /* where the offset table starts */
	uint64_t count[CLOOP_NCOMP];    /* blocks per compressor */
};

int cloop_open(struct cloop *c, const struct ksrc *src);
void cloop_close(struct cloop *c);
const char *cloop_comp_name(int comp);
/* Largest compressed size a block of BS bytes may have. */
size_t cloop_max_csize(uint32_t bs);
/* -1 with k_seterr() if any block uses a compressor this build cannot read. */
int cloop_check_supported(const struct cloop *c);

/* Decompress one block (IN, LEN) into OUT (block_size bytes).  Thread-safe
 * given a z_stream per thread (zs->state == NULL until first use).  Returns
 * NULL or a static description of what is wrong. */
const char *cloop_decode(z_stream *zs, int comp, const uint8_t *in, size_t len,
			 uint8_t *out, uint32_t bs);
void cloop_zfree(z_stream *zs);

/* Fill a 136-byte header. */
void cloop_make_head(uint8_t *head, int version, uint32_t bs, uint32_t nblocks);

/* Applet-level operations. */
struct cloop_make_opts {
	uint32_t block_size;
	int level;              /* zlib level 0..9 */
	int threads;
	int v4;
};
void xcloop_extract(struct cloop *c, struct kout *out, int threads);
void xcloop_make(const struct cloop_make_opts *o, const char *in, struct kout *out);

#endif
