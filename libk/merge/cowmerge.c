#include "merge/cowmerge.h"
#include "block/bootimage.h"
#include "image/cow.h"
#include "image/diff.h"
#include "image/upper.h"
#include "core/bytes.h"
#include "core/err.h"
#include "core/progress.h"
#include "core/sha256.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CHUNK DIFF_RUN_MAX
#define PAGE 4096u

/* ---- finding changed sectors */

/* The next run of changed sectors at or after FROM; 0 when there is none. */
static int next_run(const struct cow *c, uint64_t from, uint64_t *start, uint64_t *count)
{
	uint64_t s = from, n = c->nsectors;

	while (s < n) {
		if (s % 64 == 0 && s + 64 <= n) {       /* skip empty words fast */
			uint64_t w;
			memcpy(&w, c->bitmap + s / 8, 8);
			if (!w) {
				s += 64;
				continue;
			}
		}
		if (cow_test(c, s))
			break;
		s++;
	}
	if (s >= n)
		return 0;
	uint64_t e = s;
	while (e < n && cow_test(c, e))
		e++;
	*start = s;
	*count = e - s;
	return 1;
}

/* ---- backing images

   A raw image is read as it is; an image 'umlk boot' takes (an ISO with a
   KNOPPIX cloop, a cloop file) is read through the same block sources the
   guest's disk is made of: COW files umlk makes over such an image record
   the image's path and mtime, and the size of the disk inside it. */

struct backing {
	int fd;                 /* a raw image */
	struct image im;        /* via_image: an image, read as its disk */
	int via_image;
	uint64_t size, mtime;
	const char *name;
};

/* -1 with k_seterr(). */
static int backing_open(struct backing *b, const char *path, int flags)
{
	struct stat st;

	memset(b, 0, sizeof(*b));
	b->name = path;
	b->fd = -1;
	if (image_open(&b->im, path, NULL, BSRC_CLOOP_CACHE_DEFAULT) == 0) {
		if (strcmp(b->im.kind, "filesystem image")) {
			b->via_image = 1;
			b->size = b->im.disk->size;
			b->mtime = b->im.mtime;
			return 0;
		}
		image_close(&b->im);
	}
	b->fd = open(path, flags | O_CLOEXEC);
	if (b->fd < 0 || fstat(b->fd, &st) < 0)
		return k_seterr("backing file %s:", path);
	b->size = (uint64_t)st.st_size;
	if (S_ISBLK(st.st_mode)) {
		off_t end = lseek(b->fd, 0, SEEK_END);
		b->size = end < 0 ? 0 : (uint64_t)end;
	}
	b->mtime = (uint64_t)st.st_mtime;
	return 0;
}

static void xbacking_open(struct backing *b, const char *path, int flags)
{
	if (backing_open(b, path, flags) < 0)
		xdie("%s", k_errmsg());
}

static void backing_close(struct backing *b)
{
	if (b->via_image)
		image_close(&b->im);
	if (b->fd >= 0)
		close(b->fd);
	b->fd = -1;
}

static void xbacking_read(struct backing *b, void *buf, size_t n, uint64_t off)
{
	if (b->via_image) {
		if (bsrc_read(b->im.disk, buf, n, off) < 0)
			xdie("%s", k_errmsg());
	} else if (full_pread(b->fd, buf, n, off) != (ssize_t)n) {
		xdie("%s: read failed (file changed size?)", b->name);
	}
}

/* The kernel's check, for either kind: the recorded size and mtime. */
static int backing_matches(const struct cow *c, const struct backing *b)
{
	if (b->size != c->size)
		return k_seterr("backing file %s is %" PRIu64 " bytes, but the COW file was made"
				" over one of %" PRIu64 " bytes: not the same image", b->name, b->size, c->size);
	if ((uint32_t)b->mtime != c->mtime)
		return k_seterr("backing file %s was modified (mtime %" PRIu64 ", the COW file"
				" expects %" PRIu64 "): the COW no longer applies to it",
				b->name, (uint64_t)(uint32_t)b->mtime, c->mtime);
	return 0;
}

