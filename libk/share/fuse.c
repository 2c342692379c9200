#include "share/fuse.h"
#include "core/bytes.h"
#include "core/err.h"
#include "core/xio.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <unistd.h>

/* Opcodes (the FUSE protocol, 7.x) */
enum {
	OP_LOOKUP = 1, OP_FORGET = 2, OP_GETATTR = 3, OP_SETATTR = 4, OP_READLINK = 5,
	OP_SYMLINK = 6, OP_MKNOD = 8, OP_MKDIR = 9, OP_UNLINK = 10, OP_RMDIR = 11,
	OP_RENAME = 12, OP_LINK = 13, OP_OPEN = 14, OP_READ = 15, OP_WRITE = 16, OP_STATFS = 17,
	OP_RELEASE = 18, OP_FSYNC = 20, OP_FLUSH = 25, OP_INIT = 26, OP_OPENDIR = 27,
	OP_READDIR = 28, OP_RELEASEDIR = 29, OP_FSYNCDIR = 30, OP_ACCESS = 34, OP_CREATE = 35,
	OP_INTERRUPT = 36, OP_DESTROY = 38, OP_BATCH_FORGET = 42, OP_FALLOCATE = 43,
	OP_READDIRPLUS = 44, OP_RENAME2 = 45, OP_LSEEK = 46,
};

#define ROOT_ID 1
#define ATTR_OUT 88                     /* struct fuse_attr */
#define ENTRY_OUT (40 + ATTR_OUT)

/* INIT flags we use */
#define F_ASYNC_READ (1u << 0)
#define F_ATOMIC_O_TRUNC (1u << 3)
#define F_BIG_WRITES (1u << 5)
#define F_AUTO_INVAL_DATA (1u << 12)
#define F_DO_READDIRPLUS (1u << 13)
#define F_READDIRPLUS_AUTO (1u << 14)
#define F_PARALLEL_DIROPS (1u << 18)
#define F_MAX_PAGES (1u << 22)

#define FOPEN_KEEP_CACHE (1u << 1)       /* OPEN's open_flags */

/* SETATTR valid bits */
#define FA_MODE (1u << 0)
#define FA_UID (1u << 1)
#define FA_GID (1u << 2)
#define FA_SIZE (1u << 3)
#define FA_ATIME (1u << 4)
#define FA_MTIME (1u << 5)
#define FA_FH (1u << 6)
#define FA_ATIME_NOW (1u << 7)
#define FA_MTIME_NOW (1u << 8)

struct inode {
	uint64_t id;
	int fd;                         /* O_PATH, never followed */
	dev_t dev;
	ino_t ino;
	uint64_t nlookup;               /* the guest's references */
	unsigned refs;                  /* requests using it now */
	struct inode *by_id, *by_ino;   /* hash chains */
};

struct handle {
	int fd, used, isdir;
	unsigned refs;
	pthread_mutex_t lock;           /* a directory's position */
};

#define HASH 4096

struct fshare {
	pthread_mutex_t lock;
	struct inode *ids[HASH], *inos[HASH];
	uint64_t next_id;
	struct inode *root;
	struct handle **h;              /* pointers: they stay put when the table grows */
	size_t nh, caph;
	size_t ninodes, nopen, max_open;        /* descriptors held, and the most we will hold */
	int proc;                       /* /proc/self/fd */
	uint64_t valid_secs;            /* how long the guest may trust names and attributes */
	int keep_cache;                 /* its cached data of a file, from one open to the next */
};

/* ---- inodes */

static size_t id_slot(uint64_t id) { return (size_t)(id * 0x9e3779b97f4a7c15ULL >> 52) % HASH; }
static size_t ino_slot(dev_t d, ino_t i) { return (size_t)(((uint64_t)d * 31 + (uint64_t)i) * 0x9e3779b97f4a7c15ULL >> 52) % HASH; }

/* The inode NODEID with a reference taken, or NULL. */
static struct inode *get(struct fshare *s, uint64_t id)
{
	pthread_mutex_lock(&s->lock);
	struct inode *n = s->ids[id_slot(id)];
	while (n && n->id != id)
		n = n->by_id;
	if (n)
		n->refs++;
	pthread_mutex_unlock(&s->lock);
	return n;
}

static void unlink_inode(struct fshare *s, struct inode *n)
{
	struct inode **pp = &s->ids[id_slot(n->id)];
	while (*pp != n)
		pp = &(*pp)->by_id;
	*pp = n->by_id;
	pp = &s->inos[ino_slot(n->dev, n->ino)];
	while (*pp != n)
		pp = &(*pp)->by_ino;
	*pp = n->by_ino;
	close(n->fd);
	free(n);
	s->ninodes--;
}

/* Drop a request's reference, and NLOOKUP of the guest's (lock held). */
static void put_locked(struct fshare *s, struct inode *n, uint64_t nlookup)
{
	if (!n)
		return;
	if (nlookup)
		n->nlookup = nlookup > n->nlookup ? 0 : n->nlookup - nlookup;
	if (n->refs)
		n->refs--;
	if (!n->refs && !n->nlookup && n != s->root)
		unlink_inode(s, n);
}

