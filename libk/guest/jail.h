/* jail: the guest's kernel process, confined.  A guest that takes its
 * kernel (the fast mode lets any guest program do that) must reach
 * nothing of the user's: so the kernel runs in a jail, set up here
 * between fork and exec, with no privilege, in this order:
 *
 *   user       a user namespace of its own (the user mapped to itself),
 *              and with it mount, pid, ipc, uts and network namespaces:
 *              no host network, none of the host's abstract sockets, no
 *              other process in sight
 *   mount      a root of its own, an empty tmpfs holding only the boot's
 *              run directory (its sockets; bound at its own path), the
 *              --net switch's socket, /dev/null, a fresh /proc and a
 *              tmpfs /tmp for the kernel's memory file; read-only
 *   terminal   no controlling terminal and a process group of its own
 *              (the user's terminal reaches the guest through umlk,
 *              never as a descriptor the kernel holds), a session of
 *              its own too for a guest on a switch (why: xkernel), every
 *              descriptor closed but those it needs, the environment
 *              cleared to TMPDIR
 *   limits     no core dumps, a file size and a descriptor limit
 *   nnp        no_new_privs
 *   landlock   where the host has it: no file outside that root, and as
 *              the ABI allows, no TCP, no abstract sockets, no signals
 *              out
 *   seccomp    a filter allowing the system calls UML makes in either
 *              mode; any other fails with EPERM (never a kill: UML's
 *              stub processes inherit it, and the strictest of stacked
 *              filters wins, so their own traps still reach the kernel)
 *
 * The kernel is executed from a descriptor opened before any of it.  A
 * layer the host cannot give (no unprivileged user namespaces: some
 * distributions and containers turn them off) is left out and named;
 * the jail is complete when the namespaces and the filter are there.
 * UMLK_JAIL_SECCOMP=log makes the filter log what it would refuse
 * (dmesg), to find what a new kernel needs. */
#ifndef UMLK_JAIL_H
#define UMLK_JAIL_H

#include <stddef.h>
#include <stdint.h>

#define JAIL_BINDS_MAX 4
#define JAIL_KEEP_MAX 16

struct jail {
	int enabled;                    /* 0: --no-jail */
	/* What the host offers (jail_probe): */
	int userns;                     /* namespaces, a root of its own */
	int seccomp;
	int landlock_abi;               /* 0: none */
	char missing[300];              /* the layers left out, and why ("" when none) */
	int probe_pid;                  /* jail_probe_start's child; 0: none */
	/* What the kernel is given: */
	const char *dir;                /* the boot's run directory, bound at its own path */
	const char *binds[JAIL_BINDS_MAX];      /* more paths bound at their own place */
	int nbinds;
	uint64_t tmp_bytes;             /* the tmpfs /tmp: the kernel's memory, and room */
	int pin_cpu;                    /* the host CPU + 1 the kernel and its processes stay on; 0: any */
	int own_session;                /* a session of its own, not only a process group (xkernel) */
	int keep[JAIL_KEEP_MAX];        /* descriptors the kernel keeps */
	int nkeep;
};

/* The seccomp filter, classic BPF (struct sock_filter; musl's headers
 * carry none): the architecture, then a binary search of the allowed
 * numbers, so a system call costs at most 20 instructions instead of up
 * to one per allowed call (166).  The filter runs at every system call of the
 * guest's processes (UML's stubs, which inherit it), on top of UML's. */
struct jail_insn { uint16_t code; uint8_t jt, jf; uint32_t k; };
#define JAIL_BPF_LD_W_ABS 0x20
#define JAIL_BPF_JA 0x05
#define JAIL_BPF_JEQ_K 0x15
#define JAIL_BPF_JGE_K 0x35
#define JAIL_BPF_RET_K 0x06
#define JAIL_SD_NR 0            /* offsetof(struct seccomp_data, nr) */
#define JAIL_SD_ARCH 4
#define JAIL_AUDIT_ARCH_X86_64 0xc000003eu
#define JAIL_X32_BIT 0x40000000u
#define JAIL_RET_ALLOW 0x7fff0000u
#define JAIL_RET_LOG 0x7ffc0000u
#define JAIL_RET_ERRNO 0x00050000u
#define JAIL_FILTER_MAX 1024
/* Write the filter into F (CAP instructions), DENY being what a call
 * not allowed gets: the count, or -1 when it does not fit. */
int jail_filter(struct jail_insn *f, int cap, uint32_t deny);
/* NR (an x86-64 system call number) is in the allowed list. */
int jail_allowed(long nr);

/* Find what this host gives: a forked child tries the namespaces.
 * jail_probe_start forks it (with J's enabled set) and returns at once,
 * jail_probe_finish waits for it and fills in J, so that the caller's
 * own work between the two overlaps the child's (about 1 ms, most of it
 * a network namespace made and torn down); jail_probe does both.  Nothing
 * in between may reap children it did not start. */
void jail_probe_start(struct jail *j);
void jail_probe_finish(struct jail *j);
void jail_probe(struct jail *j);
/* The namespaces and the filter are there: the fast mode may be the default. */
int jail_complete(const struct jail *j);
/* The layers in force, as one line ("user, mount, pid, ... namespaces;
 * ..."), or what --no-jail gives up. */
void jail_describe(const struct jail *j, char *buf, size_t cap);
/* In the forked child: the jail, then the kernel KFD with ARGV.  Never
 * returns: a step that fails is named on stderr, and the child exits 126.
 * The process that returns here waits for the jail's first process and
 * ends as the kernel did (its exit status, or its signal). */
_Noreturn void xjail_exec(const struct jail *j, int kfd, char **argv);

#endif
