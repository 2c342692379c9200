/* err: one way to report trouble, for every applet.
 *
 * Messages look like "umlk extract-cloop: FILE: what is wrong" (the prefix is
 * the running applet).  A message ending in ':' gets strerror(errno) added.
 * Names starting with 'x' never return on failure: they print and exit.
 * Library code that parses hostile input does not exit; it records a message
 * with k_seterr() and returns -1, so fuzzers and PID 1 can carry on.
 */
#ifndef UMLK_ERR_H
#define UMLK_ERR_H

#include <stdarg.h>
#include <stddef.h>

extern const char *k_progname;          /* "umlk extract-cloop", set by main */

void k_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
_Noreturn void xdie(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Usage error: one line, then the applet's usage, to stderr; exit 2. */
_Noreturn void xusage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The last error recorded by library code (k_seterr), for the caller to print. */
int k_seterr(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
const char *k_errmsg(void);

/* What xdie does after printing; PID 1 replaces it so an error never panics
 * the guest kernel.  The default cleans up temporary files and exits 1. */
extern void (*k_die_hook)(int status);

/* Temporary files removed when the program dies or is interrupted. */
void k_cleanup_add(const char *path);
void k_cleanup_del(const char *path);
void k_cleanup_run(void);
void k_catch_signals(void);             /* SIGINT/TERM/HUP: clean up, exit 128+n */

/* Used by xusage: the dispatcher points it at the running applet's usage. */
extern const char *k_usage_text;

#endif
