#include "guest/guest.h"
#include "block/bootimage.h"
#include "core/err.h"
#include "core/sys.h"
#include "core/xio.h"
#include "guest/cookie.h"
#include "guest/payload.h"
#include "image/cpio.h"
#include "net/dhcpc.h"
#include "net/netif.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/sendfile.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

/* INIT (NULL: this program) opened, and in *LEN its length without the
 * kernel payload a release file carries after the program: the guest's
 * /init needs none. */
static int xinit_open(const char *init, const char **path, uint64_t *len)
{
	struct payload p;
	struct stat st;

	*path = init ? init : "/proc/self/exe";
	int fd = open(*path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0)
		xdie("%s: cannot read it:", *path);
	*len = payload_find(*path, &p) > 0 ? p.offset : (uint64_t)st.st_size;
	if (*len > (uint64_t)st.st_size)
		xdie("%s: its payload's trailer points past its end", *path);
	return fd;
}

/* The same program as bytes. */
static uint8_t *xinit_program(const char *init, size_t *len)
{
	const char *path;
	uint64_t n;
	int fd = xinit_open(init, &path, &n);
	uint8_t *b = xmalloc(n ? n : 1);

	if (full_read(fd, b, n) != (ssize_t)n)
		xdie("%s: cannot read it:", path);
	close(fd);
	*len = n;
	return b;
}

/* The initramfs's entries before /init, and after it. */
static void initramfs_head(struct cpio *c)
{
	cpio_init(c);
	cpio_dir(c, "dev", 0755);
	cpio_chardev(c, "dev/console", 0600, 5, 1);
	cpio_chardev(c, "dev/null", 0666, 1, 3);
	cpio_dir(c, "proc", 0555);
	cpio_dir(c, "sys", 0555);
	cpio_dir(c, "root", 0700);
	cpio_dir(c, "tmp", 01777);
	cpio_dir(c, "bin", 0755);
}

static void xinitramfs_tail(struct cpio *c, const struct guest_conf *conf)
{
	cpio_symlink(c, "bin/umlk", "/init");
	if (conf) {
		char *text = guest_conf_text(conf);
		cpio_dir(c, "etc", 0755);
		cpio_dir(c, "etc/umlk", 0755);
		cpio_file(c, "etc/umlk/boot.conf", 0644, text, strlen(text));
		free(text);
		if (conf->command) {
			size_t n = 0;
			for (char **a = conf->argv; *a; a++)
				n += strlen(*a) + 1;
			char *buf = xmalloc(n), *p = buf;
			for (char **a = conf->argv; *a; a++)
				p = stpcpy(p, *a) + 1;
			cpio_file(c, "etc/umlk/argv", 0644, buf, n);
			free(buf);
		}
	}
	if (cpio_finish(c) < 0)
		xdie("initramfs: %s", k_errmsg());
}

void xinitramfs_build(const char *init, const struct guest_conf *conf, int gzip, uint8_t **out, size_t *len)
{
	struct cpio c;
	size_t selflen;
	uint8_t *self = xinit_program(init, &selflen);

	initramfs_head(&c);
	cpio_file(&c, "init", 0755, self, selflen);
	free(self);
	xinitramfs_tail(&c, conf);
	if (gzip) {
		xgzip(c.buf, c.len, out, len, 1);
		cpio_free(&c);
	} else {
		*out = c.buf;           /* (the kernel takes a plain cpio as it is) */
		*len = c.len;
	}
}

int xinitramfs_memfd(const char *init, const struct guest_conf *conf)
{
	static const uint8_t zero[4];
	const char *path;
	uint64_t len;
	struct cpio c;
	int in = xinit_open(init, &path, &len);
	int fd = memfd_create("umlk-initramfs", 0);     /* inherited by the kernel */
	if (fd < 0)
		xdie("memfd for the initramfs:");
	/* The program goes from its file to the memfd inside the host's
	 * kernel: no copy of it through this process's memory. */
	initramfs_head(&c);
	cpio_file_header(&c, "init", 0755, len);
	if (c.err)
		xdie("initramfs: %s", k_errmsg());
	if (cpio_flush(&c, fd) < 0)
		xdie("writing the initramfs:");
	off_t from = 0;
	while ((uint64_t)from < len) {
		ssize_t n = sendfile(fd, in, &from, len - (uint64_t)from);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			xdie("%s: copying it into the initramfs%s", path, n < 0 ? ":" : ": it got shorter");
	}
	close(in);
	if (full_write(fd, zero, CPIO_PAD(len)) < 0)
		xdie("writing the initramfs:");
	xinitramfs_tail(&c, conf);
	if (cpio_flush(&c, fd) < 0)
		xdie("writing the initramfs:");
	cpio_free(&c);
	return fd;
}

void xinitramfs_self(uint8_t **out, size_t *len)
{
	xinitramfs_build(NULL, NULL, 1, out, len);
}

_Noreturn void guest_poweroff(int status)
{
	fflush(stdout);
	fflush(stderr);
	sync();
	if (status)
		fprintf(stderr, "umlk init: powering off after an error (status %d)\n", status);
	/* Everything is on the disks: umlk need not wait for the kernel's own
	 * power-off (with several CPUs, a few hundred ms of its exit calls). */
	int fd = open(GUEST_TTY_STATUS, O_WRONLY | O_NOCTTY);
	if (fd >= 0) {
		dprintf(fd, GUEST_POWEROFF_MARK "\n");
		close(fd);
	}
	reboot(RB_POWER_OFF);
	/* Not PID 1, or not allowed: there is nothing better left to do. */
	_exit(status);
}

