#include "remote/http.h"
#include "core/err.h"
#include "core/sys.h"
#include "core/xio.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---- URLs */

int url_is_http(const char *s)
{
	return !strncasecmp(s, "http://", 7) || !strncasecmp(s, "https://", 8);
}

int url_parse(struct url *u, const char *s)
{
	memset(u, 0, sizeof(*u));
	if (!strncasecmp(s, "https://", 8))
		return k_seterr("%s: https is not spoken here; serve the image over http (every chunk is"
				" checked against the index's hashes, so the transport need not be trusted)", s);
	if (strncasecmp(s, "http://", 7))
		return k_seterr("%s: not an http:// URL", s);
	const char *p = s + 7, *end = p + strcspn(p, "/#?");
	const char *hash = strchr(s, '#');
	if (strlen(s) >= HTTP_URL_MAX)
		return k_seterr("%.60s...: a URL longer than %d bytes", s, HTTP_URL_MAX - 1);
	if (memchr(p, '@', (size_t)(end - p)))
		return k_seterr("%s: user names and passwords in URLs are not supported", s);
	const char *port = NULL, *hend = end;
	if (*p == '[') {
		const char *rb = memchr(p, ']', (size_t)(end - p));
		if (!rb || rb - p - 1 >= (long)sizeof(u->host) || rb == p + 1)
			return k_seterr("%s: a malformed [IPv6] host", s);
		memcpy(u->host, p + 1, (size_t)(rb - p - 1));
		if (!strchr(u->host, ':') || u->host[strspn(u->host, "0123456789abcdefABCDEF:.")])
			return k_seterr("%s: a malformed [IPv6] host", s);
		if (rb + 1 < end) {
			if (rb[1] != ':')
				return k_seterr("%s: a malformed [IPv6] host", s);
			port = rb + 2;
		}
	} else {
		const char *c = memchr(p, ':', (size_t)(end - p));
		if (c) {
			port = c + 1;
			hend = c;
		}
		if (hend == p || hend - p >= (long)sizeof(u->host))
			return k_seterr("%s: no host name, or one too long", s);
		memcpy(u->host, p, (size_t)(hend - p));
		for (const char *c2 = u->host; *c2; c2++)
			if (!(*c2 == '-' || *c2 == '.' || *c2 == '_' || (*c2 >= '0' && *c2 <= '9') ||
			      (*c2 >= 'a' && *c2 <= 'z') || (*c2 >= 'A' && *c2 <= 'Z')))
				return k_seterr("%s: '%c' in the host name", s, *c2);
	}
	if (port) {
		size_t n = (size_t)(end - port);
		unsigned long v = 0;
		if (n == 0 || n > 5)
			return k_seterr("%s: a malformed port", s);
		for (size_t i = 0; i < n; i++) {
			if (port[i] < '0' || port[i] > '9')
				return k_seterr("%s: a malformed port", s);
			v = v * 10 + (unsigned long)(port[i] - '0');
		}
		if (v == 0 || v > 65535)
			return k_seterr("%s: port %lu is out of range", s, v);
		snprintf(u->port, sizeof(u->port), "%lu", v);
	} else {
		snprintf(u->port, sizeof(u->port), "80");
	}
	size_t plen = hash ? (size_t)(hash - end) : strlen(end);
	if (*end == '/' || *end == '?') {
		if (*end == '?')
			u->path[0] = '/';
		memcpy(u->path + (*end == '?'), end, plen);
	} else {
		u->path[0] = '/';
	}
	for (const char *c = u->path; *c; c++)
		if ((unsigned char)*c <= ' ' || *c == 0x7f)
			return k_seterr("%s: a space or control character in the path (write it as %%XX)", s);
	if (hash) {
		if (strlen(hash + 1) >= sizeof(u->frag))
			return k_seterr("%s: the fragment after '#' is too long", s);
		snprintf(u->frag, sizeof(u->frag), "%s", hash + 1);
	}
	return 0;
}

