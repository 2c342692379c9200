#include "remote/remote.h"
#include "core/err.h"
#include "core/pool.h"
#include "core/progress.h"
#include "core/sha256.h"
#include "core/sys.h"
#include "core/xio.h"
#include "remote/http.h"
#include "remote/index.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

enum { CH_UNKNOWN, CH_BUSY, CH_READY, CH_BAD };

/* Requests and read-ahead are sized in bytes, whatever the index's chunk
 * (the unit of checking, and of what a read fetches beyond its need):
 * small chunks fetch less that nobody reads, not in smaller requests. */
#define RUN_BYTES (1u << 20)    /* the most one request asks for */
#define AHEAD_BYTES (512u << 10)        /* the most fetched ahead of sequential reads */
#define RUN_CHUNKS_MAX (RUN_BYTES / KIDX_CHUNK_MIN)
/* A read the profile did not foresee fetches at least the 64 KiB around it
 * (aligned, in the same request): a guest that reads one block of a file
 * tends to read its neighbours next, and a round trip costs more than the
 * bytes.  So an index of small chunks (a profile's: it then fetches only
 * what the recorded boot read) boots without a profile as one of 64 KiB
 * chunks does. */
#define FETCH_MIN (64u << 10)
#define ATTEMPTS 3              /* per server, for errors that may pass */
#define FETCHERS 4              /* read-ahead threads */
#define MEM_KEEP_MAX (256u << 20)       /* chunks kept in memory when the cache cannot keep them */

/* Where a chunk's bytes are kept in memory (r->memkind): */
enum { MEM_NONE, MEM_PINNED, MEM_KEPT };

struct rsrc {
	struct bsrc b;
	struct remote_opts o;
	char identity[HTTP_URL_MAX + 160];
	char *urls[REMOTE_MIRRORS_MAX + 1];     /* the image's URL, then mirrors (no fragments) */
	int nurls;
	struct http *http;
	struct kidx x;
	int verified;           /* chunks have hashes to check */
	char dir[PATH_MAX - 128];       /* the cache: DIR/chunks/XX/HEX, DIR/index/HEX */
	pthread_mutex_t lock;
	pthread_cond_t changed;
	uint8_t *state;         /* per chunk */
	/* A chunk a read is waiting for is pinned: a copy of it stays in
	 * memory until that read is answered, whatever the cache does
	 * meanwhile (trimmed by this run or another).  Chunks the cache
	 * cannot keep are kept in memory, up to MEM_KEEP_MAX. */
	uint16_t *pins;         /* per chunk: reads waiting for it */
	uint8_t **mem;          /* per chunk: its bytes, or NULL */
	uint8_t *memkind;       /* per chunk: MEM_PINNED (freed with the last pin) or MEM_KEPT */
	uint64_t mem_kept;      /* bytes of MEM_KEPT chunks */
	int cache_off;          /* nothing is written to the cache (unwritable, or too small) */
	uint64_t next_seq;      /* where a sequential read would start */
	uint32_t run_max;       /* chunks in one request: RUN_BYTES of them, at least one */
	uint32_t fetch_min;     /* chunks a read fetches at least: FETCH_MIN, at least one */
	uint32_t ahead_max;     /* chunks fetched ahead of a stream: AHEAD_BYTES, at least one */
	uint32_t ahead_win;     /* chunks fetched ahead of the stream now: 0, 1, 2, 4 ... ahead_max */
	struct pool *ahead;
	int closing;            /* read-ahead still queued is dropped */
	uint64_t added;         /* bytes put in the cache since the last trim */
	struct remote_stats st;
	int cache_warned;
	char last_err[512];     /* why the last fetch failed (any thread's) */
};

static void hexof(const uint8_t d[32], char hex[65])
{
	sha256_hex(d, hex);
}

static void chunk_path(const struct rsrc *r, uint32_t i, char *p, size_t cap)
{
	char hex[65];
	hexof(r->x.hash + 32 * (size_t)i, hex);
	snprintf(p, cap, "%s/chunks/%.2s/%s", r->dir, hex, hex);
}