static int command_mode;

void guest_report_status(int status)
{
	int fd = open(GUEST_TTY_STATUS, O_WRONLY | O_NOCTTY);
	if (fd >= 0) {
		dprintf(fd, "umlk-status %d\n", status);
		close(fd);
	}
}

static void die_hook(int status)
{
	/* Like 'docker run': 125 when the machinery, not the command, failed. */
	if (command_mode)
		guest_report_status(125);
	guest_poweroff(status);
}

static volatile sig_atomic_t told_to_stop;

static void on_cad(int sig)
{
	(void)sig;
	told_to_stop = 1;
}

void guest_command_mode(void)
{
	int fd = open(GUEST_TTY_STDERR, O_WRONLY | O_NOCTTY | O_CLOEXEC);
	struct sigaction sa;

	command_mode = 1;
	/* Ctrl-Alt-Del (the host's "umlk boot" was told to stop) comes to us
	 * as SIGINT instead of rebooting: stop the command, shut down. */
	reboot(RB_DISABLE_CAD);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_cad;         /* no SA_RESTART: waitpid returns */
	sigaction(SIGINT, &sa, NULL);
	if (fd >= 0) {
		dup2(fd, STDERR_FILENO);
		close(fd);
	}
}

void guest_become_init(void)
{
	k_die_hook = die_hook;
	/* The host passes ssl=null for kernels that have UML's serial lines,
	 * and hostcpus= for kernels with kernel/patches/0006; a kernel
	 * without them hands the word to process 1 as an environment
	 * variable, which the guest's init and command would inherit. */
	unsetenv("ssl");
	unsetenv("hostcpus");
}

static void mount_one(const char *src, const char *dir, const char *type, const char *opts)
{
	mkdir(dir, 0755);
	if (mount(src, dir, type, MS_NOSUID | MS_NOEXEC * !strcmp(type, "proc"), opts) < 0 &&
	    errno != EBUSY)
		k_warn("mount %s on %s:", type, dir);
}

void guest_mount_basics(void)
{
	mount_one("proc", "/proc", "proc", NULL);
	mount_one("sysfs", "/sys", "sysfs", NULL);
	mount_one("devtmpfs", "/dev", "devtmpfs", "mode=0755");
}

/* ---- configuration from the host */

int guest_read_conf(struct guest_conf *c)
{
	char line[4200];
	FILE *f = fopen("/etc/umlk/boot.conf", "re");

	memset(c, 0, sizeof(*c));
	if (!f)
		return k_seterr("/etc/umlk/boot.conf:");
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = 0;
		char *v = strchr(line, '=');
		if (!v)
			continue;
		*v++ = 0;
		if (!strcmp(line, "mode"))
			c->command = !strcmp(v, "command");
		else if (!strcmp(line, "stdin"))
			c->stdin_tty = !strcmp(v, "tty");
		else if (!strcmp(line, "hostname"))
			snprintf(c->hostname, sizeof(c->hostname), "%s", v);
		else if (!strcmp(line, "home"))
			snprintf(c->home, sizeof(c->home), "%s", v);
		else if (!strcmp(line, "layers"))
			c->layers = atoi(v);
		else if (!strcmp(line, "upper"))
			c->upper_disk = !strcmp(v, "disk");
		else if (!strcmp(line, "overlay_size"))
			snprintf(c->overlay_size, sizeof(c->overlay_size), "%s", v);
		else if (!strcmp(line, "mac"))
			snprintf(c->mac, sizeof(c->mac), "%s", v);
		else if (!strcmp(line, "dhcp"))
			c->dhcp = !strcmp(v, "1");
		else if (!strcmp(line, "release"))
			c->release = !strcmp(v, "1");
		else if (!strcmp(line, "env") && c->nenv < GUEST_MAX_ENV && strchr(v, '='))
			c->env[c->nenv++] = xstrdup(v);
		else if (!strcmp(line, "job"))
			snprintf(c->job, sizeof(c->job), "%s", v);
		else if (!strcmp(line, "xcookie"))
			snprintf(c->xcookie, sizeof(c->xcookie), "%s", v);
	}
	fclose(f);
	if (!c->command)
		return 0;
	size_t n;
	char *buf = (char *)k_read_file("/etc/umlk/argv", &n);
	int argc = 0;
	if (!buf)
		return -1;
	for (size_t i = 0; i < n; i++)
		argc += buf[i] == 0;
	if (!argc || buf[n - 1]) {
		free(buf);
		return k_seterr("/etc/umlk/argv: malformed");
	}
	c->argv = xcalloc(argc + 1, sizeof(char *));
	for (size_t i = 0, a = 0; i < n; i += strlen(buf + i) + 1)
		c->argv[a++] = buf + i;
	return 0;
}

char *guest_conf_text(const struct guest_conf *c)
{
	char *t = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&t, &n);

	if (!f)
		k_oom();
	fprintf(f, "mode=%s\nstdin=%s\nhostname=%s\nhome=%s\ndhcp=%d\nrelease=%d\nmac=%s\n",
		c->command ? "command" : "interactive", c->stdin_tty ? "tty" : "null",
		c->hostname, c->home, c->dhcp, c->release, c->mac);
	fprintf(f, "layers=%d\nupper=%s\noverlay_size=%s\n", c->layers, c->upper_disk ? "disk" : "tmpfs",
		c->overlay_size);
	for (int i = 0; i < c->nenv; i++)
		fprintf(f, "env=%s\n", c->env[i]);
	if (c->xcookie[0])
		fprintf(f, "xcookie=%s\n", c->xcookie);
	if (c->job[0])
		fprintf(f, "job=%s\n", c->job);
	if (fclose(f))
		k_oom();
	return t;
}

