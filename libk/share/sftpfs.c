#include "share/sftpfs.h"
#include "core/bytes.h"
#include "core/err.h"
#include "core/sys.h"
#include "core/xio.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>

#define HASH 4096
#define PATH_CAP 4096                   /* a path sent to the server, the root included */
#define DIR_MAX_ENTRIES (1u << 20)      /* a directory listing kept for the guest */
#define NO_HANDLE UINT64_MAX
#define GETATTR_FH 1u                   /* fuse_getattr_in's flag: fh is given */

struct snode {
	uint64_t id;
	char *path;                     /* below the root: "" is the root, "a/b" */
	uint32_t type;                  /* S_IFMT bits, as last seen */
	uint64_t nlookup;               /* the guest's references */
	unsigned refs;                  /* requests using it now */
	int stale;                      /* its name went away: ESTALE */
	uint64_t wgen;                  /* counts writes to it through umlk (read-ahead drops what it has) */
	uint64_t known_until;           /* a directory: until then (k_now_ns()) every name in it is a node here */
	struct sftp_attr dattr;         /* a directory: its attributes after the guest's last change in it, */
	uint64_t dattr_until;           /*   kept until then (0: not kept) */
	uint64_t dgen;                  /*   the changes in it begun */
	unsigned dbusy;                 /*   and under way */
	int parked;                     /* forgotten by the guest, kept for what is known of it (park()) */
	uint64_t parked_at;
	struct snode *park_next;
	struct snode *by_id, *by_path;
};

struct dent {
	char *name;
	struct sftp_attr a;
};

struct shandle {
	int used;                       /* 0 free, 1 open, 2 released while in use */
	int isdir;
	unsigned refs;
	unsigned gen;                   /* the connection its handle is good on */
	uint8_t h[256];
	size_t hlen;
	uint64_t node;
	struct dent *ents;              /* a directory: its listing, taken at OPENDIR */
	size_t nents;
	struct ahead *ra;               /* a file read in order: what is read ahead of the guest */
	struct wpend *wp;               /* a file written: writes sent, their answers not yet read */
};

/* Writes are not waited for one by one: a WRITE is answered to the guest
 * once it is sent, and its answer is read later, when W_PENDING more are
 * out, at the guest's close (FLUSH), at fsync and at RELEASE.  An error
 * in one is kept and given to the guest at the first of these, or at its
 * next write (which is then not sent): as a local disk's writeback,
 * never lost silently.  The server answers in order, so every request
 * sent after a write (a read, a stat, a rename) sees it. */
/* (8 pieces of OpenSSH's 255 KiB: 2 MB, ten times what a 20 Mbit/s link
 * of 80 ms holds.  Measured on loopback, 200 MB: 8 as fast as waiting for
 * each write, 16 and 64 slower by 15% and 25%.) */
#define W_PENDING 8
struct wpend {
	pthread_mutex_t lock;
	struct sftp_call *q[W_PENDING];
	unsigned head, count;
	int err;                        /* the first error not yet given to the guest */
};

/* Read-ahead: while the guest reads a file in order, the next pieces are
 * asked for before it asks, RA_PIECES of the server's read size.  What
 * comes is kept until the guest's reads pass it; a write to the file (its
 * node's wgen) or a jump elsewhere drops it all. */
#define RA_PIECES 8
struct piece {
	uint64_t off;
	uint32_t len;
	struct sftp_call *call;         /* until its answer is in */
	struct sftp_reply rep;
	const uint8_t *data;
	size_t dlen;                    /* less than len: the file ends there */
	int err;
};
struct ahead {
	pthread_mutex_t lock;
	struct piece q[RA_PIECES];      /* in order of offset, from head */
	unsigned head, count;
	uint64_t hi;                    /* the end of the furthest read so far */
	uint64_t wgen;                  /* the node's, when these were asked */
	uint64_t end;                   /* where the file was seen to end; UINT64_MAX: not seen */
};

struct sftpfs {
	struct sftp *c;
	pthread_mutex_t lock;
	pthread_rwlock_t names;         /* read: a request using paths; write: one that may put a link
					   where a directory was */
	struct snode *ids[HASH], *paths[HASH];
	uint64_t next_id;
	struct snode *root;
	struct shandle **h;
	size_t nh, caph;
	uint64_t valid_secs;
	int keep_cache;                 /* also: read ahead */
	struct snode *park_head, *park_tail;    /* parked nodes, oldest first */
};

/* ---- nodes */

static size_t id_slot(uint64_t id) { return (size_t)(id * 0x9e3779b97f4a7c15ULL >> 52) % HASH; }

