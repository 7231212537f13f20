/*
 * control_link.c - a non-blocking control connection to thothd on a loop
 * (control_link.h says what it promises).
 *
 *   DOWN --attempt ok--> UP --hang-up / send failure / deadline--> DOWN
 *     ^  \                                                          |
 *     |   `- attempt failed: backoff timer + inotify on the dir <---'
 *     `------ thothd.sock created or renamed into the dir: attempt now
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <unistd.h>

#include "control_link.h"
#include "daemon.thoth.h"
#include "ipc_trace.h"
#include "registry.thoth.h"
#include "thoth/service.h"
#include "thoth/stream.h"
#include "thoth/trace.h"
#include "trace.thoth.h"
#include "timerpage.h"
#include "unixsock.h"

enum {
	BACKOFF_MIN_MS = 50,
	BACKOFF_MAX_MS = 2000,          /* without an inotify watch */
	BACKOFF_WATCHED_MAX_MS = 30000, /* the watch finds thothd: the timer is a safety net */
	SOCKET_APPEARED_MS = 5,         /* bind() is seen before listen(): try again shortly */
};

#define MS_NS 1000000ull

struct thoth__link {
	thoth_loop_t *loop;
	thoth__link_ops_t ops;
	void *arg;
	char path[108];                 /* RUNTIME_DIR/thothd.sock */
	char dir[108];
	const char *sock_name;          /* "thothd.sock", inside path */
	bool started, up;
	bool trace_attached;            /* this connection carried our trace buffer */
	int fd;
	thoth_source_t *source;
	thoth_stream_reader_t reader;
	uint32_t peer_pid;
	int watch_fd;                   /* inotify, only while down */
	thoth_source_t *watch_source;
	thoth_timer_t *retry;           /* armed only while down */
	thoth_timer_t *deadline;        /* armed only while a request waits */
	uint32_t backoff_ms;
	int last_err;                   /* of the last failed attempt (reported once) */
	uint64_t rng;
	uint8_t *out;
	size_t out_cap;
	bool page_asked;                /* Daemon.timer_page sent, answer not yet seen */
	int page_fd;                    /* the descriptor that came with it, until adopted */
};

static uint32_t jitter(thoth__link_t *l, uint32_t ms)
{
	/* xorshift64: keeps restarted processes from reconnecting in lockstep */
	l->rng ^= l->rng << 13;
	l->rng ^= l->rng >> 7;
	l->rng ^= l->rng << 17;
	return ms / 2 + (uint32_t)(l->rng % (ms / 2 + 1));
}

static void retry_fired(thoth_loop_t *loop, thoth_timer_t *timer, void *arg);
static void attempt(thoth__link_t *l);

static int arm_retry(thoth__link_t *l, uint32_t ms)
{
	uint64_t at = thoth_clock_now() + (uint64_t)ms * MS_NS, slack = (uint64_t)ms * MS_NS / 10;
	if (l->retry)
		return thoth_timer_rearm(l->loop, l->retry, at, slack);
	return thoth_loop_add_timer(l->loop, at, slack, retry_fired, l, &l->retry);
}

static void cancel_timer(thoth__link_t *l, thoth_timer_t **t)
{
	if (*t)
		thoth_timer_cancel(l->loop, *t);
	*t = NULL;
}

/* ---- watching the runtime dir while down ---------------------------------------- */

static void unwatch(thoth__link_t *l)
{
	if (l->watch_source)
		thoth_loop_remove_fd(l->loop, l->watch_source);
	l->watch_source = NULL;
	if (l->watch_fd >= 0)
		close(l->watch_fd);
	l->watch_fd = -1;
}

static void watch_event(thoth_loop_t *loop, thoth_source_t *src, int fd, uint32_t events,
			void *arg)
{
	thoth__link_t *l = arg;
	_Alignas(struct inotify_event) char buf[4096];
	bool appeared = false, gone = false;
	for (;;) {
		ssize_t n = read(fd, buf, sizeof buf);
		if (n <= 0)
			break;
		for (char *p = buf; p < buf + n;) {
			struct inotify_event *ev = (struct inotify_event *)p;
			if (ev->mask & (IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF))
				gone = true;    /* the dir itself went: the timer takes over */
			else if (ev->len && strcmp(ev->name, l->sock_name) == 0)
				appeared = true;
			p += sizeof *ev + ev->len;
		}
	}
	if (gone) {
		unwatch(l);
		if (l->backoff_ms > BACKOFF_MAX_MS)
			l->backoff_ms = BACKOFF_MAX_MS;
		arm_retry(l, jitter(l, l->backoff_ms));
	}
	if (appeared && !l->up) {
		l->backoff_ms = SOCKET_APPEARED_MS;
		attempt(l);
	}
}