/* ---- the root filesystem */

/* From <linux/loop.h> (a stable ABI; musl's headers do not carry it). */
#define K_LOOP_SET_FD 0x4C00
#define K_LOOP_CTL_GET_FREE 0x4C82

int guest_loop_attach(const char *file, char *dev, size_t cap)
{
	int ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
	if (ctl < 0)
		return k_seterr("/dev/loop-control:");
	int n = ioctl(ctl, K_LOOP_CTL_GET_FREE);
	close(ctl);
	if (n < 0)
		return k_seterr("no free loop device:");
	snprintf(dev, cap, "/dev/loop%d", n);
	int lfd = -1;
	for (int i = 0; i < 100 && (lfd = open(dev, O_RDWR | O_CLOEXEC)) < 0; i++)
		usleep(10000);                  /* devtmpfs makes the node */
	int ffd = open(file, O_RDONLY | O_CLOEXEC);
	if (lfd < 0 || ffd < 0) {
		k_seterr("%s:", lfd < 0 ? dev : file);
		if (lfd >= 0)
			close(lfd);
		if (ffd >= 0)
			close(ffd);
		return -1;
	}
	/* A backing file opened read-only makes a read-only loop device. */
	int r = ioctl(lfd, K_LOOP_SET_FD, ffd);
	int e = errno;
	close(ffd);
	close(lfd);
	errno = e;
	return r < 0 ? k_seterr("%s: attaching %s:", dev, file) : 0;
}

/* The filesystem on DEV, read from its superblock: NULL if none we know. */
static const char *xfstype_of(const char *dev)
{
	int fd = -1;

	/* Disks are probed while the kernel starts; give them a moment. */
	for (int i = 0; i < 200 && (fd = open(dev, O_RDONLY | O_CLOEXEC)) < 0; i++)
		usleep(50000);
	if (fd < 0)
		xdie("%s: no such disk:", dev);
	off_t size = lseek(fd, 0, SEEK_END);
	if (size < 0)
		xdie("%s:", dev);
	struct bsrc *b = bsrc_file(fd, dev, 0, (uint64_t)size, 0, NULL);
	const char *t = image_fstype(b);
	bsrc_close(b);
	return t;
}

/* The first line of PATH into BUF, without its newline; -1 (BUF as it
 * was) when there is none. */
static int first_line(const char *path, char *buf, size_t cap)
{
	FILE *f = fopen(path, "re");
	int ok = f && fgets(buf, (int)cap, f);

	if (f)
		fclose(f);
	if (!ok)
		return -1;
	buf[strcspn(buf, "\n")] = 0;
	return 0;
}

/* The disk whose virtio serial is SERIAL, as /dev/vdX in DEV. */
static int disk_by_serial(const char *serial, char *dev, size_t cap)
{
	DIR *d = opendir("/sys/block");
	struct dirent *e;
	int found = 0;

	while (d && !found && (e = readdir(d))) {
		char path[300], got[64] = "";
		if (strncmp(e->d_name, "vd", 2))
			continue;
		snprintf(path, sizeof(path), "/sys/block/%s/serial", e->d_name);
		if (first_line(path, got, sizeof(got)) == 0 && !strcmp(got, serial)) {
			snprintf(dev, cap, "/dev/%.32s", e->d_name);
			found = 1;
		}
	}
	if (d)
		closedir(d);
	return found;
}

int guest_disk_by_serial(const char *serial, char *dev, size_t cap)
{
	for (int i = 0; i < 200; i++) {
		if (disk_by_serial(serial, dev, cap))
			return 0;
		usleep(50000);
	}
	return k_seterr("no disk with serial %s", serial);
}

void xguest_disk_by_serial(const char *serial, char *dev, size_t cap)
{
	if (guest_disk_by_serial(serial, dev, cap) < 0)
		xdie("%s", k_errmsg());
}

/* The read-ahead of the read-only disk DEV (/dev/vdX): the window a
 * file on it is read by, page faults on a mapped file included (they read
 * the whole window around the fault).  The kernel makes it twice a
 * request's largest size, 8 MiB for umlk's disks: a program mapping a
 * library then reads, decompresses and (from a web server) fetches all of
 * it rather than the pages it touches.  Linux's own default, 128 KiB (a
 * squashfs block), instead. */
#define GUEST_LAYER_READ_AHEAD_KB 128

/* Write KB to the read_ahead_kb file PATH: 0, or -1 with errno. */
static int set_read_ahead(const char *path, unsigned kb)
{
	FILE *f = fopen(path, "we");
	if (!f)
		return -1;
	fprintf(f, "%u\n", kb);
	return fclose(f);
}

static void read_ahead(const char *dev, unsigned kb)
{
	char path[128];
	if (strncmp(dev, "/dev/", 5))
		return;
	snprintf(path, sizeof(path), "/sys/block/%.32s/queue/read_ahead_kb", dev + 5);
	set_read_ahead(path, kb);
}

/* Mount DEV read-only at DIR by its filesystem.  A Fedora-style squashfs
 * holding LiveOS/rootfs.img mounts that image (through a loop device). */
