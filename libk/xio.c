#include "xio.h"
#include "err.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

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

char *xstrdup(const char *s)
{
	size_t n = strlen(s) + 1;

	return memcpy(xmalloc(n), s, n);
}

ssize_t full_read(int fd, void *buf, size_t n)
{
	size_t done = 0;

	while (done < n) {
		ssize_t r = read(fd, (char *)buf + done, n - done);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0)
			break;
		done += r;
	}
	return done;
}

ssize_t full_pread(int fd, void *buf, size_t n, uint64_t off)
{
	size_t done = 0;

	while (done < n) {
		ssize_t r = pread(fd, (char *)buf + done, n - done, off + done);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0)
			break;
		done += r;
	}
	return done;
}

int full_write(int fd, const void *buf, size_t n)
{
	size_t done = 0;

	while (done < n) {
		ssize_t r = write(fd, (const char *)buf + done, n - done);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		done += r;
	}
	return 0;
}

int full_pwrite(int fd, const void *buf, size_t n, uint64_t off)
{
	size_t done = 0;

	while (done < n) {
		ssize_t r = pwrite(fd, (const char *)buf + done, n - done, off + done);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		done += r;
	}
	return 0;
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

void xout_open(struct kout *o, const char *path)
{
	struct stat st;

	memset(o, 0, sizeof(*o));
	o->name = path;
	if (!strcmp(path, "-")) {
		o->fd = STDOUT_FILENO;
		o->name = "standard output";
		if (fstat(o->fd, &st) == 0 && S_ISREG(st.st_mode)) {
			/* "> file": a regular file we may seek in, but not rename. */
			o->regular = 1;
			o->seekable = lseek(o->fd, 0, SEEK_CUR) == 0;
		}
		return;
	}
	if (stat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
		/* A device or fifo: write into it directly. */
		o->fd = open(path, O_WRONLY | O_CLOEXEC);
		if (o->fd < 0)
			xdie("%s:", path);
		o->seekable = S_ISBLK(st.st_mode);
		return;
	}
	/* Hidden temporary beside the target, so rename() stays in one filesystem. */
	size_t n = strlen(path);
	const char *slash = strrchr(path, '/');
	size_t dirlen = slash ? (size_t)(slash - path) + 1 : 0;
	o->tmp = xmalloc(n + 32);
	for (int tries = 0; ; tries++) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		snprintf(o->tmp, n + 32, "%.*s.%s.%06lx~", (int)dirlen, path,
			 path + dirlen, (unsigned long)((ts.tv_nsec ^ getpid() ^ tries) & 0xffffff));
		o->fd = open(o->tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
		if (o->fd >= 0)
			break;
		if (errno != EEXIST || tries > 100)
			xdie("%s: cannot create temporary file %s:", path, o->tmp);
	}
	k_cleanup_add(o->tmp);
	o->regular = 1;
	o->seekable = 1;
}

void xout_commit(struct kout *o)
{
	if (o->tmp) {
		if (close(o->fd) < 0)
			xdie("%s: write failed:", o->name);
		if (rename(o->tmp, o->name) < 0)
			xdie("%s: cannot rename %s into place:", o->name, o->tmp);
		k_cleanup_del(o->tmp);
		free(o->tmp);
		o->tmp = NULL;
	} else if (o->fd != STDOUT_FILENO) {
		if (close(o->fd) < 0)
			xdie("%s: write failed:", o->name);
	}
	o->fd = -1;
}

void kout_abort(struct kout *o)
{
	if (o->tmp) {
		close(o->fd);
		unlink(o->tmp);
		k_cleanup_del(o->tmp);
		free(o->tmp);
		o->tmp = NULL;
	}
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
	if (s->fd < 0) {
		memcpy(buf, s->mem + s->base + off, n);
		return 0;
	}
	ssize_t r = full_pread(s->fd, buf, n, s->base + off);
	if (r < 0)
		return k_seterr("%s: read error at offset %" PRIu64 ": %s",
				s->name, off, strerror(errno));
	if ((size_t)r != n)
		return k_seterr("%s: file shrank while reading (offset %" PRIu64 ")",
				s->name, off);
	return 0;
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
	char *end;
	uint64_t mul = 1;

	if (!*s || *s == '-')
		return -1;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -1;
	switch (*end) {
	case 'k': case 'K': mul = 1ULL << 10; end++; break;
	case 'm': case 'M': mul = 1ULL << 20; end++; break;
	case 'g': case 'G': mul = 1ULL << 30; end++; break;
	case 't': case 'T': mul = 1ULL << 40; end++; break;
	}
	if (*end == 'i' || *end == 'B')         /* accept "MiB", "MB" */
		end += (*end == 'i' && end[1] == 'B') ? 2 : 1;
	if (*end || v > UINT64_MAX / mul)
		return -1;
	*out = v * mul;
	return 0;
}
