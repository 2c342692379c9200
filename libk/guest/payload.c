#include "guest/payload.h"
#include "core/bytes.h"
#include "core/err.h"
#include "core/sys.h"
#include "core/xio.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

static const char magic[8] = "UMLKPAY1";

int payload_find(const char *path, struct payload *p)
{
	uint8_t t[PAYLOAD_TRAILER];
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	memset(p, 0, sizeof(*p));
	if (fd < 0)
		return k_seterr("%s:", path);
	if (fstat(fd, &st) < 0 || st.st_size < PAYLOAD_TRAILER ||
	    full_pread(fd, t, sizeof(t), st.st_size - PAYLOAD_TRAILER) != PAYLOAD_TRAILER) {
		close(fd);
		return 0;
	}
	close(fd);
	if (memcmp(t, magic, 8))
		return 0;
	p->offset = k_le64(t + 8);
	p->csize = k_le64(t + 16);
	p->size = k_le64(t + 24);
	p->crc = (uint32_t)k_le64(t + 32);
	memcpy(p->release, t + 40, 24);
	p->release[24] = 0;
	uint64_t end = st.st_size - PAYLOAD_TRAILER;
	if (p->offset > end || p->csize > end - p->offset || p->csize == 0)
		return k_seterr("%s: damaged kernel payload: %" PRIu64 " bytes at offset %"
				PRIu64 " do not fit in the file", path, p->csize, p->offset);
	if (p->size == 0 || p->size > PAYLOAD_MAX)
		return k_seterr("%s: damaged kernel payload: size %" PRIu64 " is implausible",
				path, p->size);
	for (int i = 0; i < 24 && p->release[i]; i++)
		if (p->release[i] < 0x20 || p->release[i] > 0x7e)
			return k_seterr("%s: damaged kernel payload: bad release string", path);
	return 1;
}

