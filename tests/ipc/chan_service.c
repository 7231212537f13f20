/*
 * chan_service - the service the channel tests fork/exec: serves
 * thoth.chantest.Test (chantest.tidl) on a shared-memory channel.
 *
 *   chan_service SOCKET [--sleep] [--features N] [--slots N] [--bufs N] [--buf-size N]
 *                [--peers uid|group|any] [--group GID] [--socket-mode OCTAL]
 *                [--handshake-ms N] [--max-pending N] [--nofile N] [--hold-drains FD]
 *                [--fail-level-switch]
 *
 * --nofile lowers RLIMIT_NOFILE before serving (the fd-limit tests).
 * --hold-drains FD: every read-back of a channel's doorbells (the server's
 * chan_bell_drain: a recv of up to 256 bytes with MSG_DONTWAIT) first
 * writes "h" on FD and waits, at most 10 s, for one byte back: the test
 * acts as a client in the moment between the service's turn and its drain
 * (test_channel, "the late doorbell drain").  recv is wrapped at link time
 * (-Wl,--wrap=recv); without the option the wrapper only passes through.
 * --fail-level-switch: an EPOLL_CTL_MOD that would watch an fd
 * level-triggered again after it was made edge-triggered fails (ENOMEM):
 * the channel's socket stays edge triggered against the server's wish
 * (chan_server.c, bell_to_level).  epoll_ctl is wrapped at link time too.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/resource.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "chantest.thoth.h"
#include "thoth/channel.h"

static thoth_chan_server_t *srv;
static int hold_fd = -1;

ssize_t __real_recv(int fd, void *buf, size_t len, int flags);
ssize_t __wrap_recv(int fd, void *buf, size_t len, int flags);

ssize_t __wrap_recv(int fd, void *buf, size_t len, int flags)
{
	if (hold_fd >= 0 && len == 256 && flags == MSG_DONTWAIT) {
		char b = 'h';
		struct pollfd p = { .fd = hold_fd, .events = POLLIN };
		if (write(hold_fd, &b, 1) != 1 || poll(&p, 1, 10000) != 1 || read(hold_fd, &b, 1) != 1)
			hold_fd = -1;   /* the test went: stop holding */
	}
	return __real_recv(fd, buf, len, flags);
}
static bool fail_level_switch;
static uint8_t edge_fds[1024];

int __real_epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev);
int __wrap_epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev);

int __wrap_epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
	if (fail_level_switch && op == EPOLL_CTL_MOD && fd >= 0 && fd < (int)sizeof edge_fds) {
		if (ev->events & EPOLLET) {
			edge_fds[fd] = 1;
		} else if (edge_fds[fd]) {
			errno = ENOMEM;
			return -1;
		}
	}
	if (fd >= 0 && fd < (int)sizeof edge_fds && op == EPOLL_CTL_ADD)
		edge_fds[fd] = 0;
	return __real_epoll_ctl(epfd, op, fd, ev);
}

static thoth_loop_t *main_loop;
static uint64_t note_count, note_sum;

static uint32_t count_fds(void)
{
	uint32_t n = 0;
	DIR *d = opendir("/proc/self/fd");
	if (!d)
		return 0;
	while (readdir(d))
		n++;
	closedir(d);
	return n - 3;   /* ".", ".." and the DIR's own fd */
}

static int on_echo(void *self, const thoth_chantest_Test_echo_req_t *req,
		   thoth_chantest_Test_echo_resp_t *resp, thoth_arena_t *arena)
{
	resp->data.ptr = req->data.ptr;
	resp->data.len = req->data.len;
	return 0;
}

static int on_sink(void *self, const thoth_chantest_Test_sink_req_t *req,
		   thoth_chantest_Test_sink_resp_t *resp, thoth_arena_t *arena)
{
	resp->len = req->data.len;
	resp->first = req->data.len ? req->data.ptr[0] : 0;
	resp->last = req->data.len ? req->data.ptr[req->data.len - 1] : 0;
	return 0;
}

static void on_note(void *self, const thoth_chantest_Test_note_req_t *req)
{
	note_count++;
	note_sum += req->value;
}

static int on_notes(void *self, const thoth_chantest_Test_notes_req_t *req,
		    thoth_chantest_Test_notes_resp_t *resp, thoth_arena_t *arena)
{
	resp->count = note_count;
	resp->sum = note_sum;
	return 0;
}

