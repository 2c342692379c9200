#include "guest/boot.h"
#include "applets.h"
#include "core/args.h"
#include "core/err.h"
#include "core/progress.h"
#include "guest/cookie.h"

#include <string.h>

const char boot_usage[] =
	"Usage: umlk boot [OPTIONS] IMAGE [-- COMMAND [ARGS...]]\n"
	"\n"
	"Boot IMAGE as a User Mode Linux virtual machine, as an ordinary user.\n"
	"IMAGE is a KNOPPIX-style ISO (its KNOPPIX/KNOPPIX cloop file is used), a\n"
	"cloop file, or an ext2/3/4, squashfs or iso9660 filesystem image.  It is\n"
	"read where it lies: umlk itself serves it to the guest as its disk\n"
	"/dev/vda (virtio over vhost-user), inflating a cloop block by block as\n"
	"the guest reads it; nothing is extracted or copied.  A root that is\n"
	"read-only (iso9660 inside the cloop, as KNOPPIX has, or squashfs) gets a\n"
	"tmpfs overlay for its writes.  The guest writes to a COW file (the UML\n"
	"kernel's format), never to the image.\n"
	"\n"
	"With COMMAND, the guest runs it as root in its root filesystem, its\n"
	"output comes to this terminal, and umlk exits with its exit status (like\n"
	"'docker run'); the command's stdin is this terminal if stdin is one, else\n"
	"/dev/null.  Without COMMAND, the guest's own init starts on this\n"
	"terminal.\n"
	"\n"
	"  --cow FILE       keep the guest's changes in FILE (created if missing,\n"
	"                   reused otherwise); default: a temporary COW file,\n"
	"                   removed at exit, as on a live CD\n"
	"  --mem SIZE       guest memory (default 256M)\n"
	"  --cloop-cache SIZE  inflated cloop blocks kept in memory (default 32M)\n"
	"  --kernel PATH    the UML kernel (default: the one embedded in this file,\n"
	"                   else build/linux beside it)\n"
	"  --home DIR       share host directory DIR as the guest's /home, and\n"
	"                   nothing else of the host (virtio-fs, served by umlk,\n"
	"                   which never lets a name, '..' or a link lead out of DIR)\n"
	"  --home IMAGE     the guest's /home in IMAGE, an ext2/3/4 image file\n"
	"                   (made, sparse, when missing and its name ends in .img)\n"
	"  --home-size SIZE the size of a new home image (default 1G)\n"
	"  --hostname NAME  the guest's hostname (default: the one DHCP offers, else\n"
	"                   the image's /etc/hostname)\n"
	"  --net SOCKET     connect eth0 to the switch at SOCKET (umlk umlswitch or\n"
	"                   uml_switch); the guest configures it by DHCP\n"
	"  --net auto       the same, on this user's private switch with a DHCP\n"
	"                   server, started when needed and shared by every guest\n"
	"                   booted so (in $XDG_RUNTIME_DIR/umlk, else /tmp/umlk-UID)\n"
	"  --mac MAC        eth0's MAC (default: derived from the COW file's path,\n"
	"                   so a kept COW file keeps its address)\n"
	"  --no-dhcp        leave eth0 unconfigured (for a network without DHCP)\n"
	"  --env NAME=VALUE set a variable for COMMAND (up to 16 times)\n"
	"  --x11-cookie HEX an MIT-MAGIC-COOKIE-1 for the X display that --env\n"
	"                   DISPLAY=HOST:N names; written to /root/.Xauthority in\n"
	"                   the guest, and XAUTHORITY set (xnest-launch uses it)\n"
	"  --init PATH      the static umlk to run as the guest's /init (default:\n"
	"                   this file)\n"
	"  -v, --verbose    show the kernel's messages (on stderr), and at the end\n"
	"                   how much of IMAGE was read\n"
	"  -q, --quiet      no notes on stderr\n"
	"      --help       show this text\n";

int boot_main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "cow", required_argument, NULL, 'c' },
		{ "mem", required_argument, NULL, 'm' },
		{ "cloop-cache", required_argument, NULL, 'C' },
		{ "kernel", required_argument, NULL, 'k' },
		{ "home", required_argument, NULL, 'H' },
		{ "home-size", required_argument, NULL, 'S' },
		{ "hostname", required_argument, NULL, 'n' },
		{ "init", required_argument, NULL, 'i' },
		{ "net", required_argument, NULL, 'N' },
		{ "mac", required_argument, NULL, 'M' },
		{ "no-dhcp", no_argument, NULL, 'D' },
		{ "env", required_argument, NULL, 'e' },
		{ "x11-cookie", required_argument, NULL, 'X' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "quiet", no_argument, NULL, 'q' },
		{ 0 },
	};
	struct boot_opts o = { .mem = 256ULL << 20 };
	int c, end = argc;

	/* The command after "--" is the guest's, never parsed here. */
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--")) {
			end = i;
			break;
		}
	}
	while ((c = xgetopt(end, argv, "vq", lo)) != -1) {
		switch (c) {
		case 'c': o.cow = optarg; break;
		case 'm': o.mem = xarg_size("--mem", optarg, 16ULL << 20, 64ULL << 30); break;
		case 'C': o.cache_bytes = xarg_size("--cloop-cache", optarg, 1ULL << 20, 64ULL << 30); break;
		case 'k': o.kernel = optarg; break;
		case 'H': o.home = optarg; break;
		case 'S': o.home_size = xarg_size("--home-size", optarg, 16ULL << 20, 16ULL << 40); break;
		case 'n': o.hostname = optarg; break;
		case 'i': o.init = optarg; break;
		case 'N': o.net = optarg; break;
		case 'M': o.mac = optarg; break;
		case 'D': o.no_dhcp = 1; break;
		case 'e': {
			const char *eq = strchr(optarg, '=');
			if (!eq || eq == optarg || strchr(optarg, '\n') || strlen(optarg) > 1024)
				xusage("--env: '%s' is not NAME=VALUE (one line, at most 1024 bytes)", optarg);
			for (const char *ch = optarg; ch < eq; ch++)
				if (!(*ch == '_' || (*ch >= 'A' && *ch <= 'Z') || (*ch >= 'a' && *ch <= 'z') ||
				      (ch > optarg && *ch >= '0' && *ch <= '9')))
					xusage("--env: '%.*s' is not a variable name", (int)(eq - optarg), optarg);
			if (o.nenv == 16)
				xusage("--env: at most 16");
			o.env[o.nenv++] = optarg;
			break;
		}
		case 'X': {
			uint8_t ck[COOKIE_LEN];
			if (cookie_unhex(optarg, ck) < 0)
				xusage("--x11-cookie: not 32 lowercase hex digits");
			o.xcookie = optarg;
			break;
		}
		case 'v': o.verbose = 1; break;
		case 'q': k_quiet = 1; break;
		}
	}
	xarg_count(end, argv, 1, 1);
	o.image = argv[optind];
	if (end < argc) {
		if (end + 1 == argc)
			xusage("no command after '--'");
		o.cmd = argv + end + 1;
	}
	return xboot(&o);
}
