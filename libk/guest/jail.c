/* The kernel's jail (jail.h), step by step. */
#include "guest/jail.h"
#include "core/err.h"
#include "core/xio.h"
#include "guest/payload.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- the kernel's interfaces, stable ABI (musl's headers carry none) */

#define NS_ALL (CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWNET)

/* seccomp and classic BPF */
#define K_SECCOMP_SET_MODE_FILTER 1
struct k_sock_fprog { unsigned short len; struct jail_insn *filter; };

/* Landlock */
#define LL_CREATE_RULESET_VERSION 1u
#define LL_RULE_PATH_BENEATH 1
#define LL_FS_EXECUTE (1ull << 0)
#define LL_FS_WRITE_FILE (1ull << 1)
#define LL_FS_READ_FILE (1ull << 2)
#define LL_FS_READ_DIR (1ull << 3)
#define LL_FS_REMOVE_DIR (1ull << 4)
#define LL_FS_REMOVE_FILE (1ull << 5)
#define LL_FS_MAKE_CHAR (1ull << 6)
#define LL_FS_MAKE_DIR (1ull << 7)
#define LL_FS_MAKE_REG (1ull << 8)
#define LL_FS_MAKE_SOCK (1ull << 9)
#define LL_FS_MAKE_FIFO (1ull << 10)
#define LL_FS_MAKE_BLOCK (1ull << 11)
#define LL_FS_MAKE_SYM (1ull << 12)
#define LL_FS_REFER (1ull << 13)        /* ABI 2 */
#define LL_FS_TRUNCATE (1ull << 14)     /* ABI 3 */
#define LL_FS_IOCTL_DEV (1ull << 15)    /* ABI 5 */
#define LL_NET_BIND_TCP (1ull << 0)     /* ABI 4 */
#define LL_NET_CONNECT_TCP (1ull << 1)
#define LL_SCOPE_ABSTRACT_UNIX (1ull << 0)      /* ABI 6 */
#define LL_SCOPE_SIGNAL (1ull << 1)
struct ll_ruleset_attr { uint64_t handled_access_fs, handled_access_net, scoped; };
struct ll_path_beneath_attr { uint64_t allowed_access; int32_t parent_fd; } __attribute__((packed));
#ifndef SYS_landlock_create_ruleset
#define SYS_landlock_create_ruleset 444
#define SYS_landlock_add_rule 445
#define SYS_landlock_restrict_self 446
#endif

/* What UML does on the host, in either mode, and its stubs (the system
 * calls of arch/um/os-Linux, kernel/skas/stub.c and stub_exe.c, and what
 * musl's functions UML calls make of them); measured with the filter in
 * its logging form (jail.h) over the whole test suite. */
