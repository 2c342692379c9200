/* randread DEVICE COUNT [CPU]: COUNT reads of 4 KiB at random 4 KiB-aligned
 * offsets of DEVICE, with O_DIRECT (no guest page cache, no read-ahead):
 * what a disk server's latency per request comes to.  With CPU, the reader
 * stays on that guest CPU: a request costs a guest several times more on
 * a CPU other than the one that takes the device's interrupts, and where
 * the guest's scheduler puts a reader is chance.  Prints "start" and
 * "done" around the reads.  Built static by bench/disk.sh and run inside
 * the guest. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc != 3 && argc != 4) {
		fprintf(stderr, "usage: randread DEVICE COUNT [CPU]\n");
		return 2;
	}
	if (argc == 4) {
		char *end;
		long cpu = strtol(argv[3], &end, 10);
		cpu_set_t set;
		CPU_ZERO(&set);
		if (*end || cpu < 0 || cpu >= CPU_SETSIZE) {
			fprintf(stderr, "randread: %s: not a CPU number\n", argv[3]);
			return 2;
		}
		CPU_SET(cpu, &set);
		if (sched_setaffinity(0, sizeof(set), &set) < 0) {
			perror("randread: CPU");
			return 1;
		}
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
	/* The lines the bench times on the host's clock as they arrive (a
	 * guest's own clock runs slow under load; a whole boot's time
	 * varies by more than a fast run's reads take). */
	printf("start\n");
	fflush(stdout);
	for (long i = 0; i < n; i++) {
		off_t off = (off_t)(((unsigned long long)rand_r(&seed) << 16 ^ (unsigned)rand_r(&seed)) %
				    (unsigned long long)(size / 4096)) * 4096;
		if (pread(fd, buf, 4096, off) != 4096) {
			perror("pread");
			return 1;
		}
	}
	printf("done\n");
	fflush(stdout);
	return 0;
}
