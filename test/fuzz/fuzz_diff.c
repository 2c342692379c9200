/* libFuzzer target: the portable diff reader (header, hash, runs). */
#include "image/diff.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	diff_check_mem(data, size, "fuzz");
	return 0;
}
