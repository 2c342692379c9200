#include "remote/index.h"
#include "core/bytes.h"
#include "core/err.h"
#include "core/progress.h"
#include "core/sha256.h"
#include "core/xio.h"

#include <stdlib.h>
#include <string.h>

int kidx_parse(struct kidx *x, const uint8_t *b, size_t n, const char *name)
{
	memset(x, 0, sizeof(*x));
	if (n < KIDX_HDR || memcmp(b, KIDX_MAGIC, 8))
		return k_seterr("%s: not a umlk index (no UMLKIDX1 header)", name);
	uint32_t ver = k_le32(b + 8);
	if (ver != 1)
		return k_seterr("%s: index format version %u; this umlk reads version 1", name, ver);
	x->chunk = k_le32(b + 12);
	x->size = k_le64(b + 16);
	x->nchunks = k_le32(b + 24);
	x->nprofile = k_le32(b + 28);
	if (x->chunk < KIDX_CHUNK_MIN || x->chunk > KIDX_CHUNK_MAX || (x->chunk & (x->chunk - 1)))
		return k_seterr("%s: chunk size %u is not a power of two from 4 KiB to 16 MiB", name, x->chunk);
	if (x->nchunks > KIDX_CHUNKS_MAX)
		return k_seterr("%s: %u chunks, more than %u", name, x->nchunks, KIDX_CHUNKS_MAX);
	if (x->size == 0 || x->size / x->chunk + (x->size % x->chunk != 0) != x->nchunks)
		return k_seterr("%s: %u chunks of %u bytes do not make an image of %llu bytes", name, x->nchunks,
				x->chunk, (unsigned long long)x->size);
	if (x->nprofile > x->nchunks)
		return k_seterr("%s: a profile of %u entries for %u chunks", name, x->nprofile, x->nchunks);
	size_t want = KIDX_HDR + (size_t)x->nchunks * 32 + (size_t)x->nprofile * 4;
	if (n != want)
		return k_seterr("%s: %zu bytes, and its header says %zu", name, n, want);
	memcpy(x->image_sha, b + 32, 32);
	x->hash = xmalloc((size_t)x->nchunks * 32);
	memcpy(x->hash, b + KIDX_HDR, (size_t)x->nchunks * 32);
	x->profile = xmalloc((size_t)x->nprofile * 4 + 1);
	const uint8_t *p = b + KIDX_HDR + (size_t)x->nchunks * 32;
	for (uint32_t i = 0; i < x->nprofile; i++) {
		x->profile[i] = k_le32(p + 4 * (size_t)i);
		if (x->profile[i] >= x->nchunks) {
			uint32_t bad = x->profile[i];
			kidx_free(x);
			return k_seterr("%s: profile entry %u names chunk %u of %u", name, i, bad, x->nchunks);
		}
	}
	struct sha256 s;
	sha256_init(&s);
	sha256_update(&s, b, n);
	sha256_final(&s, x->self);
	return 0;
}

uint8_t *kidx_serialize(struct kidx *x, size_t *len)
{
	size_t n = KIDX_HDR + (size_t)x->nchunks * 32 + (size_t)x->nprofile * 4;
	uint8_t *b = xcalloc(1, n);
	memcpy(b, KIDX_MAGIC, 8);
	k_put_le32(b + 8, 1);
	k_put_le32(b + 12, x->chunk);
	k_put_le64(b + 16, x->size);
	k_put_le32(b + 24, x->nchunks);
	k_put_le32(b + 28, x->nprofile);
	memcpy(b + 32, x->image_sha, 32);
	memcpy(b + KIDX_HDR, x->hash, (size_t)x->nchunks * 32);
	for (uint32_t i = 0; i < x->nprofile; i++)
		k_put_le32(b + KIDX_HDR + (size_t)x->nchunks * 32 + 4 * (size_t)i, x->profile[i]);
	struct sha256 s;
	sha256_init(&s);
	sha256_update(&s, b, n);
	sha256_final(&s, x->self);
	*len = n;
	return b;
}

