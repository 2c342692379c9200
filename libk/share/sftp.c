#include "share/sftp.h"
#include "core/bytes.h"
#include "core/err.h"
#include "core/sys.h"
#include "core/xio.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

/* The largest packet taken from a server, whatever it says: a READ's
 * data (at most 1 MiB asked) and its header, or a directory's batch. */
#define PACKET_MAX ((1u << 20) + 4096)

/* ---- building and reading messages */

void so_init(struct sftp_out *o)
{
	o->len = 0;
	o->over = 0;
}

static void so_put(struct sftp_out *o, const void *p, size_t n)
{
	if (o->over || n > sizeof(o->buf) - o->len) {
		o->over = 1;
		return;
	}
	memcpy(o->buf + o->len, p, n);
	o->len += n;
}

void so_u32(struct sftp_out *o, uint32_t v)
{
	uint8_t b[4];
	k_put_be32(b, v);
	so_put(o, b, 4);
}

void so_u64(struct sftp_out *o, uint64_t v)
{
	uint8_t b[8];
	k_put_be64(b, v);
	so_put(o, b, 8);
}

void so_bytes(struct sftp_out *o, const void *p, size_t n)
{
	if (n > UINT32_MAX) {
		o->over = 1;
		return;
	}
	so_u32(o, (uint32_t)n);
	so_put(o, p, n);
}

void so_str(struct sftp_out *o, const char *s) { so_bytes(o, s, strlen(s)); }

void so_attr(struct sftp_out *o, const struct sftp_attr *a)
{
	uint32_t f = a->flags & (SFTP_A_SIZE | SFTP_A_UIDGID | SFTP_A_PERM | SFTP_A_TIMES);
	so_u32(o, f);
	if (f & SFTP_A_SIZE)
		so_u64(o, a->size);
	if (f & SFTP_A_UIDGID) {
		so_u32(o, a->uid);
		so_u32(o, a->gid);
	}
	if (f & SFTP_A_PERM)
		so_u32(o, a->perm);
	if (f & SFTP_A_TIMES) {
		so_u32(o, a->atime);
		so_u32(o, a->mtime);
	}
}

static const uint8_t *si_take(struct sftp_in *i, size_t n)
{
	if (i->bad || n > i->n) {
		i->bad = 1;
		return NULL;
	}
	const uint8_t *p = i->p;
	i->p += n;
	i->n -= n;
	return p;
}

uint32_t si_u32(struct sftp_in *i)
{
	const uint8_t *p = si_take(i, 4);
	return p ? k_be32(p) : 0;
}

uint64_t si_u64(struct sftp_in *i)
{
	const uint8_t *p = si_take(i, 8);
	return p ? k_be64(p) : 0;
}

const uint8_t *si_bytes(struct sftp_in *i, size_t *len)
{
	uint32_t n = si_u32(i);
	const uint8_t *p = si_take(i, n);
	*len = p ? n : 0;
	return p;
}

void si_attr(struct sftp_in *i, struct sftp_attr *a)
{
	memset(a, 0, sizeof(*a));
	a->flags = si_u32(i);
	if (a->flags & SFTP_A_SIZE)
		a->size = si_u64(i);
	if (a->flags & SFTP_A_UIDGID) {
		a->uid = si_u32(i);
		a->gid = si_u32(i);
	}
	if (a->flags & SFTP_A_PERM)
		a->perm = si_u32(i);
	if (a->flags & SFTP_A_TIMES) {
		a->atime = si_u32(i);
		a->mtime = si_u32(i);
	}
	if (a->flags & SFTP_A_EXTENDED) {
		uint32_t n = si_u32(i);
		for (uint32_t k = 0; k < n && !i->bad; k++) {
			size_t l;
			si_bytes(i, &l);
			si_bytes(i, &l);
		}
	}
}

/* Packets of 64 KiB and more (a read's data: OpenSSH sends up to 255
 * KiB) are kept for reuse, up to BIG_KEEP of them: musl maps and unmaps a
 * block that size at every malloc and free, faulting its pages in again
 * and flushing every CPU's TLB each time. */
#define BIG (64u << 10)
#define BIG_KEEP 16

static pthread_mutex_t big_lock = PTHREAD_MUTEX_INITIALIZER;
static uint8_t *big[BIG_KEEP];
static size_t big_cap[BIG_KEEP];
static unsigned nbig;

/* A buffer of at least LEN bytes; its size in *CAP. */
static uint8_t *packet_buf(size_t len, size_t *cap)
{
	if (len >= BIG) {
		pthread_mutex_lock(&big_lock);
		for (unsigned i = 0; i < nbig; i++)
			if (big_cap[i] >= len) {
				uint8_t *b = big[i];
				*cap = big_cap[i];
				nbig--;
				big[i] = big[nbig];
				big_cap[i] = big_cap[nbig];
				pthread_mutex_unlock(&big_lock);
				return b;
			}
		pthread_mutex_unlock(&big_lock);
		len = (len + BIG - 1) / BIG * BIG;      /* fewer sizes, more reuse */
	}
	*cap = len;
	return xmalloc(len);
}