static int on_nap(void *self, const thoth_chantest_Test_nap_req_t *req,
		  thoth_chantest_Test_nap_resp_t *resp, thoth_arena_t *arena)
{
	struct timespec ts = { req->ms / 1000, (long)(req->ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
	return 0;
}

static void on_doze(void *self, const thoth_chantest_Test_doze_req_t *req)
{
	struct timespec ts = { req->ms / 1000, (long)(req->ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

static int on_die(void *self, const thoth_chantest_Test_die_req_t *req,
		  thoth_chantest_Test_die_resp_t *resp, thoth_arena_t *arena)
{
	_exit(9);
}

static int on_health(void *self, const thoth_chantest_Test_health_req_t *req,
		     thoth_chantest_Test_health_resp_t *resp, thoth_arena_t *arena)
{
	thoth_chan_server_stats_t st;
	thoth_chan_server_stats(srv, &st);
	resp->clients = st.clients;
	resp->corrupt = st.corrupt;
	resp->peer_gone = st.peer_gone;
	resp->fds = count_fds();
	resp->calls = st.calls;
	resp->shed = st.shed;
	resp->handshake_dropped = st.handshake_dropped;
	resp->refused = st.refused;
	resp->log_suppressed = st.log_suppressed;
	thoth_loop_stats_t ls;
	thoth_loop_stats(main_loop, &ls);
	resp->loop_wakeups = ls.wakeups;
	return 0;
}

static int on_extra(void *self, const thoth_chantest_Test_extra_only_req_t *req,
		    thoth_chantest_Test_extra_only_resp_t *resp, thoth_arena_t *arena)
{
	return 0;
}

static const thoth_chantest_Test_handlers_t handlers = {
	.echo = on_echo, .sink = on_sink, .note = on_note, .notes = on_notes, .nap = on_nap,
	.die = on_die, .health = on_health, .extra_only = on_extra, .doze = on_doze,
};

static void log_line(void *arg, const char *m)
{
	fprintf(stderr, "chan_service[%d]: %s\n", (int)getpid(), m);
}

static void on_stop(thoth_loop_t *loop, const struct signalfd_siginfo *info, void *arg)
{
	thoth_loop_stop(loop);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: chan_service SOCKET [--sleep] [--features N] [--slots N] [--bufs N] [--buf-size N] "
			"[--peers uid|group|any] [--group GID] [--socket-mode OCTAL] [--handshake-ms N] [--max-pending N] "
			"[--nofile N] [--hold-drains FD] [--fail-level-switch]\n");
		return 2;
	}
	thoth_chan_server_config_t cfg = {
		.path = argv[1], .iface = &thoth_chantest_Test_info, .invoke = thoth_chantest_Test_invoke,
		.handlers = &handlers, .log = log_line,
	};
	for (int i = 2; i < argc; i++) {
		if (!strcmp(argv[i], "--sleep"))
			cfg.wait = THOTH_CHAN_SLEEP;
		else if (!strcmp(argv[i], "--features") && i + 1 < argc)
			cfg.features = strtoull(argv[++i], NULL, 0);
		else if (!strcmp(argv[i], "--slots") && i + 1 < argc)
			cfg.limits.slots = (uint32_t)strtoul(argv[++i], NULL, 0);
		else if (!strcmp(argv[i], "--bufs") && i + 1 < argc)
			cfg.limits.pool_bufs = (uint32_t)strtoul(argv[++i], NULL, 0);
		else if (!strcmp(argv[i], "--buf-size") && i + 1 < argc)
			cfg.limits.pool_buf_size = (uint32_t)strtoul(argv[++i], NULL, 0);
		else if (!strcmp(argv[i], "--peers") && i + 1 < argc) {
			const char *p = argv[++i];
			cfg.peers = !strcmp(p, "any") ? THOTH_CHAN_PEERS_ANY
				  : !strcmp(p, "group") ? THOTH_CHAN_PEERS_GROUP : THOTH_CHAN_PEERS_SAME_UID;
		} else if (!strcmp(argv[i], "--group") && i + 1 < argc)
			cfg.group = (uint32_t)strtoul(argv[++i], NULL, 0);
		else if (!strcmp(argv[i], "--socket-mode") && i + 1 < argc)
			cfg.socket_mode = (uint32_t)strtoul(argv[++i], NULL, 8);
		else if (!strcmp(argv[i], "--handshake-ms") && i + 1 < argc)
			cfg.handshake_timeout_ms = (uint32_t)strtoul(argv[++i], NULL, 0);
		else if (!strcmp(argv[i], "--max-pending") && i + 1 < argc)
			cfg.max_pending = (uint32_t)strtoul(argv[++i], NULL, 0);
		else if (!strcmp(argv[i], "--nofile") && i + 1 < argc) {
			rlim_t n = (rlim_t)strtoul(argv[++i], NULL, 0);
			struct rlimit rl = { n, n };
			if (setrlimit(RLIMIT_NOFILE, &rl)) {
				perror("chan_service: setrlimit");
				return 2;
			}
		} else if (!strcmp(argv[i], "--hold-drains") && i + 1 < argc) {
			hold_fd = (int)strtol(argv[++i], NULL, 10);
		} else if (!strcmp(argv[i], "--fail-level-switch")) {
			fail_level_switch = true;
		} else {
			fprintf(stderr, "chan_service: unknown argument %s\n", argv[i]);
			return 2;
		}
	}
	thoth_loop_t *loop;
	if (thoth_loop_new(&loop))
		return 1;
	main_loop = loop;
	thoth_loop_add_signal(loop, SIGTERM, on_stop, NULL);
	char why[300];
	int r = thoth_chan_server_new(loop, &cfg, &srv, why, sizeof why);
	if (r) {
		fprintf(stderr, "chan_service: %s: %s\n", thoth_strerror(r), why);
		return 1;
	}
	thoth_loop_run(loop);
	thoth_chan_server_free(srv);
	thoth_loop_free(loop);
	return 0;
}