static const int allowed[] = {
	SYS_read, SYS_write, SYS_open, SYS_close, SYS_stat, SYS_fstat, SYS_lstat, SYS_poll, SYS_lseek,
	SYS_mmap, SYS_mprotect, SYS_munmap, SYS_brk, SYS_rt_sigaction, SYS_rt_sigprocmask,
	SYS_rt_sigreturn, SYS_ioctl, SYS_pread64, SYS_pwrite64, SYS_readv, SYS_writev, SYS_access,
	SYS_pipe, SYS_select, SYS_sched_yield, SYS_mremap, SYS_madvise, SYS_dup, SYS_dup2, SYS_pause,
	SYS_nanosleep, SYS_getitimer, SYS_alarm, SYS_setitimer, SYS_getpid, SYS_socket, SYS_connect,
	SYS_accept, SYS_sendto, SYS_recvfrom, SYS_sendmsg, SYS_recvmsg, SYS_shutdown, SYS_bind,
	SYS_listen, SYS_getsockname, SYS_getpeername, SYS_socketpair, SYS_setsockopt, SYS_getsockopt,
	SYS_clone, SYS_fork, SYS_vfork, SYS_execve, SYS_exit, SYS_wait4, SYS_kill, SYS_uname,
	SYS_fcntl, SYS_fsync, SYS_fdatasync, SYS_ftruncate, SYS_getdents64, SYS_getcwd, SYS_chdir,
	SYS_rename, SYS_mkdir, SYS_rmdir, SYS_unlink, SYS_readlink, SYS_chmod, SYS_fchmod, SYS_umask,
	SYS_gettimeofday, SYS_getrlimit, SYS_getrusage, SYS_sysinfo, SYS_ptrace, SYS_getuid,
	SYS_getgid, SYS_geteuid, SYS_getegid, SYS_setpgid, SYS_getppid, SYS_getpgrp, SYS_setsid,
	SYS_getpgid, SYS_getsid, SYS_rt_sigpending, SYS_rt_sigtimedwait, SYS_rt_sigqueueinfo,
	SYS_rt_sigsuspend, SYS_sigaltstack, SYS_personality, SYS_statfs, SYS_fstatfs, SYS_prctl,
	SYS_arch_prctl, SYS_setrlimit, SYS_sync, SYS_gettid, SYS_tkill, SYS_futex,
	SYS_sched_setaffinity, SYS_sched_getaffinity, SYS_set_tid_address, SYS_timer_create,
	SYS_timer_settime, SYS_timer_gettime, SYS_timer_getoverrun, SYS_timer_delete,
	SYS_clock_gettime, SYS_clock_getres, SYS_clock_nanosleep, SYS_exit_group, SYS_epoll_wait,
	SYS_epoll_ctl, SYS_tgkill, SYS_waitid, SYS_openat, SYS_mkdirat, SYS_newfstatat, SYS_unlinkat,
	SYS_readlinkat, SYS_faccessat, SYS_pselect6, SYS_ppoll, SYS_set_robust_list,
	SYS_get_robust_list, SYS_epoll_pwait, SYS_timerfd_create, SYS_eventfd, SYS_fallocate,
	SYS_timerfd_settime, SYS_timerfd_gettime, SYS_accept4, SYS_eventfd2, SYS_epoll_create1,
	SYS_dup3, SYS_pipe2, SYS_preadv, SYS_pwritev, SYS_rt_tgsigqueueinfo, SYS_recvmmsg,
	SYS_prlimit64, SYS_sendmmsg, SYS_getrandom, SYS_memfd_create, SYS_execveat, SYS_statx,
	SYS_rseq, SYS_close_range, SYS_epoll_create, SYS_seccomp, SYS_membarrier, SYS_pidfd_open,
	SYS_clone3, SYS_getcpu, SYS_signalfd, SYS_signalfd4,
};

/* ---- probing the host */

static int landlock_abi(void)
{
	long v = syscall(SYS_landlock_create_ruleset, NULL, 0, LL_CREATE_RULESET_VERSION);
	return v < 0 ? 0 : (int)v;
}

/* A file of /proc, written in one write(); -1 with errno. */
static int write_proc(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = write(fd, text, strlen(text));
	int e = errno;
	close(fd);
	errno = e;
	return n == (ssize_t)strlen(text) ? 0 : -1;
}

/* The user and group mapped to themselves, as an unprivileged process
 * may do for itself; -1 with errno. */
static int map_self(uid_t uid, gid_t gid)
{
	char m[64];

	snprintf(m, sizeof(m), "%u %u 1\n", (unsigned)uid, (unsigned)uid);
	if (write_proc("/proc/self/uid_map", m) < 0)
		return -1;
	if (write_proc("/proc/self/setgroups", "deny") < 0 && errno != ENOENT)
		return -1;
	snprintf(m, sizeof(m), "%u %u 1\n", (unsigned)gid, (unsigned)gid);
	return write_proc("/proc/self/gid_map", m);
}

void jail_probe_start(struct jail *j)
{
	j->probe_pid = 0;
	if (!j->enabled)
		return;
	/* A child tries the namespaces and a tmpfs in them; its status says
	 * which step failed, and errno. */
	uid_t uid = getuid();
	gid_t gid = getgid();
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		if (unshare(NS_ALL) < 0)
			_exit(100 + (errno & 63));
		if (map_self(uid, gid) < 0)
			_exit(170 + (errno & 63) % 30);
		if (mount("umlk-jail", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "size=64k") < 0)
			_exit(200 + (errno & 63) % 50);
		_exit(0);
	}
	j->probe_pid = pid > 0 ? pid : -1;
}

