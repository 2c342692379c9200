/* guest: what umlk does inside the virtual machine, as PID 1, and the
 * initramfs that puts it there.
 *
 * The initramfs holds this very binary as /init plus the few directories
 * and device nodes the kernel and init need before devtmpfs is mounted. */
#ifndef UMLK_GUEST_H
#define UMLK_GUEST_H

#include <stddef.h>
#include <stdint.h>

/* Build a gzip'ed initramfs whose /init is the running executable. */
void xinitramfs_self(uint8_t **out, size_t *len);

/* PID 1 helpers: an error never kills PID 1 (that panics the kernel);
 * it is printed and the machine powers off instead. */
void guest_become_init(void);
void guest_mount_basics(void);
_Noreturn void guest_poweroff(int status);



#define GUEST_MAX_ENV 16

/* What the host tells the guest, in /etc/umlk/boot.conf inside the
 * initramfs ("key=value" lines) and /etc/umlk/argv (the command, its
 * arguments separated by NUL bytes). */
struct guest_conf {
	int command;            /* run argv and power off, else the guest's init */
	int stdin_tty;          /* the command's stdin is the console, else /dev/null */
	char hostname[65];
	char home[16];          /* what /home is: GUEST_HOME_SHARED, _DISK, or "" */
	int dhcp;               /* configure eth0 by DHCP when there is one */
	char mac[18];           /* eth0's MAC (virtio-net has none of its own), or "" */
	int layers;             /* the root's images, stacked; 0 or 1: one */
	int upper_disk;         /* the overlay's upper layer is a disk (--cow), else a tmpfs */
	char overlay_size[24];  /* the tmpfs upper layer's size= ("2G"), or "" */
	int release;            /* give the lease back at power-off (a temporary COW) */
	char *env[GUEST_MAX_ENV];       /* NAME=VALUE for the command */
	int nenv;
	char xcookie[33];       /* MIT-MAGIC-COOKIE-1 (hex) for $DISPLAY, or "" */
	int console_shell;      /* argv is a shell on the console (set in the guest) */
	char job[16];           /* "export"/"apply": umlk's own work on the upper layer (upperdiff.h) */
	char **argv;
};
int guest_read_conf(struct guest_conf *c);      /* -1 with k_seterr() */
/* Serialise for the initramfs; returns malloc'ed text. */
char *guest_conf_text(const struct guest_conf *c);

/* The root disk, served by the host (umlk's vhost-user server). */
#define GUEST_ROOT_DEV "/dev/vda"
/* Mount the root disk on /newroot, its filesystem read from the
 * superblock: writable ext2/3/4 (the host keeps the writes in the COW
 * layer), or a read-only iso9660/squashfs under a tmpfs overlay. */
/* Stacked layers are the disks with serials GUEST_LAYER_SERIAL1, 2, ...
 * over /dev/vda; a persistent upper layer is the disk GUEST_UPPER_SERIAL. */
#define GUEST_LAYER_SERIAL "umlk-layer"
#define GUEST_LAYERS_MAX 8
#define GUEST_UPPER_SERIAL "umlk-upper"
void xguest_mount_root(const struct guest_conf *c);
/* The disk whose virtio serial is SERIAL, as /dev/vdX in DEV, waiting a
 * while for the kernel to probe it: 0, or -1 with k_seterr(). */
int guest_disk_by_serial(const char *serial, char *dev, size_t cap);
void xguest_disk_by_serial(const char *serial, char *dev, size_t cap);
/* Attach FILE read-only to a free loop device, named in DEV: 0, or -1
 * with k_seterr(). */
int guest_loop_attach(const char *file, char *dev, size_t cap);
/* /home: the host directory umlk shares (virtio-fs, tag GUEST_HOME_TAG),
 * or the home image (the virtio disk whose serial is GUEST_HOME_SERIAL). */
#define GUEST_HOME_SHARED "shared"
#define GUEST_HOME_DISK "disk"
#define GUEST_HOME_TAG "home"
#define GUEST_HOME_SERIAL "umlk-home"
void xguest_mount_home(const char *kind);
void guest_set_hostname(const char *name);
/* lo up; eth0 (if the kernel has one) by DHCP, with resolv.conf in the new
 * root and a process that renews the lease.  Fills NAME with the host name
 * the server offered ("" if none).  Problems are reported, not fatal. */
void guest_network(const struct guest_conf *c, char *name, size_t cap);
/* The X cookie (if the host sent one) into GUEST_XAUTHORITY in the new
 * root, for the display named by the DISPLAY variable sent with it. */
void guest_xauth(const struct guest_conf *c);
#define GUEST_XAUTHORITY "/root/.Xauthority"
/* In command mode: init's own messages to the command's stderr line, and
 * a fatal error reports status 125 to the host. */
void guest_command_mode(void);
/* Tell the host the command's exit status (console line 2). */
void guest_report_status(int status);
/* Wait (at most 2 s) until every CPU the kernel has is up: a kernel with
 * kernel/patches/0008-um-secondary-cpus-come-up-after-the-boot.patch
 * brings all but the first up while init starts, and the guest's own init
 * or command should see the machine it was given. */
void guest_wait_cpus(void);
/* Run argv chrooted in /newroot, reap everything, return its exit status. */
int xguest_run(const struct guest_conf *c);
/* Is there an init in /newroot to hand over to? */
int guest_has_init(void);
/* Make /newroot the root and exec its init. */
_Noreturn void xguest_switch_root(void);
/* Stop every other process and unmount /newroot, so the COW file is clean. */
void guest_shutdown(void);

/* Console lines (UML con0..con3 = /dev/tty0..3): the host wires them.
 * With a command, the first three; without one, the user's terminal is
 * tty1 and the console (where inits start their first getty). */
#define GUEST_TTY_INTERACTIVE "/dev/tty1"
#define GUEST_TTY_STDIO "/dev/tty0"
#define GUEST_TTY_STDERR "/dev/tty1"
#define GUEST_TTY_STATUS "/dev/tty2"
/* The line umlk's init writes there once every disk is synced and
 * unmounted, just before it powers off: from then on nothing of the
 * guest's is in the kernel, and umlk ends it at once. */
#define GUEST_POWEROFF_MARK "umlk-poweroff"

/* The initramfs for 'boot': /init is INIT (NULL: this executable, without
 * the kernel payload a release file carries), with CONF and the command
 * in /etc/umlk; gzip'ed when GZIP (boot's never leaves memory: plain). */
void xinitramfs_build(const char *init, const struct guest_conf *conf, int gzip, uint8_t **out, size_t *len);
/* The same, plain, in a new memfd (its descriptor, not close-on-exec: the
 * kernel is given it), the program copied into it by the host's kernel. */
int xinitramfs_memfd(const char *init, const struct guest_conf *conf);
#endif
