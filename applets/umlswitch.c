#include "applets.h"
#include "core/args.h"
#include "core/daemon.h"
#include "core/err.h"
#include "net/switch.h"
#include "net/switchproto.h"
#include "net/vxlan.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char usage[] =
	"Usage: umlk umlswitch [-unix SOCKET] [-hub] [-tap DEV] [-daemon] [OPTIONS]\n"
	"       umlk umlswitch ... -vxlan VNI -vxlan-remote ADDR[:PORT] [-vxlan-remote ...]\n"
	"       umlk umlswitch -status [-unix SOCKET]\n"
	"\n"
	"A virtual Ethernet switch for User Mode Linux guests.  One socket takes\n"
	"both kinds of port, told apart by their first message:\n"
	"  - virtio-net guests (vhost-user, as 'umlk boot --net SOCKET' connects\n"
	"    them: virtio_uml.device=SOCKET:1).  Frames move through shared memory\n"
	"    with checksum and TCP segmentation offload (TSO4/6) and mergeable\n"
	"    receive buffers, so TCP between guests travels in frames up to 64 KiB;\n"
	"    a large frame bound for a port that cannot take it is cut into\n"
	"    segments there, checksums computed.\n"
	"  - the kernel's 'daemon' transport (eth0=daemon,,unix,SOCKET), uml_switch's\n"
	"    protocol, spoken by older UML kernels and by umlk's own services\n"
	"    (dhcpd, the X gateway).  The command line is uml_switch's (options take\n"
	"    one dash or two), and either switch serves the other's daemon ports.\n"
	"Every guest on the same SOCKET is on one Ethernet segment.  Source MACs\n"
	"are learnt per port and forgotten after -age seconds or when the port\n"
	"leaves; frames to unknown, broadcast and multicast MACs go to every port.\n"
	"A port that does not take its frames loses only its own (its queue holds\n"
	"512 frames).\n"
	"\n"
	"With -vxlan, the segment reaches other hosts over VXLAN (RFC 7348, UDP\n"
	"port 4789), as the Linux kernel's vxlan device, Open vSwitch and hardware\n"
	"switches carry it: frames go to the remotes (broadcasts, multicasts and\n"
	"unknown destinations to each), MACs are learnt behind the remote they\n"
	"came from, and guests are given an MTU that fits the tunnel (1450 over a\n"
	"1500-byte IPv4 underlay): virtio-net tells them, and umlk dhcpd offers it\n"
	"with --mtu.  VXLAN has no authentication: only datagrams from the\n"
	"remotes' addresses are taken, and anyone who can send from one of those\n"
	"is on the segment.  Use it on networks you trust, or inside an encrypted\n"
	"tunnel (WireGuard, IPsec, ssh).\n"
	"\n"
	"SIGINT or SIGTERM stops the switch and removes SOCKET.\n";

static const struct kopt opts[] = {
	{ 'u', "-unix", "SOCKET", "control socket (default /tmp/uml.ctl, the kernel's default)" },
	{ 'H', "-hub", NULL, "a hub: send every frame to every port" },
	{ 't', "-tap", "DEV", "also attach the host tap device DEV (created if missing,\nwhich needs root; see 'ip tuntap add ... user YOU')" },
	{ 'd', "-daemon", NULL, "go into the background once the socket is ready" },
	{ 'p', "-ports", "N", "refuse ports beyond N (default 64)" },
	{ 'a', "-age", "SECONDS", "forget a MAC not seen for this long (default 300)" },
	{ 'P', "-pidfile", "FILE", "write the switch's process ID to FILE" },
	{ 'l', "-log", "FILE", "with -daemon, append log lines to FILE (else they are dropped)" },
	{ 'x', "-vxlan", "VNI", "a VXLAN port on network VNI (0 to 16777215)" },
	{ 'r', "-vxlan-remote", "ADDR[:PORT]", "a host on the segment (IPv4, or [IPv6]; port 4789 by\ndefault); up to 64, each its own port of the switch" },
	{ 'L', "-vxlan-local", "ADDR[:PORT]", "the UDP address to listen on (default: every address,\nport 4789)" },
	{ 'm', "-vxlan-mtu", "N", "the guests' MTU (default: 1500 less the tunnel's headers,\n1450 over IPv4, 1430 over IPv6)" },
	{ 'i', "-idle-exit", "SECS", "stop when no guest has been connected for SECS seconds\n(service ports such as umlk dhcpd do not count)" },
	{ 'q', "-q -quiet", NULL, "log nothing" },
	{ 'c', "-compat-v0", NULL, NULL },
	{ 's', "-status", NULL, "print the running switch's ports (with their offloads and\nframes over 1514 bytes), learnt MACs and counters" },
	{ 0 },
};

