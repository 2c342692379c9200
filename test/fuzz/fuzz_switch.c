/* libFuzzer target: what a client may send a switch's control socket
 * (sw_parse_request at every length a read may deliver), and the address
 * checks the switch applies to each datagram's sender. */
#include "net/switchproto.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sw_request r;
	char svc[32];

	for (size_t n = 0; n <= size && n <= SW_REQ_VDE + 8; n += (n < 120 ? 40 : 1))
		(void)sw_parse_request(&r, data, n);
	if (sw_parse_request(&r, data, size) == 1) {
		(void)sw_addr_service(&r.addr, svc, sizeof(svc));
		struct sockaddr_un from;
		memset(&from, 0, sizeof(from));
		size_t fl = size % (sizeof(from) + 1);
		memcpy(&from, data, fl < size ? fl : size);
		(void)sw_addr_match(&from, (socklen_t)fl, &r.addr);
	}
	return 0;
}
