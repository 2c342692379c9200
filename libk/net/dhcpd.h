/* dhcpd: the DHCP server on a netif (a switch port or a host interface).
 *
 * dhcpd_frame() takes one Ethernet frame and produces the answer, if any:
 * ARP and ping for the server's address (through netif_answer), DHCP to
 * port 67 through the lease table (dhcp.h).  dhcpd_serve() is the loop
 * around it: it saves the lease file at most once a second while leases
 * change, and once more on the way out.
 */
#ifndef UMLK_DHCPD_H
#define UMLK_DHCPD_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "net/dhcp.h"
#include "net/netif.h"

struct dhcpd_stats {
	unsigned long long frames, dhcp, replies, malformed;
};

/* Handle FRAME; a reply frame, if any, goes out through NI. */
void dhcpd_frame(struct netif *ni, struct dhcps *s, struct dhcpd_stats *st,
		 const uint8_t *frame, size_t n, time_t now);
/* Serve until *STOP is set or the switch goes away (-1, k_seterr()). */
int dhcpd_serve(struct netif *ni, struct dhcps *s, volatile sig_atomic_t *stop);

#endif
