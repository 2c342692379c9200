#include "image/diff.h"
#include "image/fdiff.h"
#include "core/bytes.h"
#include "core/err.h"
#include "core/progress.h"
#include "core/sha256.h"
#include "core/xio.h"

#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define CHUNK (1u << 20)        /* bytes hashed at a time */

/* The container:
 *
 *  0  "UMLKDIFF"
 *  8  u32 format version (1)          all numbers big-endian
 * 12  u32 sector size
 * 16  u64 image size in bytes
 * 24  32 bytes: SHA-256 of the image the diff applies to
 * 56  u64 number of changed sectors
 * 64  a zlib stream of runs: u64 first sector, u32 count, count sectors
 * end 32 bytes: SHA-256 of everything before it
 */

static const char diff_magic[8] = "UMLKDIFF";

int diff_parse_head(const uint8_t *b, size_t n, const char *name, struct diffhead *d)
{
	if (n < DIFF_HEAD + 32)
		return k_seterr("%s: not a umlk diff: only %zu bytes", name, n);
	if (memcmp(b, diff_magic, 8))
		return k_seterr("%s: not a umlk diff (no UMLKDIFF magic)", name);
	if (k_be32(b + 8) != 1)
		return k_seterr("%s: diff format version %" PRIu32 " is not known (1 is)",
				name, k_be32(b + 8));
	d->sectorsize = k_be32(b + 12);
	d->image_size = k_be64(b + 16);
	memcpy(d->base, b + 24, 32);
	d->nsectors = k_be64(b + 56);
	if (d->image_size > (1ULL << 56))
		return k_seterr("%s: image size %" PRIu64 " is implausible", name, d->image_size);
	if (d->sectorsize == DIFF_FILES)
		return 0;
	if (d->sectorsize < 512 || d->sectorsize > 65536 || (d->sectorsize & (d->sectorsize - 1)))
		return k_seterr("%s: bad sector size %" PRIu32, name, d->sectorsize);
	uint64_t img_sectors = (d->image_size + d->sectorsize - 1) / d->sectorsize;
	if (d->nsectors > img_sectors)
		return k_seterr("%s: %" PRIu64 " changed sectors in an image of %" PRIu64,
				name, d->nsectors, img_sectors);
	return 0;
}

/* Streaming writer: raw bytes and a deflated body, all hashed. */
struct dwriter {
	int fd;
	const char *name;
	z_stream zs;
	struct sha256 h;
	uint8_t out[1 << 16];
};

static void xdw_raw(struct dwriter *w, const void *p, size_t n)
{
	sha256_update(&w->h, p, n);
	if (full_write(w->fd, p, n) < 0)
		xdie("%s: write failed:", w->name);
}

static void xdw_z(struct dwriter *w, const void *p, size_t n, int flush)
{
	w->zs.next_in = (Bytef *)p;
	w->zs.avail_in = n;
	do {
		w->zs.next_out = w->out;
		w->zs.avail_out = sizeof(w->out);
		int r = deflate(&w->zs, flush);
		if (r == Z_STREAM_ERROR)
			xdie("zlib: deflate failed");
		xdw_raw(w, w->out, sizeof(w->out) - w->zs.avail_out);
	} while (w->zs.avail_out == 0 || (flush == Z_FINISH && w->zs.avail_in));
}

static void diff_head_bytes(const struct diffhead *d, uint8_t head[DIFF_HEAD])
{
	memset(head, 0, DIFF_HEAD);
	memcpy(head, diff_magic, 8);
	k_put_be32(head + 8, 1);
	k_put_be32(head + 12, d->sectorsize);
	k_put_be64(head + 16, d->image_size);
	memcpy(head + 24, d->base, 32);
	k_put_be64(head + 56, d->nsectors);
}

struct dwriter *xdiff_writer_open(struct kout *out, const struct diffhead *d)
{
	struct dwriter *w = xcalloc(1, sizeof(*w));
	uint8_t head[DIFF_HEAD];

	w->fd = out->fd;
	w->name = out->name;
	sha256_init(&w->h);
	if (deflateInit(&w->zs, 6) != Z_OK)
		xdie("zlib: cannot initialise");
	diff_head_bytes(d, head);
	xdw_raw(w, head, sizeof(head));
	return w;
}

