#include "applets.h"
#include "../libk/args.h"
#include "../libk/err.h"
#include "../libk/guest.h"

#include <stdio.h>
#include <sys/utsname.h>
#include <unistd.h>

const char init_usage[] =
	"Usage: /init   (the kernel runs it as process 1)\n"
	"\n"
	"The guest side of umlk: 'umlk boot' puts this same binary at /init in the\n"
	"initramfs it builds, with /etc/umlk/boot.conf saying what to do.  init\n"
	"mounts /proc, /sys and /dev; mounts the root from /dev/ubda (writable\n"
	"ext4/ext2 through the COW file, or a read-only iso9660/squashfs under a\n"
	"tmpfs overlay); mounts the host directory given to --home on /home; sets\n"
	"the hostname; then either hands over to the guest's own init, or runs the\n"
	"command, reaps every process, unmounts the root and powers off, reporting\n"
	"the command's exit status to the host on console line 2.\n"
	"\n"
	"Without /etc/umlk/boot.conf (an initramfs from 'umlk initramfs'), it\n"
	"prints \"umlk-init: up, Linux RELEASE\" and powers off.  An error never\n"
	"kills process 1: it is reported and the machine powers off.  Run by hand\n"
	"(not as process 1) it refuses.\n";

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
	guest_mount_root();
	if (c.home[0])
		guest_mount_home(c.home);
	char offered[64];
	guest_network(&c, offered, sizeof(offered));
	/* --hostname, else the DHCP server's name, else the image's own. */
	guest_set_hostname(c.hostname[0] ? c.hostname : offered);
	guest_xauth(&c);
	if (!c.command && guest_has_init())
		guest_switch_root();
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
	int status = guest_run(&c);
	guest_shutdown();
	guest_report_status(status);
	guest_poweroff(0);
}
