#include "net/dhcpd.h"
#include "applets.h"
#include "core/args.h"
#include "core/daemon.h"
#include "core/err.h"
#include "core/xio.h"
#include "net/netif.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char usage[] =
	"Usage: umlk dhcpd (--switch SOCKET | --interface DEV) [OPTIONS]\n"
	"\n"
	"A DHCP server (RFC 2131/2132) for UML guests.  With --switch it joins the\n"
	"switch at SOCKET (umlk umlswitch or uml_switch) as a port of its own, with\n"
	"its own MAC and address, and answers ARP and ping there.  With\n"
	"--interface it serves a host interface through a packet socket (root),\n"
	"using the interface's own address.\n"
	"\n"
	"Unknown, relayed, and malformed packets are dropped (malformed ones are\n"
	"logged, at most once a second).  When the pool is exhausted, DISCOVERs go\n"
	"unanswered and REQUESTs for taken addresses get NAKs, each with a log\n"
	"line.  The lease file is rewritten whole (temporary file, rename) at most\n"
	"once a second while leases change, and on exit.  SIGINT or SIGTERM stop\n"
	"the server.\n";

static const struct kopt opts[] = {
	{ 'S', "--switch", "SOCKET", "join this switch" },
	{ 'I', "--interface", "DEV", "serve host interface DEV" },
	{ 'a', "--address", "IP[/BITS]", "the server's address (default 10.0.2.2/24 on a\nswitch; DEV's own address on an interface)" },
	{ 'n', "--netmask", "MASK", "the subnet's mask, dotted or bits (default /24)" },
	{ 'p', "--pool", "FIRST-LAST", "addresses to hand out (default: host 15 up to the\nlast address of the subnet)" },
	{ 'r', "--router", "IP", "default gateway to offer (default: none)" },
	{ 'D', "--dns", "IP", "DNS server to offer (up to 4 times)" },
	{ 'o', "--domain", "NAME", "DNS domain to offer" },
	{ 'M', "--mtu", "N", "offer the interface MTU N (option 26): 1450 on a switch\nwith a VXLAN port, so that no guest sends frames the\ntunnel cannot carry" },
	{ 't', "--lease-time", "TIME", "seconds, or with s, m, h, d (default 1h)" },
	{ 's', "--static", "MAC=IP[,NAME]", "always give MAC the address IP (and host name NAME)" },
	{ 'f', "--lease-file", "FILE", "keep leases in FILE, so a restart keeps them" },
	{ 'h', "--hostname-prefix", "P", "name clients P followed by their host number\n(10.0.2.15 is guest-15; default 'guest-'; '' for none)" },
	{ 'm', "--mac", "MAC", "the server's MAC on a switch (default: derived from\nSOCKET)" },
	{ 'd', "--daemon", NULL, "go into the background once serving" },
	{ 'P', "--pidfile", "FILE", "write the server's process ID to FILE" },
	{ 'l', "--log", "FILE", "with --daemon, append log lines to FILE" },
	{ 'q', "-q --quiet", NULL, "log nothing" },
	{ 0 },
};

APPLET(dhcpd, "dhcpd", "DHCP server for guests on a switch or a host interface", usage, opts);

static volatile sig_atomic_t stopping;
static void on_stop(int sig) { (void)sig; stopping = 1; }

/* On a host interface the packets reach us through the packet socket, but
 * the host's own stack sees unicasts to port 67 too and would answer them
 * "port unreachable".  A socket bound there (never read; what it queues is
 * dropped) keeps it quiet.  Another DHCP server already bound: say so. */
static void xhold_port_67(const char *dev)
{
	struct sockaddr_in a;
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), one = 1, small = 4096;

	if (fd < 0)
		return;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, dev, (socklen_t)strlen(dev) + 1);
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_port = htons(DHCP_SERVER_PORT);
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 && errno == EADDRINUSE)
		xdie("%s: another DHCP server is using port 67 there", dev);
	/* kept open for the life of the server */
}

static uint32_t xarg_ip(const char *opt, const char *v)
{
	uint32_t ip;
	if (net_parse_ip(v, &ip) < 0)
		xusage("%s: '%s' is not an IPv4 address", opt, v);
	return ip;
}

