/* boot: the host side of 'umlk boot'.
 *
 * Turns an ISO, cloop file or filesystem image into a backing file for the
 * UML kernel (a cloop is extracted once into the cache, keyed by the source
 * file's identity and its cloop index), puts a COW file on top, builds the
 * initramfs in memory (a memfd the kernel opens as /proc/self/fd/N), and
 * runs the kernel as a child, so it can relay the guest command's exit
 * status (console line 2, a pipe) and clean up after it.
 *
 * Console lines with a command: tty0 = the user's stdin/stdout, tty1 =
 * stderr, tty2 = the status pipe, tty3 = kernel messages (shown with
 * --verbose).  Without one: tty1 = the user's terminal and the console.
 */
#ifndef UMLK_BOOT_H
#define UMLK_BOOT_H

#include <stddef.h>
#include <stdint.h>

#define BOOT_APPEND_MAX 32      /* words in --append */

/* --host-cpu: auto (CPU 0 on the first host CPU no other guest of the
 * user holds, the others after it), none (the host moves a guest of one
 * CPU), or that CPU + 1. */
#define BOOT_HOST_CPU_AUTO 0
#define BOOT_HOST_CPU_NONE (-1)

struct boot_opts {
	const char *image;
	const char *cow;        /* keep changes here; NULL: a temporary COW */
	uint64_t cow_size;      /* of a new upper layer (read-only roots); 0: 4 GiB */
	const char *root;       /* the root's file inside an ISO; NULL: found */
	const char *overlay_size;       /* the tmpfs upper layer's size; NULL: the default */
	int info;               /* print what was found in the image, boot nothing */
	const char *kernel;     /* NULL: embedded, else build/linux beside us */
	const char *home;       /* /home: a host directory to share, or a home image */
	uint64_t home_size;     /* of a new home image; 0: 1 GiB */
	int home_cache;         /* --home DIR: what the guest may keep (enum fshare_cache) */
	int home_cache_set;     /* given: an error without --home DIR */
	const char *ssh_command;        /* --home ssh://: the command instead of ssh */
	unsigned ssh_timeout;   /* --home ssh://: seconds a request may take; 0: 20 */
	const char *init;       /* static umlk for the guest; NULL: this file */
	const char *hostname;
	const char *net;        /* switch control socket, "auto", or NULL */
	const char *mac;        /* eth0's MAC; NULL: derived from the COW file */
	int no_dhcp;            /* leave eth0 unconfigured */
	const char *env[16];    /* NAME=VALUE for the guest's command */
	int nenv;
	const char *xcookie;    /* MIT-MAGIC-COOKIE-1, 32 hex digits, for $DISPLAY */
	uint64_t mem;           /* bytes */
	uint64_t cache_bytes;   /* inflated cloop blocks kept; 0: the default */
	int disk_threads;       /* workers serving the disk; 0: the default */
	int trusted;            /* the fast mode even without a complete jail */
	int isolated;           /* ptrace mode on one CPU, whatever the jail */
	int no_jail;            /* no jail for the kernel (debugging) */
	int disk_full_wait;     /* seconds a write may wait for room, or BOOT_WAIT_*; 0: the default */
	int cpus;               /* guest CPUs (the fast mode only); 0: the host's, at most 4 */
	int host_cpu;           /* the host CPU the kernel is kept on, + 1; or BOOT_HOST_CPU_* */
	const char *append;     /* kernel parameters added last, or NULL */
	int verbose;
	char **cmd;             /* NULL: interactive, the guest's own init */
	/* cow-merge's work on the upper layer (upperdiff.h): "export" or
	 * "apply", with the job disk; the root is not mounted. */
	const char *job;
	struct bsrc *jobdisk;
	/* An http:// image (see remote.h): */
	const char *mirrors[8];
	int nmirrors;
	const char *index_url;  /* NULL: the image's URL + .umlkidx */
	int insecure;           /* allow a URL without #sha256= */
	uint64_t cache_max;     /* the chunk cache's cap; 0: the default */
	int timeout_s;          /* HTTP connect and idle timeouts; 0: the default */
	/* Recording a boot profile (umlk index --profile): the chunks of
	 * TRACE_CHUNK bytes read, in order, into a malloc'ed *TRACE_LIST. */
	uint32_t trace_chunk;
	uint32_t **trace_list, *trace_n;
};

/* The escapes on an interactive guest's terminal, as ssh's: after Enter
 * (or at the start), "~." halts the guest and umlk exits, "~~" sends one
 * "~", "~?" shows them; any other byte after "~" goes on with it.  Filter
 * IN (N bytes) into OUT (room for N + 1): the bytes for the guest in
 * *OUTLEN; returns BOOT_ESC_HALT or _HELP when one was typed (the rest of
 * IN is dropped), else 0. */
struct boot_escape { int line_start, tilde, esc; };
#define BOOT_ESC_HALT 1
#define BOOT_ESC_HELP 2
int boot_escape(struct boot_escape *e, const uint8_t *in, size_t n, uint8_t *out, size_t *outlen);

/* --disk-full-wait: "inf", "0"; its default is 60 s with a command, for
 * ever for the guest's own init (the user is there to free room, or to
 * type ~.). */
#define BOOT_WAIT_FOREVER (-1)
#define BOOT_WAIT_NONE (-2)
#define BOOT_WAIT_COMMAND_DEFAULT 60
/* Exit statuses of umlk boot beyond the command's own: */
#define BOOT_EXIT_WRITE_ERROR 74        /* a write failed (EIO...): the guest was told */
#define BOOT_EXIT_DISK_FULL 75          /* no room within --disk-full-wait: the guest was stopped */

/* Returns the exit status to exit with. */
int xboot(const struct boot_opts *o);
/* The switch for --net NET ("auto": the user's private network, started if
 * needed) as an absolute socket path; dies if none answers there. */
char *xboot_switch(const char *net);
/* The user's private directory (see k_private_dir), or die: what --net
 * auto needs, since every guest must find the same one. */
void xboot_private_dir(char *dir, size_t cap);
/* Where this run keeps its temporary files and sockets: the private
 * directory, or when someone else holds its name, a fresh directory of
 * this run's own (mkdtemp), which boot_run_dir_done() removes. */
void xboot_run_dir(char *dir, size_t cap);
void boot_run_dir_done(void);
/* This run's own directory in RUNDIR, into DIR: boot-PID, locked (flock)
 * for as long as the returned descriptor stays open.  One left by a dead
 * run that had our pid (SIGKILL, a crash) is emptied and taken; when a
 * live run holds that name (our pid in another pid namespace), a fresh
 * boot-PID-XXXXXX.  Other dead runs' directories are removed on the way. */
int xboot_own_dir(const char *rundir, char *dir, size_t cap);

#endif
