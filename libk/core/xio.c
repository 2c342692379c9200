#include "core/xio.h"
#include "core/err.h"
#include "core/sys.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

void k_oom(void)
{
	xdie("out of memory");
}

void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (!p)
		xdie("out of memory (%zu bytes)", n);
	return p;
}

void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);

	if (!p)
		xdie("out of memory (%zu x %zu bytes)", n, size);
	return p;
}

void *xrealloc(void *p, size_t n)
{
	p = realloc(p, n ? n : 1);
	if (!p)
		xdie("out of memory (%zu bytes)", n);
	return p;
}

char *xstrdup(const char *s)
{
	size_t n = strlen(s) + 1;

	return memcpy(xmalloc(n), s, n);
}

/* The one loop behind full_read/pread/write/pwrite: OFF < 0 means the
 * file position; a read stops early only at end of file. */
static ssize_t full_io(int fd, void *buf, size_t n, int64_t off, int writing)
{
	size_t done = 0;

	while (done < n) {
		char *p = (char *)buf + done;
		size_t left = n - done;
		ssize_t r;
		if (writing)
			r = off < 0 ? write(fd, p, left) : pwrite(fd, p, left, off + (int64_t)done);
		else
			r = off < 0 ? read(fd, p, left) : pread(fd, p, left, off + (int64_t)done);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0) {
			if (!writing)
				break;
			errno = EIO;            /* a write that moves nothing */
			return -1;
		}
		done += (size_t)r;
	}
	return (ssize_t)done;
}

ssize_t full_read(int fd, void *buf, size_t n)
{
	return full_io(fd, buf, n, -1, 0);
}

ssize_t full_pread(int fd, void *buf, size_t n, uint64_t off)
{
	return full_io(fd, buf, n, (int64_t)off, 0);
}

ssize_t full_write(int fd, const void *buf, size_t n)
{
	return full_io(fd, (void *)buf, n, -1, 1);
}

ssize_t full_pwrite(int fd, const void *buf, size_t n, uint64_t off)
{
	return full_io(fd, (void *)buf, n, (int64_t)off, 1);
}

int xtmpfile(void)
{
	const char *dir = getenv("TMPDIR");
	int fd;

	if (!dir || !*dir)
		dir = "/tmp";
	fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd < 0) {
		/* Filesystems without O_TMPFILE: create and unlink at once. */
		char path[PATH_MAX];
		snprintf(path, sizeof(path), "%s/umlk-spool-XXXXXX", dir);
		fd = mkostemp(path, O_CLOEXEC);
		if (fd >= 0)
			unlink(path);
	}
	if (fd < 0)
		xdie("cannot create a temporary file in %s:", dir);
	return fd;
}

int kout_open(struct kout *o, const char *path)
{
	struct stat st;

	memset(o, 0, sizeof(*o));
	o->fd = -1;
	o->name = path;
	if (!strcmp(path, "-")) {
		o->fd = STDOUT_FILENO;
		o->name = "standard output";
		if (fstat(o->fd, &st) == 0 && S_ISREG(st.st_mode)) {
			/* "> file": a regular file we may seek in, but not rename. */
			o->regular = 1;
			o->seekable = lseek(o->fd, 0, SEEK_CUR) == 0;
		}
		return 0;
	}
	if (stat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
		/* A device or fifo: write into it directly. */
		o->fd = open(path, O_WRONLY | O_CLOEXEC);
		if (o->fd < 0)
			return k_seterr("%s:", path);
		o->seekable = S_ISBLK(st.st_mode);
		return 0;
	}
	/* Hidden temporary beside the target, so rename() stays in one
	 * filesystem; its name is random, and O_EXCL refuses one that is
	 * already there (never a file someone else put in our way). */
	size_t n = strlen(path);
	const char *slash = strrchr(path, '/');
	size_t dirlen = slash ? (size_t)(slash - path) + 1 : 0;
	o->tmp = xmalloc(n + 32);
	for (int tries = 0; ; tries++) {
		char r[17];
		snprintf(o->tmp, n + 32, "%.*s.%s.%s~", (int)dirlen, path, path + dirlen,
			 k_random_hex(r, 12));
		o->fd = open(o->tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
		if (o->fd >= 0)
			break;
		if (errno != EEXIST || tries > 100) {
			k_seterr("%s: cannot create a temporary file beside it:", path);
			free(o->tmp);
			o->tmp = NULL;
			return -1;
		}
	}
	if (k_cleanup_add(o->tmp) < 0) {
		kout_abort(o);
		return -1;
	}
	o->regular = 1;
	o->seekable = 1;
	return 0;
}

int k_sync_dir_of(const char *path)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/');

	if (!slash)
		snprintf(dir, sizeof(dir), ".");
	else
		snprintf(dir, sizeof(dir), "%.*s", (int)(slash == path ? 1 : slash - path), path);
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	int r = fsync(fd);
	close(fd);
	return r;
}

