#include "boot.h"
#include "cloop.h"
#include "cow.h"
#include "err.h"
#include "guest.h"
#include "iso9660.h"
#include "mconsole.h"
#include "payload.h"
#include "pipeline.h"
#include "progress.h"
#include "net.h"
#include "sha256.h"
#include "switchproto.h"
#include "xio.h"

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
#include <sys/stat.h>
#include <sys/wait.h>
#include <poll.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

static void xmkdirs(const char *path)
{
	char p[PATH_MAX];

	snprintf(p, sizeof(p), "%s", path);
	for (char *s = p + 1; *s; s++) {
		if (*s == '/') {
			*s = 0;
			mkdir(p, 0755);
			*s = '/';
		}
	}
	if (mkdir(p, 0755) < 0 && errno != EEXIST)
		xdie("%s:", p);
}

static char *cache_dir(void)
{
	const char *x = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
	char *d = xmalloc(PATH_MAX);

	if (x && *x == '/')
		snprintf(d, PATH_MAX, "%s/umlk", x);
	else if (home && *home == '/')
		snprintf(d, PATH_MAX, "%s/.cache/umlk", home);
	else
		snprintf(d, PATH_MAX, "/tmp/umlk-cache-%u", (unsigned)getuid());
	xmkdirs(d);
	return d;
}

/* A raw filesystem the kernel can mount as it is. */
static const char *fs_kind(const struct ksrc *s)
{
	uint8_t b[4];

	if (ksrc_read(s, b, 2, 1080) == 0 && b[0] == 0x53 && b[1] == 0xef)
		return "ext2/3/4";
	if (ksrc_read(s, b, 4, 0) == 0 && !memcmp(b, "hsqs", 4))
		return "squashfs";
	return NULL;
}

char *xboot_backing(const char *image)
{
	struct ksrc src;
	struct stat st;
	struct cloop c;
	char *abs = xmalloc(PATH_MAX);

	if (!realpath(image, abs))
		xdie("%s:", image);
	xsrc_open(&src, abs);
	src.name = image;
	if (fstat(src.fd, &st) < 0)
		xdie("%s:", image);
	int iso = iso_open_knoppix(&src);
	if (iso < 0)
		xdie("%s", k_errmsg());
	if (!iso && fs_kind(&src)) {
		ksrc_close(&src);
		return abs;
	}
	if (cloop_open(&c, &src) < 0) {
		if (src.base)
			xdie("%s", k_errmsg());
		xdie("%s: unknown format: not an ISO image, a cloop file, or an ext2/ext4 or"
		     " squashfs filesystem", image);
	}
	/* The cache key: which file this is and what its cloop index says, so
	 * a changed or different image never finds an old extraction. */
	struct sha256 h;
	uint8_t d[32];
	char hex[65], *path = xmalloc(PATH_MAX), *dir = cache_dir();
	uint64_t id[6] = { st.st_dev, st.st_ino, st.st_size, st.st_mtim.tv_sec,
			   st.st_mtim.tv_nsec, src.base };
	sha256_init(&h);
	sha256_update(&h, "umlk-cache-1", 12);
	sha256_update(&h, id, sizeof(id));
	sha256_update(&h, &c.block_size, sizeof(c.block_size));
	sha256_update(&h, c.ofs, ((size_t)c.num_blocks + 1) * sizeof(*c.ofs));
	sha256_final(&h, d);
	sha256_hex(d, hex);
	snprintf(path, PATH_MAX, "%s/%.32s.img", dir, hex);
	free(dir);
	if (stat(path, &st) < 0 || (uint64_t)st.st_size != (uint64_t)c.num_blocks * c.block_size) {
		struct kout out;
		xout_open(&out, path);
		xcloop_extract(&c, &out, k_ncpus());
		/* Read-only: the kernel only reads it, and so should everyone. */
		if (fchmod(out.fd, 0444) < 0)
			xdie("%s: chmod:", path);
		xout_commit(&out);
	}
	cloop_close(&c);
	ksrc_close(&src);
	free(abs);
	return path;
}

