/* libFuzzer target: the ISO9660 reader, looking up KNOPPIX/KNOPPIX. */
#include "image/iso9660.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ksrc src;
	uint64_t off, len;

	ksrc_mem(&src, data, size, "fuzz");
	if (iso_detect(&src))
		iso_find(&src, "KNOPPIX/KNOPPIX", &off, &len);
	return 0;
}
