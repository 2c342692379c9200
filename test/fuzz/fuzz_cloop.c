/* libFuzzer target: the cloop header and index parser, and the block
 * decoder on whatever index the parser accepts. */
#include "image/cloop.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ksrc src;
	struct cloop c;

	ksrc_mem(&src, data, size, "fuzz");
	if (cloop_open(&c, &src) < 0)
		return 0;
	/* Decode a few blocks; the index guarantees they lie inside the data. */
	if (c.block_size <= (1u << 20)) {
		uint8_t *out = malloc(c.block_size);
		z_stream zs = { 0 };
		for (uint32_t i = 0; i < c.num_blocks && i < 4; i++)
			cloop_decode(&zs, c.comp[i], data + c.ofs[i], c.ofs[i + 1] - c.ofs[i],
				     out, c.block_size);
		cloop_zfree(&zs);
		free(out);
	}
	cloop_close(&c);
	return 0;
}