/* B, of CAP bytes (packet_buf), kept for reuse or freed. */
static void packet_free(uint8_t *b, size_t cap)
{
	if (b && cap >= BIG) {
		pthread_mutex_lock(&big_lock);
		if (nbig < BIG_KEEP) {
			big[nbig] = b;
			big_cap[nbig++] = cap;
			b = NULL;
		}
		pthread_mutex_unlock(&big_lock);
	}
	free(b);
}

void sftp_reply_free(struct sftp_reply *r)
{
	packet_free(r->buf, r->cap);
	r->buf = NULL;
}

/* ---- the target */

int sftp_parse_url(const char *url, struct sftp_target *t)
{
	memset(t, 0, sizeof(*t));
	if (strncmp(url, "ssh://", 6))
		return k_seterr("%s: not an ssh:// URL", url);
	const char *p = url + 6, *slash = strchr(p, '/');
	if (!slash)
		return k_seterr("%s: no path (ssh://[USER@]HOST[:PORT]/PATH)", url);
	const char *at = memchr(p, '@', (size_t)(slash - p));
	if (at) {
		if (at == p || (size_t)(at - p) >= sizeof(t->user) || *p == '-')
			return k_seterr("%s: not a user name before '@'", url);
		memcpy(t->user, p, (size_t)(at - p));
		p = at + 1;
	}
	const char *hend, *port = NULL;
	if (*p == '[') {                        /* [IPv6 address] */
		hend = memchr(p, ']', (size_t)(slash - p));
		if (!hend)
			return k_seterr("%s: no ']' after the address", url);
		p++;
		if (hend[1] == ':')
			port = hend + 2;
		else if (hend + 1 != slash)
			return k_seterr("%s: something after the address", url);
	} else {
		hend = memchr(p, ':', (size_t)(slash - p));
		if (hend)
			port = hend + 1;
		else
			hend = slash;
	}
	if (hend == p || (size_t)(hend - p) >= sizeof(t->host) || *p == '-')
		return k_seterr("%s: not a host name", url);
	memcpy(t->host, p, (size_t)(hend - p));
	for (const char *c = t->host; *c; c++)
		if ((unsigned char)*c <= ' ' || *c == '\'' || *c == '"' || *c == '\\')
			return k_seterr("%s: not a host name", url);
	for (const char *c = t->user; *c; c++)
		if ((unsigned char)*c <= ' ' || *c == ':')
			return k_seterr("%s: not a user name", url);
	if (port) {
		char *end;
		unsigned long v = strtoul(port, &end, 10);
		if (end != slash || port == slash || v == 0 || v > 65535)
			return k_seterr("%s: not a port number", url);
		t->port = (unsigned)v;
	}
	const char *path = slash;               /* "/abs", or "/~/rel" */
	if (!strcmp(path, "/~") || !strncmp(path, "/~/", 3))
		path += path[2] ? 3 : 2;
	if (strlen(path) >= sizeof(t->path))
		return k_seterr("%s: the path is too long", url);
	strcpy(t->path, *path ? path : ".");
	return 0;
}

/* ---- the connection */

struct call {
	uint32_t id;
	unsigned gen;
	int done, err;
	int forgotten;                  /* nobody waits: freed when its answer comes or its connection goes */
	struct sftp_reply r;
	struct call *next;
};

struct conn {
	struct sftp *s;
	unsigned gen;
	pid_t pid;
	int fd;                         /* our end of ssh's standard input and output */
	int errfd;                      /* its standard error */
	pthread_t reader;
	int has_reader, dead;
	unsigned users;                 /* threads sending on it now: it stays until they are done */
	char last[200];                 /* ssh's last line on standard error */
	size_t lastlen;
	char partial[200];
	struct conn *next;              /* lost ones, to be reaped */
};

struct sftp {
	pthread_mutex_t lock, send_lock;
	pthread_cond_t cond;            /* a reply came, or a connection was lost */
	struct conn *c;                 /* the current one, or NULL */
	struct conn *lost;
	unsigned next_gen;
	uint32_t next_id;
	struct call *calls;             /* in flight */
	int connecting, closing, said_down;
	uint64_t last_try;
	char **argv;                    /* the ssh command, its options and the target */
	size_t argc;
	struct sftp_target t;
	char root[PATH_MAX], name[1400];
	unsigned timeout;
	unsigned ext;
	uint32_t max_read, max_write;
};

const char *sftp_root(const struct sftp *s) { return s->root; }
unsigned sftp_extensions(const struct sftp *s) { return s->ext; }
uint32_t sftp_max_read(const struct sftp *s) { return s->max_read; }
uint32_t sftp_max_write(const struct sftp *s) { return s->max_write; }

/* What ssh said on standard error: keep its last whole line. */
static void drain_stderr(struct conn *c)
{
	char buf[512];
	ssize_t n;

	while ((n = read(c->errfd, buf, sizeof(buf))) > 0) {
		for (ssize_t i = 0; i < n; i++) {
			char ch = buf[i];
			size_t l = strlen(c->partial);
			if (ch == '\n' || ch == '\r') {
				if (l) {
					snprintf(c->last, sizeof(c->last), "%s", c->partial);
					c->partial[0] = 0;
				}
			} else if (l + 1 < sizeof(c->partial) && (unsigned char)ch >= ' ') {
				c->partial[l] = ch;
				c->partial[l + 1] = 0;
			}
		}
	}
}

