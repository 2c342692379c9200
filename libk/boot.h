/* boot: the host side of 'umlk boot'.
 *
 * Turns an ISO, cloop file or filesystem image into a backing file for the
 * UML kernel (a cloop is extracted once into the cache, keyed by the source
 * file's identity and its cloop index), puts a COW file on top, builds the
 * initramfs in memory (a memfd the kernel opens as /proc/self/fd/N), and
 * runs the kernel as a child, so it can relay the guest command's exit
 * status (console line 2, a pipe) and clean up after it.
 *
 * Console lines: tty0 = the user's stdin/stdout, tty1 = stderr, tty2 = the
 * status pipe, tty3 = kernel messages (shown with --verbose).
 */
#ifndef UMLK_BOOT_H
#define UMLK_BOOT_H

#include <stddef.h>
#include <stdint.h>

struct boot_opts {
	const char *image;
	const char *cow;        /* keep changes here; NULL: a temporary COW */
	const char *kernel;     /* NULL: embedded, else build/linux beside us */
	const char *home;       /* host directory for the guest's /home */
	const char *init;       /* static umlk for the guest; NULL: this file */
	const char *hostname;
	const char *net;        /* switch control socket, "auto", or NULL */
	const char *mac;        /* eth0's MAC; NULL: derived from the COW file */
	int no_dhcp;            /* leave eth0 unconfigured */
	const char *env[16];    /* NAME=VALUE for the guest's command */
	int nenv;
	const char *xcookie;    /* MIT-MAGIC-COOKIE-1, 32 hex digits, for $DISPLAY */
	uint64_t mem;           /* bytes */
	int verbose;
	char **cmd;             /* NULL: interactive, the guest's own init */
};

/* Returns the exit status to exit with. */
int xboot(const struct boot_opts *o);
/* The switch for --net NET ("auto": the user's private network, started if
 * needed) as an absolute socket path; dies if none answers there. */
char *xboot_switch(const char *net);
/* $XDG_RUNTIME_DIR/umlk, else /tmp/umlk-UID: made if missing, and refused
 * unless it is this user's alone. */
void xboot_private_dir(char *dir, size_t cap);
/* The backing file for IMAGE (extracting into the cache if needed). */
char *xboot_backing(const char *image);

#endif
