/* live: where a live ISO keeps its root filesystem, and what its boot
 * loader passes to the kernel, found by reading the ISO (nothing mounted).
 *
 * Layouts, looked for in this order:
 *   KNOPPIX       KNOPPIX/KNOPPIX, then KNOPPIX/KNOPPIX1, KNOPPIX2, ...
 *                 stacked over it (cloop files)
 *   Debian Live   live/filesystem.squashfs; the images live/filesystem.module
 *                 lists when there is one, else every live/NAME.squashfs in
 *                 name order, filesystem.squashfs first (as live-boot does)
 *   Ubuntu casper casper/filesystem.squashfs, or the layered images of
 *                 newer releases (minimal.squashfs, minimal.standard.squashfs,
 *                 minimal.standard.live.squashfs: the deepest name and each
 *                 of its prefixes, bottom first)
 *   Fedora        LiveOS/squashfs.img (a squashfs whose LiveOS/rootfs.img is
 *                 the root, or a root itself: the guest looks inside)
 *   Arch          arch/x86_64/airootfs.sfs (also airootfs.erofs is not read)
 *   SystemRescue  sysresccd/x86_64/airootfs.sfs
 * or the file --root names.  Layers are listed bottom first.
 *
 * The kernel parameters come from the boot loader's first entry: GRUB's
 * 'linux' line (boot/grub/grub.cfg), else syslinux's 'append'
 * (isolinux/live.cfg, isolinux/isolinux.cfg, isolinux/txt.cfg,
 * syslinux/syslinux.cfg, boot/isolinux/isolinux.cfg), without what means
 * nothing under UML (initrd=, BOOT_IMAGE=, vga=, video=, splash, nomodeset,
 * console=, the "---" separator).
 *
 * The ISO is hostile: names, counts and config text are bounded and
 * checked; what does not fit is an error naming the ISO, never a guess.
 */
#ifndef UMLK_LIVE_H
#define UMLK_LIVE_H

#include <stddef.h>
#include <stdint.h>

#include "core/xio.h"

#define LIVE_LAYERS_MAX 8
#define LIVE_PATH_MAX 256
#define LIVE_PARAMS_MAX 1024

struct live_layer {
	char path[LIVE_PATH_MAX];       /* in the ISO: "live/filesystem.squashfs" */
	uint64_t off, len;              /* its bytes in the ISO */
};

struct live_layout {
	char kind[32];                  /* "KNOPPIX", "Debian Live", ... or "--root" */
	int nlayers;
	struct live_layer layer[LIVE_LAYERS_MAX];
	char params[LIVE_PARAMS_MAX];   /* kernel parameters from the boot loader, or "" */
	char params_from[LIVE_PATH_MAX];        /* the file they came from, or "" */
};

/* Find the root's layers in the ISO ISO (ROOT: a path the user named, or
 * NULL to look), and the boot loader's kernel parameters.  0 found; -1
 * with k_seterr() when none of the layouts is there (saying what was
 * looked for), the ISO is damaged, or a layout in it is broken. */
int live_find(const struct ksrc *iso, const char *root, struct live_layout *out);

/* The kernel parameters in boot loader configuration TEXT (N bytes),
 * GRUB's if GRUB is nonzero, else syslinux's: the first entry's, filtered
 * as above, into OUT (CAP bytes).  1 found, 0 none. */
int live_params(const char *text, size_t n, int grub, char *out, size_t cap);

#endif
