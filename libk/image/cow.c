#include "image/cow.h"
#include "core/err.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/bytes.h"

#define V1_PATH 256
#define V1_SIZE (4 + 4 + V1_PATH + 4 + 8 + 4)           /* 280, packed */
#define V2_SIZE (4 + 4 + COW_PATH_MAX + 4 + 8 + 4)      /* 4120, packed */
#define V3B_SIZE 4136   /* 64-bit natural alignment: 4132 rounded to 8 */


static int path_ok(const char *p, size_t max)
{
	return memchr(p, 0, max) != NULL;
}

int cow_parse_header(const uint8_t *b, size_t n, const char *name, struct cow *c)
{
	const char *path;
	size_t pathmax;

	memset(c, 0, sizeof(*c));
	if (n < 8)
		return k_seterr("%s: not a UML COW file: only %zu bytes", name, n);
	if (k_le32(b) == COW_MAGIC) {
		c->version = k_le32(b + 4);
	} else if (k_be32(b) == COW_MAGIC) {
		c->version = k_be32(b + 4);
	} else {
		return k_seterr("%s: not a UML COW file (no MOOO magic)", name);
	}
	switch (c->version) {
	case 1:
		if (n < V1_SIZE)
			return k_seterr("%s: truncated COW v1 header (%zu of %d bytes)", name, n, V1_SIZE);
		path = (const char *)b + 8;
		pathmax = V1_PATH;
		/* The kernel reads v1 fields in host order whatever the
		 * magic's byte order; so do we (x86: little-endian). */
		c->mtime = k_le32(b + 264);
		c->size = k_le64(b + 268);
		c->sectorsize = k_le32(b + 276);
		c->bitmap_off = V1_SIZE;
		c->align = c->sectorsize;
		break;
	case 2:
		if (n < V2_SIZE)
			return k_seterr("%s: truncated COW v2 header (%zu of %d bytes)", name, n, V2_SIZE);
		path = (const char *)b + 8;
		pathmax = COW_PATH_MAX;
		c->mtime = k_be32(b + 8 + COW_PATH_MAX);
		c->size = k_be64(b + 12 + COW_PATH_MAX);
		c->sectorsize = k_be32(b + 20 + COW_PATH_MAX);
		c->bitmap_off = V2_SIZE;
		c->align = c->sectorsize;
		break;
	case 3:
		/* The broken layout puts cow_format (always 0) where the good
		 * one has the first bytes of an absolute path: the kernel tells
		 * them apart by those 4 bytes. */
		if (n >= 36 && !memcmp(b + 32, "\0\0\0\0", 4)) {
			c->broken = 1;
			if (n < V3B_SIZE)
				return k_seterr("%s: truncated COW v3 header (%zu of %d bytes)",
						name, n, V3B_SIZE);
			c->mtime = k_be32(b + 8);       /* bug-compatible: 32 bits */
			c->size = k_be64(b + 16);
			c->sectorsize = k_be32(b + 24);
			c->align = k_be32(b + 28);
			path = (const char *)b + 36;
			c->bitmap_off = V3B_SIZE;
		} else {
			if (n < COW_V3_HEADER)
				return k_seterr("%s: truncated COW v3 header (%zu of %d bytes)",
						name, n, COW_V3_HEADER);
			c->mtime = k_be32(b + 8);
			c->size = k_be64(b + 12);
			c->sectorsize = k_be32(b + 20);
			c->align = k_be32(b + 24);
			if (k_be32(b + 28) != 0)
				return k_seterr("%s: unknown COW format %" PRIu32 " (only 0, the bitmap)",
						name, k_be32(b + 28));
			path = (const char *)b + 32;
			c->bitmap_off = COW_V3_HEADER;
		}
		pathmax = COW_PATH_MAX;
		if (c->align == 0 || c->align > (1u << 24) || (c->align & (c->align - 1)))
			return k_seterr("%s: bad COW alignment %" PRIu32, name, c->align);
		c->bitmap_off = (c->bitmap_off + c->align - 1) / c->align * c->align;
		break;
	default:
		return k_seterr("%s: unknown COW version %" PRIu32 " (1, 2 and 3 are known)",
				name, c->version);
	}
	if (!path_ok(path, pathmax))
		return k_seterr("%s: backing file name is not terminated", name);
	memcpy(c->backing, path, strlen(path) + 1);
	if (!c->backing[0])
		return k_seterr("%s: no backing file named in the COW header", name);
	if (c->sectorsize < 512 || c->sectorsize > 65536 || (c->sectorsize & (c->sectorsize - 1)))
		return k_seterr("%s: bad sector size %" PRIu32, name, c->sectorsize);
	if (c->size > (1ULL << 56))
		return k_seterr("%s: backing size %" PRIu64 " is implausible", name, c->size);

	/* Layout, as the kernel's cow_sizes() computes it. */
	if (c->version < 3) {
		c->bitmap_len = (c->size + c->sectorsize - 1) / (8ULL * c->sectorsize);
		c->nsectors = c->bitmap_len * 8;        /* the rounding bug */
		uint64_t end = c->bitmap_off + c->bitmap_len;
		c->data_off = (end + c->sectorsize - 1) / c->sectorsize * c->sectorsize;
	} else {
		c->nsectors = (c->size + c->sectorsize - 1) / c->sectorsize;
		c->bitmap_len = (c->nsectors + 7) / 8;
		uint64_t end = c->bitmap_off + c->bitmap_len;
		c->data_off = (end + c->align - 1) / c->align * c->align;
	}
	/* Never look past the backing image, whatever the bitmap covers. */
	uint64_t real = (c->size + c->sectorsize - 1) / c->sectorsize;
	if (c->nsectors > real)
		c->nsectors = real;
	return 0;
}