static const char *ssh_said(struct conn *c)
{
	if (!c->last[0] && c->partial[0])
		snprintf(c->last, sizeof(c->last), "%s", c->partial);
	return c->last[0] ? c->last : NULL;
}

/* K out of S's list of calls (S's lock held). */
static void unlink_locked(struct sftp *s, struct call *k)
{
	for (struct call **p = &s->calls; *p; p = &(*p)->next) {
		if (*p == k) {
			*p = k->next;
			return;
		}
	}
}

/* Lose C: every request on it fails with EIO at once, and ssh is ended
 * (its reader thread reaps it).  WHY is said once, unless closing. */
static void lose_locked(struct sftp *s, struct conn *c, const char *why)
{
	if (c->dead)
		return;
	c->dead = 1;
	if (s->c == c) {
		s->c = NULL;
		c->next = s->lost;
		s->lost = c;
	}
	for (struct call **p = &s->calls; *p;) {
		struct call *k = *p;
		if (k->gen == c->gen && !k->done && k->forgotten) {
			*p = k->next;
			free(k);
			continue;
		}
		if (k->gen == c->gen && !k->done) {
			k->done = 1;
			k->err = EIO;
		}
		p = &k->next;
	}
	shutdown(c->fd, SHUT_RDWR);
	if (c->pid > 0)
		kill(c->pid, SIGTERM);
	pthread_cond_broadcast(&s->cond);
	if (!s->closing && why) {
		k_warn("%s: connection lost (%s): the guest's files there fail (EIO) until it is back", s->name, why);
		s->said_down = 1;
	}
}

static void lose(struct sftp *s, struct conn *c, const char *why)
{
	pthread_mutex_lock(&s->lock);
	lose_locked(s, c, why);
	pthread_mutex_unlock(&s->lock);
}

static uint64_t deadline_of(const struct sftp *s) { return k_now_ns() + (uint64_t)s->timeout * 1000000000ULL; }
/* A new connection (ssh's own handshake, then SFTP's) may take longer
 * than one request: at least 15 s. */
#define HELLO_SECS(s) ((s)->timeout > 15 ? (s)->timeout : 15)

/* Read exactly N bytes from C (with ssh's standard error drained on the
 * way) before DEADLINE (0: none).  0, or -1 with WHY filled. */
