#include "guest/boot.h"
#include "applets.h"
#include "core/args.h"
#include "core/err.h"
#include "core/progress.h"
#include "core/xio.h"
#include "guest/cookie.h"
#include "remote/index.h"
#include "share/fuse.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
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
	"The guest's kernel runs in a jail: namespaces of its own (no host\n"
	"network, no other process in sight), an empty root holding only its\n"
	"sockets, no terminal of yours, limits, no_new_privs, landlock and a\n"
	"seccomp filter, so that a guest that takes its kernel reaches nothing of\n"
	"yours.  So the fast mode is the default: UML's seccomp stubs and the\n"
	"host's CPUs (at most 4), in which any program in the guest could take\n"
	"the guest's kernel (its root can anyway).  Where the jail cannot be\n"
	"complete (no unprivileged user namespaces) the guest runs isolated and\n"
	"umlk says why.  --info and --verbose name the mode and the jail.\n";

static const struct kopt opts[] = {
	{ 'c', "--cow", "FILE", "keep the guest's changes in FILE (created if missing,\nreused otherwise); default: a temporary COW file,\nremoved at exit, as on a live CD.  For a read-only or\nstacked root, FILE holds the overlay's upper layer (a\nheader and a sparse ext4 that umlk makes itself)" },
	{ 'Z', "--cow-size", "SIZE", "the upper layer's size when --cow makes one (default 4G)" },
	{ 'O', "--overlay-size", "SIZE", "without --cow, the memory a read-only root's writes\nmay take (default 3/4 of --mem, at least 512M)" },
	{ 'R', "--root", "PATH", "the root's file inside the ISO, when umlk does not find\nit (e.g. --root live/filesystem.squashfs)" },
	{ 'I', "--info", NULL, "print what IMAGE holds (kind, root layers, filesystems,\nthe kernel parameters a boot passes) and boot nothing" },
	{ 'm', "--mem", "SIZE", "guest memory (default 256M)" },
	{ 'C', "--cloop-cache", "SIZE", "inflated cloop blocks kept in memory (default 32M)" },
	{ 'k', "--kernel", "PATH", "the UML kernel (default: the one embedded in this file,\nelse build/linux beside it)" },
	{ 'H', "--home", "DIR", "share host directory DIR as the guest's /home, and\nnothing else of the host (virtio-fs, served by umlk,\nwhich never lets a name, '..' or a link lead out of DIR)" },
	{ 0, "--home", "IMAGE", "the guest's /home in IMAGE, an ext2/3/4 image file\n(made, sparse, when missing and its name ends in .img)" },
	{ 0, "--home", "ssh://[USER@]HOST[:PORT]/PATH", "the guest's /home in PATH on an SSH server, over\nSFTP by your own ssh (its keys, agent and config): any\nquestion ssh asks comes before the guest starts.  PATH\nis absolute, or below your home there as /~/PATH.  A\nlost link fails the guest's files there with EIO, and\nthe next access connects again" },
	{ 256, "--ssh-command", "'CMD'", "run CMD instead of 'ssh' for --home ssh://, split at\nblanks (e.g. --ssh-command 'ssh -F my_config')" },
	{ 257, "--ssh-timeout", "SECONDS", "how long a request to --home ssh:// may take before the\nlink counts as lost (default 20)" },
	{ 'S', "--home-size", "SIZE", "the size of a new home image (default 1G)" },
	{ 'Q', "--home-cache", "MODE", "what the guest may keep of --home DIR or ssh://: 'auto' names\nand attributes for a second (ssh://: 20 s, as sshfs), file\ndata while the file stays the same (a change on the host\nshows within that time; the default); 'always' for a day,\nfor a directory only the guest changes while it runs;\n'none' asks the host at every access" },
	{ 'F', "--disk-full-wait", "SECONDS", "when the disk holding --cow or --home is full, the guest\nwaits this long for room (a line says so; it goes on when\nthere is room), then it is stopped and umlk exits 75;\n'inf' waits for ever, 0 stops it at once (default 60 with\na command, for ever without).  Other write errors are\nthe guest's I/O errors, and umlk exits 74" },
	{ 'n', "--hostname", "NAME", "the guest's hostname (default: the one DHCP offers, else\nthe image's /etc/hostname)" },
	{ 'N', "--net", "SOCKET", "connect eth0 (virtio-net) to the umlk umlswitch at\nSOCKET; the guest configures it by DHCP" },
	{ 0, "--net", "auto", "the same, on this user's private switch with a DHCP\nserver, started when needed and shared by every guest\nbooted so (in $XDG_RUNTIME_DIR/umlk, else /tmp/umlk-UID)" },
	{ 'M', "--mac", "MAC", "eth0's MAC (default: derived from the COW file's path,\nso a kept COW file keeps its address)" },
	{ 'D', "--no-dhcp", NULL, "leave eth0 unconfigured (for a network without DHCP)" },
	{ 'T', "--trusted", NULL, "the fast mode even where the jail cannot be complete (no\nunprivileged user namespaces on this system): any program\nin the guest can then act as you, with your files.  Only\nfor images you trust" },
	{ 'L', "--isolated", NULL, "ptrace mode on one CPU: the guest's own users cannot\ntake its kernel (slower at starting processes).  For\nguests whose users must stay apart from the guest's root" },
	{ 'G', "--no-jail", NULL, "run the kernel without its jail, as you, with your files,\nnetwork, terminal and processes in its reach (debugging)" },
	{ 'P', "--cpus", "N", "guest CPUs in the fast mode (default: this host's, at\nmost 4); --isolated has one" },
	{ 259, "--host-cpu", "N|auto|none", "the host CPU the guest's kernel and processes stay on.\n'auto' (the default): a guest of one CPU stays on one\nhost CPU, the first no other guest of yours holds (on a\nhost that is itself a virtual machine, a guest's system\ncalls are several times faster so); a guest of several\nkeeps each CPU on a host CPU of its own, CPU 0 on that\nfirst free one; 'none' lets the host move a guest of\none CPU" },
	{ 'A', "--append", "'PARAMS'", "add these kernel parameters, after umlk's own (so\nthey win where both set one)" },
	{ 'e', "--env", "NAME=VALUE", "set a variable for COMMAND (up to 16 times)" },
	{ 'X', "--x11-cookie", "HEX", "an MIT-MAGIC-COOKIE-1 for the X display that --env\nDISPLAY=HOST:N names; written to /root/.Xauthority in\nthe guest, and XAUTHORITY set (xnest-launch uses it)" },
	{ 'W', "--mirror", "URL", "the same image at URL too, tried in turn when a server\nfails or serves a chunk that fails its hash (up to 7)" },
	{ 'J', "--index", "URL", "the index is there (default: the image's URL.umlkidx)" },
	{ 'Y', "--insecure", NULL, "allow an http:// image without #sha256= (nothing is then\nverified: say so, and only on a network you trust)" },
	{ 'K', "--cache-max", "SIZE", "chunks kept in the cache, least recently used dropped\nfirst (default 4G)" },
	{ 'U', "--timeout", "SECONDS", "for connecting to a web server, and for each answer\n(default 10 and 20); each request is tried 3 times" },
	{ 'i', "--init", "PATH", "the static umlk to run as the guest's /init (default:\nthis file)" },
	{ 258, "--record-profile", "SIZE:FILE", "write the order in which this boot first read IMAGE's\nchunks of SIZE bytes to FILE, one chunk number a line\n(what 'umlk index --profile --xnest' records)" },
	{ 'v', "-v --verbose", NULL, "show the kernel's messages (on stderr), and at the end\nhow much of IMAGE was read" },
	{ 'q', "-q --quiet", NULL, "no notes on stderr" },
	{ 0 },
};

