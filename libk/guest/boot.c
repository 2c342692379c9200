/* 'umlk boot', step by step (boot.h; the parts are listed in bootrun.h). */
#include "guest/bootrun.h"
#include "core/err.h"
#include "core/pool.h"
#include "core/progress.h"
#include "core/sys.h"
#include "core/xio.h"
#include "guest/payload.h"
#include "remote/remote.h"

#include <errno.h>
#include <fcntl.h>
#include <pty.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* The mode for O with JAIL: the fast mode (1) or isolated (0), and the
 * CPUs; its description in WHAT. */
static int mode_of(const struct boot_opts *o, const struct jail *jail, int *cpus, char *what, size_t cap)
{
	int fast = !o->isolated && (o->trusted || jail_complete(jail));
	int n = k_ncpus();
	*cpus = o->cpus ? o->cpus : !fast ? 1 : n < 1 ? 1 : n > 4 ? 4 : n;
	snprintf(what, cap, fast ? "fast (seccomp stubs, %d CPUs)" : "isolated (ptrace mode, %d CPU)", *cpus);
	return fast;
}

/* --info: what the image holds and what a boot would pass. */
static int xboot_info(const struct boot_opts *o)
{
	struct image im;
	struct bsrc *remote;
	char sz[32];

	ximage_open(o, &im, 0, &remote);
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
	struct jail jail = { .enabled = !o->no_jail };
	char mode[64], what[512];
	int cpus;
	jail_probe(&jail);
	mode_of(o, &jail, &cpus, mode, sizeof(mode));
	jail_describe(&jail, what, sizeof(what));
	printf("mode: %s\n", mode);
	printf("jail: %s%s%s%s\n", what, jail.missing[0] && jail.enabled ? " (missing here: " : "",
	       jail.enabled ? jail.missing : "", jail.missing[0] && jail.enabled ? ")" : "");
	image_close(&im);
	return 0;
}

/* The mode and the jail.  The fast mode (seccomp stubs, CPUs) is the
 * default where the jail is complete; --isolated asks for ptrace mode on
 * one CPU, --trusted for the fast mode even without a complete jail. */
struct boot;
static void xmode(struct boot *b);

/* One boot's state, filled step by step. */
#define BOOT_EXTRA_DISKS (LIVE_LAYERS_MAX + 2)
#define BOOT_ARGS_MAX 96
struct boot {
	const struct boot_opts *o;
	struct image im;
	struct bsrc *remote;            /* the image's web server, or NULL */
	struct bsrc *disk, *upper;      /* the root disk (vda); a read-only root's upper layer */
	struct hold_policy hold;        /* their writes, and the home image's, wait for room */
	struct home home;
	struct guest_conf conf;
	char *net_arg;                  /* virtio_uml.device= for eth0, or NULL */
	char netsock[PATH_MAX];         /* its switch's socket, or "" */
	int mfd;                        /* the initramfs */
	int kfd;                        /* the kernel */
	const char *kwhat;
	int status_pipe[2];
	struct jail jail;
	int trusted, cpus;              /* the mode: seccomp stubs; guest CPUs */
	char hostcpus[96];              /* hostcpus=, or "" */
	int cpu_claim;                  /* the lock of the host CPU its CPU 0 takes, or -1 */
	int dev_cpu;                    /* the host CPU + 1 its devices' threads stay on; 0: any */
	/* The console lines, for the kernel: descriptors that are never our
	 * terminal (a pty of our own, or pipes we empty into it). */
	struct kernel_run k;
	/* The boot's own directory in the run directory: its sockets, and
	 * UML's (uml_dir): all the jail shows the kernel of the host. */
	char rundir[PATH_MAX - 128], dir[PATH_MAX - 64], mcsock[PATH_MAX], vdasock[PATH_MAX];
	int dirlock;                    /* held on dir while we run (xboot_own_dir) */
	/* The disks' servers: */
	struct pool *pool;
	struct vblk vda;
	struct disk_server qsd;
	int use_qsd;
	char homearg[PATH_MAX + 64];
	struct vblk extra[BOOT_EXTRA_DISKS];
	char extrasock[BOOT_EXTRA_DISKS][PATH_MAX];
	int nextra;
	/* The kernel's arguments: */
	char *argv[BOOT_ARGS_MAX];
	int argc;
	char *owned[BOOT_ARGS_MAX];
	int nowned;
	char *params;
};