void xdiff_writer_body(struct dwriter *w, const void *p, size_t n)
{
	xdw_z(w, p, n, Z_NO_FLUSH);
}

void xdiff_writer_finish(struct dwriter *w)
{
	uint8_t digest[32];

	xdw_z(w, NULL, 0, Z_FINISH);
	deflateEnd(&w->zs);
	sha256_final(&w->h, digest);
	if (full_write(w->fd, digest, 32) < 0)
		xdie("%s: write failed:", w->name);
	free(w);
}

void xdiff_hash_file(const char *path, uint8_t out[32], uint64_t *size)
{
	struct sha256 h;
	struct progress p;
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0 || fstat(fd, &st) < 0)
		xdie("%s:", path);
	uint8_t *buf = xmalloc(CHUNK);
	sha256_init(&h);
	prog_start(&p, "hashing the image", (uint64_t)st.st_size);
	uint64_t done = 0;
	for (;;) {
		ssize_t n = full_read(fd, buf, CHUNK);
		if (n < 0)
			xdie("%s: read failed:", path);
		if (n == 0)
			break;
		sha256_update(&h, buf, (size_t)n);
		done += (uint64_t)n;
		prog_update(&p, done);
	}
	prog_end(&p);
	sha256_final(&h, out);
	free(buf);
	close(fd);
	*size = done;
}

/* Reading a diff: the file must hash to its trailer before anything in it
 * is believed; then runs are inflated in order and checked. */
struct dreader {
	struct ksrc src;
	struct diffhead head;
	z_stream zs;
	uint8_t in[1 << 16];
	uint64_t pos, end;      /* compressed bytes: [64, size - 32) */
	int eos;
	uint64_t img_sectors, next, total;
};

static int dr_read(struct dreader *r, void *buf, size_t n)
{
	/* 1: got N bytes; 0: stream ended cleanly before any; -1: error. */
	r->zs.next_out = buf;
	r->zs.avail_out = n;
	while (r->zs.avail_out) {
		if (r->eos)
			return r->zs.avail_out == n ? 0 : -1;
		if (!r->zs.avail_in && r->pos < r->end) {
			size_t m = r->end - r->pos < sizeof(r->in) ? r->end - r->pos : sizeof(r->in);
			if (ksrc_read(&r->src, r->in, m, r->pos) < 0)
				return -1;
			r->pos += m;
			r->zs.next_in = r->in;
			r->zs.avail_in = m;
		}
		int z = inflate(&r->zs, Z_NO_FLUSH);
		if (z == Z_STREAM_END)
			r->eos = 1;
		else if (z != Z_OK && !(z == Z_BUF_ERROR && r->zs.avail_in == 0 && r->pos < r->end))
			return -1;
	}
	return 1;
}

/* Check the trailing hash and the header; -1 with k_seterr(). */
static int diff_open(struct dreader *r)
{
	uint8_t b[DIFF_HEAD + 32], want[32], got[32];
	struct sha256 h;
	const char *name = r->src.name;
	size_t n = r->src.size < sizeof(b) ? r->src.size : sizeof(b);

	if (ksrc_read(&r->src, b, n, 0) < 0 || diff_parse_head(b, n, name, &r->head) < 0)
		return -1;
	sha256_init(&h);
	uint8_t *buf = malloc(CHUNK);
	if (!buf)
		return k_seterr("out of memory");
	uint64_t body = r->src.size - 32;
	for (uint64_t off = 0; off < body;) {
		uint64_t m = body - off < CHUNK ? body - off : CHUNK;
		if (ksrc_read(&r->src, buf, m, off) < 0) {
			free(buf);
			return -1;
		}
		sha256_update(&h, buf, m);
		off += m;
	}
	free(buf);
	sha256_final(&h, got);
	if (ksrc_read(&r->src, want, 32, body) < 0)
		return -1;
	if (memcmp(want, got, 32))
		return k_seterr("%s: damaged diff: its checksum does not match its contents", name);
	r->pos = DIFF_HEAD;
	r->end = body;
	if (inflateInit(&r->zs) != Z_OK)
		return k_seterr("zlib: cannot initialise");
	if (r->head.sectorsize != DIFF_FILES)
		r->img_sectors = (r->head.image_size + r->head.sectorsize - 1) / r->head.sectorsize;
	return 0;
}

