/* http: a small HTTP/1.1 client for fetching images from web servers.
 *
 * Plain http only.  GET of a whole resource or of a byte range; keep-alive
 * connections kept per server and reused (one per calling thread at a
 * time, so several threads fetch in parallel); chunked transfer coding;
 * redirects within http (at most 5); connect and idle timeouts; an
 * http_proxy (and no_proxy) from the environment.  A server that answers a
 * Range request with the whole resource (200) is caught at its header: the
 * connection is dropped, nothing of the body is read, and the caller is
 * told.  Everything a server sends is hostile input: sizes are checked,
 * header lines are bounded, a body never exceeds what was asked for.
 *
 * Retries and fail-over between mirrors belong to the caller (see
 * remote.c): http_get says whether an error is worth retrying.
 */
#ifndef UMLK_HTTP_H
#define UMLK_HTTP_H

#include <stddef.h>
#include <stdint.h>

#define HTTP_URL_MAX 2048

struct url {
	char host[256];         /* a name, or an IPv6 address without brackets */
	char port[8];           /* "80" when none is given */
	char path[HTTP_URL_MAX];        /* from the first '/', never empty; no fragment */
	char frag[128];         /* after '#', or "" */
};
/* Parse "http://HOST[:PORT][/PATH][#FRAGMENT]"; -1 with k_seterr() naming
 * what is wrong (https and user:password@ are refused). */
int url_parse(struct url *u, const char *s);
/* "http://HOST[:PORT]PATH" into BUF (no fragment). */
void url_format(const struct url *u, char *buf, size_t cap);
/* Is S an http:// or https:// URL (and so no file name)? */
int url_is_http(const char *s);

/* The head of a response, parsed. */
struct http_resp {
	int status;             /* 200, 206, 404, ... */
	int minor;              /* HTTP/1.MINOR */
	int has_length;
	uint64_t length;        /* Content-Length */
	int chunked;            /* Transfer-Encoding: chunked */
	int has_range;          /* Content-Range: bytes FIRST-LAST/TOTAL */
	uint64_t first, last, total;    /* total 0: "*", unknown */
	int keep_alive;         /* the connection may be used again */
	char location[HTTP_URL_MAX];    /* for redirects, or "" */
};
/* Parse the head in BUF[0..N): the status line and header fields up to and
 * including the empty line.  Returns its length, 0 when more bytes are
 * needed (and N is below HTTP_HEAD_MAX), -1 with k_seterr() when it is no
 * HTTP response or a field is malformed or contradicts another. */
#define HTTP_HEAD_MAX 16384
int http_parse_head(struct http_resp *r, const char *buf, size_t n);

/* The chunked transfer coding, decoded incrementally.  Feed bytes in; the
 * data bytes come out in place. */
struct http_chunked {
	int state;              /* see http.c */
	uint64_t left;          /* of the current chunk */
	int digits;
	int done;               /* the last chunk and its trailer were seen */
};
/* Decode IN[0..*N) in place: *N becomes the data bytes at IN[0..*N);
 * *USED the input bytes consumed (the rest belongs to the next response).
 * -1 with k_seterr() on a malformed chunk. */
int http_chunked_feed(struct http_chunked *c, uint8_t *in, size_t *n, size_t *used);

/* A client: its connections and settings.  Safe to share between threads. */
struct http;
struct http_opts {
	int connect_timeout_ms; /* 0: 10 s */
	int idle_timeout_ms;    /* no byte for this long ends a request; 0: 20 s */
	int verbose;            /* log each request on stderr */
	int no_proxy_env;       /* ignore http_proxy (tests) */
};
struct http *http_new(const struct http_opts *o);
void http_free(struct http *h);

/* What went wrong, for the caller's retry decision. */
enum { HTTP_OK = 0, HTTP_RETRY = -1, HTTP_FATAL = -2 };

/* GET the LEN bytes at OFF of URL into BUF (exactly LEN, LEN > 0), with a
 * Range request.  Or, with LEN 0: GET the whole resource into a malloc'ed
 * *WHOLE of *WHOLE_LEN bytes, at most CAP.  Returns HTTP_OK, or with
 * k_seterr() naming the URL: HTTP_RETRY (a timeout, a refused or broken
 * connection, a 5xx, a short body: may work again) or HTTP_FATAL (404, a
 * server ignoring Range, a malformed answer, a redirect loop). *BYTES gets
 * the body bytes received (counting those of failures). */
int http_get(struct http *h, const char *url, uint64_t off, size_t len, void *buf,
	     uint8_t **whole, size_t *whole_len, size_t cap, uint64_t *bytes);

#endif