/* ---- opening a COW file and its backing image */

struct opened {
	struct ksrc src;
	struct cow cow;
	const char *backing;    /* the path used */
	struct backing b;
};

/* An overlay's upper layer (what --cow keeps for a read-only root): 1 and
 * its header in H, 0 when PATH is something else. */
static int xupper_of(const char *path, struct upper_hdr *h)
{
	int r = upper_read(-1, path, h);
	if (r < 0)
		xdie("%s", k_errmsg());
	return r;
}

static void xopen_job(const struct cowjob *j, struct opened *o, int check, int bflags)
{
	struct upper_hdr uh;
	if (xupper_of(j->cowpath, &uh))
		xdie("%s: the upper layer of an overlay (files over the read-only root of %s), not a COW"
		     " file of blocks: there is nothing to merge into that image.  Its files can be seen"
		     " with: mount -o loop,offset=%d,ro %s DIR (upper/ and work/)", j->cowpath, uh.image_path,
		     UPPER_HDR, j->cowpath);
	xsrc_open(&o->src, j->cowpath);
	if (cow_open(&o->cow, &o->src) < 0)
		xdie("%s", k_errmsg());
	o->backing = j->backing ? j->backing : o->cow.backing;
	xbacking_open(&o->b, o->backing, bflags);
	if (check && backing_matches(&o->cow, &o->b) < 0)
		xdie("%s: %s", j->cowpath, k_errmsg());
}

static void close_job(struct opened *o)
{
	cow_close(&o->cow);
	ksrc_close(&o->src);
	backing_close(&o->b);
}

/* Read COUNT sectors from the COW data area at sector START. */
static void xread_sectors(const struct opened *o, uint64_t start, uint64_t count, uint8_t *buf)
{
	uint64_t ss = o->cow.sectorsize;

	if (ksrc_read(&o->src, buf, count * ss, o->cow.data_off + start * ss) < 0)
		xdie("%s", k_errmsg());
}

/* Every changed sector of O's COW, in order, read into BUF (CHUNK
 * bytes) a piece at a time and handed to PUT: N sectors from SECTOR, LEN
 * bytes of them inside the image (the last sector may lie partly past
 * its end).  Progress goes to P from PBASE; KILL_AFTER >= 0 raises
 * SIGKILL before that many runs (the crash-safety test's fault point). */
typedef void run_put(void *ctx, const uint8_t *buf, uint64_t sector, uint64_t n, uint64_t len);

static void xfor_each_run(const struct opened *o, uint8_t *buf, run_put *put, void *ctx,
			  struct progress *p, uint64_t pbase, long kill_after)
{
	uint64_t ss = o->cow.sectorsize, start, count, from = 0, done = 0;
	long runs = 0;

	while (next_run(&o->cow, from, &start, &count)) {
		if (kill_after >= 0 && runs++ == kill_after)
			raise(SIGKILL);
		for (uint64_t s = start; s < start + count;) {
			uint64_t n = start + count - s;
			if (n > CHUNK / ss)
				n = CHUNK / ss;
			xread_sectors(o, s, n, buf);
			uint64_t off = s * ss, len = n * ss;
			if (off + len > o->cow.size)    /* a last, partial sector */
				len = o->cow.size - off;
			put(ctx, buf, s, n, len);
			s += n;
			done += n * ss;
			prog_update(p, pbase + done);
		}
		from = start + count;
	}
}

/* ---- writing image data, keeping holes */

static void xpunch_or_zero(int fd, uint64_t off, uint64_t len, const char *name)
{
	static const uint8_t zero[PAGE];

	if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, len) == 0)
		return;
	while (len) {
		size_t n = len < PAGE ? len : PAGE;
		if (full_pwrite(fd, zero, n, off) < 0)
			xdie("%s: write failed:", name);
		off += n;
		len -= n;
	}
}