/* The first host CPU of MAY that no other guest of this user holds for
 * its CPU 0 (a lock in the user's private directory, held while this umlk
 * runs), or -1 when every one is held or none can be (no private
 * directory: a run directory of this run's own is no place to meet other
 * guests, and is removed at the end). */
static int claim_host_cpu(struct boot *b, const cpu_set_t *may)
{
	char dir[PATH_MAX - 32];
	if (k_private_dir(dir, sizeof(dir)) < 0)
		return -1;
	for (int c = 0; c < CPU_SETSIZE; c++) {
		if (!CPU_ISSET(c, may))
			continue;
		char path[PATH_MAX];
		snprintf(path, sizeof(path), "%s/cpu-%d.lock", dir, c);
		int fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd < 0)
			return -1;
		if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
			b->cpu_claim = fd;
			return c;
		}
		close(fd);
	}
	return -1;
}

/* The host CPUs the kernel is kept on.  Each system call and page fault
 * of a guest's process is a hand-off between two host processes (its stub
 * or tracee, and the kernel's CPU thread), and the host's scheduler wakes
 * each on an idle CPU of its own: on a host that is itself a virtual
 * machine, waking a sleeping CPU costs tens of microseconds, ten times
 * the hand-off (100,000 system calls in the guest: 9.5 s isolated, 1.0 s
 * kept on one CPU, on this project's machine).  So a guest of one CPU
 * stays on one host CPU, and a guest of several keeps each CPU on a host
 * CPU of its own (kernel/patches/0005; hostcpus= says which, 0006).  By
 * default CPU 0 takes the first host CPU no other guest of the user has
 * taken for its own CPU 0 (where a guest's interrupts are handled: two
 * guests talking through the switch on one host CPU halve their network),
 * or the one umlk runs on when every one is taken.  The threads serving
 * its disks and home stay on that CPU too: a request the guest waits for
 * is the same hand-off (the kick, the reply's interrupt), and the home's
 * requests came back three times sooner (4000 lookups: 1.03 s, 0.27 s
 * kept together). */
static void xhost_cpus(struct boot *b)
{
	const struct boot_opts *o = b->o;
	cpu_set_t may;

	b->jail.pin_cpu = 0;
	if (o->host_cpu == BOOT_HOST_CPU_NONE || sched_getaffinity(0, sizeof(may), &may) < 0)
		return;
	if (o->host_cpu > 0) {
		if (o->host_cpu > CPU_SETSIZE || !CPU_ISSET(o->host_cpu - 1, &may))
			xusage("--host-cpu %d: not a CPU this process may run on", o->host_cpu - 1);
		b->jail.pin_cpu = o->host_cpu;
		b->dev_cpu = o->host_cpu;
	} else if (CPU_COUNT(&may) > 1) {
		int first = claim_host_cpu(b, &may);
		if (first < 0)
			first = sched_getcpu();
		if (first < 0 || first >= CPU_SETSIZE || !CPU_ISSET(first, &may))
			return;
		b->dev_cpu = first + 1;
		if (b->cpus == 1) {
			b->jail.pin_cpu = first + 1;
		} else {
			/* From the first, the others in order, wrapping round. */
			size_t len = (size_t)snprintf(b->hostcpus, sizeof(b->hostcpus), "hostcpus=%d", first);
			for (int i = 1, c = first; i < b->cpus && i < CPU_COUNT(&may); i++) {
				do
					c = (c + 1) % CPU_SETSIZE;
				while (!CPU_ISSET(c, &may));
				int w = snprintf(b->hostcpus + len, sizeof(b->hostcpus) - len, ",%d", c);
				if (w < 0 || (size_t)w >= sizeof(b->hostcpus) - len) {
					b->hostcpus[len] = '\0';
					break;
				}
				len += (size_t)w;
			}
		}
	}
	if (!o->verbose)
		return;
	if (b->jail.pin_cpu)
		fprintf(stderr, "umlk boot: host CPU: %d only\n", b->jail.pin_cpu - 1);
	else if (b->hostcpus[0])
		fprintf(stderr, "umlk boot: host CPUs: %s (CPU 0 on the first)\n", strchr(b->hostcpus, '=') + 1);
	else
		fprintf(stderr, "umlk boot: host CPU: any\n");
}

