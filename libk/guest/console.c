/* The kernel running: its terminal, the escapes, stops, the command's
 * status (bootrun.h). */
#include "guest/bootrun.h"
#include "guest/guest.h"
#include "core/err.h"
#include "core/sys.h"
#include "core/xio.h"
#include "guest/jail.h"
#include "guest/mconsole.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

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

/* The supervisor's state: the status line, the input relayed, the
 * output pumped. */
struct sup {
	const struct kernel_run *k;
	int status_fd;
	char text[256];
	size_t used;
	int reported;
	int powered_off;                /* the guest's init is powering off, its disks synced */
	int tty_fd;                     /* our terminal's input, relayed; -1 when not (or hung up) */
	struct boot_escape esc;
	uint8_t pend[512];              /* input waiting for the guest to take it */
	size_t npend;
	int pump_open[KERNEL_PUMPS];
};
static int escaped;
static volatile sig_atomic_t winch = 1; /* the terminal's size to pass on (and at the start) */
static void on_winch(int sig) { (void)sig; winch = 1; }

/* The guest's output on pump I, moved to where it goes: 1, or -1 when
 * there was nothing for now, 0 at its end. */
static int pump(struct sup *s, int i)
{
	uint8_t buf[65536];
	ssize_t n = read(s->k->pumps[i].from, buf, sizeof(buf));
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return -1;
	if (n <= 0)
		return 0;               /* its end (a pty's is EIO once the kernel closed it) */
	if (full_write(s->k->pumps[i].to, buf, (size_t)n) < 0 && errno == EPIPE)
		return 0;
	return 1;
}

/* Our terminal's input, through the escapes, towards the guest. */
static void relay_input(struct sup *s)
{
	uint8_t in[256];
	ssize_t m = read(s->tty_fd, in, sizeof(in));
	if (m <= 0)
		return;
	if (!s->k->escapes) {
		memcpy(s->pend, in, (size_t)m);
		s->npend = (size_t)m;
		return;
	}
	int a = boot_escape(&s->esc, in, (size_t)m, s->pend, &s->npend);
	if (a == BOOT_ESC_HELP && write(STDOUT_FILENO, escape_help, sizeof(escape_help) - 1) < 0)
		s->npend = 0;
	if (a == BOOT_ESC_HALT) {
		static const char msg[] = "\r\numlk: ~. halting the guest\r\n";
		if (write(STDERR_FILENO, msg, sizeof(msg) - 1) < 0)
			s->npend = 0;
		escaped = 1;
	}
}

/* The command's status line (console line 2): "umlk-status N". */
static void read_status(struct sup *s)
{
	ssize_t n = read(s->status_fd, s->text + s->used, sizeof(s->text) - 1 - s->used);
	if (n <= 0) {
		close(s->status_fd);    /* the kernel is going: wait for it */
		s->status_fd = -1;
		return;
	}
	s->used += (size_t)n;
	s->text[s->used] = 0;
	char *s2 = strstr(s->text, "umlk-status ");
	if (s2 && strchr(s2, '\n'))
		s->reported = atoi(s2 + 12);
	/* (Whole lines: the console ends them with "\r\n".) */
	char *po = strstr(s->text, GUEST_POWEROFF_MARK);
	if (po && (po[sizeof(GUEST_POWEROFF_MARK) - 1] == '\r' || po[sizeof(GUEST_POWEROFF_MARK) - 1] == '\n'))
		s->powered_off = 1;
	if (s->used == sizeof(s->text) - 1)
		s->used = 0;
}

/* Told to stop, a guest stopped on a full disk: the kernel's end, harder
 * as time passes (halt_step). */
static void stops(struct sup *s, int *step, long long *next, int *killed)
{
	if (escaped && !stop_signal) {
		stop_signal = -1;       /* halted as for a signal; umlk exits 0 */
		*next = 0;
	}
	if (stop_signal && k_now_ms() >= *next && *step < 3) {
		halt_step(++*step, s->k->command, s->k->mcsock);
		*next = k_now_ms() + (*step == 1 ? 10000 : 5000);
	}
	if (s->k->kill_now && __atomic_load_n(s->k->kill_now, __ATOMIC_RELAXED) && !*killed) {
		kill(-child, SIGKILL);  /* as a power cut: what was written stays */
		*killed = 1;
	}
}

/* Wait for the kernel to finish: read the command's status from the
 * guest when there is one, relay our terminal's input (through the
 * escapes) and pump the guest's output, pass the terminal's size on. */
