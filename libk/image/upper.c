#include "image/upper.h"
#include "image/mkext4.h"
#include "core/bytes.h"
#include "core/err.h"
#include "core/xio.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int upper_parse(const uint8_t *b, size_t n, struct upper_hdr *h)
{
	if (n < UPPER_HDR || memcmp(b, UPPER_MAGIC, 8))
		return 0;
	if (k_le32(b + 8) != UPPER_HDR)
		return k_seterr("an upper layer's header of %u bytes (this umlk knows %d)", k_le32(b + 8),
				UPPER_HDR);
	if (k_le32(b + 12))
		return k_seterr("an upper layer with flags 0x%x this umlk does not know", k_le32(b + 12));
	h->fs_size = k_le64(b + 16);
	h->image_size = k_le64(b + 24);
	h->image_mtime = k_le64(b + 32);
	if (h->fs_size < (1 << 20) || h->fs_size > (1ULL << 50))
		return k_seterr("an upper layer whose filesystem is %" PRIu64 " bytes", h->fs_size);
	const uint8_t *p = b + 64;
	if (!memchr(p, 0, UPPER_PATH_MAX))
		return k_seterr("an upper layer whose image path is not terminated");
	memcpy(h->image_path, p, UPPER_PATH_MAX);
	return 1;
}

int upper_read(int fd, const char *path, struct upper_hdr *h)
{
	uint8_t b[UPPER_HDR];
	int own = fd < 0;

	if (own && (fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return 0;
	ssize_t n = full_pread(fd, b, sizeof(b), 0);
	if (own)
		close(fd);
	if (n < 0)
		return own ? 0 : k_seterr("%s: cannot read it:", path);
	int r = upper_parse(b, (size_t)n, h);
	if (r < 0) {
		char why[300];
		snprintf(why, sizeof(why), "%s", k_errmsg());
		return k_seterr("%s: %s", path, why);
	}
	return r;
}

void upper_format(const struct upper_hdr *h, uint8_t b[UPPER_HDR])
{
	memset(b, 0, UPPER_HDR);
	memcpy(b, UPPER_MAGIC, 8);
	k_put_le32(b + 8, UPPER_HDR);
	k_put_le64(b + 16, h->fs_size);
	k_put_le64(b + 24, h->image_size);
	k_put_le64(b + 32, h->image_mtime);
	snprintf((char *)b + 64, UPPER_PATH_MAX, "%s", h->image_path);
}

int upper_create_open(struct kout *out, const char *file, struct upper_hdr *h, uint64_t fs_size)
{
	uint8_t b[UPPER_HDR];

	if (kout_open(out, file) < 0)
		return -1;
	h->fs_size = fs_size;
	upper_format(h, b);
	if (!out->regular || !out->tmp || ftruncate(out->fd, (off_t)(UPPER_HDR + fs_size)) < 0) {
		kout_abort(out);
		return k_seterr("%s: cannot make a file there:", file);
	}
	if (k_mkext4(out->fd, UPPER_HDR, fs_size, "umlk-upper") < 0 ||
	    (pwrite(out->fd, b, UPPER_HDR, 0) != UPPER_HDR && k_seterr("%s: writing its header:", file))) {
		char why[300];
		snprintf(why, sizeof(why), "%s", k_errmsg());
		kout_abort(out);
		return k_seterr("%s: %s", file, why);
	}
	return 0;
}

int upper_create(const char *file, struct upper_hdr *h, uint64_t fs_size)
{
	struct kout out;

	if (upper_create_open(&out, file, h, fs_size) < 0)
		return -1;
	return kout_commit(&out, 1);
}