/* The kernel gone, umlk's own end on the host CPU of the guest's CPU 0:
 * the devices' threads it stops and joins are there, and so is the next
 * guest's CPU 0 (the first host CPU no other guest holds, this one again
 * when it is alone).  The guest's memory is freed at this end, when
 * umlk's mapping, the last, goes; the host keeps freed huge pages in a
 * list of the CPU that freed them, and the next kernel, faulting in its
 * memory map there (patch 0018; 0019 has it start there), takes them
 * back from it.  Freed on another CPU, they were not in that list, and
 * the next kernel took its huge pages from the host's common pool, which
 * on this project's machine (its hypervisor takes back free 2 MiB blocks)
 * often gave cold ones, 512 faults in the hypervisor each: a third of the
 * boots or more were 5 to 20 ms slower.  boot -- true: the default mode
 * 3%, --isolated 2% faster (README, "where the default mode's slow boots
 * come from"). */
static void end_on_device_cpu(const struct boot *b)
{
	cpu_set_t set;

	if (!b->dev_cpu)
		return;
	CPU_ZERO(&set);
	CPU_SET(b->dev_cpu - 1, &set);
	sched_setaffinity(0, sizeof(set), &set);
}

/* The devices' threads on the host CPU of the guest's CPU 0 (above).  A
 * thread that cannot be moved serves from where it is. */
static void devices_keep_on_cpu(struct boot *b)
{
	if (!b->dev_cpu)
		return;
	int cpu = b->dev_cpu - 1, e = 0;
	if (!b->use_qsd)
		e |= vu_keep_on_cpu(&b->vda.srv, cpu);
	for (int i = 0; i < b->nextra; i++)
		e |= vu_keep_on_cpu(&b->extra[i].srv, cpu);
	e |= home_keep_on_cpu(&b->home, cpu);
	if (b->o->verbose)
		fprintf(stderr, "umlk boot: devices served on host CPU %d%s\n", cpu, e ? " (not every one)" : "");
}

static void xmode(struct boot *b)
{
	const struct boot_opts *o = b->o;
	char what[512], mode[64];

	b->jail.own_session = o->net != NULL;   /* (why: jail.c, xkernel) */
	jail_probe_finish(&b->jail);            /* (started by xboot) */
	int complete = jail_complete(&b->jail);
	b->trusted = mode_of(o, &b->jail, &b->cpus, mode, sizeof(mode));
	if (o->cpus > 1 && !b->trusted)
		xusage("--cpus %d: more than one CPU needs the fast mode, which %s", o->cpus, o->isolated ?
		       "--isolated turns off" : "needs a complete jail here, or --trusted (see --help)");
	jail_describe(&b->jail, what, sizeof(what));
	if (o->no_jail)
		k_warn("--no-jail: no jail for the kernel: it runs as you, with your files, network, terminal"
		       " and processes in its reach (for debugging only)");
	else if (!complete && !k_quiet)
		k_warn("the kernel's jail is not complete here (%s missing): the guest runs %s", b->jail.missing,
		       b->trusted ? "in the fast mode all the same (--trusted)" :
		       "isolated (ptrace mode, one CPU); --trusted for the fast mode anyway");
	if (o->verbose)
		fprintf(stderr, "umlk boot: mode: %s; jail: %s\n", mode, what);
	b->jail.dir = b->dir;
	if (b->netsock[0])
		b->jail.binds[b->jail.nbinds++] = b->netsock;
	b->jail.tmp_bytes = o->mem + (64ULL << 20);
}

/* What the guest's init is told (guest.h: /etc/umlk/boot.conf). */
static void conf_fill(struct boot *b)
{
	const struct boot_opts *o = b->o;
	struct guest_conf *c = &b->conf;
	static char *job_argv[] = { "umlk-job", NULL };

	memset(c, 0, sizeof(*c));
	c->command = o->cmd != NULL || o->job;
	c->stdin_tty = !o->job && isatty(STDIN_FILENO);
	c->argv = o->job ? job_argv : o->cmd;
	if (o->job)
		snprintf(c->job, sizeof(c->job), "%s", o->job);
	c->dhcp = o->net && !o->no_dhcp;
	c->layers = b->im.nlayers;
	c->upper_disk = b->upper != NULL;
	if (o->overlay_size)
		snprintf(c->overlay_size, sizeof(c->overlay_size), "%s", o->overlay_size);
	else if (!b->upper)
		snprintf(c->overlay_size, sizeof(c->overlay_size), "%" PRIu64 "M",
			 (o->mem >> 20) * 3 / 4 < 512 ? 512 : (o->mem >> 20) * 3 / 4);
	/* A temporary COW file means a MAC that will not come again: the
	 * guest gives its lease back when it powers off. */
	c->release = c->dhcp && !o->cow && !o->mac;
	for (int i = 0; i < o->nenv; i++)
		c->env[c->nenv++] = (char *)o->env[i];
	if (o->xcookie)
		snprintf(c->xcookie, sizeof(c->xcookie), "%s", o->xcookie);
	if (o->hostname)
		snprintf(c->hostname, sizeof(c->hostname), "%s", o->hostname);
	if (b->home.kind)
		snprintf(c->home, sizeof(c->home), "%s", b->home.kind == HOME_DISK ? GUEST_HOME_DISK : GUEST_HOME_SHARED);
}