static char *xcow_for(const struct boot_opts *o, const char *backing, int *temporary)
{
	char *path = xmalloc(PATH_MAX);

	*temporary = 0;
	if (o->cow) {
		snprintf(path, PATH_MAX, "%s", o->cow);
		if (access(path, F_OK) == 0) {
			struct ksrc s;
			struct cow c;
			xsrc_open(&s, path);
			if (cow_open(&c, &s) < 0)
				xdie("%s", k_errmsg());
			if (strcmp(c.backing, backing))
				xdie("%s: this COW file belongs to another image (%s), not %s",
				     path, c.backing, o->image);
			if (cow_check_backing(&c, backing) < 0)
				xdie("%s: %s", path, k_errmsg());
			cow_close(&c);
			ksrc_close(&s);
			return path;
		}
	} else {
		const char *dir = getenv("XDG_RUNTIME_DIR");
		if (!dir || access(dir, W_OK) < 0)
			dir = getenv("TMPDIR");
		if (!dir || access(dir, W_OK) < 0)
			dir = "/tmp";
		snprintf(path, PATH_MAX, "%s/umlk-%d-%lx.cow", dir, (int)getpid(),
			 (unsigned long)random());
		*temporary = 1;
	}
	xcow_create(path, backing, 0);
	if (*temporary)
		k_cleanup_add(path);
	return path;
}

/* eth0's MAC: --mac, else one derived from the COW file's path, so a guest
 * that keeps its COW file keeps its MAC (and its DHCP lease). */
static void guest_mac(const struct boot_opts *o, const char *cow, char out[18])
{
	uint8_t mac[6];

	if (o->mac) {
		if (net_parse_mac(o->mac, mac) < 0)
			xusage("--mac %s: not a MAC address (like 52:54:00:12:34:56)", o->mac);
		if (net_mac_is_group(mac))
			xusage("--mac %s: a multicast address cannot be a guest's", o->mac);
	} else {
		char abs[PATH_MAX];
		struct sha256 h;
		uint8_t d[32];
		if (!realpath(cow, abs))
			snprintf(abs, sizeof(abs), "%s", cow);
		sha256_init(&h);
		sha256_update(&h, "umlk-mac", 8);
		sha256_update(&h, abs, strlen(abs));
		sha256_final(&h, d);
		mac[0] = 0x52;          /* locally administered, unicast */
		memcpy(mac + 1, d, 5);
	}
	net_fmt_mac(mac, out);
}

/* ---- --net auto: the user's private network */

