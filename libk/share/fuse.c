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

#define S(r) ((struct fshare *)(r)->ctx)

static int stat_fd(int fd, struct stat *st)
{
	return fstatat(fd, "", st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0 ? -errno : 0;
}

/* ---- arguments */

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

/* The guest's kernel leaves it to the server (HANDLE_KILLPRIV_V2) to
 * clear the set-user-ID and set-group-ID bits when a file is written,
 * truncated or given away, and says when (a writer without CAP_FSETID,
 * any chown): the host's kernel would do it only for an unprivileged
 * umlk.  As Linux does: set-group-ID only with group execute; files only.
 * FD is any descriptor of the file, O_PATH included.  0 or an errno. */
static int kill_suidgid(struct fshare *s, int fd)
{
	struct stat st;
	char pp[32];

	if (fstat(fd, &st) < 0)
		return errno;
	mode_t k = fw_suidgid_bits(st.st_mode);
	if (!k)
		return 0;
	return fchmodat(s->proc, procpath(pp, fd), st.st_mode & 07777 & ~k, 0) < 0 ? errno : 0;
}

/* Look NAME up in PARENT and answer with its entry. */
static size_t entry_of(struct fuse_req *r, struct inode *parent, const char *name)
{
	struct stat st;
	int e;
	struct inode *n = lookup(S(r), parent->fd, name, &st, &e);

	return n ? fw_reply_entry(r, n->id, &st) : r->op == OP_LOOKUP ? fw_reply_missing(r, e) : fw_reply(r, e);
}

/* ---- operations */

static size_t op_init(struct fuse_req *r)
{
	/* Data kept from one open to the next is dropped when a file's
	 * time or size is seen to change (AUTO_INVAL_DATA).  Set-user-ID
	 * bits are ours to clear (HANDLE_KILLPRIV_V2, kill_suidgid()):
	 * without it the guest's kernel asks for a file's attributes before
	 * every chown. */
	uint32_t want = F_ASYNC_READ | F_ATOMIC_O_TRUNC | F_BIG_WRITES | F_PARALLEL_DIROPS | F_MAX_PAGES |
			F_DO_READDIRPLUS | F_READDIRPLUS_AUTO | F_HANDLE_KILLPRIV_V2 |
			(S(r)->keep_cache ? F_AUTO_INVAL_DATA : 0);
	return fw_init(r, want, FUSE_MAX_WRITE);
}

static size_t op_setattr(struct fuse_req *r, struct inode *n)
{
	if (r->arglen < 88)
		return fw_reply(r, EINVAL);
	const uint8_t *a = r->arg;
	uint32_t valid = k_le32(a), mode = k_le32(a + 68), uid = k_le32(a + 76), gid = k_le32(a + 80);
	uint64_t fh = k_le64(a + 8), size = k_le64(a + 16);
	struct stat st;
	char pp[32];
	int e = stat_fd(n->fd, &st);

	if (e)
		return fw_reply(r, e);
	int reg = S_ISREG(st.st_mode), lnk = S_ISLNK(st.st_mode);
	if ((valid & FA_MODE) && !lnk && fchmodat(S(r)->proc, procpath(pp, n->fd), mode & 07777, 0) < 0)
		return fw_reply(r, errno);
	if ((valid & (FA_UID | FA_GID)) &&
	    fchownat(n->fd, "", valid & FA_UID ? uid : (uid_t)-1, valid & FA_GID ? gid : (gid_t)-1,
		     AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0)
		return fw_reply(r, errno);
	if (valid & FA_SIZE) {
		if (!reg)
			return fw_reply(r, S_ISDIR(st.st_mode) ? EISDIR : EINVAL);
		if (size > (uint64_t)INT64_MAX)
			return fw_reply(r, EFBIG);
		int fd = (valid & FA_FH) ? get_handle(S(r), fh, 0) : -1, mine = 0;
		if (fd < 0) {
			fd = openat(S(r)->proc, procpath(pp, n->fd), O_WRONLY | O_CLOEXEC);
			mine = 1;
		}
		int rc = fd < 0 || ftruncate(fd, (off_t)size) < 0 ? errno : 0;
		if (mine && fd >= 0)
			close(fd);
		else if (!mine)
			put_handle(S(r), fh);
		if (rc)
			return fw_reply(r, rc);
	}
	if ((valid & FA_KILL_SUIDGID) && !(valid & FA_MODE) && reg && (e = kill_suidgid(S(r), n->fd)))
		return fw_reply(r, e);
	if (valid & (FA_ATIME | FA_MTIME)) {
		struct timespec ts[2] = { { 0, UTIME_OMIT }, { 0, UTIME_OMIT } };
		if (valid & FA_ATIME)
			ts[0] = (valid & FA_ATIME_NOW) ? (struct timespec){ 0, UTIME_NOW }
						       : (struct timespec){ (time_t)k_le64(a + 32), (long)(k_le32(a + 56) % 1000000000u) };
		if (valid & FA_MTIME)
			ts[1] = (valid & FA_MTIME_NOW) ? (struct timespec){ 0, UTIME_NOW }
						       : (struct timespec){ (time_t)k_le64(a + 40), (long)(k_le32(a + 60) % 1000000000u) };
		if (!lnk && utimensat(S(r)->proc, procpath(pp, n->fd), ts, 0) < 0)
			return fw_reply(r, errno);
	}
	if ((e = stat_fd(n->fd, &st)))
		return fw_reply(r, e);
	return fw_reply_attr(r, n->id, &st);
}

/* NAME was just made in PARENT (RC from the call that made it): answer
 * with its entry, or the call's error. */
static size_t made(struct fuse_req *r, struct inode *parent, const char *name, int rc)
{
	if (rc < 0)
		return fw_reply(r, errno);
	return entry_of(r, parent, name);
}

static size_t op_open(struct fuse_req *r, struct inode *n, int dir)
{
	struct stat st;
	char pp[32];

	if (r->arglen < 8)
		return fw_reply(r, EINVAL);
	int e = stat_fd(n->fd, &st);
	if (e)
		return fw_reply(r, e);
	if (dir && !S_ISDIR(st.st_mode))
		return fw_reply(r, ENOTDIR);
	if (!dir && !S_ISREG(st.st_mode))
		return fw_reply(r, S_ISDIR(st.st_mode) ? EISDIR : ENXIO);  /* no FIFO, no device */
	uint32_t flags = k_le32(r->arg);
	int of = dir ? O_RDONLY | O_DIRECTORY
		     : (int)(flags & (O_ACCMODE | O_APPEND | O_TRUNC | O_SYNC | O_DSYNC));
	int fd = openat(S(r)->proc, procpath(pp, n->fd), of | O_CLOEXEC);
	if (fd < 0)
		return fw_reply(r, errno);
	if (!dir && (of & O_TRUNC) && (k_le32(r->arg + 4) & FOPEN_IN_KILL_SUIDGID) && (e = kill_suidgid(S(r), fd))) {
		close(fd);
		return fw_reply(r, e);
	}
	uint8_t *p = fw_room(r, 16);
	if (!p) {
		close(fd);
		return fw_reply(r, EINVAL);
	}
	uint64_t fh = add_handle(S(r), fd, dir);
	if (fh == NO_HANDLE)
		return fw_reply(r, EMFILE);
	k_put_le64(p, fh);
	k_put_le32(p + 8, !dir && S(r)->keep_cache ? FOPEN_KEEP_CACHE : 0);
	return fw_reply(r, 0);
}

static size_t op_create(struct fuse_req *r, struct inode *parent)
{
	size_t end;
	const char *name = fw_name_at(r, 16, &end);
	struct stat st;
	char pp[32];

	if (r->arglen < 16 || !name)
		return fw_reply(r, EINVAL);
	uint32_t flags = k_le32(r->arg), mode = k_le32(r->arg + 4);
	int of = (int)(flags & (O_ACCMODE | O_APPEND | O_TRUNC | O_EXCL | O_SYNC | O_DSYNC));
	int fd = openat(parent->fd, name, of | O_CREAT | O_NOFOLLOW | O_CLOEXEC, (mode_t)(mode & 07777));
	if (fd < 0)
		return fw_reply(r, errno);
	int e = (of & O_TRUNC) && (k_le32(r->arg + 12) & FOPEN_IN_KILL_SUIDGID) ? kill_suidgid(S(r), fd) : 0;
	if (e) {
		close(fd);
		return fw_reply(r, e);
	}
	int pfd = openat(S(r)->proc, procpath(pp, fd), O_PATH | O_CLOEXEC);
	if (pfd < 0 || fstat(pfd, &st) < 0) {
		int e = errno;
		if (pfd >= 0)
			close(pfd);
		close(fd);
		return fw_reply(r, e);
	}
	struct inode *n = remember(S(r), pfd, &st);
	if (!n) {
		close(fd);
		return fw_reply(r, ENFILE);
	}
	uint8_t *p = fw_room(r, ENTRY_OUT + 16);
	if (!p) {
		close(fd);
		return fw_reply(r, EINVAL);
	}
	fw_put_entry(r, p, n->id, &st);
	uint64_t fh = add_handle(S(r), fd, 0);
	if (fh == NO_HANDLE)
		return fw_reply(r, EMFILE);        /* the file stays made, as open(2) may leave it */
	k_put_le64(p + ENTRY_OUT, fh);
	k_put_le32(p + ENTRY_OUT + 8, S(r)->keep_cache ? FOPEN_KEEP_CACHE : 0);
	return fw_reply(r, 0);
}

/* One directory entry of a READDIR (PLUS: READDIRPLUS, the entry looked
 * up too) at P, zeroed, of its record's size. */
static void put_dirent(struct fuse_req *r, uint8_t *p, int plus, int dirfd, uint64_t ino, uint64_t next,
		       const char *nm, size_t nl, unsigned type)
{
	if (plus) {
		/* The entry's lookup, counted as one of the guest's; "."
		 * and ".." (the kernel would not count them) and a name
		 * gone meanwhile get node id 0: no attributes given. */
		struct stat st;
		int e;
		struct inode *n = !strcmp(nm, ".") || !strcmp(nm, "..") ? NULL
				  : lookup(S(r), dirfd, nm, &st, &e);
		if (n)
			fw_put_entry(r, p, n->id, &st);
		p += ENTRY_OUT;
	}
	fw_put_dirent(p, ino, next, nm, nl, type);
}

/* READDIR, or READDIRPLUS when PLUS: as many entries from the offset
 * asked as fit in the size asked. */
static size_t op_readdir(struct fuse_req *r, int plus)
{
	if (r->arglen < 24)
		return fw_reply(r, EINVAL);
	uint64_t fh = k_le64(r->arg), off = k_le64(r->arg + 8);
	uint32_t size = k_le32(r->arg + 16);
	int fd = get_handle(S(r), fh, 1);
	if (fd < 0)
		return fw_reply(r, EBADF);
	if (size > r->cap - FUSE_HDR_OUT)
		size = (uint32_t)(r->cap - FUSE_HDR_OUT);
	struct handle *h;
	pthread_mutex_lock(&S(r)->lock);
	h = S(r)->h[fh];
	pthread_mutex_unlock(&S(r)->lock);
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
				size_t rec = fw_dirent_size(plus, nl);
				/* (Checked before the lookup: an entry left out
				 * is not one the guest holds.) */
				if (used + rec > size) {
					full = 1;       /* the guest asks again from the last "next" */
					break;
				}
				put_dirent(r, fw_room(r, rec), plus, fd, ino, next, nm, nl, buf[i + 18]);
				used += rec;
				i += reclen;
			}
			if (full)
				break;
		}
	}
	pthread_mutex_unlock(&h->lock);
	put_handle(S(r), fh);
	if (err && r->len == FUSE_HDR_OUT)
		return fw_reply(r, err);
	return fw_reply(r, 0);
}