void jail_probe_finish(struct jail *j)
{
	j->landlock_abi = landlock_abi();
	j->seccomp = prctl(PR_GET_SECCOMP, 0, 0, 0, 0) >= 0;
	j->missing[0] = 0;
	if (!j->enabled) {
		snprintf(j->missing, sizeof(j->missing), "all of it (--no-jail)");
		return;
	}
	pid_t pid = j->probe_pid;
	int st = -1;
	while (pid > 0 && waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	j->probe_pid = 0;
	j->userns = pid > 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0;
	if (!j->userns) {
		int c = pid > 0 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
		const char *step = c >= 200 ? "a tmpfs in a mount namespace" : c >= 170 ? "mapping the user into it"
			: "unprivileged user namespaces";
		int e = c >= 200 ? c - 200 : c >= 170 ? c - 170 : c >= 100 ? c - 100 : EAGAIN;
		snprintf(j->missing, sizeof(j->missing), "namespaces and a root of its own (%s: %s%s)", step,
			 strerror(e), e == EPERM || e == ENOSPC ?
			 "; this system turns them off, see kernel.unprivileged_userns_clone and"
			 " user.max_user_namespaces" : "");
	}
	if (!j->seccomp) {
		size_t n = strlen(j->missing);
		snprintf(j->missing + n, sizeof(j->missing) - n, "%sthe seccomp filter (the host kernel has"
			 " no seccomp)", n ? "; " : "");
	}
}

void jail_probe(struct jail *j)
{
	jail_probe_start(j);
	jail_probe_finish(j);
}

int jail_complete(const struct jail *j)
{
	return j->enabled && j->userns && j->seccomp;
}

void jail_describe(const struct jail *j, char *buf, size_t cap)
{
	if (!j->enabled) {
		snprintf(buf, cap, "none (--no-jail: the kernel runs as you, your files, network, terminal and"
			 " processes in its reach)");
		return;
	}
	char ll[160] = "no landlock (the host has none)";
	if (j->landlock_abi)
		snprintf(ll, sizeof(ll), "landlock ABI %d (files%s%s)", j->landlock_abi,
			 j->landlock_abi >= 4 ? ", TCP" : "", j->landlock_abi >= 6 ? ", abstract sockets, signals" : "");
	snprintf(buf, cap, "%s; %s, no terminal; limits; no_new_privs; %s; %s",
		 j->userns ? "user, mount, pid, ipc, uts and network namespaces, an empty root" : "no namespaces",
		 j->own_session ? "own session" : "own process group", ll,
		 j->seccomp ? "seccomp filter" : "no seccomp filter");
}

/* ---- in the child */

/* A step failed: say which, and end this process. */
_Noreturn static void xfail(const char *step)
{
	k_warn("jail: %s:", step);
	_exit(126);
}

/* mkdir -p of PATH under ROOT (the new root, before pivoting). */
static void xmkdirs(const char *root, const char *path, int last_is_file)
{
	char p[PATH_MAX];
	snprintf(p, sizeof(p), "%s/%s", root, path);
	for (char *s = p + strlen(root) + 1; *s; s++) {
		if (*s != '/' || s[-1] == '/')
			continue;
		*s = 0;
		if (mkdir(p, 0755) < 0 && errno != EEXIST)
			xfail(p);
		*s = '/';
	}
	if (last_is_file) {
		int fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
		if (fd < 0)
			xfail(p);
		close(fd);
	} else if (mkdir(p, 0755) < 0 && errno != EEXIST) {
		xfail(p);
	}
}

/* Bind what FD (an O_PATH descriptor of PATH) names at PATH in ROOT. */
static void xbind(const char *root, const char *path, int fd, int is_file)
{
	char src[64], dst[PATH_MAX];
	snprintf(src, sizeof(src), "/proc/self/fd/%d", fd);
	snprintf(dst, sizeof(dst), "%s/%s", root, path);
	xmkdirs(root, path, is_file);
	if (mount(src, dst, NULL, MS_BIND | MS_REC, NULL) < 0)
		xfail(dst);
	close(fd);
}

static int xopen_path(const char *path, int *is_file)
{
	struct stat st;
	int fd = open(path, O_PATH | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0)
		xfail(path);
	*is_file = !S_ISDIR(st.st_mode);
	return fd;
}

/* The new root: a tmpfs on /tmp (in this mount namespace only), holding
 * the run directory and the binds at their own paths, /dev/null, /proc
 * and a /tmp of its own; pivoted to, the old one detached, read-only. */
static void xmake_root(const struct jail *j)
{
	const char *root = "/tmp";
	int dirf, nullf, bf[JAIL_BINDS_MAX], dir_file, null_file, b_file[JAIL_BINDS_MAX];

	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		xfail("making the mounts private");
	/* (Opened before /tmp is covered: the run directory may lie there.) */
	dirf = xopen_path(j->dir, &dir_file);
	nullf = xopen_path("/dev/null", &null_file);
	for (int i = 0; i < j->nbinds; i++)
		bf[i] = xopen_path(j->binds[i], &b_file[i]);
	if (mount("umlk-jail", root, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=0755") < 0)
		xfail("a tmpfs for the root");
	/* Its /tmp first: the run directory may lie beneath. */
	char opt[80], p[PATH_MAX];
	xmkdirs(root, "tmp", 0);
	/* huge=advise: the kernel asks for huge pages where its boot writes
	 * memory densely (kernel/patches/0018).  A host without them for
	 * tmpfs refuses the option (EINVAL): then small pages. */
	snprintf(opt, sizeof(opt), "size=%llu,mode=0700,huge=advise", (unsigned long long)j->tmp_bytes);
	if (mount("umlk-tmp", "/tmp/tmp", "tmpfs", MS_NOSUID | MS_NODEV, opt) < 0) {
		int e = errno;
		snprintf(opt, sizeof(opt), "size=%llu,mode=0700", (unsigned long long)j->tmp_bytes);
		if (e != EINVAL || mount("umlk-tmp", "/tmp/tmp", "tmpfs", MS_NOSUID | MS_NODEV, opt) < 0)
			xfail("a tmpfs for the kernel's memory");
	}
	xbind(root, j->dir + 1, dirf, 0);
	for (int i = 0; i < j->nbinds; i++)
		xbind(root, j->binds[i] + 1, bf[i], b_file[i]);
	xbind(root, "dev/null", nullf, 1);
	xmkdirs(root, "proc", 0);
	if (mount("proc", "/tmp/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
		xfail("/proc of its own");
	snprintf(p, sizeof(p), "%s/.old", root);
	xmkdirs(root, ".old", 0);
	if (syscall(SYS_pivot_root, root, p) < 0 || chdir("/") < 0)
		xfail("pivot_root");
	if (umount2("/.old", MNT_DETACH) < 0 || rmdir("/.old") < 0)
		xfail("detaching the old root");
	if (mount(NULL, "/", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY, NULL) < 0)
		xfail("the root read-only");
}

static void xlimits(const struct jail *j)
{
	struct rlimit no = { 0, 0 }, files = { 4096, 4096 };
	rlim_t big = j->tmp_bytes + (64ull << 20);
	struct rlimit fsize = { big, big };

	if (setrlimit(RLIMIT_CORE, &no) < 0 || setrlimit(RLIMIT_FSIZE, &fsize) < 0)
		xfail("limits");
	struct rlimit cur;
	if (getrlimit(RLIMIT_NOFILE, &cur) == 0 && cur.rlim_max < files.rlim_max)
		files.rlim_cur = files.rlim_max = cur.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &files) < 0)
		xfail("limits");
}

/* No capability, now or after exec (in its user namespace, root keeps
 * them through exec: SECBIT_NOROOT says not). */
#define K_SECBIT_NOROOT 0x1
#define K_SECBIT_NOROOT_LOCKED 0x2
#define K_SECBIT_NO_SETUID_FIXUP 0x4
#define K_SECBIT_NO_SETUID_FIXUP_LOCKED 0x8
#define K_SECBIT_KEEP_CAPS_LOCKED 0x20
#define K_CAP_VERSION_3 0x20080522
static void xno_caps(void)
{
	struct { uint32_t version; int pid; } hdr = { K_CAP_VERSION_3, 0 };
	struct { uint32_t effective, permitted, inheritable; } data[2] = { { 0, 0, 0 }, { 0, 0, 0 } };

	if (prctl(PR_SET_SECUREBITS, K_SECBIT_NOROOT | K_SECBIT_NOROOT_LOCKED | K_SECBIT_NO_SETUID_FIXUP |
		  K_SECBIT_NO_SETUID_FIXUP_LOCKED | K_SECBIT_KEEP_CAPS_LOCKED, 0, 0, 0) < 0 && errno != EPERM)
		xfail("securebits");
	for (int c = 0; c < 64; c++)
		if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0 && errno != EINVAL && errno != EPERM)
			xfail("the capability bounding set");
	if (syscall(SYS_capset, &hdr, data) < 0)
		xfail("dropping capabilities");
}

/* Every descriptor but the N in KEEP (reordered). */
static void close_except(int *keep, int n)
{
	for (int i = 1; i < n; i++)             /* sorted */
		for (int k = i; k > 0 && keep[k - 1] > keep[k]; k--) {
			int t = keep[k];
			keep[k] = keep[k - 1];
			keep[k - 1] = t;
		}
	int from = 0;
	for (int i = 0; i <= n; i++) {
		int to = i < n ? keep[i] - 1 : INT_MAX;
		if (to >= from)
			syscall(SYS_close_range, (unsigned)from, (unsigned)to, 0);
		if (i < n)
			from = keep[i] + 1;
	}
}

/* Every descriptor but KFD, EXTRA (either may be -1) and those the kernel
 * keeps. */
static void close_others(const struct jail *j, int kfd, int extra)
{
	int keep[JAIL_KEEP_MAX + 2], n = 0;

	for (int i = 0; i < j->nkeep; i++)
		keep[n++] = j->keep[i];
	if (kfd >= 0)
		keep[n++] = kfd;
	if (extra >= 0 && extra != kfd)
		keep[n++] = extra;
	close_except(keep, n);
}

/* Every descriptor but FD. */
static void close_all_but(int fd)
{
	close_except(&fd, 1);
}

static void xlandlock(const struct jail *j, int kfd)
{
	int abi = j->landlock_abi;
	if (!abi)
		return;
	uint64_t fs = LL_FS_EXECUTE | LL_FS_WRITE_FILE | LL_FS_READ_FILE | LL_FS_READ_DIR | LL_FS_REMOVE_DIR |
		      LL_FS_REMOVE_FILE | LL_FS_MAKE_CHAR | LL_FS_MAKE_DIR | LL_FS_MAKE_REG | LL_FS_MAKE_SOCK |
		      LL_FS_MAKE_FIFO | LL_FS_MAKE_BLOCK | LL_FS_MAKE_SYM;
	if (abi >= 2)
		fs |= LL_FS_REFER;
	if (abi >= 3)
		fs |= LL_FS_TRUNCATE;
	if (abi >= 5)
		fs |= LL_FS_IOCTL_DEV;
	struct ll_ruleset_attr attr = {
		.handled_access_fs = fs,
		.handled_access_net = abi >= 4 ? LL_NET_BIND_TCP | LL_NET_CONNECT_TCP : 0,
		.scoped = abi >= 6 ? LL_SCOPE_ABSTRACT_UNIX | LL_SCOPE_SIGNAL : 0,
	};
	size_t size = abi >= 6 ? sizeof(attr) : abi >= 4 ? 2 * sizeof(uint64_t) : sizeof(uint64_t);
	int rs = (int)syscall(SYS_landlock_create_ruleset, &attr, size, 0);
	if (rs < 0)
		xfail("landlock");
	uint64_t rw = LL_FS_WRITE_FILE | LL_FS_READ_FILE | LL_FS_READ_DIR | LL_FS_REMOVE_DIR | LL_FS_REMOVE_FILE |
		      LL_FS_MAKE_DIR | LL_FS_MAKE_REG | LL_FS_MAKE_SOCK | (abi >= 3 ? LL_FS_TRUNCATE : 0);
	/* The kernel's run directory and its /tmp (the memory file, and a
	 * stub executable UML may put there), /dev/null, /proc (read), and
	 * the kernel itself (executed). */
	struct { const char *path; uint64_t access; int fd; } rules[] = {
		{ j->dir, rw, -1 }, { "/tmp", rw | LL_FS_EXECUTE, -1 }, { "/dev/null", LL_FS_READ_FILE | LL_FS_WRITE_FILE, -1 },
		{ "/proc", LL_FS_READ_FILE | LL_FS_READ_DIR, -1 }, { NULL, LL_FS_EXECUTE | LL_FS_READ_FILE, kfd },
	};
	for (size_t i = 0; i < sizeof(rules) / sizeof(rules[0]); i++) {
		int fd = rules[i].fd >= 0 ? rules[i].fd : open(rules[i].path, O_PATH | O_CLOEXEC);
		struct ll_path_beneath_attr pb = { rules[i].access & fs, fd };
		int r = fd < 0 ? -1 : (int)syscall(SYS_landlock_add_rule, rs, LL_RULE_PATH_BENEATH, &pb, 0);
		/* A kernel in a memfd (the release file's, where the cache could
		 * not keep it) is on the kernel's internal mount, which landlock
		 * neither governs nor takes a rule for (EBADFD). */
		if (r < 0 && !(rules[i].fd >= 0 && errno == EBADFD))
			xfail("landlock rules");
		if (rules[i].fd < 0)
			close(fd);
	}
	for (int i = 0; i < j->nbinds; i++) {
		int fd = open(j->binds[i], O_PATH | O_CLOEXEC);
		struct stat st;
		if (fd < 0 || fstat(fd, &st) < 0)
			xfail(j->binds[i]);
		/* (A socket is reached by connect, which landlock leaves to
		 * the mount namespace: only a directory gets a rule.) */
		struct ll_path_beneath_attr pb = { rw & fs, fd };
		if (S_ISDIR(st.st_mode) && syscall(SYS_landlock_add_rule, rs, LL_RULE_PATH_BENEATH, &pb, 0) < 0)
			xfail("landlock rules");
		close(fd);
	}
	if (syscall(SYS_landlock_restrict_self, rs, 0) < 0)
		xfail("landlock");
	close(rs);
}

int jail_allowed(long nr)
{
	for (size_t i = 0; i < sizeof(allowed) / sizeof(allowed[0]); i++)
		if (allowed[i] == nr)
			return 1;
	return 0;
}

/* The allowed numbers as a binary search: a node tests one number and
 * skips its lower half with a long jump (classic BPF's conditional
 * jumps reach 255 instructions); a leaf of up to JAIL_LEAF numbers
 * compares each and ends in its own two returns. */
enum { JAIL_LEAF = 4 };

static int tree_size(int n)
{
	return n <= JAIL_LEAF ? n + 2 : 2 + tree_size(n / 2) + tree_size(n - n / 2);
}

static int emit_tree(struct jail_insn *f, int at, const int *a, int n, uint32_t deny)
{
	if (n <= JAIL_LEAF) {
		for (int i = 0; i < n; i++)     /* a match jumps to the leaf's ALLOW */
			f[at++] = (struct jail_insn){ JAIL_BPF_JEQ_K, (uint8_t)(n - i), 0, (uint32_t)a[i] };
		f[at++] = (struct jail_insn){ JAIL_BPF_RET_K, 0, 0, deny };
		f[at++] = (struct jail_insn){ JAIL_BPF_RET_K, 0, 0, JAIL_RET_ALLOW };
		return at;
	}
	int h = n / 2;
	f[at++] = (struct jail_insn){ JAIL_BPF_JGE_K, 0, 1, (uint32_t)a[h] };  /* upper half: the jump */
	f[at++] = (struct jail_insn){ JAIL_BPF_JA, 0, 0, (uint32_t)tree_size(h) };
	at = emit_tree(f, at, a, h, deny);
	return emit_tree(f, at, a + h, n - h, deny);
}

static int cmp_int(const void *x, const void *y)
{
	int a = *(const int *)x, b = *(const int *)y;
	return (a > b) - (a < b);
}

int jail_filter(struct jail_insn *f, int cap, uint32_t deny)
{
	enum { N = sizeof(allowed) / sizeof(allowed[0]) };
	int a[N], n = 0;

	memcpy(a, allowed, sizeof(a));
	qsort(a, N, sizeof(a[0]), cmp_int);
	for (int i = 0; i < N; i++)
		if (!n || a[n - 1] != a[i])
			a[n++] = a[i];
	if (6 + tree_size(n) > cap)
		return -1;
	int at = 0;
	/* x86-64 system calls only: no i386, no x32 (the same calls under
	 * other numbers), then the list. */
	f[at++] = (struct jail_insn){ JAIL_BPF_LD_W_ABS, 0, 0, JAIL_SD_ARCH };
	f[at++] = (struct jail_insn){ JAIL_BPF_JEQ_K, 1, 0, JAIL_AUDIT_ARCH_X86_64 };
	f[at++] = (struct jail_insn){ JAIL_BPF_RET_K, 0, 0, JAIL_RET_ERRNO | EPERM };
	f[at++] = (struct jail_insn){ JAIL_BPF_LD_W_ABS, 0, 0, JAIL_SD_NR };
	f[at++] = (struct jail_insn){ JAIL_BPF_JGE_K, 0, 1, JAIL_X32_BIT };
	f[at++] = (struct jail_insn){ JAIL_BPF_RET_K, 0, 0, deny };
	return emit_tree(f, at, a, n, deny);
}

static void xseccomp(void)
{
	struct jail_insn f[JAIL_FILTER_MAX];
	const char *mode = getenv("UMLK_JAIL_SECCOMP");
	uint32_t deny = mode && !strcmp(mode, "log") ? JAIL_RET_LOG : JAIL_RET_ERRNO | EPERM;
	int n = jail_filter(f, JAIL_FILTER_MAX, deny);

	if (n < 0)
		xfail("seccomp: the filter does not fit");
	struct k_sock_fprog prog = { (unsigned short)n, f };
	if (syscall(SYS_seccomp, K_SECCOMP_SET_MODE_FILTER, 0, &prog) < 0)
		xfail("seccomp");
}

/* Leave the controlling terminal, if umlk has one: the kernel, forked
 * after, has none, and without a session of its own (xkernel) it could
 * never take one (only a session's leader can).  /dev/tty names it until
 * the jail's root is made. */
static void xno_terminal(void)
{
	int t = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);

	if (t < 0)
		return;                 /* no terminal to leave */
	if (ioctl(t, TIOCNOTTY) < 0)
		xfail("leaving the terminal");
	close(t);
}

/* The kernel's own process, in the jail's pid namespace: the last steps,
 * then the kernel. */
_Noreturn static void xkernel(const struct jail *j, int kfd, char **argv)
{
	static char *env[] = { "TMPDIR=/tmp", NULL };

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	/* A process group of its own: the terminal's signals (Ctrl-C, a
	 * hang-up) are umlk's to handle; the controlling terminal is gone
	 * already (xjail_init).  The host's scheduler makes each session a
	 * group of its own (autogroup), and that cuts both ways.  A guest
	 * alone waits on umlk's device threads: in umlk's session, a request
	 * stays in one group (3000 random 4 KiB reads on CPU 0: 0.038 s, and
	 * 0.043 s in a session of its own).  Guests on a switch talk to each
	 * other: two started from one shell, in one group, wrote small
	 * messages to each other at a third of the speed (busybox nc: 17
	 * against 50 MB/s).  So a session of its own for a guest on a switch. */
	if (j->own_session ? setsid() < 0 : setpgid(0, 0) < 0)
		xfail(j->own_session ? "a session of its own" : "a process group of its own");
	xlimits(j);
	/* UML turns address randomisation off and re-executes itself when
	 * it finds it on: off already, so it need not find itself. */
	personality(PER_LINUX | ADDR_NO_RANDOMIZE);
	close_others(j, kfd, -1);
	xno_caps();
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		xfail("no_new_privs");
	xlandlock(j, kfd);
	if (j->seccomp)
		xseccomp();
	syscall(SYS_execveat, kfd, "", argv, env, AT_EMPTY_PATH);
	xfail("executing the kernel");
}

/* The jail's first process (pid 1 of its pid namespace, which the kernel
 * must not be: UML takes a parent of pid 1 for a parent gone): makes the
 * root, starts the kernel, reaps, and tells its status on REPORT. */
_Noreturn static void xjail_init(const struct jail *j, int kfd, char **argv, int report)
{
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	/* Nothing of umlk's but what the kernel needs: a COW file or a home
	 * umlk has locked stays locked as long as any process holds it, and a
	 * process SIGKILLed at the end can take a while to go. */
	close_others(j, kfd, report);
	xno_terminal();
	xmake_root(j);
	pid_t k = fork();
	if (k < 0)
		xfail("fork");
	if (k == 0) {
		close(report);
		xkernel(j, kfd, argv);
	}
	close_all_but(report);
	for (;;) {
		int st;
		pid_t w = wait(&st);
		if (w == k) {
			if (write(report, &st, sizeof(st)) < 0)
				_exit(126);
			_exit(0);
		}
		if (w < 0 && errno != EINTR)
			_exit(126);
	}
}

void xjail_exec(const struct jail *j, int kfd, char **argv)
{
	if (j->pin_cpu > 0) {           /* (inherited by every thread and process the kernel starts) */
		cpu_set_t set;
		CPU_ZERO(&set);
		CPU_SET(j->pin_cpu - 1, &set);
		if (sched_setaffinity(0, sizeof(set), &set) < 0)
			xfail("keeping the kernel on one host CPU");
	}
	if (!j->enabled) {
		personality(PER_LINUX | ADDR_NO_RANDOMIZE);
		kernel_exec(kfd, argv);
		xfail("executing the kernel");
	}
	uid_t uid = getuid();
	gid_t gid = getgid();
	int ns = j->userns ? NS_ALL : 0;
	if (ns && unshare(ns) < 0)
		xfail("namespaces");
	if (ns && map_self(uid, gid) < 0)
		xfail("mapping the user into its namespace");
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		xfail("pipe");
	pid_t init = fork();
	if (init < 0)
		xfail("fork");
	if (init == 0) {
		close(p[0]);
		if (ns)
			xjail_init(j, kfd, argv, p[1]);
		close(p[1]);
		xkernel(j, kfd, argv);
	}
	/* This process stays outside, for umlk to wait on: it ends as the
	 * kernel did, and holds nothing of umlk's meanwhile. */
	close(p[1]);
	close_all_but(p[0]);
	int st = 0, w;
	while ((w = waitpid(init, &st, 0)) < 0 && errno == EINTR)
		;
	if (ns && w == init && WIFEXITED(st) && WEXITSTATUS(st) == 0 && read(p[0], &st, sizeof(st)) != sizeof(st))
		_exit(126);
	if (WIFSIGNALED(st)) {
		signal(WTERMSIG(st), SIG_DFL);
		prctl(PR_SET_DUMPABLE, 0);
		kill(getpid(), WTERMSIG(st));
	}
	_exit(WIFEXITED(st) ? WEXITSTATUS(st) : 126);
}
