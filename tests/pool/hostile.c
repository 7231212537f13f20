/*
 * hostile.c - pool_service --hostile MODE: an instance of the pool tests'
 * service that is not one (the same executable as the good ones: thothd
 * lets only one executable hold a name).  It registers "tcp:127.0.0.1:PORT" under the name with the Work
 * interface's claim, accepts every connection, and then, by --mode:
 *
 *   silent   never reads, never answers (a wedged or stopped service);
 *   garbage  reads the hello, answers 64 bytes that are no frame;
 *   close    reads the first bytes of the hello and closes mid-hello;
 *   trickle  reads the hello, then sends a hello answer's header one byte
 *            every 30 ms (a slowloris server: never whole in time);
 *   again    reads the hello, refuses it with status THOTH_E_AGAIN (what
 *            the opening's steps return while they wait: the pool must
 *            not take it for "no answer yet");
 *   unix-silent  the same as silent on a Unix socket registered as its
 *            path: a local instance (a channel) that never answers.
 *   unix-again   a local instance that refuses the channel handshake with
 *            status THOTH_E_AGAIN (what the opening's steps return while
 *            they wait: the pool must not take it for "no reply yet").
 *   unix-pipe    a local instance whose handshake reply says yes but
 *            carries a pipe as the channel memory.
 *
 *   pool_service --runtime-dir DIR --hostile MODE [--name NAME]
 *
 * POOL_HOSTILE_HOST=NAME registers "tcp:NAME:PORT" instead (a host name
 * the test's getaddrinfo hook resolves, slowly or not at all).
 *
 * What the pool must do with each is in test_pool.c.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "chan_handshake.h"
#include "chan_shm.h"
#include "fdpass.h"
#include "hostile.h"
#include "pooltest.thoth.h"
#include "tcp.thoth.h"
#include "thoth/loop.h"
#include "thoth/service.h"
#include "thoth/wire.h"

enum { SILENT, GARBAGE, CLOSE, TRICKLE, UNIX_SILENT, UNIX_AGAIN, UNIX_PIPE, AGAIN };
enum { MAX_CONNS = 64 };

static int mode;
static thoth_loop_t *loop;

typedef struct conn {
	int fd;
	thoth_source_t *src;
	thoth_timer_t *timer;           /* trickle's next byte */
	uint8_t answer[THOTH_WIRE_HEADER_SIZE];
	size_t sent;
} conn_t;

static conn_t conns[MAX_CONNS];

static void drop(conn_t *c)
{
	if (c->src)
		thoth_loop_remove_fd(loop, c->src);
	if (c->timer)                   /* it would trickle into the slot's next connection */
		thoth_timer_cancel(loop, c->timer);
	close(c->fd);
	memset(c, 0, sizeof *c);
	c->fd = -1;
}

static void trickle(thoth_loop_t *l, thoth_timer_t *timer, void *arg)
{
	(void)timer;
	conn_t *c = arg;
	c->timer = NULL;                /* fired: freed when this returns */
	if (c->fd < 0 || c->sent == sizeof c->answer)
		return;
	if (send(c->fd, c->answer + c->sent, 1, MSG_NOSIGNAL) != 1) {
		drop(c);
		return;
	}
	c->sent++;
	thoth_loop_add_timer_in(l, 30000000, 1000000, trickle, c, &c->timer);
}

static void on_conn(thoth_loop_t *l, thoth_source_t *src, int fd, uint32_t events, void *arg)
{
	(void)l;
	(void)src;
	(void)events;
	conn_t *c = arg;
	uint8_t buf[4096];
	ssize_t n = recv(fd, buf, mode == CLOSE ? 8 : sizeof buf, MSG_DONTWAIT);
	if (n <= 0) {
		if (n == 0 || (errno != EAGAIN && errno != EINTR))
			drop(c);
		return;
	}
	thoth_loop_remove_fd(loop, c->src);     /* the hello (or its start) is in: no more reading */
	c->src = NULL;
	if (mode == CLOSE) {
		drop(c);                /* the rest of the hello unread: a reset */
	} else if (mode == UNIX_AGAIN || mode == UNIX_PIPE) {
		/* The request came whole (it is small): answer it, then keep
		 * the connection open and unread. */
		thoth_chan_limits_t lim = { 0 };
		thoth_chan_limits_resolve(&lim, NULL, 0);
		chan_layout_t lay;
		chan_layout_compute(&lim, &lay);
		thoth_channel_Channel_open_resp_t resp = {
			.reason = thoth_str(""), .major = thoth_pooltest_Work_info.major,
			.minor = thoth_pooltest_Work_info.minor, .shm_size = lay.size,
			.limits = { .slots = lim.slots, .pool_buf_size = lim.pool_buf_size, .pool_bufs = lim.pool_bufs },
		};
		int p[2] = { -1, -1 };
		if (mode == UNIX_AGAIN) {
			resp.status = THOTH_E_AGAIN;
			resp.reason = thoth_str("hostile instance: come back later");
		} else if (pipe2(p, O_CLOEXEC)) {
			drop(c);
			return;
		}
		thoth_msg_header_t meta = { .request_id = 1 };
		size_t len;
		uint64_t out[HANDSHAKE_MAX / 8];
		if (!thoth_channel_Channel_open_resp_encode_msg(out, sizeof out, &meta, &resp, &len))
			(void)!thoth_fdpass_send(fd, out, len, p, mode == UNIX_PIPE ? 1 : 0);
		if (p[0] >= 0) {
			close(p[0]);
			close(p[1]);
		}
	} else if (mode == AGAIN) {
		/* The hello came whole (it is small): refuse it, keep the
		 * connection open. */
		thoth_tcp_Tcp_hello_resp_t resp = {
			.status = THOTH_E_AGAIN,
			.reason = thoth_str("hostile instance: come back later"),
			.major = thoth_pooltest_Work_info.major,
			.minor = thoth_pooltest_Work_info.minor,
		};
		thoth_msg_header_t meta = { .request_id = 1 };
		uint64_t out[64];
		size_t len;
		if (!thoth_tcp_Tcp_hello_resp_encode_msg((uint8_t *)out, sizeof out, &meta, &resp, &len))
			(void)!send(fd, out, len, MSG_NOSIGNAL);
	} else if (mode == GARBAGE) {
		memset(buf, 0xab, 64);
		(void)!send(fd, buf, 64, MSG_NOSIGNAL);
	} else {
		thoth_msg_header_t h = { .flags = THOTH_MSG_RESPONSE, .request_id = 1, .body_len = 64 };
		thoth_wire_header_encode(c->answer, &h);
		trickle(loop, NULL, c);
	}
}