static void xmount_layer(const char *dev, const char *dir)
{
	const char *t = xfstype_of(dev);
	if (!t)
		xdie("%s: no filesystem umlk knows (ext2/3/4, squashfs, iso9660)", dev);
	mkdir(dir, 0755);
	read_ahead(dev, GUEST_LAYER_READ_AHEAD_KB);
	if (mount(dev, dir, !strncmp(t, "ext", 3) ? "ext4" : t, MS_RDONLY, NULL) < 0)
		xdie("mount %s (%s) on %s:", dev, t, dir);
	char img[300];
	snprintf(img, sizeof(img), "%s/LiveOS/rootfs.img", dir);
	if (access(img, F_OK) < 0)
		return;
	char loop[64], inner[300];
	if (guest_loop_attach(img, loop, sizeof(loop)) < 0)
		xdie("%s: %s", img, k_errmsg());
	snprintf(inner, sizeof(inner), "%s.rootfs", dir);
	const char *it = xfstype_of(loop);
	mkdir(inner, 0755);
	if (!it || mount(loop, inner, !strncmp(it, "ext", 3) ? "ext4" : it, MS_RDONLY, NULL) < 0)
		xdie("mount %s (LiveOS/rootfs.img, %s) on %s:", loop, it ? it : "unknown", inner);
	/* The rootfs image is the layer; the squashfs stays mounted under it. */
	if (mount(inner, dir, NULL, MS_MOVE, NULL) < 0)
		xdie("moving %s to %s:", inner, dir);
}

void xguest_mount_root(const struct guest_conf *c)
{
	const char *t = xfstype_of(GUEST_ROOT_DEV);
	int layers = c->layers > 1 ? c->layers : 1;

	mkdir("/newroot", 0755);
	if (!t)
		xdie("%s: no filesystem umlk knows (ext2/3/4, squashfs, iso9660)", GUEST_ROOT_DEV);
	if (layers == 1 && !strncmp(t, "ext", 3) && !c->upper_disk) {
		/* The ext4 driver mounts all three. */
		if (mount(GUEST_ROOT_DEV, "/newroot", "ext4", 0, NULL) < 0 &&
		    mount(GUEST_ROOT_DEV, "/newroot", t, 0, NULL) < 0)
			xdie("mount %s (%s) on /newroot:", GUEST_ROOT_DEV, t);
		return;
	}
	/* Read-only media or stacked images get the KNOPPIX treatment: an
	 * overlay whose writes go to memory, or to the upper disk (--cow). */
	mkdir("/layers", 0755);
	char opts[64 + 32 * GUEST_LAYERS_MAX] = "lowerdir=";
	for (int i = layers - 1; i >= 0; i--) {
		char dev[64], dir[32];
		if (i == 0)
			snprintf(dev, sizeof(dev), "%s", GUEST_ROOT_DEV);
		else {
			char serial[32];
			snprintf(serial, sizeof(serial), "%s%d", GUEST_LAYER_SERIAL, i);
			xguest_disk_by_serial(serial, dev, sizeof(dev));
		}
		snprintf(dir, sizeof(dir), "/layers/%d", i);
		xmount_layer(dev, dir);
		strcat(opts, dir);
		if (i)
			strcat(opts, ":");
	}
	mkdir("/rw", 0755);
	if (c->upper_disk) {
		char dev[64];
		xguest_disk_by_serial(GUEST_UPPER_SERIAL, dev, sizeof(dev));
		if (mount(dev, "/rw", "ext4", 0, NULL) < 0)
			xdie("mount the upper layer %s (--cow) on /rw:", dev);
	} else {
		char o[64];
		snprintf(o, sizeof(o), "mode=0755%s%s", c->overlay_size[0] ? ",size=" : "", c->overlay_size);
		if (mount("tmpfs", "/rw", "tmpfs", 0, o) < 0)
			xdie("mount tmpfs for the writable layer (%s):", o);
	}
	mkdir("/rw/upper", 0755);
	mkdir("/rw/work", 0755);
	strcat(opts, ",upperdir=/rw/upper,workdir=/rw/work");
	if (mount("overlay", "/newroot", "overlay", 0, opts) < 0)
		xdie("mount overlay on the read-only root (%s):", opts);
}

/* The shared home reads ahead HOME_READ_AHEAD_KB, not FUSE's 128 KiB: a
 * file read in order is then a request for each 512 KiB instead of each
 * 128 KiB (200 MB read with dd: 0.19 s instead of 0.22; 1 MiB was no
 * better than 128 KiB).  umlk's server cannot ask for it: FUSE's INIT
 * only lowers what the guest's kernel offers. */
#define HOME_READ_AHEAD_KB 512

static void home_read_ahead(const char *dir)
{
	struct stat st;
	char path[64];

	if (stat(dir, &st) < 0)
		return;
	snprintf(path, sizeof(path), "/sys/class/bdi/%u:%u/read_ahead_kb", major(st.st_dev), minor(st.st_dev));
	if (set_read_ahead(path, HOME_READ_AHEAD_KB) < 0)
		k_warn("%s:", path);
}