/* --net: the switch's socket as the kernel's virtio-net device.  Before
 * any descriptor meant for the kernel exists: --net auto may start
 * daemons, which must not inherit them.  virtio-net has no MAC of its own
 * here: the guest's init sets the one in the configuration. */
static void xnet_join(struct boot *b)
{
	if (!b->o->net)
		return;
	char *sock = xboot_switch(b->o->net);
	xguest_mac(b->o, b->conf.mac);
	snprintf(b->netsock, sizeof(b->netsock), "%s", sock);
	b->net_arg = xmalloc(strlen(sock) + 64);
	sprintf(b->net_arg, "virtio_uml.device=%s:%d", sock, VIRTIO_ID_NET);
	free(sock);
}

/* A copy of FD for the kernel (a number of its own: the kernel's 0, 1
 * and 2 are /dev/null and its stdio). */
static int xkernel_dup(struct boot *b, int fd)
{
	int d = fcntl(fd, F_DUPFD, 3);
	if (d < 0)
		xdie("dup:");
	b->k.child_fds[b->k.nchild_fds++] = d;
	return d;
}

/* A descriptor the kernel may have for our FD (stdout or stderr): a copy
 * of FD when it is no terminal, else a pipe we empty into FD. */
static int xout_line(struct boot *b, int fd)
{
	struct kernel_run *k = &b->k;
	int p[2];

	if (!isatty(fd))
		return xkernel_dup(b, fd);
	if (pipe2(p, O_CLOEXEC) < 0)
		xdie("pipe:");
	fcntl(p[1], F_SETFD, 0);        /* the kernel's */
	k->pumps[k->npumps].from = p[0];
	k->pumps[k->npumps++].to = fd;
	k->child_fds[k->nchild_fds++] = p[1];
	return p[1];
}

/* The line our terminal's input reaches the guest by: a pseudo-terminal
 * of our own (its master relayed to and from our terminal, raw), so that
 * the guest has a terminal and the kernel never holds ours.  -1 when
 * our stdin is no terminal we may read (not one, or not in the
 * foreground). */
static int xin_line(struct boot *b, int escapes)
{
	struct kernel_run *k = &b->k;
	int m, s;

	if (!isatty(STDIN_FILENO) || tcgetpgrp(STDIN_FILENO) != getpgrp())
		return -1;
	if (openpty(&m, &s, NULL, NULL, NULL) < 0)
		xdie("a pseudo-terminal for the guest's console:");
	fcntl(m, F_SETFD, FD_CLOEXEC);
	fcntl(m, F_SETFL, O_NONBLOCK);
	k->in_fd = m;
	k->escapes = escapes;
	k->pumps[k->npumps].from = m;
	k->pumps[k->npumps++].to = STDOUT_FILENO;
	k->child_fds[k->nchild_fds++] = s;
	return s;
}

/* The initramfs (a memfd the kernel reads as /proc/self/fd/N), the
 * kernel, the status pipe. */
static void xkernel_inputs(struct boot *b)
{
	b->mfd = xinitramfs_memfd(b->o->init, &b->conf);
	b->kfd = xkernel_open(b->o->kernel, &b->kwhat);
	b->status_pipe[0] = b->status_pipe[1] = -1;
	if (b->conf.command && pipe2(b->status_pipe, 0) < 0)
		xdie("pipe:");
	if (b->status_pipe[0] >= 0)
		fcntl(b->status_pipe[0], F_SETFD, FD_CLOEXEC);
}

/* The guest's disks, served from here on threads of ours that leave
 * every signal to this thread: the root (vda), /home, the root's other
 * layers and its upper layer (one more disk each, found in the guest by
 * serial), cow-merge's job disk. */