static void put(struct fshare *s, struct inode *n)
{
	pthread_mutex_lock(&s->lock);
	put_locked(s, n, 0);
	pthread_mutex_unlock(&s->lock);
}

/* FD (an O_PATH descriptor, taken over) as an inode the guest now holds
 * one more reference to: the existing one if it is known already.  NULL
 * when the guest holds as many as we will keep open (it gets ENFILE: a
 * guest must not take every descriptor of the process serving it). */
static struct inode *remember(struct fshare *s, int fd, const struct stat *st)
{
	pthread_mutex_lock(&s->lock);
	struct inode *n = s->inos[ino_slot(st->st_dev, st->st_ino)];
	while (n && !(n->dev == st->st_dev && n->ino == st->st_ino))
		n = n->by_ino;
	if (n) {
		close(fd);
	} else if (s->ninodes + s->nopen >= s->max_open) {
		close(fd);
		pthread_mutex_unlock(&s->lock);
		return NULL;
	} else {
		s->ninodes++;
		n = xcalloc(1, sizeof(*n));
		n->id = ++s->next_id;
		n->fd = fd;
		n->dev = st->st_dev;
		n->ino = st->st_ino;
		n->by_id = s->ids[id_slot(n->id)];
		s->ids[id_slot(n->id)] = n;
		n->by_ino = s->inos[ino_slot(n->dev, n->ino)];
		s->inos[ino_slot(n->dev, n->ino)] = n;
	}
	n->nlookup++;
	pthread_mutex_unlock(&s->lock);
	return n;
}

/* ---- open files */

#define NO_HANDLE UINT64_MAX

/* A handle for FD, or NO_HANDLE (FD closed) when too many are open. */
static uint64_t add_handle(struct fshare *s, int fd, int isdir)
{
	pthread_mutex_lock(&s->lock);
	if (s->ninodes + s->nopen >= s->max_open) {
		pthread_mutex_unlock(&s->lock);
		close(fd);
		return NO_HANDLE;
	}
	s->nopen++;
	size_t i = 0;
	while (i < s->nh && s->h[i]->used)
		i++;
	if (i == s->nh) {
		if (s->nh == s->caph) {
			s->caph = s->caph ? 2 * s->caph : 64;
			s->h = xrealloc(s->h, s->caph * sizeof(*s->h));
		}
		s->h[i] = xcalloc(1, sizeof(**s->h));
		pthread_mutex_init(&s->h[i]->lock, NULL);
		s->nh++;
	}
	s->h[i]->fd = fd;
	s->h[i]->used = 1;
	s->h[i]->isdir = isdir;
	s->h[i]->refs = 0;
	pthread_mutex_unlock(&s->lock);
	return i;
}

/* The handle FH with a reference taken: its descriptor, or -1. */
static int get_handle(struct fshare *s, uint64_t fh, int isdir)
{
	int fd = -1;

	pthread_mutex_lock(&s->lock);
	if (fh < s->nh && s->h[fh]->used == 1 && s->h[fh]->isdir == isdir) {
		s->h[fh]->refs++;
		fd = s->h[fh]->fd;
	}
	pthread_mutex_unlock(&s->lock);
	return fd;
}

static void put_handle(struct fshare *s, uint64_t fh)
{
	pthread_mutex_lock(&s->lock);
	if (fh < s->nh && s->h[fh]->refs && --s->h[fh]->refs == 0 && s->h[fh]->used == 2) {
		close(s->h[fh]->fd);
		s->h[fh]->used = 0;
		s->nopen--;
	}
	pthread_mutex_unlock(&s->lock);
}

static int release_handle(struct fshare *s, uint64_t fh, int isdir)
{
	int r = -EBADF;

	pthread_mutex_lock(&s->lock);
	if (fh < s->nh && s->h[fh]->used == 1 && s->h[fh]->isdir == isdir) {
		if (s->h[fh]->refs) {
			s->h[fh]->used = 2;     /* closed when the last user is done */
		} else {
			close(s->h[fh]->fd);
			s->h[fh]->used = 0;
			s->nopen--;
		}
		r = 0;
	}
	pthread_mutex_unlock(&s->lock);
	return r;
}

/* ---- setting up */

static const char *const cache_names[] = { "auto", "always", "none" };

const char *fshare_cache_name(enum fshare_cache cache)
{
	return cache_names[cache];
}

int fshare_cache_of(const char *name)
{
	for (int i = 0; i < 3; i++)
		if (!strcmp(name, cache_names[i]))
			return i;
	return -1;
}

struct fshare *fshare_open(const char *dir, enum fshare_cache cache)
{
	struct fshare *s = xcalloc(1, sizeof(*s));
	struct stat st;