static size_t op_rw(struct fuse_req *r, int write)
{
	if (r->arglen < (write ? 40u : 40u))
		return fw_reply(r, EINVAL);
	uint64_t fh = k_le64(r->arg), off = k_le64(r->arg + 8);
	uint32_t size = k_le32(r->arg + 16);
	if (off > (uint64_t)INT64_MAX)
		return fw_reply(r, EINVAL);
	int fd = get_handle(S(r), fh, 0);
	if (fd < 0)
		return fw_reply(r, EBADF);
	size_t res;
	if (write) {
		if (size > (r->data ? r->datalen : r->arglen - 40) || size > FUSE_MAX_WRITE) {
			put_handle(S(r), fh);
			return fw_reply(r, EINVAL);
		}
		int ke = (k_le32(r->arg + 20) & FWRITE_KILL_SUIDGID) ? kill_suidgid(S(r), fd) : 0;
		if (ke) {
			put_handle(S(r), fh);
			return fw_reply(r, ke);
		}
		ssize_t n = r->data ? pwritev(fd, r->data, (int)r->ndata, (off_t)off)
				    : pwrite(fd, r->arg + 40, size, (off_t)off);
		if (n > (ssize_t)size)
			n = size;
		int e = errno;
		put_handle(S(r), fh);
		if (n < 0)
			return fw_reply(r, e);
		uint8_t *p = fw_room(r, 8);
		k_put_le32(p, (uint32_t)n);
		res = fw_reply(r, 0);
	} else if (r->data) {
		/* Straight into the guest's buffers. */
		if (size > r->datalen)
			size = (uint32_t)r->datalen;
		ssize_t n = preadv(fd, r->data, (int)r->ndata, (off_t)off);
		int e = errno;
		put_handle(S(r), fh);
		if (n < 0)
			return fw_reply(r, e);
		r->extra = (size_t)n < size ? (size_t)n : size;
		res = fw_reply(r, 0);
	} else {
		if (size > r->cap - FUSE_HDR_OUT)
			size = (uint32_t)(r->cap - FUSE_HDR_OUT);
		ssize_t n = full_pread(fd, r->out + FUSE_HDR_OUT, size, off);
		int e = errno;
		put_handle(S(r), fh);
		if (n < 0)
			return fw_reply(r, e);
		r->len += (size_t)n;
		res = fw_reply(r, 0);
	}
	return res;
}