static uint32_t xarg_duration(const char *opt, const char *v)
{
	char *end;
	unsigned long long n = strtoull(v, &end, 10);
	unsigned long long mult = 1;

	if (end == v)
		xusage("%s: '%s' is not a time", opt, v);
	if (*end && end[1] == 0)
		mult = *end == 's' ? 1 : *end == 'm' ? 60 : *end == 'h' ? 3600 : *end == 'd' ? 86400 : 0;
	else if (*end)
		mult = 0;
	if (!mult || n == 0 || n > 0xffffffffULL / mult)
		xusage("%s: '%s' is not a time (like 3600, 90m, 12h, 7d)", opt, v);
	return (uint32_t)(n * mult);
}

/* The command line, beyond what goes straight into the server's
 * configuration. */
struct args {
	const char *sw, *dev, *macarg, *pidfile, *logfile;
	char *address, *pool;
	int daemon, have_mask;
};

static void xstatic_lease(struct dhcps_conf *c, struct dhcp_static *statics, int max, const char *v)
{
	if (c->nstatics == max)
		xusage("--static: at most %d", max);
	struct dhcp_static *st = &statics[c->nstatics++];
	char mac[32], ip[32], name[80] = "";
	if (sscanf(v, "%31[^=]=%31[^,],%79s", mac, ip, name) < 2 || net_parse_mac(mac, st->mac) < 0 ||
	    net_parse_ip(ip, &st->ip) < 0 || strlen(name) >= sizeof(st->hostname))
		xusage("--static: '%s' is not MAC=IP[,HOSTNAME]", v);
	memcpy(st->hostname, name, strlen(name) + 1);
}

static void xparse(int argc, char **argv, struct args *a, struct dhcps_conf *c)
{
	static struct dhcp_static statics[256];
	int opt;

	c->statics = statics;
	while ((opt = xkopt_next(argc, argv, opts)) != -1) {
		switch (opt) {
		case 'S': a->sw = optarg; break;
		case 'I': a->dev = optarg; break;
		case 'a': a->address = xstrdup(optarg); break;  /* cut up later */
		case 'n':
			if (net_parse_mask(optarg, &c->mask) < 0)
				xusage("--netmask: '%s' is not a netmask", optarg);
			a->have_mask = 1;
			break;
		case 'p': a->pool = xstrdup(optarg); break;
		case 'r': c->router = xarg_ip("--router", optarg); break;
		case 'D':
			if (c->ndns == 4)
				xusage("--dns: at most 4 servers");
			c->dns[c->ndns++] = xarg_ip("--dns", optarg);
			break;
		case 'o':
			if (strlen(optarg) >= sizeof(c->domain))
				xusage("--domain: '%s' is too long", optarg);
			snprintf(c->domain, sizeof(c->domain), "%s", optarg);
			break;
		case 'M': c->mtu = (uint16_t)xarg_num("--mtu", optarg, 576, 9000); break;
		case 't': c->lease_secs = xarg_duration("--lease-time", optarg); break;
		case 's': xstatic_lease(c, statics, (int)(sizeof(statics) / sizeof(statics[0])), optarg); break;
		case 'f': c->lease_file = optarg; break;
		case 'h':
			if (strlen(optarg) >= sizeof(c->hostname_prefix))
				xusage("--hostname-prefix: '%s' is too long", optarg);
			snprintf(c->hostname_prefix, sizeof(c->hostname_prefix), "%s", optarg);
			break;
		case 'm': a->macarg = optarg; break;
		case 'd': a->daemon = 1; break;
		case 'P': a->pidfile = optarg; break;
		case 'l': a->logfile = optarg; break;
		case 'q': c->log = NULL; break;
		}
	}
	xarg_count(argc, argv, 0, 0);
	if (!a->sw == !a->dev)
		xusage("give one of --switch SOCKET or --interface DEV");
	if (a->logfile && !a->daemon)
		xusage("--log goes with --daemon (in the foreground, log lines go to stderr)");
	if (a->macarg && !a->sw)
		xusage("--mac is for --switch (an interface has its own)");
}

/* The server's address and mask, and the pool: given, or the switch's
 * defaults, or the interface's own (opened into NI); the MAC on a switch. */