static void xdisks_serve(struct boot *b)
{
	const struct boot_opts *o = b->o;
	char homesock[PATH_MAX];

	/* RUNDIR/boot-PID holds this boot's sockets, and UML's own
	 * directory (k/mconsole: how we stop it cleanly). */
	xboot_run_dir(b->rundir, sizeof(b->rundir));
	b->dirlock = xboot_own_dir(b->rundir, b->dir, sizeof(b->dir));
	snprintf(b->mcsock, sizeof(b->mcsock), "%s/k/mconsole", b->dir);
	snprintf(b->vdasock, sizeof(b->vdasock), "%s/vda.sock", b->dir);
	snprintf(homesock, sizeof(homesock), "%s/home.sock", b->dir);
	b->use_qsd = xdisk_server_start(&b->qsd, o, &b->im, b->vdasock);
	sigset_t all, before;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &before);
	b->pool = pool_start(o->disk_threads ? o->disk_threads : 4, "umlk-disk");
	if (!b->pool)
		xdie("%s", k_errmsg());
	if (!b->use_qsd && vblk_start(&b->vda, b->vdasock, "vda", b->disk, b->pool) < 0)
		xdie("%s", k_errmsg());
	if (b->home.kind)
		xhome_start(&b->home, homesock, b->pool, b->homearg, sizeof(b->homearg));
	for (int i = 1; i <= b->im.nlayers + 1; i++) {
		struct bsrc *d = i < b->im.nlayers ? b->im.layer[i] : i == b->im.nlayers ? b->upper : o->jobdisk;
		if (!d)
			continue;
		char name[32];
		if (i < b->im.nlayers)
			snprintf(name, sizeof(name), "layer%d", i);
		else
			snprintf(name, sizeof(name), "%s", i == b->im.nlayers ? "upper" : "job");
		snprintf(b->extrasock[b->nextra], sizeof(b->extrasock[b->nextra]), "%s/%s.sock", b->dir, name);
		if (vblk_start(&b->extra[b->nextra], b->extrasock[b->nextra], name, d, b->pool) < 0)
			xdie("%s", k_errmsg());
		b->nextra++;
	}
	pthread_sigmask(SIG_SETMASK, &before, NULL);
}

static void xkarg(struct boot *b, const char *word)
{
	if (b->argc >= BOOT_ARGS_MAX - 1)
		xdie("too many kernel parameters (at most %d)", BOOT_ARGS_MAX - 2);
	b->argv[b->argc++] = (char *)word;
}

