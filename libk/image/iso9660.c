#include "image/iso9660.h"
#include "core/bytes.h"
#include "core/err.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DIR (16u << 20)     /* a directory larger than this is refused */


int iso_detect(const struct ksrc *src)
{
	uint8_t b[6];

	return ksrc_read(src, b, 6, 16 * ISO_SECTOR) == 0 && !memcmp(b + 1, "CD001", 5);
}

/* The Rock Ridge name in a record's system use area, if any. */
static int rr_name(const uint8_t *su, size_t n, const uint8_t **name, size_t *len)
{
	size_t i = 0;

	while (i + 4 <= n) {
		size_t l = su[i + 2];
		if (l < 4 || i + l > n)
			break;
		if (su[i] == 'N' && su[i + 1] == 'M' && l >= 5 && !(su[i + 4] & 0x06)) {
			*name = su + i + 5;
			*len = l - 5;
			return 1;
		}
		if (su[i] == 'S' && su[i + 1] == 'T')   /* end of entries */
			break;
		i += l;
	}
	return 0;
}

static int name_is(const uint8_t *name, size_t len, const char *want, size_t wlen)
{
	if (len != wlen)
		return 0;
	for (size_t i = 0; i < len; i++)
		if (tolower(name[i]) != tolower((unsigned char)want[i]))
			return 0;
	return 1;
}

/* A record's name as a user writes it: the Rock Ridge name, else the ISO
 * name without ";1" and a trailing dot. */
static void record_name(const uint8_t *r, size_t rlen, size_t skip, const uint8_t **out, size_t *outlen)
{
	size_t nlen = r[32];
	const uint8_t *name = r + 33;
	size_t su = 33 + nlen + !(nlen & 1);    /* a pad byte after even names */

	if (su + skip < rlen && rr_name(r + su + skip, rlen - su - skip, out, outlen))
		return;
	size_t n = nlen;
	for (size_t i = 0; i < nlen; i++)
		if (name[i] == ';') {
			n = i;
			break;
		}
	if (n && name[n - 1] == '.')
		n--;
	*out = name;
	*outlen = n;
}

/* Does this record's name match WANT? */
static int record_matches(const uint8_t *r, size_t rlen, const char *want, size_t wlen, size_t skip)
{
	const uint8_t *name;
	size_t n;

	record_name(r, rlen, skip, &name, &n);
	return name_is(name, n, want, wlen);
}

/* Look for WANT in the directory at LBA/SIZE.  On a match fill *lba, *size,
 * *isdir (joining multi-extent files).  1 found, 0 not, -1 damaged. */
static int dir_lookup(const struct ksrc *src, uint64_t lba, uint64_t size, const char *want,
		      size_t wlen, size_t susp_skip, uint64_t *flba, uint64_t *fsize, int *isdir,
		      void (*list)(const char *name, void *ctx), void *list_ctx)
{
	int list_skip = 0;
	const char *name = src->name;

	if (size > MAX_DIR)
		return k_seterr("%s: a directory of %" PRIu64 " bytes is implausible", name, size);
	uint8_t *d = malloc(size ? size : 1);
	if (!d)
		return k_seterr("out of memory");
	if (ksrc_read(src, d, size, lba * ISO_SECTOR) < 0) {
		free(d);
		return k_seterr("%s: a directory extent lies outside the image", name);
	}
	int found = 0;
	uint64_t next_off = 0;
	for (uint64_t i = 0; i < size;) {
		size_t rl = d[i];
		if (rl == 0) {          /* no record crosses a sector: skip to the next */
			i = (i / ISO_SECTOR + 1) * ISO_SECTOR;
			continue;
		}
		if (rl < 34 || i + rl > size || (i % ISO_SECTOR) + rl > ISO_SECTOR ||
		    33u + d[i + 32] > rl) {
			free(d);
			return k_seterr("%s: damaged directory record at byte %" PRIu64, name,
					lba * ISO_SECTOR + i);
		}
		const uint8_t *r = d + i;
		uint64_t elba = k_le32(r + 2), elen = k_le32(r + 10);
		int flags = r[25];
		if (found) {
			/* The rest of a multi-extent file follows its first record. */
			if (elba * ISO_SECTOR != next_off) {
				free(d);
				return k_seterr("%s: %s is stored in extents that are not"
						" contiguous; not supported", name, want);
			}
			*fsize += elen;
			next_off += elen;
		} else if (r[32] == 1 && r[33] <= 1) {
			/* "." and "..": skip */
		} else if (!want) {
			/* Listing: every file (not directory) by name, the first
			 * record of a multi-extent file only. */
			const uint8_t *nm;
			size_t nl;
			record_name(r, rl, susp_skip, &nm, &nl);
			if (!(flags & 2) && !list_skip && nl && nl < 256) {
				char buf[256];
				memcpy(buf, nm, nl);
				buf[nl] = 0;
				if (!memchr(buf, '/', nl) && !memchr(buf, 0, nl))
					list(buf, list_ctx);
			}
			list_skip = (flags & 0x80) != 0;
		} else if (record_matches(r, rl, want, wlen, susp_skip)) {
			found = 1;
			*flba = elba;
			*fsize = elen;
			*isdir = (flags & 2) != 0;
			next_off = elba * ISO_SECTOR + (elen + ISO_SECTOR - 1) / ISO_SECTOR * ISO_SECTOR;
			if (elen % ISO_SECTOR && (flags & 0x80)) {
				free(d);
				return k_seterr("%s: damaged multi-extent file %s", name, want);
			}
		}
		if (found && !(flags & 0x80))
			break;
		i += rl;
	}
	free(d);
	return want ? found : 1;
}