void url_format(const struct url *u, char *buf, size_t cap)
{
	int v6 = strchr(u->host, ':') != NULL;
	snprintf(buf, cap, "http://%s%s%s%s%s%s", v6 ? "[" : "", u->host, v6 ? "]" : "",
		 strcmp(u->port, "80") ? ":" : "", strcmp(u->port, "80") ? u->port : "", u->path);
}

/* ---- the head of a response */

static int parse_u64(const char *s, size_t n, uint64_t *out)
{
	uint64_t v = 0;
	if (n == 0 || n > 19)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	*out = v;
	return 0;
}

/* Does the comma-separated list V[0..N) hold TOKEN (any case)? */
static int has_token(const char *v, size_t n, const char *token)
{
	size_t t = strlen(token), i = 0;
	while (i < n) {
		while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
			i++;
		size_t j = i;
		while (j < n && v[j] != ',')
			j++;
		size_t e = j;
		while (e > i && (v[e - 1] == ' ' || v[e - 1] == '\t'))
			e--;
		if (e - i == t && !strncasecmp(v + i, token, t))
			return 1;
		i = j;
	}
	return 0;
}

int http_parse_head(struct http_resp *r, const char *buf, size_t n)
{
	memset(r, 0, sizeof(*r));
	const char *end = NULL;
	for (size_t i = 0; i + 1 < n; i++) {
		if (buf[i] == '\n' && buf[i + 1] == '\n') {
			end = buf + i + 2;
			break;
		}
		if (buf[i] == '\n' && i + 2 < n && buf[i + 1] == '\r' && buf[i + 2] == '\n') {
			end = buf + i + 3;
			break;
		}
	}
	if (!end)
		return n >= HTTP_HEAD_MAX ? k_seterr("a response head longer than %d bytes", HTTP_HEAD_MAX) : 0;
	if ((size_t)(end - buf) > HTTP_HEAD_MAX)
		return k_seterr("a response head longer than %d bytes", HTTP_HEAD_MAX);
	/* Status line: HTTP/1.x NNN reason */
	if ((size_t)(end - buf) < 12 || memcmp(buf, "HTTP/1.", 7) || (buf[7] != '0' && buf[7] != '1') ||
	    buf[8] != ' ' || buf[9] < '1' || buf[9] > '5' || buf[10] < '0' || buf[10] > '9' || buf[11] < '0' ||
	    buf[11] > '9' || (buf[12] != ' ' && buf[12] != '\r' && buf[12] != '\n'))
		return k_seterr("not an HTTP/1.x response");
	r->minor = buf[7] - '0';
	r->status = (buf[9] - '0') * 100 + (buf[10] - '0') * 10 + (buf[11] - '0');
	r->keep_alive = r->minor == 1;
	const char *p = memchr(buf, '\n', (size_t)(end - buf)) + 1;
	int seen_length = 0;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *le = nl > p && nl[-1] == '\r' ? nl - 1 : nl;
		if (le == p)
			break;                  /* the empty line */
		if (*p == ' ' || *p == '\t')
			return k_seterr("a folded header line (obsolete, refused)");
		const char *colon = memchr(p, ':', (size_t)(le - p));
		if (!colon || colon == p)
			return k_seterr("a header line without a name: '%.*s'", (int)(le - p < 40 ? le - p : 40), p);
		for (const char *c = p; c < colon; c++)
			if (*c <= ' ' || *c >= 0x7f)
				return k_seterr("a malformed header name: '%.*s'", (int)(colon - p), p);
		size_t nlen = (size_t)(colon - p);
		const char *v = colon + 1;
		while (v < le && (*v == ' ' || *v == '\t'))
			v++;
		const char *ve = le;
		while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
			ve--;
		size_t vlen = (size_t)(ve - v);
		for (const char *c = v; c < ve; c++)
			if ((unsigned char)*c < ' ' && *c != '\t')
				return k_seterr("a control character in header '%.*s'", (int)nlen, p);
#define IS(name) (nlen == sizeof(name) - 1 && !strncasecmp(p, name, nlen))
		if (IS("Content-Length")) {
			uint64_t l;
			if (parse_u64(v, vlen, &l) < 0)
				return k_seterr("a malformed Content-Length: '%.*s'", (int)vlen, v);
			if (seen_length && l != r->length)
				return k_seterr("two different Content-Length fields");
			r->length = l;
			r->has_length = seen_length = 1;
		} else if (IS("Transfer-Encoding")) {
			if (!has_token(v, vlen, "chunked") || vlen != 7)
				return k_seterr("a transfer coding other than chunked: '%.*s'", (int)vlen, v);
			r->chunked = 1;
		} else if (IS("Connection")) {
			if (has_token(v, vlen, "close"))
				r->keep_alive = 0;
			else if (has_token(v, vlen, "keep-alive"))
				r->keep_alive = 1;
		} else if (IS("Content-Range")) {
			/* bytes FIRST-LAST/TOTAL, or bytes * /TOTAL (with 416) */
			if (vlen < 6 || strncasecmp(v, "bytes ", 6))
				return k_seterr("a malformed Content-Range: '%.*s'", (int)vlen, v);
			const char *a = v + 6, *dash = memchr(a, '-', (size_t)(ve - a)),
				   *slash = memchr(a, '/', (size_t)(ve - a));
			if (!slash)
				return k_seterr("a malformed Content-Range: '%.*s'", (int)vlen, v);
			if (slash - a == 1 && *a == '*') {
				r->has_range = 0;
			} else {
				if (!dash || dash > slash || parse_u64(a, (size_t)(dash - a), &r->first) < 0 ||
				    parse_u64(dash + 1, (size_t)(slash - dash - 1), &r->last) < 0 || r->last < r->first)
					return k_seterr("a malformed Content-Range: '%.*s'", (int)vlen, v);
				r->has_range = 1;
			}
			if (ve - slash == 2 && slash[1] == '*')
				r->total = 0;
			else if (parse_u64(slash + 1, (size_t)(ve - slash - 1), &r->total) < 0 ||
				 (r->has_range && r->last >= r->total))
				return k_seterr("a malformed Content-Range: '%.*s'", (int)vlen, v);
		} else if (IS("Location")) {
			if (vlen >= sizeof(r->location))
				return k_seterr("a Location longer than %zu bytes", sizeof(r->location) - 1);
			memcpy(r->location, v, vlen);
			r->location[vlen] = 0;
		}
#undef IS
		p = nl + 1;
	}
	if (r->chunked)
		r->has_length = 0;      /* the coding wins (RFC 9112, 6.3) */
	return (int)(end - buf);
}

