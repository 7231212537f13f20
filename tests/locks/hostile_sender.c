/* hostile_sender.c - a profiled program that abuses thothlock's socket
 * (THOTHLOCK_FD, open in everything thothlock runs) before it forks a
 * child, whose table must still be reported (test_locks_hostile_sender).
 *
 *   hostile_sender         (under thothlock only)
 *
 * Sends, besides the table its preload handed over: messages without a
 * descriptor; /dev/null, a pipe, a directory; a memfd with its own
 * table's header, unsealed; one with more descriptors than a hand-over
 * has; and 300 sealed memfds, each with its own header naming another
 * pid (300 "processes": thothlock keeps 256 tables; it keeps each under
 * the pid the kernel names, this one's, so none takes a place, and as
 * copies of this process's header none displaces its table).  Then forks a child
 * that takes `hostile_child_lock` 1000 times and exits, waits for it and
 * prints "sent N child PID".  thothlock must report the child and this
 * process, no table of the pids it made up, and name what it refused.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lockprof_layout.h"

pthread_mutex_t hostile_child_lock = PTHREAD_MUTEX_INITIALIZER;

static int sock = -1;
static int sent;

static void send_fds(const int *fds, int n)
{
	char byte = 'x';
	struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
	union {
		struct cmsghdr h;
		char room[CMSG_SPACE(8 * sizeof(int))];
	} c;
	memset(&c, 0, sizeof c);
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };
	if (n > 0) {
		m.msg_control = c.room;
		m.msg_controllen = CMSG_SPACE((size_t)n * sizeof(int));
		struct cmsghdr *h = CMSG_FIRSTHDR(&m);
		h->cmsg_level = SOL_SOCKET;
		h->cmsg_type = SCM_RIGHTS;
		h->cmsg_len = CMSG_LEN((size_t)n * sizeof(int));
		memcpy(CMSG_DATA(h), fds, (size_t)n * sizeof(int));
	}
	/* Blocking: thothlock drains the socket while it waits. */
	if (sendmsg(sock, &m, MSG_NOSIGNAL) != 1) {
		perror("hostile_sender: sendmsg");
		exit(1);
	}
	sent++;
}

/* A memfd holding HDR (its pid set to PID), sealed as the preload's are
 * when SEALED. */
static int fake_table(const thothlock_header_t *hdr, int pid, int sealed)
{
	thothlock_header_t h = *hdr;
	h.pid = pid;
	int fd = memfd_create("thothlock:fake", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0 || ftruncate(fd, 4096) != 0 || pwrite(fd, &h, sizeof h, 0) != (ssize_t)sizeof h ||
	    (sealed && fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0)) {
		perror("hostile_sender: memfd");
		exit(1);
	}
	return fd;
}

int main(void)
{
	const char *v = getenv("THOTHLOCK_FD");
	if (!v) {
		fprintf(stderr, "hostile_sender: THOTHLOCK_FD unset (run it under thothlock)\n");
		return 2;
	}
	sock = atoi(v);
	/* Its own table's header, to copy: the preload's memfd. */
	char path[64];
	snprintf(path, sizeof path, "/proc/self/fd");
	thothlock_header_t hdr;
	int own = -1;
	for (int fd = 3; fd < 1024 && own < 0; fd++) {
		char link[80], want[64];
		snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
		ssize_t n = readlink(path, link, sizeof link - 1);
		snprintf(want, sizeof want, "/memfd:thothlock:%d ", (int)getpid());
		if (n > 0 && (link[n] = 0, strncmp(link, want, strlen(want)) == 0))
			own = fd;
	}
	if (own < 0 || pread(own, &hdr, sizeof hdr, 0) != (ssize_t)sizeof hdr ||
	    hdr.magic != THOTHLOCK_MAGIC) {
		fprintf(stderr, "hostile_sender: no table of its own (not profiled?)\n");
		return 2;
	}
	send_fds(NULL, 0);
	send_fds(NULL, 0);
	int p[2];
	int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
	int dir = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (null < 0 || dir < 0 || pipe2(p, O_CLOEXEC) != 0) {
		perror("hostile_sender");
		return 1;
	}
	send_fds(&null, 1);
	send_fds(&p[0], 1);     /* read end, no writer's data: a pread would fail, a read block */
	send_fds(&dir, 1);
	int unsealed = fake_table(&hdr, (int)getpid(), 0);
	send_fds(&unsealed, 1);
	int many[3] = { null, dir, own };
	send_fds(many, 3);
	for (int i = 0; i < 300; i++) {
		int fd = fake_table(&hdr, 4000000 + i, 1);
		send_fds(&fd, 1);
		close(fd);
	}
	pid_t child = fork();
	if (child < 0) {
		perror("hostile_sender: fork");
		return 1;
	}
	if (child == 0) {
		for (int i = 0; i < 1000; i++) {
			pthread_mutex_lock(&hostile_child_lock);
			pthread_mutex_unlock(&hostile_child_lock);
		}
		_exit(0);
	}
	int st;
	if (waitpid(child, &st, 0) != child || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		fprintf(stderr, "hostile_sender: the child failed\n");
		return 1;
	}
	printf("sent %d child %d\n", sent, (int)child);
	return 0;
}
