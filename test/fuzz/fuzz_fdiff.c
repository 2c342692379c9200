/* libFuzzer target: a diff of files' stream of entries (the body of an
 * upper layer's diff, and what the guest reads from its job disk), with an
 * oracle: an entry accepted reads back from its own encoding byte for
 * byte. */
#include "image/fdiff.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct fdent e;
	static uint8_t enc[FDIFF_HEAD + 2 * (FDIFF_PATH_MAX + 1) + sizeof(e.xbuf) + 5 * FDIFF_XATTRS_MAX];
	struct fdmem m;
	struct fdin in;

	fdin_mem(&in, &m, data, size, "fuzz");
	for (;;) {
		size_t start = m.off + (size_t)in.left;
		if (fdin_next(&in, &e) <= 0)
			break;
		size_t hl = fdent_format(&e, enc);
		if (hl != fdent_size(&e) || hl != m.off - start || memcmp(enc, data + start, hl))
			abort();
	}
	fdiff_check_mem(data, size, "fuzz", NULL);
	return 0;
}
