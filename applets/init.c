#include "applets.h"
#include "core/args.h"
#include "core/err.h"
#include "guest/guest.h"
#include "guest/upperdiff.h"

#include <stdio.h>
#include <sys/utsname.h>
#include <unistd.h>

static const char usage[] =
	"Usage: /init   (the kernel runs it as process 1)\n"
	"\n"
	"The guest side of umlk: 'umlk boot' puts this same binary at /init in the\n"
	"initramfs it builds, with /etc/umlk/boot.conf saying what to do.  init\n"
	"mounts /proc, /sys and /dev; mounts the root from /dev/vda, the disk\n"
	"umlk serves (writable ext2/3/4, its writes kept by the host in the COW\n"
	"file, or a read-only iso9660/squashfs under a tmpfs overlay; the\n"
	"filesystem is read from the superblock); mounts what --home gave on\n"
	"/home (a host directory shared over virtio-fs, or a home image, the\n"
	"virtio disk whose serial is umlk-home); sets the hostname; waits until\n"
	"all the kernel's CPUs are up (it brings all but the first up while init\n"
	"starts); then either hands over to the guest's own init, or runs the\n"
	"command, reaps every process, unmounts the root and powers off, reporting\n"
	"the command's exit status to the host on console line 2.\n"
	"\n"
	"Without /etc/umlk/boot.conf (an initramfs from 'umlk initramfs'), it\n"
	"prints \"umlk-init: up, Linux RELEASE\" and powers off.  An error never\n"
	"kills process 1: it is reported and the machine powers off.  Run by hand\n"
	"(not as process 1) it refuses.\n";

APPLET(init, "init", "guest side: process 1 in the initramfs umlk builds", usage, NULL);

int init_main(int argc, char **argv)
{
	struct guest_conf c;
	struct utsname u;

	(void)argc;
	(void)argv;
	if (getpid() != 1)
		xdie("must run as process 1 (the kernel starts it as /init)");
	guest_become_init();
	guest_mount_basics();
	if (access("/etc/umlk/boot.conf", F_OK) < 0) {
		if (uname(&u) < 0)
			xdie("uname:");
		printf("umlk-init: up, %s %s %s\n", u.sysname, u.release, u.machine);
		guest_poweroff(0);
	}
	if (guest_read_conf(&c) < 0)
		xdie("%s", k_errmsg());
	if (c.command)
		guest_command_mode();
	if (c.job[0]) {
		/* cow-merge's work on an upper layer: the root is not mounted. */
		guest_report_status(guest_upper_job(&c));
		guest_poweroff(0);
	}
	xguest_mount_root(&c);
	if (c.home[0])
		xguest_mount_home(c.home);
	char offered[64];
	guest_network(&c, offered, sizeof(offered));
	/* --hostname, else the DHCP server's name, else the image's own. */
	guest_set_hostname(c.hostname[0] ? c.hostname : offered);
	guest_xauth(&c);
	guest_wait_cpus();
	if (!c.command && guest_has_init())
		xguest_switch_root();
	if (!c.command) {
		/* No init in the image (Debian's minbase has none): a login
		 * shell on the console, and power off when it ends. */
		static char *shell[] = { "/bin/sh", "-l", NULL };
		if (access("/newroot/bin/bash", X_OK) == 0)
			shell[0] = "/bin/bash";
		printf("umlk init: the image has no init: a shell on the console ('exit' powers off)\n");
		fflush(stdout);
		c.argv = shell;
		c.stdin_tty = 1;
		c.console_shell = 1;
	}
	int status = xguest_run(&c);
	guest_shutdown();
	guest_report_status(status);
	guest_poweroff(0);
}
