/* The image and the guest's disks (bootrun.h). */
#include "guest/bootrun.h"
#include "core/err.h"
#include "core/progress.h"
#include "core/sys.h"
#include "core/xio.h"
#include "image/cow.h"
#include "image/upper.h"
#include "remote/http.h"
#include "remote/remote.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

/* A COW file made by umlk before 0.2 sits over a cloop extracted into the
 * cache (~/.cache/umlk/HEX32.img), which boot no longer makes. */
static int old_cache_image(const char *path)
{
	const char *base = strrchr(path, '/');
	size_t n = base ? strlen(base + 1) : 0;

	if (!base || n != 36 || strcmp(base + 33, ".img") || base - path < 5 ||
	    strncmp(base - 5, "/umlk", 5))
		return 0;
	for (size_t i = 1; i <= 32; i++)
		if (!strchr("0123456789abcdef", base[i]))
			return 0;
	return 1;
}

/* Refuse a --cow FILE that cannot be used, before anything starts: one of
 * another image, one made over an old extraction, a damaged one.  The
 * checks of size and time are bsrc_cow's. */
static void xcheck_cow(const char *path, const struct image *im, const char *image)
{
	struct ksrc s;
	struct cow c;

	if (access(path, F_OK) < 0)
		return;
	xsrc_open(&s, path);
	if (cow_open(&c, &s) < 0)
		xdie("%s", k_errmsg());
	if (strcmp(c.backing, im->path) && old_cache_image(c.backing))
		xdie("%s was made by an earlier umlk over a copy extracted into its cache (%s), which"
		     " umlk no longer uses; carry its changes over: 'umlk cow-merge --export %s"
		     " changes.diff', then 'umlk cow-merge --apply changes.diff %s NEW.cow', and boot"
		     " with --cow NEW.cow", path, c.backing, path, image);
	if (strcmp(c.backing, im->path))
		xdie("%s: this COW file belongs to another image (%s), not %s", path, c.backing, image);
	cow_close(&c);
	ksrc_close(&s);
}

void ximage_open(const struct boot_opts *o, struct image *im, int prefetch, struct bsrc **remote_out)
{
	uint64_t cache = o->cache_bytes ? o->cache_bytes : BSRC_CLOOP_CACHE_DEFAULT;

	*remote_out = NULL;
	if (!url_is_http(o->image)) {
		if (o->nmirrors || o->index_url || o->insecure)
			xdie("--mirror, --index and --insecure are for an http:// image, and %s is a file", o->image);
		if (image_open_traced(im, o->image, o->root, cache, o->trace_chunk) < 0)
			xdie("%s", k_errmsg());
		return;
	}
	struct bsrc *remote;
	struct remote_opts ro = {
		.url = o->image, .nmirrors = o->nmirrors, .index_url = o->index_url, .insecure = o->insecure,
		.cache_max = o->cache_max, .timeout_s = o->timeout_s, .verbose = o->verbose,
	};
	for (int i = 0; i < o->nmirrors; i++)
		ro.mirrors[i] = o->mirrors[i];
	remote = remote_open(&ro);
	if (!remote)
		xdie("%s", k_errmsg());
	if (prefetch)
		remote_prefetch_profile(remote);
	if (image_open_src(im, remote, remote_identity(remote), 0, o->root, cache) < 0)
		xdie("%s", k_errmsg());
	*remote_out = remote;
}

/* The guest's writable disk: the image beneath a COW layer kept in --cow
 * FILE, or in an unnamed temporary file that vanishes with us. */
