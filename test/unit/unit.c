/* Unit tests of libk's pure functions: byte order, sizes, zero detection,
 * and the cloop parser against images built here in memory. */
#include "../../libk/cloop.h"
#include "../../libk/cow.h"
#include "../../libk/sha256.h"
#include "../../libk/err.h"
#include "../../libk/xio.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failed;

#define T(name, cond) do { \
	if (cond) printf("PASS: %s\n", name); \
	else { printf("FAIL: %s (%s:%d: %s)\n", name, __FILE__, __LINE__, #cond); failed++; } \
} while (0)

/* A V2 or V4 image of NB blocks of BS bytes, block i filled with byte i. */
static uint8_t *mkcloop(int version, int footer, uint32_t bs, uint32_t nb, size_t *len)
{
	uint8_t **blk = calloc(nb, sizeof(*blk));
	size_t *bl = calloc(nb, sizeof(*bl));
	uint8_t *raw = malloc(bs);
	size_t data = 0;

	for (uint32_t i = 0; i < nb; i++) {
		memset(raw, (int)i, bs);
		uLongf n = compressBound(bs);
		blk[i] = malloc(n);
		compress2(blk[i], &n, raw, bs, 9);
		bl[i] = n;
		data += n;
	}
	size_t idx = (nb + 1) * 8;
	*len = CLOOP_HEAD_SIZE + idx + data;
	uint8_t *f = calloc(1, *len);
	size_t hpos = footer ? *len - CLOOP_HEAD_SIZE : 0;
	size_t ipos = footer ? data : CLOOP_HEAD_SIZE;
	size_t pos = footer ? 0 : CLOOP_HEAD_SIZE + idx;
	cloop_make_head(f + hpos, version, bs, nb);
	for (uint32_t i = 0; i < nb; i++) {
		k_put_be64(f + ipos + i * 8, pos);
		memcpy(f + pos, blk[i], bl[i]);
		pos += bl[i];
		free(blk[i]);
	}
	k_put_be64(f + ipos + nb * 8, pos);
	free(blk);
	free(bl);
	free(raw);
	return f;
}

static int open_mem(struct cloop *c, struct ksrc *s, const uint8_t *f, size_t n)
{
	ksrc_mem(s, f, n, "mem");
	return cloop_open(c, s);
}

int main(void)
{
	uint8_t b[8];
	uint64_t v;

	k_put_be64(b, 0x0102030405060708ULL);
	T("be64 round trip", k_be64(b) == 0x0102030405060708ULL && b[0] == 1 && b[7] == 8);
	k_put_be32(b, 0xdeadbeef);
	T("be32 round trip", k_be32(b) == 0xdeadbeef && b[0] == 0xde);
	T("parse 64K", k_parse_size("64K", &v) == 0 && v == 65536);
	T("parse 1MiB", k_parse_size("1MiB", &v) == 0 && v == 1 << 20);
	T("parse 512", k_parse_size("512", &v) == 0 && v == 512);
	T("reject 1X", k_parse_size("1X", &v) < 0);
	T("reject -1", k_parse_size("-1", &v) < 0);
	T("reject overflow", k_parse_size("99999999999999999999", &v) < 0);
	T("reject 2^64 via suffix", k_parse_size("17179869184G", &v) < 0);

	uint8_t z[100] = { 0 };
	T("iszero all zero", k_iszero(z, sizeof(z)));
	z[99] = 1;
	T("iszero last byte", !k_iszero(z, sizeof(z)));
	z[99] = 0, z[3] = 1;
	T("iszero early byte", !k_iszero(z, sizeof(z)));
	T("iszero short", k_iszero(z, 3) && !k_iszero(z, 4));
	T("iszero empty", k_iszero(z, 0));

	struct cloop c;
	struct ksrc s;
	size_t n;
	uint8_t *out = malloc(65536);
	z_stream zs = { 0 };
	for (int ver = 2; ver <= 4; ver += 2) {
		for (int foot = 0; foot <= (ver == 4); foot++) {
			uint8_t *f = mkcloop(ver, foot, 4096, 5, &n);
			char name[64];
			snprintf(name, sizeof(name), "open V%d %s", ver, foot ? "footer" : "header");
			T(name, open_mem(&c, &s, f, n) == 0 && c.version == ver && c.footer == foot &&
			  c.num_blocks == 5 && c.block_size == 4096);
			int ok = 1;
			for (uint32_t i = 0; i < c.num_blocks && ok; i++) {
				ok = !cloop_decode(&zs, c.comp[i], f + c.ofs[i], c.ofs[i + 1] - c.ofs[i], out, 4096);
				ok = ok && out[0] == i && out[4095] == i;
			}
			snprintf(name, sizeof(name), "decode V%d %s", ver, foot ? "footer" : "header");
			T(name, ok);
			cloop_close(&c);
			free(f);
		}
	}

	uint8_t *f = mkcloop(2, 0, 4096, 3, &n);
	T("empty input", open_mem(&c, &s, f, 0) < 0 && strstr(k_errmsg(), "only 0 bytes"));
	T("index past end", open_mem(&c, &s, f, 150) < 0 && strstr(k_errmsg(), "index"));
	k_put_be32(f + 132, 0xffffffff);
	T("huge block count", open_mem(&c, &s, f, n) < 0 && strstr(k_errmsg(), "block count 4294967295"));
	k_put_be32(f + 132, 3);
	uint64_t o1 = k_be64(f + 136 + 8);
	k_put_be64(f + 136 + 8, k_be64(f + 136 + 16) + 1);
	T("offsets backwards", open_mem(&c, &s, f, n) < 0 && strstr(k_errmsg(), "goes backwards"));
	k_put_be64(f + 136 + 8, k_be64(f + 136));
	T("empty block", open_mem(&c, &s, f, n) < 0 && strstr(k_errmsg(), "block 0 is empty"));
	k_put_be64(f + 136 + 8, o1);
	T("restored opens", open_mem(&c, &s, f, n) == 0);
	cloop_close(&c);
	/* Corrupt the zlib stream of block 1. */
	f[o1 + 2] ^= 0xff;
	f[o1 + 3] ^= 0xff;
	T("corrupt block detected", open_mem(&c, &s, f, n) == 0 &&
	  cloop_decode(&zs, CLOOP_ZLIB, f + c.ofs[1], c.ofs[2] - c.ofs[1], out, 4096) != NULL);
	cloop_close(&c);
	T("inflates to more than a block", cloop_decode(&zs, CLOOP_ZLIB, f + k_be64(f + 136),
	  o1 - k_be64(f + 136), out, 2048) != NULL);
	T("raw block size checked", cloop_decode(&zs, CLOOP_NONE, f, 100, out, 4096) != NULL);
	T("xz refused", cloop_decode(&zs, CLOOP_XZ, f, 100, out, 4096) != NULL);
	free(f);
	cloop_zfree(&zs);
	free(out);

	/* SHA-256 against the FIPS 180-4 examples. */
	struct sha256 h;
	uint8_t d[32];
	char hex[65];
	sha256_init(&h);
	sha256_final(&h, d);
	sha256_hex(d, hex);
	T("sha256 empty", !strcmp(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"));
	sha256_init(&h);
	sha256_update(&h, "abc", 3);
	sha256_final(&h, d);
	sha256_hex(d, hex);
	T("sha256 abc", !strcmp(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));
	sha256_init(&h);
	sha256_update(&h, "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 56);
	sha256_final(&h, d);
	sha256_hex(d, hex);
	T("sha256 two blocks", !strcmp(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"));
	sha256_init(&h);
	for (int i = 0; i < 1000000; i += 1000) {       /* uneven pieces */
		static char a[1000];
		memset(a, 'a', sizeof(a));
		sha256_update(&h, a, 7);
		sha256_update(&h, a, 993);
	}
	sha256_final(&h, d);
	sha256_hex(d, hex);
	T("sha256 a million a", !strcmp(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"));

	/* COW headers: a v3 header written here parses back the same. */
	struct cow cw, back;
	uint8_t hdr[COW_HEADER_MAX] = { 0 };
	cow_init_v3(&cw, "/images/base.img", 50331648, 1234567);
	cow_header_v3(&cw, hdr);
	T("cow v3 round trip", cow_parse_header(hdr, COW_V3_HEADER, "t", &back) == 0 &&
	  back.version == 3 && !back.broken && back.size == 50331648 && back.mtime == 1234567 &&
	  back.bitmap_off == 8192 && back.data_off == 20480 && !strcmp(back.backing, "/images/base.img"));
	T("cow short header", cow_parse_header(hdr, 100, "t", &back) < 0 && strstr(k_errmsg(), "truncated"));
	hdr[24] = 0, hdr[25] = 0, hdr[26] = 0x0b, hdr[27] = 0xb8;     /* alignment 3000 */
	T("cow bad alignment", cow_parse_header(hdr, COW_V3_HEADER, "t", &back) < 0 && strstr(k_errmsg(), "alignment"));
	cow_close(&cw);
	return failed != 0;
}