static int hash_ok(const struct rsrc *r, uint32_t i, const uint8_t *data, size_t n)
{
	if (!r->verified)
		return 1;
	struct sha256 s;
	uint8_t d[32];
	sha256_init(&s);
	sha256_update(&s, data, n);
	sha256_final(&s, d);
	return !memcmp(d, r->x.hash + 32 * (size_t)i, 32);
}

/* ---- the cache */

struct centry {
	char path[PATH_MAX + 512];
	time_t mtime;
	off_t size;
};

static int by_age(const void *a, const void *b)
{
	const struct centry *x = a, *y = b;
	return x->mtime < y->mtime ? -1 : x->mtime > y->mtime;
}

/* Trim DIR/chunks to CAP bytes, the least recently used first (a chunk's
 * modification time is renewed when a run first uses it). */
static void cache_trim(const char *dir, uint64_t cap)
{
	char p[PATH_MAX];
	struct centry *e = NULL;
	size_t n = 0, room = 0;
	uint64_t total = 0;

	snprintf(p, sizeof(p), "%s/chunks", dir);
	DIR *top = opendir(p);
	struct dirent *d, *f;
	while (top && (d = readdir(top))) {
		if (d->d_name[0] == '.' || strlen(d->d_name) != 2)
			continue;
		char sub[PATH_MAX];
		snprintf(sub, sizeof(sub), "%s/chunks/%s", dir, d->d_name);
		DIR *s = opendir(sub);
		while (s && (f = readdir(s))) {
			struct stat st;
			if (f->d_name[0] == '.')
				continue;
			if (n == room)
				e = xrealloc(e, (room = room ? room * 2 : 1024) * sizeof(*e));
			snprintf(e[n].path, sizeof(e[n].path), "%s/%s", sub, f->d_name);
			if (lstat(e[n].path, &st) < 0 || !S_ISREG(st.st_mode))
				continue;
			if (strchr(f->d_name, '.') && time(NULL) - st.st_mtime < 3600)
				continue;       /* another run's temporary, being written */
			e[n].mtime = st.st_mtime;
			e[n].size = st.st_blocks * 512;
			total += (uint64_t)e[n].size;
			n++;
		}
		if (s)
			closedir(s);
	}
	if (top)
		closedir(top);
	if (total > cap) {
		qsort(e, n, sizeof(*e), by_age);
		for (size_t i = 0; i < n && total > cap - cap / 10; i++)
			if (unlink(e[i].path) == 0)
				total -= (uint64_t)e[i].size;
	}
	free(e);
}

/* Chunk I, verified, from the cache into BUF; 0 if it is not there (or
 * was damaged, and is gone now). */
static int cache_load(struct rsrc *r, uint32_t i, uint8_t *buf)
{
	char p[PATH_MAX];
	uint32_t n = kidx_chunk_len(&r->x, i);
	if (!r->verified)
		return 0;
	chunk_path(r, i, p, sizeof(p));
	int fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	struct stat st;
	ssize_t got = fstat(fd, &st) == 0 && st.st_size == n ? full_pread(fd, buf, n, 0) : -1;
	close(fd);
	if (got != (ssize_t)n || !hash_ok(r, i, buf, n)) {
		if (r->o.verbose)
			k_warn("%s: a damaged cached chunk %u (%s); fetching it again", r->b.name, i, p);
		unlink(p);
		return 0;
	}
	struct timespec now[2] = { { 0, UTIME_NOW }, { 0, UTIME_NOW } };
	utimensat(AT_FDCWD, p, now, 0);        /* recently used */
	return 1;
}

/* Chunk I's bytes in memory, for as long as KIND says (r->lock held). */
static void mem_keep(struct rsrc *r, uint32_t i, const uint8_t *data, int kind)
{
	uint32_t n = kidx_chunk_len(&r->x, i);
	if (r->mem[i])
		return;
	r->mem[i] = xmalloc(n);
	memcpy(r->mem[i], data, n);
	r->memkind[i] = (uint8_t)kind;
	if (kind == MEM_KEPT)
		r->mem_kept += n;
}

/* Keep chunk I (verified): in the cache, or in memory when the cache
 * cannot (up to MEM_KEEP_MAX), and in memory too while a read is pinning
 * it.  1 if it is kept somewhere, 0 if not (it is fetched again when a
 * read asks for it). */
