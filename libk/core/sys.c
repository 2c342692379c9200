#include "core/sys.h"
#include "core/err.h"
#include "core/sha256.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

uint64_t k_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

long long k_now_ms(void)
{
	return (long long)(k_now_ns() / 1000000);
}

int k_ncpus(void)
{
	cpu_set_t set;

	if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0)
		return CPU_COUNT(&set);
	return 1;
}

void k_random(void *buf, size_t n)
{
	uint8_t *p = buf;
	size_t done = 0;

	while (done < n) {
		ssize_t r = getrandom(p + done, n - done, 0);
		if (r > 0) {
			done += (size_t)r;
			continue;
		}
		if (r < 0 && errno == EINTR)
			continue;
		break;
	}
	while (done < n) {
		/* No getrandom (an old kernel, a seccomp filter). */
		static uint64_t counter;
		struct timespec ts;
		struct sha256 h;
		uint8_t d[32];
		clock_gettime(CLOCK_REALTIME, &ts);
		uint64_t seed[4] = { (uint64_t)ts.tv_sec, (uint64_t)ts.tv_nsec, (uint64_t)getpid(),
				     counter++ };
		sha256_init(&h);
		sha256_update(&h, seed, sizeof(seed));
		sha256_update(&h, &h, sizeof(h));       /* stack address bits too */
		sha256_final(&h, d);
		size_t k = n - done < sizeof(d) ? n - done : sizeof(d);
		memcpy(p + done, d, k);
		done += k;
	}
}

char *k_random_hex(char *buf, size_t n)
{
	uint8_t r[32];
	static const char hex[] = "0123456789abcdef";

	if (n > 63)
		n = 63;
	k_random(r, (n + 1) / 2);
	for (size_t i = 0; i < n; i++)
		buf[i] = hex[(r[i / 2] >> (i % 2 ? 0 : 4)) & 15];
	buf[n] = 0;
	return buf;
}

int k_unix_addr(struct sockaddr_un *a, const char *path)
{
	if (strlen(path) >= sizeof(a->sun_path))
		return k_seterr("%s: socket path too long (at most %zu bytes)", path,
				sizeof(a->sun_path) - 1);
	memset(a, 0, sizeof(*a));
	a->sun_family = AF_UNIX;
	memcpy(a->sun_path, path, strlen(path));
	return 0;
}

int k_private_dir(char *dir, size_t cap)
{
	const char *x = getenv("XDG_RUNTIME_DIR");
	struct stat st;

	const char *tmp = getenv("TMPDIR");

	if (x && *x == '/' && access(x, W_OK) == 0)
		snprintf(dir, cap, "%s/umlk", x);
	else
		snprintf(dir, cap, "%s/umlk-%u", tmp && *tmp == '/' ? tmp : "/tmp", (unsigned)getuid());
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return k_seterr("%s:", dir);
	if (lstat(dir, &st) < 0)
		return k_seterr("%s:", dir);
	if (!S_ISDIR(st.st_mode) || st.st_uid != getuid() || (st.st_mode & 077))
		return k_seterr("%s: not a private directory of this user (it must be yours, mode 0700)",
				dir);
	return 0;
}

int k_mount_point(const char *path, char *buf, size_t cap)
{
	struct stat st;
	char line[4096];

	if (stat(path, &st) < 0)
		return k_seterr("%s:", path);
	FILE *f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		return k_seterr("/proc/self/mountinfo:");
	int found = 0;
	while (!found && fgets(line, sizeof(line), f)) {
		unsigned maj, min;
		char mnt[2048];
		/* ID PARENT MAJOR:MINOR ROOT MOUNTPOINT ... */
		if (sscanf(line, "%*u %*u %u:%u %*s %2047s", &maj, &min, mnt) == 3 &&
		    makedev(maj, min) == st.st_dev) {
			snprintf(buf, cap, "%s", mnt);
			found = 1;
		}
	}
	fclose(f);
	return found ? 0 : k_seterr("%s: its filesystem is not in /proc/self/mountinfo", path);
}

void k_cache_dir(char *buf, size_t cap)
{
	const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
	if (xdg && *xdg == '/')
		snprintf(buf, cap, "%s/umlk", xdg);
	else if (home && *home == '/')
		snprintf(buf, cap, "%s/.cache/umlk", home);
	else
		snprintf(buf, cap, "/tmp/umlk-cache-%u", (unsigned)getuid());
}

int k_mkdirs(const char *path, unsigned mode)
{
	char p[4096];
	if (snprintf(p, sizeof(p), "%s", path) >= (int)sizeof(p))
		return k_seterr("%s: path too long", path);
	for (char *s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = 0;
		int bad = mkdir(p, mode) < 0 && errno != EEXIST;
		*s = '/';
		if (bad)
			return k_seterr("%.*s:", (int)(s - p), p);
	}
	return mkdir(p, mode) < 0 && errno != EEXIST ? k_seterr("%s:", p) : 0;
}

int k_clear_dir(int fd)
{
	int d2 = dup(fd);
	DIR *d = d2 >= 0 ? fdopendir(d2) : NULL;
	struct dirent *de;
	int r = 0;

	if (!d) {
		if (d2 >= 0)
			close(d2);
		return -1;
	}
	while (!r && (de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			r = k_remove_tree(fd, de->d_name);
	closedir(d);
	return r;
}

int k_remove_tree(int dfd, const char *name)
{
	if (unlinkat(dfd, name, 0) == 0)
		return 0;
	if (errno != EISDIR && errno != EPERM)
		return -1;
	int sub = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (sub < 0)
		return -1;
	int r = k_clear_dir(sub);
	close(sub);
	return r < 0 ? -1 : unlinkat(dfd, name, AT_REMOVEDIR);
}