APPLET(boot, "boot", "boot a live CD image as a UML virtual machine", usage, opts);

/* --disk-full-wait SECONDS: a number, or inf; 0 is BOOT_WAIT_NONE. */
static int xarg_wait(const char *opt, const char *v)
{
	if (!strcmp(v, "inf"))
		return BOOT_WAIT_FOREVER;
	int s = (int)xarg_num(opt, v, 0, 86400 * 365);
	return s ? s : BOOT_WAIT_NONE;
}

/* The chunks a boot read, in order, one decimal number a line: the file
 * whole or not at all. */
static void xwrite_profile(const char *path, const uint32_t *list, uint32_t n)
{
	char *text = malloc((size_t)n * 11 + 1);
	size_t len = 0;

	if (!text)
		xdie("out of memory");
	for (uint32_t i = 0; i < n; i++)
		len += (size_t)sprintf(text + len, "%u\n", list[i]);
	if (kout_write_file(path, text, len, 0644, 0) < 0)
		xdie("%s", k_errmsg());
	free(text);
}

/* --record-profile SIZE:FILE: the boot records its first reads in chunks
 * of SIZE into *LIST; returns FILE. */
static const char *xarg_record(const char *arg, struct boot_opts *o, uint32_t **list, uint32_t *n)
{
	char size[32];
	const char *colon = strchr(arg, ':');

	if (!colon || colon == arg || (size_t)(colon - arg) >= sizeof(size) || !colon[1])
		xusage("--record-profile: '%s' is not SIZE:FILE", arg);
	snprintf(size, sizeof(size), "%.*s", (int)(colon - arg), arg);
	uint64_t v = xarg_size("--record-profile", size, KIDX_CHUNK_MIN, KIDX_CHUNK_MAX);
	if (v & (v - 1))
		xusage("--record-profile: %s is not a power of two", size);
	o->trace_chunk = (uint32_t)v;
	o->trace_list = list;
	o->trace_n = n;
	return colon + 1;
}

