/* args: getopt_long with umlk's error conventions.
 * xgetopt() returns the next option like getopt_long(), but an unknown
 * option or a missing value ends the program through xusage() (exit 2). */
#ifndef UMLK_ARGS_H
#define UMLK_ARGS_H

#include <getopt.h>
#include <stdint.h>

int xgetopt(int argc, char **argv, const char *shortopts, const struct option *longopts);
/* The same, but long options may start with one dash ("-unix PATH"), as
 * uml_switch's do. */
int xgetopt_only(int argc, char **argv, const char *shortopts, const struct option *longopts);
/* Whole number in [min, max], or xusage() naming OPT. */
long long xarg_num(const char *opt, const char *val, long long min, long long max);
/* A size with optional K/M/G suffix in [min, max], or xusage(). */
uint64_t xarg_size(const char *opt, const char *val, uint64_t min, uint64_t max);
/* Exactly N operands left after the options, or xusage(). */
void xarg_count(int argc, char **argv, int min, int max);

#endif