static int cache_store(struct rsrc *r, uint32_t i, const uint8_t *data)
{
	char p[PATH_MAX];
	uint32_t n = kidx_chunk_len(&r->x, i);
	int on_disk = 0;
	if (r->verified && !__atomic_load_n(&r->cache_off, __ATOMIC_RELAXED)) {
		chunk_path(r, i, p, sizeof(p));
		char *slash = strrchr(p, '/');
		*slash = 0;
		int ok = k_mkdirs(p, 0700) == 0;
		*slash = '/';
		if (ok && kout_write_file(p, data, n, 0600, 0) == 0) {
			on_disk = 1;
			pthread_mutex_lock(&r->lock);
			r->added += n;
			int trim = r->added > r->o.cache_max / 8;
			if (trim)
				r->added = 0;
			pthread_mutex_unlock(&r->lock);
			if (trim)
				cache_trim(r->dir, r->o.cache_max);
		} else {
			/* A full or read-only cache only stops caching. */
			__atomic_store_n(&r->cache_off, 1, __ATOMIC_RELAXED);
			if (!__atomic_exchange_n(&r->cache_warned, 1, __ATOMIC_RELAXED))
				k_warn("%s: cannot keep chunks in the cache (%s); keeping them in memory", r->dir,
				       k_errmsg());
		}
	}
	pthread_mutex_lock(&r->lock);
	if (!on_disk && r->mem_kept + n <= MEM_KEEP_MAX)
		mem_keep(r, i, data, MEM_KEPT);
	else if (r->pins[i])
		mem_keep(r, i, data, MEM_PINNED);
	int kept = on_disk || r->mem[i];
	pthread_mutex_unlock(&r->lock);
	return kept;
}

/* Reads of chunks [A, B) begin (pin) or end (unpin). */
static void pin(struct rsrc *r, uint32_t a, uint32_t b)
{
	pthread_mutex_lock(&r->lock);
	for (uint32_t i = a; i < b; i++)
		r->pins[i]++;
	pthread_mutex_unlock(&r->lock);
}

static void unpin(struct rsrc *r, uint32_t a, uint32_t b)
{
	pthread_mutex_lock(&r->lock);
	for (uint32_t i = a; i < b; i++) {
		if (--r->pins[i] == 0 && r->memkind[i] == MEM_PINNED) {
			free(r->mem[i]);
			r->mem[i] = NULL;
			r->memkind[i] = MEM_NONE;
		}
	}
	pthread_mutex_unlock(&r->lock);
}

/* LEN bytes at OFF of ready chunk I into BUF; -1 if the cache lost it. */
static int ready_read(struct rsrc *r, uint32_t i, uint8_t *buf, size_t len, uint32_t off)
{
	pthread_mutex_lock(&r->lock);
	uint8_t *m = r->mem[i];
	pthread_mutex_unlock(&r->lock);
	if (m) {
		memcpy(buf, m + off, len);
		return 0;
	}
	char p[PATH_MAX];
	chunk_path(r, i, p, sizeof(p));
	int fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;              /* trimmed away by another run */
	ssize_t got = full_pread(fd, buf, len, off);
	close(fd);
	return got == (ssize_t)len ? 0 : -1;
}

/* ---- fetching */

/* Fetch chunks [A, B) (all BUSY, claimed by the caller) into BUF, from the
 * servers in turn.  Marks each READY or, when no good copy came, UNKNOWN
 * (a network failure: asked again on the next read) or BAD (its hash). */