/* Walk PATH from the root: 1 and its extent (*lba, *size, *isdir), 0 if
 * absent, -1 damaged.  LIST: list the directory PATH names instead. */
static int walk(const struct ksrc *src, const char *path, uint64_t *lba_out, uint64_t *size_out, int *isdir_out,
		void (*list)(const char *name, void *ctx), void *list_ctx)
{
	uint8_t pvd[ISO_SECTOR];
	const char *name = src->name;
	int have = 0;

	/* Volume descriptors from sector 16 until the terminator (255). */
	for (uint64_t s = 16; s < 16 + 64; s++) {
		if (ksrc_read(src, pvd, ISO_SECTOR, s * ISO_SECTOR) < 0)
			return k_seterr("%s: not an ISO image: truncated before its volume descriptors", name);
		if (memcmp(pvd + 1, "CD001", 5))
			return k_seterr("%s: not an ISO image (no CD001 volume descriptor)", name);
		if (pvd[0] == 1) {
			have = 1;
			break;
		}
		if (pvd[0] == 255)
			break;
	}
	if (!have)
		return k_seterr("%s: no primary volume descriptor", name);
	if ((pvd[128] | pvd[129] << 8) != ISO_SECTOR)
		return k_seterr("%s: logical block size %d is not supported (only 2048)",
				name, pvd[128] | pvd[129] << 8);
	const uint8_t *root = pvd + 156;
	uint64_t lba = k_le32(root + 2), size = k_le32(root + 10);

	/* Rock Ridge: the root's "." record starts with an SP entry saying how
	 * many bytes to skip in every system use area (nearly always 0). */
	size_t skip = 0;
	uint8_t first[ISO_SECTOR];
	if (ksrc_read(src, first, ISO_SECTOR, lba * ISO_SECTOR) < 0)
		return k_seterr("%s: the root directory lies outside the image", name);
	if (first[0] >= 34 + 7 && first[32] == 1) {
		const uint8_t *su = first + 34;
		if (su[0] == 'S' && su[1] == 'P' && su[2] == 7 && su[4] == 0xbe && su[5] == 0xef)
			skip = su[6];
	}

	int isdir = 1;
	for (const char *p = path; *p;) {
		const char *slash = strchr(p, '/');
		size_t n = slash ? (size_t)(slash - p) : strlen(p);
		if (!isdir)
			return 0;
		if (n) {
			char part[256];
			if (n >= sizeof(part))
				return 0;
			memcpy(part, p, n);
			part[n] = 0;
			int r = dir_lookup(src, lba, size, part, n, skip, &lba, &size, &isdir, NULL, NULL);
			if (r <= 0)
				return r;
		}
		p += n + (slash != NULL);
	}
	if (list) {
		if (!isdir)
			return 0;
		return dir_lookup(src, lba, size, NULL, 0, skip, &lba, &size, &isdir, list, list_ctx);
	}
	*lba_out = lba;
	*size_out = size;
	*isdir_out = isdir;
	return 1;
}

int iso_list(const struct ksrc *src, const char *dir, void (*fn)(const char *name, void *ctx), void *ctx)
{
	uint64_t lba, size;
	int isdir;

	return walk(src, dir, &lba, &size, &isdir, fn, ctx);
}

int iso_find(const struct ksrc *src, const char *path, uint64_t *off, uint64_t *len)
{
	uint64_t lba, size;
	int isdir;
	const char *name = src->name;
	int r = walk(src, path, &lba, &size, &isdir, NULL, NULL);

	if (r <= 0)
		return r;
	if (isdir)
		return 0;
	if (lba * ISO_SECTOR > src->size || size > src->size - lba * ISO_SECTOR)
		return k_seterr("%s: %s extends past the end of the image", name, path);
	*off = lba * ISO_SECTOR;
	*len = size;
	return 1;
}

int iso_open_knoppix(struct ksrc *src)
{
	uint64_t off, len;

	if (!iso_detect(src))
		return 0;
	int r = iso_find(src, "KNOPPIX/KNOPPIX", &off, &len);
	if (r < 0)
		return -1;
	if (r == 0)
		return k_seterr("%s: an ISO image with no KNOPPIX/KNOPPIX cloop file in it", src->name);
	ksrc_window(src, off, len);
	return 1;
}
