/* bytes: numbers in wire and file formats, read and written byte by byte.
 *
 * Every format umlk reads or writes (cloop, COW, ISO9660, Ethernet, DHCP,
 * vhost-user, virtio) keeps its numbers in a fixed byte order; these
 * helpers are the one place that knows how to move them.  No alignment is
 * assumed, so they work on any offset of any buffer. */
#ifndef UMLK_BYTES_H
#define UMLK_BYTES_H

#include <stdint.h>

static inline uint16_t k_be16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static inline uint32_t k_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline uint64_t k_be64(const uint8_t *p) { return (uint64_t)k_be32(p) << 32 | k_be32(p + 4); }

static inline void k_put_be16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static inline void k_put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}
static inline void k_put_be64(uint8_t *p, uint64_t v) { k_put_be32(p, (uint32_t)(v >> 32)); k_put_be32(p + 4, (uint32_t)v); }

static inline uint16_t k_le16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static inline uint32_t k_le32(const uint8_t *p)
{
	return p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t k_le64(const uint8_t *p) { return k_le32(p) | (uint64_t)k_le32(p + 4) << 32; }

static inline void k_put_le16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static inline void k_put_le32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); p[2] = (uint8_t)(v >> 16); p[3] = (uint8_t)(v >> 24);
}
static inline void k_put_le64(uint8_t *p, uint64_t v) { k_put_le32(p, (uint32_t)v); k_put_le32(p + 4, (uint32_t)(v >> 32)); }

#endif