static void fetch_run(struct rsrc *r, uint32_t a, uint32_t b, uint8_t *buf)
{
	uint64_t off = (uint64_t)a * r->x.chunk;
	uint64_t end = (uint64_t)b * r->x.chunk < r->x.size ? (uint64_t)b * r->x.chunk : r->x.size;
	size_t len = (size_t)(end - off);
	uint8_t done[RUN_CHUNKS_MAX] = { 0 }, mismatch[RUN_CHUNKS_MAX] = { 0 };
	int left = (int)(b - a);
	char last_err[512] = "";
	/* Each server once; the image's own twice when it is alone and served
	 * a chunk that failed its hash (spoiled on the way, it may come right). */
	int tries = r->nurls;

	for (int t = 0; t < tries && left; t++) {
		const char *url = r->urls[t % r->nurls];
		int st = HTTP_FATAL;
		for (int at = 0; at < ATTEMPTS; at++) {
			uint64_t got = 0;
			if (at) {
				__atomic_add_fetch(&r->st.retries, 1, __ATOMIC_RELAXED);
				if (r->o.verbose)
					k_warn("%s; trying again (%d of %d)", last_err, at + 1, ATTEMPTS);
				struct timespec ts = { 0, 250000000L << (at - 1) };
				nanosleep(&ts, NULL);
			}
			__atomic_add_fetch(&r->st.requests, 1, __ATOMIC_RELAXED);
			st = http_get(r->http, url, off, len, buf, NULL, NULL, 0, &got);
			__atomic_add_fetch(&r->st.fetched, got, __ATOMIC_RELAXED);
			if (st != HTTP_OK)
				snprintf(last_err, sizeof(last_err), "%s", k_errmsg());
			if (st != HTTP_RETRY)
				break;
		}
		if (st != HTTP_OK) {
			k_warn("%s", last_err);
			pthread_mutex_lock(&r->lock);
			snprintf(r->last_err, sizeof(r->last_err), "%s", last_err);
			pthread_mutex_unlock(&r->lock);
			continue;               /* the next server */
		}
		for (uint32_t i = a; i < b; i++) {
			if (done[i - a])
				continue;
			uint8_t *d = buf + (size_t)(i - a) * r->x.chunk;
			uint32_t n = kidx_chunk_len(&r->x, i);
			if (!hash_ok(r, i, d, n)) {
				__atomic_add_fetch(&r->st.mismatches, 1, __ATOMIC_RELAXED);
				mismatch[i - a] = 1;
				if (r->nurls == 1 && tries == 1)
					tries = 2;
				k_warn("%s: chunk %u (bytes %" PRIu64 "-%" PRIu64 "): hash mismatch%s", url, i,
				       (uint64_t)i * r->x.chunk, (uint64_t)i * r->x.chunk + n - 1,
				       t + 1 < tries ? "; not used, fetching it again" : "; not used");
				continue;
			}
			int kept = cache_store(r, i, d);
			done[i - a] = 1;
			left--;
			pthread_mutex_lock(&r->lock);
			r->state[i] = kept ? CH_READY : CH_UNKNOWN;
			pthread_cond_broadcast(&r->changed);
			pthread_mutex_unlock(&r->lock);
		}
	}
	pthread_mutex_lock(&r->lock);
	for (uint32_t i = a; i < b; i++)
		if (!done[i - a])
			r->state[i] = mismatch[i - a] ? CH_BAD : CH_UNKNOWN;
	pthread_cond_broadcast(&r->changed);
	pthread_mutex_unlock(&r->lock);
}

/* Make chunks [A, B) ready, fetching what is missing (at most run_max
 * per request); a request for them also takes the missing chunks next to
 * them within [CA, CB) (which holds [A, B)), none of which is waited for.
 * Others' fetches of the same chunks are waited for.  WAIT 0 (read-ahead):
 * claim what is free, never wait.  Returns -1 with k_seterr() when a chunk
 * cannot be had. */
