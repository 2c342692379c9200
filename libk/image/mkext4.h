/* mkext4: an empty ext4 filesystem written by umlk (see mkext4.c for
 * what it holds), for the upper layer of --cow and the home image. */
#ifndef UMLK_MKEXT4_H
#define UMLK_MKEXT4_H

#include <stdint.h>

/* Write an empty ext4 of SIZE bytes (8 MiB to 16 TiB; a tail short of a
 * 4 KiB block is left unused) at byte BASE of FD, which must be a fresh
 * file at least that large and read as zeros there (sparse).  LABEL: up
 * to 16 bytes.  The root directory belongs to root.  -1 with k_seterr(). */
int k_mkext4(int fd, uint64_t base, uint64_t size, const char *label);

#endif