static int read_full(struct conn *c, uint8_t *p, size_t n, uint64_t deadline, char *why, size_t cap)
{
	while (n) {
		struct pollfd pf[2] = { { c->fd, POLLIN, 0 }, { c->errfd, POLLIN, 0 } };
		int ms = -1;
		if (deadline) {
			uint64_t now = k_now_ns();
			if (now >= deadline) {
				snprintf(why, cap, "no answer in %u s", c->s->timeout);
				return -1;
			}
			ms = (int)((deadline - now) / 1000000 + 1);
		}
		int r = poll(pf, c->errfd >= 0 ? 2 : 1, ms);
		if (r < 0 && errno != EINTR) {
			snprintf(why, cap, "poll: %s", strerror(errno));
			return -1;
		}
		if (r <= 0)
			continue;
		if (pf[1].revents)
			drain_stderr(c);
		if (!pf[0].revents)
			continue;
		ssize_t k = read(c->fd, p, n);
		if (k < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (k <= 0) {
			int e = errno;
			drain_stderr(c);
			const char *said = ssh_said(c);
			if (said)
				snprintf(why, cap, "%s%s", strncmp(said, "ssh: ", 5) ? "ssh: " : "", said);
			else
				snprintf(why, cap, "%s", k < 0 ? strerror(e) : "ssh ended");
			return -1;
		}
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

/* One packet from C: its type and body (after the length), in a buffer
 * of *BCAP bytes (sftp_reply_free). */
static uint8_t *read_packet(struct conn *c, uint32_t *len, size_t *bcap, uint64_t deadline, char *why,
			    size_t cap)
{
	uint8_t h[4];

	if (read_full(c, h, 4, deadline, why, cap) < 0)
		return NULL;
	*len = k_be32(h);
	if (*len < 1 || *len > PACKET_MAX) {
		snprintf(why, cap, "a packet of %u bytes (at most %u taken)", *len, PACKET_MAX);
		return NULL;
	}
	uint8_t *b = packet_buf(*len, bcap);
	if (read_full(c, b, *len, deadline, why, cap) < 0) {
		packet_free(b, *bcap);
		return NULL;
	}
	return b;
}

static void *reader(void *arg)
{
	struct conn *c = arg;
	struct sftp *s = c->s;
	char why[256];
	uint32_t len;
	size_t bcap;
	uint8_t *b;

	while ((b = read_packet(c, &len, &bcap, 0, why, sizeof(why)))) {
		if (len < 5 || b[0] == SFTP_VERSION || b[0] < SFTP_STATUS) {
			snprintf(why, sizeof(why), "the server sent a packet of type %u where a reply belongs", b[0]);
			free(b);
			break;
		}
		uint32_t id = k_be32(b + 1);
		pthread_mutex_lock(&s->lock);
		struct call *k = s->calls;
		while (k && (k->id != id || k->gen != c->gen))
			k = k->next;
		if (!k || k->done) {
			pthread_mutex_unlock(&s->lock);
			snprintf(why, sizeof(why), "the server answered request %u, which was not asked", id);
			free(b);
			break;
		}
		if (k->forgotten) {
			unlink_locked(s, k);
			pthread_mutex_unlock(&s->lock);
			struct sftp_reply gone = { .buf = b, .cap = bcap };
			sftp_reply_free(&gone);
			free(k);
			continue;
		}
		k->r.type = b[0];
		k->r.buf = b;
		k->r.cap = bcap;
		k->r.in = (struct sftp_in){ b + 5, len - 5, 0 };
		k->done = 1;
		pthread_cond_broadcast(&s->cond);
		pthread_mutex_unlock(&s->lock);
	}
	lose(s, c, why);
	int st;
	while (c->pid > 0 && waitpid(c->pid, &st, 0) < 0 && errno == EINTR)
		;
	return NULL;
}

/* Send a packet of TYPE (ID after it unless INIT) on C: all of it, or -1
 * (the connection is then lost) before the deadline. */
static int send_packet(struct sftp *s, struct conn *c, uint8_t type, uint32_t id, const struct sftp_out *o,
		       const struct iovec *data, unsigned ndata, size_t datalen)
{
	uint8_t h[9];
	size_t hl = type == SFTP_INIT ? 5 : 9;
	uint64_t total = hl - 4 + o->len + datalen;
	struct iovec fixed[8], *v = ndata + 2 <= 8 ? fixed : xmalloc(sizeof(*v) * (ndata + 2));
	unsigned nv = 0;
	char why[128] = "";
	int rc = 0;

	k_put_be32(h, (uint32_t)total);
	h[4] = type;
	k_put_be32(h + 5, id);
	v[nv++] = (struct iovec){ h, hl };
	if (o->len)
		v[nv++] = (struct iovec){ (void *)o->buf, o->len };
	for (unsigned i = 0; i < ndata; i++)
		if (data[i].iov_len)
			v[nv++] = data[i];
	uint64_t deadline = deadline_of(s);
	unsigned at = 0;
	pthread_mutex_lock(&s->send_lock);
	while (at < nv) {
		struct msghdr m = { .msg_iov = v + at, .msg_iovlen = nv - at };
		ssize_t n = sendmsg(c->fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			uint64_t now = k_now_ns();
			if (now >= deadline) {
				snprintf(why, sizeof(why), "nothing taken in %u s", s->timeout);
				rc = -1;
				break;
			}
			struct pollfd pf = { c->fd, POLLOUT, 0 };
			poll(&pf, 1, (int)((deadline - now) / 1000000 + 1));
			continue;
		}
		if (n < 0) {
			snprintf(why, sizeof(why), "%s", strerror(errno));
			rc = -1;
			break;
		}
		while (at < nv && (size_t)n >= v[at].iov_len)
			n -= (ssize_t)v[at++].iov_len;
		if (at < nv) {
			v[at].iov_base = (uint8_t *)v[at].iov_base + n;
			v[at].iov_len -= (size_t)n;
		}
	}
	pthread_mutex_unlock(&s->send_lock);
	if (v != fixed)
		free(v);
	if (rc < 0 && c->has_reader)
		lose(s, c, why);
	return rc;
}

/* Free the lost connections no thread is sending on any more. */
static void reap_lost(struct sftp *s)
{
	pthread_mutex_lock(&s->lock);
	struct conn *l = s->lost, *done = NULL;
	s->lost = NULL;
	while (l) {
		struct conn *next = l->next;
		if (l->users) {
			l->next = s->lost;
			s->lost = l;
		} else {
			l->next = done;
			done = l;
		}
		l = next;
	}
	pthread_mutex_unlock(&s->lock);
	while (done) {
		struct conn *next = done->next;
		if (done->has_reader)
			pthread_join(done->reader, NULL);
		close(done->fd);
		if (done->errfd >= 0)
			close(done->errfd);
		free(done);
		done = next;
	}
}

static struct conn *greet(struct sftp *s, struct conn *c, int interactive, char *why, size_t cap);

/* Start ssh and say hello.  The new connection, or NULL with WHY. */
static struct conn *start(struct sftp *s, int interactive, char *why, size_t cap)
{
	int sv[2], ep[2];
	char **argv = xcalloc(s->argc + 4, sizeof(char *));

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		snprintf(why, cap, "socketpair: %s", strerror(errno));
		free(argv);
		return NULL;
	}
	if (pipe2(ep, O_CLOEXEC) < 0) {
		snprintf(why, cap, "pipe: %s", strerror(errno));
		close(sv[0]);
		close(sv[1]);
		free(argv);
		return NULL;
	}
	/* The command and its options, batch mode unless asking is fine,
	 * then the target: "-s -- HOST sftp". */
	size_t n = 0;
	for (size_t i = 0; i < s->argc; i++) {
		if (!strcmp(s->argv[i], "--") && !interactive)
			argv[n++] = "-oBatchMode=yes";
		argv[n++] = s->argv[i];
	}
	argv[n] = NULL;

	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	sigset_t none, deflt;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, sv[1], 0);
	posix_spawn_file_actions_adddup2(&fa, sv[1], 1);
	posix_spawn_file_actions_adddup2(&fa, ep[1], 2);
	posix_spawnattr_init(&at);
	sigemptyset(&none);
	sigfillset(&deflt);
	sigdelset(&deflt, SIGKILL);
	sigdelset(&deflt, SIGSTOP);
	posix_spawnattr_setsigmask(&at, &none);
	posix_spawnattr_setsigdefault(&at, &deflt);
	/* Once the guest runs, ssh has no terminal: a session of its own. */
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF |
					      (interactive ? 0 : POSIX_SPAWN_SETSID));
	pid_t pid;
	int e = posix_spawnp(&pid, argv[0], &fa, &at, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	close(sv[1]);
	close(ep[1]);
	if (e) {
		snprintf(why, cap, "cannot run %s: %s", argv[0], strerror(e));
		free(argv);
		close(sv[0]);
		close(ep[0]);
		return NULL;
	}
	free(argv);
	fcntl(ep[0], F_SETFL, O_NONBLOCK);
	struct conn *c = xcalloc(1, sizeof(*c));
	c->s = s;
	c->pid = pid;
	c->fd = sv[0];
	c->errfd = ep[0];
	return greet(s, c, interactive, why, cap);
}

/* Say hello on C: INIT, and the server's VERSION with its extensions (a
 * first connection on a terminal waits as long as ssh asks questions);
 * then its reader thread.  C, or NULL (C closed) with WHY. */
static struct conn *greet(struct sftp *s, struct conn *c, int interactive, char *why, size_t cap)
{
	pid_t pid = c->pid;
	struct sftp_out o;
	uint32_t len;
	size_t bcap;
	uint8_t *b = NULL;
	so_init(&o);
	so_u32(&o, 3);
	if (send_packet(s, c, SFTP_INIT, 0, &o, NULL, 0, 0) == 0)
		b = read_packet(c, &len, &bcap, interactive ? 0 : k_now_ns() + (uint64_t)HELLO_SECS(s) * 1000000000ULL, why, cap);
	else
		snprintf(why, cap, "%s", ssh_said(c) ? ssh_said(c) : "ssh did not take the request");
	if (b && (len < 5 || b[0] != SFTP_VERSION || k_be32(b + 1) != 3)) {
		snprintf(why, cap, "not an SFTP version 3 server (its first packet: type %u)", b[0]);
		free(b);
		b = NULL;
	}
	if (!b) {
		if (pid > 0) {
			kill(pid, SIGTERM);
			while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
				;
		}
		drain_stderr(c);
		if (ssh_said(c) && strncmp(why, "ssh: ", 5))
			snprintf(why, cap, "%s%s", strncmp(ssh_said(c), "ssh: ", 5) ? "ssh: " : "", ssh_said(c));
		close(c->fd);
		if (c->errfd >= 0)
			close(c->errfd);
		free(c);
		return NULL;
	}
	struct sftp_in in = { b + 5, len - 5, 0 };
	unsigned ext = 0;
	while (in.n && !in.bad) {
		size_t nl, dl;
		const uint8_t *nm = si_bytes(&in, &nl);
		si_bytes(&in, &dl);
		static const struct { const char *name; unsigned bit; } known[] = {
			{ "posix-rename@openssh.com", SFTP_X_POSIX_RENAME }, { "statvfs@openssh.com", SFTP_X_STATVFS },
			{ "hardlink@openssh.com", SFTP_X_HARDLINK },         { "fsync@openssh.com", SFTP_X_FSYNC },
			{ "limits@openssh.com", SFTP_X_LIMITS },             { "lsetstat@openssh.com", SFTP_X_LSETSTAT },
		};
		for (size_t i = 0; nm && i < sizeof(known) / sizeof(known[0]); i++)
			if (nl == strlen(known[i].name) && !memcmp(nm, known[i].name, nl))
				ext |= known[i].bit;
	}
	free(b);
	s->ext = ext;
	c->gen = ++s->next_gen ? s->next_gen : ++s->next_gen;
	if (pthread_create(&c->reader, NULL, reader, c) != 0) {
		snprintf(why, cap, "no thread for the connection");
		if (pid > 0) {
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
		}
		close(c->fd);
		if (c->errfd >= 0)
			close(c->errfd);
		free(c);
		return NULL;
	}
	c->has_reader = 1;
	return c;
}

/* The current connection, started again if it was lost (one try at a
 * time, at most one a second; others fail at once meanwhile).  Called
 * and returns with the lock held; NULL when there is none. */
static struct conn *current_locked(struct sftp *s)
{
	if (s->c || s->closing || !s->argc)
		return s->c;            /* (no command: attached to a descriptor, no second try) */
	uint64_t now = k_now_ns();
	if (s->connecting || now - s->last_try < 1000000000ULL)
		return NULL;
	s->connecting = 1;
	s->last_try = now;
	pthread_mutex_unlock(&s->lock);
	reap_lost(s);
	char why[256] = "";
	struct conn *c = start(s, 0, why, sizeof(why));
	pthread_mutex_lock(&s->lock);
	s->connecting = 0;
	if (!c) {
		if (s->said_down < 2)
			k_warn("%s: cannot connect again (%s); trying at the next access", s->name, why);
		s->said_down = 2;
		return NULL;
	}
	if (s->said_down)
		k_warn("%s: connected again", s->name);
	s->said_down = 0;
	s->c = c;
	return c;
}

struct sftp_call *sftp_send(struct sftp *s, uint8_t type, const struct sftp_out *o, const struct iovec *data,
			    unsigned ndata, size_t datalen, unsigned gen, int *err)
{
	if (o->over || o->len + datalen > PACKET_MAX - 64) {
		*err = ENAMETOOLONG;
		return NULL;
	}
	pthread_mutex_lock(&s->lock);
	struct conn *c = current_locked(s);
	if (!c || (gen && c->gen != gen)) {
		pthread_mutex_unlock(&s->lock);
		*err = EIO;
		return NULL;
	}
	struct call *k = xcalloc(1, sizeof(*k));
	k->id = s->next_id++;
	k->gen = c->gen;
	k->next = s->calls;
	s->calls = k;
	c->users++;
	pthread_mutex_unlock(&s->lock);
	send_packet(s, c, type, k->id, o, data, ndata, datalen);       /* a failure fails K too */
	pthread_mutex_lock(&s->lock);
	c->users--;
	pthread_mutex_unlock(&s->lock);
	return (struct sftp_call *)k;
}

int sftp_wait(struct sftp *s, struct sftp_call *sc, struct sftp_reply *r)
{
	struct call *k = (struct call *)sc;
	uint64_t deadline = deadline_of(s);
	struct timespec ts = { (time_t)(deadline / 1000000000ULL), (long)(deadline % 1000000000ULL) };

	pthread_mutex_lock(&s->lock);
	while (!k->done) {
		if (pthread_cond_timedwait(&s->cond, &s->lock, &ts) == ETIMEDOUT && !k->done) {
			char why[64];
			snprintf(why, sizeof(why), "no answer in %u s", s->timeout);
			if (s->c && s->c->gen == k->gen)
				lose_locked(s, s->c, why);
			k->done = 1;
			k->err = EIO;
		}
	}
	unlink_locked(s, k);
	pthread_mutex_unlock(&s->lock);
	int e = k->err;
	if (e)
		sftp_reply_free(&k->r);
	else
		*r = k->r;
	free(k);
	return e;
}

void sftp_forget(struct sftp *s, struct sftp_call *sc)
{
	struct call *k = (struct call *)sc;
	if (!k)
		return;
	pthread_mutex_lock(&s->lock);
	if (!k->done) {
		k->forgotten = 1;
		k = NULL;
	} else {
		unlink_locked(s, k);
	}
	pthread_mutex_unlock(&s->lock);
	if (k) {
		sftp_reply_free(&k->r);
		free(k);
	}
}

unsigned sftp_call_gen(const struct sftp_call *c)
{
	return ((const struct call *)c)->gen;
}

int sftp_call(struct sftp *s, uint8_t type, const struct sftp_out *o, unsigned gen, struct sftp_reply *r)
{
	int e;
	struct sftp_call *c = sftp_send(s, type, o, NULL, 0, 0, gen, &e);
	return c ? sftp_wait(s, c, r) : e;
}

int sftp_status_errno(struct sftp_reply *r)
{
	if (r->type != SFTP_STATUS)
		return EIO;
	struct sftp_in in = r->in;
	uint32_t code = si_u32(&in);
	if (in.bad)
		return EIO;
	switch (code) {
	case SFTP_OK: return 0;
	case SFTP_EOF: return ENODATA;
	case SFTP_NO_SUCH_FILE: return ENOENT;
	case SFTP_PERMISSION_DENIED: return EACCES;
	case SFTP_BAD_MESSAGE: return EINVAL;
	case SFTP_OP_UNSUPPORTED: return EOPNOTSUPP;
	case 6: case 7: return EIO;     /* no connection, connection lost */
	}
	return EIO;                     /* FAILURE: the caller may know better */
}

/* A STATUS's code, or -1. */
static int status_code(const struct sftp_reply *r)
{
	struct sftp_in in = r->in;
	uint32_t code = si_u32(&in);
	return r->type == SFTP_STATUS && !in.bad ? (int)code : -1;
}

int sftp_reply_ok(struct sftp_reply *r)
{
	return status_code(r) == SFTP_FAILURE ? -1 : sftp_status_errno(r);
}

int sftp_reply_handle(struct sftp_reply *r, uint8_t *h, size_t *hlen)
{
	if (r->type != SFTP_HANDLE) {
		int e = sftp_reply_ok(r);
		return e ? e : EIO;
	}
	struct sftp_in in = r->in;
	size_t n;
	const uint8_t *p = si_bytes(&in, &n);
	if (!p || n == 0 || n > 256)
		return EIO;
	memcpy(h, p, n);
	*hlen = n;
	return 0;
}

int sftp_reply_attr(struct sftp_reply *r, struct sftp_attr *a)
{
	if (r->type != SFTP_ATTRS) {
		int e = sftp_reply_ok(r);
		return e ? e : EIO;
	}
	struct sftp_in in = r->in;
	si_attr(&in, a);
	return in.bad ? EIO : 0;
}

int sftp_wait_ok(struct sftp *s, struct sftp_call *c, int e)
{
	struct sftp_reply r;
	if (!c || (e = sftp_wait(s, c, &r)))
		return e ? e : EIO;
	e = sftp_reply_ok(&r);
	sftp_reply_free(&r);
	return e;
}

int sftp_wait_handle(struct sftp *s, struct sftp_call *c, int e, uint8_t *h, size_t *hlen, unsigned *gen)
{
	struct sftp_reply r;
	if (!c)
		return e ? e : EIO;
	unsigned g = sftp_call_gen(c);
	if ((e = sftp_wait(s, c, &r)))
		return e;
	e = sftp_reply_handle(&r, h, hlen);
	if (!e)
		*gen = g;               /* the connection it is good on */
	sftp_reply_free(&r);
	return e;
}

int sftp_wait_attr(struct sftp *s, struct sftp_call *c, int e, struct sftp_attr *a)
{
	struct sftp_reply r;
	if (!c || (e = sftp_wait(s, c, &r)))
		return e ? e : EIO;
	e = sftp_reply_attr(&r, a);
	sftp_reply_free(&r);
	return e;
}

int sftp_expect_ok(struct sftp *s, uint8_t type, const struct sftp_out *o, unsigned gen)
{
	int e;
	struct sftp_call *c = sftp_send(s, type, o, NULL, 0, 0, gen, &e);
	return sftp_wait_ok(s, c, e);
}

int sftp_expect_handle(struct sftp *s, uint8_t type, const struct sftp_out *o, uint8_t *h, size_t *hlen,
		       unsigned *gen)
{
	int e;
	struct sftp_call *c = sftp_send(s, type, o, NULL, 0, 0, 0, &e);
	return sftp_wait_handle(s, c, e, h, hlen, gen);
}

int sftp_expect_attr(struct sftp *s, uint8_t type, const struct sftp_out *o, unsigned gen, struct sftp_attr *a)
{
	int e;
	struct sftp_call *c = sftp_send(s, type, o, NULL, 0, 0, gen, &e);
	return sftp_wait_attr(s, c, e, a);
}

/* ---- the session */

/* Split CMD at blanks into S's argv, then add the options and target. */
static void build_argv(struct sftp *s, const char *cmd, const struct sftp_target *t)
{
	char *copy = xstrdup(cmd && *cmd ? cmd : "ssh"), *save = NULL;
	size_t cap = 32;
	char opt[64];

	s->argv = xcalloc(cap, sizeof(char *));
	for (char *w = strtok_r(copy, " \t", &save); w; w = strtok_r(NULL, " \t", &save)) {
		if (s->argc + 16 >= cap)
			s->argv = xrealloc(s->argv, (cap *= 2) * sizeof(char *));
		s->argv[s->argc++] = xstrdup(w);
	}
	free(copy);
	/* No X11 or agent forwarding, nothing forwarded; a dead server is
	 * noticed by ssh too. */
	static const char *const fixed[] = { "-x", "-a", "-oClearAllForwardings=yes", "-oServerAliveCountMax=3" };
	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
		s->argv[s->argc++] = xstrdup(fixed[i]);
	snprintf(opt, sizeof(opt), "-oServerAliveInterval=%u", s->timeout / 3 ? s->timeout / 3 : 1);
	s->argv[s->argc++] = xstrdup(opt);
	snprintf(opt, sizeof(opt), "-oConnectTimeout=%u", HELLO_SECS(s));
	s->argv[s->argc++] = xstrdup(opt);
	if (t->port) {
		snprintf(opt, sizeof(opt), "-p%u", t->port);
		s->argv[s->argc++] = xstrdup(opt);
	}
	if (t->user[0]) {
		s->argv[s->argc++] = xstrdup("-l");
		s->argv[s->argc++] = xstrdup(t->user);
	}
	s->argv[s->argc++] = xstrdup("-s");
	s->argv[s->argc++] = xstrdup("--");
	s->argv[s->argc++] = xstrdup(t->host);
	s->argv[s->argc++] = xstrdup("sftp");
}

static struct sftp *session_new(const char *path, unsigned timeout)
{
	struct sftp *s = xcalloc(1, sizeof(*s));
	pthread_condattr_t ca;

	pthread_mutex_init(&s->lock, NULL);
	pthread_mutex_init(&s->send_lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&s->cond, &ca);
	pthread_condattr_destroy(&ca);
	snprintf(s->t.path, sizeof(s->t.path), "%s", path);
	s->timeout = timeout ? timeout : 20;
	s->next_id = 1;
	s->max_read = s->max_write = 32768;
	return s;
}

static int setup(struct sftp *s);

/* S on its first connection C (NULL: it failed, WHY says how), set up;
 * or NULL with k_seterr(), S closed. */
static struct sftp *session_open(struct sftp *s, struct conn *c, const char *why)
{
	if (!(s->c = c)) {
		k_seterr("%s: %s", s->name, why);
		sftp_close(s);
		return NULL;
	}
	if (setup(s) < 0) {
		sftp_close(s);
		return NULL;
	}
	return s;
}

struct sftp *sftp_connect(const struct sftp_target *t, const char *ssh_command, unsigned timeout,
			  int interactive)
{
	struct sftp *s = session_new(t->path, timeout);
	char why[256] = "";

	s->t = *t;
	/* (The URL as given: an absolute path, or one below the home.) */
	const char *home = t->path[0] == '/' ? "" : !strcmp(t->path, ".") ? "~" : "~/";
	const char *rest = !strcmp(t->path, ".") ? "" : t->path;
	char port[16] = "";
	if (t->port)
		snprintf(port, sizeof(port), ":%u", t->port);
	snprintf(s->name, sizeof(s->name), "ssh://%s%s%s%s%s%s%s", t->user, t->user[0] ? "@" : "",
		 strchr(t->host, ':') ? "[" : "", t->host, strchr(t->host, ':') ? "]" : "", port,
		 *home ? "/" : "");
	size_t nl = strlen(s->name);
	snprintf(s->name + nl, sizeof(s->name) - nl, "%s%s", home, rest);
	build_argv(s, ssh_command, t);
	struct conn *c = start(s, interactive, why, sizeof(why));
	return session_open(s, c, why);
}

struct sftp *sftp_attach(int fd, const char *name, const char *path, unsigned timeout)
{
	struct sftp *s = session_new(path, timeout);
	struct conn *c = xcalloc(1, sizeof(*c));
	char why[256] = "";

	snprintf(s->name, sizeof(s->name), "%s", name);
	c->s = s;
	c->fd = fd;
	c->errfd = -1;
	c = greet(s, c, 0, why, sizeof(why));
	return session_open(s, c, why);
}

/* The server's limits, and the root: resolved, a directory.  0, or -1
 * with k_seterr(). */
static int setup(struct sftp *s)
{
	const struct sftp_target *t = &s->t;
	struct sftp_out o;
	struct sftp_reply r;
	if (s->ext & SFTP_X_LIMITS) {
		so_init(&o);
		so_str(&o, "limits@openssh.com");
		if (sftp_call(s, SFTP_EXTENDED, &o, 0, &r) == 0) {
			struct sftp_in in = r.in;
			uint64_t packet = si_u64(&in), rd = si_u64(&in), wr = si_u64(&in);
			if (r.type == SFTP_EXTENDED_REPLY && !in.bad) {
				/* Within what a packet holds, and what we take. */
				uint64_t cap = packet > 1024 && packet - 1024 < (1u << 20) ? packet - 1024 : (1u << 20);
				s->max_read = (uint32_t)(rd && rd < cap ? rd : cap);
				s->max_write = (uint32_t)(wr && wr < cap ? wr : cap);
			}
			sftp_reply_free(&r);
		}
	}
	so_init(&o);
	so_str(&o, t->path);
	int e = sftp_call(s, SFTP_REALPATH, &o, 0, &r);
	if (e)
		return k_seterr("%s: the connection ended at once", s->name);
	struct sftp_in in = r.in;
	uint32_t count = si_u32(&in);
	size_t n;
	const uint8_t *p = si_bytes(&in, &n);
	if (r.type != SFTP_NAME || in.bad || count < 1 || !p || n == 0 || n >= sizeof(s->root) || p[0] != '/' ||
	    memchr(p, 0, n)) {
		e = r.type == SFTP_STATUS ? sftp_status_errno(&r) : 0;
		sftp_reply_free(&r);
		return k_seterr("%s: %s", s->name, e == ENOENT ? "no such directory on the server"
						    : e ? strerror(e) : "the server did not resolve the path");
	}
	memcpy(s->root, p, n);
	s->root[n] = 0;
	sftp_reply_free(&r);
	struct sftp_attr a;
	so_init(&o);
	so_str(&o, s->root);
	e = sftp_expect_attr(s, SFTP_STAT, &o, 0, &a);
	if (e || !(a.flags & SFTP_A_PERM) || (a.perm & 0170000) != 0040000)
		return k_seterr("%s: %s", s->name, e == ENOENT ? "no such directory on the server"
						    : e > 0 ? strerror(e) : e < 0 ? "cannot see it" : "not a directory");
	return 0;
}

void sftp_close(struct sftp *s)
{
	if (!s)
		return;
	pthread_mutex_lock(&s->lock);
	s->closing = 1;
	if (s->c)
		lose_locked(s, s->c, NULL);
	pthread_mutex_unlock(&s->lock);
	reap_lost(s);
	for (size_t i = 0; i < s->argc; i++)
		free(s->argv[i]);
	free(s->argv);
	pthread_cond_destroy(&s->cond);
	pthread_mutex_destroy(&s->lock);
	pthread_mutex_destroy(&s->send_lock);
	free(s);
}
