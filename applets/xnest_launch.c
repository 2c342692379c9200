#include "applets.h"
#include "core/args.h"
#include "core/err.h"
#include "core/progress.h"
#include "guest/boot.h"
#include "guest/xnest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
	"Usage: umlk xnest-launch [OPTIONS] IMAGE\n"
	"\n"
	"Show a guest's X desktop in a window on this host's display ($DISPLAY).\n"
	"Starts Xnest (or Xephyr) on a free display that listens only on its Unix\n"
	"socket and admits only a fresh MIT-MAGIC-COOKIE-1; puts a gateway on the\n"
	"guest's switch (an address from its DHCP server) that carries TCP port\n"
	"6000+N there to that socket; then boots IMAGE as 'umlk boot' would, with\n"
	"DISPLAY pointing at the gateway and the cookie in the guest's\n"
	"/root/.Xauthority, and runs the image's X session (~/.xsession, else\n"
	"/etc/X11/Xsession, else an xterm) or the command given with --run.\n"
	"IMAGE may be an http:// URL, as for 'umlk boot'.\n"
	"\n"
	"When the session or the command ends, the guest powers off, the window\n"
	"closes, and xnest-launch exits with its status.  Closing the window halts\n"
	"the guest cleanly (exit 0); SIGINT or SIGTERM do both (128+signal).  No\n"
	"root is needed: the gateway is a user-space program on the switch.\n";

static const struct kopt opts[] = {
	{ 'r', "--run", "'COMMAND'", "run this shell command in the guest instead of its\nsession, e.g. --run 'xterm -e top'" },
	{ 'N', "--net", "SOCKET", "the guest's switch (default: auto, the user's private\nnetwork that umlk boot --net auto uses)" },
	{ 'g', "--geometry", "WxH", "the window's size (default 1024x768)" },
	{ 't', "--title", "TEXT", "the window's title (default 'umlk: IMAGE')" },
	{ 'x', "--xephyr", NULL, "use Xephyr instead of Xnest (also the fallback when\nXnest is not installed)" },
	{ 'c', "--cow", "FILE", "as for umlk boot" },
	{ 'm', "--mem", "SIZE", "the same" },
	{ 'k', "--kernel", "PATH", "the same" },
	{ 'H', "--home", "DIR|IMAGE|ssh://...", "the same" },
	{ 256, "--ssh-command", "'CMD'", "the same" },
	{ 257, "--ssh-timeout", "SECONDS", "the same" },
	{ 'F', "--disk-full-wait", "SECONDS", "the same" },
	{ 'i', "--init", "PATH", "the same" },
	{ 'T', "--trusted", NULL, "the same" },
	{ 'L', "--isolated", NULL, "the same" },
	{ 'G', "--no-jail", NULL, "the same" },
	{ 'P', "--cpus", "N", "the same" },
	{ 'v', "-v --verbose", NULL, "the same" },
	{ 'q', "-q --quiet", NULL, "no notes on stderr" },
	{ 0 },
};

APPLET(xnest_launch, "xnest-launch", "a guest's X desktop in an Xnest window on this host", usage, opts);

int xnest_launch_main(int argc, char **argv)
{
	struct xnest_opts o = { .net = "auto", .geometry = "1024x768" };
	int c;

	while ((c = xkopt_next(argc, argv, opts)) != -1) {
		switch (c) {
		case 'r': o.run = optarg; break;
		case 'N': o.net = optarg; break;
		case 'g': {
			unsigned w, h;
			char end;
			if (sscanf(optarg, "%ux%u%c", &w, &h, &end) != 2 || w < 64 || h < 64 || w > 16384 || h > 16384)
				xusage("--geometry: '%s' is not WIDTHxHEIGHT (64 to 16384 each)", optarg);
			o.geometry = optarg;
			break;
		}
		case 't': o.title = optarg; break;
		case 'x': o.xephyr = 1; break;
		case 'c': o.cow = optarg; break;
		case 'm': xarg_size("--mem", optarg, 16ULL << 20, 64ULL << 30); o.mem = optarg; break;
		case 'k': o.kernel = optarg; break;
		case 'H': o.home = optarg; break;
		case 256: o.ssh_command = optarg; break;
		case 257: xarg_num("--ssh-timeout", optarg, 1, 3600); o.ssh_timeout = optarg; break;
		case 'F': o.disk_full_wait = optarg; break;
		case 'i': o.init = optarg; break;
		case 'T': o.trusted = 1; break;
		case 'L': o.isolated = 1; break;
		case 'G': o.no_jail = 1; break;
		case 'P': xarg_num("--cpus", optarg, 1, 8); o.cpus = optarg; break;
		case 'v': o.verbose = 1; break;
		case 'q': k_quiet = 1; break;
		}
	}
	xarg_count(argc, argv, 1, 1);
	if (o.cpus && o.isolated && atoi(o.cpus) > 1)   /* refused before anything starts */
		xusage("--cpus %s: --isolated runs the guest on one CPU", o.cpus);
	o.image = argv[optind];
	return xnest_launch(&o);
}