static int make_ready(struct rsrc *r, uint32_t a, uint32_t b, uint32_t ca, uint32_t cb, int wait)
{
	uint8_t *buf = NULL;
	int rc = 0;

	for (uint32_t i = a; i < b;) {
		pthread_mutex_lock(&r->lock);
		while (wait && r->state[i] == CH_BUSY)
			pthread_cond_wait(&r->changed, &r->lock);
		uint8_t s = r->state[i];
		if (s == CH_READY || s == CH_BUSY) {
			pthread_mutex_unlock(&r->lock);
			i++;
			continue;
		}
		if (s == CH_BAD) {
			pthread_mutex_unlock(&r->lock);
			if (!wait)
				break;
			rc = k_seterr("%s: chunk %u failed its hash on every server (hash mismatch)", r->b.name, i);
			break;
		}
		/* Claim a run of unknown chunks, from the missing ones just
		 * before i (within CA) to those after it (within CB). */
		uint32_t h = i;
		while (h > ca && r->state[h - 1] == CH_UNKNOWN && i - h + 1 < r->run_max)
			h--;
		uint32_t j = h;
		while (j < cb && j - h < r->run_max && r->state[j] == CH_UNKNOWN)
			r->state[j++] = CH_BUSY;
		pthread_mutex_unlock(&r->lock);
		if (!buf)
			buf = xmalloc((size_t)r->run_max * r->x.chunk);
		/* What the cache holds needs no request. */
		uint32_t k = h;
		while (k < j) {
			if (cache_load(r, k, buf)) {
				__atomic_add_fetch(&r->st.cached, 1, __ATOMIC_RELAXED);
				pthread_mutex_lock(&r->lock);
				if (r->pins[k])         /* the file may be trimmed before it is read */
					mem_keep(r, k, buf, MEM_PINNED);
				r->state[k] = CH_READY;
				pthread_cond_broadcast(&r->changed);
				pthread_mutex_unlock(&r->lock);
				k++;
				continue;
			}
			uint32_t m = k + 1;
			/* The missing run from k: up to the next cached one. */
			while (m < j) {
				char p[PATH_MAX];
				struct stat st;
				chunk_path(r, m, p, sizeof(p));
				if (r->verified && stat(p, &st) == 0)
					break;
				m++;
			}
			fetch_run(r, k, m, buf);
			k = m;
		}
		if (!wait)
			break;
		/* Now i is READY, or failed: look again. */
		pthread_mutex_lock(&r->lock);
		s = r->state[i];
		char why[sizeof(r->last_err)];
		memcpy(why, r->last_err, sizeof(why));
		pthread_mutex_unlock(&r->lock);
		if (s == CH_UNKNOWN) {
			rc = k_seterr("%s: chunk %u cannot be fetched (%s)", r->b.name, i, why[0] ? why : "no server");
			break;
		}
	}
	free(buf);
	return rc;
}

struct ahead_job {
	struct rsrc *r;
	uint32_t a, b;
};

static void ahead_run(void *arg)
{
	struct ahead_job *j = arg;
	if (!__atomic_load_n(&j->r->closing, __ATOMIC_RELAXED))
		make_ready(j->r, j->a, j->b, j->a, j->b, 0);
	free(j);
}

static void ahead(struct rsrc *r, uint32_t a, uint32_t b)
{
	if (!r->ahead || a >= b)
		return;
	struct ahead_job *j = xmalloc(sizeof(*j));
	*j = (struct ahead_job){ r, a, b };
	pool_submit(r->ahead, ahead_run, j);
}

static int read_pinned(struct rsrc *r, uint8_t *o, size_t n, uint64_t off, uint32_t a, uint32_t b);

/* [*CA, *CB): the FETCH_MIN-aligned span around chunks [A, B). */
static void fetch_span(const struct rsrc *r, uint32_t a, uint32_t b, uint32_t *ca, uint32_t *cb)
{
	uint32_t per = r->fetch_min;
	*ca = a - a % per;
	*cb = b % per ? b + (per - b % per) : b;
	if (*cb > r->x.nchunks || *cb < b)
		*cb = r->x.nchunks;
}

static int remote_read(struct bsrc *s, void *out, size_t n, uint64_t off)
{
	struct rsrc *r = (struct rsrc *)s;
	uint8_t *o = out;
	uint32_t a = (uint32_t)(off / r->x.chunk), b = (uint32_t)((off + n - 1) / r->x.chunk) + 1;

	/* A stream: a read of a chunk (and FETCH_MIN) or more where the last
	 * one ended (the guest's own read-ahead makes such reads; a file's
	 * few blocks, read one by one, are not one).  The chunks after it are
	 * fetched meanwhile: FETCH_MIN's worth after the first such read,
	 * then twice as many each time up to ahead_max. */
	uint32_t per = r->fetch_min;
	pthread_mutex_lock(&r->lock);
	int seq = off == r->next_seq && off && n >= (uint64_t)per * r->x.chunk;
	r->next_seq = off + n;
	r->ahead_win = !seq ? 0 : !r->ahead_win ? per : r->ahead_win * 2 < r->ahead_max ? r->ahead_win * 2 : r->ahead_max;
	uint32_t win = r->ahead_win;
	pthread_mutex_unlock(&r->lock);
	if (win)
		ahead(r, b, b + win < r->x.nchunks ? b + win : r->x.nchunks);
	pin(r, a, b);
	int rc = read_pinned(r, o, n, off, a, b);
	unpin(r, a, b);
	return rc;
}

