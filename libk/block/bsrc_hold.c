/* Writes that wait for room (bsrc.h: bsrc_hold).
 *
 * A write or flush that fails for want of space (ENOSPC, EDQUOT) is not
 * given back to the guest as an error it could ignore: it waits, and so
 * does every write after it, each tried again every HOLD_RETRY_MS until
 * room appears, the policy's wait runs out (then the policy says so: the
 * launcher stops the guest), or the policy is stopped (the guest is gone).
 * Any other failure (EIO, EROFS, EFBIG) goes back to the guest as an I/O
 * error, said once and counted. */
#include "block/bsrc.h"
#include "core/err.h"
#include "core/sys.h"
#include "core/xio.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#define HOLD_RETRY_MS 2000

struct hsrc {
	struct bsrc b;
	struct hold_policy *p;
	char fspath[256];               /* a file or directory on the filesystem, for statvfs */
	int said_error;
};

void hold_policy_init(struct hold_policy *p, int wait_s)
{
	memset(p, 0, sizeof(*p));
	p->wait_s = wait_s;
	pthread_mutex_init(&p->lock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&p->wake, &ca);
	pthread_condattr_destroy(&ca);
}

void hold_policy_stop(struct hold_policy *p)
{
	pthread_mutex_lock(&p->lock);
	p->stopped = 1;
	pthread_cond_broadcast(&p->wake);
	pthread_mutex_unlock(&p->lock);
}

void hold_policy_free(struct hold_policy *p)
{
	pthread_mutex_destroy(&p->lock);
	pthread_cond_destroy(&p->wake);
}

/* One line on stderr, whole even when the user's terminal is raw (an
 * interactive guest's). */
static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (isatty(STDERR_FILENO))
		fprintf(stderr, "\r%s: %s\r\n", k_progname, msg);
	else
		fprintf(stderr, "%s: %s\n", k_progname, msg);
}

/* "the filesystem at /mnt (12 KiB free)", as far as it can be known. */
static void where(const struct hsrc *h, char *out, size_t cap)
{
	struct statvfs v;
	char mnt[512], f[32];

	if (k_mount_point(h->fspath, mnt, sizeof(mnt)) < 0)
		snprintf(mnt, sizeof(mnt), "?");
	if (statvfs(h->fspath, &v) == 0)
		snprintf(out, cap, "the filesystem at %s (%s free)", mnt,
			 k_human((uint64_t)v.f_bavail * v.f_frsize, f, sizeof(f)));
	else
		snprintf(out, cap, "the filesystem at %s", mnt);
}

static int out_of_room(int e)
{
	return e == ENOSPC || e == EDQUOT;
}

/* OP (a write of N bytes at OFF, or with BUF NULL a flush) until it
 * works, fails otherwise, or the policy says no more. */
static int held(struct hsrc *h, const void *buf, size_t n, uint64_t off)
{
	struct hold_policy *p = h->p;
	long long since = 0;
	char fs[600], sz[32];

	for (;;) {
		int r = buf ? bsrc_write(h->b.lower, buf, n, off) : bsrc_flush(h->b.lower);
		int e = errno;
		if (r == 0 || !out_of_room(e)) {
			if (since) {
				pthread_mutex_lock(&p->lock);
				if (--p->waiting == 0 && p->said_full && !p->stopped && !p->expired) {
					say("%s: there is room again: the guest goes on", h->b.name);
					p->said_full = 0;
				}
				pthread_mutex_unlock(&p->lock);
			}
			if (r < 0) {
				__atomic_add_fetch(&p->write_errors, 1, __ATOMIC_RELAXED);
				if (!__atomic_exchange_n(&h->said_error, 1, __ATOMIC_RELAXED))
					say("%s; the guest gets I/O errors for it", k_errmsg());
				errno = e;
			}
			return r;
		}
		pthread_mutex_lock(&p->lock);
		if (!since) {
			since = k_now_ms();
			p->waiting++;
			if (!p->said_full && !p->stopped && p->wait_s != 0) {
				p->said_full = 1;
				where(h, fs, sizeof(fs));
				say("%s: %s%s is full; the guest waits (a write of %s), and goes on when there is"
				    " room: free some%s", h->b.name, e == EDQUOT ? "your quota on " : "", fs,
				    k_human(buf ? n : 4096, sz, sizeof(sz)),
				    p->wait_s > 0 ? " (it is stopped if there is none within --disk-full-wait)" : "");
			}
		}
		long long waited = k_now_ms() - since;
		if (!p->stopped && p->wait_s >= 0 && waited >= (long long)p->wait_s * 1000 && !p->expired) {
			p->expired = 1;
			snprintf(p->full_file, sizeof(p->full_file), "%s", h->b.name);
		}
		if (p->stopped || p->expired) {
			p->waiting--;
			pthread_mutex_unlock(&p->lock);
			errno = e;
			return k_seterr("%s: no room left (not written: the guest is stopped)", h->b.name);
		}
		struct timespec t;
		clock_gettime(CLOCK_MONOTONIC, &t);
		t.tv_sec += HOLD_RETRY_MS / 1000;
		pthread_cond_timedwait(&p->wake, &p->lock, &t);
		pthread_mutex_unlock(&p->lock);
	}
}

static int hold_read(struct bsrc *s, void *buf, size_t n, uint64_t off)
{
	return bsrc_read(s->lower, buf, n, off);
}

static int hold_write(struct bsrc *s, const void *buf, size_t n, uint64_t off)
{
	return held((struct hsrc *)s, buf, n, off);
}

static int hold_flush(struct bsrc *s)
{
	return held((struct hsrc *)s, NULL, 0, 0);
}

static void hold_close(struct bsrc *s)
{
	bsrc_close(s->lower);
	free(s);
}

static const struct bsrc_ops hold_ops = { "hold", hold_read, hold_write, hold_flush, hold_close };

struct bsrc *bsrc_hold(struct bsrc *lower, const char *fspath, struct hold_policy *p)
{
	struct hsrc *h = xcalloc(1, sizeof(*h));

	h->b.ops = &hold_ops;
	snprintf(h->b.name, sizeof(h->b.name), "%s", lower->name);
	snprintf(h->fspath, sizeof(h->fspath), "%s", fspath);
	h->b.size = lower->size;
	h->b.readonly = lower->readonly;
	h->b.says_errors = 1;
	h->b.lower = lower;
	h->p = p;
	return &h->b;
}