/* ---- chunked transfer coding */

enum { CH_SIZE, CH_EXT, CH_SIZE_LF, CH_DATA, CH_DATA_CR, CH_DATA_LF, CH_TRAILER, CH_TRAILER_LINE, CH_END_LF };

int http_chunked_feed(struct http_chunked *c, uint8_t *in, size_t *n, size_t *used)
{
	size_t i = 0, out = 0, len = *n;

	while (i < len && !c->done) {
		uint8_t b = in[i];
		switch (c->state) {
		case CH_SIZE: {
			int d = b >= '0' && b <= '9' ? b - '0' : b >= 'a' && b <= 'f' ? b - 'a' + 10 :
				b >= 'A' && b <= 'F' ? b - 'A' + 10 : -1;
			if (d >= 0) {
				if (++c->digits > 15)
					return k_seterr("a chunk size of more than 15 hex digits");
				c->left = c->left * 16 + (uint64_t)d;
			} else if (c->digits && (b == ';' || b == ' ' || b == '\t')) {
				c->state = CH_EXT;
			} else if (c->digits && b == '\r') {
				c->state = CH_SIZE_LF;
			} else if (c->digits && b == '\n') {
				c->state = c->left ? CH_DATA : CH_TRAILER;
			} else {
				return k_seterr("a malformed chunk size");
			}
			i++;
			break;
		}
		case CH_EXT:
			if (b == '\n')
				c->state = c->left ? CH_DATA : CH_TRAILER;
			else if (b == '\r')
				c->state = CH_SIZE_LF;
			i++;
			break;
		case CH_SIZE_LF:
			if (b != '\n')
				return k_seterr("a chunk size line not ended by CRLF");
			c->state = c->left ? CH_DATA : CH_TRAILER;
			i++;
			break;
		case CH_DATA: {
			size_t take = len - i;
			if (take > c->left)
				take = (size_t)c->left;
			memmove(in + out, in + i, take);
			out += take;
			i += take;
			c->left -= take;
			if (!c->left)
				c->state = CH_DATA_CR;
			break;
		}
		case CH_DATA_CR:
			if (b == '\r')
				c->state = CH_DATA_LF;
			else if (b == '\n')
				c->state = CH_SIZE, c->digits = 0;
			else
				return k_seterr("a chunk longer than its size");
			i++;
			break;
		case CH_DATA_LF:
			if (b != '\n')
				return k_seterr("a chunk longer than its size");
			c->state = CH_SIZE;
			c->digits = 0;
			i++;
			break;
		case CH_TRAILER:        /* at the start of a trailer line */
			if (b == '\r')
				c->state = CH_END_LF;
			else if (b == '\n')
				c->done = 1;
			else
				c->state = CH_TRAILER_LINE;
			i++;
			break;
		case CH_TRAILER_LINE:
			if (b == '\n')
				c->state = CH_TRAILER;
			i++;
			break;
		case CH_END_LF:
			if (b != '\n')
				return k_seterr("a malformed chunked trailer");
			c->done = 1;
			i++;
			break;
		}
	}
	*n = out;
	*used = i;
	return 0;
}