static void watch_dir(thoth__link_t *l)
{
	if (l->watch_fd >= 0)
		return;
	int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (fd < 0)
		return;                 /* no inotify: the backoff timer alone */
	if (inotify_add_watch(fd, l->dir, IN_CREATE | IN_MOVED_TO | IN_ATTRIB | IN_DELETE_SELF |
					      IN_MOVE_SELF | IN_ONLYDIR | IN_DONT_FOLLOW) < 0 ||
	    thoth_loop_add_fd(l->loop, fd, THOTH_LOOP_READ, watch_event, l, &l->watch_source)) {
		close(fd);
		return;
	}
	l->watch_fd = fd;
}

/* ---- connecting -------------------------------------------------------------------- */

static void close_socket(thoth__link_t *l)
{
	if (l->source)
		thoth_loop_remove_fd(l->loop, l->source);
	l->source = NULL;
	if (l->fd >= 0)
		close(l->fd);
	l->fd = -1;
	thoth_stream_reader_free(&l->reader);
	if (l->page_fd >= 0)
		close(l->page_fd);
	l->page_fd = -1;
	l->page_asked = false;
	l->up = false;
	if (l->trace_attached)
		thoth__trace_collector_detached();
	l->trace_attached = false;
}

/* Down: watch the dir, arm the backoff timer, double the backoff. */
static void wait_for_thothd(thoth__link_t *l)
{
	watch_dir(l);
	uint32_t cap = l->watch_fd >= 0 ? BACKOFF_WATCHED_MAX_MS : BACKOFF_MAX_MS;
	if (l->backoff_ms > cap)
		l->backoff_ms = cap;
	int r = arm_retry(l, jitter(l, l->backoff_ms));
	l->backoff_ms = l->backoff_ms * 2 > cap ? cap : l->backoff_ms * 2;
	if (r && l->ops.down)   /* never silent: without the timer only inotify remains */
		l->ops.down(l->arg, r, "cannot arm the reconnect timer");
}

static void socket_event(thoth_loop_t *loop, thoth_source_t *src, int fd, uint32_t events,
			 void *arg)
{
	thoth__link_t *l = arg;
	int fds[4];
	size_t n_fds = 0;
	int r = thoth_stream_fill_fds(&l->reader, fd, fds, 4, &n_fds);
	/* Only the answer to Daemon.timer_page carries a descriptor; any other
	 * is thothd's mistake or not thothd's, and is closed unread. */
	for (size_t i = 0; i < n_fds; i++) {
		if (l->page_asked && l->page_fd < 0)
			l->page_fd = fds[i];
		else
			close(fds[i]);
	}
	if (r) {
		thoth__link_drop(l, r, "thothd closed the control connection");
		return;
	}
	const uint8_t *msg;
	size_t len;
	while (l->up && (r = thoth_stream_next(&l->reader, &msg, &len)) == 1) {
		if (l->page_asked && thoth__timerpage_is_answer(msg, len)) {
			l->page_asked = false;
			(void)thoth__timerpage_take(msg, len, l->page_fd, l->dir);  /* none: the grid */
			l->page_fd = -1;
		} else if (l->ops.message)
			l->ops.message(l->arg, msg, len);
		if (l->up)      /* the callback may have dropped the link */
			thoth_stream_consume(&l->reader);
	}
	if (l->up && r < 0)
		thoth__link_drop(l, r, "thothd sent a malformed message");
}

/* Hand our trace buffer to thothd (service.c), only after the peer checks
 * passed. */
static int attach_trace_buffer(thoth__link_t *l)
{
	return thoth__trace_buffer_hand_over(l->fd, l->peer_pid, &l->trace_attached);
}

