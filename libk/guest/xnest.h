/* xnest: the guest's X desktop in a window on the host.
 *
 * xnest_launch() starts Xnest (or Xephyr) on the host's $DISPLAY with a
 * fresh MIT-MAGIC-COOKIE-1 (-auth), letting it pick a free display
 * (-displayfd) and listen on nothing but its Unix socket; joins the
 * guest's switch with a gateway (tcpgw.h) that takes an address by DHCP
 * and relays TCP port 6000+N there to that socket; then boots the guest
 * ('umlk boot', a child process) with DISPLAY=GATEWAY:N and the cookie,
 * running the image's X session or the program asked for.  The guest
 * ending closes the window; the window closing (Xnest exiting) halts the
 * guest cleanly; SIGINT/SIGTERM do both.
 */
#ifndef UMLK_XNEST_H
#define UMLK_XNEST_H

struct xnest_opts {
	const char *image;
	const char *net;                /* switch socket or "auto" */
	const char *run;                /* shell command in the guest; NULL: its X session */
	const char *geometry;           /* "1024x768" */
	const char *title;              /* window title; NULL: "umlk: IMAGE" */
	int xephyr;                     /* Xephyr, not Xnest */
	/* passed on to umlk boot as they are (NULL: not given) */
	const char *cow, *kernel, *init, *home, *mem, *cpus;
	const char *disk_full_wait;     /* passed to boot as it is */
	const char *ssh_command, *ssh_timeout;  /* the same */
	int trusted, isolated, no_jail;
	int verbose;
	const char *record_profile;     /* "SIZE:FILE", boot's --record-profile; NULL: none */
};

/* Returns the exit status: the program's (or the session's), 0 when the
 * window was closed, 128+N after signal N. */
int xnest_launch(const struct xnest_opts *o);

#endif
