/* sha256: SHA-256 (FIPS 180-4), for identifying images by content. */
#ifndef UMLK_SHA256_H
#define UMLK_SHA256_H

#include <stddef.h>
#include <stdint.h>

struct sha256 {
	uint32_t h[8];
	uint64_t len;           /* bytes hashed so far */
	uint8_t buf[64];
	size_t fill;
};

void sha256_init(struct sha256 *s);
void sha256_update(struct sha256 *s, const void *data, size_t n);
void sha256_final(struct sha256 *s, uint8_t out[32]);
/* Lower-case hex of a digest into HEX[65]. */
void sha256_hex(const uint8_t d[32], char hex[65]);

#endif