/* ---- connections */

struct conn {
	int fd;
	char key[300];          /* host and port it is connected to */
	uint8_t buf[HTTP_HEAD_MAX];
	size_t pos, len;        /* unread bytes at buf[pos..len) */
	struct conn *next;
};

struct http {
	struct http_opts o;
	struct url proxy;
	int has_proxy;
	char no_proxy[1024];
	pthread_mutex_t lock;
	struct conn *idle;
	int nidle;
};

struct http *http_new(const struct http_opts *o)
{
	struct http *h = xcalloc(1, sizeof(*h));
	h->o = *o;
	if (!h->o.connect_timeout_ms)
		h->o.connect_timeout_ms = 10000;
	if (!h->o.idle_timeout_ms)
		h->o.idle_timeout_ms = 20000;
	pthread_mutex_init(&h->lock, NULL);
	const char *px = o->no_proxy_env ? NULL : getenv("http_proxy");
	if (px && *px) {
		char full[HTTP_URL_MAX];
		snprintf(full, sizeof(full), "%s%s", strstr(px, "://") ? "" : "http://", px);
		if (url_parse(&h->proxy, full) < 0)
			k_warn("http_proxy: %s; not used", k_errmsg());
		else
			h->has_proxy = 1;
	}
	const char *np = o->no_proxy_env ? NULL : getenv("no_proxy");
	if (np)
		snprintf(h->no_proxy, sizeof(h->no_proxy), "%s", np);
	return h;
}

void http_free(struct http *h)
{
	if (!h)
		return;
	while (h->idle) {
		struct conn *c = h->idle;
		h->idle = c->next;
		close(c->fd);
		free(c);
	}
	pthread_mutex_destroy(&h->lock);
	free(h);
}

/* Does no_proxy exempt HOST?  Entries: "*", a name (matching it and its
 * subdomains, with or without a leading dot), an address. */
static int proxy_exempt(const struct http *h, const char *host)
{
	const char *p = h->no_proxy;
	size_t hl = strlen(host);
	while (*p) {
		p += strspn(p, ", ");
		size_t n = strcspn(p, ", ");
		if (n == 1 && *p == '*')
			return 1;
		const char *e = p;
		size_t en = n;
		if (en && *e == '.')
			e++, en--;
		if (en && en <= hl && !strncasecmp(host + hl - en, e, en) &&
		    (en == hl || host[hl - en - 1] == '.'))
			return 1;
		p += n;
	}
	return 0;
}

static int wait_fd(int fd, short ev, int ms)
{
	struct pollfd p = { fd, ev, 0 };
	for (;;) {
		int r = poll(&p, 1, ms);
		if (r < 0 && errno == EINTR)
			continue;
		return r;
	}
}