/* Write BUF at OFF; whole 4 KiB pages of zeros become holes. */
static void xwrite_sparse(int fd, const uint8_t *buf, uint64_t len, uint64_t off, const char *name)
{
	while (len) {
		uint64_t page_end = (off / PAGE + 1) * PAGE;
		uint64_t n = page_end - off < len ? page_end - off : len;
		uint64_t run = n;
		int zero = n == PAGE && k_iszero(buf, n);
		/* Gather neighbours of the same kind into one call. */
		while (run < len) {
			uint64_t m = len - run < PAGE ? len - run : PAGE;
			int z = m == PAGE && k_iszero(buf + run, m);
			if (z != zero)
				break;
			run += m;
		}
		if (zero)
			xpunch_or_zero(fd, off, run, name);
		else if (full_pwrite(fd, buf, run, off) < 0)
			xdie("%s: write failed:", name);
		buf += run;
		off += run;
		len -= run;
	}
}

/* Copy SIZE bytes of IN to OUT at the same offsets.  Holes in IN are
 * skipped, and so are pages of zeros inside its data: images made by
 * mke2fs have many, and a merged image should use no more disk than its
 * nonzero data.  (copy_file_range would copy those zeros as data.) */
static void xcopy_sparse(struct backing *b, int out, uint64_t size, const char *outname,
			struct progress *p)
{
	uint8_t *buf = xmalloc(CHUNK);
	off_t data = 0;
	int in = b->fd;

	if (b->via_image) {
		/* The disk inside an image: every byte read, zeros skipped. */
		for (uint64_t off = 0; off < size; off += CHUNK) {
			uint64_t n = size - off < CHUNK ? size - off : CHUNK;
			xbacking_read(b, buf, n, off);
			xwrite_sparse(out, buf, n, off, outname);
			prog_update(p, off + n);
		}
		free(buf);
		if (ftruncate(out, size) < 0)
			xdie("%s: cannot set size:", outname);
		return;
	}

	while ((uint64_t)data < size) {
		off_t d = lseek(in, data, SEEK_DATA);
		if (d < 0 && errno == ENXIO)
			break;                  /* only a hole is left */
		if (d >= 0)
			data = d;               /* else no SEEK_DATA: read everything */
		off_t hole = d >= 0 ? lseek(in, data, SEEK_HOLE) : (off_t)size;
		if (hole < 0 || (uint64_t)hole > size)
			hole = size;
		while (data < hole) {
			uint64_t n = hole - data < CHUNK ? hole - data : CHUNK;
			xbacking_read(b, buf, n, data);
			xwrite_sparse(out, buf, n, data, outname);
			data += n;
			prog_update(p, data);
		}
	}
	free(buf);
	if (ftruncate(out, size) < 0)
		xdie("%s: cannot set size:", outname);
}

/* ---- merge into a new image */

/* A run written into an image file at its own offset: SPARSE, pages of
 * zeros become holes (a new image); else written as they are (in place). */
struct put_file {
	int fd;
	const char *name;
	uint64_t ss;
	int sparse;
};

static void xput_to_file(void *ctx, const uint8_t *buf, uint64_t sector, uint64_t n, uint64_t len)
{
	struct put_file *f = ctx;
	(void)n;
	if (f->sparse)
		xwrite_sparse(f->fd, buf, len, sector * f->ss, f->name);
	else if (full_pwrite(f->fd, buf, len, sector * f->ss) < 0)
		xdie("%s: write failed:", f->name);
}

