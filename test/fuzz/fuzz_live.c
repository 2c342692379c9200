/* libFuzzer target: the live-ISO layout finder and the boot loader config
 * reader, on hostile ISO images.
 *
 * Input: a byte that picks a --root (none, or one of a few paths), then
 * an ISO image (volume descriptors, directories with Rock Ridge names,
 * live/filesystem.module lists, casper names, grub.cfg and isolinux text).
 * Whatever it holds, live_find must stay inside the image, return layers
 * that lie inside it, bounded in number, with terminated names, and
 * parameters that are printable words.  The config reader also gets the
 * raw input as GRUB and syslinux text. */
#include "core/err.h"
#include "core/xio.h"
#include "image/live.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

static void check_params(const char *p)
{
	size_t n = strnlen(p, LIVE_PARAMS_MAX);
	if (n == LIVE_PARAMS_MAX)
		abort();
	for (size_t i = 0; i < n; i++)
		if (!isprint((unsigned char)p[i]))
			abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const roots[] = { NULL, "live/filesystem.squashfs", "a/b/c", "/KNOPPIX/KNOPPIX" };
	static struct live_layout L;
	char params[LIVE_PARAMS_MAX];

	if (size < 1)
		return 0;
	live_params((const char *)data + 1, size - 1, data[0] & 1, params, sizeof(params));
	check_params(params);
	live_params((const char *)data + 1, size - 1, data[0] & 1, params, 7);
	if (strlen(params) >= 7)
		abort();

	uint8_t *img = malloc(size - 1 ? size - 1 : 1);
	memcpy(img, data + 1, size - 1);
	struct ksrc k;
	ksrc_mem(&k, img, size - 1, "fuzz.iso");
	if (live_find(&k, roots[data[0] >> 1 & 3], &L) == 0) {
		if (L.nlayers < 1 || L.nlayers > LIVE_LAYERS_MAX)
			abort();
		for (int i = 0; i < L.nlayers; i++) {
			if (L.layer[i].off > size - 1 || L.layer[i].len > size - 1 - L.layer[i].off)
				abort();
			if (strnlen(L.layer[i].path, LIVE_PATH_MAX) == LIVE_PATH_MAX)
				abort();
		}
		check_params(L.params);
	}
	free(img);
	return 0;
}
