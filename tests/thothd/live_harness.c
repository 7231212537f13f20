/*
 * live_harness.c - thothd's dashboard beside a busy traced process
 * (live_harness.h).
 */
#define _GNU_SOURCE
#include "live_harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "thoth/loop.h"
#include "thoth/trace.h"

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000ull + (uint64_t)ts.tv_nsec / 1000000ull;
}

/* The traced process of live_traced_spawn_streaming: its main thread
 * streams, another takes the bursts, each once the main thread has
 * claimed its ring, the first, by a record (stream_claimed).  Not the
 * other way round: a streaming thread started first did not get ring 0,
 * the main thread claimed it before (seen: its bursts went to ring 0). */
static uint32_t stream_per_s;
static int stream_claimed;              /* atomic */
static int burst_go = -1, burst_done = -1;

/* The bursts asked for on GO, each answered on DONE, until GO closes. */
static _Noreturn void serve_bursts(void)
{
	uint32_t n;
	while (read(burst_go, &n, sizeof n) == (ssize_t)sizeof n) {
		for (int i = 0; i < 20000 && !THOTH_TRACE_IS_ON(LOOP); i++)
			usleep(500);    /* until thothd's live collection switches it on */
		for (int i = 0; i < 20000 && stream_per_s &&
				!__atomic_load_n(&stream_claimed, __ATOMIC_ACQUIRE); i++)
			usleep(500);
		if (!THOTH_TRACE_IS_ON(LOOP) ||
		    (stream_per_s && !__atomic_load_n(&stream_claimed, __ATOMIC_ACQUIRE)))
			_exit(3);
		for (uint32_t i = 0; i < n; i++)
			THOTH_TRACE(LOOP, loop_wakeup, THOTH_LOOP_WAKE_TIMER, (uint64_t)i);
		if (write(burst_done, "d", 1) != 1)
			_exit(1);
	}
	_exit(0);
}

static void *burst_thread(void *arg)
{
	(void)arg;
	serve_bursts();
}

/* While LOOP is on, about stream_per_s loop_wakeup records (reason fd) a
 * second, paced by the clock (a catch-up after a pause is capped at 10
 * ms' worth): it keeps writing while a drain of its ring runs. */
static _Noreturn void stream(void)
{
	uint64_t t0 = 0, written = 0, i = 0;
	for (;;) {
		if (!THOTH_TRACE_IS_ON(LOOP)) {
			t0 = 0;
			usleep(500);
			continue;
		}
		uint64_t now = now_ms();
		if (!t0) {
			t0 = now;
			written = 0;
		}
		uint64_t due = (now - t0) * stream_per_s / 1000;
		if (due > written + stream_per_s / 100)
			written = due - stream_per_s / 100;
		for (; written < due; written++)
			THOTH_TRACE(LOOP, loop_wakeup, THOTH_LOOP_WAKE_FD, i++);
		if (i)
			__atomic_store_n(&stream_claimed, 1, __ATOMIC_RELEASE);
		usleep(100);
	}
}

static int spawn(harness_t *h, uint32_t ring_records, uint32_t per_s, uint32_t policy,
		 live_traced_t *out)
{
	int go[2], done[2];
	if (h->n_children >= HARNESS_MAX_CHILDREN || pipe2(go, O_CLOEXEC))
		return -1;
	if (pipe2(done, O_CLOEXEC)) {
		close(go[0]);
		close(go[1]);
		return -1;
	}
	pid_t p = fork();
	if (p < 0) {
		close(go[0]);
		close(go[1]);
		close(done[0]);
		close(done[1]);
		return -1;
	}
	if (p == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		/* Only its own ends: an earlier traced process's GO, inherited,
		 * would keep that one from seeing its GO close. */
		for (int fd = 3; fd < 1024; fd++)
			if (fd != go[0] && fd != done[1])
				close(fd);
		thoth_trace_config_t cfg = { .ring_count = 2, .ring_records = ring_records,
					     .full_policy = policy,
					     .process_name = "busy" };
		thoth_control_t ctl;
		if (thoth_trace_init(&cfg) || harness_connect(h, &ctl))
			_exit(1);
		burst_go = go[0];
		burst_done = done[1];
		stream_per_s = per_s;
		if (!per_s)
			serve_bursts();
		pthread_t th;
		if (pthread_create(&th, NULL, burst_thread, NULL))
			_exit(1);
		stream();
	}
	close(go[0]);
	close(done[1]);
	h->children[h->n_children++] = p;
	*out = (live_traced_t){ .pid = p, .go = go[1], .done = done[0] };
	return 0;
}