int cow_open(struct cow *c, const struct ksrc *src)
{
	uint8_t head[COW_HEADER_MAX];
	size_t n = src->size < sizeof(head) ? src->size : sizeof(head);

	if (ksrc_read(src, head, n, 0) < 0)
		return -1;
	if (cow_parse_header(head, n, src->name, c) < 0)
		return -1;
	if (c->bitmap_off + c->bitmap_len > src->size)
		return k_seterr("%s: truncated: the bitmap ends at %" PRIu64
				" but the file is %" PRIu64 " bytes", src->name,
				c->bitmap_off + c->bitmap_len, src->size);
	c->bitmap = malloc(c->bitmap_len ? c->bitmap_len : 1);
	if (!c->bitmap)
		return k_seterr("%s: out of memory for a %" PRIu64 "-byte bitmap",
				src->name, c->bitmap_len);
	if (ksrc_read(src, c->bitmap, c->bitmap_len, c->bitmap_off) < 0) {
		cow_close(c);
		return -1;
	}
	/* A changed sector must have its data in the file.  (The kernel
	 * extends new COW files to their full size, so a shorter file with
	 * set bits was cut short.) */
	for (uint64_t s = c->nsectors; s-- > 0;) {
		if (!cow_test(c, s))
			continue;
		uint64_t end = c->data_off + (s + 1) * c->sectorsize;
		if (end > src->size) {
			k_seterr("%s: truncated: sector %" PRIu64 " is marked changed but its data"
				 " would end at %" PRIu64 ", past the end of the file (%" PRIu64 " bytes)",
				 src->name, s, end, src->size);
			cow_close(c);
			return -1;
		}
		break;          /* the highest set sector decides */
	}
	return 0;
}

void cow_close(struct cow *c)
{
	free(c->bitmap);
	c->bitmap = NULL;
}

uint64_t cow_count(const struct cow *c)
{
	uint64_t n = 0;

	for (uint64_t i = 0; i < c->nsectors / 8; i++)
		n += __builtin_popcount(c->bitmap[i]);
	for (uint64_t s = c->nsectors / 8 * 8; s < c->nsectors; s++)
		n += cow_test(c, s);
	return n;
}