void xcow_merge_new(const struct cowjob *j, const char *newimage)
{
	struct opened o;
	struct kout out;
	struct progress p;
	uint64_t ss;

	xopen_job(j, &o, 1, O_RDONLY);
	ss = o.cow.sectorsize;
	xout_open(&out, newimage);
	if (!out.regular || !out.seekable)
		xdie("%s: the merged image must be a regular file", out.name);
	uint64_t changed = cow_count(&o.cow) * ss;
	prog_start(&p, "cow-merge", o.cow.size + changed);
	xcopy_sparse(&o.b, out.fd, o.cow.size, out.name, &p);
	uint8_t *buf = xmalloc(CHUNK);
	struct put_file pf = { out.fd, out.name, ss, 1 };
	xfor_each_run(&o, buf, xput_to_file, &pf, &p, o.cow.size, -1);
	prog_end(&p);
	free(buf);
	xout_commit(&out);
	close_job(&o);
}

/* ---- merge in place, crash-safe */

/* Fault injection for the crash-safety test: UMLK_FAILPOINT=merge:N kills
 * the process with SIGKILL after N runs of sectors have been copied. */
static long failpoint(const char *name)
{
	const char *v = getenv("UMLK_FAILPOINT");
	size_t n = strlen(name);

	if (!v || strncmp(v, name, n) || v[n] != ':')
		return -1;
	return atol(v + n + 1);
}

void xcow_merge_inplace(const struct cowjob *j)
{
	char journal[PATH_MAX], realback[PATH_MAX], line[PATH_MAX + 64];
	struct opened o;
	struct progress p;

	snprintf(journal, sizeof(journal), "%s.merging", j->cowpath);
	FILE *jf = fopen(journal, "re");
	int resuming = jf != NULL;
	/* The journal names the backing image and its size; an interrupted
	 * merge is completed only for that same image. */
	char jback[PATH_MAX] = "";
	uint64_t jsize = 0;
	if (jf) {
		while (fgets(line, sizeof(line), jf)) {
			line[strcspn(line, "\n")] = 0;
			if (!strncmp(line, "backing=", 8) && strlen(line + 8) < sizeof(jback))
				memcpy(jback, line + 8, strlen(line + 8) + 1);
			else if (!strncmp(line, "size=", 5))
				jsize = strtoull(line + 5, NULL, 10);
		}
		fclose(jf);
		if (!jback[0] || !jsize)
			xdie("%s: damaged journal of an interrupted merge; remove it only if the"
			     " backing image is known to be intact", journal);
	}
	xopen_job(j, &o, !resuming, O_RDWR);
	if (o.b.via_image)
		xdie("%s: its backing %s is an %s, which cannot be changed in place; merge into a new"
		     " image instead: umlk cow-merge %s NEW.img", j->cowpath, o.backing, o.b.im.kind,
		     j->cowpath);
	if (!realpath(o.backing, realback))
		xdie("backing file %s:", o.backing);
	if (resuming) {
		struct stat st;
		if (strcmp(jback, realback) || fstat(o.b.fd, &st) < 0 || (uint64_t)st.st_size != jsize ||
		    jsize != o.cow.size)
			xdie("%s: an interrupted merge into %s is pending, not into %s;"
			     " complete that first", journal, jback, realback);
		k_warn("%s: completing an interrupted merge into %s", j->cowpath, realback);
	} else {
		/* Durable before the first byte of the image changes. */
		char text[3 * PATH_MAX];
		int n = snprintf(text, sizeof(text), "umlk cow-merge journal 1\nbacking=%s\nsize=%" PRIu64
				 "\ncow=%s\n", realback, o.cow.size, j->cowpath);
		if (kout_write_file(journal, text, (size_t)n, 0644, 1) < 0)
			xdie("%s", k_errmsg());
	}

	uint64_t ss = o.cow.sectorsize;
	prog_start(&p, "cow-merge", cow_count(&o.cow) * ss);
	uint8_t *buf = xmalloc(CHUNK);
	struct put_file pf = { o.b.fd, o.backing, ss, 0 };
	xfor_each_run(&o, buf, xput_to_file, &pf, &p, 0, failpoint("merge"));
	prog_end(&p);
	free(buf);
	if (fsync(o.b.fd) < 0)
		xdie("%s: fsync failed:", o.backing);
	if (unlink(journal) < 0)
		xdie("%s:", journal);
	if (k_sync_dir_of(journal) < 0)
		xdie("%s: cannot make its removal durable:", journal);
	close_job(&o);
}

