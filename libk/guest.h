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

#endif
