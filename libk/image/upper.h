/* upper: the persistent upper layer of a read-only or stacked root.
 *
 * With --cow FILE on a root the guest cannot write in place (squashfs,
 * iso9660, or several images stacked with overlayfs), FILE keeps the
 * overlay's upper layer: a 4 KiB header, then an ext4 filesystem (sparse:
 * it takes room only as the guest writes) that the guest mounts as the
 * overlay's upperdir and workdir.  The header is for the host, which does
 * not read ext4:
 *
 *   0    8  magic "UMLKUPR1"
 *   8    4  header size (4096), little-endian like every number here
 *   12   4  flags (0)
 *   16   8  the ext4 filesystem's size in bytes (it starts at byte 4096)
 *   24   8  the image's size in bytes
 *   32   8  the image's modification time (seconds)
 *   40  24  zero
 *   64 1024 the image's absolute path, NUL-terminated
 *
 * Like UML's COW header, size and mtime tie the file to its image: a
 * different image, or the same one changed, is refused before boot.  The
 * filesystem can be looked at on the host with
 * 'mount -o loop,offset=4096 FILE DIR'.
 */
#ifndef UMLK_UPPER_H
#define UMLK_UPPER_H

#include <stddef.h>
#include <stdint.h>

#define UPPER_MAGIC "UMLKUPR1"
#define UPPER_HDR 4096
#define UPPER_PATH_MAX 1024

struct upper_hdr {
	uint64_t fs_size;
	uint64_t image_size, image_mtime;
	char image_path[UPPER_PATH_MAX];
};

/* Is BUF (N bytes, the start of a file) an upper layer's header?  1 yes
 * (H filled), 0 no, -1 with k_seterr() when it is one but damaged. */
int upper_parse(const uint8_t *buf, size_t n, struct upper_hdr *h);
void upper_format(const struct upper_hdr *h, uint8_t buf[UPPER_HDR]);
/* The same for the file open on FD (or, with FD < 0, at PATH, which is
 * then only named in messages otherwise): 1 an upper layer (H filled), 0
 * something else or nothing there, -1 with k_seterr() when it is one but
 * damaged, or FD cannot be read. */
int upper_read(int fd, const char *path, struct upper_hdr *h);

/* Make FILE, an upper layer of FS_SIZE bytes for the image described by
 * H (fs_size is set here), whole or not at all: an ext4 (k_mkext4) in a
 * temporary file beside it, the header, fsync, rename.  -1 with
 * k_seterr(). */
int upper_create(const char *file, struct upper_hdr *h, uint64_t fs_size);
/* The same, left in OUT's temporary file (OUT->tmp) for the caller to
 * fill and kout_commit() or kout_abort(). */
struct kout;
int upper_create_open(struct kout *out, const char *file, struct upper_hdr *h, uint64_t fs_size);

#endif
