/* libFuzzer target: what a web server sends umlk's HTTP client.
 *
 * Input: a selector byte, then bytes as a server would send them.
 *   0: a response head (status line and fields), parsed; its claims must
 *      hold together: a length never beyond the head, a range with
 *      first <= last < total, a terminated Location.
 *   1: a chunked body, fed in pieces whose sizes come from the input; the
 *      decoder must never produce more bytes than it was fed, nor consume
 *      more than it got, and must stop at the end marker.
 *   2: a URL, parsed; what comes out must be terminated, the port a
 *      number from 1 to 65535, the path start with '/' and hold no
 *      spaces or control bytes, and formatting it must parse again to
 *      the same parts. */
#include "remote/http.h"

#include <stdlib.h>
#include <string.h>

static void head(const uint8_t *d, size_t n)
{
	struct http_resp r;
	int len = http_parse_head(&r, (const char *)d, n);
	if (len < 0)
		return;
	if ((size_t)len > n || (len == 0 && n >= HTTP_HEAD_MAX))
		abort();
	if (len == 0)
		return;
	if (r.status < 100 || r.status > 599)
		abort();
	if (r.has_range && (r.first > r.last || (r.total && r.last >= r.total)))
		abort();
	if (strnlen(r.location, sizeof(r.location)) == sizeof(r.location))
		abort();
	if (r.chunked && r.has_length)
		abort();
}

static void chunked(const uint8_t *d, size_t n)
{
	struct http_chunked c = { 0 };
	uint8_t *buf = malloc(n + 1);
	size_t at = 0;
	if (!n) {
		free(buf);
		return;
	}
	size_t step = d[0] % 17 + 1;
	d++, n--;
	while (at < n && !c.done) {
		size_t piece = n - at < step ? n - at : step, got = piece, used;
		memcpy(buf, d + at, piece);
		if (http_chunked_feed(&c, buf, &got, &used) < 0)
			break;
		if (got > piece || used > piece || got > used)
			abort();
		if (used == 0 && !c.done)
			abort();                /* no progress */
		at += used;
	}
	free(buf);
}

static void url(const uint8_t *d, size_t n)
{
	char s[HTTP_URL_MAX + 64], out[HTTP_URL_MAX + 400];
	struct url u, v;
	if (n >= sizeof(s))
		n = sizeof(s) - 1;
	memcpy(s, d, n);
	s[n] = 0;
	if (url_parse(&u, s) < 0)
		return;
	if (!memchr(u.host, 0, sizeof(u.host)) || !memchr(u.path, 0, sizeof(u.path)) || u.path[0] != '/')
		abort();
	long port = strtol(u.port, NULL, 10);
	if (port < 1 || port > 65535)
		abort();
	for (const char *c = u.path; *c; c++)
		if ((unsigned char)*c <= ' ' || *c == 0x7f)
			abort();
	url_format(&u, out, sizeof(out));
	if (strlen(out) < HTTP_URL_MAX && (url_parse(&v, out) < 0 || strcmp(u.host, v.host) ||
					   strcmp(u.port, v.port) || strcmp(u.path, v.path)))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!size)
		return 0;
	switch (data[0] % 3) {
	case 0: head(data + 1, size - 1); break;
	case 1: chunked(data + 1, size - 1); break;
	case 2: url(data + 1, size - 1); break;
	}
	return 0;
}