void xguest_mount_home(const char *kind)
{
	mkdir("/newroot/home", 0755);
	if (!strcmp(kind, GUEST_HOME_SHARED)) {
		if (mount(GUEST_HOME_TAG, "/newroot/home", "virtiofs", 0, NULL) < 0)
			xdie("mount the shared directory (virtiofs %s) on /home:", GUEST_HOME_TAG);
		home_read_ahead("/newroot/home");
		return;
	}
	if (strcmp(kind, GUEST_HOME_DISK))
		xdie("/etc/umlk/boot.conf: home=%s is neither %s nor %s", kind, GUEST_HOME_SHARED,
		     GUEST_HOME_DISK);
	char dev[64];
	for (int i = 0; i < 200 && !disk_by_serial(GUEST_HOME_SERIAL, dev, sizeof(dev)); i++)
		usleep(50000);
	if (!disk_by_serial(GUEST_HOME_SERIAL, dev, sizeof(dev)))
		xdie("no home disk (a virtio disk with serial %s)", GUEST_HOME_SERIAL);
	if (mount(dev, "/newroot/home", "ext4", 0, NULL) < 0)
		xdie("mount the home image %s on /home:", dev);
}

void guest_set_hostname(const char *name)
{
	char buf[65] = "";

	if (!name || !*name) {
		first_line("/newroot/etc/hostname", buf, sizeof(buf));
		name = buf[0] ? buf : "umlk";
	}
	if (sethostname(name, strlen(name)) < 0)
		k_warn("sethostname %s:", name);
}

/* ---- the network */

static void loopback_up(void)
{
	struct dhcpc_lease lo;

	memset(&lo, 0, sizeof(lo));
	lo.ip = 0x7f000001;
	lo.mask = 0xff000000;
	lo.bcast = 0x7fffffff;
	if (netif_if_up("lo") < 0 || dhcpc_configure("lo", &lo) < 0)
		k_warn("%s", k_errmsg());
}

/* Run FN(ARG) in a child chroot'ed into /newroot, so that paths mean what
 * the guest means by them (an absolute symlink such as /etc/resolv.conf ->
 * /run/... or /sbin/init -> /bin/busybox resolves there, not in the
 * initramfs).  0 when FN returned 0. */
static int in_new_root(int (*fn)(const void *arg), const void *arg)
{
	pid_t pid = k_fork();

	if (pid == 0)
		_exit(chroot("/newroot") < 0 || chdir("/") < 0 || fn(arg) < 0);
	int st;
	return pid > 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st) && !WEXITSTATUS(st) ? 0 : -1;
}

struct root_file {
	const char *path;
	const void *data;
	size_t n;
	mode_t mode;
};

static int put_file(const void *arg)            /* in the new root */
{
	const struct root_file *f = arg;

	return kout_write_file(f->path, f->data, f->n, f->mode, 0);
}

/* Write N bytes to PATH in the new root, through a temporary file and rename. */
static int write_in_root(const char *path, const void *data, size_t n, mode_t mode)
{
	struct root_file f = { path, data, n, mode };

	if (in_new_root(put_file, &f) < 0)
		return k_seterr("could not write %s in the guest's root", path);
	return 0;
}

static void write_resolv(const char *text)
{
	if (write_in_root("/etc/resolv.conf", text, strlen(text), 0644) < 0)
		k_warn("%s", k_errmsg());
}

/* Renew at T1; when that fails, retry every minute; after the lease
 * runs out, start over. */
static _Noreturn void renew_loop(struct netif *ni, struct dhcpc_lease *l)
{
	prctl(PR_SET_NAME, "umlk-dhcpc", 0, 0, 0);
	for (;;) {
		time_t got = time(NULL);
		unsigned wait = l->t1 ? l->t1 : 60;
		while (time(NULL) - got < (time_t)wait)
			sleep((unsigned)(wait - (time(NULL) - got)));
		while (dhcpc_renew(ni, l, 5000) < 0) {
			if (time(NULL) - got >= (time_t)l->lease) {
				if (dhcpc_acquire(ni, NULL, 30000, l) == 0 && dhcpc_configure("eth0", l) == 0)
					break;
				got = time(NULL);
			}
			sleep(60);
		}
	}
}

static struct dhcpc_lease eth0_lease;  /* what to give back at power-off */
static int release_at_end;

void guest_network(const struct guest_conf *c, char *name, size_t cap)
{
	struct netif ni;
	struct dhcpc_lease l;
	char a[16], s[16];

	name[0] = 0;
	loopback_up();
	if (access("/sys/class/net/eth0", F_OK) < 0)
		return;
	uint8_t mac[6];
	if (c->mac[0] && (net_parse_mac(c->mac, mac) < 0 || netif_set_mac("eth0", mac) < 0))
		k_warn("eth0: setting its MAC %s: %s", c->mac, k_errmsg());
	if (!c->dhcp)
		return;
	if (netif_if_up("eth0") < 0 || netif_open_packet(&ni, "eth0") < 0) {
		k_warn("%s", k_errmsg());
		return;
	}
	if (dhcpc_acquire(&ni, c->hostname[0] ? c->hostname : NULL, 15000, &l) < 0 ||
	    dhcpc_configure("eth0", &l) < 0) {
		k_warn("%s", k_errmsg());
		netif_close(&ni);
		return;
	}
	printf("umlk-init: eth0 %s/%d from %s%s%s\n", net_fmt_ip(l.ip, a), net_mask_bits(l.mask),
	       net_fmt_ip(l.server, s), l.hostname[0] ? ", host name " : "", l.hostname);
	fflush(stdout);
	snprintf(name, cap, "%s", l.hostname);
	eth0_lease = l;
	release_at_end = c->release;
	char *resolv = dhcpc_resolv_text(&l);
	if (resolv) {
		write_resolv(resolv);
		free(resolv);
	}
	pid_t pid = k_fork();
	if (pid == 0)
		renew_loop(&ni, &l);
	netif_close(&ni);
}

