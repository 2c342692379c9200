/* index: what `umlk index` writes beside an image to publish it, and what
 * a boot from a web server checks every byte against.
 *
 * The file (little-endian; documented field by field in the README):
 *    0   8  magic "UMLKIDX1"
 *    8   4  format version: 1
 *   12   4  chunk size in bytes: a power of two, 4 KiB to 16 MiB
 *   16   8  the image's size in bytes
 *   24   4  chunks: ceil(size / chunk size), at most KIDX_CHUNKS_MAX
 *   28   4  profile entries, at most the chunk count
 *   32  32  SHA-256 of the whole image
 *   64      chunks x 32 bytes: the SHA-256 of each chunk (the last one is
 *           the image's tail, shorter when the size is no multiple)
 *           then profile x 4 bytes: chunk numbers, in the order a recorded
 *           boot first read them
 * and nothing after.  The index's own SHA-256 (of the whole file) is what
 * a URL pins: http://HOST/PATH/IMAGE#sha256=HEX.
 */
#ifndef UMLK_INDEX_H
#define UMLK_INDEX_H

#include <stddef.h>
#include <stdint.h>

#define KIDX_MAGIC "UMLKIDX1"
#define KIDX_HDR 64
#define KIDX_CHUNKS_MAX (1u << 22)
#define KIDX_CHUNK_MIN (4u << 10)
#define KIDX_CHUNK_MAX (16u << 20)
#define KIDX_CHUNK_DEFAULT (64u << 10)
/* With a boot profile: the profile names the chunks to fetch, and smaller
 * ones fetch less that the boot does not read (the XFce desktop over a
 * 20 Mbit/s link: 23.9 MiB and 14.3 s against 26.6 MiB and 15.5 s at
 * 64 KiB); a read the profile did not foresee still fetches 64 KiB
 * around it (remote.c's FETCH_MIN). */
#define KIDX_CHUNK_PROFILE (32u << 10)

struct kidx {
	uint32_t chunk;         /* chunk size */
	uint64_t size;          /* image size */
	uint32_t nchunks;
	uint32_t nprofile;
	uint8_t image_sha[32];
	uint8_t *hash;          /* nchunks x 32 */
	uint32_t *profile;      /* nprofile */
	uint8_t self[32];       /* SHA-256 of the serialized index */
};

/* The most bytes an index may take (for fetching one). */
#define KIDX_FILE_MAX ((size_t)KIDX_HDR + (size_t)KIDX_CHUNKS_MAX * 36)

/* Read the index in BUF[0..N), named NAME in messages; every field and
 * the length are checked.  -1 with k_seterr(). */
int kidx_parse(struct kidx *x, const uint8_t *buf, size_t n, const char *name);
/* Serialize X (malloc'ed, *LEN bytes) and set X->self. */
uint8_t *kidx_serialize(struct kidx *x, size_t *len);
/* Hash the LEN-byte image on FD in chunks of CHUNK bytes (progress on a
 * terminal, labelled LABEL).  -1 with k_seterr(). */
int kidx_make(struct kidx *x, int fd, uint64_t len, uint32_t chunk, const char *name);
void kidx_free(struct kidx *x);
/* Bytes in chunk I. */
uint32_t kidx_chunk_len(const struct kidx *x, uint32_t i);
/* A boot profile as 'umlk boot --record-profile' writes it: in BUF[0..N),
 * one decimal chunk number a line, each below NCHUNKS, none twice, at most
 * NCHUNKS lines.  The list (malloc'ed; NULL for none) in *LIST, its length
 * in *COUNT.  -1 with k_seterr() naming NAME and the line. */
int kidx_profile_text(const uint8_t *buf, size_t n, uint32_t nchunks, const char *name,
		      uint32_t **list, uint32_t *count);
/* Parse 64 hex digits into D; -1 if they are not that. */
int kidx_unhex(const char *hex, uint8_t d[32]);

#endif