static struct conn *conn_open(struct http *h, const char *host, const char *port, const char *what)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_ADDRCONFIG }, *ai, *a;
	int r = getaddrinfo(host, port, &hints, &ai);
	if (r) {
		k_seterr("%s: cannot find host %s: %s", what, host, gai_strerror(r));
		return NULL;
	}
	int fd = -1;
	for (a = ai; a; a = a->ai_next) {
		fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol);
		if (fd < 0)
			continue;
		if (connect(fd, a->ai_addr, a->ai_addrlen) == 0)
			break;
		if (errno == EINPROGRESS) {
			int err = 0;
			socklen_t el = sizeof(err);
			r = wait_fd(fd, POLLOUT, h->o.connect_timeout_ms);
			if (r == 0) {
				errno = ETIMEDOUT;
			} else if (r > 0 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) == 0 && !err) {
				break;
			} else if (err) {
				errno = err;
			}
		}
		int e = errno;
		close(fd);
		fd = -1;
		errno = e;
	}
	freeaddrinfo(ai);
	if (fd < 0) {
		k_seterr("%s: cannot connect to %s port %s:", what, host, port);
		return NULL;
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	struct conn *c = xcalloc(1, sizeof(*c));
	c->fd = fd;
	snprintf(c->key, sizeof(c->key), "%s:%s", host, port);
	return c;
}

/* An idle connection to KEY, or NULL. */
static struct conn *conn_take(struct http *h, const char *key)
{
	pthread_mutex_lock(&h->lock);
	struct conn **pp = &h->idle, *c = NULL;
	for (; *pp; pp = &(*pp)->next) {
		if (!strcmp((*pp)->key, key)) {
			c = *pp;
			*pp = c->next;
			h->nidle--;
			break;
		}
	}
	pthread_mutex_unlock(&h->lock);
	return c;
}

static void conn_give(struct http *h, struct conn *c)
{
	pthread_mutex_lock(&h->lock);
	if (h->nidle >= 16) {
		pthread_mutex_unlock(&h->lock);
		close(c->fd);
		free(c);
		return;
	}
	c->next = h->idle;
	h->idle = c;
	h->nidle++;
	pthread_mutex_unlock(&h->lock);
}

static void conn_drop(struct conn *c)
{
	if (c) {
		close(c->fd);
		free(c);
	}
}

static int send_all(struct http *h, struct conn *c, const char *buf, size_t n, const char *what)
{
	while (n) {
		if (wait_fd(c->fd, POLLOUT, h->o.idle_timeout_ms) <= 0)
			return k_seterr("%s: timed out sending the request", what);
		ssize_t w = send(c->fd, buf, n, MSG_NOSIGNAL);
		if (w < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (w <= 0)
			return k_seterr("%s: sending the request:", what);
		buf += w;
		n -= (size_t)w;
	}
	return 0;
}

/* More bytes into C's buffer (which must have room); 0 at end of stream. */
static ssize_t fill(struct http *h, struct conn *c, const char *what)
{
	if (c->pos == c->len)
		c->pos = c->len = 0;
	if (wait_fd(c->fd, POLLIN, h->o.idle_timeout_ms) == 0) {
		k_seterr("%s: no answer for %d s (timed out)", what, h->o.idle_timeout_ms / 1000);
		return -1;
	}
	for (;;) {
		ssize_t r = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && errno == EAGAIN) {
			if (wait_fd(c->fd, POLLIN, h->o.idle_timeout_ms) == 0) {
				k_seterr("%s: no answer for %d s (timed out)", what, h->o.idle_timeout_ms / 1000);
				return -1;
			}
			continue;
		}
		if (r < 0) {
			k_seterr("%s: receiving:", what);
			return -1;
		}
		c->len += (size_t)r;
		return r;
	}
}

/* Body bytes into OUT (room for CAP): from the buffer first, then the
 * socket straight into OUT.  Returns bytes, 0 at end of stream, -1. */