/* The read of remote_read, its chunks pinned: a chunk fetched from now on
 * stays in memory until the read is done, so one that vanishes from the
 * cache is fetched again once, and then read. */
static int read_pinned(struct rsrc *r, uint8_t *o, size_t n, uint64_t off, uint32_t a, uint32_t b)
{
	for (int again = 0;; again++) {
		uint32_t ca, cb;
		fetch_span(r, a, b, &ca, &cb);
		if (make_ready(r, a, b, ca, cb, 1) < 0) {
			__atomic_add_fetch(&r->st.failed, 1, __ATOMIC_RELAXED);
			return -1;
		}
		uint64_t at = off;
		int lost = -1;
		while (at < off + n) {
			uint32_t i = (uint32_t)(at / r->x.chunk), in = (uint32_t)(at % r->x.chunk);
			size_t take = r->x.chunk - in;
			if (take > off + n - at)
				take = (size_t)(off + n - at);
			if (ready_read(r, i, o + (at - off), take, in) < 0) {
				lost = (int)i;
				break;
			}
			at += take;
		}
		if (lost < 0)
			return 0;
		if (again == 2)         /* (cannot happen: a pinned chunk stays in memory) */
			return k_seterr("%s: chunk %d vanished from the cache (%s) three times", r->b.name, lost,
					r->dir);
		pthread_mutex_lock(&r->lock);
		if (r->state[lost] == CH_READY)
			r->state[lost] = CH_UNKNOWN;
		pthread_mutex_unlock(&r->lock);
	}
}

static void remote_close(struct bsrc *s)
{
	struct rsrc *r = (struct rsrc *)s;
	__atomic_store_n(&r->closing, 1, __ATOMIC_RELAXED);
	if (r->ahead)
		pool_stop(r->ahead);    /* (the runs being fetched end; the queued ones are dropped) */
	if (r->verified && r->added)
		cache_trim(r->dir, r->o.cache_max);     /* what this run added stays under the cap */
	http_free(r->http);
	for (uint32_t i = 0; r->mem && i < r->x.nchunks; i++)
		free(r->mem[i]);
	free(r->mem);
	free(r->memkind);
	free(r->pins);
	free(r->state);
	for (int i = 0; i < r->nurls; i++)
		free(r->urls[i]);
	kidx_free(&r->x);
	pthread_mutex_destroy(&r->lock);
	pthread_cond_destroy(&r->changed);
	free(r);
}

static const struct bsrc_ops remote_ops = { "http", remote_read, NULL, NULL, remote_close };