static int supervise(const struct kernel_run *k, int *powered_off)
{
	struct sup s = { .k = k, .status_fd = k->status_fd, .reported = -1, .esc = { .line_start = 1 },
			 .tty_fd = k->in_fd >= 0 ? STDIN_FILENO : -1 };
	int step = 0, killed = 0;
	long long next = 0;

	for (int i = 0; i < k->npumps; i++)
		s.pump_open[i] = 1;
	for (;;) {
		stops(&s, &step, &next, &killed);
		int st;
		if (waitpid(child, &st, WNOHANG) == child) {
			child_status = st;
			break;
		}
		if (winch && k->in_fd >= 0) {
			struct winsize ws;
			winch = 0;
			if (ioctl(STDIN_FILENO, TIOCGWINSZ, &ws) == 0)
				ioctl(k->in_fd, TIOCSWINSZ, &ws);
		}
		int relaying = s.tty_fd >= 0 && !stop_signal;
		struct pollfd p[3 + KERNEL_PUMPS] = {
			{ .fd = s.status_fd, .events = POLLIN },
			/* (watched for its hangup even when not read) */
			{ .fd = s.tty_fd, .events = relaying && !s.npend ? POLLIN : 0 },
			{ .fd = relaying && s.npend ? k->in_fd : -1, .events = POLLOUT },
		};
		for (int i = 0; i < k->npumps; i++)
			p[3 + i] = (struct pollfd){ .fd = s.pump_open[i] ? k->pumps[i].from : -1, .events = POLLIN };
		/* SIGCHLD is blocked except inside ppoll(), which it interrupts:
		 * the kernel's exit is seen at once, and cannot slip in between
		 * the waitpid() above and the wait here. */
		struct timespec tick = { 0, 200 * 1000000L };
		int r = ppoll(p, (nfds_t)(3 + k->npumps), &tick, &run_mask);
		if (r <= 0)
			continue;
		if (p[1].revents & (POLLHUP | POLLERR | POLLNVAL)) {
			if (!stop_signal)
				stop_signal = SIGHUP;
			s.tty_fd = -1;
		} else if (relaying && (p[1].revents & POLLIN)) {
			relay_input(&s);
		}
		if (relaying && s.npend) {
			/* The guest reads when it can; the terminal waits meanwhile. */
			ssize_t w = write(k->in_fd, s.pend, s.npend);
			if (w > 0) {
				memmove(s.pend, s.pend + w, s.npend - (size_t)w);
				s.npend -= (size_t)w;
			}
		}
		for (int i = 0; i < k->npumps; i++)
			if ((p[3 + i].revents & (POLLIN | POLLHUP | POLLERR)) && pump(&s, i) == 0)
				s.pump_open[i] = 0;
		if (p[0].revents & (POLLIN | POLLHUP))
			read_status(&s);
		if (s.powered_off && !killed) {
			/* Its disks are synced and unmounted: the kernel's own
			 * power-off would only make us wait. */
			kill(-child, SIGKILL);
			killed = 1;
		}
	}
	/* What the kernel wrote before it went is still to be shown. */
	for (int i = 0; i < k->npumps; i++) {
		int fl = fcntl(k->pumps[i].from, F_GETFL);
		fcntl(k->pumps[i].from, F_SETFL, fl | O_NONBLOCK);
		while (s.pump_open[i] && pump(&s, i) > 0)
			;
	}
	if (s.status_fd >= 0)
		close(s.status_fd);
	*powered_off = s.powered_off;
	return s.reported;
}

void xkernel_run(struct kernel_run *k)
{
	struct termios saved;
	int tty = isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &saved) == 0;
	sigset_t chld, old_mask;
	struct sigaction sc;
	memset(&sc, 0, sizeof(sc));
	sc.sa_handler = on_child;       /* no SA_RESTART: interrupts ppoll() */
	sigaction(SIGCHLD, &sc, NULL);
	sc.sa_handler = on_winch;
	sigaction(SIGWINCH, &sc, NULL);
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
		/* The kernel and everything it makes: a process group of their
		 * own, so that at the end nothing of it can be left behind. */
		setpgid(0, 0);
		/* Its disk is served from this process: the kernel does not
		 * outlive it (a SIGKILL of umlk included). */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() == 1)
			_exit(126);
		sigprocmask(SIG_SETMASK, &old_mask, NULL);     /* UML needs its SIGCHLD */
		signal(SIGCHLD, SIG_DFL);
		signal(SIGWINCH, SIG_DFL);
		/* The kernel's own stdio: never our terminal. */
		int null = open("/dev/null", O_RDWR | O_CLOEXEC);
		if (null < 0 || dup2(null, 0) < 0 || dup2(k->stdio, 1) < 0 || dup2(k->stdio, 2) < 0)
			_exit(126);
		xjail_exec(k->jail, k->kfd, k->argv);
	}
	setpgid(child, child);
	if (k->in_fd >= 0) {
		/* Raw: every byte, Ctrl-C and Ctrl-Z included, is the guest's. */
		struct termios raw = saved;
		cfmakeraw(&raw);
		signal(SIGTTOU, SIG_IGN);
		tcsetattr(STDIN_FILENO, TCSANOW, &raw);
	}
	signal(SIGPIPE, SIG_IGN);       /* a kernel gone: its pipes' ends, not ours */
	close(k->kfd);
	for (int i = 0; i < k->nchild_fds; i++)
		close(k->child_fds[i]);
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop_signal;         /* no SA_RESTART: poll() returns */
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);

	k->reported = supervise(k, &k->powered_off);
	k->wait_status = child_status;
	k->stop_signal = stop_signal > 0 ? stop_signal : 0;
	k->escaped = escaped;
	sigprocmask(SIG_SETMASK, &old_mask, NULL);
	signal(SIGCHLD, SIG_DFL);
	signal(SIGWINCH, SIG_DFL);
	kill(-child, SIGKILL);          /* anything of the kernel's still there */
	if (tty)
		tcsetattr(STDIN_FILENO, TCSANOW, &saved);
}

/* UML leaves UML_DIR/UMID behind when it does not exit cleanly. */
void remove_umid_dir(const char *mc)
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
