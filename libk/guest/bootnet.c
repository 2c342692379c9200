/* --net: the switch, --net auto's private network, the run directory,
 * eth0's MAC (bootrun.h). */
#include "guest/bootrun.h"
#include "core/err.h"
#include "core/progress.h"
#include "core/sys.h"
#include "core/xio.h"
#include "net/net.h"
#include "net/netif.h"
#include "net/switchproto.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

/* eth0's MAC: --mac, else one derived from the COW file's path, so a guest
 * that keeps its COW file keeps its MAC (and its DHCP lease); with a
 * temporary COW file, a random one. */
void xguest_mac(const struct boot_opts *o, char out[18])
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

void boot_run_dir_done(void)
{
	if (run_dir_own[0] && rmdir(run_dir_own) < 0 && errno != ENOENT)
		k_warn("%s:", run_dir_own);
	run_dir_own[0] = 0;
}

/* NAME in the directory DFD (or AT_FDCWD), a directory, opened and locked
 * (flock) for as long as the descriptor stays open: -1 when it is not a
 * directory, is locked by someone else, or was removed or replaced while
 * we locked it. */
static int lock_dir(int dfd, const char *name)
{
	int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	struct stat a, b;

	if (fd < 0)
		return -1;
	if (flock(fd, LOCK_EX | LOCK_NB) < 0 || fstat(fd, &a) < 0 ||
	    fstatat(dfd, name, &b, AT_SYMLINK_NOFOLLOW) < 0 || a.st_dev != b.st_dev || a.st_ino != b.st_ino) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Remove the directories of runs that died without removing theirs:
 * boot-PID[-SUFFIX] whose pid is gone and which no one holds locked.
 * (A run of an umlk from before the lock holds none, but its pid is
 * alive while it runs.) */
static void sweep_dead_runs(const char *rundir)
{
	DIR *d = opendir(rundir);
	struct dirent *de;

	if (!d)
		return;
	while ((de = readdir(d))) {
		char *end;
		if (strncmp(de->d_name, "boot-", 5))
			continue;
		long pid = strtol(de->d_name + 5, &end, 10);
		if (end == de->d_name + 5 || (*end && *end != '-') || pid <= 0 || pid > INT_MAX ||
		    pid == getpid() || kill((pid_t)pid, 0) == 0 || errno != ESRCH)
			continue;
		int fd = lock_dir(dirfd(d), de->d_name);
		if (fd < 0)
			continue;
		if (k_clear_dir(fd) == 0)
			unlinkat(dirfd(d), de->d_name, AT_REMOVEDIR);
		close(fd);
	}
	closedir(d);
}

int xboot_own_dir(const char *rundir, char *dir, size_t cap)
{
	sweep_dead_runs(rundir);
	if ((size_t)snprintf(dir, cap, "%s/boot-%d", rundir, (int)getpid()) >= cap)
		xdie("%s: path too long", rundir);
	int made = mkdir(dir, 0700) == 0;
	if (!made && errno != EEXIST)
		xdie("%s:", dir);
	int fd = lock_dir(AT_FDCWD, dir);
	if (fd >= 0) {
		/* Ours, or left by a dead run that had our pid: emptied. */
		if (!made && k_clear_dir(fd) < 0)
			xdie("%s: left by a run that died, and it cannot be emptied:", dir);
		return fd;
	}
	/* A live run's (our pid in another pid namespace): a name of our own. */
	if ((size_t)snprintf(dir, cap, "%s/boot-%d-XXXXXX", rundir, (int)getpid()) >= cap)
		xdie("%s: path too long", rundir);
	if (!mkdtemp(dir) || (fd = lock_dir(AT_FDCWD, dir)) < 0)
		xdie("%s:", dir);
	return fd;
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
static void xrun_self(char *const argv[], const char *log)
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

static char *xauto_network(int quiet)
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
		xrun_self(a, slog);
		started = 1;
	}
	if (!pidfile_alive(dpid, "dhcpd")) {
		char *a[] = { "umlk", "dhcpd", "--daemon", "--switch", ctl, "--lease-file", leases,
			      "--pidfile", dpid, "--log", dlog, NULL };
		xrun_self(a, dlog);
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
		return xauto_network(k_quiet);
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
