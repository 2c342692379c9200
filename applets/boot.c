#include "guest/boot.h"
#include "applets.h"
#include "core/args.h"
#include "core/err.h"
#include "core/progress.h"
#include "guest/cookie.h"

#include <stdio.h>
#include <string.h>

const char boot_usage[] =
	"Usage: umlk boot [OPTIONS] IMAGE [-- COMMAND [ARGS...]]\n"
	"       umlk boot [OPTIONS] http://HOST/PATH/IMAGE#sha256=HEX [-- COMMAND...]\n"
	"\n"
	"Boot IMAGE as a User Mode Linux virtual machine, as an ordinary user.\n"
	"IMAGE is a live ISO (KNOPPIX's cloop files, Debian Live, Ubuntu casper,\n"
	"Fedora LiveOS, Arch and SystemRescue: --info shows what is found), a\n"
	"cloop file, or an ext2/3/4, squashfs or iso9660 filesystem image.  It is\n"
	"read where it lies: umlk itself serves it to the guest as its disks\n"
	"(virtio over vhost-user), inflating a cloop block by block as the guest\n"
	"reads it; nothing is extracted or copied.  An ext2/3/4 root is written\n"
	"through a COW file (the UML kernel's format), never the image.  A root\n"
	"that is read-only (squashfs, iso9660 inside a cloop) or several images\n"
	"stacked gets an overlay: its writes go to memory, or with --cow to an\n"
	"upper layer kept in the COW file.  A live ISO's own kernel parameters\n"
	"(its boot loader's) are passed on.\n"
	"\n"
	"IMAGE may be on a web server, published with 'umlk index' (which prints\n"
	"the URL): only the chunks the guest reads are fetched, each checked\n"
	"against the SHA-256 the index gives it, and the index against the\n"
	"SHA-256 in the URL, before any of it is used.  Verified chunks are kept\n"
	"in ${XDG_CACHE_HOME:-~/.cache}/umlk (a second boot needs no network).\n"
	"\n"
	"With COMMAND, the guest runs it as root in its root filesystem, its\n"
	"output comes to this terminal, and umlk exits with its exit status (like\n"
	"'docker run'); the command's stdin is this terminal if stdin is one, else\n"
	"/dev/null.  Without COMMAND, the guest's own init starts on this\n"
	"terminal, which is raw (Ctrl-C and Ctrl-Z are the guest's); as in ssh,\n"
	"after Enter, '~.' halts the guest and umlk exits 0, '~~' types a '~',\n"
	"'~?' lists these escapes.  SIGINT, SIGTERM or SIGHUP halt it too.\n"
	"\n"
	"  --cow FILE       keep the guest's changes in FILE (created if missing,\n"
	"                   reused otherwise); default: a temporary COW file,\n"
	"                   removed at exit, as on a live CD.  For a read-only or\n"
	"                   stacked root, FILE holds the overlay's upper layer (a\n"
	"                   header and a sparse ext4 that umlk makes itself)\n"
	"  --cow-size SIZE  the upper layer's size when --cow makes one (default 4G)\n"
	"  --overlay-size SIZE  without --cow, the memory a read-only root's writes\n"
	"                   may take (default 3/4 of --mem, at least 512M)\n"
	"  --root PATH      the root's file inside the ISO, when umlk does not find\n"
	"                   it (e.g. --root live/filesystem.squashfs)\n"
	"  --info           print what IMAGE holds (kind, root layers, filesystems,\n"
	"                   the kernel parameters a boot passes) and boot nothing\n"
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
	"  --net SOCKET     connect eth0 (virtio-net) to the umlk umlswitch at\n"
	"                   SOCKET; the guest configures it by DHCP\n"
	"  --net auto       the same, on this user's private switch with a DHCP\n"
	"                   server, started when needed and shared by every guest\n"
	"                   booted so (in $XDG_RUNTIME_DIR/umlk, else /tmp/umlk-UID)\n"
	"  --mac MAC        eth0's MAC (default: derived from the COW file's path,\n"
	"                   so a kept COW file keeps its address)\n"
	"  --no-dhcp        leave eth0 unconfigured (for a network without DHCP)\n"
	"  --trusted        run the guest in seccomp mode, several CPUs (see --cpus)\n"
	"                   and about 2x faster at starting processes.  It gives up\n"
	"                   the isolation: in seccomp mode the guest's programs can\n"
	"                   reach the guest kernel's memory, and the guest kernel acts\n"
	"                   with every right you have, so any program in the guest can\n"
	"                   read and change your files.  Only for images you trust.\n"
	"                   Default: ptrace mode on one CPU, isolated.\n"
	"  --cpus N         guest CPUs with --trusted (default: this host's, at most\n"
	"                   4); more than one is refused without --trusted\n"
	"  --append 'PARAMS'  add these kernel parameters, after umlk's own (so\n"
	"                   they win where both set one)\n"
	"  --env NAME=VALUE set a variable for COMMAND (up to 16 times)\n"
	"  --x11-cookie HEX an MIT-MAGIC-COOKIE-1 for the X display that --env\n"
	"                   DISPLAY=HOST:N names; written to /root/.Xauthority in\n"
	"                   the guest, and XAUTHORITY set (xnest-launch uses it)\n"
	"  --mirror URL     the same image at URL too, tried in turn when a server\n"
	"                   fails or serves a chunk that fails its hash (up to 7)\n"
	"  --index URL      the index is there (default: the image's URL.umlkidx)\n"
	"  --insecure       allow an http:// image without #sha256= (nothing is then\n"
	"                   verified: say so, and only on a network you trust)\n"
	"  --cache-max SIZE chunks kept in the cache, least recently used dropped\n"
	"                   first (default 4G)\n"
	"  --timeout SECONDS  for connecting to a web server, and for each answer\n"
	"                   (default 10 and 20); each request is tried 3 times\n"
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
		{ "trusted", no_argument, NULL, 'T' },
		{ "append", required_argument, NULL, 'A' },
		{ "root", required_argument, NULL, 'R' },
		{ "info", no_argument, NULL, 'I' },
		{ "cow-size", required_argument, NULL, 'Z' },
		{ "overlay-size", required_argument, NULL, 'O' },
		{ "cpus", required_argument, NULL, 'P' },
		{ "mirror", required_argument, NULL, 'W' },
		{ "index", required_argument, NULL, 'J' },
		{ "insecure", no_argument, NULL, 'Y' },
		{ "cache-max", required_argument, NULL, 'K' },
		{ "timeout", required_argument, NULL, 'U' },
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
		case 'T': o.trusted = 1; break;
		case 'R': o.root = optarg; break;
		case 'I': o.info = 1; break;
		case 'Z': o.cow_size = xarg_size("--cow-size", optarg, 64ULL << 20, 16ULL << 40); break;
		case 'O': {
			uint64_t v = xarg_size("--overlay-size", optarg, 16ULL << 20, 1ULL << 40);
			static char s[24];
			snprintf(s, sizeof(s), "%lluM", (unsigned long long)(v >> 20));
			o.overlay_size = s;
			break;
		}
		case 'A': {
			int words = 0, in = 0;
			for (const char *ch = optarg; *ch; ch++) {
				words += !in && *ch != ' ' && *ch != '\t';
				in = *ch != ' ' && *ch != '\t';
			}
			if (words > BOOT_APPEND_MAX || strchr(optarg, '\n'))
				xusage("--append: at most %d parameters, on one line", BOOT_APPEND_MAX);
			o.append = optarg;
			break;
		}
		case 'P': o.cpus = (int)xarg_num("--cpus", optarg, 1, 8); break;
		case 'W':
			if (o.nmirrors == 7)
				xusage("--mirror: at most 7");
			o.mirrors[o.nmirrors++] = optarg;
			break;
		case 'J': o.index_url = optarg; break;
		case 'Y': o.insecure = 1; break;
		case 'K': o.cache_max = xarg_size("--cache-max", optarg, 1ULL << 20, 1ULL << 50); break;
		case 'U': o.timeout_s = (int)xarg_num("--timeout", optarg, 1, 3600); break;
		case 'v': o.verbose = 1; break;
		case 'q': k_quiet = 1; break;
		}
	}
	xarg_count(end, argv, 1, 1);
	xboot_cpus(o.cpus, o.trusted);  /* refused before anything starts */
	if (o.info && end < argc)
		xusage("--info boots nothing: no command goes with it");
	o.image = argv[optind];
	if (end < argc) {
		if (end + 1 == argc)
			xusage("no command after '--'");
		o.cmd = argv + end + 1;
	}
	return xboot(&o);
}