/* ---- X */

void guest_xauth(const struct guest_conf *c)
{
	uint8_t cookie[COOKIE_LEN], entry[128];
	const char *display = NULL;

	if (!c->xcookie[0])
		return;
	for (int i = 0; i < c->nenv; i++)
		if (!strncmp(c->env[i], "DISPLAY=", 8))
			display = c->env[i] + 8;
	const char *colon = display ? strrchr(display, ':') : NULL;
	if (!colon || cookie_unhex(c->xcookie, cookie) < 0) {
		k_warn("an X cookie without DISPLAY=HOST:NUMBER, or not 32 hex digits: not installed");
		return;
	}
	size_t n = cookie_entry(entry, sizeof(entry), atoi(colon + 1), cookie);
	mkdir("/newroot/root", 0700);
	if (write_in_root(GUEST_XAUTHORITY, entry, n, 0600) < 0)
		k_warn("%s", k_errmsg());
}

/* ---- running the command */

/* What a command expects to find in its root: /proc, /sys, /dev, with
 * pseudo-terminals (xterm, ssh, script need them) and shared memory.
 * Mounted in this order; guest_shutdown() unmounts them in reverse. */
static const char *const command_fs[][4] = {
	{ "proc", "/newroot/proc", "proc", NULL },
	{ "sysfs", "/newroot/sys", "sysfs", NULL },
	{ "devtmpfs", "/newroot/dev", "devtmpfs", NULL },
	{ "devpts", "/newroot/dev/pts", "devpts", "gid=5,mode=620,ptmxmode=666" },
	{ "tmpfs", "/newroot/dev/shm", "tmpfs", "mode=1777" },
};
#define NCOMMAND_FS (sizeof(command_fs) / sizeof(command_fs[0]))

static void raw_output(int fd)
{
	struct termios t;

	/* Bytes pass as they are: no "\n" to "\r\n", no echo. */
	if (tcgetattr(fd, &t) == 0) {
		cfmakeraw(&t);
		tcsetattr(fd, TCSANOW, &t);
	}
}

/* Start the command in /newroot on the console lines OUT and ERR; its
 * pid.  Its environment is made here: between vfork() and exec the child
 * shares our memory, so it only makes system calls. */
static pid_t xstart_command(const struct guest_conf *c, int out, int err)
{
	int in = c->stdin_tty ? out : open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (in < 0)
		xdie("/dev/null:");
	setenv("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", 1);
	setenv("HOME", "/root", 1);
	setenv("TERM", getenv("TERM") ? getenv("TERM") : "linux", 1);
	for (int i = 0; i < c->nenv; i++)
		putenv(c->env[i]);
	if (c->xcookie[0])
		setenv("XAUTHORITY", GUEST_XAUTHORITY, 1);
	/* SIGINT (on_cad) stays blocked until the child has its default
	 * action back: our handler must not run in the child, on our
	 * memory. */
	sigset_t intr, old;
	sigemptyset(&intr);
	sigaddset(&intr, SIGINT);
	sigprocmask(SIG_BLOCK, &intr, &old);
	fflush(NULL);
	/* vfork: the command's process never gets a copy of our memory (in
	 * UML a host process of its own, made and torn down for nothing
	 * before the exec), and we go on once it has exec'd or failed. */
	pid_t pid = vfork();
	if (pid == 0) {
		signal(SIGINT, SIG_DFL);
		sigprocmask(SIG_SETMASK, &old, NULL);
		setsid();
		if (c->stdin_tty)
			ioctl(out, TIOCSCTTY, 0);
		if (chroot("/newroot") < 0 || chdir("/") < 0)
			_exit(126);
		dup2(in, 0);
		dup2(out, 1);
		dup2(err, 2);
		execvp(c->argv[0], c->argv);
		int e = errno;
		dprintf(2, "umlk: %s: %s\n", c->argv[0], strerror(e));
		_exit(e == ENOENT ? 127 : 126);
	}
	int fork_errno = errno;
	sigprocmask(SIG_SETMASK, &old, NULL);
	if (in != out)
		close(in);
	if (pid < 0) {
		errno = fork_errno;
		xdie("vfork:");
	}
	return pid;
}

