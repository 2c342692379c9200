/* The applet table: every applet's entry point, summary and usage text.
 * main.c keeps the table itself, sorted by name; each applet file defines
 * its NAME_main and NAME_usage. */
#ifndef UMLK_APPLETS_H
#define UMLK_APPLETS_H

struct applet {
	const char *name;
	int (*main)(int argc, char **argv);
	const char *summary;
	const char *usage;
};

#define APPLET(id) \
	int id##_main(int argc, char **argv); \
	extern const char id##_usage[];

APPLET(boot)
APPLET(cow_merge)
APPLET(dhcpd)
APPLET(extract_cloop)
APPLET(index)
APPLET(init)
APPLET(initramfs)
APPLET(kernel_info)
APPLET(linux)
APPLET(make_cloop)
APPLET(umlswitch)
APPLET(xnest_launch)

#undef APPLET

#endif
