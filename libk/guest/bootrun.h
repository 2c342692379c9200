/* bootrun: the parts of one 'umlk boot' run, shared by the files that
 * make it; for those files only (the interface is boot.h).
 *
 *   boot.c       the steps, in order (xboot), and --info
 *   bootdisk.c   the image and the guest's disks: the COW file of a
 *                writable root, the upper layer of a read-only one
 *   boothome.c   /home: a shared directory (virtio-fs) or a home image
 *   bootnet.c    --net: the switch, --net auto's private network, the
 *                run directory, eth0's MAC
 *   bootqsd.c    test only: the disk served by qemu-storage-daemon
 *   console.c    the kernel running: its terminal, the escapes, stops,
 *                the command's status
 */
#ifndef UMLK_BOOTRUN_H
#define UMLK_BOOTRUN_H

#include <limits.h>
#include <sys/types.h>

#include "block/bootimage.h"
#include "guest/boot.h"
#include "guest/guest.h"
#include "guest/jail.h"
#include "share/fuse.h"
#include "share/sftpfs.h"
#include "vhost/vblk.h"
#include "vhost/vfs.h"

/* ---- bootdisk.c */

/* The image: a file, or an http:// URL (fetched as read, verified; the
 * boot profile fetched first when PREFETCH).  *REMOTE: its web server's
 * source, or NULL for a file. */
void ximage_open(const struct boot_opts *o, struct image *im, int prefetch, struct bsrc **remote);
/* The guest's root disk: the image beneath a COW layer (--cow FILE, or an
 * unnamed temporary), or the image itself when it is read-only. */
struct bsrc *xopen_disk(const struct boot_opts *o, struct image *im, struct hold_policy *hold);
/* The upper layer of a read-only root (--cow FILE), or NULL. */
struct bsrc *xopen_upper(const struct boot_opts *o, const struct image *im, struct hold_policy *hold);
/* (Both writable ones wait for room on a full disk, as HOLD says.) */

/* ---- boothome.c */

struct home {
	int kind;                       /* 0: none; else HOME_SHARED or HOME_DISK */
	struct fshare *share;
	struct sftpfs *remote;          /* HOME_SSH */
	struct bsrc *disk;
	struct vblk blk;
	struct vfs fs;
	char sock[PATH_MAX];
};
#define HOME_SHARED 1
#define HOME_DISK 2
#define HOME_SSH 3
/* --home: a directory to share, or an image (made when missing). */
void xopen_home(const struct boot_opts *o, struct home *h, struct hold_policy *hold);
/* Serve it on SOCK; the kernel argument for it goes in ARG. */
struct pool;
void xhome_start(struct home *h, const char *sock, struct pool *pool, char *arg, size_t cap);
void home_stop(struct home *h);
/* Its server's thread on host CPU CPU (vu_keep_on_cpu): 0 or an errno;
 * 0 when there is no home. */
int home_keep_on_cpu(struct home *h, int cpu);

/* ---- bootnet.c */

/* eth0's MAC: --mac, else derived from the COW file's path (a kept COW
 * keeps its address), else random. */
void xguest_mac(const struct boot_opts *o, char out[18]);

/* ---- bootqsd.c */

struct disk_server {
	pid_t pid;
	char dir[PATH_MAX - 64];
};
/* With UMLK_TEST_DISK_SERVER=qemu-storage-daemon, serve the image's disk
 * on SOCK from QEMU's server instead: 1; else 0 (nothing done). */
int xdisk_server_start(struct disk_server *q, const struct boot_opts *o, struct image *im, const char *sock);
void disk_server_stop(struct disk_server *q);
/* In a child about to exec: signals as a new program expects them. */
void exec_signals(void);

/* ---- console.c */

/* Fork and exec the kernel (KFD, ARGV) in its jail (JAIL) and a process
 * group of its own, and supervise it until it ends: our terminal's input
 * relayed to IN_FD (a pseudo-terminal of umlk's own), raw, watched for
 * the escapes when ESCAPES; the guest's output pumped from pipes or that
 * pty to our stdout and stderr (the kernel never holds our terminal);
 * stop signals (the guest halted through the management console
 * MCSOCK); the command's status on STATUS_FD (console line 2).  COMMAND:
 * a command runs, not the guest's own init. */
#define KERNEL_PUMPS 4
struct kernel_run {
	int kfd;
	const char *what;       /* the kernel, for messages */
	char **argv;
	const struct jail *jail;
	int child_fds[12];      /* the kernel's only: closed here once it has them */
	int nchild_fds;
	int stdio;              /* the kernel's own stdout and stderr */
	int status_fd;          /* read end of console line 2, or -1 */
	int in_fd, escapes;     /* our terminal relayed to IN_FD, or -1 */
	struct { int from, to; } pumps[KERNEL_PUMPS];
	int npumps;
	int command;
	const char *mcsock;
	const int *kill_now;    /* set (by another thread): the guest is stopped at once */
	/* How it ended: */
	int wait_status;        /* the kernel's, from waitpid */
	int reported;           /* the command's status from the guest, or -1 */
	int stop_signal;        /* the signal that stopped us, or 0 */
	int escaped;            /* halted by the escape (~.) */
	int powered_off;        /* the guest's init powered off (the kernel then ended by us) */
};
void xkernel_run(struct kernel_run *k);
/* UML leaves UML_DIR/UMID behind when it does not exit cleanly. */
void remove_umid_dir(const char *mcsock);

#endif