/* $XDG_RUNTIME_DIR/umlk, else /tmp/umlk-UID; ours alone (0700). */
void xboot_private_dir(char *dir, size_t cap)
{
	const char *x = getenv("XDG_RUNTIME_DIR");
	struct stat st;

	if (x && *x == '/' && access(x, W_OK) == 0)
		snprintf(dir, cap, "%s/umlk", x);
	else
		snprintf(dir, cap, "/tmp/umlk-%u", (unsigned)getuid());
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		xdie("%s:", dir);
	if (lstat(dir, &st) < 0)
		xdie("%s:", dir);
	if (!S_ISDIR(st.st_mode) || st.st_uid != getuid() || (st.st_mode & 077))
		xdie("%s: not a private directory of this user (it must be yours, mode 0700)", dir);
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
	pid_t pid = fork();
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
		char *a[] = { "umlk", "umlswitch", "-daemon", "-unix", ctl, "-pidfile", spid, "-log", slog,
			      "-idle-exit", "600", NULL };
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
	if (started && !quiet)
		fprintf(stderr, "umlk boot: private network on %s: DHCP from 10.0.2.2, guests get"
			" 10.0.2.15 and up (it stops 10 minutes after the last guest)\n", ctl);
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
	if (strlen(path) >= sizeof(((struct sockaddr_un *)0)->sun_path))
		xdie("--net %s: the socket path is too long for a Unix socket (%zu bytes, at most %zu)",
		     net, strlen(path), sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
	if (!sw_alive(path))
		xdie("--net %s: no switch answers there (start one: umlk umlswitch -unix %s -daemon)",
		     net, net);
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

/* Wait for the kernel to finish, reading the command's status from the
 * guest ("umlk-status N" on console line 2) when there is one. */
static int supervise(int status_fd, int tty_fd, int command, const char *mc)
{
	char text[256];
	size_t used = 0;
	int reported = -1, step = 0;
	long long next = 0;

	for (;;) {
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
		struct pollfd p[2] = { { .fd = status_fd, .events = POLLIN }, { .fd = tty_fd, .events = 0 } };
		/* SIGCHLD is blocked except inside ppoll(), which it interrupts:
		 * the kernel's exit is seen at once, and cannot slip in between
		 * the waitpid() above and the wait here. */
		struct timespec tick = { 0, 200 * 1000000L };
		int r = ppoll(p, 2, &tick, &run_mask);
		if (r > 0 && (p[1].revents & (POLLHUP | POLLERR | POLLNVAL))) {
			if (!stop_signal)
				stop_signal = SIGHUP;
			tty_fd = -1;
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

int xboot(const struct boot_opts *o)
{
	char *backing = xboot_backing(o->image);
	int tempcow;
	char *cow = xcow_for(o, backing, &tempcow);
	char buf[PATH_MAX + 64];

	struct guest_conf conf;
	memset(&conf, 0, sizeof(conf));
	conf.command = o->cmd != NULL;
	conf.stdin_tty = isatty(STDIN_FILENO);
	conf.argv = o->cmd;
	conf.dhcp = o->net && !o->no_dhcp;
	/* A temporary COW file means a MAC that will not come again: the
	 * guest gives its lease back when it powers off. */
	conf.release = conf.dhcp && !o->cow && !o->mac;
	for (int i = 0; i < o->nenv; i++)
		conf.env[conf.nenv++] = (char *)o->env[i];
	if (o->xcookie)
		snprintf(conf.xcookie, sizeof(conf.xcookie), "%s", o->xcookie);
	if (o->hostname)
		snprintf(conf.hostname, sizeof(conf.hostname), "%s", o->hostname);
	if (o->home && !realpath(o->home, conf.home))
		xdie("--home %s:", o->home);

	/* Before any descriptor meant for the kernel exists: --net auto may
	 * start daemons, which must not inherit them. */
	char *net_arg = NULL;
	if (o->net) {
		char mac[18], *sock = xboot_switch(o->net);
		guest_mac(o, cow, mac);
		net_arg = xmalloc(strlen(sock) + 64);
		sprintf(net_arg, "eth0=daemon,%s,unix,%s", mac, sock);
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
	char rundir[PATH_MAX - 64], mcsock[PATH_MAX];
	xboot_private_dir(rundir, sizeof(rundir));
	snprintf(mcsock, sizeof(mcsock), "%s/boot-%d/mconsole", rundir, (int)getpid());

	char *argv[32], *owned[16];
	int n = 0, nowned = 0;
	argv[n++] = "linux";
#define ARG(...) (snprintf(buf, sizeof(buf), __VA_ARGS__), argv[n++] = owned[nowned++] = xstrdup(buf))
	ARG("mem=%" PRIu64 "M", o->mem >> 20);
	ARG("ubda=%s,%s", cow, backing);
	ARG("initrd=/proc/self/fd/%d", mfd);
	ARG("uml_dir=%s", rundir);
	ARG("umid=boot-%d", (int)getpid());
	if (net_arg)
		argv[n++] = owned[nowned++] = net_arg;
	if (!o->verbose)
		argv[n++] = "quiet";
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
		argv[n++] = "console=tty0";
		argv[n++] = "con0=fd:0,fd:1";
	}
	argv[n] = NULL;
#undef ARG

	struct termios saved;
	int tty = isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &saved) == 0;
	/* The kernel and every process it makes live in a process group of
	 * their own, so that at the end nothing of it can be left behind.  If
	 * we own the terminal, that group gets it while the guest runs. */
	int fg = tty && tcgetpgrp(STDIN_FILENO) == getpgrp();
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
	child = fork();
	if (child < 0)
		xdie("fork:");
	if (child == 0) {
		setpgid(0, 0);
		sigprocmask(SIG_SETMASK, &old_mask, NULL);     /* UML needs its SIGCHLD */
		signal(SIGCHLD, SIG_DFL);
		kernel_exec(kfd, argv);
		k_warn("cannot run %s:", what);
		_exit(126);
	}
	setpgid(child, child);
	if (fg) {
		signal(SIGTTOU, SIG_IGN);
		tcsetpgrp(STDIN_FILENO, child);
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

	int reported = supervise(status_pipe[0], fg ? STDIN_FILENO : -1, conf.command, mcsock);
	int st = child_status;
	sigprocmask(SIG_SETMASK, &old_mask, NULL);
	signal(SIGCHLD, SIG_DFL);
	kill(-child, SIGKILL);          /* anything of the kernel's still there */
	if (fg)
		tcsetpgrp(STDIN_FILENO, getpgrp());
	if (tty)
		tcsetattr(STDIN_FILENO, TCSANOW, &saved);
	remove_umid_dir(mcsock);
	k_cleanup_run();        /* the temporary COW file */
	free(backing);
	free(cow);
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
