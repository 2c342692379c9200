/* /home: a shared directory, or a home image (bootrun.h). */
#include "guest/bootrun.h"
#include "core/err.h"
#include "core/progress.h"
#include "core/xio.h"
#include "image/mkext4.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

static int ends_with(const char *s, const char *tail)
{
	size_t n = strlen(s), m = strlen(tail);
	return n >= m && !strcmp(s + n - m, tail);
}

/* A new ext4 image at PATH of SIZE bytes (sparse), made whole or not at
 * all: umlk's own ext4 (k_mkext4) in a temporary file beside it, then a rename. */
static void xmake_home_image(const char *path, uint64_t size)
{
	struct kout out;
	char sz[32];

	xout_open(&out, path);
	if (!out.regular || ftruncate(out.fd, (off_t)size) < 0)
		xdie("--home %s: cannot make an image file there:", path);
	if (k_mkext4(out.fd, 0, size, "home") < 0) {
		kout_abort(&out);
		xdie("--home %s: %s", path, k_errmsg());
	}
	xout_commit(&out);
	if (!k_quiet)
		fprintf(stderr, "umlk boot: made the home image %s (ext4, %s, sparse)\n", path,
			k_human(size, sz, sizeof(sz)));
}

void xopen_home(const struct boot_opts *o, struct home *h, struct hold_policy *hold)
{
	struct stat st;

	memset(h, 0, sizeof(*h));
	if (!o->home && o->home_cache_set)
		xdie("--home-cache: only for --home DIR or ssh://");
	if ((o->ssh_command || o->ssh_timeout) && (!o->home || strncmp(o->home, "ssh://", 6)))
		xdie("--ssh-command and --ssh-timeout: only for --home ssh://");
	if (!o->home)
		return;
	if (!strncmp(o->home, "ssh://", 6)) {
		/* ssh may ask on the terminal now, before the guest has it. */
		struct sftp_target t;
		if (sftp_parse_url(o->home, &t) < 0)
			xdie("--home %s", k_errmsg());
		struct sftp *c = sftp_connect(&t, o->ssh_command, o->ssh_timeout, isatty(0) && isatty(2));
		if (!c)
			xdie("--home %s", k_errmsg());
		h->remote = sftpfs_open(c, (enum fshare_cache)o->home_cache);
		h->kind = HOME_SSH;
		return;
	}
	if (stat(o->home, &st) == 0 && S_ISDIR(st.st_mode)) {
		h->kind = HOME_SHARED;
		/* One descriptor per file the guest holds: as many as we may. */
		struct rlimit rl;
		if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
			rl.rlim_cur = rl.rlim_max;
			setrlimit(RLIMIT_NOFILE, &rl);
		}
		if (!(h->share = fshare_open(o->home, (enum fshare_cache)o->home_cache)))
			xdie("--home %s", k_errmsg());
		return;
	}
	if (stat(o->home, &st) < 0) {
		if (errno != ENOENT || !ends_with(o->home, ".img"))
			xdie("--home %s: no such directory or image (a new home image is made when the name"
			     " ends in .img)", o->home);
		xmake_home_image(o->home, o->home_size ? o->home_size : 1ULL << 30);
		if (stat(o->home, &st) < 0)
			xdie("--home %s:", o->home);
	}
	if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))
		xdie("--home %s: neither a directory nor an image file", o->home);
	if (o->home_cache_set)
		xdie("--home-cache: only for --home DIR or ssh:// (%s is an image: the guest's kernel caches it as any disk)",
		     o->home);
	int fd = open(o->home, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		xdie("--home %s:", o->home);
	if (flock(fd, LOCK_EX | LOCK_NB) < 0)
		xdie("--home %s: in use by another guest", o->home);
	off_t size = lseek(fd, 0, SEEK_END);
	if (size < 0)
		xdie("--home %s:", o->home);
	h->disk = bsrc_hold(bsrc_file(fd, o->home, 0, (uint64_t)size, 1, NULL), o->home, hold);
	const char *t = image_fstype(h->disk);
	if (!t || strncmp(t, "ext", 3))
		xdie("--home %s: not an ext2/3/4 filesystem image", o->home);
	h->kind = HOME_DISK;
}

void xhome_start(struct home *h, const char *sock, struct pool *pool, char *arg, size_t cap)
{
	snprintf(h->sock, sizeof(h->sock), "%s", sock);
	if (h->kind == HOME_DISK) {
		if (vblk_start(&h->blk, sock, "home", h->disk, pool) < 0)
			xdie("%s", k_errmsg());
		snprintf(arg, cap, "virtio_uml.device=%s:%d", sock, VIRTIO_ID_BLOCK);
		return;
	}
	snprintf(arg, cap, "virtio_uml.device=%s:%d", sock, VIRTIO_ID_FS);
	fuse_serve_fn *serve = h->kind == HOME_SSH ? sftpfs_serve : fshare_serve;
	void *fs = h->kind == HOME_SSH ? (void *)h->remote : (void *)h->share;
	if (vfs_start(&h->fs, sock, GUEST_HOME_TAG, serve, fs, pool) < 0)
		xdie("%s", k_errmsg());
}

int home_keep_on_cpu(struct home *h, int cpu)
{
	if (h->kind == HOME_DISK)
		return vu_keep_on_cpu(&h->blk.srv, cpu);
	return h->kind ? vu_keep_on_cpu(&h->fs.srv, cpu) : 0;
}

void home_stop(struct home *h)
{
	if (h->kind == HOME_DISK) {
		vblk_stop(&h->blk);
		bsrc_close(h->disk);
	} else if (h->kind == HOME_SHARED) {
		vfs_stop(&h->fs);
		fshare_close(h->share);
	} else if (h->kind == HOME_SSH) {
		vfs_stop(&h->fs);
		sftpfs_close(h->remote);
	}
	if (h->kind)
		unlink(h->sock);
}
