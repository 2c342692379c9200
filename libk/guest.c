#include "guest.h"
#include "cpio.h"
#include "err.h"
#include "xio.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <unistd.h>

void xinitramfs_self(uint8_t **out, size_t *len)
{
	struct cpio c;
	size_t selflen;
	uint8_t *self = xread_file("/proc/self/exe", &selflen);

	cpio_init(&c);
	cpio_dir(&c, "dev", 0755);
	cpio_chardev(&c, "dev/console", 0600, 5, 1);
	cpio_chardev(&c, "dev/null", 0666, 1, 3);
	cpio_dir(&c, "proc", 0555);
	cpio_dir(&c, "sys", 0555);
	cpio_dir(&c, "root", 0700);
	cpio_dir(&c, "tmp", 01777);
	cpio_dir(&c, "bin", 0755);
	cpio_file(&c, "init", 0755, self, selflen);
	cpio_symlink(&c, "bin/umlk", "/init");
	cpio_finish(&c);
	free(self);
	xgzip(c.buf, c.len, out, len, 6);
	cpio_free(&c);
}

_Noreturn void guest_poweroff(int status)
{
	fflush(stdout);
	fflush(stderr);
	sync();
	if (status)
		fprintf(stderr, "umlk init: powering off after an error (status %d)\n", status);
	reboot(RB_POWER_OFF);
	/* Not PID 1, or not allowed: there is nothing better left to do. */
	_exit(status);
}

static void die_hook(int status)
{
	guest_poweroff(status);
}

void guest_become_init(void)
{
	k_die_hook = die_hook;
}

static void mount_one(const char *src, const char *dir, const char *type, const char *opts)
{
	mkdir(dir, 0755);
	if (mount(src, dir, type, MS_NOSUID | MS_NOEXEC * !strcmp(type, "proc"), opts) < 0 &&
	    errno != EBUSY)
		k_warn("mount %s on %s:", type, dir);
}

void guest_mount_basics(void)
{
	mount_one("proc", "/proc", "proc", NULL);
	mount_one("sysfs", "/sys", "sysfs", NULL);
	mount_one("devtmpfs", "/dev", "devtmpfs", "mode=0755");
}