/* ---- --info */

void xcow_info(const char *cowpath)
{
	struct ksrc src;
	struct cow c;
	char h[16];

	struct upper_hdr uh;
	if (xupper_of(cowpath, &uh)) {
		struct stat st, is;
		printf("file: %s\n", cowpath);
		printf("kind: overlay upper layer (the files a read-only or stacked root's guest changed;"
		       " ext4 at byte %d)\n", UPPER_HDR);
		printf("image: %s\n", uh.image_path);
		printf("image size: %" PRIu64 "\n", uh.image_size);
		printf("image mtime: %" PRIu64 "\n", uh.image_mtime);
		printf("filesystem size: %" PRIu64 " (%s)\n", uh.fs_size, k_human(uh.fs_size, h, sizeof(h)));
		if (stat(cowpath, &st) == 0)
			printf("on disk: %s\n", k_human((uint64_t)st.st_blocks * 512, h, sizeof(h)));
		printf("image matches: %s\n", stat(uh.image_path, &is) < 0 ? "no (not there)" :
		       (uint64_t)is.st_size == uh.image_size && (uint64_t)is.st_mtime == uh.image_mtime ?
		       "yes" : "no (size or modification time differ)");
		return;
	}
	xsrc_open(&src, cowpath);
	if (cow_open(&c, &src) < 0)
		xdie("%s", k_errmsg());
	uint64_t n = cow_count(&c);
	printf("file: %s\n", cowpath);
	printf("version: %" PRIu32 "%s\n", c.version, c.broken ? " (64-bit layout)" : "");
	printf("backing file: %s\n", c.backing);
	printf("backing size: %" PRIu64 "\n", c.size);
	printf("backing mtime: %" PRIu64 "\n", c.mtime);
	printf("sector size: %" PRIu32 "\n", c.sectorsize);
	printf("alignment: %" PRIu32 "\n", c.align);
	printf("bitmap offset: %" PRIu64 "\n", c.bitmap_off);
	printf("data offset: %" PRIu64 "\n", c.data_off);
	printf("changed sectors: %" PRIu64 "\n", n);
	printf("changed bytes: %" PRIu64 " (%s)\n", n * c.sectorsize,
	       k_human(n * c.sectorsize, h, sizeof(h)));
	printf("kind: UML COW file (the blocks a writable root's guest changed)\n");
	struct backing b;
	if (backing_open(&b, c.backing, O_RDONLY) < 0) {
		printf("backing matches: %s\n", k_errmsg());
	} else {
		if (b.via_image)
			printf("backing kind: %s, its disk read through umlk\n", b.im.kind);
		printf("backing matches: %s\n", backing_matches(&c, &b) == 0 ? "yes" : k_errmsg());
		backing_close(&b);
	}
	cow_close(&c);
	ksrc_close(&src);
}

/* Hash SIZE bytes of FD, with the changed sectors of OVERLAY (if any)
 * read from its COW instead. */
static void xhash_image(struct backing *b, uint64_t size, const struct opened *overlay,
			uint8_t out[32], struct progress *p, uint64_t pbase)
{
	struct sha256 h;
	uint8_t *buf = xmalloc(CHUNK);

	sha256_init(&h);
	for (uint64_t off = 0; off < size;) {
		uint64_t n = size - off < CHUNK ? size - off : CHUNK;
		xbacking_read(b, buf, n, off);
		if (overlay) {
			const struct cow *c = &overlay->cow;
			uint64_t ss = c->sectorsize, s0 = off / ss, s1 = (off + n + ss - 1) / ss;
			uint64_t start, count, from = s0;
			while (next_run(c, from, &start, &count) && start < s1) {
				uint64_t e = start + count < s1 ? start + count : s1;
				for (uint64_t s = start; s < e; s++) {
					uint8_t sec[65536];
					xread_sectors(overlay, s, 1, sec);
					uint64_t at = s * ss - off, len = ss;
					if (at + len > n)
						len = n - at;
					memcpy(buf + at, sec, len);
				}
				from = e;
			}
		}
		sha256_update(&h, buf, n);
		off += n;
		prog_update(p, pbase + off);
	}
	sha256_final(&h, out);
	free(buf);
}