uint32_t kidx_chunk_len(const struct kidx *x, uint32_t i)
{
	uint64_t off = (uint64_t)i * x->chunk;
	return x->size - off < x->chunk ? (uint32_t)(x->size - off) : x->chunk;
}

int kidx_make(struct kidx *x, int fd, uint64_t len, uint32_t chunk, const char *name)
{
	memset(x, 0, sizeof(*x));
	if (len == 0)
		return k_seterr("%s: empty", name);
	if ((len + chunk - 1) / chunk > KIDX_CHUNKS_MAX)
		return k_seterr("%s: more than %u chunks of %u bytes; choose larger chunks", name,
				KIDX_CHUNKS_MAX, chunk);
	x->chunk = chunk;
	x->size = len;
	x->nchunks = (uint32_t)((len + chunk - 1) / chunk);
	x->hash = xmalloc((size_t)x->nchunks * 32);
	x->profile = xmalloc(1);
	uint8_t *buf = xmalloc(chunk);
	struct sha256 all, one;
	struct progress p;
	sha256_init(&all);
	prog_start(&p, "hashing", len);
	for (uint32_t i = 0; i < x->nchunks; i++) {
		uint32_t n = kidx_chunk_len(x, i);
		ssize_t r = full_pread(fd, buf, n, (uint64_t)i * chunk);
		if (r != (ssize_t)n) {
			free(buf);
			prog_end(&p);
			kidx_free(x);
			return r < 0 ? k_seterr("%s: read error:", name) : k_seterr("%s: shorter than it was", name);
		}
		sha256_init(&one);
		sha256_update(&one, buf, n);
		sha256_final(&one, x->hash + 32 * (size_t)i);
		sha256_update(&all, buf, n);
		prog_update(&p, (uint64_t)i * chunk + n);
	}
	prog_end(&p);
	sha256_final(&all, x->image_sha);
	free(buf);
	return 0;
}

void kidx_free(struct kidx *x)
{
	free(x->hash);
	free(x->profile);
	x->hash = NULL;
	x->profile = NULL;
}

int kidx_profile_text(const uint8_t *buf, size_t n, uint32_t nchunks, const char *name,
		      uint32_t **list, uint32_t *count)
{
	uint8_t *seen = calloc((size_t)nchunks / 8 + 1, 1);
	uint32_t *l = NULL, k = 0, cap = 0;

	*list = NULL;
	*count = 0;
	if (!seen)
		return k_seterr("out of memory");
	for (size_t i = 0; i < n;) {
		uint64_t v = 0;
		size_t d = 0;
		while (i < n && buf[i] >= '0' && buf[i] <= '9' && d < 10) {
			v = v * 10 + (uint64_t)(buf[i++] - '0');
			d++;
		}
		const char *why = !d ? "not a number" : i >= n ? "no newline at its end"
			: buf[i] != '\n' ? "not a number" : v >= nchunks ? "past the image's chunks"
			: seen[v / 8] & (1u << (v % 8)) ? "a chunk named twice" : NULL;
		if (why) {
			free(seen);
			free(l);
			return k_seterr("%s: line %u: %s", name, k + 1, why);
		}
		i++;
		seen[v / 8] |= (uint8_t)(1u << (v % 8));
		if (k == cap) {
			cap = cap ? 2 * cap : 256;
			uint32_t *nl = realloc(l, (size_t)cap * sizeof(*l));
			if (!nl) {
				free(seen);
				free(l);
				return k_seterr("out of memory");
			}
			l = nl;
		}
		l[k++] = (uint32_t)v;
	}
	free(seen);
	*list = l;
	*count = k;
	return 0;
}

int kidx_unhex(const char *hex, uint8_t d[32])
{
	for (int i = 0; i < 64; i++) {
		char c = hex[i];
		int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 :
			c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
		if (v < 0)
			return -1;
		if (i & 1)
			d[i / 2] |= (uint8_t)v;
		else
			d[i / 2] = (uint8_t)(v << 4);
	}
	return hex[64] ? -1 : 0;
}