int xguest_run(const struct guest_conf *c)
{
	/* A shell on the console (no init in the image) has everything on
	 * the interactive line, in the terminal's own modes. */
	const char *line = c->console_shell ? GUEST_TTY_INTERACTIVE : GUEST_TTY_STDIO;
	int out = open(line, O_RDWR | O_NOCTTY | O_CLOEXEC);
	int err = c->console_shell ? dup(out) : open(GUEST_TTY_STDERR, O_WRONLY | O_NOCTTY | O_CLOEXEC);
	if (out < 0 || err < 0)
		xdie("cannot open the console lines %s, %s:", line, GUEST_TTY_STDERR);
	if (!c->stdin_tty)
		raw_output(out);
	if (!c->console_shell)
		raw_output(err);
	for (size_t i = 0; i < NCOMMAND_FS; i++) {
		const char *const *m = command_fs[i];
		mkdir(m[1], 0755);
		if (mount(m[0], m[1], m[2], MS_NOSUID, m[3]) < 0)
			k_warn("mount %s on %s:", m[2], m[1]);
	}
	/* devtmpfs's own /dev/ptmx is not the one of this devpts instance. */
	unlink("/newroot/dev/ptmx");
	if (symlink("pts/ptmx", "/newroot/dev/ptmx") < 0)
		k_warn("symlink /dev/ptmx:");

	pid_t pid = xstart_command(c, out, err);
	/* PID 1 reaps every orphan; the command's own status is the answer. */
	int status = 0, stopping = 0;
	for (;;) {
		int st;
		pid_t w = waitpid(-1, &st, stopping ? WNOHANG : 0);
		if (told_to_stop && stopping == 0) {
			/* The command runs in a session of its own: stop all of it. */
			kill(-pid, SIGTERM);
			kill(pid, SIGTERM);
			stopping = 1;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			break;
		if (w == pid) {
			status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
			break;
		}
		if (w == 0) {                   /* stopping: give it 3 s, then kill */
			if (++stopping > 60) {
				kill(-pid, SIGKILL);
				kill(pid, SIGKILL);
			}
			usleep(50000);
		}
	}
	tcdrain(out);
	tcdrain(err);
	close(out);
	close(err);
	return status;
}

/* A guest whose MAC will not come again gives its address back. */
static void release_lease(void)
{
	struct netif ni;

	if (!release_at_end || !eth0_lease.ip || netif_open_packet(&ni, "eth0") < 0)
		return;
	if (dhcpc_release(&ni, &eth0_lease) < 0)
		k_warn("%s", k_errmsg());
	netif_close(&ni);
}

/* Does /proc/net/FILE (tcp, tcp6) hold a socket that has not yet
 * delivered what it was given: bytes, or the end (FIN) a reader may be
 * waiting for, not yet acknowledged?  0 if not, or if it cannot say. */
static int tcp_unsent(const char *file)
{
	char path[32], line[256];
	snprintf(path, sizeof(path), "/proc/net/%s", file);
	FILE *f = fopen(path, "re");
	if (!f)
		return 0;
	int busy = 0;
	if (fgets(line, sizeof(line), f))       /* (the header) */
		while (!busy && fgets(line, sizeof(line), f)) {
			unsigned st, tx;
			/* "sl: local remote st tx_queue:rx_queue ..." */
			if (sscanf(line, "%*s %*s %*s %x %x:", &st, &tx) != 2)
				continue;
			/* tx_queue: what the peer has not acknowledged, our FIN
			 * included (a sequence number of its own).  A listener's
			 * is its backlog; in LAST_ACK and CLOSING the peer has
			 * ended its side already and waits for no FIN of ours,
			 * only for data. */
			if (st == 0x0A)
				continue;
			busy = (st == 0x09 || st == 0x0B) ? tx > 1 : tx > 0;
		}
	fclose(f);
	return busy;
}

/* The command's TCP data on its way out: a program that wrote to a socket
 * and exited has handed the bytes to the kernel, not to the peer, and a
 * power-off would lose them (the peer left waiting for the rest).  Wait
 * until they are delivered, for at most 5 s. */
static void wait_tcp_delivered(void)
{
	for (int i = 0; i < 500; i++) {
		if (!tcp_unsent("tcp") && !tcp_unsent("tcp6"))
			return;
		usleep(10000);
	}
	k_warn("TCP data not delivered after 5 s: powering off without it");
}

void guest_shutdown(void)
{
	release_lease();
	/* Every guest process descends from PID 1, so "no children left"
	 * (ECHILD) means everyone is gone.  Give them a second, then kill. */
	kill(-1, SIGTERM);
	for (int i = 0; i < 40; i++) {
		pid_t w;
		while ((w = waitpid(-1, NULL, WNOHANG)) > 0)
			;
		if (w < 0 && errno == ECHILD)
			break;
		usleep(25000);
	}
	kill(-1, SIGKILL);
	while (waitpid(-1, NULL, 0) > 0)
		;
	wait_tcp_delivered();
	sync();
	umount2("/newroot/home", MNT_DETACH);
	for (size_t i = NCOMMAND_FS; i-- > 0;)
		umount2(command_fs[i][1], MNT_DETACH);
	if (umount("/newroot") < 0 && mount(NULL, "/newroot", NULL, MS_REMOUNT | MS_RDONLY, NULL) < 0)
		k_warn("could not unmount or remount the root read-only:");
	/* The overlay's upper layer (an ext4 disk with --cow) and its lower
	 * layers, once the overlay is gone: the upper's journal left clean. */
	if (umount("/rw") < 0 && errno != EINVAL && errno != ENOENT &&
	    mount(NULL, "/rw", NULL, MS_REMOUNT | MS_RDONLY, NULL) < 0)
		k_warn("could not unmount or remount the upper layer read-only:");
	for (int i = GUEST_LAYERS_MAX - 1; i >= 0; i--) {
		char dir[32];
		snprintf(dir, sizeof(dir), "/layers/%d", i);
		umount2(dir, MNT_DETACH);
	}
	sync();
}

static const char *const guest_inits[] = { "/sbin/init", "/etc/init", "/bin/init", NULL };

static int find_init(const void *arg)           /* in the new root */
{
	(void)arg;
	for (size_t i = 0; guest_inits[i]; i++)
		if (access(guest_inits[i], X_OK) == 0)
			return 0;
	return -1;
}

int guest_has_init(void)
{
	/* Asked from inside the new root: /sbin/init is often an absolute
	 * symlink (busybox's, systemd's), which means nothing from here. */
	return in_new_root(find_init, NULL) == 0;
}

/* ---- CPUs */

/* A CPU list such as "0-3" or "0,2-5" into SET (-1: not one). */
static int cpu_list(const char *s, cpu_set_t *set)
{
	CPU_ZERO(set);
	while (*s) {
		char *end;
		long a = strtol(s, &end, 10), b = a;
		if (end == s || a < 0 || a >= CPU_SETSIZE)
			return -1;
		if (*end == '-') {
			s = end + 1;
			b = strtol(s, &end, 10);
			if (end == s || b < a || b >= CPU_SETSIZE)
				return -1;
		}
		for (long c = a; c <= b; c++)
			CPU_SET((int)c, set);
		if (*end != ',' && *end != '\n')
			return *end ? -1 : 0;
		s = end + 1;
	}
	return 0;
}

/* The CPUs this process may be put on once they are up: its allowed
 * list, which sched_getaffinity() would give only for the active ones
 * (-1: not known). */
static int cpus_allowed(cpu_set_t *set)
{
	char line[4200];
	int r = -1;
	FILE *f = fopen("/proc/self/status", "re");

	while (f && r < 0 && fgets(line, sizeof(line), f))
		if (!strncmp(line, "Cpus_allowed_list:", 18))
			r = cpu_list(line + 18 + strspn(line + 18, " \t"), set);
	if (f)
		fclose(f);
	return r;
}

void guest_wait_cpus(void)
{
	char present[128];
	cpu_set_t want, allowed, have;
	struct timespec ts = { 0, 200 * 1000 };

	if (first_line("/sys/devices/system/cpu/present", present, sizeof(present)) < 0 ||
	    cpu_list(present, &want) < 0)
		return;
	/* Only those init may run on: isolcpus= takes CPUs from every
	 * process's list, and they never become init's. */
	if (cpus_allowed(&allowed) == 0)
		CPU_AND(&want, &want, &allowed);
	int n = CPU_COUNT(&want);
	if (n <= 1)
		return;
	/* Until each is active, not only online (the sysfs file "online"
	 * says so a little earlier): a command started before would see
	 * fewer CPUs (nproc).  At most 10000 turns of 200 us (about 2 s),
	 * then go on with the CPUs there are; the kernel has said why the
	 * others failed. */
	for (int i = 0; i < 10000; i++) {
		if (sched_getaffinity(0, sizeof(have), &have) < 0)
			return;
		CPU_AND(&have, &have, &want);
		if (CPU_COUNT(&have) >= n)
			return;
		nanosleep(&ts, NULL);
	}
	k_warn("only %d of the CPUs %s came up; going on without the others", CPU_COUNT(&have), present);
}

/* Is DIR a mount point (a different device from its parent's)? */
static int is_mount(const char *dir)
{
	struct stat a, b;
	char parent[300];

	snprintf(parent, sizeof(parent), "%s/..", dir);
	return stat(dir, &a) == 0 && stat(parent, &b) == 0 && a.st_dev != b.st_dev;
}

/* The overlay's layers into the new root's /run/umlk (a tmpfs on /run, as
 * an initramfs hands over), where the guest's own init sees them and, at
 * shutdown, remounts them read-only: the upper layer's journal left
 * clean.  A root without /run keeps them out of sight. */
static void hand_over_layers(void)
{
	struct stat st;

	if (!is_mount("/rw") || stat("/newroot/run", &st) < 0 || !S_ISDIR(st.st_mode))
		return;
	if (!is_mount("/newroot/run") && mount("tmpfs", "/newroot/run", "tmpfs", MS_NOSUID | MS_NODEV,
					       "mode=0755") < 0)
		return;
	mkdir("/newroot/run/umlk", 0755);
	mkdir("/newroot/run/umlk/rw", 0755);
	if (mount("/rw", "/newroot/run/umlk/rw", NULL, MS_MOVE, NULL) < 0)
		k_warn("moving the upper layer to /run/umlk/rw:");
	mkdir("/newroot/run/umlk/layers", 0755);
	for (int i = 0; i < GUEST_LAYERS_MAX; i++) {
		char from[32], to[64];
		snprintf(from, sizeof(from), "/layers/%d", i);
		if (!is_mount(from))
			break;
		snprintf(to, sizeof(to), "/newroot/run/umlk/layers/%d", i);
		mkdir(to, 0755);
		if (mount(from, to, NULL, MS_MOVE, NULL) < 0)
			k_warn("moving %s to %s:", from, to);
	}
}

_Noreturn void xguest_switch_root(void)
{
	static const char *const moves[] = { "/dev", "/proc", "/sys" };

	hand_over_layers();
	for (size_t i = 0; i < 3; i++) {
		char to[64];
		snprintf(to, sizeof(to), "/newroot%s", moves[i]);
		mkdir(to, 0755);
		if (mount(moves[i], to, NULL, MS_MOVE, NULL) < 0)
			umount2(moves[i], MNT_DETACH);
	}
	if (chdir("/newroot") < 0 || mount("/newroot", "/", NULL, MS_MOVE, NULL) < 0 ||
	    chroot(".") < 0 || chdir("/") < 0)
		xdie("switching to the new root:");
	int fd = open("/dev/console", O_RDWR);
	if (fd >= 0) {
		dup2(fd, 0);
		dup2(fd, 1);
		dup2(fd, 2);
		if (fd > 2)
			close(fd);
	}
	for (size_t i = 0; guest_inits[i]; i++)
		execl(guest_inits[i], guest_inits[i], (char *)NULL);
	xdie("no init in the guest (/sbin/init, /etc/init, /bin/init)");
}
