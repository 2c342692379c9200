#include "core/args.h"
#include "core/err.h"
#include "core/xio.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int getopt_common(int argc, char **argv, const char *shortopts,
			 const struct option *longopts, int only)
{
	char spec[128];

	/* A leading ':' makes getopt tell a missing value (':') from an
	 * unknown option ('?'), and keeps it quiet so we can say it our way. */
	snprintf(spec, sizeof(spec), ":%s", shortopts);
	opterr = 0;
	int c = only ? getopt_long_only(argc, argv, spec, longopts, NULL)
		     : getopt_long(argc, argv, spec, longopts, NULL);
	if (c == '?') {
		if (optopt)
			xusage("unknown option '-%c'", optopt);
		xusage("unknown option '%s'", argv[optind - 1]);
	}
	if (c == ':') {
		if (optopt)
			xusage("option '-%c' needs a value", optopt);
		xusage("option '%s' needs a value", argv[optind - 1]);
	}
	return c;
}

int xgetopt(int argc, char **argv, const char *shortopts, const struct option *longopts)
{
	return getopt_common(argc, argv, shortopts, longopts, 0);
}

int xgetopt_only(int argc, char **argv, const char *shortopts, const struct option *longopts)
{
	return getopt_common(argc, argv, shortopts, longopts, 1);
}

long long xarg_num(const char *opt, const char *val, long long min, long long max)
{
	char *end;

	errno = 0;
	long long v = strtoll(val, &end, 10);
	if (errno || end == val || *end || v < min || v > max)
		xusage("%s: '%s' is not a number from %lld to %lld", opt, val, min, max);
	return v;
}

uint64_t xarg_size(const char *opt, const char *val, uint64_t min, uint64_t max)
{
	uint64_t v;

	if (k_parse_size(val, &v) < 0)
		xusage("%s: %s", opt, k_errmsg());
	if (v < min || v > max)
		xusage("%s: '%s' is not a size from %llu to %llu", opt, val,
		       (unsigned long long)min, (unsigned long long)max);
	return v;
}

void xarg_count(int argc, char **argv, int min, int max)
{
	int n = argc - optind;

	(void)argv;
	if (n < min)
		xusage(n ? "too few arguments" : "missing argument");
	if (n > max)
		xusage("too many arguments ('%s' is one too many)", argv[optind + max]);
}
