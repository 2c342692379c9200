/* libFuzzer target: a recorded boot profile (boot --record-profile's
 * file, read back by index --profile --xnest).
 *
 * Whatever the bytes, kidx_profile_text either refuses them or returns a
 * list of distinct chunk numbers below the chunk count, at most that many,
 * and writing the list back as text gives exactly the input. */
#include "remote/index.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint32_t nchunks = 1000, *l, n;

	if (kidx_profile_text(data, size, nchunks, "fuzz", &l, &n) < 0) {
		if (l)
			abort();
		return 0;
	}
	if (n > nchunks)
		abort();
	char *back = malloc((size_t)n * 11 + 1);
	size_t len = 0;
	for (uint32_t i = 0; i < n; i++) {
		if (l[i] >= nchunks)
			abort();
		len += (size_t)sprintf(back + len, "%u\n", l[i]);
	}
	/* Leading zeros are the one spelling that does not come back. */
	if (len == size && memcmp(back, data, size))
		abort();
	free(back);
	free(l);
	return 0;
}
