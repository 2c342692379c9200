#include "guest/upperdiff.h"
#include "guest/boot.h"
#include "block/bsrc.h"
#include "block/bootimage.h"
#include "core/bytes.h"
#include "core/err.h"
#include "core/progress.h"
#include "core/sha256.h"
#include "core/sys.h"
#include "core/xio.h"
#include "image/diff.h"
#include "image/fdiff.h"
#include "image/upper.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#define BUFSZ (1u << 20)

/* ================= the guest's side ================= */

/* Attributes that only mean something in the filesystem they were made
 * in (inode numbers, file handles of the lower layer): not exported. */
static int attr_is_local(const char *name)
{
	static const char *const local[] = {
		"trusted.overlay.origin", "trusted.overlay.impure", "trusted.overlay.nlink",
		"trusted.overlay.uuid", "trusted.overlay.upper",
	};
	for (size_t i = 0; i < sizeof(local) / sizeof(local[0]); i++)
		if (!strcmp(name, local[i]))
			return 1;
	return 0;
}

/* ---- export: the upper directory as a stream on the job disk */

struct exp {
	int out;                /* the job disk */
	uint64_t written;       /* stream bytes, after JOB_DATA */
	uint8_t *buf;
	size_t used;
	struct fdent *e;
	uint8_t *hdr;           /* an entry's encoding */
	struct { ino_t ino; char *path; } *links;
	size_t nlinks, caplinks;
};

static int ex_flush(struct exp *x)
{
	if (x->used && full_pwrite(x->out, x->buf, x->used, JOB_DATA + x->written) < 0)
		return k_seterr("the job disk: write failed (the diff is larger than the room given?):");
	x->written += x->used;
	x->used = 0;
	return 0;
}

static int ex_put(struct exp *x, const void *p, size_t n)
{
	const uint8_t *b = p;
	while (n) {
		size_t m = BUFSZ - x->used < n ? BUFSZ - x->used : n;
		memcpy(x->buf + x->used, b, m);
		x->used += m;
		b += m;
		n -= m;
		if (x->used == BUFSZ && ex_flush(x) < 0)
			return -1;
	}
	return 0;
}

static int ex_xattrs(struct exp *x, const char *proc, const char *path)
{
	char names[65536];
	ssize_t n = llistxattr(proc, names, sizeof(names));
	if (n < 0)
		return errno == ENOTSUP ? 0 : k_seterr("%s: listing its attributes:", path);
	static uint8_t val[FDIFF_XATTR_BYTES];
	for (ssize_t i = 0; i < n; i += (ssize_t)strlen(names + i) + 1) {
		const char *nm = names + i;
		if (attr_is_local(nm))
			continue;
		ssize_t v = lgetxattr(proc, nm, val, sizeof(val));
		if (v < 0)
			return k_seterr("%s: reading attribute %s:", path, nm);
		if (fdent_add_xattr(x->e, nm, val, (uint32_t)v) < 0)
			return k_seterr("%s: more attributes than a diff holds (%d, %d bytes)", path,
					FDIFF_XATTRS_MAX, FDIFF_XATTR_BYTES);
	}
	return 0;
}

static int ex_dir(struct exp *x, int dfd, char *path, size_t plen);

