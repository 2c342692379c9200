#include "guest/xnest.h"
#include "core/daemon.h"
#include "core/err.h"
#include "core/sys.h"
#include "core/xio.h"
#include "guest/boot.h"
#include "guest/cookie.h"
#include "net/dhcpc.h"
#include "net/netif.h"
#include "remote/http.h"
#include "net/tcpgw.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* What runs in the guest when no program is named: the image's session. */
static const char session[] =
	"if [ -x \"$HOME/.xsession\" ]; then exec \"$HOME/.xsession\"; "
	"elif [ -x /etc/X11/Xsession ]; then exec /etc/X11/Xsession; "
	"else exec xterm; fi";

static volatile sig_atomic_t stop_sig;
static void on_stop(int sig) { stop_sig = sig; }

/* PROG found in $PATH: its path in BUF, else NULL. */
static const char *in_path(const char *prog, char *buf, size_t cap)
{
	const char *path = getenv("PATH");

	if (!path || !*path)
		path = "/usr/local/bin:/usr/bin:/bin";
	while (*path) {
		size_t n = strcspn(path, ":");
		snprintf(buf, cap, "%.*s/%s", (int)n, path, prog);
		if (n && access(buf, X_OK) == 0)
			return buf;
		path += n + (path[n] == ':');
	}
	return NULL;
}

/* The cookie file, whole or not at all, readable by its owner only. */
static void xwrite_auth(const char *path, int display, const uint8_t cookie[COOKIE_LEN])
{
	uint8_t e[128];
	struct kout out;
	size_t n = cookie_entry(e, sizeof(e), display, cookie);

	xout_open(&out, path);
	if (fchmod(out.fd, 0600) < 0 || full_write(out.fd, e, n) < 0)
		xdie("%s:", path);
	xout_commit(&out);
}