/* The index: from the cache by its pinned hash, else from the server. */
static int get_index(struct rsrc *r, const uint8_t pin[32], int pinned)
{
	char url[HTTP_URL_MAX + 16], p[PATH_MAX], hex[65];
	uint8_t *buf = NULL;
	size_t n = 0;

	if (pinned) {
		hexof(pin, hex);
		snprintf(p, sizeof(p), "%s/index/%s", r->dir, hex);
		buf = k_read_file(p, &n);
		if (buf && kidx_parse(&r->x, buf, n, p) == 0 && !memcmp(r->x.self, pin, 32)) {
			free(buf);
			return 0;
		}
		if (buf) {
			kidx_free(&r->x);
			unlink(p);
		}
		free(buf);
		buf = NULL;
	}
	if (r->o.index_url)
		snprintf(url, sizeof(url), "%s", r->o.index_url);
	else
		snprintf(url, sizeof(url), "%s.umlkidx", r->urls[0]);
	int st = HTTP_FATAL;
	struct progress pr;
	prog_start(&pr, "fetching the index", 0);
	for (int at = 0; at < ATTEMPTS; at++) {
		uint64_t got = 0;
		if (at) {
			if (r->o.verbose)
				k_warn("%s; trying again (%d of %d)", k_errmsg(), at + 1, ATTEMPTS);
			struct timespec ts = { 0, 250000000L << (at - 1) };
			nanosleep(&ts, NULL);
		}
		st = http_get(r->http, url, 0, 0, NULL, &buf, &n, KIDX_FILE_MAX, &got);
		r->st.fetched += got;
		r->st.requests++;
		if (st != HTTP_RETRY)
			break;
	}
	prog_end(&pr);
	if (st != HTTP_OK)
		return k_seterr("the image's index: %s", k_errmsg());
	struct sha256 s;
	uint8_t d[32];
	sha256_init(&s);
	sha256_update(&s, buf, n);
	sha256_final(&s, d);
	if (pinned && memcmp(d, pin, 32)) {
		char got[65];
		hexof(d, got);
		free(buf);
		return k_seterr("%s: the index's SHA-256 is %s, and the URL pins %s: refused (a different"
				" image, or a changed one)", url, got, hex);
	}
	if (kidx_parse(&r->x, buf, n, url) < 0) {
		free(buf);
		return -1;
	}
	if (pinned) {
		char dir[PATH_MAX];
		snprintf(dir, sizeof(dir), "%s/index", r->dir);
		if (k_mkdirs(dir, 0700) < 0 || kout_write_file(p, buf, n, 0600, 0) < 0)
			k_warn("%s: cannot keep the index in the cache: %s", p, k_errmsg());
	}
	free(buf);
	return 0;
}

struct bsrc *remote_open(const struct remote_opts *o)
{
	struct rsrc *r = xcalloc(1, sizeof(*r));
	struct url u;
	uint8_t pin[32];
	int pinned = 0;