static int ex_one(struct exp *x, int dfd, const char *name, char *path, size_t plen)
{
	struct fdent *e = x->e;
	struct stat st;
	size_t nl = strlen(name);

	if (plen + (plen > 0) + nl > FDIFF_PATH_MAX)
		return k_seterr("%.200s/%s: path longer than %d bytes", path, name, FDIFF_PATH_MAX);
	size_t len = plen;
	if (plen)
		path[len++] = '/';
	memcpy(path + len, name, nl + 1);
	len += nl;
	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return k_seterr("%s:", path);
	memset(e, 0, offsetof(struct fdent, path));
	e->nx = 0;
	e->xused = 0;
	memcpy(e->path, path, len + 1);
	e->target[0] = 0;
	e->mode = st.st_mode & 07777;
	e->uid = st.st_uid;
	e->gid = st.st_gid;
	e->mtime = st.st_mtim.tv_sec;
	e->mtime_ns = (uint32_t)st.st_mtim.tv_nsec;
	switch (st.st_mode & S_IFMT) {
	case S_IFDIR: e->type = 'd'; break;
	case S_IFREG: e->type = 'f'; e->datalen = (uint64_t)st.st_size; break;
	case S_IFLNK: {
		e->type = 'l';
		ssize_t n = readlinkat(dfd, name, e->target, FDIFF_PATH_MAX);
		if (n <= 0 || n >= FDIFF_PATH_MAX)
			return k_seterr("%s: reading the link (or its target is over %d bytes):", path,
					FDIFF_PATH_MAX - 1);
		e->target[n] = 0;
		break;
	}
	case S_IFCHR:
	case S_IFBLK:
		if (S_ISCHR(st.st_mode) && st.st_rdev == 0) {
			e->type = 'w';
			break;
		}
		e->type = S_ISCHR(st.st_mode) ? 'c' : 'b';
		e->major = major(st.st_rdev);
		e->minor = minor(st.st_rdev);
		break;
	case S_IFIFO: e->type = 'p'; break;
	default:
		fprintf(stderr, "umlk init: %s: a socket, not kept in a diff\n", path);
		return 0;
	}
	if (e->type == 'f' && st.st_nlink > 1) {
		for (size_t i = 0; i < x->nlinks; i++)
			if (x->links[i].ino == st.st_ino) {
				e->type = 'h';
				e->datalen = 0;
				snprintf(e->target, sizeof(e->target), "%s", x->links[i].path);
				break;
			}
		if (e->type == 'f') {
			if (x->nlinks == x->caplinks) {
				x->caplinks = x->caplinks ? 2 * x->caplinks : 64;
				x->links = xrealloc(x->links, x->caplinks * sizeof(*x->links));
			}
			x->links[x->nlinks].ino = st.st_ino;
			x->links[x->nlinks++].path = xstrdup(path);
		}
	}
	char proc[64 + NAME_MAX];
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d/%s", dfd, name);
	if (e->type != 'h' && ex_xattrs(x, proc, path) < 0)
		return -1;
	size_t hl = fdent_format(e, x->hdr);
	if (ex_put(x, x->hdr, hl) < 0)
		return -1;
	if (e->type == 'f') {
		int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			return k_seterr("%s:", path);
		uint64_t left = e->datalen;
		while (left) {
			if (x->used == BUFSZ && ex_flush(x) < 0)
				break;
			size_t m = BUFSZ - x->used < left ? BUFSZ - x->used : (size_t)left;
			ssize_t n = full_read(fd, x->buf + x->used, m);
			if (n <= 0) {
				close(fd);
				return k_seterr("%s: read failed or the file shrank:", path);
			}
			x->used += (size_t)n;
			left -= (uint64_t)n;
		}
		close(fd);
		if (left)
			return -1;
	}
	if (e->type == 'd') {
		int sub = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (sub < 0)
			return k_seterr("%s:", path);
		int r = ex_dir(x, sub, path, len);
		close(sub);
		if (r < 0)
			return -1;
	}
	path[plen] = 0;
	return 0;
}

static int strcmp_ptr(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int ex_dir(struct exp *x, int dfd, char *path, size_t plen)
{
	int d2 = dup(dfd);
	DIR *d = d2 >= 0 ? fdopendir(d2) : NULL;
	struct dirent *de;
	int r = 0;

	if (!d)
		return k_seterr("%s:", plen ? path : "the upper layer's top");
	/* Names in order, so that two exports of one layer are one diff. */
	char **names = NULL;
	size_t n = 0, cap = 0;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (n == cap) {
			cap = cap ? 2 * cap : 32;
			names = xrealloc(names, cap * sizeof(*names));
		}
		names[n++] = xstrdup(de->d_name);
	}
	closedir(d);
	qsort(names, n, sizeof(*names), strcmp_ptr);
	for (size_t i = 0; i < n; i++) {
		if (!r && ex_one(x, dfd, names[i], path, plen) < 0)
			r = -1;
		free(names[i]);
	}
	free(names);
	return r;
}

