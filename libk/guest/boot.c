#include "guest/boot.h"
#include "block/image.h"
#include "core/pool.h"
#include "share/fuse.h"
#include "vhost/vblk.h"
#include "vhost/vfs.h"
#include "core/err.h"
#include "core/progress.h"
#include "core/sha256.h"
#include "core/sys.h"
#include "core/xio.h"
#include "guest/guest.h"
#include "guest/mconsole.h"
#include "guest/payload.h"
#include "image/cloop.h"
#include "image/cow.h"
#include "image/iso9660.h"
#include "image/mkext4.h"
#include "image/upper.h"
#include "net/net.h"
#include "net/netif.h"
#include "net/switchproto.h"
#include "remote/http.h"
#include "remote/remote.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <poll.h>
#include <pthread.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

/* ---- the guest's disk */

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

static struct bsrc *remote;     /* the image's web server, if it has one */

/* The image: a file, or an http:// URL (fetched as read, verified; the
 * boot profile fetched first when PREFETCH). */
static void ximage_open(const struct boot_opts *o, struct image *im, int prefetch)
{
	uint64_t cache = o->cache_bytes ? o->cache_bytes : BSRC_CLOOP_CACHE_DEFAULT;

	if (!url_is_http(o->image)) {
		if (o->nmirrors || o->index_url || o->insecure)
			xdie("--mirror, --index and --insecure are for an http:// image, and %s is a file", o->image);
		if (image_open_traced(im, o->image, o->root, cache, o->trace_chunk) < 0)
			xdie("%s", k_errmsg());
		return;
	}
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
}

/* The guest's writable disk: the image beneath a COW layer kept in --cow
 * FILE, or in an unnamed temporary file that vanishes with us. */
static struct bsrc *xopen_disk(const struct boot_opts *o, struct image *im)
{
	ximage_open(o, im, 1);
	struct bsrc *cow;
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
		char dir[PATH_MAX - 64];
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
	return cow;
}

/* The upper layer for a root the guest cannot write in place: with
 * --cow FILE, FILE (made if missing, checked against the image if not);
 * else NULL, and the guest's changes stay in memory. */
static struct bsrc *xopen_upper(const struct boot_opts *o, const struct image *im)
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
	struct bsrc *u = bsrc_file(fd, o->cow, UPPER_HDR, h.fs_size, 1, NULL);
	if (!u)
		xdie("%s", k_errmsg());
	return u;
}

/* ---- /home: a shared directory, or a home image */

struct home {
	int kind;                       /* 0: none; else GUEST_HOME_SHARED or _DISK */
	struct fshare *share;
	struct bsrc *disk;
};

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