static ssize_t body_read(struct http *h, struct conn *c, uint8_t *out, size_t cap, const char *what)
{
	if (c->pos < c->len) {
		size_t n = c->len - c->pos < cap ? c->len - c->pos : cap;
		memcpy(out, c->buf + c->pos, n);
		c->pos += n;
		return (ssize_t)n;
	}
	for (;;) {
		if (wait_fd(c->fd, POLLIN, h->o.idle_timeout_ms) == 0) {
			k_seterr("%s: the body stalled for %d s (timed out)", what, h->o.idle_timeout_ms / 1000);
			return -1;
		}
		ssize_t r = recv(c->fd, out, cap, 0);
		if (r < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (r < 0)
			k_seterr("%s: receiving:", what);
		return r;
	}
}

/* One request: what it asks for and where its body goes. */
struct xfer {
	const char *what;       /* the URL, for messages */
	uint64_t off;           /* a range of LEN bytes into BUF ... */
	size_t len;
	void *buf;
	uint8_t **whole;        /* ... or (LEN 0) the whole body, malloc'ed, at most CAP */
	size_t *whole_len, cap;
	uint64_t *bytes;        /* body bytes received, added to */
};

/* The request line and headers, sent on C. */
static int send_request(struct http *h, struct conn *c, const struct url *u, int proxied, const struct xfer *x)
{
	char req[HTTP_URL_MAX + 512], target[HTTP_URL_MAX + 300];

	if (proxied)
		url_format(u, target, sizeof(target));
	else
		snprintf(target, sizeof(target), "%s", u->path);
	int v6 = strchr(u->host, ':') != NULL;
	int n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: %s%s%s%s%s\r\nUser-Agent: umlk/1\r\n"
			 "Accept-Encoding: identity\r\n", target, v6 ? "[" : "", u->host, v6 ? "]" : "",
			 strcmp(u->port, "80") ? ":" : "", strcmp(u->port, "80") ? u->port : "");
	if (x->len)
		n += snprintf(req + n, sizeof(req) - (size_t)n, "Range: bytes=%" PRIu64 "-%" PRIu64 "\r\n", x->off,
			      x->off + x->len - 1);
	n += snprintf(req + n, sizeof(req) - (size_t)n, "\r\n");
	if (h->o.verbose)
		fprintf(stderr, "%s: GET %s%s", k_progname, x->what, x->len ? "" : "\n");
	if (h->o.verbose && x->len)
		fprintf(stderr, " bytes %" PRIu64 "-%" PRIu64 "\n", x->off, x->off + x->len - 1);
	return send_all(h, c, req, (size_t)n, x->what);
}

/* The answer's head into *R: HTTP_OK, or HTTP_RETRY/HTTP_FATAL with
 * k_seterr(). */
static int read_head(struct http *h, struct conn *c, struct http_resp *r, const char *what)
{
	for (;;) {
		int hl = http_parse_head(r, (char *)c->buf + c->pos, c->len - c->pos);
		if (hl < 0)
			return k_seterr("%s: %s", what, k_errmsg()), HTTP_FATAL;
		if (hl > 0) {
			c->pos += (size_t)hl;
			break;
		}
		if (c->pos) {
			memmove(c->buf, c->buf + c->pos, c->len - c->pos);
			c->len -= c->pos;
			c->pos = 0;
		}
		ssize_t got = fill(h, c, what);
		if (got < 0)
			return HTTP_RETRY;
		if (got == 0)
			return k_seterr("%s: the server closed the connection without an answer", what), HTTP_RETRY;
	}
	if (h->o.verbose)
		fprintf(stderr, "%s:   %d%s%s\n", k_progname, r->status, r->has_range ? " (a range)" : "",
			r->chunked ? " (chunked)" : "");
	return HTTP_OK;
}

/* Is the status the answer asked for (a 206 of exactly the range, or a
 * 200 of at most CAP bytes)?  1: read the body; else HTTP_OK (a redirect,
 * for the caller to follow), HTTP_RETRY or HTTP_FATAL (with k_seterr()). */