static int guest_export(int top, int out)
{
	struct exp x = { .out = out };
	char path[FDIFF_PATH_MAX + 1] = "";
	int r = 0;

	x.buf = xmalloc(BUFSZ);
	x.e = xmalloc(sizeof(*x.e));
	x.hdr = xmalloc(FDIFF_HEAD + 2 * (FDIFF_PATH_MAX + 1) + sizeof(x.e->xbuf) + 5 * FDIFF_XATTRS_MAX);
	if (top >= 0)
		r = ex_dir(&x, top, path, 0);
	uint8_t end[FDIFF_HEAD] = { FDIFF_END };
	if (!r && (ex_put(&x, end, sizeof(end)) < 0 || ex_flush(&x) < 0))
		r = -1;
	if (!r) {
		uint8_t h[16];
		memcpy(h, JOB_MAGIC, 8);
		k_put_be64(h + 8, x.written);
		if (fsync(out) < 0 || full_pwrite(out, h, sizeof(h), 0) < 0 || fsync(out) < 0)
			r = k_seterr("the job disk: write failed:");
	}
	for (size_t i = 0; i < x.nlinks; i++)
		free(x.links[i].path);
	free(x.links);
	free(x.buf);
	free(x.e);
	free(x.hdr);
	return r;
}

/* ---- apply: a stream from the job disk into the upper directory */

/* A stream read in order from a file descriptor, from OFF to END (the
 * job disk, on either side). */
struct fdsrc {
	int fd;
	uint64_t off, end;
	const char *name;
};

static int fd_read(void *ctx, void *buf, size_t n)
{
	struct fdsrc *s = ctx;
	if (n > s->end - s->off)
		return k_seterr("%s: the stream ends early", s->name);
	if (full_pread(s->fd, buf, n, s->off) != (ssize_t)n)
		return k_seterr("%s: read failed:", s->name);
	s->off += n;
	return 0;
}

/* The directory holding PATH's last component, walked one name at a time
 * from TOP without following links; the last component in *LEAF.  An fd,
 * or -1 with k_seterr(). */
