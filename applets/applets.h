/* applets: how an applet declares itself, once, in its own file.
 *
 *   static const char usage[] = "Usage: umlk NAME ...\n\nWhat it does.\n\n";
 *   static const struct kopt opts[] = { ..., { 0 } };     (core/args.h)
 *   APPLET(make_cloop, "make-cloop", "compress a raw image into a cloop image", usage, opts);
 *   int make_cloop_main(int argc, char **argv) { ... }
 *
 * APPLET puts the applet's entry in the section "umlk_applets", which the
 * linker gathers from every applet file into one table; the dispatcher
 * (main.c) reads it for running, --list, --install and --help.  So adding
 * applets/NAME.c is all it takes: the Makefile builds every file there.
 */
#ifndef UMLK_APPLETS_H
#define UMLK_APPLETS_H

#include "core/args.h"

struct applet {
	const char *name;
	int (*main)(int argc, char **argv);
	const char *summary;    /* one line, for 'umlk --help' */
	const char *usage;      /* the synopsis and description; OPTS are listed after it */
	const struct kopt *opts;        /* NULL: none */
};

#define APPLET(id, name, summary, usage, opts) \
	int id##_main(int argc, char **argv); \
	static const struct applet id##_applet \
		__attribute__((used, section("umlk_applets"), aligned(sizeof(void *)))) = \
		{ name, id##_main, summary, usage, opts }

#endif
