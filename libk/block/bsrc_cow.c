/* A UML COW file over a source: written sectors live in the COW file (at
 * data_off + sector * sectorsize) and are marked in its bitmap; the rest
 * is read from beneath.  The layout is the kernel's (see image/cow.h), so
 * cow-merge, uml_moo and the kernel's ubd driver read these files.
 *
 * Order of writes, so that the bitmap in the file never marks a sector
 * whose data is not there, whatever stops (SIGKILL, a power cut, a full
 * disk): a write puts its data in the file, then sets its bits in memory
 * (reads use those at once) and marks that part of the bitmap dirty.  A
 * flush (the guest's FLUSH, and closing) snapshots the dirty parts of the
 * bitmap, makes the data durable (fdatasync), only then writes those
 * parts, and makes them durable too.  So what was flushed survives
 * anything; what was written since is lost by a crash as by a power cut,
 * and the guest's journal recovers from that.  A write that fails (a full
 * disk, say) sets no bit: the sectors still read from beneath.
 *
 * The bitmap's part of the file is allocated when the file is opened, so
 * writing it never needs room a full disk no longer has.
 *
 * An unnamed temporary COW file (boot's default, gone when umlk exits) is
 * lost whole by a crash, so a flush there puts the bitmap in the file but
 * does not wait for the disk (as QEMU's -snapshot overlay ignores flushes):
 * the guest's every sync() had cost two fdatasync()s of a file nobody
 * will read again, 2 ms of a 38 ms 'boot -- true' where the run directory
 * is on a disk (README).  (A write error the host's disk reports only at
 * a flush goes unseen there, as with -snapshot.) */
#include "block/bsrc.h"
#include "core/err.h"
#include "core/xio.h"
#include "image/cow.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DIRTY_PAGE 4096u              /* bitmap bytes written together */

struct cowsrc {
	struct bsrc b;
	struct cow c;
	int fd;
	/* Writes hold it shared from their data to their dirty mark; a flush
	 * holds it alone while it snapshots, so every bit it takes has its
	 * data in the file already. */
	pthread_rwlock_t order;
	pthread_mutex_t flushing;       /* one flush at a time */
	uint8_t *dirty;                 /* a byte per DIRTY_PAGE of the bitmap */
	size_t npages;
	int scratch;                    /* an unnamed temporary: no fdatasync */
};

static int bit(const struct cowsrc *s, uint64_t sector)
{
	uint8_t byte = __atomic_load_n(&s->c.bitmap[sector / 8], __ATOMIC_ACQUIRE);
	return (byte >> (sector % 8)) & 1;
}

static int cow_read(struct bsrc *b, void *buf, size_t n, uint64_t off)
{
	struct cowsrc *s = (struct cowsrc *)b;
	uint64_t ss = s->c.sectorsize;

	while (n) {
		/* A run of sectors that all come from the same place. */
		uint64_t sec = off / ss;
		int here = sec < s->c.nsectors && bit(s, sec);
		uint64_t end = (sec + 1) * ss;
		while (end - off < n && (end / ss < s->c.nsectors && bit(s, end / ss)) == here)
			end += ss;
		size_t k = end - off < n ? (size_t)(end - off) : n;
		if (here) {
			ssize_t r = full_pread(s->fd, buf, k, s->c.data_off + off);
			if (r < 0)
				return k_seterr("%s: read error at offset %" PRIu64 ":", b->name,
						s->c.data_off + off);
			if ((size_t)r != k)
				return k_seterr("%s: shorter than its header says (nothing at %" PRIu64 ")",
						b->name, s->c.data_off + off + (uint64_t)r);
		} else if (bsrc_read(b->lower, buf, k, off) < 0) {
			return -1;
		}
		buf = (uint8_t *)buf + k;
		off += k;
		n -= k;
	}
	return 0;
}