APPLET(umlswitch, "umlswitch", "virtual Ethernet switch for UML guests (uml_switch compatible)", usage, opts);

static const char *g_log, *g_pidfile;
static int g_daemon;

static void xready(void)
{
	if (g_daemon)
		xdaemonize(g_log, g_pidfile);
	else if (g_pidfile && k_write_pidfile(g_pidfile) < 0)
		k_warn("%s", k_errmsg());
}

int umlswitch_main(int argc, char **argv)
{
	struct switch_conf c = { .ctl_path = SW_DEFAULT_CTL, .max_ports = 64, .age_secs = 300,
				 .ready = xready, .log = k_log };
	int status = 0, opt;
	static struct vxlan_conf vx;

	while ((opt = xkopt_next(argc, argv, opts)) != -1) {
		switch (opt) {
		case 'u': c.ctl_path = optarg; break;
		case 'H': c.hub = 1; break;
		case 't': c.tap = optarg; break;
		case 'd': g_daemon = 1; break;
		case 'p': c.max_ports = (int)xarg_num("-ports", optarg, 1, 4096); break;
		case 'a': c.age_secs = (int)xarg_num("-age", optarg, 1, 86400 * 365); break;
		case 'P': g_pidfile = optarg; break;
		case 'l': g_log = optarg; break;
		case 'q': c.log = NULL; break;
		case 's': status = 1; break;
		case 'i': c.idle_exit = (int)xarg_num("-idle-exit", optarg, 1, 86400 * 365); break;
		case 'x':
			vx.vni = (uint32_t)xarg_num("-vxlan", optarg, 0, VXLAN_VNI_MAX);
			vx.enabled = 1;
			break;
		case 'r':
			if (vx.nremotes == VXLAN_REMOTES_MAX)
				xusage("-vxlan-remote: at most %d", VXLAN_REMOTES_MAX);
			if (vxlan_parse_addr(optarg, VXLAN_PORT, &vx.remote[vx.nremotes++]) < 0)
				xusage("-vxlan-remote %s", k_errmsg());
			break;
		case 'L':
			if (vxlan_parse_addr(optarg, VXLAN_PORT, &vx.local) < 0)
				xusage("-vxlan-local %s", k_errmsg());
			break;
		case 'm': vx.mtu = (int)xarg_num("-vxlan-mtu", optarg, VXLAN_MTU_MIN, VXLAN_MTU_MAX); break;
		case 'c': xusage("-compat-v0: the version 0 protocol (UML before 2.4.x) is not supported");
		}
	}
	xarg_count(argc, argv, 0, 0);
	if (status) {
		char *text;
		if (sw_status(c.ctl_path, &text) < 0)
			xdie("%s", k_errmsg());
		fputs(text, stdout);
		free(text);
		return 0;
	}
	if (!vx.enabled && (vx.nremotes || vx.local.len || vx.mtu))
		xusage("-vxlan-remote, -vxlan-local and -vxlan-mtu go with -vxlan VNI");
	if (vx.enabled && !vx.nremotes)
		xusage("-vxlan needs at least one -vxlan-remote (the hosts of the segment: there is no"
		       " multicast discovery)");
	if (vx.enabled)
		c.vxlan = &vx;
	if (g_log && !g_daemon)
		xusage("-log goes with -daemon (in the foreground, log lines go to stderr)");
	if (switch_run(&c) < 0)
		xdie("%s", k_errmsg());
	if (g_pidfile)
		unlink(g_pidfile);
	return 0;
}