/* A run into a diff: its record (first sector, count), then the sectors,
 * whole. */
struct put_diff {
	struct dwriter *w;
	uint64_t ss;
};

static void xput_to_diff(void *ctx, const uint8_t *buf, uint64_t sector, uint64_t n, uint64_t len)
{
	struct put_diff *d = ctx;
	uint8_t rec[12];
	(void)len;
	k_put_be64(rec, sector);
	k_put_be32(rec + 8, (uint32_t)n);
	xdiff_writer_body(d->w, rec, sizeof(rec));
	xdiff_writer_body(d->w, buf, n * d->ss);
}

void xcow_export(const struct cowjob *j, const char *diffpath)
{
	struct opened o;
	struct progress p;

	xopen_job(j, &o, 1, O_RDONLY);
	uint64_t ss = o.cow.sectorsize, nchanged = cow_count(&o.cow);
	struct diffhead dh = { .sectorsize = (uint32_t)ss, .image_size = o.cow.size, .nsectors = nchanged };
	prog_start(&p, "cow-merge export", o.cow.size + nchanged * ss);
	xhash_image(&o.b, o.cow.size, NULL, dh.base, &p, 0);

	struct kout out;
	xout_open(&out, diffpath);
	struct dwriter *w = xdiff_writer_open(&out, &dh);
	uint8_t *buf = xmalloc(CHUNK);
	struct put_diff pd = { w, ss };
	xfor_each_run(&o, buf, xput_to_diff, &pd, &p, o.cow.size, -1);
	xdiff_writer_finish(w);
	prog_end(&p);
	free(buf);
	xout_commit(&out);
	close_job(&o);
}


/* Where applied sectors go: a new COW file over the backing, or an image. */
struct sink {
	int as_image;
	struct kout out;
	struct opened view;     /* as_image == 0: the COW being written, as an overlay */
	struct backing b;
	uint64_t size;
	const char *backing;
};

static void xsink_write(struct sink *k, uint64_t sector, const uint8_t *data, uint64_t n, uint32_t ss)
{
	uint64_t off = sector * ss, len = n * ss;

	if (k->as_image) {
		if (off + len > k->size)
			len = k->size - off;
		xwrite_sparse(k->out.fd, data, len, off, k->out.name);
		return;
	}
	/* Zero sectors need no data written: the COW file is sparse there. */
	xwrite_sparse(k->out.fd, data, len, k->view.cow.data_off + off, k->out.name);
	for (uint64_t s = sector; s < sector + n; s++)
		cow_set(&k->view.cow, s);
}

static void xsink_hash(struct sink *k, uint8_t out[32], struct progress *p)
{
	if (k->as_image) {
		struct backing o = { .fd = k->out.fd, .size = k->size, .name = k->out.name };
		xhash_image(&o, k->size, NULL, out, p, 0);
	} else {
		xhash_image(&k->b, k->size, &k->view, out, p, 0);
	}
}