static void on_accept(thoth_loop_t *l, thoth_source_t *src, int fd, uint32_t events, void *arg)
{
	(void)src;
	(void)events;
	(void)arg;
	int cfd = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (cfd < 0)
		return;
	for (int i = 0; i < MAX_CONNS; i++) {
		conn_t *c = &conns[i];
		if (c->fd >= 0)
			continue;
		c->fd = cfd;
		if (mode != SILENT && mode != UNIX_SILENT)
			thoth_loop_add_fd(l, cfd, THOTH_LOOP_READ, on_conn, c, &c->src);
		return;
	}
	close(cfd);
}

static void on_stop(thoth_loop_t *l, const struct signalfd_siginfo *info, void *arg)
{
	(void)info;
	(void)arg;
	thoth_loop_stop(l);
}

int pool_service_hostile(const char *dir, const char *name, const char *m)
{
	static const char *const modes[] = { "silent", "garbage", "close", "trickle", "unix-silent", "unix-again",
					     "unix-pipe", "again" };
	mode = -1;
	for (int i = 0; m && i < 8; i++)
		if (!strcmp(m, modes[i]))
			mode = i;
	if (mode < 0) {
		fprintf(stderr, "pool_service: --hostile silent|garbage|close|trickle|again|unix-silent|unix-again|unix-pipe\n");
		return 2;
	}
	for (int i = 0; i < MAX_CONNS; i++)
		conns[i].fd = -1;
	signal(SIGPIPE, SIG_IGN);
	char addr[108], why[300];
	int lfd;
	bool local = mode == UNIX_SILENT || mode == UNIX_AGAIN || mode == UNIX_PIPE;
	if (local) {
		struct sockaddr_un su = { .sun_family = AF_UNIX };
		snprintf(su.sun_path, sizeof su.sun_path, "%s/%s-hostile-%d.sock", dir, name, (int)getpid());
		snprintf(addr, sizeof addr, "%s", su.sun_path);
		lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (lfd < 0 || bind(lfd, (struct sockaddr *)&su, sizeof su) || listen(lfd, 64)) {
			perror("pool_service --hostile: listen");
			return 1;
		}
	} else {
		lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
		socklen_t sl = sizeof sa;
		if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof sa) || listen(lfd, 64) ||
		    getsockname(lfd, (struct sockaddr *)&sa, &sl)) {
			perror("pool_service --hostile: listen");
			return 1;
		}
		/* POOL_HOSTILE_HOST: the host name to register instead of the
		 * numeric loopback (test_pool resolves it with a hook). */
		const char *host = getenv("POOL_HOSTILE_HOST");
		snprintf(addr, sizeof addr, "tcp:%s:%u", host && *host ? host : "127.0.0.1",
			 (unsigned)ntohs(sa.sin_port));
	}
	if (thoth_loop_new(&loop))
		return 1;
	thoth_loop_add_signal(loop, SIGTERM, on_stop, NULL);
	thoth_loop_add_fd(loop, lfd, THOTH_LOOP_READ, on_accept, NULL, NULL);
	const thoth_interface_info_t *ifaces[1] = { &thoth_pooltest_Work_info };
	thoth_service_config_t cfg = {
		.runtime_dir = dir, .name = name, .version = "1.0.0", .endpoint = addr,
		.numa_node = THOTH_SERVICE_NUMA_AUTO, .interfaces = ifaces, .n_interfaces = 1,
	};
	thoth_service_t *svc;
	if (thoth_service_register(loop, &cfg, &svc, why, sizeof why)) {
		fprintf(stderr, "pool_service --hostile: cannot register: %s\n", why);
		return 1;
	}
	thoth_loop_run(loop);
	thoth_service_withdraw(svc);
	for (int i = 0; i < MAX_CONNS; i++)
		if (conns[i].fd >= 0)
			drop(&conns[i]);
	close(lfd);
	if (local)
		unlink(addr);
	thoth_loop_free(loop);
	return 0;
}