int live_traced_spawn(harness_t *h, uint32_t ring_records, live_traced_t *out)
{
	return spawn(h, ring_records, 0, THOTH_TRACE_OVERWRITE_OLDEST, out);
}

int live_traced_spawn_dropping(harness_t *h, uint32_t ring_records, live_traced_t *out)
{
	return spawn(h, ring_records, 0, THOTH_TRACE_DROP_NEWEST, out);
}

int live_traced_spawn_streaming(harness_t *h, uint32_t ring_records, uint32_t per_s,
				live_traced_t *out)
{
	return spawn(h, ring_records, per_s, THOTH_TRACE_OVERWRITE_OLDEST, out);
}

int live_traced_burst(const live_traced_t *p, uint32_t n)
{
	if (write(p->go, &n, sizeof n) != (ssize_t)sizeof n)
		return -1;
	struct pollfd pfd = { .fd = p->done, .events = POLLIN };
	char b;
	if (poll(&pfd, 1, 60000) != 1 || read(p->done, &b, 1) != 1)
		return -1;
	return 0;
}

void live_traced_close(live_traced_t *p)
{
	if (p->go >= 0)
		close(p->go);
	if (p->done >= 0)
		close(p->done);
	p->go = p->done = -1;
}

char live_proc_state(pid_t pid)
{
	char path[64], state = 0;
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "re");
	if (!f)
		return 0;
	if (fscanf(f, "%*d (%*[^)]) %c", &state) != 1)
		state = 0;
	fclose(f);
	return state;
}

int live_traced_exit(live_traced_t *p)
{
	live_traced_close(p);
	for (uint64_t deadline = now_ms() + 10000; now_ms() < deadline; usleep(2000)) {
		/* Not reaped here (the harness reaps its children): exited once
		 * its state is a zombie's, or it is gone. */
		char state = live_proc_state(p->pid);
		if (!state || state == 'Z' || state == 'X')
			return 0;
	}
	return -1;
}

int live_dashboard_port(thoth_control_t *ctl)
{
	thoth_daemon_Daemon_status_resp_t st;
	if (harness_status(ctl, &st))
		return -1;
	char url[128];
	snprintf(url, sizeof url, "%.*s", (int)st.dashboard_url.len, st.dashboard_url.ptr);
	const char *colon = strrchr(url, ':');
	int port = colon ? atoi(colon + 1) : 0;
	return port > 0 ? port : -1;
}