void xcow_apply(const char *const *diffs, int ndiffs, const char *backing, const char *outpath,
		int as_image)
{
	struct sink k;
	struct progress p;
	char abs[PATH_MAX];

	memset(&k, 0, sizeof(k));
	k.as_image = as_image;
	k.backing = backing;
	if (!realpath(backing, abs))
		xdie("%s:", backing);
	xbacking_open(&k.b, abs, O_RDONLY);
	k.b.name = backing;
	k.size = k.b.size;

	/* Check the first diff before any output exists. */
	struct dreader *r = xdiff_reader_open(diffs[0]);
	const struct diffhead *dh = diff_reader_head(r);
	uint8_t h[32];
	if (dh->sectorsize == DIFF_FILES)
		xdie("%s: a diff of files (an overlay's upper layer): it applies on its own, not with --image"
		     " or diffs of sectors", diffs[0]);
	if (dh->image_size != k.size)
		xdie("%s: made for an image of %" PRIu64 " bytes; %s is %" PRIu64
		     ": not the same image, nothing changed", diffs[0], dh->image_size, backing, k.size);
	prog_start(&p, "cow-merge apply", k.size);
	xhash_image(&k.b, k.size, NULL, h, &p, 0);
	prog_end(&p);
	if (memcmp(h, dh->base, 32)) {
		char a[65], b[65];
		sha256_hex(dh->base, a);
		sha256_hex(h, b);
		xdie("%s: made for the image with SHA-256 %s; %s has %s: not the same image,"
		     " nothing changed", diffs[0], a, backing, b);
	}

	xout_open(&k.out, outpath);
	if (!k.out.regular || !k.out.seekable)
		xdie("%s: must be a regular file", k.out.name);
	if (as_image) {
		prog_start(&p, "cow-merge apply", k.size);
		xcopy_sparse(&k.b, k.out.fd, k.size, k.out.name, &p);
		prog_end(&p);
	} else {
		cow_init_v3(&k.view.cow, abs, k.size, k.b.mtime);
		ksrc_mem(&k.view.src, NULL, 0, k.out.name);
		/* Read back what we write: the overlay view reads the output. */
		int rfd = open(k.out.tmp, O_RDONLY | O_CLOEXEC);
		if (rfd < 0)
			xdie("%s:", k.out.tmp);
		k.view.src.fd = rfd;
		k.view.src.size = k.view.cow.data_off + k.size;
		if (ftruncate(k.out.fd, k.view.cow.data_off + k.size) < 0)
			xdie("%s: cannot set size:", k.out.name);
	}

	uint8_t *buf = xmalloc(CHUNK + 65536);
	for (int i = 0; i < ndiffs; i++) {
		if (i > 0) {
			r = xdiff_reader_open(diffs[i]);
			dh = diff_reader_head(r);
			if (dh->image_size != k.size)
				xdie("%s: made for an image of %" PRIu64 " bytes, not %" PRIu64,
				     diffs[i], dh->image_size, k.size);
			prog_start(&p, "cow-merge apply", k.size);
			xsink_hash(&k, h, &p);
			prog_end(&p);
			if (memcmp(h, dh->base, 32))
				xdie("%s: does not apply to the image the diffs before it make"
				     " (wrong order, or another base); nothing written", diffs[i]);
		}
		if (dh->sectorsize == DIFF_FILES)
			xdie("%s: a diff of files, which does not go with diffs of sectors", diffs[i]);
		if (!as_image && dh->sectorsize != k.view.cow.sectorsize)
			xdie("%s: sector size %" PRIu32 " (a COW file here has 512)",
			     diffs[i], dh->sectorsize);
		uint64_t sec, cnt;
		int got;
		while ((got = diff_reader_run(r, &sec, &cnt, buf)) > 0)
			xsink_write(&k, sec, buf, cnt, dh->sectorsize);
		if (got < 0)
			xdie("%s", k_errmsg());
		diff_reader_close(r);
	}
	free(buf);
	if (!as_image) {
		uint8_t head[COW_V3_HEADER];
		cow_header_v3(&k.view.cow, head);
		if (full_pwrite(k.out.fd, head, sizeof(head), 0) < 0 ||
		    full_pwrite(k.out.fd, k.view.cow.bitmap, k.view.cow.bitmap_len,
				k.view.cow.bitmap_off) < 0)
			xdie("%s: write failed:", k.out.name);
		close(k.view.src.fd);
		cow_close(&k.view.cow);
	}
	xout_commit(&k.out);
	backing_close(&k.b);
}