	r->o = *o;
	if (!r->o.cache_max)
		r->o.cache_max = REMOTE_CACHE_DEFAULT;
	pthread_mutex_init(&r->lock, NULL);
	pthread_cond_init(&r->changed, NULL);
	if (url_parse(&u, o->url) < 0)
		goto fail;
	if (!strncmp(u.frag, "sha256=", 7)) {
		if (kidx_unhex(u.frag + 7, pin) < 0) {
			k_seterr("%s: #sha256= needs 64 hex digits (the index's SHA-256, as 'umlk index' prints)",
				 o->url);
			goto fail;
		}
		pinned = 1;
	} else if (u.frag[0]) {
		k_seterr("%s: the fragment '#%s' is not #sha256=HEX", o->url, u.frag);
		goto fail;
	}
	if (!pinned && !o->insecure) {
		k_seterr("%s: no #sha256= pinning the image's index, so nothing it serves could be verified;"
			 " publish it with 'umlk index' and boot the URL it prints (or give --insecure)", o->url);
		goto fail;
	}
	char plain[HTTP_URL_MAX];
	url_format(&u, plain, sizeof(plain));
	snprintf(r->identity, sizeof(r->identity), "%s%s%s", plain, u.frag[0] ? "#" : "", u.frag);
	snprintf(r->b.name, sizeof(r->b.name), "%.*s", (int)sizeof(r->b.name) - 1, plain);
	r->urls[r->nurls++] = xstrdup(plain);
	for (int i = 0; i < o->nmirrors; i++) {
		struct url m;
		if (url_parse(&m, o->mirrors[i]) < 0) {
			k_seterr("--mirror %s", k_errmsg());
			goto fail;
		}
		url_format(&m, plain, sizeof(plain));
		r->urls[r->nurls++] = xstrdup(plain);
	}
	if (o->cache_dir) {
		snprintf(r->dir, sizeof(r->dir), "%s", o->cache_dir);
	} else {
		k_cache_dir(r->dir, sizeof(r->dir));
	}
	struct http_opts ho = { .verbose = o->verbose };
	if (o->timeout_s)
		ho.connect_timeout_ms = ho.idle_timeout_ms = o->timeout_s * 1000;
	r->http = http_new(&ho);
	if (get_index(r, pin, pinned) < 0) {
		if (o->insecure && !pinned)
			k_seterr("%s (with --insecure an index is still needed: it gives the image's size and"
				 " chunks; 'umlk index IMAGE' makes one)", k_errmsg());
		goto fail;
	}
	r->verified = pinned;
	r->run_max = r->x.chunk < RUN_BYTES ? RUN_BYTES / r->x.chunk : 1;
	r->fetch_min = r->x.chunk < FETCH_MIN ? FETCH_MIN / r->x.chunk : 1;
	r->ahead_max = r->x.chunk < AHEAD_BYTES ? AHEAD_BYTES / r->x.chunk : 1;
	if (!pinned)
		k_warn("%s: --insecure: nothing fetched is verified (no #sha256= in the URL); the guest"
		       " may be given anything", r->b.name);
	r->b.ops = &remote_ops;
	r->b.size = r->x.size;
	r->b.readonly = 1;
	r->state = xcalloc(r->x.nchunks, 1);
	r->mem = xcalloc(r->x.nchunks, sizeof(*r->mem));
	r->memkind = xcalloc(r->x.nchunks, 1);
	r->pins = xcalloc(r->x.nchunks, sizeof(*r->pins));
	r->ahead = pool_start(FETCHERS, "umlk-fetch");
	if (pinned)
		cache_trim(r->dir, r->o.cache_max);
	/* What one boot may have in flight at once: the read-ahead threads'
	 * runs and the disk workers' (4).  A cache smaller than that is not
	 * used. */
	uint64_t in_flight = (uint64_t)r->run_max * r->x.chunk * (FETCHERS + 4);
	if (pinned && r->o.cache_max < in_flight) {
		char a[16], b[16];
		r->cache_off = 1;
		if (!k_quiet)
			k_warn("--cache-max %s is less than the %s a boot has in flight: no chunk is kept in the"
			       " cache this time (each is fetched when it is needed)", k_human(r->o.cache_max, a, sizeof(a)),
			       k_human(in_flight, b, sizeof(b)));
	}
	/* Every image kind starts with its first 64 KiB, FETCH_MIN (ISO volume
	 * descriptors, superblocks, cloop headers): fetched now, so that a
	 * server that fails or serves another image is told at once, in one
	 * line, and not as an image of unknown format. */
	uint32_t first = r->fetch_min < r->x.nchunks ? r->fetch_min : r->x.nchunks;
	if (make_ready(r, 0, first, 0, first, 1) < 0)
		goto fail;
	return &r->b;
fail:
	remote_close(&r->b);
	return NULL;
}

void remote_prefetch_profile(struct bsrc *s)
{
	struct rsrc *r = (struct rsrc *)s;

	if (!r->x.nprofile || !r->ahead)
		return;
	/* Runs of consecutive chunks, in the profile's order, queued for
	 * the read-ahead threads: the guest boots meanwhile, and a read of a
	 * chunk not yet fetched fetches it itself (or waits for the thread
	 * that has it in flight). */
	for (uint32_t i = 0; i < r->x.nprofile;) {
		uint32_t a = r->x.profile[i], j = i + 1;
		while (j < r->x.nprofile && r->x.profile[j] == a + (j - i) && j - i < r->run_max)
			j++;
		ahead(r, a, a + (j - i));
		i = j;
	}
}

void remote_get_stats(struct bsrc *s, struct remote_stats *st)
{
	struct rsrc *r = (struct rsrc *)s;
	st->fetched = __atomic_load_n(&r->st.fetched, __ATOMIC_RELAXED);
	st->requests = __atomic_load_n(&r->st.requests, __ATOMIC_RELAXED);
	st->retries = __atomic_load_n(&r->st.retries, __ATOMIC_RELAXED);
	st->cached = __atomic_load_n(&r->st.cached, __ATOMIC_RELAXED);
	st->mismatches = __atomic_load_n(&r->st.mismatches, __ATOMIC_RELAXED);
	st->failed = __atomic_load_n(&r->st.failed, __ATOMIC_RELAXED);
}

const char *remote_identity(struct bsrc *s)
{
	return ((struct rsrc *)s)->identity;
}