static size_t path_slot(const char *p)
{
	uint64_t h = 1469598103934665603ULL;
	for (; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ULL;
	return (size_t)(h >> 20) % HASH;
}

static void path_unhash(struct sftpfs *f, struct snode *n)
{
	struct snode **pp = &f->paths[path_slot(n->path)];
	while (*pp && *pp != n)
		pp = &(*pp)->by_path;
	if (*pp)
		*pp = n->by_path;
	n->by_path = NULL;
}

static void path_hash(struct sftpfs *f, struct snode *n)
{
	size_t i = path_slot(n->path);
	n->by_path = f->paths[i];
	f->paths[i] = n;
}

static struct snode *by_path(struct sftpfs *f, const char *path)
{
	struct snode *n = f->paths[path_slot(path)];
	while (n && strcmp(n->path, path))
		n = n->by_path;
	return n;
}

/* N's name went away (lock held): no request reaches a file by it again. */
static void make_stale(struct sftpfs *f, struct snode *n)
{
	if (!n || n->stale || n == f->root)
		return;
	path_unhash(f, n);
	n->stale = 1;
}

/* The directory holding PATH (lock held): NULL if umlk has no node for
 * it. */
static struct snode *parent_of(struct sftpfs *f, const char *path)
{
	const char *slash = strrchr(path, '/');
	if (!slash)
		return *path ? f->root : NULL;  /* (NULL when closing) */
	char dir[PATH_CAP];
	size_t l = (size_t)(slash - path);
	if (l >= sizeof(dir))
		return NULL;
	memcpy(dir, path, l);
	dir[l] = 0;
	return by_path(f, dir);
}

/* PATH's name may now be in its directory with no node here for it (the
 * node was freed, or a change's outcome on the server is not known): what
 * was known of the directory's names holds no more (lock held). */
static void unknown_name(struct sftpfs *f, const char *path)
{
	struct snode *d = parent_of(f, path);
	if (d)
		d->known_until = 0;
}

static void node_free(struct sftpfs *f, struct snode *n)
{
	struct snode **pp = &f->ids[id_slot(n->id)];
	while (*pp != n)
		pp = &(*pp)->by_id;
	*pp = n->by_id;
	if (!n->stale) {
		unknown_name(f, n->path);
		path_unhash(f, n);
	}
	free(n->path);
	free(n);
}

static struct snode *get(struct sftpfs *f, uint64_t id)
{
	pthread_mutex_lock(&f->lock);
	struct snode *n = f->ids[id_slot(id)];
	while (n && n->id != id)
		n = n->by_id;
	if (n)
		n->refs++;
	pthread_mutex_unlock(&f->lock);
	return n;
}

/* Whether what umlk knows of N, or of the directory holding it, needs N
 * kept (lock held): a directory known to be empty when made
 * (made_empty()) counts on a node for every name in it. */
static int knowing(struct sftpfs *f, const struct snode *n, uint64_t now)
{
	const struct snode *d = parent_of(f, n->path);
	return now < n->known_until || (d && now < d->known_until);
}

/* The guest's kernel forgets nodes it still has names for: a directory
 * after every chmod of it (its dentry is dropped to check access again),
 * any file its caches let go.  One that what umlk knows needs is parked
 * instead of freed, and freed once a names' lifetime (SFTPFS_AUTO_SECS)
 * has passed unless the guest took it up again (lock held). */
static void park(struct sftpfs *f, struct snode *n, uint64_t now)
{
	n->parked = 1;
	n->parked_at = now;
	n->park_next = NULL;
	if (f->park_tail)
		f->park_tail->park_next = n;
	else
		f->park_head = n;
	f->park_tail = n;
}

static void unpark_old(struct sftpfs *f, uint64_t now)
{
	struct snode *n;
	while ((n = f->park_head) && now - n->parked_at > SFTPFS_AUTO_SECS * 1000000000ULL) {
		f->park_head = n->park_next;
		if (!f->park_head)
			f->park_tail = NULL;
		n->parked = 0;
		if (!n->refs && !n->nlookup)
			node_free(f, n);
	}
}

static void put_locked(struct sftpfs *f, struct snode *n, uint64_t nlookup)
{
	if (!n)
		return;
	if (nlookup)
		n->nlookup = nlookup > n->nlookup ? 0 : n->nlookup - nlookup;
	if (n->refs)
		n->refs--;
	if (n->refs || n->nlookup || n == f->root || n->parked)
		return;
	uint64_t now = k_now_ns();
	if (!n->stale && f->root && knowing(f, n, now))
		park(f, n, now);
	else
		node_free(f, n);
	unpark_old(f, now);
}

static void put(struct sftpfs *f, struct snode *n)
{
	pthread_mutex_lock(&f->lock);
	put_locked(f, n, 0);
	pthread_mutex_unlock(&f->lock);
}

/* PATH, of type TYPE, as a node the guest holds one more reference to.
 * A node there of another type is stale: a different file now. */
static struct snode *remember(struct sftpfs *f, const char *path, uint32_t type)
{
	pthread_mutex_lock(&f->lock);
	struct snode *n = by_path(f, path);
	if (n && n->type != type && n != f->root) {
		make_stale(f, n);
		n = NULL;
	}
	if (!n) {
		n = xcalloc(1, sizeof(*n));
		n->id = ++f->next_id;
		n->path = xstrdup(path);
		n->type = type;
		n->by_id = f->ids[id_slot(n->id)];
		f->ids[id_slot(n->id)] = n;
		path_hash(f, n);
	}
	n->nlookup++;
	pthread_mutex_unlock(&f->lock);
	return n;
}

/* What was at OLD (and below it) is now at NEW; what was at NEW is gone. */
static void renamed(struct sftpfs *f, const char *old, const char *new)
{
	size_t ol = strlen(old);

	pthread_mutex_lock(&f->lock);
	make_stale(f, by_path(f, new));
	size_t nl = strlen(new);
	for (size_t i = 0; i < HASH; i++) {
		for (struct snode *n = f->ids[i]; n; n = n->by_id) {
			if (n->stale || strncmp(n->path, old, ol) || (n->path[ol] && n->path[ol] != '/'))
				continue;
			if (n->path[ol] == '/' && nl + strlen(n->path + ol) >= PATH_CAP) {
				make_stale(f, n);       /* too deep to name any more */
				continue;
			}
			char *p = xmalloc(nl + strlen(n->path + ol) + 1);
			strcpy(p, new);
			strcat(p, n->path + ol);
			path_unhash(f, n);
			free(n->path);
			n->path = p;
			path_hash(f, n);
		}
	}
	pthread_mutex_unlock(&f->lock);
}

static void removed(struct sftpfs *f, const char *path)
{
	pthread_mutex_lock(&f->lock);
	make_stale(f, by_path(f, path));
	pthread_mutex_unlock(&f->lock);
}

/* How long what umlk learns of a directory it changed is kept: the
 * names' lifetime, at most SFTPFS_AUTO_SECS; 0 with --home-cache none. */
static uint64_t kept_ns(const struct sftpfs *f)
{
	return (f->valid_secs < SFTPFS_AUTO_SECS ? f->valid_secs : SFTPFS_AUTO_SECS) * 1000000000ULL;
}

static void name_unsure(struct sftpfs *f, const char *path)
{
	pthread_mutex_lock(&f->lock);
	unknown_name(f, path);
	pthread_mutex_unlock(&f->lock);
}

/* A directory the guest just made is empty: until the names' lifetime
 * (capped at SFTPFS_AUTO_SECS) has passed, every name in it is one umlk
 * made and has a node for, and a name without one is missing without
 * asking the server.  Untarring over a slow link, that is the round trip
 * of each new file's first lookup (busybox tar's unlink of the name before
 * it creates it).  A node the guest forgets, or a change in the directory
 * whose outcome is not known, ends it (unknown_name()). */
static void made_empty(struct sftpfs *f, const char *path)
{
	uint64_t ns = kept_ns(f);
	if (!ns)
		return;
	pthread_mutex_lock(&f->lock);
	struct snode *n = by_path(f, path);
	if (n && n->type == S_IFDIR)
		n->known_until = k_now_ns() + ns;
	pthread_mutex_unlock(&f->lock);
}

/* Whether PATH in the directory D is known to be missing (made_empty()). */
static int known_missing(struct sftpfs *f, struct snode *d, const char *path)
{
	pthread_mutex_lock(&f->lock);
	int missing = d->known_until && k_now_ns() < d->known_until && !by_path(f, path);
	pthread_mutex_unlock(&f->lock);
	return missing;
}

/* A change to the names in the directory D (a create, mkdir, removal,
 * rename, link): the kernel of the guest forgets D's attributes after one
 * and asks again (busybox tar stats every file's directory), so where the
 * change's own LSTAT can carry D's after it, umlk keeps them for the
 * names' lifetime (at most SFTPFS_AUTO_SECS) and answers from them.  Kept
 * only when no other change in D was under way from the change's start
 * to its end: the LSTAT then saw every change the guest made there. */
struct dchange {
	struct snode *d;
	uint64_t gen;
	int solo;
	int have;                       /* A holds D's attributes after the change */
	struct sftp_attr a;
};

static void dir_begin(struct sftpfs *f, struct snode *d, struct dchange *c)
{
	memset(c, 0, sizeof(*c));
	c->d = d;
	pthread_mutex_lock(&f->lock);
	c->solo = d->dbusy == 0;
	d->dbusy++;
	c->gen = ++d->dgen;
	d->dattr_until = 0;
	pthread_mutex_unlock(&f->lock);
}

static void dir_end(struct sftpfs *f, struct dchange *c)
{
	uint64_t ns = kept_ns(f);
	struct snode *d = c->d;
	pthread_mutex_lock(&f->lock);
	d->dbusy--;
	if (c->have && c->solo && d->dgen == c->gen && ns && (c->a.perm & S_IFMT) == S_IFDIR) {
		d->dattr = c->a;
		d->dattr_until = k_now_ns() + ns;
	}
	pthread_mutex_unlock(&f->lock);
}

/* D's attributes changed otherwise (a chmod, utimes; a rename into it):
 * what was kept of them goes, and a change under way keeps none. */
static void dir_forget(struct sftpfs *f, struct snode *d)
{
	pthread_mutex_lock(&f->lock);
	d->dgen++;
	d->dattr_until = 0;
	pthread_mutex_unlock(&f->lock);
}

/* D's attributes, if kept (dir_end()): 1, else 0. */
static int dir_kept(struct sftpfs *f, struct snode *d, struct sftp_attr *a)
{
	pthread_mutex_lock(&f->lock);
	int kept = d->dattr_until && k_now_ns() < d->dattr_until;
	if (kept)
		*a = d->dattr;
	pthread_mutex_unlock(&f->lock);
	return kept;
}

/* ---- paths */

/* The path of N (below the root), and NAME below it if not NULL, in BUF:
 * 0, or an errno. */
static int rel_path(const struct snode *n, const char *name, char *buf, size_t cap)
{
	int k = name ? snprintf(buf, cap, "%s%s%s", n->path, n->path[0] ? "/" : "", name)
		     : snprintf(buf, cap, "%s", n->path);
	return k < 0 || (size_t)k >= cap ? ENAMETOOLONG : 0;
}

/* What is sent to the server for a path below the root. */
static int full_path(const struct sftpfs *f, const char *rel, char *buf, size_t cap)
{
	const char *root = sftp_root(f->c);
	int k = snprintf(buf, cap, "%s%s%s", root, rel[0] && strcmp(root, "/") ? "/" : "", rel);
	return k < 0 || (size_t)k >= cap ? ENAMETOOLONG : 0;
}

static void attr_to_stat(const struct sftp_attr *a, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_mode = a->flags & SFTP_A_PERM ? a->perm : S_IFREG | 0644;
	if (!(st->st_mode & S_IFMT))
		st->st_mode |= S_IFREG;
	st->st_size = (off_t)(a->size > (uint64_t)INT64_MAX ? (uint64_t)INT64_MAX : a->size);
	st->st_blocks = (blkcnt_t)((a->size + 511) / 512);
	st->st_uid = a->uid;
	st->st_gid = a->gid;
	st->st_atim.tv_sec = a->atime;
	st->st_mtim.tv_sec = a->mtime;
	st->st_ctim.tv_sec = a->mtime;
	st->st_nlink = S_ISDIR(st->st_mode) ? 2 : 1;
	st->st_blksize = 4096;
}

/* O holds the server's path for PATH (below the root) as its first argument. */
static int path_arg(struct sftpfs *f, const char *path, struct sftp_out *o)
{
	char full[PATH_CAP + 1024];
	int e = full_path(f, path, full, sizeof(full));
	if (e)
		return e;
	so_init(o);
	so_str(o, full);
	return 0;
}

/* Send an LSTAT of PATH, its answer read later with sftp_wait_attr. */
static struct sftp_call *send_lstat(struct sftpfs *f, const char *path, int *e)
{
	struct sftp_out o;
	if ((*e = path_arg(f, path, &o)))
		return NULL;
	return sftp_send(f->c, SFTP_LSTAT, &o, NULL, 0, 0, 0, e);
}

/* The LSTAT of the directory a change is made in, sent behind it when
 * what it gives may be kept (DC: NULL, or a change begun alone). */
static struct sftp_call *send_dir_lstat(struct sftpfs *f, const struct dchange *dc)
{
	int e;
	return dc && dc->solo && kept_ns(f) ? send_lstat(f, dc->d->path, &e) : NULL;
}

static void wait_dir_lstat(struct sftpfs *f, struct sftp_call *dl, struct dchange *dc, int ok)
{
	if (dl)
		dc->have = sftp_wait_attr(f->c, dl, 0, &dc->a) == 0 && ok;
}

/* A request of TYPE with O sent, and PATH's LSTAT right after it: one
 * round trip for both (and for the LSTAT of DC's directory, when DC is
 * given: dir_begin()).  The request's errno (-1 for the server's FAILURE)
 * is returned; the LSTAT's, EIO for a FAILURE, in *LE, its attributes in
 * A. */
static int then_lstat(struct sftpfs *f, uint8_t type, const struct sftp_out *o, unsigned gen, const char *path,
		      struct sftp_attr *a, int *le, struct dchange *dc)
{
	int e;
	struct sftp_call *c = sftp_send(f->c, type, o, NULL, 0, 0, gen, &e);
	struct sftp_call *lc = send_lstat(f, path, le);
	struct sftp_call *dl = send_dir_lstat(f, dc);
	e = sftp_wait_ok(f->c, c, e);
	*le = sftp_wait_attr(f->c, lc, *le, a);
	if (*le < 0)
		*le = EIO;
	wait_dir_lstat(f, dl, dc, !e && !*le);
	return e;
}

/* The same for an OPEN with O, whose handle goes to H, *HLEN and *GEN. */
static int open_then_lstat(struct sftpfs *f, const struct sftp_out *o, uint8_t *h, size_t *hlen, unsigned *gen,
			   const char *path, struct sftp_attr *a, int *le, struct dchange *dc)
{
	int e;
	struct sftp_call *c = sftp_send(f->c, SFTP_OPEN, o, NULL, 0, 0, 0, &e);
	struct sftp_call *lc = send_lstat(f, path, le);
	struct sftp_call *dl = send_dir_lstat(f, dc);
	e = sftp_wait_handle(f->c, c, e, h, hlen, gen);
	*le = sftp_wait_attr(f->c, lc, *le, a);
	if (*le < 0)
		*le = EIO;
	wait_dir_lstat(f, dl, dc, !e && !*le);
	return e;
}

static int lstat_path(struct sftpfs *f, const char *path, struct sftp_attr *a)
{
	struct sftp_out o;
	int e = path_arg(f, path, &o);
	if (e)
		return e;
	e = sftp_expect_attr(f->c, SFTP_LSTAT, &o, 0, a);
	return e < 0 ? EIO : e;
}

/* The guest's kernel leaves clearing set-user-ID and set-group-ID bits
 * to us (HANDLE_KILLPRIV_V2), as a local disk clears them: on a write or
 * truncation by a user without CAP_FSETID and on a chown (the kernel
 * flags those requests).  A is PATH's attributes if known (NULL: asked).
 * Set-group-ID only with group execute.  0, or an errno. */
static int kill_suidgid(struct sftpfs *f, const char *path, const struct sftp_attr *a)
{
	struct sftp_attr cur;
	struct sftp_out o;
	int e;
	if (!a) {
		if ((e = lstat_path(f, path, &cur)))
			return e;
		a = &cur;
	}
	uint32_t k = fw_suidgid_bits(a->perm);
	if (!k)
		return 0;
	if ((e = path_arg(f, path, &o)))
		return e;
	so_attr(&o, &(struct sftp_attr){ .flags = SFTP_A_PERM, .perm = a->perm & 07777 & ~k });
	e = sftp_expect_ok(f->c, SFTP_SETSTAT, &o, 0);
	return e < 0 ? EPERM : e;
}

/* kill_suidgid() for the node ID, from a request on a handle (outside
 * the names lock: taken here for the path). */
static int kill_node(struct sftpfs *f, uint64_t id)
{
	struct snode *n = get(f, id);
	if (!n)
		return ESTALE;
	pthread_rwlock_rdlock(&f->names);
	int e = n->stale ? ESTALE : kill_suidgid(f, n->path, NULL);
	pthread_rwlock_unlock(&f->names);
	put(f, n);
	return e;
}

/* ---- handles */

/* Close the server's handle H (HLEN bytes, good on connection GEN);
 * its answer changes nothing for the guest, so nothing waits for it
 * (what is sent after it is answered after it). */
static void close_remote(struct sftpfs *f, const uint8_t *h, size_t hlen, unsigned gen)
{
	struct sftp_out o;
	int e;
	so_init(&o);
	so_bytes(&o, h, hlen);
	sftp_forget(f->c, sftp_send(f->c, SFTP_CLOSE, &o, NULL, 0, 0, gen, &e));
}

/* The oldest write of W answered (W's lock held, W has some): its error
 * kept if it is the first. */
static void wp_pop(struct sftpfs *f, struct wpend *w)
{
	struct sftp_call *c = w->q[w->head];
	w->head = (w->head + 1) % W_PENDING;
	w->count--;
	int e = sftp_wait_ok(f->c, c, 0);
	if (e && !w->err)
		w->err = e < 0 ? EIO : e;
}

/* Every write of H answered: the first error not yet given, now given
 * (0 if none). */
static int wp_drain(struct sftpfs *f, struct shandle *h)
{
	pthread_mutex_lock(&f->lock);
	struct wpend *w = h->wp;        /* made under this lock, kept while H is held */
	pthread_mutex_unlock(&f->lock);
	if (!w)
		return 0;
	pthread_mutex_lock(&w->lock);
	while (w->count)
		wp_pop(f, w);
	int e = w->err;
	w->err = 0;
	pthread_mutex_unlock(&w->lock);
	return e;
}

/* W gone: answers still out are not waited for. */
static void wp_free(struct sftpfs *f, struct wpend *w)
{
	if (!w)
		return;
	while (w->count) {
		sftp_forget(f->c, w->q[w->head]);
		w->head = (w->head + 1) % W_PENDING;
		w->count--;
	}
	pthread_mutex_destroy(&w->lock);
	free(w);
}

static uint64_t add_handle(struct sftpfs *f, const struct shandle *from)
{
	pthread_mutex_lock(&f->lock);
	size_t i = 0;
	while (i < f->nh && f->h[i]->used)
		i++;
	if (i == f->nh) {
		if (i >= (1u << 20)) {
			pthread_mutex_unlock(&f->lock);
			return NO_HANDLE;
		}
		if (f->nh == f->caph) {
			f->caph = f->caph ? 2 * f->caph : 64;
			f->h = xrealloc(f->h, f->caph * sizeof(*f->h));
		}
		f->h[i] = xcalloc(1, sizeof(**f->h));
		f->nh++;
	}
	*f->h[i] = *from;
	f->h[i]->used = 1;
	f->h[i]->refs = 0;
	pthread_mutex_unlock(&f->lock);
	return i;
}

static struct shandle *get_handle(struct sftpfs *f, uint64_t fh, int isdir)
{
	struct shandle *h = NULL;
	pthread_mutex_lock(&f->lock);
	if (fh < f->nh && f->h[fh]->used == 1 && f->h[fh]->isdir == isdir) {
		h = f->h[fh];
		h->refs++;
	}
	pthread_mutex_unlock(&f->lock);
	return h;
}

static void ra_drop(struct sftpfs *f, struct ahead *a);

static void handle_free(struct sftpfs *f, struct shandle *h)
{
	if (h->ra) {
		ra_drop(f, h->ra);
		pthread_mutex_destroy(&h->ra->lock);
		free(h->ra);
		h->ra = NULL;
	}
	wp_free(f, h->wp);
	h->wp = NULL;
	for (size_t i = 0; i < h->nents; i++)
		free(h->ents[i].name);
	free(h->ents);
	h->ents = NULL;
	h->nents = 0;
	h->used = 0;
}

/* Drop a reference; the last one closes a released handle on the server
 * (if its connection is the current one). */
static void put_handle(struct sftpfs *f, struct shandle *h)
{
	struct shandle copy = { 0 };
	int close_it = 0;

	pthread_mutex_lock(&f->lock);
	if (h->refs && --h->refs == 0 && h->used == 2) {
		copy = *h;
		close_it = !h->isdir;
		h->ents = NULL;
		h->nents = 0;
		h->ra = NULL;
		h->wp = NULL;
		handle_free(f, h);
	}
	pthread_mutex_unlock(&f->lock);
	handle_free(f, &copy);
	if (close_it)
		close_remote(f, copy.h, copy.hlen, copy.gen);
}

static int release_handle(struct sftpfs *f, uint64_t fh, int isdir)
{
	struct shandle *h = get_handle(f, fh, isdir);
	if (!h)
		return EBADF;
	/* Writes the guest did not close or fsync after (a shared mapping
	 * written back after close): an error there has nobody left to
	 * tell but the user. */
	int e = isdir ? 0 : wp_drain(f, h);
	if (e) {
		struct snode *n = get(f, h->node);
		pthread_rwlock_rdlock(&f->names);
		k_warn("home: a write to %s%s failed after the guest closed it: %s", n ? "/" : "a file",
		       n ? n->path : "", strerror(e));
		pthread_rwlock_unlock(&f->names);
		if (n)
			put(f, n);
	}
	pthread_mutex_lock(&f->lock);
	h->used = 2;
	pthread_mutex_unlock(&f->lock);
	put_handle(f, h);
	return 0;
}

/* ---- replies */

#define F(r) ((struct sftpfs *)(r)->ctx)

static size_t reply_node(struct fuse_req *r, const char *path, const struct sftp_attr *a)
{
	struct stat st;
	attr_to_stat(a, &st);
	struct snode *n = remember(F(r), path, st.st_mode & S_IFMT);
	return fw_reply_entry(r, n->id, &st);
}

/* The answer to a request that made PATH (E, its errno: -1 for the
 * server's FAILURE) and to the LSTAT sent after it (LE; A): the new
 * entry, or EEXIST for a FAILURE where something is. */
static size_t made(struct fuse_req *r, int e, const char *path, const struct sftp_attr *a, int le)
{
	if (e || le)
		name_unsure(F(r), path);
	if (e)
		return fw_reply(r, e > 0 ? e : le == 0 ? EEXIST : EIO);
	return le ? fw_reply(r, le) : reply_node(r, path, a);
}

/* Look PATH up and answer with its entry. */
static size_t entry_of(struct fuse_req *r, const char *path)
{
	struct sftp_attr a;
	int e = lstat_path(F(r), path, &a);
	return e ? fw_reply_missing(r, e) : reply_node(r, path, &a);
}

/* ---- operations */

static void written(struct sftpfs *f, uint64_t node);

static size_t op_setattr(struct fuse_req *r, struct snode *n)
{
	struct sftpfs *f = F(r);
	if (r->arglen < 88)
		return fw_reply(r, EINVAL);
	const uint8_t *a = r->arg;
	uint32_t valid = k_le32(a), mode = k_le32(a + 68), uid = k_le32(a + 76), gid = k_le32(a + 80);
	uint64_t fh = k_le64(a + 8), size = k_le64(a + 16);
	struct sftp_attr cur = { 0 }, set = { 0 };
	/* SFTP sets owner and group together, and both times: the one not
	 * given is asked for first (a round trip saved when both are). */
	int need_cur = !(valid & FA_UID) != !(valid & FA_GID) || !(valid & FA_ATIME) != !(valid & FA_MTIME);
	int e = need_cur ? lstat_path(f, n->path, &cur) : 0;

	if (e)
		return fw_reply(r, e);
	uint32_t type = need_cur ? cur.perm & S_IFMT : n->type;
	if (valid & FA_MODE) {
		set.flags |= SFTP_A_PERM;
		set.perm = mode & 07777;
	}
	if (valid & (FA_UID | FA_GID)) {
		set.flags |= SFTP_A_UIDGID;
		set.uid = valid & FA_UID ? uid : cur.uid;
		set.gid = valid & FA_GID ? gid : cur.gid;
	}
	if (valid & FA_SIZE) {
		if (type != S_IFREG)
			return fw_reply(r, type == S_IFDIR ? EISDIR : EINVAL);
		set.flags |= SFTP_A_SIZE;
		set.size = size;
		written(f, n->id);
	}
	if (valid & (FA_ATIME | FA_MTIME)) {
		uint32_t now = (uint32_t)time(NULL);
		set.flags |= SFTP_A_TIMES;
		set.atime = !(valid & FA_ATIME) ? cur.atime : valid & FA_ATIME_NOW ? now : (uint32_t)k_le64(a + 32);
		set.mtime = !(valid & FA_MTIME) ? cur.mtime : valid & FA_MTIME_NOW ? now : (uint32_t)k_le64(a + 40);
	}
	if (type == S_IFDIR)
		dir_forget(f, n);
	/* The change and the LSTAT that answers the guest go together. */
	struct sftp_out o;
	int le;
	struct shandle *h = (valid & FA_FH) && type == S_IFREG ? get_handle(f, fh, 0) : NULL;
	if (h) {
		so_init(&o);
		so_bytes(&o, h->h, h->hlen);
		so_attr(&o, &set);
		e = then_lstat(f, SFTP_FSETSTAT, &o, h->gen, n->path, &cur, &le, NULL);
		put_handle(f, h);
	} else if (type == S_IFLNK) {
		/* Never through the link: only lsetstat changes a link itself. */
		if (!(sftp_extensions(f->c) & SFTP_X_LSETSTAT))
			return fw_reply(r, EPERM);
		char full[PATH_CAP + 1024];
		if ((e = full_path(f, n->path, full, sizeof(full))))
			return fw_reply(r, e);
		so_init(&o);
		so_str(&o, "lsetstat@openssh.com");
		so_str(&o, full);
		so_attr(&o, &set);
		e = then_lstat(f, SFTP_EXTENDED, &o, 0, n->path, &cur, &le, NULL);
	} else {
		if ((e = path_arg(f, n->path, &o)))
			return fw_reply(r, e);
		so_attr(&o, &set);
		e = then_lstat(f, SFTP_SETSTAT, &o, 0, n->path, &cur, &le, NULL);
	}
	if (e)
		return fw_reply(r, e < 0 ? EPERM : e);
	if (le)
		return fw_reply(r, le);
	/* A chown or truncation that must clear the bits: mostly the
	 * server's kernel has (a chown clears set-user-ID on Linux), and
	 * the LSTAT behind the change says so; else one more round trip. */
	if ((valid & FA_KILL_SUIDGID) && !(valid & FA_MODE) && fw_suidgid_bits(cur.perm) &&
	    ((e = kill_suidgid(f, n->path, &cur)) || (e = lstat_path(f, n->path, &cur))))
		return fw_reply(r, e);
	struct stat st;
	attr_to_stat(&cur, &st);
	return fw_reply_attr(r, n->id, &st);
}

static uint32_t open_flags(uint32_t flags)
{
	uint32_t acc = flags & O_ACCMODE;
	uint32_t pf = acc == O_RDONLY ? SFTP_O_READ : acc == O_WRONLY ? SFTP_O_WRITE : SFTP_O_READ | SFTP_O_WRITE;
	if (flags & O_TRUNC)
		pf |= SFTP_O_TRUNC;
	return pf;
}

static size_t reply_open(struct fuse_req *r, uint8_t *p, const struct shandle *h, int dir)
{
	struct sftpfs *f = F(r);
	uint64_t fh = add_handle(f, h);
	if (fh == NO_HANDLE)
		return fw_reply(r, EMFILE);
	k_put_le64(p, fh);
	k_put_le32(p + 8, !dir && f->keep_cache ? FOPEN_KEEP_CACHE : 0);
	return fw_reply(r, 0);
}

static size_t op_open(struct fuse_req *r, struct snode *n)
{
	struct sftpfs *f = F(r);
	struct shandle h = { 0 };
	struct sftp_out o;
	int e;

	if (r->arglen < 8)
		return fw_reply(r, EINVAL);
	if (n->type != S_IFREG)
		return fw_reply(r, n->type == S_IFDIR ? EISDIR : ENXIO);
	if ((e = path_arg(f, n->path, &o)))
		return fw_reply(r, e);
	so_u32(&o, open_flags(k_le32(r->arg)));
	so_attr(&o, &(struct sftp_attr){ 0 });
	if (k_le32(r->arg) & O_TRUNC)
		written(f, n->id);
	if ((e = sftp_expect_handle(f->c, SFTP_OPEN, &o, h.h, &h.hlen, &h.gen)))
		return fw_reply(r, e < 0 ? EIO : e);
	if ((k_le32(r->arg) & O_TRUNC) && (k_le32(r->arg + 4) & FOPEN_IN_KILL_SUIDGID) &&
	    (e = kill_suidgid(f, n->path, NULL))) {
		close_remote(f, h.h, h.hlen, h.gen);
		return fw_reply(r, e);
	}
	h.node = n->id;
	uint8_t *p = fw_room(r, 16);
	return reply_open(r, p, &h, 0);
}

static size_t op_create(struct fuse_req *r, struct snode *parent, struct dchange *dc)
{
	struct sftpfs *f = F(r);
	size_t end;
	const char *name = fw_name_at(r, 16, &end);
	char path[PATH_CAP];
	struct shandle h = { 0 };
	struct sftp_out o;
	struct sftp_attr a = { .flags = SFTP_A_PERM };
	int e;

	if (r->arglen < 16 || !name)
		return fw_reply(r, EINVAL);
	uint32_t flags = k_le32(r->arg);
	a.perm = k_le32(r->arg + 4) & 07777;
	if ((e = rel_path(parent, name, path, sizeof(path))) || (e = path_arg(f, path, &o)))
		return fw_reply(r, e);
	so_u32(&o, open_flags(flags) | SFTP_O_CREAT | (flags & O_EXCL ? SFTP_O_EXCL : 0));
	so_attr(&o, &a);
	/* The OPEN and the LSTAT that answers the guest (or says why the
	 * OPEN failed) go together: one round trip. */
	int le;
	if ((e = open_then_lstat(f, &o, h.h, &h.hlen, &h.gen, path, &a, &le, dc)))
		return made(r, e, path, &a, le);
	e = le ? le : (a.perm & S_IFMT) != S_IFREG ? EEXIST : 0;      /* something else made there meanwhile */
	if (!e && (flags & O_TRUNC) && (k_le32(r->arg + 12) & FOPEN_IN_KILL_SUIDGID) && fw_suidgid_bits(a.perm) &&
	    !(e = kill_suidgid(f, path, &a)))
		e = lstat_path(f, path, &a);
	if (e) {
		name_unsure(f, path);
		close_remote(f, h.h, h.hlen, h.gen);
		return fw_reply(r, e);
	}
	struct stat st;
	attr_to_stat(&a, &st);
	struct snode *n = remember(f, path, S_IFREG);
	uint8_t *p = fw_room(r, ENTRY_OUT + 16);
	if (!p)
		return fw_reply(r, EINVAL);
	fw_put_entry(r, p, n->id, &st);
	h.node = n->id;
	return reply_open(r, p + ENTRY_OUT, &h, 0);
}

static size_t op_opendir(struct fuse_req *r, struct snode *n)
{
	struct sftpfs *f = F(r);
	struct shandle h = { .isdir = 1, .node = n->id };
	struct sftp_out o;
	uint8_t dh[256];
	size_t dhl, cap = 0;
	unsigned gen;
	int e;

	if (n->type != S_IFDIR)
		return fw_reply(r, ENOTDIR);
	if ((e = path_arg(f, n->path, &o)))
		return fw_reply(r, e);
	if ((e = sftp_expect_handle(f->c, SFTP_OPENDIR, &o, dh, &dhl, &gen)))
		return fw_reply(r, e < 0 ? EIO : e);
	/* The whole listing now: the guest reads it by offsets. */
	for (;;) {
		struct sftp_reply rep;
		so_init(&o);
		so_bytes(&o, dh, dhl);
		if ((e = sftp_call(f->c, SFTP_READDIR, &o, gen, &rep)))
			break;
		if (rep.type != SFTP_NAME) {
			e = sftp_status_errno(&rep);
			sftp_reply_free(&rep);
			if (e == ENODATA)
				e = 0;          /* the end */
			else if (!e)
				e = EIO;
			break;
		}
		struct sftp_in in = rep.in;
		uint32_t count = si_u32(&in);
		for (uint32_t i = 0; i < count && !in.bad; i++) {
			size_t nl, ll;
			const uint8_t *nm = si_bytes(&in, &nl);
			si_bytes(&in, &ll);
			struct sftp_attr a;
			si_attr(&in, &a);
			if (in.bad)
				break;
			/* A name that is not one component is not shown. */
			if (nl == 0 || nl > NAME_MAX || memchr(nm, '/', nl) || memchr(nm, 0, nl))
				continue;
			if (h.nents == cap) {
				if (cap >= DIR_MAX_ENTRIES) {
					in.bad = 1;
					break;
				}
				cap = cap ? 2 * cap : 64;
				h.ents = xrealloc(h.ents, cap * sizeof(*h.ents));
			}
			h.ents[h.nents].name = xmalloc(nl + 1);
			memcpy(h.ents[h.nents].name, nm, nl);
			h.ents[h.nents].name[nl] = 0;
			h.ents[h.nents++].a = a;
		}
		int bad = in.bad || count == 0;
		sftp_reply_free(&rep);
		if (bad) {
			e = EIO;
			break;
		}
	}
	close_remote(f, dh, dhl, gen);
	uint8_t *p = e ? NULL : fw_room(r, 16);
	if (!p) {
		handle_free(f, &h);
		return fw_reply(r, e ? e : EINVAL);
	}
	return reply_open(r, p, &h, 1);
}

static size_t op_readdir(struct fuse_req *r, int plus)
{
	struct sftpfs *f = F(r);
	if (r->arglen < 24)
		return fw_reply(r, EINVAL);
	uint64_t fh = k_le64(r->arg), off = k_le64(r->arg + 8);
	uint32_t size = k_le32(r->arg + 16);
	struct shandle *h = get_handle(f, fh, 1);
	struct snode *dir = h ? get(f, h->node) : NULL;
	if (!h || !dir) {
		if (h)
			put_handle(f, h);
		return fw_reply(r, h ? ESTALE : EBADF);
	}
	if (size > r->cap - FUSE_HDR_OUT)
		size = (uint32_t)(r->cap - FUSE_HDR_OUT);
	size_t used = 0;
	for (uint64_t i = off; i < h->nents; i++) {
		const struct dent *d = &h->ents[i];
		size_t nl = strlen(d->name), rec = fw_dirent_size(plus, nl);
		if (used + rec > size)
			break;
		uint8_t *p = fw_room(r, rec);
		uint32_t type = (d->a.flags & SFTP_A_PERM ? d->a.perm : S_IFREG) & S_IFMT;
		int dot = !strcmp(d->name, ".") || !strcmp(d->name, "..");
		/* (SFTP has no inode numbers: a node's id, or one made of
		 * the name.) */
		uint64_t ino = ((uint64_t)path_slot(d->name) << 20 | (i & 0xfffff)) + ROOT_ID + 1;
		if (plus) {
			char path[PATH_CAP];
			if (!dot && !dir->stale && rel_path(dir, d->name, path, sizeof(path)) == 0) {
				struct stat st;
				attr_to_stat(&d->a, &st);
				struct snode *n = remember(f, path, st.st_mode & S_IFMT);
				fw_put_entry(r, p, n->id, &st);
				ino = n->id;
			}
			p += ENTRY_OUT;
		}
		fw_put_dirent(p, ino, i + 1, d->name, nl, type >> 12);
		used += rec;
	}
	put(f, dir);
	put_handle(f, h);
	return fw_reply(r, 0);
}

#define RW_PIECES 64

/* A READ's answer for LEN bytes: its data (in REP) and length, or an
 * errno; ENODATA at the end of the file. */
static int read_answer(struct sftp_reply *rep, uint32_t len, const uint8_t **data, size_t *dlen)
{
	if (rep->type == SFTP_DATA) {
		struct sftp_in in = rep->in;
		*data = si_bytes(&in, dlen);
		return !*data || *dlen > len ? EIO : 0;
	}
	int e = sftp_status_errno(rep);
	return e ? e : EIO;
}

/* Read [OFF, OFF + SIZE) of H straight through, in pieces the server
 * takes, all asked for before any answer is awaited; the data to V at
 * SKIP.  *DONE: the bytes read (stopping at the file's end, *EOF set).
 * An errno, or 0. */
static int read_pieces(struct sftpfs *f, struct shandle *h, uint64_t off, uint32_t size, const struct iovec *v,
		       unsigned nv, size_t skip, size_t *done, int *eof)
{
	uint32_t piece = sftp_max_read(f->c);
	struct sftp_call *calls[RW_PIECES];
	uint32_t lens[RW_PIECES];
	unsigned n = 0;
	int e = 0;

	*done = 0;
	for (uint32_t at = 0; at < size && n < RW_PIECES && !e; at += lens[n++]) {
		lens[n] = size - at < piece ? size - at : piece;
		struct sftp_out o;
		so_init(&o);
		so_bytes(&o, h->h, h->hlen);
		so_u64(&o, off + at);
		so_u32(&o, lens[n]);
		calls[n] = sftp_send(f->c, SFTP_READ, &o, NULL, 0, 0, h->gen, &e);
		if (!calls[n])
			break;
	}
	/* Every answer is awaited, whatever came before. */
	for (unsigned i = 0; i < n; i++) {
		struct sftp_reply rep;
		int ce = sftp_wait(f->c, calls[i], &rep);
		if (ce) {
			if (!e)
				e = ce;
			continue;
		}
		const uint8_t *d;
		size_t dl = 0;
		ce = read_answer(&rep, lens[i], &d, &dl);
		if (ce == ENODATA)
			*eof = 1;
		else if (ce && !e)
			e = ce;
		else if (!ce && !e && !*eof) {
			k_iov_put(v, nv, skip + *done, d, dl);
			*done += dl;
			*eof = dl < lens[i];
		}
		sftp_reply_free(&rep);
	}
	return e;
}

/* P's answer, awaited if it has not come yet. */
static void ra_settle(struct sftpfs *f, struct piece *p)
{
	if (!p->call)
		return;
	p->err = sftp_wait(f->c, p->call, &p->rep);
	p->call = NULL;
	if (!p->err) {
		p->err = read_answer(&p->rep, p->len, &p->data, &p->dlen);
		if (p->err == ENODATA) {
			p->err = 0;
			p->dlen = 0;
		}
	}
}

/* The piece at the head of A gone, its answer awaited first if need be
 * (A's lock held, or A unshared). */
static void ra_pop(struct sftpfs *f, struct ahead *a)
{
	struct piece *p = &a->q[a->head];
	ra_settle(f, p);
	sftp_reply_free(&p->rep);
	memset(p, 0, sizeof(*p));
	a->head = (a->head + 1) % RA_PIECES;
	a->count--;
}

/* Every piece read ahead gone (as for ra_pop). */
static void ra_drop(struct sftpfs *f, struct ahead *a)
{
	while (a->count)
		ra_pop(f, a);
	a->end = UINT64_MAX;
}

/* The furthest piece asked for (A has some). */
static struct piece *ra_last(struct ahead *a)
{
	return &a->q[(a->head + a->count - 1) % RA_PIECES];
}

/* A READ of [OFF, OFF + SIZE) into V, from what was read ahead where it
 * can, straight through for the rest; then more asked ahead if the guest
 * reads in order.  The bytes read, or -errno. */
static long read_ahead(struct sftpfs *f, struct shandle *h, uint64_t off, uint32_t size, const struct iovec *v,
		       unsigned nv)
{
	struct snode *n = get(f, h->node);
	pthread_mutex_lock(&f->lock);
	uint64_t wgen = n ? n->wgen : 0;        /* written under this lock */
	if (!h->ra) {
		h->ra = xcalloc(1, sizeof(*h->ra));
		pthread_mutex_init(&h->ra->lock, NULL);
		h->ra->end = UINT64_MAX;
	}
	struct ahead *a = h->ra;
	pthread_mutex_unlock(&f->lock);
	if (n)
		put(f, n);

	pthread_mutex_lock(&a->lock);
	uint32_t psize = sftp_max_read(f->c);
	uint64_t wstart = a->count ? a->q[a->head].off : 0;
	uint64_t wend = a->count ? ra_last(a)->off + psize : 0;
	/* Written meanwhile, or a jump out of the window: start afresh. */
	if (a->count && (a->wgen != wgen || off > wend || off + size + (uint64_t)RA_PIECES * psize < wstart))
		ra_drop(f, a);
	a->wgen = wgen;

	size_t done = 0;
	int e = 0, eof = 0;
	while (done < size && !eof) {
		uint64_t at = off + done;
		struct piece *p = NULL;
		for (unsigned i = 0; i < a->count && !p; i++) {
			struct piece *q = &a->q[(a->head + i) % RA_PIECES];
			if (q->off <= at && at < q->off + q->len)
				p = q;
		}
		if (!p)
			break;
		ra_settle(f, p);
		if (p->err) {
			ra_drop(f, a);          /* read it straight through below */
			break;
		}
		if (at >= p->off + p->dlen) {
			eof = 1;                /* the file ends in this piece */
			break;
		}
		size_t take = p->off + p->dlen - at < size - done ? (size_t)(p->off + p->dlen - at) : size - done;
		k_iov_put(v, nv, done, p->data + (at - p->off), take);
		done += take;
		if (p->dlen < p->len && off + done == p->off + p->dlen)
			eof = 1;
	}
	if (!eof && done < size) {
		size_t more = 0;
		e = read_pieces(f, h, off + done, (uint32_t)(size - done), v, nv, done, &more, &eof);
		done += more;
	}
	if (eof)
		a->end = off + done;
	/* Pieces the reads have passed go; then, reading in order, more are
	 * asked ahead, up to where the file ends. */
	uint64_t reached = off + done;
	while (a->count && a->q[a->head].off + a->q[a->head].len <= reached)
		ra_pop(f, a);
	int in_order = off <= a->hi && reached >= a->hi;
	if (reached > a->hi)
		a->hi = reached;
	if (in_order && !e && !eof && f->keep_cache) {
		uint64_t next = a->count ? ra_last(a)->off + ra_last(a)->len : reached;
		while (a->count < RA_PIECES && next < a->end) {
			struct sftp_out o;
			int se;
			so_init(&o);
			so_bytes(&o, h->h, h->hlen);
			so_u64(&o, next);
			so_u32(&o, psize);
			struct sftp_call *c = sftp_send(f->c, SFTP_READ, &o, NULL, 0, 0, h->gen, &se);
			if (!c)
				break;
			struct piece *p = &a->q[(a->head + a->count) % RA_PIECES];
			memset(p, 0, sizeof(*p));
			p->off = next;
			p->len = psize;
			p->call = c;
			a->count++;
			next += psize;
		}
	}
	pthread_mutex_unlock(&a->lock);
	if (e && !done)
		return -e;
	return (long)done;
}

/* Count a write to the node of H: what is read ahead of it goes. */
static void written(struct sftpfs *f, uint64_t node)
{
	struct snode *n = get(f, node);
	if (n) {
		pthread_mutex_lock(&f->lock);
		n->wgen++;
		pthread_mutex_unlock(&f->lock);
		put(f, n);
	}
}

/* H's writes in flight, made on first use. */
static struct wpend *wp_of(struct sftpfs *f, struct shandle *h)
{
	pthread_mutex_lock(&f->lock);
	if (!h->wp) {
		h->wp = xcalloc(1, sizeof(*h->wp));
		pthread_mutex_init(&h->wp->lock, NULL);
	}
	struct wpend *w = h->wp;
	pthread_mutex_unlock(&f->lock);
	return w;
}

/* Write [OFF, OFF + SIZE) of H from V, in pieces the server takes, sent
 * and not waited for (see struct wpend).  0, or an errno: an earlier
 * write's (this one then not sent), or why this one could not be sent. */
static int write_behind(struct sftpfs *f, struct shandle *h, uint64_t off, uint32_t size, const struct iovec *v,
			unsigned nv)
{
	struct wpend *w = wp_of(f, h);
	uint32_t piece = sftp_max_write(f->c);
	int e = 0;

	pthread_mutex_lock(&w->lock);
	for (uint32_t at = 0, len; at < size && !e; at += len) {
		if (w->count == W_PENDING)
			wp_pop(f, w);
		if ((e = w->err)) {
			w->err = 0;
			break;
		}
		len = size - at < piece ? size - at : piece;
		struct sftp_out o;
		so_init(&o);
		so_bytes(&o, h->h, h->hlen);
		so_u64(&o, off + at);
		so_u32(&o, len);
		struct iovec *part = xmalloc(sizeof(*part) * (nv + 1));
		unsigned np = k_iov_slice(v, nv, at, len, part);
		struct sftp_call *c = sftp_send(f->c, SFTP_WRITE, &o, part, np, len, h->gen, &e);
		free(part);
		if (c)
			w->q[(w->head + w->count++) % W_PENDING] = c;
	}
	pthread_mutex_unlock(&w->lock);
	return e;
}

static size_t op_rw(struct fuse_req *r, int write)
{
	struct sftpfs *f = F(r);
	if (r->arglen < 40)
		return fw_reply(r, EINVAL);
	uint64_t fh = k_le64(r->arg), off = k_le64(r->arg + 8);
	uint32_t size = k_le32(r->arg + 16);
	struct iovec whole = { 0 };
	const struct iovec *v = r->data;
	unsigned nv = r->ndata;

	if (write) {
		if (size > (r->data ? r->datalen : r->arglen - 40) || size > FUSE_MAX_WRITE)
			return fw_reply(r, EINVAL);
		if (!v) {
			whole = (struct iovec){ (void *)(r->arg + 40), size };
			v = &whole;
			nv = 1;
		}
	} else {
		if (v && size > r->datalen)
			size = (uint32_t)r->datalen;
		if (!v) {
			if (size > r->cap - FUSE_HDR_OUT)
				size = (uint32_t)(r->cap - FUSE_HDR_OUT);
			whole = (struct iovec){ r->out + FUSE_HDR_OUT, size };
			v = &whole;
			nv = 1;
		}
	}
	if (off > (uint64_t)INT64_MAX - size)
		return fw_reply(r, EINVAL);
	struct shandle *h = get_handle(f, fh, 0);
	if (!h)
		return fw_reply(r, EBADF);
	size_t done = 0;
	int e = 0;
	if (write) {
		written(f, h->node);
		if (!(e = write_behind(f, h, off, size, v, nv)))
			done = size;
		/* A user without CAP_FSETID wrote a set-user-ID file: the bits
		 * go once the write is in (the server's answers keep order). */
		if (!e && (k_le32(r->arg + 20) & FWRITE_KILL_SUIDGID))
			e = kill_node(f, h->node);
	} else {
		long got = read_ahead(f, h, off, size, v, nv);
		if (got < 0)
			e = (int)-got;
		else
			done = (size_t)got;
	}
	put_handle(f, h);
	if (e && !(done && !write))
		return fw_reply(r, e);
	if (write) {
		uint8_t *p = fw_room(r, 8);
		k_put_le32(p, (uint32_t)done);
	} else if (r->data) {
		r->extra = done;
	} else {
		r->len += done;
	}
	return fw_reply(r, 0);
}

static void forget_one(void *ctx, uint64_t node, uint64_t count)
{
	struct sftpfs *f = ctx;
	struct snode *n = get(f, node);
	pthread_mutex_lock(&f->lock);
	put_locked(f, n, count);
	pthread_mutex_unlock(&f->lock);
}

static size_t op_statfs(struct fuse_req *r)
{
	struct sftpfs *f = F(r);
	struct sftp_reply rep;
	char full[PATH_CAP + 1024];
	struct sftp_out o;

	if (!(sftp_extensions(f->c) & SFTP_X_STATVFS))
		return fw_reply_statfs(r, 1u << 30, 1u << 30, 1u << 30, 1u << 20, 1u << 20, 4096, 255, 4096);
	full_path(f, "", full, sizeof(full));
	so_init(&o);
	so_str(&o, "statvfs@openssh.com");
	so_str(&o, full);
	int e = sftp_call(f->c, SFTP_EXTENDED, &o, 0, &rep);
	if (e)
		return fw_reply(r, e);
	if (rep.type != SFTP_EXTENDED_REPLY) {
		e = sftp_status_errno(&rep);
		sftp_reply_free(&rep);
		return fw_reply(r, e ? e : EIO);
	}
	struct sftp_in in = rep.in;
	uint64_t v[11];
	for (int i = 0; i < 11; i++)
		v[i] = si_u64(&in);
	sftp_reply_free(&rep);
	if (in.bad)
		return fw_reply(r, EIO);
	/* bsize frsize blocks bfree bavail files ffree favail fsid flag namemax */
	return fw_reply_statfs(r, v[2], v[3], v[4], v[5], v[6], (uint32_t)v[0], (uint32_t)v[10], (uint32_t)v[1]);
}

/* Operations that change names: under the names lock's write side when
 * they may put a link where a directory was. */
static size_t op_names(struct fuse_req *r, struct snode *n, struct dchange *dc)
{
	struct sftpfs *f = F(r);
	char path[PATH_CAP], path2[PATH_CAP], full[PATH_CAP + 1024], full2[PATH_CAP + 1024];
	size_t end, end2;
	const char *name, *name2;
	struct sftp_out o;
	struct sftp_attr a;
	int e, le;

	switch (r->op) {
	case OP_SYMLINK:
		/* The name, then the link's text: any text (the guest's
		 * kernel follows it in the guest; umlk never does). */
		if (!(name = fw_name_at(r, 0, &end)) || end >= r->arglen || !memchr(r->arg + end, 0, r->arglen - end))
			return fw_reply(r, EINVAL);
		if ((e = rel_path(n, name, path, sizeof(path))) || (e = full_path(f, path, full, sizeof(full))))
			return fw_reply(r, e);
		so_init(&o);
		/* OpenSSH's order: the link's text, then where it goes. */
		so_str(&o, (const char *)r->arg + end);
		so_str(&o, full);
		e = then_lstat(f, SFTP_SYMLINK, &o, 0, path, &a, &le, dc);
		return made(r, e, path, &a, le);
	case OP_RENAME:
	case OP_RENAME2: {
		size_t at = r->op == OP_RENAME ? 8 : 16;
		if (r->arglen < at || !(name = fw_name_at(r, at, &end)) || !(name2 = fw_name_at(r, end, &end2)))
			return fw_reply(r, EINVAL);
		uint32_t flags = r->op == OP_RENAME2 ? k_le32(r->arg + 8) : 0;
		if (flags & ~1u)
			return fw_reply(r, EINVAL);     /* RENAME_EXCHANGE, WHITEOUT: not over SFTP */
		struct snode *to = get(f, k_le64(r->arg));
		if (!to)
			return fw_reply(r, ENOENT);
		e = to->stale ? ESTALE : to->type != S_IFDIR ? ENOTDIR : 0;
		if (!e && to != n)
			dir_forget(f, to);      /* (renames are alone: nothing else under way) */
		if (!e && !(e = rel_path(n, name, path, sizeof(path))) && !(e = rel_path(to, name2, path2, sizeof(path2))) &&
		    !(e = full_path(f, path, full, sizeof(full))))
			e = full_path(f, path2, full2, sizeof(full2));
		put(f, to);
		if (e)
			return fw_reply(r, e);
		if (!strcmp(path, path2))
			return fw_reply(r, 0);
		if (!strncmp(path2, path, strlen(path)) && path2[strlen(path)] == '/')
			return fw_reply(r, EINVAL);     /* into itself */
		so_init(&o);
		if (!flags) {
			if (!(sftp_extensions(f->c) & SFTP_X_POSIX_RENAME))
				return fw_reply(r, ENOSYS);
			so_str(&o, "posix-rename@openssh.com");
		}
		so_str(&o, full);
		so_str(&o, full2);
		e = sftp_expect_ok(f->c, flags ? SFTP_RENAME : SFTP_EXTENDED, &o, 0);
		if (e) {
			name_unsure(f, path);
			name_unsure(f, path2);
		}
		if (e < 0) {
			e = lstat_path(f, path2, &a) == 0 ? (flags ? EEXIST : (a.perm & S_IFMT) == S_IFDIR ? ENOTEMPTY : EIO)
							  : EIO;
		}
		if (e)
			return fw_reply(r, e);
		renamed(f, path, path2);
		return fw_reply(r, 0);
	}
	case OP_LINK: {
		if (r->arglen < 8 || !(name = fw_name_at(r, 8, NULL)))
			return fw_reply(r, EINVAL);
		if (!(sftp_extensions(f->c) & SFTP_X_HARDLINK))
			return fw_reply(r, EPERM);
		struct snode *from = get(f, k_le64(r->arg));
		if (!from)
			return fw_reply(r, ENOENT);
		e = from->stale ? ESTALE : from->type == S_IFDIR ? EPERM : 0;
		if (!e && !(e = full_path(f, from->path, full, sizeof(full))) && !(e = rel_path(n, name, path, sizeof(path))))
			e = full_path(f, path, full2, sizeof(full2));
		put(f, from);
		if (e)
			return fw_reply(r, e);
		so_init(&o);
		so_str(&o, "hardlink@openssh.com");
		so_str(&o, full);
		so_str(&o, full2);
		e = then_lstat(f, SFTP_EXTENDED, &o, 0, path, &a, &le, dc);
		return made(r, e, path, &a, le);
	}
	}
	return fw_reply(r, ENOSYS);
}

/* Operations on the request's node. */
static size_t on_node(struct fuse_req *r, struct snode *n, struct dchange *dc)
{
	struct sftpfs *f = F(r);
	char path[PATH_CAP];
	const char *name;
	struct sftp_out o;
	struct sftp_attr a;
	int e;

	switch (r->op) {
	case OP_LOOKUP:
		if (!(name = fw_name_at(r, 0, NULL)))
			return fw_reply(r, r->arglen >= 3 && !memcmp(r->arg, "..", 3) ? EACCES : ENOENT);
		if (n->type != S_IFDIR)
			return fw_reply(r, ENOTDIR);
		if ((e = rel_path(n, name, path, sizeof(path))))
			return fw_reply(r, e);
		if (known_missing(f, n, path))
			return fw_reply_missing(r, ENOENT);
		return entry_of(r, path);
	case OP_GETATTR: {
		struct shandle *h = r->arglen >= 16 && (k_le32(r->arg) & GETATTR_FH) ? get_handle(f, k_le64(r->arg + 8), 0)
										    : NULL;
		if (h) {
			so_init(&o);
			so_bytes(&o, h->h, h->hlen);
			e = sftp_expect_attr(f->c, SFTP_FSTAT, &o, h->gen, &a);
			put_handle(f, h);
			if (e < 0)
				e = EIO;
		} else if (n->stale) {
			e = ESTALE;
		} else {
			e = n->type == S_IFDIR && dir_kept(f, n, &a) ? 0 : lstat_path(f, n->path, &a);
		}
		if (e)
			return fw_reply(r, e);
		struct stat st;
		attr_to_stat(&a, &st);
		return fw_reply_attr(r, n->id, &st);
	}
	case OP_SETATTR:
		return op_setattr(r, n);
	case OP_READLINK: {
		struct sftp_reply rep;
		if ((e = path_arg(f, n->path, &o)) || (e = sftp_call(f->c, SFTP_READLINK, &o, 0, &rep)))
			return fw_reply(r, e);
		struct sftp_in in = rep.in;
		uint32_t count = si_u32(&in);
		size_t tl;
		const uint8_t *t = si_bytes(&in, &tl);
		if (rep.type != SFTP_NAME || in.bad || count != 1 || !t || tl == 0 || tl >= PATH_MAX || memchr(t, 0, tl)) {
			e = rep.type == SFTP_STATUS ? sftp_status_errno(&rep) : 0;
			sftp_reply_free(&rep);
			return fw_reply(r, e ? e : EIO);
		}
		uint8_t *p = fw_room(r, tl);
		if (p)
			memcpy(p, t, tl);
		sftp_reply_free(&rep);
		return fw_reply(r, p ? 0 : ERANGE);
	}
	case OP_MKNOD: {
		if (r->arglen < 16 || !(name = fw_name_at(r, 16, NULL)))
			return fw_reply(r, EINVAL);
		uint32_t mode = k_le32(r->arg);
		if (!S_ISREG(mode))
			return fw_reply(r, EPERM);      /* SFTP makes no FIFO, socket or device */
		if ((e = rel_path(n, name, path, sizeof(path))) || (e = path_arg(f, path, &o)))
			return fw_reply(r, e);
		uint8_t h[256];
		size_t hl;
		unsigned gen;
		so_u32(&o, SFTP_O_WRITE | SFTP_O_CREAT | SFTP_O_EXCL);
		so_attr(&o, &(struct sftp_attr){ .flags = SFTP_A_PERM, .perm = mode & 07777 });
		int le;
		if (!(e = open_then_lstat(f, &o, h, &hl, &gen, path, &a, &le, dc)))
			close_remote(f, h, hl, gen);
		return made(r, e, path, &a, le);
	}
	case OP_MKDIR:
		if (r->arglen < 8 || !(name = fw_name_at(r, 8, NULL)))
			return fw_reply(r, EINVAL);
		if ((e = rel_path(n, name, path, sizeof(path))) || (e = path_arg(f, path, &o)))
			return fw_reply(r, e);
		so_attr(&o, &(struct sftp_attr){ .flags = SFTP_A_PERM, .perm = k_le32(r->arg) & 07777 });
		int le;
		e = then_lstat(f, SFTP_MKDIR, &o, 0, path, &a, &le, dc);
		size_t res = made(r, e, path, &a, le);
		if (!e && !le)
			made_empty(f, path);
		return res;
	case OP_UNLINK:
	case OP_RMDIR:
		if (!(name = fw_name_at(r, 0, NULL)))
			return fw_reply(r, EINVAL);
		if ((e = rel_path(n, name, path, sizeof(path))) ||
		    (e = path_arg(f, path, &o)))
			return fw_reply(r, e);
		e = sftp_expect_ok(f->c, r->op == OP_RMDIR ? SFTP_RMDIR : SFTP_REMOVE, &o, 0);
		if (e < 0) {
			e = lstat_path(f, path, &a) ? EIO
			    : r->op == OP_RMDIR ? ((a.perm & S_IFMT) == S_IFDIR ? ENOTEMPTY : ENOTDIR)
			    : (a.perm & S_IFMT) == S_IFDIR ? EISDIR : EIO;
		}
		if (e)
			return fw_reply(r, e);
		removed(f, path);
		return fw_reply(r, 0);
	case OP_OPEN:
		return op_open(r, n);
	case OP_OPENDIR:
		return op_opendir(r, n);
	case OP_CREATE:
		return op_create(r, n, dc);
	case OP_STATFS:
		return op_statfs(r);
	}
	return fw_reply(r, ENOSYS);
}

/* Whether OP changes the names in its node, a directory. */
static int changes_names(uint32_t op)
{
	return op == OP_SYMLINK || op == OP_RENAME || op == OP_RENAME2 || op == OP_LINK || op == OP_MKNOD ||
	       op == OP_MKDIR || op == OP_UNLINK || op == OP_RMDIR || op == OP_CREATE;
}

size_t sftpfs_serve(void *ctx, const uint8_t *in, size_t inlen, const struct iovec *data, unsigned ndata,
		    size_t datalen, uint8_t *out, size_t outcap)
{
	struct sftpfs *f = ctx;
	struct fuse_req r;
	int p = fw_parse(&r, f, in, inlen, data, ndata, datalen, out, outcap);

	if (p < 0)
		return 0;
	if (p > 0)
		return fw_reply(&r, EINVAL);
	r.valid_secs = f->valid_secs;

	switch (r.op) {
	case OP_INIT: {
		/* (Not the kernel's writeback cache: measured, it sends
		 * smaller writes, and the 200 MB write took twice as long.) */
		/* Set-user-ID bits are ours to clear (kill_suidgid()):
		 * without it the guest's kernel asks for a file's attributes
		 * before every chown, a round trip. */
		uint32_t want = F_ASYNC_READ | F_ATOMIC_O_TRUNC | F_BIG_WRITES | F_PARALLEL_DIROPS | F_MAX_PAGES |
				F_DO_READDIRPLUS | F_READDIRPLUS_AUTO | F_HANDLE_KILLPRIV_V2 |
				(f->keep_cache ? F_AUTO_INVAL_DATA : 0);
		return fw_init(&r, want, FUSE_MAX_WRITE);
	}
	case OP_DESTROY:
		return fw_reply(&r, 0);
	case OP_FORGET:
	case OP_BATCH_FORGET:
		fw_forget(&r, forget_one);
		return 0;
	case OP_INTERRUPT:
		return 0;
	case OP_READ:
	case OP_WRITE:
		return op_rw(&r, r.op == OP_WRITE);
	case OP_READDIR:
	case OP_READDIRPLUS:
		return op_readdir(&r, r.op == OP_READDIRPLUS);
	case OP_RELEASE:
	case OP_RELEASEDIR:
		if (r.arglen < 8)
			return fw_reply(&r, EINVAL);
		return fw_reply(&r, release_handle(f, k_le64(r.arg), r.op == OP_RELEASEDIR));
	case OP_FLUSH: {
		/* The guest's close: its writes' answers awaited, an error
		 * in one given to close(). */
		if (r.arglen < 8)
			return fw_reply(&r, EINVAL);
		struct shandle *h = get_handle(f, k_le64(r.arg), 0);
		if (!h)
			return fw_reply(&r, EBADF);
		int e = wp_drain(f, h);
		put_handle(f, h);
		return fw_reply(&r, e);
	}
	case OP_FSYNC:
	case OP_FSYNCDIR: {
		if (r.arglen < 16)
			return fw_reply(&r, EINVAL);
		if (r.op == OP_FSYNCDIR)
			return fw_reply(&r, 0);         /* names are made on the server at once */
		struct shandle *h = get_handle(f, k_le64(r.arg), 0);
		if (!h)
			return fw_reply(&r, EBADF);
		int e = wp_drain(f, h);
		if (e) {
			put_handle(f, h);
			return fw_reply(&r, e);
		}
		e = ENOSYS;
		if (sftp_extensions(f->c) & SFTP_X_FSYNC) {
			struct sftp_out o;
			so_init(&o);
			so_str(&o, "fsync@openssh.com");
			so_bytes(&o, h->h, h->hlen);
			e = sftp_expect_ok(f->c, SFTP_EXTENDED, &o, h->gen);
			if (e < 0)
				e = EIO;
		}
		put_handle(f, h);
		return fw_reply(&r, e);
	}
	case OP_ACCESS:
		return fw_reply(&r, ENOSYS);    /* the guest checks permissions itself */
	case OP_FALLOCATE:
		return fw_reply(&r, EOPNOTSUPP);
	}
	struct snode *n = get(f, r.nodeid);
	if (!n)
		return fw_reply(&r, ESTALE);
	int writer = r.op == OP_SYMLINK || r.op == OP_RENAME || r.op == OP_RENAME2 || r.op == OP_LINK;
	int change = changes_names(r.op);       /* (every writer among them) */
	size_t res;
	if (writer)
		pthread_rwlock_wrlock(&f->names);
	else
		pthread_rwlock_rdlock(&f->names);
	/* (A file open when its name went away is still the guest's
	 * through its handle: GETATTR with one is answered.) */
	if (n->stale && !(r.op == OP_GETATTR && r.arglen >= 16 && (k_le32(r.arg) & GETATTR_FH)))
		res = fw_reply(&r, ESTALE);
	else if (n->type != S_IFDIR && change)
		res = fw_reply(&r, ENOTDIR);
	else {
		struct dchange dc;
		if (change)
			dir_begin(f, n, &dc);
		res = writer ? op_names(&r, n, change ? &dc : NULL) : on_node(&r, n, change ? &dc : NULL);
		if (change)
			dir_end(f, &dc);
	}
	pthread_rwlock_unlock(&f->names);
	put(f, n);
	return res;
}

struct sftpfs *sftpfs_open(struct sftp *c, enum fshare_cache cache)
{
	struct sftpfs *f = xcalloc(1, sizeof(*f));

	f->c = c;
	f->valid_secs = cache == FSHARE_CACHE_ALWAYS ? 86400 : cache == FSHARE_CACHE_AUTO ? SFTPFS_AUTO_SECS : 0;
	f->keep_cache = cache != FSHARE_CACHE_NONE;
	pthread_mutex_init(&f->lock, NULL);
	pthread_rwlock_init(&f->names, NULL);
	f->next_id = ROOT_ID - 1;
	f->root = remember(f, "", S_IFDIR);     /* gets ROOT_ID */
	return f;
}

void sftpfs_close(struct sftpfs *f)
{
	if (!f)
		return;
	f->root = NULL;                 /* freed below, with the rest, in any order */
	for (size_t i = 0; i < HASH; i++)
		while (f->ids[i])
			node_free(f, f->ids[i]);
	for (size_t i = 0; i < f->nh; i++) {
		handle_free(f, f->h[i]);
		free(f->h[i]);
	}
	free(f->h);
	sftp_close(f->c);
	pthread_rwlock_destroy(&f->names);
	pthread_mutex_destroy(&f->lock);
	free(f);
}