int kout_commit(struct kout *o, int durable)
{
	if (durable && o->regular && fsync(o->fd) < 0 && errno != EINVAL) {
		k_seterr("%s: write failed:", o->name);
		kout_abort(o);
		return -1;
	}
	if (o->tmp) {
		if (close(o->fd) < 0) {
			o->fd = -1;
			k_seterr("%s: write failed:", o->name);
			kout_abort(o);
			return -1;
		}
		o->fd = -1;
		if (rename(o->tmp, o->name) < 0) {
			k_seterr("%s: cannot rename %s into place:", o->name, o->tmp);
			kout_abort(o);
			return -1;
		}
		k_cleanup_del(o->tmp);
		free(o->tmp);
		o->tmp = NULL;
		if (durable && k_sync_dir_of(o->name) < 0)
			return k_seterr("%s: cannot make its directory durable:", o->name);
	} else if (o->fd != STDOUT_FILENO && o->fd >= 0) {
		if (close(o->fd) < 0) {
			o->fd = -1;
			return k_seterr("%s: write failed:", o->name);
		}
	}
	o->fd = -1;
	return 0;
}

void kout_abort(struct kout *o)
{
	if (o->tmp) {
		if (o->fd >= 0)
			close(o->fd);
		unlink(o->tmp);
		k_cleanup_del(o->tmp);
		free(o->tmp);
		o->tmp = NULL;
		o->fd = -1;
	}
}

int kout_write_file(const char *path, const void *data, size_t n, mode_t mode, int durable)
{
	struct kout o;

	if (kout_open(&o, path) < 0)
		return -1;
	if (o.tmp && fchmod(o.fd, mode) < 0) {
		k_seterr("%s: chmod:", path);
		kout_abort(&o);
		return -1;
	}
	if (full_write(o.fd, data, n) < 0) {
		k_seterr("%s: write failed:", path);
		kout_abort(&o);
		return -1;
	}
	return kout_commit(&o, durable);
}

void xout_open(struct kout *o, const char *path)
{
	if (kout_open(o, path) < 0)
		xdie("%s", k_errmsg());
}

void xout_commit(struct kout *o)
{
	if (kout_commit(o, 0) < 0)
		xdie("%s", k_errmsg());
}

void xsrc_open(struct ksrc *s, const char *path)
{
	struct stat st;

	memset(s, 0, sizeof(*s));
	s->name = path;
	if (!strcmp(path, "-")) {
		s->fd = STDIN_FILENO;
		s->name = "standard input";
	} else {
		s->fd = open(path, O_RDONLY | O_CLOEXEC);
		if (s->fd < 0)
			xdie("%s:", path);
	}
	if (fstat(s->fd, &st) < 0)
		xdie("%s:", s->name);
	if (S_ISDIR(st.st_mode))
		xdie("%s: is a directory", s->name);
	if (S_ISREG(st.st_mode)) {
		s->size = st.st_size;
		return;
	}
	off_t end = lseek(s->fd, 0, SEEK_END);
	if (end > 0) {          /* a block device */
		s->size = end;
		return;
	}
	/* A pipe: copy it to a spool file so it can be read by offset. */
	int spool = xtmpfile();
	char *buf = xmalloc(1 << 20);
	ssize_t r;
	while ((r = full_read(s->fd, buf, 1 << 20)) > 0) {
		if (full_write(spool, buf, r) < 0)
			xdie("%s: cannot spool input:", s->name);
		s->size += r;
	}
	if (r < 0)
		xdie("%s:", s->name);
	free(buf);
	if (s->fd != STDIN_FILENO)
		close(s->fd);
	s->fd = spool;
}

void ksrc_mem(struct ksrc *s, const void *buf, size_t n, const char *name)
{
	memset(s, 0, sizeof(*s));
	s->fd = -1;
	s->mem = buf;
	s->size = n;
	s->name = name;
}

void ksrc_window(struct ksrc *s, uint64_t off, uint64_t len)
{
	s->base += off;
	s->size = len;
}

void ksrc_close(struct ksrc *s)
{
	if (s->fd > STDERR_FILENO)
		close(s->fd);
	s->fd = -1;
}

