/* Test only: the disk served by qemu-storage-daemon instead (bootrun.h).

   With UMLK_TEST_DISK_SERVER=qemu-storage-daemon the same guest boots
   from QEMU's reference vhost-user-blk server: the image's disk as a raw
   file (the image itself, or its cloop inflated into the run directory),
   under a qcow2 overlay that takes the writes.  The tests use it to show
   the kernel side works whatever serves it. */

#include "guest/bootrun.h"
#include "core/err.h"
#include "core/xio.h"
#include "remote/http.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>


void exec_signals(void)
{
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
}

static void xrun(char *const argv[], const char *log)
{
	pid_t pid = k_fork();
	if (pid < 0)
		xdie("fork:");
	if (pid == 0) {
		exec_signals();
		int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execvp(argv[0], argv);
		_exit(127);
	}
	int st;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	if (!WIFEXITED(st) || WEXITSTATUS(st))
		xdie("%s failed (see %s)", argv[0], log);
}

int xdisk_server_start(struct disk_server *q, const struct boot_opts *o, struct image *im,
			      const char *sock)
{
	const char *peer = getenv("UMLK_TEST_DISK_SERVER");
	char raw[PATH_MAX], ovl[PATH_MAX], log[PATH_MAX];

	if (!peer || !*peer)
		return 0;
	if (strcmp(peer, "qemu-storage-daemon"))
		xdie("UMLK_TEST_DISK_SERVER=%s: the one peer is qemu-storage-daemon", peer);
	if (o->cow)
		xdie("--cow: not with UMLK_TEST_DISK_SERVER (qemu's overlay takes the writes there)");
	if (strlen(sock) + 5 > sizeof(q->dir))
		xdie("%s: path too long", sock);
	memcpy(q->dir, sock, strlen(sock));
	memcpy(q->dir + strlen(sock), ".qsd", 5);
	if (mkdir(q->dir, 0700) < 0)
		xdie("%s:", q->dir);
	snprintf(log, sizeof(log), "%s/log", q->dir);
	snprintf(ovl, sizeof(ovl), "%s/overlay.qcow2", q->dir);
	if (!strcmp(im->kind, "filesystem image") && url_is_http(im->path)) {
		/* From the web server, through QEMU's curl driver (Debian's
		 * qemu-block-extra): the peer of umlk's own fetching. */
		struct url u;
		char plain[HTTP_URL_MAX];
		if (url_parse(&u, im->path) < 0)
			xdie("%s", k_errmsg());
		url_format(&u, plain, sizeof(plain));
		snprintf(raw, sizeof(raw), "json:{\"file\":{\"driver\":\"http\",\"url\":\"%s\"}}", plain);
	} else if (!strcmp(im->kind, "filesystem image")) {
		snprintf(raw, sizeof(raw), "%s", im->path);
	} else {
		snprintf(raw, sizeof(raw), "%s/raw.img", q->dir);
		int fd = open(raw, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		uint8_t *buf = xmalloc(1 << 20);
		if (fd < 0 || ftruncate(fd, (off_t)im->disk->size) < 0)
			xdie("%s:", raw);
		for (uint64_t off = 0; off < im->disk->size; off += 1 << 20) {
			size_t n = im->disk->size - off < (1 << 20) ? (size_t)(im->disk->size - off) : 1 << 20;
			if (bsrc_read(im->disk, buf, n, off) < 0)
				xdie("%s", k_errmsg());
			if (!k_iszero(buf, n) && full_pwrite(fd, buf, n, off) < 0)
				xdie("%s:", raw);
		}
		free(buf);
		close(fd);
	}
	char *img[] = { "qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", raw, ovl, NULL };
	xrun(img, log);
	char file[PATH_MAX + 64], exp[PATH_MAX + 128];
	snprintf(file, sizeof(file), "driver=file,node-name=f0,filename=%s", ovl);
	snprintf(exp, sizeof(exp), "type=vhost-user-blk,id=e0,node-name=d0,writable=on,addr.type=unix,"
		 "addr.path=%s", sock);
	char *argv[] = { "qemu-storage-daemon", "--blockdev", file, "--blockdev",
			 "driver=qcow2,node-name=d0,file=f0", "--export", exp, NULL };
	q->pid = k_fork();
	if (q->pid < 0)
		xdie("fork:");
	if (q->pid == 0) {
		exec_signals();
		int fd = open(log, O_WRONLY | O_APPEND | O_CLOEXEC);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execvp(argv[0], argv);
		_exit(127);
	}
	for (int i = 0; i < 200 && access(sock, F_OK) < 0; i++) {
		if (waitpid(q->pid, NULL, WNOHANG) == q->pid)
			xdie("qemu-storage-daemon ended at once (see %s)", log);
		usleep(50000);
	}
	if (access(sock, F_OK) < 0)
		xdie("qemu-storage-daemon made no socket at %s (see %s)", sock, log);
	return 1;
}

void disk_server_stop(struct disk_server *q)
{
	char f[PATH_MAX];
	static const char *const names[] = { "log", "overlay.qcow2", "raw.img" };

	kill(q->pid, SIGTERM);
	while (waitpid(q->pid, NULL, 0) < 0 && errno == EINTR)
		;
	for (size_t i = 0; i < 3; i++) {
		snprintf(f, sizeof(f), "%s/%s", q->dir, names[i]);
		unlink(f);
	}
	rmdir(q->dir);
	snprintf(f, sizeof(f), "%.*s", (int)(strlen(q->dir) - 4), q->dir);
	unlink(f);                      /* its socket */
}
