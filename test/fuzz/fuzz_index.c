/* libFuzzer target: a umlk index as a web server might serve it.
 *
 * Whatever the bytes, kidx_parse either refuses them or returns an index
 * whose fields agree (chunks cover the size exactly, the profile names
 * chunks that exist), and serializing that index gives back exactly the
 * input bytes and the same SHA-256: nothing is read that is not there,
 * nothing there is ignored. */
#include "core/err.h"
#include "remote/index.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kidx x;
	if (kidx_parse(&x, data, size, "fuzz") < 0)
		return 0;
	if (x.size / x.chunk + (x.size % x.chunk != 0) != x.nchunks || x.nprofile > x.nchunks)
		abort();
	uint64_t total = 0;
	for (uint32_t i = 0; i < x.nchunks; i++)
		total += kidx_chunk_len(&x, i);
	if (total != x.size)
		abort();
	for (uint32_t i = 0; i < x.nprofile; i++)
		if (x.profile[i] >= x.nchunks)
			abort();
	uint8_t self[32];
	memcpy(self, x.self, 32);
	size_t n;
	uint8_t *b = kidx_serialize(&x, &n);
	if (n != size || memcmp(b, data, n) || memcmp(self, x.self, 32))
		abort();
	free(b);
	kidx_free(&x);
	return 0;
}
