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
	"The guest side of umlk: the kernel starts this same binary as /init from\n"
	"the initramfs that umlk builds.  It mounts /proc, /sys and /dev, reports\n"
	"the kernel version on the console (\"umlk-init: up, Linux RELEASE\"), and\n"
	"powers the machine off.  An error never kills process 1: it is reported\n"
	"and the machine powers off.  Run by hand (not as process 1) it refuses.\n";

int init_main(int argc, char **argv)
{
	struct utsname u;

	(void)argc;
	(void)argv;
	if (getpid() != 1)
		xdie("must run as process 1 (the kernel starts it as /init)");
	guest_become_init();
	guest_mount_basics();
	if (uname(&u) < 0)
		xdie("uname:");
	printf("umlk-init: up, %s %s %s\n", u.sysname, u.release, u.machine);
	guest_poweroff(0);
}
