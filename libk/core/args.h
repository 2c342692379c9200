/* args: an applet's options, declared once (a table that both the
 * parser and the usage text read), with umlk's error conventions: an
 * unknown option or a missing value ends the program through xusage()
 * (one line, the usage, exit 2).
 *
 *   static const struct kopt opts[] = {
 *           { 'j', "-j --jobs", "N", "decompress with N threads\n(default: one per CPU)" },
 *           { 'i', "--info", NULL, "print what the file holds" },
 *           { 0 },
 *   };
 *   while ((c = xkopt_next(argc, argv, opts)) != -1)
 *           switch (c) { case 'j': jobs = xarg_num("-j", optarg, 1, 256); break; ... }
 */
#ifndef UMLK_ARGS_H
#define UMLK_ARGS_H

#include <getopt.h>
#include <stdint.h>
#include <stdio.h>

/* One option: ID is what xkopt_next() returns for it (its letter, when it
 * has a one-letter form); NAMES its forms, "-j --jobs" or "--jobs" (or,
 * for uml_switch-style options, "-unix"); ARG the name of its value in
 * the help, NULL when it takes none; HELP its help, '\n' between lines.
 * An entry with ID 0 only adds a line to the help (another form of the
 * option above it, say).  A table ends with an entry whose NAMES is NULL. */
struct kopt {
	int id;
	const char *names;
	const char *arg;
	const char *help;
};
#define KOPT_MAX 48             /* options in one table, at most */

/* The next option as its ID; -1 after the last (optind then indexes the
 * operands, which getopt_long() moves after the options).  A table whose
 * long options start with one dash ("-unix") takes them as
 * getopt_long_only() does. */
int xkopt_next(int argc, char **argv, const struct kopt *opts);
/* The usage: TEXT, a blank line, OPTS as an aligned list, then --help. */
void kopt_usage(FILE *f, const char *text, const struct kopt *opts);
/* What xusage() prints: the running applet's (set by the dispatcher). */
extern const struct kopt *k_usage_opts;

/* Whole number in [min, max], or xusage() naming OPT. */
long long xarg_num(const char *opt, const char *val, long long min, long long max);
/* A size with optional K/M/G suffix in [min, max], or xusage(). */
uint64_t xarg_size(const char *opt, const char *val, uint64_t min, uint64_t max);
/* Exactly N operands left after the options, or xusage(). */
void xarg_count(int argc, char **argv, int min, int max);

#endif
