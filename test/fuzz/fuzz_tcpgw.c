/* libFuzzer target: the X gateway's TCP, fed a run of frames as guests on
 * the switch could send them.  The input is frames, each preceded by a
 * 2-byte big-endian length.  Checksums are not checked (as for frames a
 * host's packet socket sees unfinished), so the fuzzer reaches the state
 * machine: the handshake, data in and out of order, windows, FIN and RST.
 * The gateway's host side is a real Unix socket that never accepts, so
 * connections are made, fill their buffers, and are torn down.  Nothing
 * is sent anywhere (the netif has no socket).  Each input gets a new
 * gateway, so what a run finds replays on its own. */
#include "net/tcpgw.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static struct netif ni;
static struct tcpgw *g;
static char path[108];

/* The socket's file goes with the fuzzer (libFuzzer ends its runs with
 * exit()); it had been left in /tmp, one per run. */
static void remove_socket(void)
{
	unlink(path);
}

static void setup(void)
{
	if (!path[0]) {                 /* the host side, made once */
		struct sockaddr_un a;
		const char *tmp = getenv("TMPDIR");
		int fd = socket(AF_UNIX, SOCK_STREAM, 0);
		int n = snprintf(path, sizeof(path), "%s/fuzz-tcpgw-%d",
				 tmp && *tmp == '/' ? tmp : "/tmp", (int)getpid());
		if (n < 0 || (size_t)n >= sizeof(path))
			abort();
		unlink(path);
		atexit(remove_socket);
		memset(&a, 0, sizeof(a));
		a.sun_family = AF_UNIX;
		strcpy(a.sun_path, path);
		if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 8) < 0)
			abort();
	}
	memset(&ni, 0, sizeof(ni));
	ni.pfd = ni.port.ctl = ni.port.data = -1;
	ni.csum_partial = 1;
	memcpy(ni.mac, "\x52\x00\x00\x00\x00\x03", 6);
	ni.ip = 0x0a000203;
	ni.mask = 0xffffff00;
	g = tcpgw_new(&ni);
	if (!g || tcpgw_listen(g, 6000, path) < 0)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	setup();                        /* a fresh gateway: every input replays alone */
	while (size >= 2) {
		size_t n = (size_t)data[0] << 8 | data[1];
		data += 2;
		size -= 2;
		if (n > size)
			n = size;
		tcpgw_frame(g, data, n);
		data += n;
		size -= n;
	}
	tcpgw_free(g);
	g = NULL;
	return 0;
}
