/* fdiff: a diff of files, the portable form of an overlay's upper layer.
 *
 * 'cow-merge --export' of an upper layer (see upper.h) writes the files
 * the guest changed as a stream of entries inside the same container as
 * a diff of sectors (diff.h: header, zlib body, SHA-256 trailer; the
 * header's sector size is 0 for this kind).  Each entry, numbers
 * big-endian:
 *
 *   0   1  type: 'd' directory, 'f' regular file, 'l' symbolic link,
 *          'h' hard link to an earlier 'f', 'w' whiteout (overlayfs's
 *          deleted-file mark), 'c'/'b' character/block device, 'p' fifo;
 *          'E' ends the stream (every other field zero)
 *   1   1  zero
 *   2   2  path length P
 *   4   4  permission bits (mode & 07777)
 *   8   4  owner uid        12  4  group gid
 *   16  8  mtime, seconds (signed)   24  4  its nanoseconds
 *   28  4  device major     32  4  device minor ('c'/'b' only)
 *   36  2  extended attributes X     38  2  zero
 *   40  8  data length D
 *   48  P  path, relative to the layer's top: no leading or doubled '/',
 *          no "." or ".." component, no NUL; a directory comes before
 *          what is in it
 *   then X times: 1 name length N (1..255), 4 value length V, name, value
 *   then D bytes: a file's contents, a link's target (1..4095 bytes), or
 *   a hard link's earlier path.
 *
 * The reader is for hostile input: every length is bounded, every path
 * checked, before anything is believed. */
#ifndef UMLK_FDIFF_H
#define UMLK_FDIFF_H

#include <stddef.h>
#include <stdint.h>

#define FDIFF_HEAD 48
#define FDIFF_PATH_MAX 4095
#define FDIFF_XATTRS_MAX 128
#define FDIFF_XATTR_BYTES 65536         /* names and values of one entry */
#define FDIFF_END 'E'

struct fdent {
	uint8_t type;
	uint32_t mode, uid, gid;
	int64_t mtime;
	uint32_t mtime_ns, major, minor;
	uint64_t datalen;               /* 'f': the contents follow, for the caller */
	char path[FDIFF_PATH_MAX + 1];
	char target[FDIFF_PATH_MAX + 1];        /* 'l' and 'h', read with the entry */
	unsigned nx;
	struct { const char *name; const uint8_t *value; uint32_t len; } x[FDIFF_XATTRS_MAX];
	uint8_t xbuf[FDIFF_XATTR_BYTES + FDIFF_XATTRS_MAX];   /* names NUL-terminated */
	size_t xused;
};

/* A stream read in order through READ (which returns 0 when it got all N
 * bytes, -1 with k_seterr() otherwise); NAME is for messages. */
struct fdin {
	int (*read)(void *ctx, void *buf, size_t n);
	void *ctx;
	const char *name;
	uint64_t entries;
	uint64_t left;          /* of the last 'f' entry's contents, unread */
};
/* The next entry into E: 1, 0 at the end mark, -1 with k_seterr().  A
 * file's contents (E->datalen bytes) must then be read with fdin_data()
 * (or are skipped by the next call). */
int fdin_next(struct fdin *in, struct fdent *e);
int fdin_data(struct fdin *in, void *buf, size_t n);

/* A stream held in memory: M keeps the position (M->off). */
struct fdmem {
	const uint8_t *p;
	size_t n, off;
};
void fdin_mem(struct fdin *in, struct fdmem *m, const uint8_t *buf, size_t n, const char *name);

/* Is PATH acceptable as an entry's path?  1 or 0. */
int fdiff_path_ok(const char *path, size_t len);

/* Entry E (its header, path, attributes and, for 'l'/'h', target) into
 * BUF (room for fdent_size(E)); a file's contents follow it. */
size_t fdent_size(const struct fdent *e);
size_t fdent_format(const struct fdent *e, uint8_t *buf);
/* Add an attribute to E: 0, or -1 when it does not fit. */
int fdent_add_xattr(struct fdent *e, const char *name, const void *value, uint32_t len);

/* Check a whole stream held in memory (for fuzzers and tests); the
 * number of entries in *N.  0 or -1 with k_seterr(). */
int fdiff_check_mem(const uint8_t *buf, size_t n, const char *name, uint64_t *entries);

#endif