static void xkargf(struct boot *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void xkargf(struct boot *b, const char *fmt, ...)
{
	char buf[PATH_MAX + 64];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	xkarg(b, b->owned[b->nowned++] = xstrdup(buf));
}

/* The console lines (guest.h): with a command, tty0 the command's
 * stdin/stdout, tty1 its stderr, tty2 the status pipe, tty3 the kernel's
 * messages; the guest's own init gets the terminal on tty1, where inits
 * start their first getty (systemd's getty@tty1, sysvinit's inittab), and
 * the console.  No line is ever our terminal itself (xin_line, xout_line). */
static void xconsole_args(struct boot *b)
{
	const struct boot_opts *o = b->o;
	int err = xout_line(b, STDERR_FILENO);

	b->k.in_fd = -1;
	b->k.stdio = err;
	if (b->conf.command) {
		int in = b->conf.stdin_tty ? xin_line(b, 0) : -1;
		int out = in >= 0 && isatty(STDOUT_FILENO) ? xkernel_dup(b, in) : xout_line(b, STDOUT_FILENO);
		xkarg(b, "console=tty3");
		if (in >= 0)
			xkargf(b, "con0=fd:%d,fd:%d", in, out);
		else
			xkargf(b, "con0=null,fd:%d", out);
		/* UML will not take one host descriptor for two lines (its IRQ
		 * is per descriptor: EALREADY): stderr's line gets its own. */
		xkargf(b, "con1=null,fd:%d", xkernel_dup(b, err));
		xkargf(b, "con2=null,fd:%d", b->status_pipe[1]);
		if (o->verbose) {
			xkargf(b, "con3=null,fd:%d", xkernel_dup(b, err));
		} else {
			xkarg(b, "con3=null");
		}
		return;
	}
	xkarg(b, "console=tty1");
	/* The kernel has no modules (everything is built in): systemd's module
	 * loader has nothing to do, and fails where the image lacks libkmod
	 * (a trixie minbase). */
	xkarg(b, "systemd.mask=systemd-modules-load.service");
	/* Only tty1 reaches the user (the other lines are con=null): gettys
	 * on tty2 to tty6, which Debian's getty-static starts where there is
	 * no D-Bus (a minbase, a live-build ISO), would wait on lines that go
	 * nowhere while tty1's is started; measured, trixie's login prompt
	 * came 3.3 s later with them (10.9 s against 7.6 s). */
	xkarg(b, "systemd.mask=getty-static.service");
	int t = xin_line(b, 1);
	if (t >= 0)
		xkargf(b, "con1=fd:%d,fd:%d", t, xkernel_dup(b, t));
	else if (isatty(STDIN_FILENO))          /* ours, but we are in the background */
		xkargf(b, "con1=null,fd:%d", xout_line(b, STDOUT_FILENO));
	else
		xkargf(b, "con1=fd:%d,fd:%d", xkernel_dup(b, STDIN_FILENO), xout_line(b, STDOUT_FILENO));
}

/* The UML kernel's delay loop (x86's __delay: a decrement and a branch,
 * 16-byte aligned) timed here, as loops a jiffy (`lpj=`; UML's HZ is 100),
 * so the guest need not time it against its own 10 ms ticks at every boot,
 * which takes about 90 ms.  The fastest of six runs of 65536 loops (0.1 ms
 * in all here), less what reading the clock costs, is taken: within 0.2%
 * of what runs 16 times as long (1.8 ms of every boot) give in nearly every
 * call, lower where the host takes the CPU away for the whole 0.1 ms (18%
 * once in 1200 calls here); UML's own devices hardly use delays.  0 where
 * the loop is another (no `lpj=`: the kernel times it itself). */
static unsigned long delay_lpj(void)
{
#if defined(__x86_64__)
	const unsigned long loops = 1UL << 16;
	uint64_t clock = UINT64_MAX, a, z;
	double best = 0;
	for (int i = 0; i < 6; i++) {           /* the clock's own cost */
		a = k_now_ns();
		z = k_now_ns();
		if (z - a < clock)
			clock = z - a;
	}
	for (int i = 0; i < 6; i++) {
		unsigned long n = loops;
		a = k_now_ns();
		__asm__ volatile("jmp 1f\n.align 16\n1: dec %0\njnz 1b" : "+r"(n));
		z = k_now_ns();
		double rate = z - a > clock ? (double)loops * 1e9 / (double)(z - a - clock) : 0;
		if (rate > best)
			best = rate;
	}
	return (unsigned long)(best / 100);
#else
	return 0;
#endif
}

/* The kernel's command line: memory, disks, the initramfs, the management
 * console, the network, the mode, the console lines, then the live
 * system's own parameters (its boot loader's) and the user's, last, so
 * they win over ours. */
static void xkernel_args(struct boot *b)
{
	const struct boot_opts *o = b->o;

	xkarg(b, "linux");
	xkargf(b, "mem=%" PRIu64 "M", o->mem >> 20);
	xkargf(b, "virtio_uml.device=%s:%d", b->vdasock, VIRTIO_ID_BLOCK);
	if (b->homearg[0])
		xkargf(b, "%s", b->homearg);
	for (int i = 0; i < b->nextra; i++)
		xkargf(b, "virtio_uml.device=%.4000s:%d", b->extrasock[i], VIRTIO_ID_BLOCK);
	xkargf(b, "initrd=/proc/self/fd/%d", b->mfd);
	xkargf(b, "uml_dir=%s", b->dir);
	xkarg(b, "umid=k");
	if (b->net_arg) {
		xkarg(b, b->owned[b->nowned++] = b->net_arg);
		/* virtio-net frees what it sent when it sends again, not at
		 * an interrupt for each batch the switch has taken: a
		 * guest's interrupt is a host signal to its CPU 0 and half a
		 * dozen system calls, and TCP between two guests took as many
		 * for the sent frames as for the received ones (about 2,000
		 * each per 1000 MiB); without them, 6 to 9% more throughput
		 * and no slower round trips (README, 2026-12-04). */
		xkarg(b, "virtio_net.napi_tx=0");
	}
	/* The fast mode (seccomp stubs, several CPUs) lets a guest program
	 * take the guest's kernel: the jail (jail.h) is what keeps that from
	 * the user's account, so it is the default only where the jail is
	 * complete (xmode). */
	xkarg(b, b->trusted ? "seccomp=on" : "seccomp=off");
	xkargf(b, "ncpus=%d", b->cpus);
	if (b->hostcpus[0])
		xkarg(b, b->hostcpus);
	/* With more than one CPU a grace period of RCU waits for the others'
	 * ticks (HZ is 100: tens of ms), and a guest waits for several
	 * (mount, umount, poweroff); expedited ones ask the other CPUs at
	 * once.  (The user's --append comes later and may say otherwise.) */
	if (b->cpus > 1)
		xkarg(b, "rcupdate.rcu_expedited=1");
	unsigned long lpj = delay_lpj();
	if (lpj)
		xkargf(b, "lpj=%lu", lpj);
	if (!o->verbose) {
		xkarg(b, "quiet");
		xkarg(b, "loglevel=3");   /* errors too stay off the user's terminal */
	}
	xkarg(b, "con=null");
	xkarg(b, "ssl=null");   /* (a --kernel with serial lines: none opens a host pty) */
	xconsole_args(b);
	if (b->im.live.params[0]) {
		b->params = xstrdup(b->im.live.params);
		char *save = NULL;
		for (char *w = strtok_r(b->params, " ", &save); w && b->argc < 56; w = strtok_r(NULL, " ", &save))
			xkarg(b, w);
	}
	if (o->append) {
		char *copy = b->owned[b->nowned++] = xstrdup(o->append), *save = NULL;
		for (char *w = strtok_r(copy, " \t", &save); w; w = strtok_r(NULL, " \t", &save))
			xkarg(b, w);
	}
	b->argv[b->argc] = NULL;
}

/* With --verbose: what was fetched or read, and the memory used here. */
static void report(const struct boot *b, const struct remote_stats *rs)
{
	const struct boot_opts *o = b->o;
	char a[16], c[16], line[128];

	if (b->remote)
		fprintf(stderr, "umlk boot: fetched %s of %s's %s (%.1f%%) in %" PRIu64 " requests (%" PRIu64
			" retried); %" PRIu64 " chunks came from the cache, %" PRIu64 " failed their hash\n",
			k_human(rs->fetched, a, sizeof(a)), o->image, k_human(b->im.file_size, c, sizeof(c)),
			b->im.file_size ? 100.0 * (double)rs->fetched / (double)b->im.file_size : 0.0,
			rs->requests, rs->retries, rs->cached, rs->mismatches);
	else
		fprintf(stderr, "umlk boot: read %s of %s's %s (%.1f%%)\n", k_human(b->im.bytes_read, a, sizeof(a)),
			o->image, k_human(b->im.file_size, c, sizeof(c)),
			b->im.file_size ? 100.0 * (double)b->im.bytes_read / (double)b->im.file_size : 0.0);
	FILE *f = fopen("/proc/self/status", "re");
	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, "VmHWM:", 6))
			fprintf(stderr, "umlk boot: at most %s resident here (the disk's server and cache)\n",
				k_human(strtoull(line + 6, NULL, 10) << 10, a, sizeof(a)));
	if (f)
		fclose(f);
}