static void xaddresses(struct args *a, struct dhcps_conf *c, struct netif *ni, uint8_t mac[6])
{
	if (a->sw) {
		if (a->macarg) {
			if (net_parse_mac(a->macarg, mac) < 0 || net_mac_is_group(mac))
				xusage("--mac: '%s' is not a unicast MAC address", a->macarg);
		} else {
			netif_mac_from(a->sw, "umlk-dhcpd", mac);
		}
		c->server_ip = NET_AUTO_SERVER;
		if (!a->have_mask)
			c->mask = NET_AUTO_MASK;
	}
	if (a->address) {
		char *slash = strchr(a->address, '/');
		if (slash) {
			*slash = 0;
			if (net_parse_mask(slash + 1, &c->mask) < 0)
				xusage("--address: '%s' is not a prefix length", slash + 1);
			a->have_mask = 1;
		}
		c->server_ip = xarg_ip("--address", a->address);
	}
	if (a->dev) {
		if (netif_open_packet(ni, a->dev) < 0)
			xdie("%s", k_errmsg());
		xhold_port_67(a->dev);
		if (!a->address) {
			if (!ni->ip)
				xdie("%s: the interface has no IPv4 address; give one with --address", a->dev);
			c->server_ip = ni->ip;
		}
		if (!a->have_mask)
			c->mask = ni->mask ? ni->mask : 0xffffff00;
	}
	if (a->pool) {
		char *dash = strchr(a->pool, '-');
		if (!dash)
			xusage("--pool: '%s' is not FIRST-LAST", a->pool);
		*dash = 0;
		c->pool_first = xarg_ip("--pool", a->pool);
		c->pool_last = xarg_ip("--pool", dash + 1);
	} else {
		uint32_t net = c->server_ip & c->mask, last = (c->server_ip | ~c->mask) - 1;
		c->pool_first = net + NET_AUTO_POOL_HOST <= last ? net + NET_AUTO_POOL_HOST : c->server_ip + 1;
		if (c->server_ip >= c->pool_first && c->server_ip <= last)
			c->pool_first = c->server_ip + 1;
		c->pool_last = last;
	}
	free(a->address);
	free(a->pool);
	a->address = a->pool = NULL;
}

int dhcpd_main(int argc, char **argv)
{
	struct dhcps_conf c;
	struct args a = { 0 };
	struct netif ni;
	uint8_t mac[6];

	memset(&c, 0, sizeof(c));
	c.lease_secs = NET_DEFAULT_LEASE;
	c.log = k_log;
	snprintf(c.hostname_prefix, sizeof(c.hostname_prefix), "guest-");
	xparse(argc, argv, &a, &c);
	xaddresses(&a, &c, &ni, mac);

	struct dhcps s;
	if (dhcps_init(&s, &c) < 0)
		xdie("%s", k_errmsg());
	if (dhcps_load(&s, time(NULL)) < 0)
		xdie("%s", k_errmsg());
	if (a.sw && netif_open_switch(&ni, a.sw, mac, "dhcpd") < 0)
		xdie("%s", k_errmsg());
	ni.ip = c.server_ip;
	ni.mask = c.mask;

	k_on_stop(on_stop);
	if (a.daemon)
		xdaemonize(a.logfile, a.pidfile);
	else if (a.pidfile && k_write_pidfile(a.pidfile) < 0)
		k_warn("%s", k_errmsg());
	if (c.log) {
		char ip[16], f[16], l[16], m[18];
		c.log("serving %s-%s on %s as %s (%s), leases of %u s%s%s", net_fmt_ip(c.pool_first, f),
		      net_fmt_ip(c.pool_last, l), a.sw ? a.sw : a.dev, net_fmt_ip(c.server_ip, ip),
		      net_fmt_mac(ni.mac, m), c.lease_secs, c.lease_file ? ", kept in " : "",
		      c.lease_file ? c.lease_file : "");
	}
	int r = dhcpd_serve(&ni, &s, &stopping);
	netif_close(&ni);
	dhcps_free(&s);
	if (a.pidfile)
		unlink(a.pidfile);
	if (r < 0) {
		/* Logged like everything else a daemon says (to its log file). */
		k_log("%s", k_errmsg());
		return 1;
	}
	return 0;
}