	s->valid_secs = cache == FSHARE_CACHE_ALWAYS ? 86400 : cache == FSHARE_CACHE_AUTO ? 1 : 0;
	s->keep_cache = cache != FSHARE_CACHE_NONE;

	pthread_mutex_init(&s->lock, NULL);
	struct rlimit rl;
	s->max_open = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur > 256 + 64 ? rl.rlim_cur - 256 : 64;
	s->proc = open("/proc/self/fd", O_PATH | O_DIRECTORY | O_CLOEXEC);
	int fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (s->proc < 0 || fd < 0 || fstat(fd, &st) < 0) {
		k_seterr("%s:", s->proc < 0 ? "/proc/self/fd" : dir);
		if (fd >= 0)
			close(fd);
		fshare_close(s);
		return NULL;
	}
	s->next_id = ROOT_ID - 1;
	s->root = remember(s, fd, &st);         /* gets ROOT_ID */
	if (!s->root) {
		k_seterr("%s: no descriptors left", dir);
		fshare_close(s);
		return NULL;
	}
	return s;
}

void fshare_close(struct fshare *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < HASH; i++) {
		while (s->ids[i]) {
			struct inode *n = s->ids[i];
			unlink_inode(s, n);
		}
	}
	for (size_t i = 0; i < s->nh; i++) {
		if (s->h[i]->used)
			close(s->h[i]->fd);
		pthread_mutex_destroy(&s->h[i]->lock);
		free(s->h[i]);
	}
	free(s->h);
	if (s->proc >= 0)
		close(s->proc);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

/* ---- replies */

struct req {
	struct fshare *s;
	uint32_t op;
	uint64_t unique, nodeid;
	const uint8_t *arg;             /* after the header */
	size_t arglen;
	uint8_t *out;
	size_t cap, len;                /* of OUT, the header included */
	const struct iovec *data;       /* READ/WRITE data in the guest's buffers, or NULL */
	unsigned ndata;
	size_t datalen;                 /* bytes there */
	size_t extra;                   /* READ: bytes put there, counted in the reply's length */
};

static size_t reply(struct req *r, int err)
{
	if (err > 0)
		err = -err;
	if (err) {
		r->len = FUSE_HDR_OUT;
		r->extra = 0;
	}
	k_put_le32(r->out, (uint32_t)(r->len + r->extra));
	k_put_le32(r->out + 4, (uint32_t)err);
	k_put_le64(r->out + 8, r->unique);
	return r->len + r->extra;       /* the data in place counts too */
}

/* Room for N more bytes of reply: a pointer to them, or NULL. */
static uint8_t *room(struct req *r, size_t n)
{
	if (r->cap - r->len < n)
		return NULL;
	uint8_t *p = r->out + r->len;
	memset(p, 0, n);
	r->len += n;
	return p;
}

static void put_attr(uint8_t *p, uint64_t id, const struct stat *st)
{
	k_put_le64(p, id);
	k_put_le64(p + 8, (uint64_t)st->st_size);
	k_put_le64(p + 16, (uint64_t)st->st_blocks);
	k_put_le64(p + 24, (uint64_t)st->st_atim.tv_sec);
	k_put_le64(p + 32, (uint64_t)st->st_mtim.tv_sec);
	k_put_le64(p + 40, (uint64_t)st->st_ctim.tv_sec);
	k_put_le32(p + 48, (uint32_t)st->st_atim.tv_nsec);
	k_put_le32(p + 52, (uint32_t)st->st_mtim.tv_nsec);
	k_put_le32(p + 56, (uint32_t)st->st_ctim.tv_nsec);
	k_put_le32(p + 60, st->st_mode);
	k_put_le32(p + 64, (uint32_t)st->st_nlink);
	k_put_le32(p + 68, st->st_uid);
	k_put_le32(p + 72, st->st_gid);
	k_put_le32(p + 76, (uint32_t)st->st_rdev);
	k_put_le32(p + 80, (uint32_t)st->st_blksize);
}