static int open_parent(int top, char *path, char **leaf)
{
	char *slash = strrchr(path, '/');
	int fd = dup(top);

	if (!slash) {
		*leaf = path;
		return fd;
	}
	*slash = 0;
	for (char *c = path, *next; fd >= 0 && c; c = next) {
		next = strchr(c, '/');
		if (next)
			*next++ = 0;
		int sub = openat(fd, c, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		close(fd);
		fd = sub;
		if (next)
			next[-1] = '/';
	}
	*slash = '/';
	*leaf = slash + 1;
	if (fd < 0)
		return k_seterr("%s: its directory is not in the layer (or is not a directory):", path);
	return fd;
}

static int is_opaque(const struct fdent *e)
{
	for (unsigned i = 0; i < e->nx; i++)
		if (!strcmp(e->x[i].name, "trusted.overlay.opaque") && e->x[i].len >= 1 && e->x[i].value[0] == 'y')
			return 1;
	return 0;
}

/* Owner, mode, attributes, time, in that order: a chown clears set-id
 * bits and file capabilities, so they come after it. */
static int set_meta(const struct fdent *e, int pfd, const char *leaf)
{
	char proc[64 + NAME_MAX];
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d/%s", pfd, leaf);
	if (fchownat(pfd, leaf, e->uid, e->gid, AT_SYMLINK_NOFOLLOW) < 0)
		return k_seterr("%s: chown:", e->path);
	if (e->type != 'l' && fchmodat(pfd, leaf, e->mode, 0) < 0)
		return k_seterr("%s: chmod:", e->path);
	for (unsigned i = 0; i < e->nx; i++)
		if (lsetxattr(proc, e->x[i].name, e->x[i].value, e->x[i].len, 0) < 0)
			return k_seterr("%s: setting attribute %s:", e->path, e->x[i].name);
	if (e->type != 'd') {
		struct timespec t[2] = { { e->mtime, e->mtime_ns }, { e->mtime, e->mtime_ns } };
		if (utimensat(pfd, leaf, t, AT_SYMLINK_NOFOLLOW) < 0)
			return k_seterr("%s: setting its time:", e->path);
	}
	return 0;
}

struct dirtime {
	char *path;
	int64_t s;
	uint32_t ns;
};

static int apply_one(struct fdin *in, struct fdent *e, int top, uint8_t *buf, struct dirtime **dirs,
		     size_t *ndirs, size_t *capdirs)
{
	char *leaf;
	int pfd = open_parent(top, e->path, &leaf);
	struct stat st;
	int r = -1;

	if (pfd < 0)
		return -1;
	if (fstatat(pfd, leaf, &st, AT_SYMLINK_NOFOLLOW) == 0) {
		if (e->type == 'd' && S_ISDIR(st.st_mode)) {
			if (is_opaque(e)) {
				int fd = openat(pfd, leaf, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
				if (fd < 0 || k_clear_dir(fd) < 0) {
					k_seterr("%s: emptying it for the diff's opaque directory:", e->path);
					if (fd >= 0)
						close(fd);
					goto out;
				}
				close(fd);
			}
		} else if (k_remove_tree(pfd, leaf) < 0) {
			k_seterr("%s: replacing what is there:", e->path);
			goto out;
		}
	}
	switch (e->type) {
	case 'd':
		if (mkdirat(pfd, leaf, 0700) < 0 && errno != EEXIST) {
			k_seterr("%s: mkdir:", e->path);
			goto out;
		}
		if (*ndirs == *capdirs) {
			*capdirs = *capdirs ? 2 * *capdirs : 64;
			*dirs = xrealloc(*dirs, *capdirs * sizeof(**dirs));
		}
		(*dirs)[*ndirs].path = xstrdup(e->path);
		(*dirs)[*ndirs].s = e->mtime;
		(*dirs)[(*ndirs)++].ns = e->mtime_ns;
		break;
	case 'f': {
		int fd = openat(pfd, leaf, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd < 0) {
			k_seterr("%s: create:", e->path);
			goto out;
		}
		for (uint64_t left = e->datalen; left;) {
			size_t m = left < BUFSZ ? (size_t)left : BUFSZ;
			if (fdin_data(in, buf, m) < 0 ||
			    (full_write(fd, buf, m) < 0 && k_seterr("%s: write failed:", e->path))) {
				close(fd);
				goto out;
			}
			left -= m;
		}
		if (close(fd) < 0) {
			k_seterr("%s: write failed:", e->path);
			goto out;
		}
		break;
	}
	case 'l':
		if (symlinkat(e->target, pfd, leaf) < 0) {
			k_seterr("%s: symlink:", e->path);
			goto out;
		}
		break;
	case 'h': {
		char *tleaf;
		int tfd = open_parent(top, e->target, &tleaf);
		if (tfd < 0)
			goto out;
		struct stat ts;
		int ok = fstatat(tfd, tleaf, &ts, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(ts.st_mode) &&
			 linkat(tfd, tleaf, pfd, leaf, 0) == 0;
		close(tfd);
		if (!ok) {
			k_seterr("%s: a hard link to %s, which is not an earlier file:", e->path, e->target);
			goto out;
		}
		r = 0;
		goto out;       /* the metadata is the file's */
	}
	default: {
		mode_t m = e->type == 'w' || e->type == 'c' ? S_IFCHR : e->type == 'b' ? S_IFBLK : S_IFIFO;
		if (mknodat(pfd, leaf, m | 0600, makedev(e->major, e->minor)) < 0) {
			k_seterr("%s: mknod:", e->path);
			goto out;
		}
	}
	}
	r = set_meta(e, pfd, leaf);
out:
	close(pfd);
	return r;
}

static int guest_apply(int top, int job)
{
	uint8_t h[16];
	struct fdsrc j = { job, JOB_DATA, 0, "the job disk" };

	if (full_pread(job, h, sizeof(h), 0) != sizeof(h) || memcmp(h, JOB_MAGIC, 8))
		return k_seterr("the job disk: no job header");
	off_t size = lseek(job, 0, SEEK_END);
	uint64_t len = k_be64(h + 8);
	if (size < JOB_DATA || len > (uint64_t)size - JOB_DATA)
		return k_seterr("the job disk: a stream of %" PRIu64 " bytes on a disk of %lld", len,
				(long long)size);
	j.end = JOB_DATA + len;
	struct fdent *e = xmalloc(sizeof(*e));
	uint8_t *buf = xmalloc(BUFSZ);
	struct dirtime *dirs = NULL;
	size_t ndirs = 0, capdirs = 0;
	int r = 0;
	/* One or more streams, one after another: each ends with its mark. */
	while (!r && j.off < j.end) {
		struct fdin in = { fd_read, &j, j.name, 0, 0 };
		int got;
		while ((got = fdin_next(&in, e)) > 0)
			if (apply_one(&in, e, top, buf, &dirs, &ndirs, &capdirs) < 0) {
				got = -1;
				break;
			}
		if (got < 0)
			r = -1;
	}
	/* Directories' times last, deepest first: filling them changed them. */
	for (size_t i = ndirs; i-- > 0;) {
		char *leaf;
		int pfd = r ? -1 : open_parent(top, dirs[i].path, &leaf);
		struct timespec t[2] = { { dirs[i].s, dirs[i].ns }, { dirs[i].s, dirs[i].ns } };
		if (pfd >= 0 && utimensat(pfd, leaf, t, AT_SYMLINK_NOFOLLOW) < 0)
			r = k_seterr("%s: setting its time:", dirs[i].path);
		if (pfd >= 0)
			close(pfd);
		else if (!r)
			r = -1;
		free(dirs[i].path);
	}
	free(dirs);
	free(e);
	free(buf);
	return r;
}

int guest_upper_job(const struct guest_conf *c)
{
	char udev[64], jdev[64];
	int apply = !strcmp(c->job, "apply");

	if (!apply && strcmp(c->job, "export")) {
		k_warn("/etc/umlk/boot.conf: job=%s is neither export nor apply", c->job);
		return 1;
	}
	if (guest_disk_by_serial(GUEST_UPPER_SERIAL, udev, sizeof(udev)) < 0 ||
	    guest_disk_by_serial(GUEST_JOB_SERIAL, jdev, sizeof(jdev)) < 0) {
		k_warn("%s", k_errmsg());
		return 1;
	}
	mkdir("/rw", 0755);
	if (mount(udev, "/rw", "ext4", apply ? 0 : MS_RDONLY, NULL) < 0) {
		k_warn("mount the upper layer %s on /rw:", udev);
		return 1;
	}
	int r = -1, top = -1, job = open(jdev, (apply ? O_RDONLY : O_WRONLY) | O_CLOEXEC);
	if (job < 0) {
		k_seterr("%s (the job disk):", jdev);
	} else if (apply) {
		mkdir("/rw/upper", 0755);
		mkdir("/rw/work", 0755);
		top = open("/rw/upper", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		r = top < 0 ? k_seterr("/rw/upper:") : guest_apply(top, job);
		if (!r && syncfs(top) < 0)
			r = k_seterr("the upper layer: sync failed:");
	} else {
		top = open("/rw/upper", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (top < 0 && errno != ENOENT)
			r = k_seterr("/rw/upper:");
		else
			r = guest_export(top, job);
	}
	if (r < 0)
		k_warn("%s", k_errmsg());
	if (top >= 0)
		close(top);
	if (job >= 0)
		close(job);
	if (umount("/rw") < 0 && !r) {
		k_warn("unmounting the upper layer:");
		r = -1;
	}
	return r < 0 ? 1 : 0;
}

/* ================= the host's side ================= */

/* A temporary job disk of SIZE bytes (sparse; gone when closed). */
static int xjob_file(uint64_t size)
{
	int fd = xtmpfile();
	if (ftruncate(fd, (off_t)size) < 0)
		xdie("a temporary file of %" PRIu64 " bytes for the guest's job:", size);
	return fd;
}

/* Run the guest's JOB with the upper layer UPPER over IMAGE and the job
 * disk JFD (given to the disk server, which closes it). */
static void xrun_job(const struct upper_guest *g, const char *job, const char *image, const char *upper, int jfd,
		     uint64_t jsize, int writable)
{
	struct boot_opts o;
	memset(&o, 0, sizeof(o));
	o.kernel = g->kernel;
	o.init = g->init;
	o.image = image;
	o.cow = upper;
	o.mem = 256ULL << 20;
	o.job = job;
	o.jobdisk = bsrc_file(jfd, "the job disk", 0, jsize, writable, NULL);
	if (!o.jobdisk)
		xdie("%s", k_errmsg());
	int st = xboot(&o);
	bsrc_close(o.jobdisk);
	if (st)
		xdie("the guest that %s the upper layer %s stopped with status %d (see above);"
		     " nothing written", !strcmp(job, "export") ? "reads" : "fills", upper, st);
}

void xupper_export(const struct upper_guest *g, const char *upper, const char *backing, const char *diffpath)
{
	struct upper_hdr h;
	int r = upper_read(-1, upper, &h);

	if (r <= 0)
		xdie("%s: %s", upper, r < 0 ? k_errmsg() : "not an upper layer");
	const char *image = backing ? backing : h.image_path;

	/* The stream is at most the files' data and, for each file, an entry
	 * of at most its path, target and attributes: within twice the
	 * filesystem, and sparse, so the room costs nothing. */
	uint64_t jsize = JOB_DATA + 2 * h.fs_size + (64ULL << 20);
	int jfd = xjob_file(jsize);
	int keep = dup(jfd);
	if (keep < 0)
		xdie("dup:");
	xrun_job(g, "export", image, upper, jfd, jsize, 1);

	/* What the guest wrote is checked like any diff before it is one. */
	uint8_t jh[16];
	if (full_pread(keep, jh, sizeof(jh), 0) != sizeof(jh) || memcmp(jh, JOB_MAGIC, 8))
		xdie("%s: the guest wrote no diff (no job header)", upper);
	uint64_t len = k_be64(jh + 8);
	if (len > jsize - JOB_DATA)
		xdie("%s: the guest's stream is %" PRIu64 " bytes, more than the room it had", upper, len);
	struct fdsrc fs = { keep, JOB_DATA, JOB_DATA + len, "the guest's export" };
	struct fdin in = { fd_read, &fs, fs.name, 0, 0 };
	struct fdent *e = xmalloc(sizeof(*e));
	while ((r = fdin_next(&in, e)) > 0)
		;
	if (r < 0 || fs.off != fs.end)
		xdie("%s", r < 0 ? k_errmsg() : "the guest's export: data after its end mark");
	free(e);

	struct diffhead d = { .sectorsize = DIFF_FILES, .nsectors = in.entries };
	xdiff_hash_file(image, d.base, &d.image_size);
	if (d.image_size != h.image_size)
		xdie("%s: changed while it was read (%" PRIu64 " bytes, was %" PRIu64 ")", image, d.image_size,
		     h.image_size);
	struct kout out;
	struct progress p;
	xout_open(&out, diffpath);
	struct dwriter *w = xdiff_writer_open(&out, &d);
	uint8_t *buf = xmalloc(BUFSZ);
	prog_start(&p, "cow-merge export", len);
	for (uint64_t off = 0; off < len;) {
		size_t m = len - off < BUFSZ ? (size_t)(len - off) : BUFSZ;
		if (full_pread(keep, buf, m, JOB_DATA + off) != (ssize_t)m)
			xdie("the guest's export: read failed:");
		xdiff_writer_body(w, buf, m);
		off += m;
		prog_update(&p, off);
	}
	prog_end(&p);
	xdiff_writer_finish(w);
	xout_commit(&out);
	free(buf);
	close(keep);
	if (!k_quiet)
		fprintf(stderr, "umlk cow-merge: %s: %" PRIu64 " entries of %s's upper layer\n", diffpath,
			in.entries, image);
}

int upper_is_fdiff(const char *path)
{
	uint8_t b[DIFF_HEAD + 32];
	struct diffhead d;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd < 0 ? -1 : full_read(fd, b, sizeof(b));

	if (fd >= 0)
		close(fd);
	return n > 0 && diff_parse_head(b, (size_t)n, path, &d) == 0 && d.sectorsize == DIFF_FILES;
}

static int diff_src(void *ctx, void *buf, size_t n)
{
	return diff_reader_read(ctx, buf, n);
}

void xupper_apply(const struct upper_guest *g, const char *const *diffs, int ndiffs, const char *backing,
		  const char *outpath)
{
	char abs[PATH_MAX];
	uint8_t base[32];
	uint64_t size;
	struct stat st;

	if (!realpath(backing, abs) || stat(abs, &st) < 0)
		xdie("%s:", backing);
	/* An upper layer is for a root the guest cannot write in place. */
	struct image im;
	if (image_open(&im, abs, NULL, BSRC_CLOOP_CACHE_DEFAULT) < 0)
		xdie("%s", k_errmsg());
	int writable = image_writable(&im);
	image_close(&im);
	if (writable)
		xdie("%s: its root (ext2/3/4) is written in place, through a COW file of sectors: a diff of files"
		     " is for read-only roots (squashfs, iso9660, stacked layers); nothing made", backing);
	/* Every diff checked (its trailer, its image, every entry) into the
	 * job disk before any output exists. */
	int jfd = xtmpfile();
	uint64_t off = JOB_DATA, data = 0;
	uint8_t *buf = xmalloc(BUFSZ);
	struct fdent *e = xmalloc(sizeof(*e));
	int hashed = 0;
	for (int i = 0; i < ndiffs; i++) {
		struct dreader *r = xdiff_reader_open(diffs[i]);
		const struct diffhead *d = diff_reader_head(r);
		if (d->sectorsize != DIFF_FILES)
			xdie("%s: a diff of sectors (a COW file's), which does not go with diffs of files", diffs[i]);
		if (d->image_size != (uint64_t)st.st_size)
			xdie("%s: made for an image of %" PRIu64 " bytes; %s is %lld: not the same image,"
			     " nothing changed", diffs[i], d->image_size, backing, (long long)st.st_size);
		if (!hashed) {
			xdiff_hash_file(abs, base, &size);
			hashed = 1;
		}
		if (memcmp(base, d->base, 32)) {
			char a[65], b[65];
			sha256_hex(d->base, a);
			sha256_hex(base, b);
			xdie("%s: made for the image with SHA-256 %s; %s has %s: not the same image,"
			     " nothing changed", diffs[i], a, backing, b);
		}
		struct fdin in = { diff_src, r, diffs[i], 0, 0 };
		int got;
		while ((got = fdin_next(&in, e)) > 0) {
			size_t hl = fdent_format(e, buf);
			if (full_pwrite(jfd, buf, hl, off) < 0)
				xdie("a temporary file: write failed:");
			off += hl;
			data += e->datalen;
			for (uint64_t left = e->datalen; left;) {
				size_t m = left < BUFSZ ? (size_t)left : BUFSZ;
				if (fdin_data(&in, buf, m) < 0)
					xdie("%s", k_errmsg());
				if (full_pwrite(jfd, buf, m, off) < 0)
					xdie("a temporary file: write failed:");
				off += m;
				left -= m;
			}
		}
		if (got < 0)
			xdie("%s", k_errmsg());
		if (diff_reader_end(r) < 0 || in.entries != d->nsectors)
			xdie("%s: damaged diff: %" PRIu64 " entries where its header says %" PRIu64
			     ", or data after its end", diffs[i], in.entries, d->nsectors);
		uint8_t end[FDIFF_HEAD] = { FDIFF_END };
		if (full_pwrite(jfd, end, sizeof(end), off) < 0)
			xdie("a temporary file: write failed:");
		off += sizeof(end);
		diff_reader_close(r);
	}
	free(e);
	free(buf);
	uint8_t jh[16];
	memcpy(jh, JOB_MAGIC, 8);
	k_put_be64(jh + 8, off - JOB_DATA);
	/* A disk is whole sectors: the room after the stream reads as zero. */
	uint64_t jsize = (off + 511) / 512 * 512;
	if (full_pwrite(jfd, jh, sizeof(jh), 0) < 0 || ftruncate(jfd, (off_t)jsize) < 0)
		xdie("a temporary file: write failed:");

	/* The new layer: made in a temporary beside OUT, filled by the
	 * guest, renamed into place only when all of it is there. */
	struct upper_hdr h;
	memset(&h, 0, sizeof(h));
	h.image_size = (uint64_t)st.st_size;
	h.image_mtime = (uint64_t)st.st_mtime;
	if (strlen(abs) >= sizeof(h.image_path))
		xdie("%s: the image's path is longer than %zu bytes", backing, sizeof(h.image_path) - 1);
	memcpy(h.image_path, abs, strlen(abs) + 1);
	uint64_t fs = 4ULL << 30;
	if (data + data / 2 + (256ULL << 20) > fs)
		fs = data + data / 2 + (256ULL << 20);
	struct kout out;
	if (upper_create_open(&out, outpath, &h, fs) < 0)
		xdie("%s", k_errmsg());
	xrun_job(g, "apply", abs, out.tmp, jfd, jsize, 0);
	if (kout_commit(&out, 1) < 0)
		xdie("%s", k_errmsg());
	if (!k_quiet)
		fprintf(stderr, "umlk cow-merge: %s: an upper layer over %s with %d diff%s applied\n", outpath,
			backing, ndiffs, ndiffs == 1 ? "" : "s");
}
