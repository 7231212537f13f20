/*
 * etcd_proc.c - a real etcd for tests/federation and bench/federation
 * (etcd_proc.h).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "etcd_proc.h"

uint16_t etcd_free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t sl = sizeof sa;
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) || getsockname(fd, (struct sockaddr *)&sa, &sl)) {
		if (fd >= 0)
			close(fd);
		return 0;
	}
	close(fd);
	return ntohs(sa.sin_port);
}

bool etcd_answers(void *arg)
{
	uint16_t port = *(const uint16_t *)arg;
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	bool ok = false;
	if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0) {
		const char req[] = "GET /health HTTP/1.0\r\n\r\n";
		char buf[512] = "";
		if (send(fd, req, sizeof req - 1, MSG_NOSIGNAL) > 0) {
			size_t got = 0;
			ssize_t n;
			while (got < sizeof buf - 1 && (n = recv(fd, buf + got, sizeof buf - 1 - got, 0)) > 0)
				got += (size_t)n;
			buf[got] = 0;
			ok = strstr(buf, "\"health\":\"true\"") != NULL;
		}
	}
	if (fd >= 0)
		close(fd);
	return ok;
}

pid_t etcd_spawn(harness_t *h, const char *etcd, uint16_t client_port, uint16_t peer_port)
{
	char data[sizeof h->dir + 16], client[64], peer[64], cluster[96];
	snprintf(data, sizeof data, "%s/etcd-data", h->dir);
	snprintf(client, sizeof client, "http://127.0.0.1:%u", client_port);
	snprintf(peer, sizeof peer, "http://127.0.0.1:%u", peer_port);
	snprintf(cluster, sizeof cluster, "default=%s", peer);
	const char *argv[] = { etcd, "--data-dir", data, "--listen-client-urls", client,
			       "--advertise-client-urls", client, "--listen-peer-urls", peer,
			       "--initial-advertise-peer-urls", peer, "--initial-cluster", cluster,
			       "--log-level", "warn", NULL };
	return harness_spawn(h, "etcd", argv);
}

/* The inode of the socket listening on 127.0.0.1:PORT (/proc/net/tcp), or 0. */
static unsigned long listener_inode(uint16_t port)
{
	FILE *f = fopen("/proc/net/tcp", "re");
	if (!f)
		return 0;
	char line[512], want[32];
	snprintf(want, sizeof want, "0100007F:%04X", port);
	unsigned long inode = 0;
	while (!inode && fgets(line, sizeof line, f)) {
		char local[64], st[8];
		unsigned long ino;
		/* sl local rem st tx:rx tr:when retrnsmt uid timeout inode */
		if (sscanf(line, " %*s %63s %*s %7s %*s %*s %*s %*s %*s %lu", local, st, &ino) == 3 &&
		    strcmp(local, want) == 0 && strcmp(st, "0A") == 0)
			inode = ino;
	}
	fclose(f);
	return inode;
}

bool etcd_listens(pid_t pid, uint16_t port)
{
	unsigned long inode = listener_inode(port);
	char dir[64], want[64];
	snprintf(dir, sizeof dir, "/proc/%d/fd", (int)pid);
	snprintf(want, sizeof want, "socket:[%lu]", inode);
	DIR *d = inode ? opendir(dir) : NULL;
	if (!d)
		return false;
	bool ours = false;
	struct dirent *e;
	while (!ours && (e = readdir(d))) {
		char link[400], target[64];
		snprintf(link, sizeof link, "%s/%s", dir, e->d_name);
		ssize_t n = readlink(link, target, sizeof target - 1);
		target[n > 0 ? n : 0] = 0;
		ours = strcmp(target, want) == 0;
	}
	closedir(d);
	return ours;
}

bool etcd_ready(void *arg)
{
	const etcd_proc_t *e = arg;
	return etcd_answers((void *)&e->client_port) && etcd_listens(e->pid, e->client_port);
}