static void attempt(thoth__link_t *l)
{
	if (l->up || !l->started)
		return;
	char why[256];
	int fd;
	int r = thoth__unix_connect(l->path, THOTH__UNIX_CHECK_DIR | THOTH__UNIX_NONBLOCK, 0, &fd, why,
				    sizeof why);
	if (!r) {
		l->fd = fd;
		r = thoth_stream_reader_init(&l->reader, THOTH_WIRE_MAX_BODY);
		pid_t pid = 0;
		if (!r && thoth__unix_peer(fd, NULL, &pid) == 0)
			l->peer_pid = (uint32_t)pid;
		l->reader.service_id = l->peer_pid;     /* traced with what we receive */
		if (!r)
			r = thoth_loop_add_fd(l->loop, fd, THOTH_LOOP_READ, socket_event, l, &l->source);
		if (!r)
			r = attach_trace_buffer(l);
		if (r) {
			snprintf(why, sizeof why, "cannot set up the control connection: %s",
				 thoth_strerror(r));
			close_socket(l);
		}
	}
	if (r) {
		if (r != l->last_err && l->ops.down)
			l->ops.down(l->arg, r, why);
		l->last_err = r;
		wait_for_thothd(l);
		return;
	}
	l->up = true;
	l->last_err = 0;
	l->backoff_ms = BACKOFF_MIN_MS;
	cancel_timer(l, &l->retry);
	unwatch(l);
	/* The window page (SCHED-3): asked before the owner's requests, its
	 * answer taken here, never shown to the owner.  Unanswered (an older
	 * thothd) or refused, the loops keep the per-boot grid. */
	thoth_daemon_Daemon_timer_page_req_t page_req = { 0 };
	l->page_asked = thoth__link_send(l, &thoth_daemon_Daemon_timer_page_info, &page_req,
					 THOTH__TIMERPAGE_REQUEST_ID) == 0;
	if (l->ops.up)
		l->ops.up(l->arg);
}

/* A fired one-shot timer is freed by the loop unless its callback re-arms
 * it: forget it first, so a later arm creates a new one. */
static void retry_fired(thoth_loop_t *loop, thoth_timer_t *timer, void *arg)
{
	thoth__link_t *l = arg;
	l->retry = NULL;
	attempt(l);
}

static void deadline_fired(thoth_loop_t *loop, thoth_timer_t *timer, void *arg)
{
	thoth__link_t *l = arg;
	l->deadline = NULL;
	if (l->up)
		thoth__link_drop(l, THOTH_E_TIMEDOUT, "thothd did not answer in time");
}

/* ---- public -------------------------------------------------------------------------- */

int thoth__link_new(thoth_loop_t *loop, const char *runtime_dir, const thoth__link_ops_t *ops,
		    void *arg, thoth__link_t **out)
{
	thoth__link_t *l = calloc(1, sizeof *l);
	if (!l)
		return THOTH_E_NOMEM;
	l->loop = loop;
	l->ops = *ops;
	l->arg = arg;
	l->fd = l->watch_fd = l->page_fd = -1;
	l->backoff_ms = BACKOFF_MIN_MS;
	l->rng = thoth_clock_now() ^ ((uint64_t)getpid() << 32) ^ 0x9e3779b97f4a7c15ull;
	if (thoth_runtime_dir(runtime_dir, l->dir, sizeof l->dir) ||
	    thoth_control_socket(runtime_dir, l->path, sizeof l->path)) {
		free(l);
		return THOTH_E_INVAL;
	}
	l->sock_name = strrchr(l->path, '/') + 1;
	*out = l;
	return 0;
}

void thoth__link_start(thoth__link_t *l)
{
	if (l->started)
		return;
	l->started = true;
	attempt(l);
}

void thoth__link_free(thoth__link_t *l)
{
	if (!l)
		return;
	close_socket(l);
	unwatch(l);
	cancel_timer(l, &l->retry);
	cancel_timer(l, &l->deadline);
	free(l->out);
	free(l);
}

void thoth__link_stop(thoth__link_t *l)
{
	close_socket(l);
	unwatch(l);
	cancel_timer(l, &l->retry);
	cancel_timer(l, &l->deadline);
	l->started = false;
	l->backoff_ms = BACKOFF_MIN_MS;
	l->last_err = 0;
}

bool thoth__link_is_up(const thoth__link_t *l)
{
	return l->up;
}

void thoth__link_drop(thoth__link_t *l, int err, const char *why)
{
	bool was_up = l->up;
	close_socket(l);
	cancel_timer(l, &l->deadline);
	l->backoff_ms = BACKOFF_MIN_MS;
	l->last_err = err;
	if (was_up && l->ops.down)
		l->ops.down(l->arg, err, why);
	if (!l->up && l->started)       /* the callback neither reconnected nor stopped us */
		wait_for_thothd(l);
}