/* After the kernel: the servers stopped, what was asked for reported,
 * every layer closed (the COW file and the upper layer flushed). */
static void finish(struct boot *b, struct remote_stats *rs)
{
	const struct boot_opts *o = b->o;

	remove_umid_dir(b->mcsock);
	if (b->use_qsd)
		disk_server_stop(&b->qsd);
	else
		vblk_stop(&b->vda);
	home_stop(&b->home);
	for (int i = 0; i < b->nextra; i++)
		vblk_stop(&b->extra[i]);
	pool_stop(b->pool);
	memset(rs, 0, sizeof(*rs));
	if (b->remote)
		remote_get_stats(b->remote, rs);
	if (o->trace_chunk && b->im.trace && o->trace_list)
		*o->trace_list = bsrc_trace_list(b->im.trace, o->trace_n);
	if (o->verbose)
		report(b, rs);
	bsrc_close(b->disk);            /* flushes the COW file */
	for (int i = 1; i < b->im.nlayers; i++)
		bsrc_close(b->im.layer[i]);
	bsrc_close(b->im.base);         /* an ISO's file, under the layers */
	if (b->upper)
		bsrc_close(b->upper);   /* flushes the upper layer */
	free(b->params);
	while (b->nowned)
		free(b->owned[--b->nowned]);
	for (int i = 0; i < b->k.npumps; i++)
		close(b->k.pumps[i].from);
	if (rmdir(b->dir) < 0 && errno != ENOENT)
		k_warn("%s:", b->dir);
	close(b->dirlock);
	/* (The caller's temporary files, a cow-merge output filled by this
	 * guest say, stay: they are the caller's to commit or remove.) */
	boot_run_dir_done();
}