int boot_main(int argc, char **argv)
{
	struct boot_opts o = { .mem = 256ULL << 20 };
	const char *record = NULL;
	int c, end = argc;

	/* The command after "--" is the guest's, never parsed here. */
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--")) {
			end = i;
			break;
		}
	}
	while ((c = xkopt_next(end, argv, opts)) != -1) {
		switch (c) {
		case 'c': o.cow = optarg; break;
		case 'm': o.mem = xarg_size("--mem", optarg, 16ULL << 20, 64ULL << 30); break;
		case 'C': o.cache_bytes = xarg_size("--cloop-cache", optarg, 1ULL << 20, 64ULL << 30); break;
		case 'k': o.kernel = optarg; break;
		case 'H': o.home = optarg; break;
		case 256: o.ssh_command = optarg; break;
		case 257: o.ssh_timeout = (unsigned)xarg_num("--ssh-timeout", optarg, 1, 3600); break;
		case 'S': o.home_size = xarg_size("--home-size", optarg, 16ULL << 20, 16ULL << 40); break;
		case 'Q':
			if ((o.home_cache = fshare_cache_of(optarg)) < 0)
				xusage("--home-cache: '%s' is not auto, always or none", optarg);
			o.home_cache_set = 1;
			break;
		case 'n': o.hostname = optarg; break;
		case 'F': o.disk_full_wait = xarg_wait("--disk-full-wait", optarg); break;
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
		case 'L': o.isolated = 1; break;
		case 'G': o.no_jail = 1; break;
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
		case 259:
			o.host_cpu = !strcmp(optarg, "auto") ? BOOT_HOST_CPU_AUTO :
				     !strcmp(optarg, "none") ? BOOT_HOST_CPU_NONE :
				     (int)xarg_num("--host-cpu", optarg, 0, 4095) + 1;
			break;
		case 'W':
			if (o.nmirrors == 7)
				xusage("--mirror: at most 7");
			o.mirrors[o.nmirrors++] = optarg;
			break;
		case 'J': o.index_url = optarg; break;
		case 'Y': o.insecure = 1; break;
		case 'K': o.cache_max = xarg_size("--cache-max", optarg, 64ULL << 10, 1ULL << 50); break;
		case 'U': o.timeout_s = (int)xarg_num("--timeout", optarg, 1, 3600); break;
		case 258: record = optarg; break;
		case 'v': o.verbose = 1; break;
		case 'q': k_quiet = 1; break;
		}
	}
	xarg_count(end, argv, 1, 1);
	uint32_t *list = NULL, n = 0;
	const char *record_file = record ? xarg_record(record, &o, &list, &n) : NULL;
	if (o.isolated && o.trusted)
		xusage("--isolated and --trusted: one or the other");
	if (o.isolated && o.cpus > 1)
		xusage("--cpus %d: --isolated runs the guest on one CPU", o.cpus);
	if (o.info && end < argc)
		xusage("--info boots nothing: no command goes with it");
	o.image = argv[optind];
	if (end < argc) {
		if (end + 1 == argc)
			xusage("no command after '--'");
		o.cmd = argv + end + 1;
	}
	int status = xboot(&o);
	if (record_file)
		xwrite_profile(record_file, list, n);
	free(list);
	return status;
}