/* Start the X server; returns its pid, and the display it chose in *DISPLAY. */
static pid_t xstart_server(const char *server, int xephyr, const char *auth, const char *geometry,
			  const char *title, const char *log, int *display)
{
	int p[2];
	char fdnum[16];

	if (pipe(p) < 0)
		xdie("pipe:");
	fcntl(p[0], F_SETFD, FD_CLOEXEC);
	snprintf(fdnum, sizeof(fdnum), "%d", p[1]);
	pid_t pid = k_fork();
	if (pid < 0)
		xdie("fork:");
	if (pid == 0) {
		int l = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (l >= 0) {
			dup2(l, STDOUT_FILENO);
			dup2(l, STDERR_FILENO);
		}
		int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
		if (null >= 0)
			dup2(null, STDIN_FILENO);
		setpgid(0, 0);          /* Ctrl-C in the terminal is ours to handle */
		/* The server picks a free display and writes its number to the
		 * pipe once it accepts connections; only the Unix socket.  No
		 * reset when its last client leaves: a reset drops every
		 * connection, also one that has just come in (a guest's first X
		 * client, as another client quits). */
		if (xephyr)
			execl(server, "Xephyr", "-displayfd", fdnum, "-auth", auth, "-screen", geometry,
			      "-title", title, "-nolisten", "tcp", "-noreset", "-br", (char *)NULL);
		else
			execl(server, "Xnest", "-displayfd", fdnum, "-auth", auth, "-geometry", geometry,
			      "-name", title, "-nolisten", "tcp", "-noreset", "-br", (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	char buf[32];
	size_t used = 0;
	long long until = k_now_ms() + 15000;
	while (used < sizeof(buf) - 1 && !memchr(buf, '\n', used)) {
		struct pollfd pf = { .fd = p[0], .events = POLLIN };
		long long left = until - k_now_ms();
		if (left <= 0 || poll(&pf, 1, (int)left) <= 0)
			break;
		ssize_t r = read(p[0], buf + used, sizeof(buf) - 1 - used);
		if (r <= 0)
			break;
		used += (size_t)r;
	}
	close(p[0]);
	buf[used] = 0;
	if (!used || !memchr(buf, '\n', used)) {
		kill(pid, SIGTERM);
		waitpid(pid, NULL, 0);
		char tail[600] = "";
		FILE *f = fopen(log, "re");
		if (f) {
			size_t n = fread(tail, 1, sizeof(tail) - 1, f);
			tail[n] = 0;
			fclose(f);
			for (char *c = tail; *c; c++)
				if (*c == '\n')
					*c = ' ';
		}
		xdie("%s did not start on %s: %s", server, getenv("DISPLAY"), tail[0] ? tail : "(no output)");
	}
	*display = atoi(buf);
	return pid;
}

static void stop_server(pid_t pid)
{
	kill(pid, SIGTERM);
	for (int i = 0; i < 40; i++) {
		if (waitpid(pid, NULL, WNOHANG) == pid)
			return;
		usleep(50000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

static pid_t xstart_guest(const struct xnest_opts *o, const char *sock, const char *display_env,
			 const char *cookie_hex)
{
	const char *a[48];
	int n = 0;

	a[n++] = "umlk";
	a[n++] = "boot";
	a[n++] = "--net";
	a[n++] = sock;
	a[n++] = "--env";
	a[n++] = display_env;
	a[n++] = "--x11-cookie";
	a[n++] = cookie_hex;
#define PASS(opt, v) do { if (v) { a[n++] = opt; a[n++] = v; } } while (0)
	PASS("--cow", o->cow);
	PASS("--kernel", o->kernel);
	PASS("--cpus", o->cpus);
	if (o->trusted)
		a[n++] = "--trusted";
	if (o->isolated)
		a[n++] = "--isolated";
	if (o->no_jail)
		a[n++] = "--no-jail";
	PASS("--init", o->init);
	PASS("--home", o->home);
	PASS("--ssh-command", o->ssh_command);
	PASS("--ssh-timeout", o->ssh_timeout);
	PASS("--disk-full-wait", o->disk_full_wait);
	PASS("--mem", o->mem);
	PASS("--record-profile", o->record_profile);
#undef PASS
	if (o->verbose)
		a[n++] = "--verbose";
	a[n++] = o->image;
	a[n++] = "--";
	a[n++] = "sh";
	a[n++] = "-c";
	a[n++] = o->run ? o->run : session;
	a[n] = NULL;
	fflush(NULL);
	pid_t pid = k_fork();
	if (pid < 0)
		xdie("fork:");
	if (pid == 0) {
		signal(SIGINT, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		execv("/proc/self/exe", (char *const *)a);
		_exit(127);
	}
	return pid;
}

/* The X server to run: Xnest, else (or with --xephyr) Xephyr; its path
 * in SERVER; 1 when it is Xephyr.  Everything that can be wrong is said
 * before anything starts. */
static int xpick_server(const struct xnest_opts *o, char *server, size_t cap)
{
	const char *host = getenv("DISPLAY");

	if (!host || !*host)
		xdie("DISPLAY is not set: there is no X display on this host to open the guest's"
		     " window on (run it in an X session, or under Xvfb)");
	if (!url_is_http(o->image) && access(o->image, R_OK) < 0)
		xdie("%s:", o->image);          /* (a URL is checked by boot, before the kernel starts) */
	if (o->xephyr) {
		if (!in_path("Xephyr", server, cap))
			xdie("Xephyr is not installed (Debian: apt-get install xserver-xephyr)");
		return 1;
	}
	if (in_path("Xnest", server, cap))
		return 0;
	if (!in_path("Xephyr", server, cap))
		xdie("neither Xnest nor Xephyr is installed (Debian: apt-get install xnest)");
	k_warn("Xnest is not installed: using Xephyr");
	return 1;
}

/* The gateway: a port of our own on the guest's switch SOCK, with an
 * address from its DHCP server. */
static void xgateway_open(const char *sock, struct netif *ni, struct dhcpc_lease *lease)
{
	uint8_t mac[6];
	char name[PATH_MAX + 32];

	snprintf(name, sizeof(name), "%s:%d", sock, (int)getpid());
	netif_mac_from(name, "umlk-xgw", mac);
	if (netif_open_switch(ni, sock, mac, "xgw") < 0)
		xdie("%s", k_errmsg());
	if (dhcpc_acquire(ni, "umlk-xgw", 10000, lease) < 0)
		xdie("no network path to the guest: %s (the gateway between the guest and the"
		     " display needs an address; start umlk dhcpd on the switch, or use --net auto)",
		     k_errmsg());
	ni->ip = lease->ip;
	ni->mask = lease->mask;
}

/* Relay X between the guest and the display until the guest's boot (GPID)
 * ends: the window closing (XPID gone) or a stop signal halts the guest.
 * Returns boot's exit status; *WINDOW_CLOSED when the window went first. */
static int xrelay(struct tcpgw *g, struct netif *ni, struct dhcpc_lease *lease, pid_t gpid, pid_t xpid,
		 int *window_closed)
{
	int status = -1, forwarded = 0;
	long long renew_at = k_now_ms() + (long long)(lease->t1 ? lease->t1 : 1800) * 1000;

	*window_closed = 0;
	for (;;) {
		struct pollfd pf[300];
		int timeout;
		int n = tcpgw_pollfds(g, pf, 300, &timeout);
		if (timeout < 0 || timeout > 200)
			timeout = 200;
		if (poll(pf, (nfds_t)n, timeout) < 0 && errno != EINTR)
			xdie("poll:");
		if (tcpgw_run(g, pf, n) < 0 && !forwarded) {
			k_warn("%s: stopping the guest", k_errmsg());
			kill(gpid, SIGTERM);
			forwarded = 1;
		}
		if (k_now_ms() >= renew_at) {
			if (dhcpc_renew(ni, lease, 3000) < 0)
				k_warn("%s", k_errmsg());
			renew_at = k_now_ms() + (long long)(lease->t1 ? lease->t1 : 60) * 1000;
		}
		int st;
		if (waitpid(gpid, &st, WNOHANG) == gpid) {
			status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
			break;
		}
		if (!*window_closed && waitpid(xpid, &st, WNOHANG) == xpid) {
			/* The window closed (or the server died): halt the guest. */
			*window_closed = 1;
			if (!forwarded) {
				k_warn("the window closed: shutting the guest down");
				kill(gpid, SIGTERM);
				forwarded = 1;
			}
		}
		if (stop_sig && !forwarded) {
			kill(gpid, SIGTERM);    /* umlk boot halts the guest cleanly */
			forwarded = 1;
		}
	}
	return status;
}

int xnest_launch(const struct xnest_opts *o)
{
	char server[PATH_MAX], dir[PATH_MAX - 64], auth[PATH_MAX], log[PATH_MAX], xsock[64];
	int xephyr = xpick_server(o, server, sizeof(server));
	char *sock = xboot_switch(o->net);
	struct netif ni;
	struct dhcpc_lease lease;
	xgateway_open(sock, &ni, &lease);

	/* A cookie only this guest is given. */
	uint8_t cookie[COOKIE_LEN];
	char hex[2 * COOKIE_LEN + 1];
	if (cookie_new(cookie) < 0)
		xdie("%s", k_errmsg());
	cookie_hex(cookie, hex);
	xboot_run_dir(dir, sizeof(dir));
	snprintf(auth, sizeof(auth), "%s/xnest-%d.auth", dir, (int)getpid());
	snprintf(log, sizeof(log), "%s/xnest-%d.log", dir, (int)getpid());
	xwrite_auth(auth, 0, cookie);
	if (k_cleanup_add(auth) < 0)
		xdie("%s", k_errmsg());

	char title[300];
	const char *base = strrchr(o->image, '/');
	if (o->title)
		snprintf(title, sizeof(title), "%s", o->title);
	else
		snprintf(title, sizeof(title), "umlk: %s", base ? base + 1 : o->image);
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);

	int display;
	pid_t xpid = xstart_server(server, xephyr, auth, o->geometry, title, log, &display);
	/* The same file serves host clients that are given it: now with the
	 * display's number, as libXau matches it. */
	xwrite_auth(auth, display, cookie);
	snprintf(xsock, sizeof(xsock), "/tmp/.X11-unix/X%d", display);
	struct tcpgw *g = tcpgw_new(&ni);
	if (!g || tcpgw_listen(g, (uint16_t)(6000 + display), xsock) < 0)
		xdie("%s", g ? k_errmsg() : "out of memory");
	if (o->verbose)
		tcpgw_set_log(g, k_log);
	char gw[16], denv[64];
	net_fmt_ip(ni.ip, gw);
	snprintf(denv, sizeof(denv), "DISPLAY=%s:%d", gw, display);
	fprintf(stderr, "umlk xnest-launch: the guest's display is :%d in a window on %s"
		" (guests reach it at %s:%d; cookie in %s)\n", display, getenv("DISPLAY"), gw, display, auth);

	pid_t gpid = xstart_guest(o, sock, denv, hex);
	int window_closed;
	int status = xrelay(g, &ni, &lease, gpid, xpid, &window_closed);
	if (!window_closed)
		stop_server(xpid);
	if (!tcpgw_accepted(g))
		k_warn("the guest never connected to the display at %s:%d (no network in the guest,"
		       " or its X program failed?)", gw, display);
	tcpgw_free(g);
	if (dhcpc_release(&ni, &lease) < 0)     /* this gateway's MAC will not come again */
		k_warn("%s", k_errmsg());
	netif_close(&ni);
	free(sock);
	unlink(log);
	k_cleanup_run();                /* the cookie file */
	boot_run_dir_done();
	if (stop_sig)
		return 128 + stop_sig;
	if (window_closed)
		return 0;
	return status;
}