int ksrc_read(const struct ksrc *s, void *buf, size_t n, uint64_t off)
{
	if (off > s->size || n > s->size - off)
		return k_seterr("%s: truncated: needs %zu bytes at offset %" PRIu64
				", file is %" PRIu64 " bytes", s->name, n, off, s->size);
	if (s->readfn)
		return s->readfn(s->ctx, buf, n, s->base + off);
	if (s->fd < 0) {
		memcpy(buf, s->mem + s->base + off, n);
		return 0;
	}
	ssize_t r = full_pread(s->fd, buf, n, s->base + off);
	if (r < 0)
		return k_seterr("%s: read error at offset %" PRIu64 ":", s->name, off);
	if ((size_t)r != n)
		return k_seterr("%s: file shrank while reading (offset %" PRIu64 ")",
				s->name, off);
	return 0;
}

uint8_t *k_read_file(const char *path, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;

	if (fd < 0 || fstat(fd, &st) < 0) {
		k_seterr("%s:", path);
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		k_seterr("%s: not a regular file", path);
		return NULL;
	}
	uint8_t *buf = xmalloc((size_t)st.st_size);
	ssize_t r = full_read(fd, buf, (size_t)st.st_size);
	if (r != st.st_size) {
		k_seterr(r < 0 ? "%s:" : "%s: changed size while being read", path);
		close(fd);
		free(buf);
		return NULL;
	}
	close(fd);
	*len = (size_t)st.st_size;
	return buf;
}

uint8_t *xread_file(const char *path, size_t *len)
{
	uint8_t *buf = k_read_file(path, len);

	if (!buf)
		xdie("%s", k_errmsg());
	return buf;
}


int k_iszero(const void *buf, size_t n)
{
	const unsigned char *p = buf;

	/* Word at a time: musl's memcmp goes byte by byte, and this runs over
	 * every block of every image. */
	while (n && ((uintptr_t)p & 7)) {
		if (*p++)
			return 0;
		n--;
	}
	for (; n >= 32; p += 32, n -= 32) {
		uint64_t a, b, c, d;
		memcpy(&a, p, 8);
		memcpy(&b, p + 8, 8);
		memcpy(&c, p + 16, 8);
		memcpy(&d, p + 24, 8);
		if (a | b | c | d)
			return 0;
	}
	while (n--)
		if (*p++)
			return 0;
	return 1;
}

const char *k_human(uint64_t bytes, char *buf, size_t len)
{
	static const char *unit[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB" };
	double v = bytes;
	int u = 0;

	while (v >= 1024 && u < 5) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, len, "%" PRIu64 " B", bytes);
	else
		snprintf(buf, len, "%.1f %s", v, unit[u]);
	return buf;
}

int k_parse_size(const char *s, uint64_t *out)
{
	uint64_t v = 0, mul = 1;
	const char *p = s;

	if (*p < '0' || *p > '9')
		return k_seterr("'%s' is not a size", s);
	for (; *p >= '0' && *p <= '9'; p++) {
		if (v > (UINT64_MAX - (uint64_t)(*p - '0')) / 10)
			return k_seterr("'%s' is too large", s);
		v = v * 10 + (uint64_t)(*p - '0');
	}
	switch (*p) {
	case 'k': case 'K': mul = 1ULL << 10; break;
	case 'm': case 'M': mul = 1ULL << 20; break;
	case 'g': case 'G': mul = 1ULL << 30; break;
	case 't': case 'T': mul = 1ULL << 40; break;
	}
	if (mul > 1) {
		p++;
		if (p[0] == 'i' && p[1] == 'B')
			p += 2;
		else if (p[0] == 'B')
			p++;
	}
	if (*p)
		return k_seterr("'%s' is not a size (a whole number, then K, M, G or T)", s);
	if (v > UINT64_MAX / mul)
		return k_seterr("'%s' is too large", s);
	*out = v * mul;
	return 0;
}

unsigned k_iov_slice(const struct iovec *v, unsigned n, size_t skip, size_t len, struct iovec *out)
{
	unsigned k = 0;

	for (unsigned i = 0; i < n && len; i++) {
		if (skip >= v[i].iov_len) {
			skip -= v[i].iov_len;
			continue;
		}
		size_t l = v[i].iov_len - skip < len ? v[i].iov_len - skip : len;
		out[k].iov_base = (uint8_t *)v[i].iov_base + skip;
		out[k++].iov_len = l;
		len -= l;
		skip = 0;
	}
	return k;
}

void k_iov_put(const struct iovec *v, unsigned n, size_t skip, const void *src, size_t len)
{
	const uint8_t *p = src;

	for (unsigned i = 0; i < n && len; i++) {
		if (skip >= v[i].iov_len) {
			skip -= v[i].iov_len;
			continue;
		}
		size_t l = v[i].iov_len - skip < len ? v[i].iov_len - skip : len;
		memcpy((uint8_t *)v[i].iov_base + skip, p, l);
		p += l;
		len -= l;
		skip = 0;
	}
}