/* umlk's exit status, from how the run ended. */
static int exit_status(const struct boot *b, const struct kernel_run *k, const struct remote_stats *rs)
{
	if (b->hold.expired) {
		k_warn("%s: no room on its filesystem %s: the guest was stopped (what it was told was"
		       " written is in the file; the next boot recovers as after a power cut)", b->hold.full_file,
		       b->hold.wait_s ? "within --disk-full-wait" : "(--disk-full-wait 0)");
		return BOOT_EXIT_DISK_FULL;
	}
	if (b->hold.write_errors) {
		k_warn("%" PRIu64 " writes failed (see above): the guest got I/O errors", b->hold.write_errors);
		if (!k->escaped && !k->stop_signal)
			return BOOT_EXIT_WRITE_ERROR;
	}
	if (rs->failed) {
		/* The guest was told (an I/O error); the user is told too, and
		 * the exit status says it whatever the guest made of it. */
		k_warn("%" PRIu64 " reads of %s failed: the guest got I/O errors (see above)", rs->failed,
		       b->o->image);
		if (!k->escaped && !k->stop_signal)
			return 1;
	}
	if (k->escaped)
		return 0;
	if (k->stop_signal)
		return 128 + k->stop_signal;
	int st = k->wait_status;
	if (!b->conf.command)
		return k->powered_off ? 0 : WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	if (k->reported >= 0)
		return k->reported;
	if (WIFSIGNALED(st))
		return 128 + WTERMSIG(st);
	k_warn("the guest stopped without reporting the command's status (try --verbose)");
	return 125;
}

int xboot(const struct boot_opts *o)
{
	if (o->info)
		return xboot_info(o);
	struct boot *b = xcalloc(1, sizeof(*b));
	b->o = o;
	b->cpu_claim = -1;
	int wait = o->disk_full_wait == BOOT_WAIT_NONE ? 0 : o->disk_full_wait ? o->disk_full_wait
		 : o->cmd || o->job ? BOOT_WAIT_COMMAND_DEFAULT : BOOT_WAIT_FOREVER;
	hold_policy_init(&b->hold, wait);
	/* The jail's probe goes on beside the image, disks and network
	 * being opened, until xmode needs its answer. */
	b->jail.enabled = !o->no_jail;
	jail_probe_start(&b->jail);
	ximage_open(o, &b->im, 1, &b->remote);
	b->disk = xopen_disk(o, &b->im, &b->hold);
	b->upper = xopen_upper(o, &b->im, &b->hold);
	xopen_home(o, &b->home, &b->hold);
	conf_fill(b);
	xnet_join(b);
	/* (Before xmode: while the jail's probe ends.) */
	xkernel_inputs(b);
	xmode(b);
	xdisks_serve(b);
	xhost_cpus(b);
	devices_keep_on_cpu(b);
	xkernel_args(b);

	struct kernel_run *k = &b->k;
	k->kfd = b->kfd;
	k->what = b->kwhat;
	k->argv = b->argv;
	k->jail = &b->jail;
	k->status_fd = b->status_pipe[0];
	k->command = b->conf.command;
	k->mcsock = b->mcsock;
	k->kill_now = &b->hold.expired;
	k->child_fds[k->nchild_fds++] = b->mfd;
	if (b->status_pipe[1] >= 0)
		k->child_fds[k->nchild_fds++] = b->status_pipe[1];
	/* What the kernel keeps: its stdio (after it is given it) and lines. */
	b->jail.keep[b->jail.nkeep++] = 0;
	b->jail.keep[b->jail.nkeep++] = 1;
	b->jail.keep[b->jail.nkeep++] = 2;
	for (int i = 0; i < k->nchild_fds; i++)
		b->jail.keep[b->jail.nkeep++] = k->child_fds[i];
	xkernel_run(k);
	end_on_device_cpu(b);
	if (b->cpu_claim >= 0)
		close(b->cpu_claim);
	hold_policy_stop(&b->hold);     /* a write still waiting fails: no guest is there */

	struct remote_stats rs;
	finish(b, &rs);
	int status = exit_status(b, k, &rs);
	hold_policy_free(&b->hold);
	free(b);
	return status;
}