static int stat_fd(int fd, struct stat *st)
{
	return fstatat(fd, "", st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0 ? -errno : 0;
}

/* A struct fuse_entry_out at P (ENTRY_OUT bytes, zeroed) for N. */
static void put_entry(const struct fshare *s, uint8_t *p, const struct inode *n, const struct stat *st)
{
	k_put_le64(p, n->id);
	k_put_le64(p + 8, 0);                   /* generation */
	k_put_le64(p + 16, s->valid_secs);
	k_put_le64(p + 24, s->valid_secs);
	put_attr(p + 40, n->id, st);
}

static size_t reply_entry(struct req *r, struct inode *n, const struct stat *st)
{
	uint8_t *p = room(r, ENTRY_OUT);
	if (!p)
		return reply(r, EINVAL);
	put_entry(r->s, p, n, st);
	return reply(r, 0);
}

static size_t reply_attr(struct req *r, uint64_t id, const struct stat *st)
{
	uint8_t *p = room(r, 16 + ATTR_OUT);
	if (!p)
		return reply(r, EINVAL);
	k_put_le64(p, r->s->valid_secs);
	put_attr(p + 16, id, st);
	return reply(r, 0);
}

/* ---- arguments */

/* A name at OFF of the arguments: one NUL-terminated path component that
 * is not "." or "..".  NULL when it is not; *END is past its NUL. */
static const char *name_at(const struct req *r, size_t off, size_t *end)
{
	if (off >= r->arglen)
		return NULL;
	const char *p = (const char *)r->arg + off;
	size_t n = strnlen(p, r->arglen - off);
	if (n == r->arglen - off || n == 0 || n > NAME_MAX || memchr(p, '/', n) ||
	    !strcmp(p, ".") || !strcmp(p, ".."))
		return NULL;
	if (end)
		*end = off + n + 1;
	return p;
}

static char *procpath(char *buf, int fd)
{
	snprintf(buf, 32, "%d", fd);
	return buf;
}

/* NAME (one component, never "." or "..") in the directory DIRFD, as an
 * inode the guest now holds a reference to, its attributes in ST: NULL
 * with the error in *ERR when there is none. */
static struct inode *lookup(struct fshare *s, int dirfd, const char *name, struct stat *st, int *err)
{
	int fd = openat(dirfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);

	if (fd < 0) {
		*err = errno;
		return NULL;
	}
	if ((*err = -stat_fd(fd, st))) {
		close(fd);
		return NULL;
	}
	struct inode *n = remember(s, fd, st);
	if (!n)
		*err = ENFILE;
	return n;
}

/* Look NAME up in PARENT and answer with its entry. */
static size_t entry_of(struct req *r, struct inode *parent, const char *name)
{
	struct stat st;
	int e;
	struct inode *n = lookup(r->s, parent->fd, name, &st, &e);

	return n ? reply_entry(r, n, &st) : reply(r, e);
}

/* ---- operations */

static size_t op_init(struct req *r)
{
	if (r->arglen < 16)
		return reply(r, EINVAL);
	uint32_t major = k_le32(r->arg), minor = k_le32(r->arg + 4), ra = k_le32(r->arg + 8);
	uint32_t flags = k_le32(r->arg + 12);
	if (major != 7)
		return reply(r, EPROTO);
	uint8_t *p = room(r, 64);
	if (!p)
		return reply(r, EINVAL);
	k_put_le32(p, 7);
	k_put_le32(p + 4, minor < 31 ? minor : 31);
	k_put_le32(p + 8, ra);
	/* Data kept from one open to the next is dropped when a file's
	 * time or size is seen to change (AUTO_INVAL_DATA). */
	uint32_t want = F_ASYNC_READ | F_ATOMIC_O_TRUNC | F_BIG_WRITES | F_PARALLEL_DIROPS | F_MAX_PAGES |
			F_DO_READDIRPLUS | F_READDIRPLUS_AUTO | (r->s->keep_cache ? F_AUTO_INVAL_DATA : 0);
	k_put_le32(p + 12, flags & want);
	k_put_le16(p + 16, 16);                 /* max_background */
	k_put_le16(p + 18, 12);                 /* congestion_threshold */
	k_put_le32(p + 20, FUSE_MAX_WRITE);
	k_put_le32(p + 24, 1);                  /* time_gran: nanoseconds */
	k_put_le16(p + 28, FUSE_MAX_WRITE / 4096);      /* max_pages */
	return reply(r, 0);
}

static size_t op_setattr(struct req *r, struct inode *n)
{
	if (r->arglen < 88)
		return reply(r, EINVAL);
	const uint8_t *a = r->arg;
	uint32_t valid = k_le32(a), mode = k_le32(a + 68), uid = k_le32(a + 76), gid = k_le32(a + 80);
	uint64_t fh = k_le64(a + 8), size = k_le64(a + 16);
	struct stat st;
	char pp[32];
	int e = stat_fd(n->fd, &st);

	if (e)
		return reply(r, e);
	int reg = S_ISREG(st.st_mode), lnk = S_ISLNK(st.st_mode);
	if ((valid & FA_MODE) && !lnk && fchmodat(r->s->proc, procpath(pp, n->fd), mode & 07777, 0) < 0)
		return reply(r, errno);
	if ((valid & (FA_UID | FA_GID)) &&
	    fchownat(n->fd, "", valid & FA_UID ? uid : (uid_t)-1, valid & FA_GID ? gid : (gid_t)-1,
		     AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0)
		return reply(r, errno);
	if (valid & FA_SIZE) {
		if (!reg)
			return reply(r, S_ISDIR(st.st_mode) ? EISDIR : EINVAL);
		if (size > (uint64_t)INT64_MAX)
			return reply(r, EFBIG);
		int fd = (valid & FA_FH) ? get_handle(r->s, fh, 0) : -1, mine = 0;
		if (fd < 0) {
			fd = openat(r->s->proc, procpath(pp, n->fd), O_WRONLY | O_CLOEXEC);
			mine = 1;
		}
		int rc = fd < 0 || ftruncate(fd, (off_t)size) < 0 ? errno : 0;
		if (mine && fd >= 0)
			close(fd);
		else if (!mine)
			put_handle(r->s, fh);
		if (rc)
			return reply(r, rc);
	}
	if (valid & (FA_ATIME | FA_MTIME)) {
		struct timespec ts[2] = { { 0, UTIME_OMIT }, { 0, UTIME_OMIT } };
		if (valid & FA_ATIME)
			ts[0] = (valid & FA_ATIME_NOW) ? (struct timespec){ 0, UTIME_NOW }
						       : (struct timespec){ (time_t)k_le64(a + 32), (long)(k_le32(a + 56) % 1000000000u) };
		if (valid & FA_MTIME)
			ts[1] = (valid & FA_MTIME_NOW) ? (struct timespec){ 0, UTIME_NOW }
						       : (struct timespec){ (time_t)k_le64(a + 40), (long)(k_le32(a + 60) % 1000000000u) };
		if (!lnk && utimensat(r->s->proc, procpath(pp, n->fd), ts, 0) < 0)
			return reply(r, errno);
	}
	if ((e = stat_fd(n->fd, &st)))
		return reply(r, e);
	return reply_attr(r, n->id, &st);
}

/* NAME was just made in PARENT (RC from the call that made it): answer
 * with its entry, or the call's error. */
static size_t made(struct req *r, struct inode *parent, const char *name, int rc)
{
	if (rc < 0)
		return reply(r, errno);
	return entry_of(r, parent, name);
}

static size_t op_open(struct req *r, struct inode *n, int dir)
{
	struct stat st;
	char pp[32];

	if (r->arglen < 8)
		return reply(r, EINVAL);
	int e = stat_fd(n->fd, &st);
	if (e)
		return reply(r, e);
	if (dir && !S_ISDIR(st.st_mode))
		return reply(r, ENOTDIR);
	if (!dir && !S_ISREG(st.st_mode))
		return reply(r, S_ISDIR(st.st_mode) ? EISDIR : ENXIO);  /* no FIFO, no device */
	uint32_t flags = k_le32(r->arg);
	int of = dir ? O_RDONLY | O_DIRECTORY
		     : (int)(flags & (O_ACCMODE | O_APPEND | O_TRUNC | O_SYNC | O_DSYNC));
	int fd = openat(r->s->proc, procpath(pp, n->fd), of | O_CLOEXEC);
	if (fd < 0)
		return reply(r, errno);
	uint8_t *p = room(r, 16);
	if (!p) {
		close(fd);
		return reply(r, EINVAL);
	}
	uint64_t fh = add_handle(r->s, fd, dir);
	if (fh == NO_HANDLE)
		return reply(r, EMFILE);
	k_put_le64(p, fh);
	k_put_le32(p + 8, !dir && r->s->keep_cache ? FOPEN_KEEP_CACHE : 0);
	return reply(r, 0);
}

static size_t op_create(struct req *r, struct inode *parent)
{
	size_t end;
	const char *name = name_at(r, 16, &end);
	struct stat st;
	char pp[32];

	if (r->arglen < 16 || !name)
		return reply(r, EINVAL);
	uint32_t flags = k_le32(r->arg), mode = k_le32(r->arg + 4);
	int of = (int)(flags & (O_ACCMODE | O_APPEND | O_TRUNC | O_EXCL | O_SYNC | O_DSYNC));
	int fd = openat(parent->fd, name, of | O_CREAT | O_NOFOLLOW | O_CLOEXEC, (mode_t)(mode & 07777));
	if (fd < 0)
		return reply(r, errno);
	int pfd = openat(r->s->proc, procpath(pp, fd), O_PATH | O_CLOEXEC);
	if (pfd < 0 || fstat(pfd, &st) < 0) {
		int e = errno;
		if (pfd >= 0)
			close(pfd);
		close(fd);
		return reply(r, e);
	}
	struct inode *n = remember(r->s, pfd, &st);
	if (!n) {
		close(fd);
		return reply(r, ENFILE);
	}
	uint8_t *p = room(r, ENTRY_OUT + 16);
	if (!p) {
		close(fd);
		return reply(r, EINVAL);
	}
	put_entry(r->s, p, n, &st);
	uint64_t fh = add_handle(r->s, fd, 0);
	if (fh == NO_HANDLE)
		return reply(r, EMFILE);        /* the file stays made, as open(2) may leave it */
	k_put_le64(p + ENTRY_OUT, fh);
	k_put_le32(p + ENTRY_OUT + 8, r->s->keep_cache ? FOPEN_KEEP_CACHE : 0);
	return reply(r, 0);
}

/* One directory entry of a READDIR (PLUS: READDIRPLUS, the entry looked
 * up too) at P, zeroed, of its record's size. */
static void put_dirent(struct req *r, uint8_t *p, int plus, int dirfd, uint64_t ino, uint64_t next,
		       const char *nm, size_t nl, unsigned type)
{
	if (plus) {
		/* The entry's lookup, counted as one of the guest's; "."
		 * and ".." (the kernel would not count them) and a name
		 * gone meanwhile get node id 0: no attributes given. */
		struct stat st;
		int e;
		struct inode *n = !strcmp(nm, ".") || !strcmp(nm, "..") ? NULL
				  : lookup(r->s, dirfd, nm, &st, &e);
		if (n)
			put_entry(r->s, p, n, &st);
		p += ENTRY_OUT;
	}
	k_put_le64(p, ino);
	k_put_le64(p + 8, next);
	k_put_le32(p + 16, (uint32_t)nl);
	k_put_le32(p + 20, type);
	memcpy(p + 24, nm, nl);
}

/* READDIR, or READDIRPLUS when PLUS: as many entries from the offset
 * asked as fit in the size asked. */
static size_t op_readdir(struct req *r, int plus)
{
	if (r->arglen < 24)
		return reply(r, EINVAL);
	uint64_t fh = k_le64(r->arg), off = k_le64(r->arg + 8);
	uint32_t size = k_le32(r->arg + 16);
	int fd = get_handle(r->s, fh, 1);
	if (fd < 0)
		return reply(r, EBADF);
	if (size > r->cap - FUSE_HDR_OUT)
		size = (uint32_t)(r->cap - FUSE_HDR_OUT);
	struct handle *h;
	pthread_mutex_lock(&r->s->lock);
	h = r->s->h[fh];
	pthread_mutex_unlock(&r->s->lock);
	pthread_mutex_lock(&h->lock);
	int err = 0;
	if (lseek(fd, (off_t)off, SEEK_SET) < 0) {
		err = errno;
	} else {
		uint8_t buf[8192];
		size_t used = 0;
		for (;;) {
			long n = syscall(SYS_getdents64, fd, buf, sizeof(buf));
			if (n < 0) {
				err = errno;
				break;
			}
			if (n == 0)
				break;
			int full = 0;
			for (long i = 0; i + 19 < n;) {
				uint16_t reclen;
				memcpy(&reclen, buf + i + 16, 2);
				if (reclen < 20 || i + reclen > n)
					break;
				uint64_t ino, next;
				memcpy(&ino, buf + i, 8);
				memcpy(&next, buf + i + 8, 8);
				const char *nm = (const char *)buf + i + 19;
				size_t nl = strnlen(nm, (size_t)reclen - 19);
				size_t rec = ((plus ? ENTRY_OUT : 0) + 24 + nl + 7) & ~(size_t)7;
				/* (Checked before the lookup: an entry left out
				 * is not one the guest holds.) */
				if (used + rec > size) {
					full = 1;       /* the guest asks again from the last "next" */
					break;
				}
				put_dirent(r, room(r, rec), plus, fd, ino, next, nm, nl, buf[i + 18]);
				used += rec;
				i += reclen;
			}
			if (full)
				break;
		}
	}
	pthread_mutex_unlock(&h->lock);
	put_handle(r->s, fh);
	if (err && r->len == FUSE_HDR_OUT)
		return reply(r, err);
	return reply(r, 0);
}

static size_t op_rw(struct req *r, int write)
{
	if (r->arglen < (write ? 40u : 40u))
		return reply(r, EINVAL);
	uint64_t fh = k_le64(r->arg), off = k_le64(r->arg + 8);
	uint32_t size = k_le32(r->arg + 16);
	if (off > (uint64_t)INT64_MAX)
		return reply(r, EINVAL);
	int fd = get_handle(r->s, fh, 0);
	if (fd < 0)
		return reply(r, EBADF);
	size_t res;
	if (write) {
		if (size > (r->data ? r->datalen : r->arglen - 40) || size > FUSE_MAX_WRITE) {
			put_handle(r->s, fh);
			return reply(r, EINVAL);
		}
		ssize_t n = r->data ? pwritev(fd, r->data, (int)r->ndata, (off_t)off)
				    : pwrite(fd, r->arg + 40, size, (off_t)off);
		if (n > (ssize_t)size)
			n = size;
		int e = errno;
		put_handle(r->s, fh);
		if (n < 0)
			return reply(r, e);
		uint8_t *p = room(r, 8);
		k_put_le32(p, (uint32_t)n);
		res = reply(r, 0);
	} else if (r->data) {
		/* Straight into the guest's buffers. */
		if (size > r->datalen)
			size = (uint32_t)r->datalen;
		ssize_t n = preadv(fd, r->data, (int)r->ndata, (off_t)off);
		int e = errno;
		put_handle(r->s, fh);
		if (n < 0)
			return reply(r, e);
		r->extra = (size_t)n < size ? (size_t)n : size;
		res = reply(r, 0);
	} else {
		if (size > r->cap - FUSE_HDR_OUT)
			size = (uint32_t)(r->cap - FUSE_HDR_OUT);
		ssize_t n = full_pread(fd, r->out + FUSE_HDR_OUT, size, off);
		int e = errno;
		put_handle(r->s, fh);
		if (n < 0)
			return reply(r, e);
		r->len += (size_t)n;
		res = reply(r, 0);
	}
	return res;
}

static size_t op_forget(struct req *r)
{
	if (r->op == OP_FORGET) {
		if (r->arglen < 8)
			return 0;
		struct inode *n = get(r->s, r->nodeid);
		pthread_mutex_lock(&r->s->lock);
		put_locked(r->s, n, k_le64(r->arg));
		pthread_mutex_unlock(&r->s->lock);
		return 0;
	}
	if (r->arglen < 8)
		return 0;
	uint32_t count = k_le32(r->arg);
	for (uint32_t i = 0; i < count && 8 + 16 * (size_t)i + 16 <= r->arglen; i++) {
		const uint8_t *e = r->arg + 8 + 16 * (size_t)i;
		struct inode *n = get(r->s, k_le64(e));
		pthread_mutex_lock(&r->s->lock);
		put_locked(r->s, n, k_le64(e + 8));
		pthread_mutex_unlock(&r->s->lock);
	}
	return 0;
}

/* Operations on an inode (the request's node). */
static size_t on_node(struct req *r, struct inode *n)
{
	struct stat st;
	size_t end, end2;
	const char *name, *name2;
	char pp[32];
	int e;

	switch (r->op) {
	case OP_LOOKUP:
		if (!(name = name_at(r, 0, NULL)))
			return reply(r, r->arglen >= 3 && !memcmp(r->arg, "..", 3) ? EACCES : ENOENT);
		return entry_of(r, n, name);
	case OP_GETATTR:
		if ((e = stat_fd(n->fd, &st)))
			return reply(r, e);
		return reply_attr(r, n->id, &st);
	case OP_SETATTR:
		return op_setattr(r, n);
	case OP_READLINK: {
		char buf[PATH_MAX];
		ssize_t k = readlinkat(n->fd, "", buf, sizeof(buf));
		if (k < 0)
			return reply(r, errno);
		uint8_t *p = room(r, (size_t)k);
		if (!p)
			return reply(r, ERANGE);
		memcpy(p, buf, (size_t)k);
		return reply(r, 0);
	}
	case OP_SYMLINK:
		/* The name, then the link's text: any text (the guest's
		 * kernel follows it in the guest; the host never does). */
		if (!(name = name_at(r, 0, &end)) || end >= r->arglen ||
		    !memchr(r->arg + end, 0, r->arglen - end))
			return reply(r, EINVAL);
		return made(r, n, name, symlinkat((const char *)r->arg + end, n->fd, name));
	case OP_MKNOD: {
		if (r->arglen < 16 || !(name = name_at(r, 16, NULL)))
			return reply(r, EINVAL);
		uint32_t mode = k_le32(r->arg);
		if (!S_ISREG(mode) && !S_ISFIFO(mode) && !S_ISSOCK(mode))
			return reply(r, EPERM);         /* no devices on the host */
		return made(r, n, name, mknodat(n->fd, name, (mode_t)mode, 0));
	}
	case OP_MKDIR:
		if (r->arglen < 8 || !(name = name_at(r, 8, NULL)))
			return reply(r, EINVAL);
		return made(r, n, name, mkdirat(n->fd, name, (mode_t)(k_le32(r->arg) & 07777)));
	case OP_UNLINK:
	case OP_RMDIR:
		if (!(name = name_at(r, 0, NULL)))
			return reply(r, EINVAL);
		return reply(r, unlinkat(n->fd, name, r->op == OP_RMDIR ? AT_REMOVEDIR : 0) < 0 ? errno : 0);
	case OP_RENAME:
	case OP_RENAME2: {
		size_t at = r->op == OP_RENAME ? 8 : 16;
		if (r->arglen < at || !(name = name_at(r, at, &end)) || !(name2 = name_at(r, end, &end2)))
			return reply(r, EINVAL);
		uint32_t flags = r->op == OP_RENAME2 ? k_le32(r->arg + 8) : 0;
		struct inode *to = get(r->s, k_le64(r->arg));
		if (!to)
			return reply(r, ENOENT);
		e = syscall(SYS_renameat2, n->fd, name, to->fd, name2, flags) < 0 ? errno : 0;
		put(r->s, to);
		return reply(r, e);
	}
	case OP_LINK: {
		if (r->arglen < 8 || !(name = name_at(r, 8, NULL)))
			return reply(r, EINVAL);
		struct inode *from = get(r->s, k_le64(r->arg));
		if (!from)
			return reply(r, ENOENT);
		e = linkat(r->s->proc, procpath(pp, from->fd), n->fd, name, AT_SYMLINK_FOLLOW);
		put(r->s, from);
		return made(r, n, name, e);
	}
	case OP_OPEN:
		return op_open(r, n, 0);
	case OP_OPENDIR:
		return op_open(r, n, 1);
	case OP_CREATE:
		return op_create(r, n);
	case OP_STATFS: {
		struct statfs sf;
		if (fstatfs(n->fd, &sf) < 0)
			return reply(r, errno);
		uint8_t *p = room(r, 80);
		if (!p)
			return reply(r, EINVAL);
		k_put_le64(p, sf.f_blocks);
		k_put_le64(p + 8, sf.f_bfree);
		k_put_le64(p + 16, sf.f_bavail);
		k_put_le64(p + 24, sf.f_files);
		k_put_le64(p + 32, sf.f_ffree);
		k_put_le32(p + 40, (uint32_t)sf.f_bsize);
		k_put_le32(p + 44, (uint32_t)sf.f_namelen);
		k_put_le32(p + 48, (uint32_t)sf.f_frsize);
		return reply(r, 0);
	}
	}
	return reply(r, ENOSYS);
}

size_t fshare_request(struct fshare *s, const uint8_t *in, size_t inlen, uint8_t *out, size_t outcap)
{
	return fshare_request_data(s, in, inlen, NULL, 0, 0, out, outcap);
}

size_t fshare_request_data(struct fshare *s, const uint8_t *in, size_t inlen, const struct iovec *data,
			   unsigned ndata, size_t datalen, uint8_t *out, size_t outcap)
{
	struct req r = { .s = s, .out = out, .cap = outcap, .len = FUSE_HDR_OUT,
			 .data = data, .ndata = ndata, .datalen = datalen };

	if (inlen < FUSE_HDR_IN || outcap < FUSE_HDR_OUT)
		return 0;                       /* not even a header to answer to */
	r.op = k_le32(in + 4);
	r.unique = k_le64(in + 8);
	r.nodeid = k_le64(in + 16);
	uint32_t len = k_le32(in);
	if (len < FUSE_HDR_IN)
		return reply(&r, EINVAL);
	r.arg = in + FUSE_HDR_IN;
	r.arglen = (len < inlen ? len : inlen) - FUSE_HDR_IN;

	switch (r.op) {
	case OP_INIT:
		return op_init(&r);
	case OP_DESTROY:
		return reply(&r, 0);
	case OP_FORGET:
	case OP_BATCH_FORGET:
		return op_forget(&r);
	case OP_INTERRUPT:
		return 0;
	case OP_READ:
		return op_rw(&r, 0);
	case OP_WRITE:
		return op_rw(&r, 1);
	case OP_READDIR:
	case OP_READDIRPLUS:
		return op_readdir(&r, r.op == OP_READDIRPLUS);
	case OP_RELEASE:
	case OP_RELEASEDIR:
		if (r.arglen < 8)
			return reply(&r, EINVAL);
		return reply(&r, release_handle(s, k_le64(r.arg), r.op == OP_RELEASEDIR));
	case OP_FLUSH:
		/* Nothing to do at close: every write is made at once, and
		 * there are no locks.  ENOSYS tells the guest's kernel so, and
		 * it sends no more: one round trip fewer per close. */
		return reply(&r, ENOSYS);
	case OP_FSYNC:
	case OP_FSYNCDIR: {
		if (r.arglen < 16)
			return reply(&r, EINVAL);
		uint64_t fh = k_le64(r.arg);
		int fd = get_handle(s, fh, r.op == OP_FSYNCDIR);
		if (fd < 0)
			return reply(&r, EBADF);
		int e = ((k_le32(r.arg + 8) & 1) ? fdatasync(fd) : fsync(fd)) < 0 ? errno : 0;
		put_handle(s, fh);
		return reply(&r, e);
	}
	case OP_FALLOCATE:
	case OP_LSEEK: {
		if (r.arglen < 24)
			return reply(&r, EINVAL);
		uint64_t fh = k_le64(r.arg), off = k_le64(r.arg + 8);
		int fd = get_handle(s, fh, 0);
		if (fd < 0)
			return reply(&r, EBADF);
		int e = 0;
		if (r.op == OP_FALLOCATE) {
			uint64_t l = k_le64(r.arg + 16);
			if (r.arglen < 32 || off > (uint64_t)INT64_MAX || l > (uint64_t)INT64_MAX)
				e = EINVAL;
			else if (fallocate(fd, (int)k_le32(r.arg + 24), (off_t)off, (off_t)l) < 0)
				e = errno;
		} else {
			off_t at = lseek(fd, (off_t)off, (int)k_le32(r.arg + 16));
			uint8_t *p;
			if (at < 0)
				e = errno;
			else if ((p = room(&r, 8)))
				k_put_le64(p, (uint64_t)at);
		}
		put_handle(s, fh);
		return reply(&r, e);
	}
	case OP_ACCESS:
		return reply(&r, ENOSYS);       /* the guest checks permissions itself */
	}
	struct inode *n = get(s, r.nodeid);
	if (!n)
		return reply(&r, ESTALE);
	size_t res = on_node(&r, n);
	put(s, n);
	return res;
}
