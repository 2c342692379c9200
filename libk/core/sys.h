/* sys: small facts about the host that every module asks for: the time,
 * the CPUs this process may use, randomness, Unix socket addresses, and
 * the user's private run directory.
 *
 * Nothing here exits; failures come back as -1 with k_seterr(). */
#ifndef UMLK_SYS_H
#define UMLK_SYS_H

#include <stddef.h>
#include <stdint.h>

uint64_t k_now_ns(void);                /* monotonic clock */
long long k_now_ms(void);

/* Worker count for -j: the CPUs this process may run on. */
int k_ncpus(void);

/* N unpredictable bytes (getrandom); never fails (falls back to the
 * clock and pid mixed through SHA-256, which is still unguessable enough
 * for file names when the kernel has no getrandom). */
void k_random(void *buf, size_t n);
/* N random hex digits (N < 64) into BUF[N + 1]; returns BUF. */
char *k_random_hex(char *buf, size_t n);

/* Fill A with the Unix socket address of PATH (a file system name): -1
 * with k_seterr() when PATH is too long for one. */
struct sockaddr_un;
int k_unix_addr(struct sockaddr_un *a, const char *path);

/* mkdir -p PATH (each directory made with MODE); -1 with k_seterr(). */
int k_mkdirs(const char *path, unsigned mode);

/* umlk's cache directory: ${XDG_CACHE_HOME:-~/.cache}/umlk (else
 * /tmp/umlk-cache-UID); not made here. */
void k_cache_dir(char *buf, size_t cap);

/* The mount point of the filesystem holding PATH, into BUF (from
 * /proc/self/mountinfo); -1 with k_seterr() when it cannot be found. */
int k_mount_point(const char *path, char *buf, size_t cap);

/* The user's private run directory: $XDG_RUNTIME_DIR/umlk, else
 * ${TMPDIR:-/tmp}/umlk-UID, made if missing (mode 0700).  -1 with k_seterr() unless
 * it is a directory that belongs to this user and no one else can enter. */
int k_private_dir(char *dir, size_t cap);

/* Remove NAME in the directory DFD, and everything in it when it is a
 * directory (a symbolic link is removed, never followed); -1 with errno
 * at the first thing that cannot be removed. */
int k_remove_tree(int dfd, const char *name);
/* Remove everything in the directory FD, leaving it empty; as above. */
int k_clear_dir(int fd);

#endif