int payload_memfd(const char *path, const struct payload *p)
{
	int in = open(path, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return k_seterr("%s:", path);
	int mfd = memfd_create("umlk-linux", MFD_CLOEXEC);
	if (mfd < 0) {
		close(in);
		return k_seterr("memfd_create:");
	}
	if (ftruncate(mfd, p->size) < 0) {
		k_seterr("memfd: cannot size it to %" PRIu64 " bytes:", p->size);
		goto fail;
	}
	uint8_t *dst = mmap(NULL, p->size, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
	if (dst == MAP_FAILED) {
		k_seterr("memfd: mmap:");
		goto fail;
	}
	z_stream zs;
	memset(&zs, 0, sizeof(zs));
	inflateInit2(&zs, 15 + 16);
	zs.next_out = dst;
	zs.avail_out = p->size;
	uint8_t *buf = xmalloc(1 << 20);
	uint64_t left = p->csize, off = p->offset;
	int r = Z_OK;
	while (left && r == Z_OK) {
		size_t n = left < (1 << 20) ? left : (1 << 20);
		if (full_pread(in, buf, n, off) != (ssize_t)n) {
			r = Z_ERRNO;
			break;
		}
		zs.next_in = buf;
		zs.avail_in = n;
		r = inflate(&zs, Z_NO_FLUSH);
		left -= n;
		off += n;
	}
	int ok = r == Z_STREAM_END && zs.avail_out == 0 &&
		 crc32(0, dst, p->size) == p->crc;
	inflateEnd(&zs);
	free(buf);
	munmap(dst, p->size);
	close(in);
	if (!ok) {
		close(mfd);
		return k_seterr("%s: damaged kernel payload: it does not inflate to the "
				"recorded %" PRIu64 " bytes with the recorded CRC", path, p->size);
	}
	return mfd;
fail:
	close(in);
	close(mfd);
	return -1;
}

void xpayload_attach(const char *in, const char *kernel, const char *release, const char *outpath)
{
	size_t blen, klen;
	struct payload old;
	uint8_t *bin = NULL;
	int fd = open(in, O_RDONLY | O_CLOEXEC);
	struct stat st;

	if (fd < 0 || fstat(fd, &st) < 0)
		xdie("%s:", in);
	blen = st.st_size;
	/* Replacing a payload: keep only the program part. */
	if (payload_find(in, &old) == 1)
		blen = old.offset;
	bin = xmalloc(blen);
	if (full_read(fd, bin, blen) != (ssize_t)blen)
		xdie("%s: read failed", in);
	close(fd);

	fd = open(kernel, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0)
		xdie("%s:", kernel);
	klen = st.st_size;
	if (klen == 0 || klen > PAYLOAD_MAX)
		xdie("%s: %zu bytes is not a plausible kernel", kernel, klen);
	uint8_t *k = xmalloc(klen);
	if (full_read(fd, k, klen) != (ssize_t)klen)
		xdie("%s: read failed", kernel);
	close(fd);
	if (klen < 4 || memcmp(k, "\177ELF", 4))
		xdie("%s: not an ELF executable", kernel);

	z_stream zs;
	memset(&zs, 0, sizeof(zs));
	if (deflateInit2(&zs, 9, Z_DEFLATED, 15 + 16, 9, Z_DEFAULT_STRATEGY) != Z_OK)
		xdie("zlib: cannot initialise");
	size_t cap = deflateBound(&zs, klen);
	uint8_t *z = xmalloc(cap);
	zs.next_in = k;
	zs.avail_in = klen;
	zs.next_out = z;
	zs.avail_out = cap;
	if (deflate(&zs, Z_FINISH) != Z_STREAM_END)
		xdie("zlib: cannot compress the kernel");
	size_t zlen = zs.total_out;
	deflateEnd(&zs);

	uint8_t t[PAYLOAD_TRAILER] = { 0 };
	memcpy(t, magic, 8);
	k_put_le64(t + 8, blen);
	k_put_le64(t + 16, zlen);
	k_put_le64(t + 24, klen);
	k_put_le64(t + 32, crc32(0, k, klen));
	snprintf((char *)t + 40, 24, "%s", release);

	struct kout out;
	xout_open(&out, outpath);
	if (full_write(out.fd, bin, blen) < 0 || full_write(out.fd, z, zlen) < 0 ||
	    full_write(out.fd, t, sizeof(t)) < 0)
		xdie("%s: write failed:", out.name);
	if (out.tmp && fchmod(out.fd, 0755) < 0)
		xdie("%s: chmod:", out.name);
	xout_commit(&out);
	free(bin);
	free(k);
	free(z);
}

/* The cached kernel's identity (device, inode, size, modification and
 * change times) into BUF.  Whatever writes to the file changes its change
 * time, which no one can set back: while the identity is the one recorded
 * when the CRC was last found right (in PATH.ok), the file is what was
 * checked, and the CRC (about 7 ms of every boot, for 9 MB) is not
 * computed again. */
static void identity(const struct stat *st, char *buf, size_t cap)
{
	snprintf(buf, cap, "%ju %ju %jd %jd.%09ld %jd.%09ld\n", (uintmax_t)st->st_dev, (uintmax_t)st->st_ino,
		 (intmax_t)st->st_size, (intmax_t)st->st_mtim.tv_sec, st->st_mtim.tv_nsec,
		 (intmax_t)st->st_ctim.tv_sec, st->st_ctim.tv_nsec);
}

/* Record ID as checked, in STAMP.  Not for a file changed in the last 2
 * seconds: on a file system that keeps times in whole seconds, a change
 * in the same second would leave the identity as it was.  A cache that
 * cannot take it is no error (the CRC is then computed at every use). */
static void stamp_checked(const char *stamp, const struct stat *st, const char *id)
{
	struct timespec now;
	if (clock_gettime(CLOCK_REALTIME, &now) == 0 && now.tv_sec - st->st_ctim.tv_sec >= 2)
		kout_write_file(stamp, id, strlen(id), 0600, 0);
}

/* The payload's kernel, unpacked once into the user's cache
 * (DIR/kernel/linux-RELEASE-CRC-SIZE) and checked against its CRC at
 * every use but those the identity recorded beside it vouches for: an
 * open descriptor, or -1 when it is not there whole (a damaged one is
 * removed). */
static int cached_kernel(const struct payload *p, char *path, size_t cap)
{
	char dir[PATH_MAX - 128], stamp[PATH_MAX + 8], id[160];
	k_cache_dir(dir, sizeof(dir));
	snprintf(path, cap, "%s/kernel/linux-%s-%08x-%" PRIu64, dir, p->release, (unsigned)p->crc, p->size);
	snprintf(stamp, sizeof(stamp), "%s.ok", path);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0)
		return -1;
	int whole = fstat(fd, &st) == 0 && (uint64_t)st.st_size == p->size;
	if (whole) {
		identity(&st, id, sizeof(id));
		size_t n;
		uint8_t *was = k_read_file(stamp, &n);
		int same = was && n == strlen(id) && !memcmp(was, id, n);
		free(was);
		if (same)
			return fd;
	}
	uint8_t *m = whole ? mmap(NULL, p->size, PROT_READ, MAP_PRIVATE, fd, 0) : MAP_FAILED;
	int ok = m != MAP_FAILED && crc32(0, m, p->size) == p->crc;
	if (m != MAP_FAILED)
		munmap(m, p->size);
	if (ok) {
		stamp_checked(stamp, &st, id);
		return fd;
	}
	close(fd);
	unlink(path);           /* damaged: made again */
	unlink(stamp);
	return -1;
}

/* Keep the kernel in memfd MFD in the cache at PATH, for the next boots;
 * a cache that cannot take it (read-only, full) is no error. */
static void cache_kernel(int mfd, const char *path, uint64_t size)
{
	char dir[PATH_MAX];
	struct kout o;
	snprintf(dir, sizeof(dir), "%s", path);
	*strrchr(dir, '/') = 0;
	if (k_mkdirs(dir, 0700) < 0 || kout_open(&o, path) < 0)
		return;
	uint8_t *m = mmap(NULL, size, PROT_READ, MAP_SHARED, mfd, 0);
	if (m == MAP_FAILED || !o.regular || fchmod(o.fd, 0700) < 0 || full_write(o.fd, m, size) < 0 ||
	    kout_commit(&o, 0) < 0)
		kout_abort(&o);
	if (m != MAP_FAILED)
		munmap(m, size);
}

int xkernel_open(const char *explicit_path, const char **what)
{
	static char desc[PATH_MAX + 64];
	char self[PATH_MAX];
	struct payload p;
	int fd;

	if (explicit_path) {
		fd = open(explicit_path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			xdie("%s:", explicit_path);
		*what = explicit_path;
		return fd;
	}
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n < 0)
		xdie("cannot find this program's own file (/proc/self/exe):");
	self[n] = 0;
	switch (payload_find("/proc/self/exe", &p)) {
	case 1: {
		char cached[PATH_MAX];
		snprintf(desc, sizeof(desc), "the kernel embedded in %s (Linux %s)", self, p.release);
		*what = desc;
		if ((fd = cached_kernel(&p, cached, sizeof(cached))) >= 0)
			return fd;
		fd = payload_memfd("/proc/self/exe", &p);
		if (fd < 0)
			xdie("%s", k_errmsg());
		cache_kernel(fd, cached, p.size);
		return fd;
	}
	case -1:
		xdie("%s", k_errmsg());
	}
	/* A development tree: build/linux beside build/umlk. */
	char *slash = strrchr(self, '/');
	snprintf(desc, sizeof(desc), "%.*s/linux", slash ? (int)(slash - self) : 1,
		 slash ? self : ".");
	fd = open(desc, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		xdie("no UML kernel: this umlk has no embedded kernel and there is no %s"
		     " (build one with 'make kernel', or pass --kernel PATH)", desc);
	*what = desc;
	return fd;
}

int kernel_exec(int fd, char **argv)
{
	extern char **environ;

	syscall(SYS_execveat, fd, "", argv, environ, AT_EMPTY_PATH);
	return -1;
}
