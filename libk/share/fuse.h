/* fuse: one host directory served to the guest as a FUSE filesystem
 * (the protocol virtio-fs carries), and nothing outside it.
 *
 * Confinement: every inode the guest can name is one this module found
 * by looking up a single name (no '/', not "." or "..") in a directory it
 * already holds, starting from the shared directory, with O_PATH and
 * O_NOFOLLOW: a symbolic link is always the link itself, never followed
 * on the host.  Operations go through those descriptors (openat, mkdirat,
 * renameat2, linkat...), so a path the guest makes up, "..", an absolute
 * link in the share or one the host user put there pointing outside, a
 * rename or a hard link, can only ever reach what lies under the shared
 * directory.  Files are reopened through /proc/self/fd/N, which names
 * exactly the inode held (regular files and directories only: no FIFO or
 * device is ever opened).  Everything runs as the user who runs umlk.
 *
 * Requests are hostile input: every length, name and node id is checked;
 * a bad one is answered with an error, never a crash.  Not done: extended
 * attributes, locks (the guest kernel keeps them itself), DAX, ioctl.
 */
#ifndef UMLK_FUSE_H
#define UMLK_FUSE_H

#include "share/fusewire.h"

#include <stddef.h>
#include <stdint.h>

struct fshare;

/* How long the guest may trust what it was told (--home-cache):
 *  AUTO    names and attributes for a second (an ssh:// home: 20 s,
 *          SFTPFS_AUTO_SECS); a file's cached data is kept from one
 *          open to the next while its size and time stay the same.  A
 *          change made on the host shows within that time.
 *  ALWAYS  names and attributes for a day, data kept: right for a share
 *          only the guest writes while it runs (a change made on the host
 *          meanwhile may show late, or only after the guest drops it).
 *  NONE    nothing kept: every access asks, every open rereads.
 * A missing name is kept a second in AUTO and ALWAYS (fw_reply_missing). */
enum fshare_cache { FSHARE_CACHE_AUTO, FSHARE_CACHE_ALWAYS, FSHARE_CACHE_NONE };

/* Serve DIR.  NULL with k_seterr() when it cannot be opened. */
struct fshare *fshare_open(const char *dir, enum fshare_cache cache);
/* CACHE's name, and the policy a name means (-1 when none). */
const char *fshare_cache_name(enum fshare_cache cache);
int fshare_cache_of(const char *name);
void fshare_close(struct fshare *s);

/* One request: IN holds its header and arguments (INLEN bytes).  The
 * reply (header, then its arguments or data) goes to OUT (room for
 * OUTCAP bytes); returns its length, or 0 when the request has none
 * (FORGET, INTERRUPT).  Safe from several threads at once. */
size_t fshare_request(struct fshare *s, const uint8_t *in, size_t inlen, uint8_t *out, size_t outcap);
/* The same, with a READ's or WRITE's data in the guest's own buffers
 * DATA (DATALEN bytes) instead of IN or OUT: IN ends with the arguments,
 * OUT gets the reply's header only, though the length returned (and the
 * one in the header) counts the bytes read.  Other requests ignore DATA. */
struct iovec;
size_t fshare_request_data(struct fshare *s, const uint8_t *in, size_t inlen, const struct iovec *data,
			   unsigned ndata, size_t datalen, uint8_t *out, size_t outcap);
/* The same as a fuse_serve_fn (S is the struct fshare). */
fuse_serve_fn fshare_serve;

#endif