int cow_check_backing(const struct cow *c, const char *path)
{
	struct stat st;

	if (stat(path, &st) < 0)
		return k_seterr("backing file %s:", path);
	if ((uint64_t)st.st_size != c->size)
		return k_seterr("backing file %s is %" PRIu64 " bytes, but the COW file was made"
				" over one of %" PRIu64 " bytes: not the same image",
				path, (uint64_t)st.st_size, c->size);
	if ((uint64_t)(uint32_t)st.st_mtime != c->mtime)
		return k_seterr("backing file %s was modified (mtime %" PRIu64 ", the COW file"
				" expects %" PRIu64 "): the COW no longer applies to it",
				path, (uint64_t)(uint32_t)st.st_mtime, c->mtime);
	return 0;
}

void cow_init_v3(struct cow *c, const char *abs_backing, uint64_t size, uint64_t mtime)
{
	memset(c, 0, sizeof(*c));
	c->version = 3;
	snprintf(c->backing, sizeof(c->backing), "%s", abs_backing);
	c->mtime = (uint32_t)mtime;
	c->size = size;
	c->sectorsize = 512;
	c->align = 4096;        /* the kernel passes PAGE_SIZE */
	c->bitmap_off = (COW_V3_HEADER + c->align - 1) / c->align * c->align;
	c->nsectors = (size + 511) / 512;
	c->bitmap_len = (c->nsectors + 7) / 8;
	c->data_off = (c->bitmap_off + c->bitmap_len + c->align - 1) / c->align * c->align;
	c->bitmap = xcalloc(1, c->bitmap_len);
}

void cow_header_v3(const struct cow *c, uint8_t *b)
{
	memset(b, 0, COW_V3_HEADER);
	k_put_be32(b, COW_MAGIC);
	k_put_be32(b + 4, 3);
	k_put_be32(b + 8, (uint32_t)c->mtime);
	k_put_be64(b + 12, c->size);
	k_put_be32(b + 20, c->sectorsize);
	k_put_be32(b + 24, c->align);
	k_put_be32(b + 28, 0);
	memcpy(b + 32, c->backing, strlen(c->backing));
}

void xcow_create(const char *cowpath, const char *backing, int force)
{
	char abs[PATH_MAX];
	struct stat st;
	struct cow c;

	if (!realpath(backing, abs))
		xdie("%s:", backing);
	if (strlen(abs) >= COW_PATH_MAX)
		xdie("%s: path longer than the %d bytes a COW header holds", abs, COW_PATH_MAX - 1);
	if (stat(abs, &st) < 0)
		xdie("%s:", abs);
	if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))
		xdie("%s: not a regular file or block device", abs);
	uint64_t size = st.st_size;
	if (S_ISBLK(st.st_mode)) {
		int fd = open(abs, O_RDONLY | O_CLOEXEC);
		off_t end = fd < 0 ? -1 : lseek(fd, 0, SEEK_END);
		if (end < 0)
			xdie("%s: cannot find its size:", abs);
		size = end;
		close(fd);
	}
	if (!force && access(cowpath, F_OK) == 0)
		xdie("%s: already exists (use -f to replace it)", cowpath);
	cow_init_v3(&c, abs, size, st.st_mtime);
	uint8_t head[COW_V3_HEADER];
	cow_header_v3(&c, head);
	struct kout o;
	xout_open(&o, cowpath);
	if (!o.seekable)
		xdie("%s: a COW file must be a seekable file", o.name);
	/* The bitmap is all zeros: like the kernel, leave it a hole. */
	if (full_pwrite(o.fd, head, sizeof(head), 0) < 0)
		xdie("%s: write failed:", o.name);
	/* Like the kernel: extend to data_off + size with a hole. */
	if (o.regular && ftruncate(o.fd, c.data_off + c.size) < 0)
		xdie("%s: cannot set size:", o.name);
	xout_commit(&o);
	cow_close(&c);
}