struct bsrc *xopen_disk(const struct boot_opts *o, struct image *im, struct hold_policy *hold)
{
	struct bsrc *cow;
	char dir[PATH_MAX - 64] = ".";
	if (!image_writable(im))
		return im->disk;                /* read-only: an overlay in the guest, see xopen_upper */
	if (o->cow) {
		struct upper_hdr uh;
		if (upper_read(-1, o->cow, &uh) > 0)
			xdie("--cow %s: the upper layer of an overlay (made for %s), not a COW file of blocks,"
			     " which the writable %s root of %s needs; give a new name to make one", o->cow,
			     uh.image_path, im->fstype, o->image);
		xcheck_cow(o->cow, im, o->image);
		cow = bsrc_cow(o->cow, -1, im->disk, im->path, im->mtime, 1);
	} else {
		xboot_run_dir(dir, sizeof(dir));
		int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
		if (fd < 0) {
			/* No O_TMPFILE there: a random name, unlinked at once. */
			char path[PATH_MAX], r[17];
			snprintf(path, sizeof(path), "%s/cow-%s", dir, k_random_hex(r, 16));
			fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
			if (fd >= 0)
				unlink(path);
		}
		if (fd < 0)
			xdie("%s: cannot make a temporary COW file:", dir);
		cow = bsrc_cow(NULL, fd, im->disk, im->path, im->mtime, 1);
	}
	if (!cow)
		xdie("%s", k_errmsg());
	return bsrc_hold(cow, o->cow ? o->cow : dir, hold);
}

/* The upper layer for a root the guest cannot write in place: with
 * --cow FILE, FILE (made if missing, checked against the image if not);
 * else NULL, and the guest's changes stay in memory. */
struct bsrc *xopen_upper(const struct boot_opts *o, const struct image *im, struct hold_policy *hold)
{
	if (!o->cow || image_writable(im))
		return NULL;
	struct upper_hdr h;
	int fd = open(o->cow, O_RDWR | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT) {
		memset(&h, 0, sizeof(h));
		h.image_size = im->file_size;
		h.image_mtime = im->mtime;
		if (strlen(im->path) >= sizeof(h.image_path))
			xdie("--cow %s: the image's path is longer than %zu bytes", o->cow, sizeof(h.image_path) - 1);
		memcpy(h.image_path, im->path, strlen(im->path) + 1);
		uint64_t size = o->cow_size ? o->cow_size : 4ULL << 30;
		if (upper_create(o->cow, &h, size) < 0)
			xdie("--cow %s: %s", o->cow, k_errmsg());
		if (!k_quiet) {
			char sz[32];
			fprintf(stderr, "umlk boot: %s keeps the changes to %s's %s root: an upper layer"
				" (ext4, %s, sparse)\n", o->cow, o->image, im->nlayers > 1 ? "stacked" : im->fstype,
				k_human(size, sz, sizeof(sz)));
		}
		fd = open(o->cow, O_RDWR | O_CLOEXEC);
	}
	if (fd < 0)
		xdie("--cow %s:", o->cow);
	int r = upper_read(fd, o->cow, &h);
	if (r < 0)
		xdie("--cow %s", k_errmsg());
	if (r == 0)
		xdie("--cow %s: not an upper layer, which the %s root of %s needs (a COW file for a"
		     " writable root, or another file?); give a new name to make one", o->cow,
		     im->nlayers > 1 ? "stacked" : im->fstype, o->image);
	if (h.image_size != im->file_size || h.image_mtime != im->mtime)
		xdie("--cow %s: made for %s (%" PRIu64 " bytes, modified %" PRIu64 "), and %s is not that"
		     " image (%" PRIu64 " bytes, modified %" PRIu64 ")", o->cow, h.image_path, h.image_size,
		     h.image_mtime, o->image, im->file_size, im->mtime);
	struct stat st;
	if (fstat(fd, &st) < 0 || (uint64_t)st.st_size < UPPER_HDR + h.fs_size)
		xdie("--cow %s: shorter than its filesystem (%" PRIu64 " bytes): cut short?", o->cow,
		     h.fs_size);
	if (flock(fd, LOCK_EX | LOCK_NB) < 0)
		xdie("--cow %s: in use by another guest", o->cow);
	return bsrc_hold(bsrc_file(fd, o->cow, UPPER_HDR, h.fs_size, 1, NULL), o->cow, hold);
}
