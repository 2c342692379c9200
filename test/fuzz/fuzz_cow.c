/* libFuzzer target: the UML COW header parser and bitmap checks. */
#include "image/cow.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ksrc src;
	struct cow c;

	ksrc_mem(&src, data, size, "fuzz");
	if (cow_open(&c, &src) < 0)
		return 0;
	(void)cow_count(&c);
	cow_close(&c);
	return 0;
}