static void xopen_home(const struct boot_opts *o, struct home *h)
{
	struct stat st;

	memset(h, 0, sizeof(*h));
	if (!o->home)
		return;
	if (stat(o->home, &st) == 0 && S_ISDIR(st.st_mode)) {
		h->kind = 1;
		/* One descriptor per file the guest holds: as many as we may. */
		struct rlimit rl;
		if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
			rl.rlim_cur = rl.rlim_max;
			setrlimit(RLIMIT_NOFILE, &rl);
		}
		if (!(h->share = fshare_open(o->home)))
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
	int fd = open(o->home, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		xdie("--home %s:", o->home);
	if (flock(fd, LOCK_EX | LOCK_NB) < 0)
		xdie("--home %s: in use by another guest", o->home);
	off_t size = lseek(fd, 0, SEEK_END);
	if (size < 0)
		xdie("--home %s:", o->home);
	h->disk = bsrc_file(fd, o->home, 0, (uint64_t)size, 1, NULL);
	const char *t = image_fstype(h->disk);
	if (!t || strncmp(t, "ext", 3))
		xdie("--home %s: not an ext2/3/4 filesystem image", o->home);
	h->kind = 2;
}

/* Serve the home on SOCK; the kernel argument for it goes in ARG. */
static void xhome_start(struct home *h, const char *sock, struct pool *pool,
			struct vblk *vb, struct vfs *vf, char *arg, size_t cap)
{
	if (h->kind == 2) {
		if (vblk_start(vb, sock, "home", h->disk, pool) < 0)
			xdie("%s", k_errmsg());
		snprintf(arg, cap, "virtio_uml.device=%s:%d", sock, VIRTIO_ID_BLOCK);
		return;
	}
	snprintf(arg, cap, "virtio_uml.device=%s:%d", sock, VIRTIO_ID_FS);
	if (vfs_start(vf, sock, GUEST_HOME_TAG, h->share, pool) < 0)
		xdie("%s", k_errmsg());
}

static void home_stop(struct home *h, struct vblk *vb, struct vfs *vf, const char *sock)
{
	if (h->kind == 2) {
		vblk_stop(vb);
		bsrc_close(h->disk);
	} else if (h->kind == 1) {
		vfs_stop(vf);
		fshare_close(h->share);
	}
	unlink(sock);
}

/* ---- test only: the disk served by qemu-storage-daemon instead

   With UMLK_TEST_DISK_SERVER=qemu-storage-daemon the same guest boots
   from QEMU's reference vhost-user-blk server: the image's disk as a raw
   file (the image itself, or its cloop inflated into the run directory),
   under a qcow2 overlay that takes the writes.  The tests use it to show
   the kernel side works whatever serves it. */

struct disk_server {
	pid_t pid;
	char dir[PATH_MAX - 64];
};

/* In a child about to exec: signals as a new program expects them. */
static void exec_signals(void)
{
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
}

static void xrun(char *const argv[], const char *log)
{
	pid_t pid = k_fork();
	if (pid < 0)
		xdie("fork:");
	if (pid == 0) {
		exec_signals();
		int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execvp(argv[0], argv);
		_exit(127);
	}
	int st;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	if (!WIFEXITED(st) || WEXITSTATUS(st))
		xdie("%s failed (see %s)", argv[0], log);
}

static int xdisk_server_start(struct disk_server *q, const struct boot_opts *o, struct image *im,
			      const char *sock)
{
	const char *peer = getenv("UMLK_TEST_DISK_SERVER");
	char raw[PATH_MAX], ovl[PATH_MAX], log[PATH_MAX];

	if (!peer || !*peer)
		return 0;
	if (strcmp(peer, "qemu-storage-daemon"))
		xdie("UMLK_TEST_DISK_SERVER=%s: the one peer is qemu-storage-daemon", peer);
	if (o->cow)
		xdie("--cow: not with UMLK_TEST_DISK_SERVER (qemu's overlay takes the writes there)");
	if (strlen(sock) + 5 > sizeof(q->dir))
		xdie("%s: path too long", sock);
	memcpy(q->dir, sock, strlen(sock));
	memcpy(q->dir + strlen(sock), ".qsd", 5);
	if (mkdir(q->dir, 0700) < 0)
		xdie("%s:", q->dir);
	snprintf(log, sizeof(log), "%s/log", q->dir);
	snprintf(ovl, sizeof(ovl), "%s/overlay.qcow2", q->dir);
	if (!strcmp(im->kind, "filesystem image") && url_is_http(im->path)) {
		/* From the web server, through QEMU's curl driver (Debian's
		 * qemu-block-extra): the peer of umlk's own fetching. */
		struct url u;
		char plain[HTTP_URL_MAX];
		if (url_parse(&u, im->path) < 0)
			xdie("%s", k_errmsg());
		url_format(&u, plain, sizeof(plain));
		snprintf(raw, sizeof(raw), "json:{\"file\":{\"driver\":\"http\",\"url\":\"%s\"}}", plain);
	} else if (!strcmp(im->kind, "filesystem image")) {
		snprintf(raw, sizeof(raw), "%s", im->path);
	} else {
		snprintf(raw, sizeof(raw), "%s/raw.img", q->dir);
		int fd = open(raw, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		uint8_t *buf = xmalloc(1 << 20);
		if (fd < 0 || ftruncate(fd, (off_t)im->disk->size) < 0)
			xdie("%s:", raw);
		for (uint64_t off = 0; off < im->disk->size; off += 1 << 20) {
			size_t n = im->disk->size - off < (1 << 20) ? (size_t)(im->disk->size - off) : 1 << 20;
			if (bsrc_read(im->disk, buf, n, off) < 0)
				xdie("%s", k_errmsg());
			if (!k_iszero(buf, n) && full_pwrite(fd, buf, n, off) < 0)
				xdie("%s:", raw);
		}
		free(buf);
		close(fd);
	}
	char *img[] = { "qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", raw, ovl, NULL };
	xrun(img, log);
	char file[PATH_MAX + 64], exp[PATH_MAX + 128];
	snprintf(file, sizeof(file), "driver=file,node-name=f0,filename=%s", ovl);
	snprintf(exp, sizeof(exp), "type=vhost-user-blk,id=e0,node-name=d0,writable=on,addr.type=unix,"
		 "addr.path=%s", sock);
	char *argv[] = { "qemu-storage-daemon", "--blockdev", file, "--blockdev",
			 "driver=qcow2,node-name=d0,file=f0", "--export", exp, NULL };
	q->pid = k_fork();
	if (q->pid < 0)
		xdie("fork:");
	if (q->pid == 0) {
		exec_signals();
		int fd = open(log, O_WRONLY | O_APPEND | O_CLOEXEC);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execvp(argv[0], argv);
		_exit(127);
	}
	for (int i = 0; i < 200 && access(sock, F_OK) < 0; i++) {
		if (waitpid(q->pid, NULL, WNOHANG) == q->pid)
			xdie("qemu-storage-daemon ended at once (see %s)", log);
		usleep(50000);
	}
	if (access(sock, F_OK) < 0)
		xdie("qemu-storage-daemon made no socket at %s (see %s)", sock, log);
	return 1;
}

static void disk_server_stop(struct disk_server *q)
{
	char f[PATH_MAX];
	static const char *const names[] = { "log", "overlay.qcow2", "raw.img" };

	kill(q->pid, SIGTERM);
	while (waitpid(q->pid, NULL, 0) < 0 && errno == EINTR)
		;
	for (size_t i = 0; i < 3; i++) {
		snprintf(f, sizeof(f), "%s/%s", q->dir, names[i]);
		unlink(f);
	}
	rmdir(q->dir);
	snprintf(f, sizeof(f), "%.*s", (int)(strlen(q->dir) - 4), q->dir);
	unlink(f);                      /* its socket */
}

/* eth0's MAC: --mac, else one derived from the COW file's path, so a guest
 * that keeps its COW file keeps its MAC (and its DHCP lease); with a
 * temporary COW file, a random one. */
static void guest_mac(const struct boot_opts *o, char out[18])
{
	uint8_t mac[6];

	if (o->mac) {
		if (net_parse_mac(o->mac, mac) < 0)
			xusage("--mac %s: not a MAC address (like 52:54:00:12:34:56)", o->mac);
		if (net_mac_is_group(mac))
			xusage("--mac %s: a multicast address cannot be a guest's", o->mac);
	} else if (o->cow) {
		char abs[PATH_MAX];
		if (!realpath(o->cow, abs))
			snprintf(abs, sizeof(abs), "%s", o->cow);
		netif_mac_from(abs, "umlk-mac", mac);
	} else {
		char r[33];
		netif_mac_from(k_random_hex(r, 32), "umlk-mac", mac);
	}
	net_fmt_mac(mac, out);
}

/* ---- --net auto: the user's private network */

void xboot_private_dir(char *dir, size_t cap)
{
	if (k_private_dir(dir, cap) < 0)
		xdie("%s", k_errmsg());
}

/* A directory of this run's own, made when the shared private one cannot
 * be had (someone else made it first): removed at exit. */
static char run_dir_own[PATH_MAX];

void xboot_run_dir(char *dir, size_t cap)
{
	if (run_dir_own[0]) {
		if (strlen(run_dir_own) >= cap)
			xdie("%s: path too long", run_dir_own);
		memcpy(dir, run_dir_own, strlen(run_dir_own) + 1);
		return;
	}
	if (k_private_dir(dir, cap) == 0)
		return;
	const char *tmp = getenv("TMPDIR");
	char msg[600];
	snprintf(msg, sizeof(msg), "%s", k_errmsg());
	snprintf(run_dir_own, sizeof(run_dir_own), "%s/umlk-%u-XXXXXX",
		 tmp && *tmp == '/' ? tmp : "/tmp", (unsigned)getuid());
	if (!mkdtemp(run_dir_own))
		xdie("%s; and no directory of its own either:", msg);
	if (!k_quiet)
		k_warn("%s; using %s for this run", msg, run_dir_own);
	xboot_run_dir(dir, cap);
}

void xboot_run_dir_done(void)
{
	if (run_dir_own[0] && rmdir(run_dir_own) < 0 && errno != ENOENT)
		k_warn("%s:", run_dir_own);
	run_dir_own[0] = 0;
}

static int pidfile_alive(const char *path, const char *applet)
{
	char buf[32], cmd[256];
	FILE *f = fopen(path, "re");
	int pid = 0;

	if (!f)
		return 0;
	if (fgets(buf, sizeof(buf), f))
		pid = atoi(buf);
	fclose(f);
	if (pid <= 1 || kill(pid, 0) < 0)
		return 0;
	/* The pid may have been reused: it must still be that applet. */
	snprintf(buf, sizeof(buf), "/proc/%d/cmdline", pid);
	f = fopen(buf, "re");
	if (!f)
		return 0;
	size_t n = fread(cmd, 1, sizeof(cmd) - 1, f);
	fclose(f);
	for (size_t i = 0; i < n; i++)
		if (!cmd[i])
			cmd[i] = ' ';
	cmd[n] = 0;
	return strstr(cmd, applet) != NULL;
}

/* Run this same binary with ARGV and wait: the daemons return once ready. */
static void run_self(char *const argv[], const char *log)
{
	fflush(NULL);
	pid_t pid = k_fork();
	if (pid < 0)
		xdie("fork:");
	if (pid == 0) {
		execv("/proc/self/exe", argv);
		_exit(127);
	}
	int st;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	if (!WIFEXITED(st) || WEXITSTATUS(st))
		xdie("--net auto: 'umlk %s' failed (see %s)", argv[1], log);
}

static char *auto_network(int quiet)
{
	char dir[PATH_MAX - 64], ctl[PATH_MAX], lock[PATH_MAX], spid[PATH_MAX], slog[PATH_MAX];
	char dpid[PATH_MAX], dlog[PATH_MAX], leases[PATH_MAX];
	int started = 0;

	xboot_private_dir(dir, sizeof(dir));
	snprintf(ctl, sizeof(ctl), "%s/switch.ctl", dir);
	snprintf(lock, sizeof(lock), "%s/net.lock", dir);
	snprintf(spid, sizeof(spid), "%s/switch.pid", dir);
	snprintf(slog, sizeof(slog), "%s/switch.log", dir);
	snprintf(dpid, sizeof(dpid), "%s/dhcpd.pid", dir);
	snprintf(dlog, sizeof(dlog), "%s/dhcpd.log", dir);
	snprintf(leases, sizeof(leases), "%s/leases", dir);
	/* One boot at a time decides what to start. */
	int lk = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (lk < 0 || flock(lk, LOCK_EX) < 0)
		xdie("%s:", lock);
	if (!sw_alive(ctl)) {
		char idle[16];
		snprintf(idle, sizeof(idle), "%d", NET_AUTO_IDLE_EXIT);
		char *a[] = { "umlk", "umlswitch", "-daemon", "-unix", ctl, "-pidfile", spid, "-log", slog,
			      "-idle-exit", idle, NULL };
		run_self(a, slog);
		started = 1;
	}
	if (!pidfile_alive(dpid, "dhcpd")) {
		char *a[] = { "umlk", "dhcpd", "--daemon", "--switch", ctl, "--lease-file", leases,
			      "--pidfile", dpid, "--log", dlog, NULL };
		run_self(a, dlog);
		started = 1;
	}
	close(lk);
	if (started && !quiet) {
		char server[16], first[16];
		fprintf(stderr, "umlk boot: private network on %s: DHCP from %s, guests get %s and up"
			" (it stops %d minutes after the last guest)\n", ctl,
			net_fmt_ip(NET_AUTO_SERVER, server), net_fmt_ip(NET_AUTO_SUBNET | NET_AUTO_POOL_HOST, first),
			NET_AUTO_IDLE_EXIT / 60);
	}
	return xstrdup(ctl);
}

char *xboot_switch(const char *net)
{
	char *path = xmalloc(2 * PATH_MAX);

	if (!strcmp(net, "auto")) {
		free(path);
		return auto_network(k_quiet);
	}
	if (net[0] == '/')
		snprintf(path, 2 * PATH_MAX, "%s", net);
	else {
		char cwd[PATH_MAX];
		if (!getcwd(cwd, sizeof(cwd)))
			xdie("getcwd:");
		snprintf(path, 2 * PATH_MAX, "%s/%s", cwd, net);
	}
	struct sockaddr_un a;
	if (k_unix_addr(&a, path) < 0)
		xdie("--net %s: %s", net, k_errmsg());
	if (!sw_alive(path))
		xdie("--net %s: no switch answers there (start one: umlk umlswitch -unix %s -daemon)",
		     net, net);
	/* The guest joins over virtio-net (vhost-user), which only umlk's
	 * switch serves; uml_switch speaks only the daemon protocol. */
	char *text = NULL;
	if (sw_status(path, &text) < 0 || strncmp(text, "umlk umlswitch", 14))
		xdie("--net %s: that switch speaks only the daemon protocol (uml_switch?); guests join"
		     " umlk umlswitch, over virtio-net", net);
	free(text);
	return path;
}

static pid_t child;
static int child_status;
static sigset_t run_mask;               /* the mask ppoll() waits with: SIGCHLD let in */
static void on_child(int sig) { (void)sig; }
static volatile sig_atomic_t stop_signal;

static void on_stop_signal(int sig)
{
	stop_signal = sig;
}

/* Told to stop: halt the guest cleanly, harder as time passes.
 *   step 1  command mode: Ctrl-Alt-Del, which the guest's init (umlk)
 *           turns into stopping the command, unmounting, powering off;
 *           a guest's own init: sync and remount read-only (sysrq s, u),
 *           then halt
 *   step 2  (10 s later) sync, remount read-only, halt
 *   step 3  (5 s later) SIGKILL to the kernel's whole process group */
static void halt_step(int step, int command, const char *mc)
{
	if (step == 1 && command) {
		if (mconsole_cmd(mc, "cad", NULL, 0, 2000) == 0)
			return;
		step = 2;
	}
	if (step == 1 || step == 2) {
		mconsole_cmd(mc, "sysrq s", NULL, 0, 2000);
		mconsole_cmd(mc, "sysrq u", NULL, 0, 2000);
		if (mconsole_cmd(mc, "halt", NULL, 0, 2000) == 0)
			return;
	}
	kill(-child, SIGKILL);
}

int boot_escape(struct boot_escape *e, const uint8_t *in, size_t n, uint8_t *out, size_t *outlen)
{
	size_t k = 0;
	int action = 0;

	for (size_t i = 0; i < n && !action; i++) {
		uint8_t c = in[i];
		if (e->tilde) {
			e->tilde = 0;
			if (c == '.') {
				action = BOOT_ESC_HALT;
				break;
			}
			if (c == '?') {
				action = BOOT_ESC_HELP;
				e->line_start = 1;
				continue;
			}
			if (c != '~')
				out[k++] = '~';         /* not ours: both bytes go on */
			out[k++] = c;
			e->line_start = c == '\r' || c == '\n';
			continue;
		}
		if (e->line_start && c == '~') {
			e->tilde = 1;           /* held until the next byte says what it is */
			continue;
		}
		out[k++] = c;
		/* The terminal's own answers (a cursor position report after
		 * the shell's prompt: ESC [ row ; col R) do not end a line
		 * start: they go on, and the state stays. */
		if (e->esc == 1)
			e->esc = c == '[' ? 2 : 0;
		else if (e->esc == 2)
			e->esc = c >= 0x40 && c <= 0x7e ? 0 : 2;
		else if (c == 0x1b)
			e->esc = 1;
		else
			e->line_start = c == '\r' || c == '\n';
	}
	*outlen = k;
	return action;
}

static const char escape_help[] =
	"\r\numlk: escapes, after Enter: ~. halt the guest and exit, ~~ a ~, ~? this help\r\n";

/* Wait for the kernel to finish, reading the command's status from the
 * guest ("umlk-status N" on console line 2) when there is one.  With
 * RELAY_FD, the terminal's input (TTY_FD) goes to the guest through it,
 * watched for the escapes (see boot_escape). */
static int escaped;

static int supervise(int status_fd, int tty_fd, int relay_fd, int command, const char *mc)
{
	char text[256];
	size_t used = 0;
	int reported = -1, step = 0;
	long long next = 0;
	struct boot_escape esc = { .line_start = 1 };
	uint8_t pend[512];
	size_t npend = 0;

	for (;;) {
		if (escaped && !stop_signal) {
			stop_signal = -1;       /* halted as for a signal; umlk exits 0 */
			next = 0;
		}
		if (stop_signal && k_now_ms() >= next && step < 3) {
			halt_step(++step, command, mc);
			next = k_now_ms() + (step == 1 ? 10000 : 5000);
		}
		int st;
		pid_t w = waitpid(child, &st, WNOHANG);
		if (w == child) {
			child_status = st;
			break;
		}
		/* The terminal is watched for hangup only (events 0): its input is
		 * the guest's.  The kernel's process group has the terminal, so
		 * the kernel, not we, gets the SIGHUP, and UML ignores it. */
		int relaying = relay_fd >= 0 && tty_fd >= 0 && !stop_signal;
		struct pollfd p[3] = { { .fd = status_fd, .events = POLLIN },
				       { .fd = tty_fd, .events = relaying && !npend ? POLLIN : 0 },
				       { .fd = relaying && npend ? relay_fd : -1, .events = POLLOUT } };
		/* SIGCHLD is blocked except inside ppoll(), which it interrupts:
		 * the kernel's exit is seen at once, and cannot slip in between
		 * the waitpid() above and the wait here. */
		struct timespec tick = { 0, 200 * 1000000L };
		int r = ppoll(p, 3, &tick, &run_mask);
		if (r > 0 && (p[1].revents & (POLLHUP | POLLERR | POLLNVAL))) {
			if (!stop_signal)
				stop_signal = SIGHUP;
			tty_fd = -1;
		}
		if (r > 0 && relaying && (p[1].revents & POLLIN)) {
			uint8_t in[256];
			ssize_t m = read(tty_fd, in, sizeof(in));
			if (m > 0) {
				int a = boot_escape(&esc, in, (size_t)m, pend, &npend);
				if (a == BOOT_ESC_HELP && write(STDOUT_FILENO, escape_help, sizeof(escape_help) - 1) < 0)
					npend = 0;
				if (a == BOOT_ESC_HALT) {
					static const char msg[] = "\r\numlk: ~. halting the guest\r\n";
					if (write(STDERR_FILENO, msg, sizeof(msg) - 1) < 0)
						npend = 0;
					escaped = 1;
				}
			}
		}
		if (relaying && npend) {
			/* The guest reads when it can; the terminal waits meanwhile. */
			ssize_t w = write(relay_fd, pend, npend);
			if (w > 0) {
				memmove(pend, pend + w, npend - (size_t)w);
				npend -= (size_t)w;
			}
		}
		if (r <= 0 || !(p[0].revents & (POLLIN | POLLHUP)))
			continue;
		ssize_t n = read(status_fd, text + used, sizeof(text) - 1 - used);
		if (n <= 0) {
			close(status_fd);       /* the kernel is going: wait for it */
			status_fd = -1;
			continue;
		}
		used += (size_t)n;
		text[used] = 0;
		char *s2 = strstr(text, "umlk-status ");
		if (s2 && strchr(s2, '\n'))
			reported = atoi(s2 + 12);
		if (used == sizeof(text) - 1)
			used = 0;
	}
	if (status_fd >= 0)
		close(status_fd);
	return reported;
}

/* UML leaves UML_DIR/UMID behind when it does not exit cleanly. */
static void remove_umid_dir(const char *mc)
{
	char dir[PATH_MAX], f[PATH_MAX + 16];
	snprintf(dir, sizeof(dir), "%s", mc);
	char *slash = strrchr(dir, '/');
	if (!slash)
		return;
	*slash = 0;
	static const char *const names[] = { "mconsole", "pid" };
	for (size_t i = 0; i < 2; i++) {
		snprintf(f, sizeof(f), "%s/%s", dir, names[i]);
		unlink(f);
	}
	rmdir(dir);
}

int xboot_cpus(int cpus, int trusted)
{
	if (cpus > 1 && !trusted)
		xusage("--cpus %d: more than one CPU needs --trusted (seccomp mode; see --help: the"
		       " guest is then not isolated from your files)", cpus);
	if (cpus)
		return cpus;
	if (!trusted)
		return 1;
	int n = k_ncpus();
	return n < 1 ? 1 : n > 4 ? 4 : n;
}

/* --info: what the image holds and what a boot would pass. */
static int xboot_info(const struct boot_opts *o)
{
	struct image im;
	char sz[32];

	ximage_open(o, &im, 0);
	printf("image: %s\n", im.path);
	printf("kind: %s\n", im.kind);
	for (int i = 0; i < im.nlayers; i++)
		printf("layer %d: %s, %s, %s%s\n", i, im.is_iso ? im.live.layer[i].path : "(the whole file)",
		       im.layer_fstype[i], k_human(im.layer[i]->size, sz, sizeof(sz)),
		       i == 0 && im.nlayers > 1 ? " (bottom)" : i && i == im.nlayers - 1 ? " (top)" : "");
	printf("root: %s\n", image_writable(&im) ? "written in place (through the COW file)"
		: "read-only, with an overlay: changes in memory, or in the --cow file's upper layer");
	if (im.is_iso)
		printf("kernel parameters: %s%s%s%s\n", im.live.params[0] ? im.live.params : "(none)",
		       im.live.params_from[0] ? " (from " : "", im.live.params_from,
		       im.live.params_from[0] ? ")" : "");
	if (o->append)
		printf("added by --append: %s\n", o->append);
	image_close(&im);
	return 0;
}

int xboot(const struct boot_opts *o)
{
	if (o->info)
		return xboot_info(o);
	struct image im;
	struct bsrc *disk = xopen_disk(o, &im);
	struct bsrc *upper = xopen_upper(o, &im);
	char buf[PATH_MAX + 64];

	struct guest_conf conf;
	memset(&conf, 0, sizeof(conf));
	static char *job_argv[] = { "umlk-job", NULL };
	conf.command = o->cmd != NULL || o->job;
	conf.stdin_tty = !o->job && isatty(STDIN_FILENO);
	conf.argv = o->job ? job_argv : o->cmd;
	if (o->job)
		snprintf(conf.job, sizeof(conf.job), "%s", o->job);
	conf.dhcp = o->net && !o->no_dhcp;
	conf.layers = im.nlayers;
	conf.upper_disk = upper != NULL;
	if (o->overlay_size)
		snprintf(conf.overlay_size, sizeof(conf.overlay_size), "%s", o->overlay_size);
	else if (!upper)
		snprintf(conf.overlay_size, sizeof(conf.overlay_size), "%" PRIu64 "M",
			 (o->mem >> 20) * 3 / 4 < 512 ? 512 : (o->mem >> 20) * 3 / 4);
	/* A temporary COW file means a MAC that will not come again: the
	 * guest gives its lease back when it powers off. */
	conf.release = conf.dhcp && !o->cow && !o->mac;
	for (int i = 0; i < o->nenv; i++)
		conf.env[conf.nenv++] = (char *)o->env[i];
	if (o->xcookie)
		snprintf(conf.xcookie, sizeof(conf.xcookie), "%s", o->xcookie);
	if (o->hostname)
		snprintf(conf.hostname, sizeof(conf.hostname), "%s", o->hostname);
	struct home home;
	xopen_home(o, &home);
	if (home.kind)
		snprintf(conf.home, sizeof(conf.home), "%s", home.kind == 1 ? GUEST_HOME_SHARED : GUEST_HOME_DISK);

	/* Before any descriptor meant for the kernel exists: --net auto may
	 * start daemons, which must not inherit them. */
	char *net_arg = NULL;
	if (o->net) {
		/* virtio-net over vhost-user: the switch takes it on the same
		 * socket as daemon-protocol ports.  virtio-net has no MAC of its
		 * own here: the guest's init sets it. */
		char *sock = xboot_switch(o->net);
		guest_mac(o, conf.mac);
		net_arg = xmalloc(strlen(sock) + 64);
		sprintf(net_arg, "virtio_uml.device=%s:%d", sock, VIRTIO_ID_NET);
		free(sock);
	}

	uint8_t *img;
	size_t len;
	xinitramfs_build(o->init, &conf, &img, &len);
	int mfd = memfd_create("umlk-initramfs", 0);   /* inherited by the kernel */
	if (mfd < 0 || full_write(mfd, img, len) < 0)
		xdie("memfd for the initramfs:");
	free(img);

	const char *what;
	int kfd = xkernel_open(o->kernel, &what);
	int status_pipe[2] = { -1, -1 };
	if (conf.command && pipe2(status_pipe, 0) < 0)
		xdie("pipe:");
	if (status_pipe[0] >= 0)
		fcntl(status_pipe[0], F_SETFD, FD_CLOEXEC);

	/* UML makes RUNDIR/boot-PID/mconsole: how we stop it cleanly. */
	char rundir[PATH_MAX - 64], mcsock[PATH_MAX], vdasock[PATH_MAX], homesock[PATH_MAX];
	xboot_run_dir(rundir, sizeof(rundir));
	snprintf(mcsock, sizeof(mcsock), "%s/boot-%d/mconsole", rundir, (int)getpid());
	snprintf(vdasock, sizeof(vdasock), "%s/boot-%d-vda.sock", rundir, (int)getpid());
	snprintf(homesock, sizeof(homesock), "%s/boot-%d-home.sock", rundir, (int)getpid());

	/* The guest's disk is served from here, on threads of ours that
	 * leave every signal to this thread. */
	struct vblk vda;
	struct disk_server qsd;
	int use_qsd = xdisk_server_start(&qsd, o, &im, vdasock);
	sigset_t all, before;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &before);
	struct pool *pool = pool_start(o->disk_threads ? o->disk_threads : 4, "umlk-disk");
	if (!pool)
		xdie("%s", k_errmsg());
	if (!use_qsd && vblk_start(&vda, vdasock, "vda", disk, pool) < 0)
		xdie("%s", k_errmsg());
	struct vblk homeblk;
	struct vfs homefs;
	char homearg[PATH_MAX + 64] = "";
	if (home.kind)
		xhome_start(&home, homesock, pool, &homeblk, &homefs, homearg, sizeof(homearg));
	/* The root's other layers, and its upper layer (--cow on a read-only
	 * root): one more disk each, found in the guest by serial. */
	struct vblk extra[LIVE_LAYERS_MAX + 2];
	char extrasock[LIVE_LAYERS_MAX + 2][PATH_MAX];
	int nextra = 0;
	for (int i = 1; i <= im.nlayers + 1; i++) {
		struct bsrc *b = i < im.nlayers ? im.layer[i] : i == im.nlayers ? upper : o->jobdisk;
		if (!b)
			continue;
		char name[32];
		if (i < im.nlayers)
			snprintf(name, sizeof(name), "layer%d", i);
		else if (i == im.nlayers)
			snprintf(name, sizeof(name), "upper");
		else
			snprintf(name, sizeof(name), "job");
		snprintf(extrasock[nextra], sizeof(extrasock[nextra]), "%s/boot-%d-%s.sock", rundir, (int)getpid(),
			 name);
		if (vblk_start(&extra[nextra], extrasock[nextra], name, b, pool) < 0)
			xdie("%s", k_errmsg());
		nextra++;
	}
	pthread_sigmask(SIG_SETMASK, &before, NULL);

	/* An interactive guest on our terminal: its input goes through us, so
	 * that the escapes (~.) can stop a guest that shows no shell. */
	int relay_pipe[2] = { -1, -1 };
	int relay = !conf.command && isatty(STDIN_FILENO) && tcgetpgrp(STDIN_FILENO) == getpgrp();
	if (relay && pipe2(relay_pipe, 0) < 0)
		xdie("pipe:");
	if (relay) {
		fcntl(relay_pipe[1], F_SETFD, FD_CLOEXEC);
		fcntl(relay_pipe[1], F_SETFL, O_NONBLOCK);
	}
	char *argv[96], *owned[16 + LIVE_LAYERS_MAX + BOOT_APPEND_MAX];
	int n = 0, nowned = 0;
	argv[n++] = "linux";
#define ARG(...) (snprintf(buf, sizeof(buf), __VA_ARGS__), argv[n++] = owned[nowned++] = xstrdup(buf))
	ARG("mem=%" PRIu64 "M", o->mem >> 20);
	ARG("virtio_uml.device=%s:%d", vdasock, VIRTIO_ID_BLOCK);
	if (homearg[0])
		ARG("%s", homearg);
	for (int i = 0; i < nextra; i++)
		ARG("virtio_uml.device=%.4000s:%d", extrasock[i], VIRTIO_ID_BLOCK);
	ARG("initrd=/proc/self/fd/%d", mfd);
	ARG("uml_dir=%s", rundir);
	ARG("umid=boot-%d", (int)getpid());
	if (net_arg)
		argv[n++] = owned[nowned++] = net_arg;
	/* Isolated by default: ptrace mode on one CPU.  Seccomp mode lets the
	 * guest's processes reach the guest kernel's memory, and so act as
	 * the user who runs umlk: only on request. */
	argv[n++] = o->trusted ? "seccomp=on" : "seccomp=off";
	ARG("ncpus=%d", xboot_cpus(o->cpus, o->trusted));
	if (!o->verbose) {
		argv[n++] = "quiet";
		argv[n++] = "loglevel=3";       /* errors too stay off the user's terminal */
	}
	argv[n++] = "con=null";
	argv[n++] = "ssl=null";
	if (conf.command) {
		argv[n++] = "console=tty3";
		argv[n++] = conf.stdin_tty ? "con0=fd:0,fd:1" : "con0=null,fd:1";
		argv[n++] = "con1=null,fd:2";
		ARG("con2=null,fd:%d", status_pipe[1]);
		/* UML will not take one host descriptor for two lines (its IRQ
		 * is per descriptor: EALREADY), so the kernel's messages get a
		 * copy of stderr of their own. */
		if (o->verbose) {
			int e2 = dup(STDERR_FILENO);
			if (e2 < 0)
				xdie("dup:");
			ARG("con3=null,fd:%d", e2);
		} else {
			argv[n++] = "con3=null";
		}
	} else {
		/* The guest's own init: the user's terminal is tty1, where
		 * inits start their first getty (systemd's getty@tty1,
		 * sysvinit's inittab), and the console. */
		argv[n++] = "console=tty1";
		/* The kernel has no modules (everything is built in): systemd's
		 * module loader has nothing to do, and fails where the image
		 * lacks libkmod (a trixie minbase). */
		argv[n++] = "systemd.mask=systemd-modules-load.service";
		if (relay)
			ARG("con1=fd:%d,fd:1", relay_pipe[0]);
		else
			argv[n++] = "con1=fd:0,fd:1";
	}
	/* The live system's own parameters (its boot loader's), then the
	 * user's: last, so they win over ours. */
	char *params = NULL;
	if (im.live.params[0]) {
		params = xstrdup(im.live.params);
		char *save = NULL;
		for (char *w = strtok_r(params, " ", &save); w && n < 56; w = strtok_r(NULL, " ", &save))
			argv[n++] = w;
	}
	if (o->append) {
		char *copy = xstrdup(o->append), *save = NULL;
		owned[nowned++] = copy;
		for (char *w = strtok_r(copy, " \t", &save); w; w = strtok_r(NULL, " \t", &save))
			argv[n++] = w;
	}
	argv[n] = NULL;
#undef ARG

	struct termios saved;
	int tty = isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &saved) == 0;
	/* The kernel and every process it makes live in a process group of
	 * their own, so that at the end nothing of it can be left behind.  If
	 * we own the terminal, that group gets it while the guest runs. */
	int fg = tty && tcgetpgrp(STDIN_FILENO) == getpgrp() && !relay;
	sigset_t chld, old_mask;
	struct sigaction sc;
	memset(&sc, 0, sizeof(sc));
	sc.sa_handler = on_child;       /* no SA_RESTART: interrupts ppoll() */
	sigaction(SIGCHLD, &sc, NULL);
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	sigprocmask(SIG_BLOCK, &chld, &old_mask);
	run_mask = old_mask;
	sigdelset(&run_mask, SIGCHLD);
	fflush(NULL);
	child = k_fork();
	if (child < 0)
		xdie("fork:");
	if (child == 0) {
		setpgid(0, 0);
		/* Its disk is served from this process: the kernel does not
		 * outlive it (a SIGKILL of umlk included). */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() == 1)
			_exit(126);
		sigprocmask(SIG_SETMASK, &old_mask, NULL);     /* UML needs its SIGCHLD */
		signal(SIGCHLD, SIG_DFL);
		if (relay)                      /* it sets the terminal raw from the background */
			signal(SIGTTOU, SIG_IGN);
		kernel_exec(kfd, argv);
		k_warn("cannot run %s:", what);
		_exit(126);
	}
	setpgid(child, child);
	if (fg) {
		signal(SIGTTOU, SIG_IGN);
		tcsetpgrp(STDIN_FILENO, child);
	}
	if (relay) {
		/* Raw: every byte, Ctrl-C and Ctrl-Z included, is the guest's. */
		close(relay_pipe[0]);
		struct termios raw = saved;
		cfmakeraw(&raw);
		signal(SIGTTOU, SIG_IGN);
		signal(SIGPIPE, SIG_IGN);       /* a kernel gone: its pipe's end, not ours */
		tcsetattr(STDIN_FILENO, TCSANOW, &raw);
	}
	close(kfd);
	close(mfd);
	while (nowned)
		free(owned[--nowned]);
	if (status_pipe[1] >= 0)
		close(status_pipe[1]);
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop_signal;         /* no SA_RESTART: poll() returns */
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);

	int reported = supervise(status_pipe[0], fg || relay ? STDIN_FILENO : -1, relay_pipe[1], conf.command,
				 mcsock);
	if (relay)
		close(relay_pipe[1]);
	int st = child_status;
	sigprocmask(SIG_SETMASK, &old_mask, NULL);
	signal(SIGCHLD, SIG_DFL);
	kill(-child, SIGKILL);          /* anything of the kernel's still there */
	if (fg)
		tcsetpgrp(STDIN_FILENO, getpgrp());
	if (tty)
		tcsetattr(STDIN_FILENO, TCSANOW, &saved);
	remove_umid_dir(mcsock);
	if (use_qsd)
		disk_server_stop(&qsd);
	else
		vblk_stop(&vda);
	if (home.kind)
		home_stop(&home, &homeblk, &homefs, homesock);
	for (int i = 0; i < nextra; i++)
		vblk_stop(&extra[i]);
	pool_stop(pool);
	struct remote_stats rs = { 0 };
	if (remote)
		remote_get_stats(remote, &rs);
	if (o->verbose && remote) {
		char a[16], b[16];
		fprintf(stderr, "umlk boot: fetched %s of %s's %s (%.1f%%) in %" PRIu64 " requests (%" PRIu64
			" retried); %" PRIu64 " chunks came from the cache, %" PRIu64 " failed their hash\n",
			k_human(rs.fetched, a, sizeof(a)), o->image, k_human(im.file_size, b, sizeof(b)),
			im.file_size ? 100.0 * (double)rs.fetched / (double)im.file_size : 0.0, rs.requests,
			rs.retries, rs.cached, rs.mismatches);
	}
	if (o->trace_chunk && im.trace && o->trace_list)
		*o->trace_list = bsrc_trace_list(im.trace, o->trace_n);
	if (o->verbose) {
		char a[16], b[16], line[128];
		if (!remote)
			fprintf(stderr, "umlk boot: read %s of %s's %s (%.1f%%)\n", k_human(im.bytes_read, a, sizeof(a)),
				o->image, k_human(im.file_size, b, sizeof(b)),
				im.file_size ? 100.0 * (double)im.bytes_read / (double)im.file_size : 0.0);
		FILE *f = fopen("/proc/self/status", "re");
		while (f && fgets(line, sizeof(line), f))
			if (!strncmp(line, "VmHWM:", 6))
				fprintf(stderr, "umlk boot: at most %s resident here (the disk's server and cache)\n",
					k_human(strtoull(line + 6, NULL, 10) << 10, a, sizeof(a)));
		if (f)
			fclose(f);
	}
	bsrc_close(disk);               /* flushes the COW file */
	for (int i = 1; i < im.nlayers; i++)
		bsrc_close(im.layer[i]);
	bsrc_close(im.base);            /* an ISO's file, under the layers */
	if (upper)
		bsrc_close(upper);      /* flushes the upper layer */
	free(params);
	/* (The caller's temporary files, a cow-merge output filled by this
	 * guest say, stay: they are the caller's to commit or remove.) */
	xboot_run_dir_done();
	if (rs.failed) {
		/* The guest was told (an I/O error); the user is told too, and
		 * the exit status says it whatever the guest made of it. */
		k_warn("%" PRIu64 " reads of %s failed: the guest got I/O errors (see above)", rs.failed, o->image);
		if (!escaped && !stop_signal)
			return 1;
	}
	if (escaped)
		return 0;
	if (stop_signal)
		return 128 + stop_signal;
	if (!conf.command)
		return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	if (reported >= 0)
		return reported;
	if (WIFSIGNALED(st))
		return 128 + WTERMSIG(st);
	k_warn("the guest stopped without reporting the command's status (try --verbose)");
	return 125;
}
