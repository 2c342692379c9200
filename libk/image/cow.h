/* cow: UML copy-on-write files, bit-compatible with the kernel's
 * arch/um/drivers/cow_user.c and arch/um/drivers/ubd_kern.c.
 *
 * A COW file is a header naming the backing image (absolute path, size,
 * mtime), a bitmap with one bit per sector (bit i%8 of byte i/8: set when
 * sector i was written), and a data area where sector i lives at
 * data_off + i * sectorsize.  Versions 1 and 2 have fixed layouts and a
 * bitmap length that rounds down (the kernel's "rounding bug", kept for
 * compatibility); version 3 is big-endian, aligns the bitmap and data to
 * `align`, and exists in a "broken" 64-bit layout that the kernel also
 * accepts.  umlk writes version 3 exactly as the kernel does.
 */
#ifndef UMLK_COW_H
#define UMLK_COW_H

#include <stddef.h>
#include <stdint.h>

#include "core/xio.h"

#define COW_MAGIC 0x4f4f4f4d            /* "MOOO" */
#define COW_PATH_MAX 4096
#define COW_V3_HEADER 4128              /* sizeof(struct cow_header_v3) */
#define COW_HEADER_MAX 4136             /* the largest header layout */

struct cow {
	uint32_t version;
	int broken;             /* v3 in the 64-bit layout */
	char backing[COW_PATH_MAX + 1];
	uint64_t mtime;         /* seconds, as recorded */
	uint64_t size;          /* backing image size, bytes */
	uint32_t sectorsize, align;
	uint64_t bitmap_off, bitmap_len, data_off;
	uint64_t nsectors;      /* sectors the bitmap covers */
	uint8_t *bitmap;        /* bitmap_len bytes, after cow_open */
};

/* Parse a header from the first N bytes of a file (pure: no I/O).  Fills
 * everything but the bitmap; -1 with k_seterr(), naming NAME. */
int cow_parse_header(const uint8_t *buf, size_t n, const char *name, struct cow *c);
/* Parse the header and read the bitmap, checking they fit the file. */
int cow_open(struct cow *c, const struct ksrc *src);
void cow_close(struct cow *c);

static inline int cow_test(const struct cow *c, uint64_t sector)
{
	return sector < c->nsectors && (c->bitmap[sector / 8] >> (sector % 8)) & 1;
}
static inline void cow_set(struct cow *c, uint64_t sector)
{
	c->bitmap[sector / 8] |= (uint8_t)(1u << (sector % 8));
}
uint64_t cow_count(const struct cow *c);        /* sectors marked changed */

/* The kernel's check: the backing file has the recorded size and mtime.
 * -1 with k_seterr() explaining the mismatch. */
int cow_check_backing(const struct cow *c, const char *path);

/* Fill C for a new version-3 COW over a backing image of SIZE bytes with
 * MTIME, as the kernel creates them (512-byte sectors, 4096 alignment),
 * with an empty bitmap; and serialise its header into BUF[COW_V3_HEADER]. */
void cow_init_v3(struct cow *c, const char *abs_backing, uint64_t size, uint64_t mtime);
void cow_header_v3(const struct cow *c, uint8_t *buf);

/* Create COW over BACKING (its absolute path recorded), as uml_mkcow and
 * the kernel do; the file appears complete or not at all.  Exits on error. */
void xcow_create(const char *cowpath, const char *backing, int force);

#endif