static int cow_write(struct bsrc *b, const void *buf, size_t n, uint64_t off)
{
	struct cowsrc *s = (struct cowsrc *)b;
	uint64_t ss = s->c.sectorsize;

	if (off % ss || n % ss)
		return k_seterr("%s: a write of %zu bytes at %" PRIu64 " is not whole %" PRIu64 "-byte sectors",
				b->name, n, off, ss);
	pthread_rwlock_rdlock(&s->order);
	if (full_pwrite(s->fd, buf, n, s->c.data_off + off) < 0) {
		int e = errno;
		pthread_rwlock_unlock(&s->order);
		errno = e;
		return k_seterr("%s: write error at offset %" PRIu64 ":", b->name, s->c.data_off + off);
	}
	uint64_t first = off / ss, last = (off + n) / ss - 1;
	for (uint64_t sec = first; sec <= last && sec < s->c.nsectors; sec++) {
		uint8_t m = (uint8_t)(1u << (sec % 8));
		if (!(__atomic_fetch_or(&s->c.bitmap[sec / 8], m, __ATOMIC_RELEASE) & m))
			__atomic_store_n(&s->dirty[sec / 8 / DIRTY_PAGE], 1, __ATOMIC_RELAXED);
	}
	pthread_rwlock_unlock(&s->order);
	return 0;
}

/* Data first, then the bitmap that points at it (see the top). */
static int cow_flush(struct bsrc *b)
{
	struct cowsrc *s = (struct cowsrc *)b;
	size_t len = s->c.bitmap_len, np = s->npages;
	int r = 0;

	pthread_mutex_lock(&s->flushing);
	uint8_t *snap = malloc(len ? len : 1), *taken = calloc(np ? np : 1, 1);
	if (!snap || !taken) {
		free(snap);
		free(taken);
		pthread_mutex_unlock(&s->flushing);
		return k_seterr("%s: flush: out of memory", b->name);
	}
	pthread_rwlock_wrlock(&s->order);
	for (size_t p = 0; p < np; p++) {
		if (!s->dirty[p])
			continue;
		taken[p] = 1;
		s->dirty[p] = 0;
		size_t at = p * DIRTY_PAGE, k = len - at < DIRTY_PAGE ? len - at : DIRTY_PAGE;
		memcpy(snap + at, s->c.bitmap + at, k);
	}
	pthread_rwlock_unlock(&s->order);
	if (!s->scratch && fdatasync(s->fd) < 0) {
		r = k_seterr("%s: fdatasync:", b->name);
		goto out;
	}
	int wrote = 0;
	for (size_t p = 0; p < np && r == 0; p++) {
		if (!taken[p])
			continue;
		size_t at = p * DIRTY_PAGE, k = len - at < DIRTY_PAGE ? len - at : DIRTY_PAGE;
		if (full_pwrite(s->fd, snap + at, k, s->c.bitmap_off + at) < 0)
			r = k_seterr("%s: writing its bitmap:", b->name);
		wrote = 1;
	}
	if (r == 0 && wrote && !s->scratch && fdatasync(s->fd) < 0)
		r = k_seterr("%s: fdatasync:", b->name);
out:
	if (r < 0) {
		int e = errno;
		for (size_t p = 0; p < np; p++)         /* written again by the next flush */
			if (taken[p])
				__atomic_store_n(&s->dirty[p], 1, __ATOMIC_RELAXED);
		errno = e;
	}
	free(snap);
	free(taken);
	pthread_mutex_unlock(&s->flushing);
	return r;
}

static void cow_src_free(struct cowsrc *s)
{
	if (s->fd >= 0)
		close(s->fd);
	cow_close(&s->c);
	free(s->dirty);
	pthread_rwlock_destroy(&s->order);
	pthread_mutex_destroy(&s->flushing);
	free(s);
}

static void cow_src_close(struct bsrc *b)
{
	struct cowsrc *s = (struct cowsrc *)b;

	/* What was written and not yet flushed: its bitmap goes in now. */
	if (cow_flush(b) < 0 && errno != EINVAL)
		k_warn("%s", k_errmsg());
	bsrc_close(b->lower);
	cow_src_free(s);
}

static const struct bsrc_ops cow_ops = { "cow", cow_read, cow_write, cow_flush, cow_src_close };