int live_http_connect(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&a, sizeof a)) {
		fprintf(stderr, "# connect to port %d: %s\n", port, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

int live_page_open(int port)
{
	static const char req[] = "GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
	int fd = live_http_connect(port);
	if (fd >= 0 && write(fd, req, sizeof req - 1) != (ssize_t)(sizeof req - 1)) {
		close(fd);
		fd = -1;
	}
	return fd;
}

int live_page_tick(int page, int timeout_ms)
{
	char buf[65536];
	size_t have = 0;
	uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
	while (now_ms() < deadline) {
		struct pollfd pfd = { .fd = page, .events = POLLIN };
		if (poll(&pfd, 1, 1000) != 1)
			continue;
		ssize_t n = read(page, buf + have, sizeof buf - 1 - have);
		if (n <= 0)
			return -1;
		have += (size_t)n;
		buf[have] = 0;
		if (strstr(buf, "event: tick"))
			return 0;
		if (have > sizeof buf / 2) {            /* keep the tail: a tag split across reads */
			memmove(buf, buf + have - 64, 64);
			have = 64;
		}
	}
	return -1;
}

int live_http_send(int port, const char *path)
{
	char req[1200];
	int n = snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", path);
	int fd = n > 0 && (size_t)n < sizeof req ? live_http_connect(port) : -1;
	if (fd >= 0 && write(fd, req, (size_t)n) != n) {
		close(fd);
		fd = -1;
	}
	return fd;
}

char *live_http_read(int fd, size_t *len)
{
	size_t cap = 1u << 20, n = 0;
	char *buf = malloc(cap + 1);
	while (buf) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		if (poll(&pfd, 1, 120000) != 1)
			break;
		ssize_t r = read(fd, buf + n, cap - n);
		if (r < 0)
			break;
		if (r == 0) {
			close(fd);
			buf[n] = 0;
			*len = n;
			return buf;
		}
		n += (size_t)r;
		if (n == cap) {
			char *p = realloc(buf, 2 * cap + 1);
			if (!p)
				break;
			buf = p;
			cap *= 2;
		}
	}
	free(buf);
	close(fd);
	return NULL;
}

char *live_http_get(int port, const char *path, size_t *len)
{
	int fd = live_http_send(port, path);
	return fd < 0 ? NULL : live_http_read(fd, len);
}

char *live_metrics(int port)
{
	int fd = live_http_connect(port);
	static const char req[] = "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
	if (fd < 0)
		return NULL;
	size_t cap = 4u << 20, n = 0;
	char *buf = malloc(cap + 1);
	if (!buf || write(fd, req, sizeof req - 1) != (ssize_t)(sizeof req - 1))
		goto fail;
	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		if (poll(&pfd, 1, 60000) != 1)
			goto fail;
		ssize_t r = read(fd, buf + n, cap - n);
		if (r < 0)
			goto fail;
		if (r == 0)
			break;
		n += (size_t)r;
		if (n >= cap)
			goto fail;
	}
	close(fd);
	buf[n] = 0;
	if (!strstr(buf, " 200 ")) {
		fprintf(stderr, "# /metrics answered: %.300s\n", buf);
		free(buf);
		return NULL;
	}
	return buf;
fail:
	close(fd);
	free(buf);
	return NULL;
}

uint64_t live_metric_sum(const char *text, const char *metric, pid_t pid, const char *with)
{
	char key[128];
	snprintf(key, sizeof key, "%s{pid=\"%d\",", metric, (int)pid);
	uint64_t sum = 0;
	for (const char *p = strstr(text, key); p; p = strstr(p + 1, key)) {
		const char *end = strchr(p, '}');
		const char *w = with ? strstr(p, with) : p;
		if (end && w && w < end)
			sum += strtoull(end + 1, NULL, 10);
	}
	return sum;
}

uint64_t live_wakeups(int port, pid_t pid)
{
	char *m = live_metrics(port);
	if (!m)
		return UINT64_MAX;
	uint64_t n = live_metric_sum(m, "thoth_process_wakeups_total", pid, "reason=\"all\"");
	free(m);
	return n;
}

uint64_t live_wait_wakeups(int port, pid_t pid, uint64_t want, int timeout_ms)
{
	uint64_t deadline = now_ms() + (uint64_t)timeout_ms, got;
	while ((got = live_wakeups(port, pid)) < want && now_ms() < deadline)
		usleep(20000);
	return got;
}

uint64_t live_loop_cpu_ns(pid_t thothd)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/task/%d/schedstat", (int)thothd, (int)thothd);
	FILE *f = fopen(path, "re");
	unsigned long long ns = 0;
	if (!f)
		return 0;
	if (fscanf(f, "%llu", &ns) != 1)
		ns = 0;
	fclose(f);
	return ns;
}

int live_log_count(const char *log, const char *needle)
{
	FILE *f = fopen(log, "re");
	if (!f)
		return 0;
	char line[1024];
	int n = 0;
	while (fgets(line, sizeof line, f))
		n += strstr(line, needle) != NULL;
	fclose(f);
	return n;
}
