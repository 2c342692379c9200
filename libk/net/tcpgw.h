/* tcpgw: the host side of a guest network, in user space.
 *
 * A gateway is a netif (a port of its own on the switch, with a MAC and an
 * address) that accepts TCP connections from guests on chosen ports and
 * relays each one to a host Unix socket, as if the service listened on the
 * gateway's address.  xnest-launch uses it so the guest's X clients reach
 * an Xnest that listens only on the host's /tmp/.X11-unix socket: no root,
 * no tap device, nothing listening on the host's network.
 *
 * Its TCP is small, for a switch that loses frames only when a socket is
 * full: data is taken in order only (anything else is dropped and
 * re-acknowledged), unacknowledged data is sent again after a timeout that
 * doubles (200 ms up to 4 s; a connection is reset after 10 tries) or
 * after three duplicate ACKs, the guest's window bounds what is in flight,
 * and the gateway advertises the room left in a 64 KiB buffer towards the
 * host, so a slow host socket slows the guest down instead of losing data.
 * FIN and RST go both ways; a segment for no connection gets a RST.
 */
#ifndef UMLK_TCPGW_H
#define UMLK_TCPGW_H

#include <poll.h>
#include <stdint.h>

#include "net/netif.h"

struct tcpgw;

/* A gateway on NI (already open, with its address set). */
struct tcpgw *tcpgw_new(struct netif *ni);
/* Say what happens to connections (opened, refused, reset, closed, and
 * why) through LOG; NULL (the default): nothing. */
void tcpgw_set_log(struct tcpgw *g, void (*log)(const char *fmt, ...) __attribute__((format(printf, 1, 2))));
void tcpgw_free(struct tcpgw *g);
/* Relay connections to PORT on the gateway's address to the Unix socket
 * at PATH.  -1 with k_seterr() when there is no room for another. */
int tcpgw_listen(struct tcpgw *g, uint16_t port, const char *path);

/* The descriptors to poll: fills at most MAX entries of PF and returns how
 * many (the netif first).  TIMEOUT gets the milliseconds until the next
 * retransmission is due, or -1. */
int tcpgw_pollfds(struct tcpgw *g, struct pollfd *pf, int max, int *timeout);
/* Do what the poll found, and what the timers say.  -1 with k_seterr()
 * when the switch went away. */
int tcpgw_run(struct tcpgw *g, const struct pollfd *pf, int n);

/* Handle one frame from the switch (tcpgw_run does this for each frame it
 * receives; fuzzers and tests call it directly). */
void tcpgw_frame(struct tcpgw *g, const uint8_t *frame, size_t n);

/* Connections accepted so far. */
unsigned tcpgw_accepted(const struct tcpgw *g);

#endif