/* Write a new, empty COW header over LOWER into FD. */
static int init_file(int fd, const char *name, struct cow *c, const struct bsrc *lower,
		     const char *backing, uint64_t mtime)
{
	uint8_t head[COW_V3_HEADER];

	cow_init_v3(c, backing, lower->size, mtime);
	cow_header_v3(c, head);
	/* Like the kernel: the header, a bitmap of zeros left a hole, and the
	 * file extended to data_off + size.  FD is a new, empty file: no
	 * truncate to 0 first, which on ext4 makes the last close write the
	 * file out and allocate its blocks (auto_da_alloc), to be freed at
	 * once for boot's unnamed temporary, with a discard where the host
	 * mounts it so: 0.5 to 1.2 ms of every boot's exit (README). */
	if (full_pwrite(fd, head, sizeof(head), 0) < 0 ||
	    ftruncate(fd, (off_t)(c->data_off + c->size)) < 0)
		return k_seterr("%s: writing a COW header:", name);
	return 0;
}

struct bsrc *bsrc_cow(const char *path, int fd, struct bsrc *lower, const char *backing,
		      uint64_t mtime, int create)
{
	struct cowsrc *s = xcalloc(1, sizeof(*s));
	const char *name = path ? path : "temporary COW file";

	snprintf(s->b.name, sizeof(s->b.name), "%s", name);
	s->fd = fd;
	s->scratch = fd >= 0;
	pthread_rwlock_init(&s->order, NULL);
	pthread_mutex_init(&s->flushing, NULL);
	if (strlen(backing) >= COW_PATH_MAX) {
		k_seterr("%s: path longer than the %d bytes a COW header holds", backing, COW_PATH_MAX - 1);
		goto fail;
	}
	if (fd >= 0) {
		if (init_file(fd, name, &s->c, lower, backing, mtime) < 0)
			goto fail;
	} else if (access(path, F_OK) < 0 && errno == ENOENT && create) {
		/* Made whole under a temporary name, then renamed: never a
		 * half-written COW file under the user's name. */
		struct kout o;
		struct cow c;
		if (kout_open(&o, path) < 0)
			goto fail;
		if (!o.regular || init_file(o.fd, name, &c, lower, backing, mtime) < 0) {
			if (!o.regular)
				k_seterr("%s: a COW file must be a regular file", path);
			kout_abort(&o);
			goto fail;
		}
		cow_close(&c);
		if (kout_commit(&o, 1) < 0)
			goto fail;
	}
	if (fd < 0) {
		struct ksrc k;
		s->fd = open(path, O_RDWR | O_CLOEXEC);
		if (s->fd < 0) {
			k_seterr("%s:", path);
			goto fail;
		}
		memset(&k, 0, sizeof(k));
		struct stat st;
		if (fstat(s->fd, &st) < 0 || !S_ISREG(st.st_mode)) {
			k_seterr("%s: not a regular file", path);
			goto fail;
		}
		k.fd = s->fd;
		k.size = (uint64_t)st.st_size;
		k.name = path;
		if (cow_open(&s->c, &k) < 0)
			goto fail;
		if (strcmp(s->c.backing, backing)) {
			k_seterr("%s: this COW file belongs to another image (%s)", path, s->c.backing);
			goto fail;
		}
		if (s->c.size != lower->size || s->c.mtime != (uint32_t)mtime) {
			k_seterr("%s: the image %s changed since this COW file was made over it (%s): the"
				 " changes in it no longer apply", path, backing,
				 s->c.size != lower->size ? "its size differs" : "its modification time differs");
			goto fail;
		}
	}
	s->npages = (s->c.bitmap_len + DIRTY_PAGE - 1) / DIRTY_PAGE;
	s->dirty = xcalloc(s->npages ? s->npages : 1, 1);
	/* Room for the bitmap now, while there may be some (a hole so far,
	 * as the kernel leaves it; allocated, it still reads as zeros). */
	if (fallocate(s->fd, FALLOC_FL_KEEP_SIZE, (off_t)s->c.bitmap_off, (off_t)s->c.bitmap_len) < 0 &&
	    errno != EOPNOTSUPP && errno != ENOSPC && errno != EDQUOT) {
		k_seterr("%s: allocating its bitmap:", name);
		goto fail;
	}
	s->b.ops = &cow_ops;
	s->b.size = lower->size;
	s->b.readonly = 0;
	s->b.lower = lower;
	return &s->b;
fail:
	cow_src_free(s);
	return NULL;
}