int diff_reader_run(struct dreader *r, uint64_t *sector, uint64_t *count, uint8_t *buf)
{
	const char *name = r->src.name;
	uint32_t ss = r->head.sectorsize;
	uint8_t rec[12];
	if (ss == DIFF_FILES)
		return k_seterr("%s: a diff of files (an overlay's upper layer), not of sectors", name);
	int got = dr_read(r, rec, sizeof(rec));

	if (got < 0)
		return k_seterr("%s: damaged diff: its data does not inflate", name);
	if (got == 0) {
		if (r->total != r->head.nsectors || r->pos != r->end || r->zs.avail_in)
			return k_seterr("%s: damaged diff: %" PRIu64 " sectors where its header"
					" says %" PRIu64 ", or data after the end", name, r->total,
					r->head.nsectors);
		return 0;
	}
	uint64_t s = k_be64(rec), n = k_be32(rec + 8);
	if (n == 0 || n > DIFF_RUN_MAX / ss || s < r->next || s > r->img_sectors || n > r->img_sectors - s)
		return k_seterr("%s: damaged diff: bad run of %" PRIu64 " sectors at %" PRIu64,
				name, n, s);
	r->total += n;
	if (r->total > r->head.nsectors)
		return k_seterr("%s: damaged diff: more sectors than its header says", name);
	if (dr_read(r, buf, n * ss) != 1)
		return k_seterr("%s: damaged diff: a run is cut short", name);
	r->next = s + n;
	*sector = s;
	*count = n;
	return 1;
}

static void diff_close(struct dreader *r)
{
	inflateEnd(&r->zs);
}

struct dreader *xdiff_reader_open(const char *path)
{
	struct dreader *r = xcalloc(1, sizeof(*r));
	xsrc_open(&r->src, path);
	if (diff_open(r) < 0)
		xdie("%s", k_errmsg());
	return r;
}

const struct diffhead *diff_reader_head(const struct dreader *r)
{
	return &r->head;
}

int diff_reader_read(struct dreader *r, void *buf, size_t n)
{
	int got = dr_read(r, buf, n);
	if (got < 0)
		return k_seterr("%s: damaged diff: its data does not inflate", r->src.name);
	if (got == 0)
		return k_seterr("%s: damaged diff: its data ends early", r->src.name);
	return 0;
}

int diff_reader_end(struct dreader *r)
{
	uint8_t b;
	if (dr_read(r, &b, 1) != 0 || r->pos != r->end || r->zs.avail_in)
		return k_seterr("%s: damaged diff: data after its end", r->src.name);
	return 0;
}

void diff_reader_close(struct dreader *r)
{
	diff_close(r);
	ksrc_close(&r->src);
	free(r);
}

static int fdin_from_diff(void *ctx, void *buf, size_t n)
{
	return diff_reader_read(ctx, buf, n);
}

int diff_check_mem(const uint8_t *buf, size_t n, const char *name)
{
	struct dreader *r = calloc(1, sizeof(*r));
	uint8_t *run = malloc(DIFF_RUN_MAX);
	struct fdent *e = malloc(sizeof(*e));
	uint64_t s, c;
	int ret = -1;

	if (!r || !run || !e)
		goto out;
	ksrc_mem(&r->src, buf, n, name);
	if (diff_open(r) < 0)
		goto out;
	if (r->head.sectorsize == DIFF_FILES) {
		struct fdin in = { fdin_from_diff, r, name, 0, 0 };
		while ((ret = fdin_next(&in, e)) > 0)
			;
		if (ret == 0 && (diff_reader_end(r) < 0 || in.entries != r->head.nsectors))
			ret = k_seterr("%s: damaged diff: entries do not match its header", name);
	} else {
		while ((ret = diff_reader_run(r, &s, &c, run)) > 0)
			;
	}
	diff_close(r);
out:
	free(r);
	free(run);
	free(e);
	return ret;
}