static void forget_one(void *ctx, uint64_t node, uint64_t count)
{
	struct fshare *s = ctx;
	struct inode *n = get(s, node);
	pthread_mutex_lock(&s->lock);
	put_locked(s, n, count);
	pthread_mutex_unlock(&s->lock);
}

/* Operations on an inode (the request's node). */
static size_t on_node(struct fuse_req *r, struct inode *n)
{
	struct stat st;
	size_t end, end2;
	const char *name, *name2;
	char pp[32];
	int e;

	switch (r->op) {
	case OP_LOOKUP:
		if (!(name = fw_name_at(r, 0, NULL)))
			return fw_reply(r, r->arglen >= 3 && !memcmp(r->arg, "..", 3) ? EACCES : ENOENT);
		return entry_of(r, n, name);
	case OP_GETATTR:
		if ((e = stat_fd(n->fd, &st)))
			return fw_reply(r, e);
		return fw_reply_attr(r, n->id, &st);
	case OP_SETATTR:
		return op_setattr(r, n);
	case OP_READLINK: {
		char buf[PATH_MAX];
		ssize_t k = readlinkat(n->fd, "", buf, sizeof(buf));
		if (k < 0)
			return fw_reply(r, errno);
		uint8_t *p = fw_room(r, (size_t)k);
		if (!p)
			return fw_reply(r, ERANGE);
		memcpy(p, buf, (size_t)k);
		return fw_reply(r, 0);
	}
	case OP_SYMLINK:
		/* The name, then the link's text: any text (the guest's
		 * kernel follows it in the guest; the host never does). */
		if (!(name = fw_name_at(r, 0, &end)) || end >= r->arglen ||
		    !memchr(r->arg + end, 0, r->arglen - end))
			return fw_reply(r, EINVAL);
		return made(r, n, name, symlinkat((const char *)r->arg + end, n->fd, name));
	case OP_MKNOD: {
		if (r->arglen < 16 || !(name = fw_name_at(r, 16, NULL)))
			return fw_reply(r, EINVAL);
		uint32_t mode = k_le32(r->arg);
		if (!S_ISREG(mode) && !S_ISFIFO(mode) && !S_ISSOCK(mode))
			return fw_reply(r, EPERM);         /* no devices on the host */
		return made(r, n, name, mknodat(n->fd, name, (mode_t)mode, 0));
	}
	case OP_MKDIR:
		if (r->arglen < 8 || !(name = fw_name_at(r, 8, NULL)))
			return fw_reply(r, EINVAL);
		return made(r, n, name, mkdirat(n->fd, name, (mode_t)(k_le32(r->arg) & 07777)));
	case OP_UNLINK:
	case OP_RMDIR:
		if (!(name = fw_name_at(r, 0, NULL)))
			return fw_reply(r, EINVAL);
		return fw_reply(r, unlinkat(n->fd, name, r->op == OP_RMDIR ? AT_REMOVEDIR : 0) < 0 ? errno : 0);
	case OP_RENAME:
	case OP_RENAME2: {
		size_t at = r->op == OP_RENAME ? 8 : 16;
		if (r->arglen < at || !(name = fw_name_at(r, at, &end)) || !(name2 = fw_name_at(r, end, &end2)))
			return fw_reply(r, EINVAL);
		uint32_t flags = r->op == OP_RENAME2 ? k_le32(r->arg + 8) : 0;
		struct inode *to = get(S(r), k_le64(r->arg));
		if (!to)
			return fw_reply(r, ENOENT);
		e = syscall(SYS_renameat2, n->fd, name, to->fd, name2, flags) < 0 ? errno : 0;
		put(S(r), to);
		return fw_reply(r, e);
	}
	case OP_LINK: {
		if (r->arglen < 8 || !(name = fw_name_at(r, 8, NULL)))
			return fw_reply(r, EINVAL);
		struct inode *from = get(S(r), k_le64(r->arg));
		if (!from)
			return fw_reply(r, ENOENT);
		e = linkat(S(r)->proc, procpath(pp, from->fd), n->fd, name, AT_SYMLINK_FOLLOW);
		put(S(r), from);
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
			return fw_reply(r, errno);
		return fw_reply_statfs(r, sf.f_blocks, sf.f_bfree, sf.f_bavail, sf.f_files, sf.f_ffree,
				       (uint32_t)sf.f_bsize, (uint32_t)sf.f_namelen, (uint32_t)sf.f_frsize);
	}
	}
	return fw_reply(r, ENOSYS);
}

