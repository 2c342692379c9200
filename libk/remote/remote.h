/* remote: an image on a web server as a block source (see bsrc.h), every
 * byte verified before use.
 *
 * The URL pins the SHA-256 of the image's index (index.h) in its fragment:
 * http://HOST/PATH/IMAGE#sha256=HEX.  The index is fetched (IMAGE.umlkidx
 * beside the image, or --index URL) and checked against HEX before
 * anything else; then a read becomes Range requests for the chunks it
 * covers, each chunk checked against the index before a byte of it is
 * used.  A chunk that fails its hash is fetched again from the next mirror
 * (or once more from the same server when there is no other); when no good
 * copy comes, the read fails (the guest sees an I/O error) and one line
 * names the URL, the chunk and "hash mismatch".
 *
 * Verified chunks are kept in a cache directory named by their SHA-256
 * (images and versions sharing chunks share them), written atomically and
 * checked again when first used by a run; the cache is trimmed to a size
 * cap, least recently used first.  The index is kept there too, so a
 * second boot of the same image needs no network.  Sequential reads are
 * read ahead, and a boot profile in the index is fetched first, in
 * parallel, before the guest asks.
 */
#ifndef UMLK_REMOTE_H
#define UMLK_REMOTE_H

#include <stdint.h>

#include "block/bsrc.h"

#define REMOTE_MIRRORS_MAX 8

struct remote_opts {
	const char *url;        /* http://HOST/PATH#sha256=HEX */
	const char *mirrors[REMOTE_MIRRORS_MAX];        /* the same image elsewhere */
	int nmirrors;
	const char *index_url;  /* NULL: the image's URL + ".umlkidx" */
	int insecure;           /* no pinned hash: verify nothing, say so */
	const char *cache_dir;  /* NULL: ${XDG_CACHE_HOME:-~/.cache}/umlk */
	uint64_t cache_max;     /* bytes of chunks kept; 0: REMOTE_CACHE_DEFAULT */
	int timeout_s;          /* connect and idle timeout; 0: the client's */
	int verbose;            /* log every request */
};
#define REMOTE_CACHE_DEFAULT (4ULL << 30)

struct remote_stats {
	uint64_t fetched;       /* body bytes received */
	uint64_t requests;
	uint64_t retries;
	uint64_t cached;        /* chunks found in the cache */
	uint64_t mismatches;    /* chunks that failed their hash */
	uint64_t failed;        /* reads given an error */
};

/* Fetch and check the index, open the cache; NULL with k_seterr() (a
 * wrong pinned hash, an unreachable server and no cached index, ...). */
struct bsrc *remote_open(const struct remote_opts *o);
/* Start fetching the index's boot profile, in its order, on the read-ahead
 * threads, and return: the boot goes on meanwhile (what fails is fetched
 * again on demand; what is still queued at the end is dropped). */
void remote_prefetch_profile(struct bsrc *s);
void remote_get_stats(struct bsrc *s, struct remote_stats *st);
/* The URL in the form that names the image (with its #sha256=). */
const char *remote_identity(struct bsrc *s);

#endif
