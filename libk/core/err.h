/* err: one way to report trouble, for every applet.
 *
 * Messages look like "umlk extract-cloop: FILE: what is wrong" (the prefix is
 * the running applet).  A format ending in ':' gets strerror(errno) added,
 * in k_warn, xdie and k_seterr alike.
 *
 * The contract, visible in every name in libk:
 *   - a function whose name starts with 'x' never returns on failure: it
 *     prints one line and exits (through k_die_hook);
 *   - every other function returns on failure: -1 (or NULL) with a message
 *     recorded by k_seterr(), for the caller to print or carry on from, so
 *     fuzzers, servers and PID 1 never stop on hostile input;
 *   - the one exception is running out of memory: xmalloc and friends end
 *     the program wherever they are called.
 */
#ifndef UMLK_ERR_H
#define UMLK_ERR_H

#include <stdarg.h>
#include <stddef.h>

extern const char *k_progname;          /* "umlk extract-cloop", set by main */

void k_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void k_vwarn(const char *fmt, va_list ap);
_Noreturn void xdie(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Usage error: one line, then the applet's usage, to stderr; exit 2
 * (args.c: the usage is the applet's text and its options). */
_Noreturn void xusage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The last error recorded by library code (k_seterr), for the caller to print. */
int k_seterr(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
const char *k_errmsg(void);

/* What xdie does after printing; PID 1 replaces it so an error never panics
 * the guest kernel.  The default cleans up temporary files and exits 1. */
extern void (*k_die_hook)(int status);

/* fork(), with the child's k_die_hook reset: an error in a child ends
 * that child (_exit, no cleanup of the parent's temporary files), never
 * what the parent's hook does (PID 1 would power the guest off). */
int k_fork(void);

/* Temporary files removed when the program dies or is interrupted. */
int k_cleanup_add(const char *path);    /* -1 with k_seterr() when full */
void k_cleanup_del(const char *path);
void k_cleanup_run(void);
void k_catch_signals(void);             /* SIGINT/TERM/HUP: clean up, exit 128+n */

/* Used by xusage: the dispatcher points it at the running applet's usage. */
extern const char *k_usage_text;

#endif
