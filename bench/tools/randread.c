/* randread DEVICE COUNT: COUNT reads of 4 KiB at random 4 KiB-aligned
 * offsets of DEVICE, with O_DIRECT (no guest page cache, no read-ahead):
 * what a disk server's latency per request comes to.  Built static by
 * bench/disk.sh and run inside the guest. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: randread DEVICE COUNT\n");
		return 2;
	}
	int fd = open(argv[1], O_RDONLY | O_DIRECT);
	off_t size = fd < 0 ? -1 : lseek(fd, 0, SEEK_END);
	void *buf;
	if (size < 4096 || posix_memalign(&buf, 4096, 4096)) {
		perror(argv[1]);
		return 1;
	}
	long n = atol(argv[2]);
	unsigned seed = 12345;
	for (long i = 0; i < n; i++) {
		off_t off = (off_t)(((unsigned long long)rand_r(&seed) << 16 ^ (unsigned)rand_r(&seed)) %
				    (unsigned long long)(size / 4096)) * 4096;
		if (pread(fd, buf, 4096, off) != 4096) {
			perror("pread");
			return 1;
		}
	}
	return 0;
}