static int check_status(const struct http_resp *r, const struct xfer *x)
{
	const char *what = x->what;
	int st = r->status;

	if (st >= 300) {
		/* Nothing of an error's or a redirect's body is wanted. */
		if (st < 400 && r->location[0])
			return HTTP_OK;
		if (st >= 500 || st == 408 || st == 429)
			return k_seterr("%s: the server answered %d", what, st), HTTP_RETRY;
		return k_seterr("%s: the server answered %d%s", what, st, st == 404 ? " (not found)" : st == 416 ?
				" (range not satisfiable: is the file on the server shorter than the index says?)" :
				""), HTTP_FATAL;
	}
	if (x->len && st != 206)
		return k_seterr("%s: the server ignores Range requests (it answered %d with the whole file); umlk"
				" needs one that serves byte ranges (nginx, Apache, any static file server does)",
				what, st), HTTP_FATAL;
	if (x->len && (!r->has_range || r->first != x->off || r->last != x->off + x->len - 1 ||
		       (r->has_length && r->length != x->len)))
		return k_seterr("%s: asked for bytes %" PRIu64 "-%" PRIu64 ", the server sent another range (%"
				PRIu64 "-%" PRIu64 ")", what, x->off, x->off + x->len - 1, r->first, r->last),
		       HTTP_FATAL;
	if (!x->len && st != 200)
		return k_seterr("%s: the server answered %d, not 200", what, st), HTTP_FATAL;
	if (!x->len && r->has_length && r->length > x->cap)
		return k_seterr("%s: %" PRIu64 " bytes, more than the %zu expected at most", what, r->length,
				x->cap), HTTP_FATAL;
	return 1;
}

/* The body into X's buffer: HTTP_OK, or HTTP_RETRY/HTTP_FATAL with
 * k_seterr().  R's keep_alive is cleared when the body ends with the
 * connection. */
static int read_body(struct http *h, struct conn *c, struct http_resp *r, const struct xfer *x)
{
	const char *what = x->what;
	struct http_chunked ch = { 0 };
	size_t len = x->len, want = len ? len : r->has_length ? (size_t)r->length : x->cap + 1;
	uint8_t *out = x->buf;
	size_t have = 0, room = len;
	int rc = HTTP_OK;

	if (!len) {
		room = r->has_length ? (size_t)r->length : 65536;
		out = xmalloc(room ? room : 1);
	}
	for (;;) {
		if (r->chunked) {
			if (ch.done)
				break;
			if (c->pos == c->len) {
				ssize_t got = fill(h, c, what);
				if (got <= 0) {
					if (got == 0)
						k_seterr("%s: the connection closed in the middle of the body", what);
					rc = HTTP_RETRY;
					goto fail;
				}
			}
			size_t avail = c->len - c->pos, used;
			if (http_chunked_feed(&ch, c->buf + c->pos, &avail, &used) < 0) {
				k_seterr("%s: %s", what, k_errmsg());
				rc = HTTP_FATAL;
				goto fail;
			}
			if (have + avail > want || (len && have + avail > len)) {
				k_seterr("%s: more body than %s", what, len ? "the range asked for" : "expected");
				rc = HTTP_FATAL;
				goto fail;
			}
			if (!len && have + avail > room) {
				while (room < have + avail)
					room *= 2;
				out = xrealloc(out, room);
			}
			memcpy(out + have, c->buf + c->pos, avail);
			have += avail;
			*x->bytes += avail;
			c->pos += used;
			continue;
		}
		if (r->has_length || len) {
			if (have == want)
				break;
		} else {
			r->keep_alive = 0;      /* the body ends with the connection */
			if (have == room) {
				if (room > x->cap) {
					k_seterr("%s: more than the %zu bytes expected at most", what, x->cap);
					rc = HTTP_FATAL;
					goto fail;
				}
				room *= 2;
				out = xrealloc(out, room);
			}
		}
		size_t space = (r->has_length || len ? want : room) - have;
		ssize_t got = body_read(h, c, out + have, space, what);
		if (got == 0 && !r->has_length && !len)
			break;
		if (got <= 0) {
			if (got == 0)
				k_seterr("%s: the connection closed after %zu of %zu bytes", what, have, want);
			rc = HTTP_RETRY;
			goto fail;
		}
		have += (size_t)got;
		*x->bytes += (uint64_t)got;
	}
	if (len && have != len) {
		k_seterr("%s: %zu bytes of the %zu asked for", what, have, len);
		rc = HTTP_RETRY;
		goto fail;
	}
	if (!len && have > x->cap) {
		k_seterr("%s: more than the %zu bytes expected at most", what, x->cap);
		rc = HTTP_FATAL;
		goto fail;
	}
	if (!len) {
		*x->whole = out;
		*x->whole_len = have;
	}
	return HTTP_OK;
fail:
	if (!len)
		free(out);
	return rc;
}

