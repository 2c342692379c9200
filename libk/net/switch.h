/* switch: a learning Ethernet switch (or hub) for UML's daemon transport.
 *
 * Ports join through the control socket (see switchproto.h); frames
 * arrive as datagrams on one data socket and are told apart by their
 * source address.  A host tap device can be one more port.  Source MACs
 * are learnt per port and forgotten after AGE seconds or when the port
 * leaves; frames to an unknown, broadcast or multicast MAC are flooded.
 *
 * A VXLAN port joins the segment to other hosts' (see vxlan.h).
 *
 * Nothing blocks: sockets are non-blocking, a control connection that does
 * not finish its request within 5 seconds is closed, a port that does not
 * read its frames loses them (counted as drops), and malformed requests or
 * datagrams from strangers are counted and dropped.
 */
#ifndef UMLK_SWITCH_H
#define UMLK_SWITCH_H

struct vxlan_conf;

struct switch_conf {
	const char *ctl_path;
	const char *tap;                /* host tap device, or NULL */
	int hub;                        /* flood everything */
	int max_ports;
	int age_secs;
	int idle_exit;                  /* stop after this many seconds without guests; 0: never */
	/* A VXLAN port (vxlan.h), or NULL: each remote is a port of the
	 * switch (MACs learnt behind it, aged as any), on one UDP socket;
	 * frames from one remote never go to another (each host sends to
	 * every other itself), and guests are given the tunnel's MTU. */
	const struct vxlan_conf *vxlan;
	/* Called once everything is bound and listening (the daemon forks
	 * here, so the parent returns only when the switch is ready). */
	void (*ready)(void);
	void (*log)(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
};

/* Set up (control socket, data socket, tap) and serve until SIGINT or
 * SIGTERM; then remove the control socket.  -1 with k_seterr() when the
 * set-up fails (nothing is left behind); 0 after a clean stop. */
int switch_run(const struct switch_conf *c);

#endif
