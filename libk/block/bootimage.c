#include "block/bootimage.h"
#include "core/bytes.h"
#include "core/err.h"
#include "core/sys.h"
#include "core/xio.h"
#include "image/cloop.h"
#include "image/iso9660.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

const char *image_fstype(struct bsrc *d)
{
	uint8_t b[8];

	if (d->size >= 2048 && bsrc_read(d, b, 2, 1024 + 56) == 0 && b[0] == 0x53 && b[1] == 0xef) {
		uint8_t f[12];
		if (bsrc_read(d, f, 12, 1024 + 92) < 0)
			return NULL;
		uint32_t compat = k_le32(f), incompat = k_le32(f + 4);
		if (incompat & ~0x3u)           /* beyond compression and filetype */
			return "ext4";
		return compat & 0x4 ? "ext3" : "ext2";  /* has_journal */
	}
	if (d->size >= 4 && bsrc_read(d, b, 4, 0) == 0 && !memcmp(b, "hsqs", 4))
		return "squashfs";
	if (d->size >= 32774 && bsrc_read(d, b, 5, 32769) == 0 && !memcmp(b, "CD001", 5))
		return "iso9660";
	return NULL;
}

/* One layer: the byte range L of the ISO, inflated if a cloop. */
static struct bsrc *open_layer(struct image *im, struct bsrc *iso, const char *path, const struct live_layer *l,
			       uint64_t cache_bytes)
{
	char name[PATH_MAX + LIVE_PATH_MAX + 2];
	snprintf(name, sizeof(name), "%s:%s", path, l->path);
	struct bsrc *range = bsrc_range(iso, name, l->off, l->len);
	if (!range)
		return NULL;
	if (image_fstype(range))
		return range;                   /* a filesystem: squashfs, most often */
	/* Else a cloop (KNOPPIX's). */
	struct bsrc *c = bsrc_cloop(range, cache_bytes, k_ncpus());
	if (!c) {
		bsrc_close(range);
		return NULL;                    /* its message names the file */
	}
	im->has_cloop = 1;
	return c;
}

int image_writable(const struct image *im)
{
	return im->nlayers == 1 && im->fstype && !strncmp(im->fstype, "ext", 3);
}

/* What FILE (taken over) holds, named PATH in messages. */
static int open_from(struct image *im, struct bsrc *file, const char *path, const char *root, uint64_t cache_bytes)
{
	struct ksrc k;
	struct bsrc *disk = file;

	bsrc_ksrc(&k, file);
	int iso = iso_detect(&k);
	if (root && !iso) {
		k_seterr("%s: --root names a file inside an ISO image, and this is none", path);
		goto fail;
	}
	if (iso) {
		im->is_iso = 1;
		if (live_find(&k, root, &im->live) < 0)
			goto fail;
		for (int i = 0; i < im->live.nlayers; i++) {
			struct bsrc *b = open_layer(im, file, path, &im->live.layer[i], cache_bytes);
			if (!b)
				goto fail_layers;
			im->layer[im->nlayers++] = b;
			im->layer_fstype[i] = image_fstype(b);
			if (!im->layer_fstype[i]) {
				k_seterr("%s: %s holds no filesystem umlk knows (ext2/3/4, squashfs, iso9660)", path,
					 im->live.layer[i].path);
				goto fail_layers;
			}
		}
		im->base = file;                /* the layers are ranges of it */
		disk = im->layer[0];
		snprintf(im->kind, sizeof(im->kind), "ISO image, %s: %s%s", im->live.kind,
			 im->live.layer[0].path, im->nlayers > 1 ? " and more layers" : "");
	} else if (image_fstype(file)) {
		snprintf(im->kind, sizeof(im->kind), "filesystem image");
	} else {
		struct bsrc *c = bsrc_cloop(file, cache_bytes, k_ncpus());
		if (!c) {
			if (strstr(k_errmsg(), "not a cloop image"))
				k_seterr("%s: unknown format: not an ISO image, a cloop file, or an ext2/ext4,"
					 " squashfs or iso9660 filesystem", path);
			goto fail;
		}
		disk = c;
		im->has_cloop = 1;
		snprintf(im->kind, sizeof(im->kind), "cloop image");
	}
	im->fstype = image_fstype(disk);
	if (!im->fstype) {
		k_seterr("%s: the root holds no filesystem umlk knows (ext2/3/4, squashfs, iso9660)", path);
		image_close(im);
		if (!im->is_iso)
			bsrc_close(disk);
		return -1;
	}
	if (!im->nlayers) {
		im->nlayers = 1;
		im->layer[0] = disk;
		im->layer_fstype[0] = im->fstype;
	}
	im->disk = disk;
	return 0;
fail_layers:
	for (int i = 0; i < im->nlayers; i++)
		bsrc_close(im->layer[i]);
	im->nlayers = 0;
	im->base = NULL;
fail:
	bsrc_close(file);
	return -1;
}

int image_open_src(struct image *im, struct bsrc *file, const char *identity, uint64_t mtime, const char *root,
		   uint64_t cache_bytes)
{
	memset(im, 0, sizeof(*im));
	if (strlen(identity) >= sizeof(im->path)) {
		bsrc_close(file);
		return k_seterr("%.64s...: a name longer than %zu bytes", identity, sizeof(im->path) - 1);
	}
	snprintf(im->path, sizeof(im->path), "%s", identity);
	im->mtime = mtime;
	im->file_size = file->size;
	return open_from(im, file, file->name, root, cache_bytes);
}

int image_open_traced(struct image *im, const char *path, const char *root, uint64_t cache_bytes,
		      uint32_t trace_chunk)
{
	struct stat st;

	memset(im, 0, sizeof(*im));
	if (!realpath(path, im->path))
		return k_seterr("%s:", path);
	int fd = open(im->path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		k_seterr("%s:", path);
		if (fd >= 0)
			close(fd);
		return -1;
	}
	if (S_ISDIR(st.st_mode)) {
		close(fd);
		return k_seterr("%s: is a directory", path);
	}
	im->mtime = (uint64_t)st.st_mtime;
	im->file_size = (uint64_t)st.st_size;
	if (S_ISBLK(st.st_mode)) {
		off_t end = lseek(fd, 0, SEEK_END);
		if (end < 0) {
			close(fd);
			return k_seterr("%s: cannot find its size:", path);
		}
		im->file_size = (uint64_t)end;
	} else if (!S_ISREG(st.st_mode)) {
		close(fd);
		return k_seterr("%s: not a regular file or block device", path);
	}
	struct bsrc *file = bsrc_file(fd, path, 0, im->file_size, 0, &im->bytes_read);
	if (trace_chunk)
		im->trace = file = bsrc_trace(file, trace_chunk);
	if (open_from(im, file, path, root, cache_bytes) < 0)
		return -1;
	/* Whole compressed blocks are read, and read ahead by the cloop source
	 * itself: the host's read-ahead would only add bytes. */
	if (im->has_cloop)
		posix_fadvise(fd, 0, 0, POSIX_FADV_RANDOM);
	return 0;
}

int image_open(struct image *im, const char *path, const char *root, uint64_t cache_bytes)
{
	return image_open_traced(im, path, root, cache_bytes, 0);
}

void image_close(struct image *im)
{
	for (int i = 0; i < im->nlayers; i++)
		bsrc_close(im->layer[i]);
	im->nlayers = 0;
	im->disk = NULL;
	bsrc_close(im->base);           /* after the layers, which read it */
	im->base = NULL;
}