/* One request, no redirects: send, head, status, body.  Fills *R.
 * *REUSED: the connection had served before (a failure before any byte
 * then deserves a fresh connection at once). */
static int request(struct http *h, const struct url *u, const struct xfer *x, struct http_resp *r, int *reused)
{
	int proxied = h->has_proxy && !proxy_exempt(h, u->host);
	const char *chost = proxied ? h->proxy.host : u->host, *cport = proxied ? h->proxy.port : u->port;
	char key[300];
	snprintf(key, sizeof(key), "%s:%s", chost, cport);
	struct conn *c = conn_take(h, key);
	*reused = c != NULL;
	if (!c && !(c = conn_open(h, chost, cport, x->what)))
		return HTTP_RETRY;
	int rc = send_request(h, c, u, proxied, x) < 0 ? HTTP_RETRY : read_head(h, c, r, x->what);
	if (rc == HTTP_OK) {
		*reused = 0;
		rc = check_status(r, x);
	}
	if (rc == 1) {
		rc = read_body(h, c, r, x);
		if (rc == HTTP_OK && r->keep_alive && c->pos == c->len) {
			conn_give(h, c);
			return HTTP_OK;
		}
	}
	conn_drop(c);
	return rc;
}

int http_get(struct http *h, const char *url, uint64_t off, size_t len, void *buf, uint8_t **whole,
	     size_t *whole_len, size_t cap, uint64_t *bytes)
{
	struct url u;
	char cur[HTTP_URL_MAX], what[HTTP_URL_MAX];

	snprintf(cur, sizeof(cur), "%s", url);
	for (int hops = 0;; hops++) {
		if (url_parse(&u, cur) < 0)
			return HTTP_FATAL;
		url_format(&u, what, sizeof(what));
		struct http_resp r;
		struct xfer x = { what, off, len, buf, whole, whole_len, cap, bytes };
		int reused, st = request(h, &u, &x, &r, &reused);
		if (st != HTTP_OK && reused)
			st = request(h, &u, &x, &r, &reused);
		if (st != HTTP_OK)
			return st;
		if (r.status < 300)
			return HTTP_OK;
		/* A redirect. */
		if (hops == 5)
			return k_seterr("%s: more than 5 redirects", url), HTTP_FATAL;
		if (r.location[0] == '/' && r.location[1] != '/') {
			char next[HTTP_URL_MAX + 300];
			int v6 = strchr(u.host, ':') != NULL;
			snprintf(next, sizeof(next), "http://%s%s%s:%s%s", v6 ? "[" : "", u.host, v6 ? "]" : "",
				 u.port, r.location);
			if (strlen(next) >= sizeof(cur))
				return k_seterr("%s: redirected to a URL too long", what), HTTP_FATAL;
			memcpy(cur, next, strlen(next) + 1);
		} else if (url_is_http(r.location)) {
			if (!strncasecmp(r.location, "https://", 8))
				return k_seterr("%s: redirected to %s, and https is not spoken here", what, r.location),
				       HTTP_FATAL;
			snprintf(cur, sizeof(cur), "%s", r.location);
		} else {
			return k_seterr("%s: redirected to '%s', which is no http URL umlk follows", what,
					r.location), HTTP_FATAL;
		}
		if (h->o.verbose)
			fprintf(stderr, "%s:   redirected to %s\n", k_progname, cur);
	}
}