size_t fshare_request(struct fshare *s, const uint8_t *in, size_t inlen, uint8_t *out, size_t outcap)
{
	return fshare_request_data(s, in, inlen, NULL, 0, 0, out, outcap);
}

size_t fshare_request_data(struct fshare *s, const uint8_t *in, size_t inlen, const struct iovec *data,
			   unsigned ndata, size_t datalen, uint8_t *out, size_t outcap)
{
	struct fuse_req r;
	int p = fw_parse(&r, s, in, inlen, data, ndata, datalen, out, outcap);

	if (p < 0)
		return 0;                       /* not even a header to answer to */
	if (p > 0)
		return fw_reply(&r, EINVAL);
	r.valid_secs = s->valid_secs;
	switch (r.op) {
	case OP_INIT:
		return op_init(&r);
	case OP_DESTROY:
		return fw_reply(&r, 0);
	case OP_FORGET:
	case OP_BATCH_FORGET:
		fw_forget(&r, forget_one);
		return 0;
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
			return fw_reply(&r, EINVAL);
		return fw_reply(&r, release_handle(s, k_le64(r.arg), r.op == OP_RELEASEDIR));
	case OP_FLUSH:
		/* Nothing to do at close: every write is made at once, and
		 * there are no locks.  ENOSYS tells the guest's kernel so, and
		 * it sends no more: one round trip fewer per close. */
		return fw_reply(&r, ENOSYS);
	case OP_FSYNC:
	case OP_FSYNCDIR: {
		if (r.arglen < 16)
			return fw_reply(&r, EINVAL);
		uint64_t fh = k_le64(r.arg);
		int fd = get_handle(s, fh, r.op == OP_FSYNCDIR);
		if (fd < 0)
			return fw_reply(&r, EBADF);
		int e = ((k_le32(r.arg + 8) & 1) ? fdatasync(fd) : fsync(fd)) < 0 ? errno : 0;
		put_handle(s, fh);
		return fw_reply(&r, e);
	}
	case OP_FALLOCATE:
	case OP_LSEEK: {
		if (r.arglen < 24)
			return fw_reply(&r, EINVAL);
		uint64_t fh = k_le64(r.arg), off = k_le64(r.arg + 8);
		int fd = get_handle(s, fh, 0);
		if (fd < 0)
			return fw_reply(&r, EBADF);
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
			else if ((p = fw_room(&r, 8)))
				k_put_le64(p, (uint64_t)at);
		}
		put_handle(s, fh);
		return fw_reply(&r, e);
	}
	case OP_ACCESS:
		return fw_reply(&r, ENOSYS);       /* the guest checks permissions itself */
	}
	struct inode *n = get(s, r.nodeid);
	if (!n)
		return fw_reply(&r, ESTALE);
	size_t res = on_node(&r, n);
	put(s, n);
	return res;
}

size_t fshare_serve(void *s, const uint8_t *in, size_t inlen, const struct iovec *data, unsigned ndata,
		    size_t datalen, uint8_t *out, size_t outcap)
{
	return fshare_request_data(s, in, inlen, data, ndata, datalen, out, outcap);
}