int thoth__link_send(thoth__link_t *l, const thoth_method_info_t *m, const void *req,
		     uint32_t request_id)
{
	if (!l->up)
		return THOTH_E_PEER_GONE;
	size_t need = thoth_method_size(m, false, req);
	if (need > l->out_cap) {
		void *p;
		if (posix_memalign(&p, THOTH_WIRE_ALIGN, need))
			return THOTH_E_NOMEM;
		free(l->out);
		l->out = p;
		l->out_cap = need;
	}
	thoth_msg_header_t meta = { .features = THOTH_REGISTRY_FEATURES_ALL, .request_id = request_id };
	size_t len;
	int r = thoth_method_encode(m, false, req, &meta, l->out, l->out_cap, &len);
	if (r)
		return r;
	thoth_trace_stamp_request(l->out);
	THOTH_TRACE_WIRE_MSG(msg_send, THOTH_TRACE_SEND, l->peer_pid, l->out, THOTH_TRACE_INLINE);
	ssize_t n;
	do
		n = send(l->fd, l->out, len, MSG_DONTWAIT | MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n == (ssize_t)len)
		return 0;
	/* A partial message cannot be taken back: the connection is unusable.
	 * A full socket buffer means thothd is not reading: never wait for it. */
	if (n >= 0 || errno == EAGAIN || errno == EWOULDBLOCK)
		return THOTH_E_AGAIN;
	return errno == EPIPE || errno == ECONNRESET ? THOTH_E_PEER_GONE : THOTH_E_IO;
}

int thoth__link_deadline(thoth__link_t *l, uint32_t ms)
{
	if (!ms) {
		cancel_timer(l, &l->deadline);
		return 0;
	}
	uint64_t at = thoth_clock_now() + (uint64_t)ms * MS_NS, slack = (uint64_t)ms * MS_NS / 10;
	if (l->deadline)
		return thoth_timer_rearm(l->loop, l->deadline, at, slack);
	return thoth_loop_add_timer(l->loop, at, slack, deadline_fired, l, &l->deadline);
}

uint32_t thoth__link_request_id(const uint8_t *msg, size_t len)
{
	return len >= THOTH_WIRE_HEADER_SIZE ? thoth_le32(msg + 32) : 0;
}

uint16_t thoth__link_flags(const uint8_t *msg, size_t len)
{
	return len >= THOTH_WIRE_HEADER_SIZE ? thoth_le16(msg + 6) : 0;
}

int thoth__link_error_of(const uint8_t *msg, size_t len, uint32_t *code, char *why, size_t why_len)
{
	thoth_msg_header_t h = { 0 };
	int r = thoth_wire_header_decode(msg, len, &h);
	if (r)
		return r;
	if (!(h.flags & THOTH_MSG_ERROR))
		return 0;
	uint64_t scratch[64];
	thoth_arena_t arena;
	thoth_arena_init(&arena, scratch, sizeof scratch);
	thoth_decoder_t d;
	thoth_decoder_init(&d, msg + THOTH_WIRE_HEADER_SIZE, h.body_len, &arena);
	int32_t status;
	thoth_str_t text;
	r = thoth_wire_decode_error(&d, code, &status, &text);
	if (r)
		return r;
	if (why && why_len)
		snprintf(why, why_len, "%.*s", (int)text.len, text.ptr);
	return 1;
}

/* ---- the window page (SCHED-3) ------------------------------------------------------ */

bool thoth__timerpage_is_answer(const uint8_t *msg, size_t len)
{
	const thoth_method_info_t *m = &thoth_daemon_Daemon_timer_page_info;
	return len >= THOTH_WIRE_HEADER_SIZE && !(thoth_le16(msg + 6) & THOTH_MSG_REQUEST) &&
	       thoth_le32(msg + 8) == m->interface_id && thoth_le32(msg + 12) == m->ordinal &&
	       thoth_le32(msg + 32) == THOTH__TIMERPAGE_REQUEST_ID;
}

int thoth__timerpage_take(const uint8_t *msg, size_t len, int fd, const char *dir)
{
	thoth_daemon_Daemon_timer_page_resp_t resp;
	uint64_t ab[16];
	thoth_arena_t arena;
	thoth_arena_init(&arena, ab, sizeof ab);
	int r = thoth_method_decode(&thoth_daemon_Daemon_timer_page_info, true, msg, len, &resp, &arena);
	if (!r && (resp.size != THOTH_TIMERPAGE_SIZE || resp.layout != 1))
		r = THOTH_E_PROTOCOL;
	if (!r && fd < 0)
		r = THOTH_E_NOT_FOUND;  /* answered without it (thothd's output was queued) */
	if (r) {
		if (fd >= 0)
			close(fd);
		return r;
	}
	return thoth__timerpage_adopt(fd, dir);     /* checks the descriptor itself */
}
