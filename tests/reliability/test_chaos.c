/*
 * test_chaos.c - "nothing lost when a process crashes" and "the daemon
 * never hangs", broken the way an operator breaks them: real thothd,
 * services and clients under steady load, and SIGKILL of one of them at a
 * random moment, round after round.
 *
 * Cast (all real programs, in a temp runtime dir):
 *   thothd (with a trace session: every process below is traced),
 *   two echo services, examples/kv's kv-service, codex (4 KiB segments, so
 *   appends roll segments all the time), pm-sim-driver declaring "disk";
 *   load: chaos_client calling echo and kv every 20 ms through resolvers
 *   (2 s call deadline) and thothd itself (Daemon.status on a control
 *   connection), chaos_client holding an assertive lease on disk,
 *   two `thothctl codex append` (one --sync, one --deferred) fed a record
 *   every ~20 ms and printing each acknowledged sequence number.
 *
 * Each round lets the load run for a random time, SIGKILLs a random one
 * (a client mid-call, a service mid-answer, codex mid-write or mid-roll,
 * thothd, the driver, the lease holder, an appender), restarts it (thothd
 * after a random absence) and waits for the system to settle, then checks:
 *   - no call hangs: every load client reports each attempt, answered or
 *     failed with a named error, within its deadline (+ slack for a loaded
 *     machine); an appender with a record outstanding answers or exits;
 *   - no process dies that was not killed, except those whose documented
 *     reaction to a peer's death is to exit with a message (appenders when
 *     codex or thothd dies, the lease holder when thothd dies): services,
 *     the PM driver included, outlive thothd and come back to the new one;
 *   - no acknowledged codex record is lost: every (seq, bytes) an appender
 *     printed reads back exactly, after every codex kill and at the end;
 *   - the leases of a dead holder are gone from PowerBroker.state;
 *   - thothd's registrations are back to the cast's, its descriptor count
 *     back to the baseline (the same processes connected), its RSS within
 *     a bound of the first settled value, `thothctl status` answers;
 *   - no zombie and no process left in the runtime dir that is not ours.
 *
 * THOTH_CHAOS_SEED replays a run (the seed is printed first);
 * THOTH_CHAOS_SECONDS sets the length (default 12; make soak runs longer).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "client_proc.h"
#include "harness.h"
#include "pm.thoth.h"
#include "slowdown.h"

/* A failure message cut short at its buffer is still a failure message. */
#pragma GCC diagnostic ignored "-Wformat-truncation"

#define CALL_DEADLINE_MS 2000
/* A report later than the call's deadline by more than this is a hang: the
 * slack is for a loaded 2-CPU machine (and ASan), not for the code. */
#define HANG_SLACK_MS THOTH_TEST_DEADLINE_MS(4000)
#define SETTLE_MS THOTH_TEST_DEADLINE_MS(15000)
#define LEASE_SETTLE_MS THOTH_TEST_DEADLINE_MS(36000)   /* 30 s + its timer's slack (1/8) */
#define EXPECTED_REGISTRATIONS 5        /* echo x2, kv, codex x2 workers */
#define MAX_ACKED 200000
/* The whole run ends by its seconds plus this: every wait in settle is cut
 * to it, so a round begun just before the end (a lease may need 36 s, 144 s
 * under ASan) fails with a message and a clean teardown instead of running
 * past ctest's TIMEOUT (chaos.cmake: 200 s) and leaving its temp dir. */
#define RUN_TAIL_MS 150000

typedef enum role {
	R_ECHO1, R_ECHO2, R_KV, R_CODEX, R_BUS, R_DRIVER,
	R_LOAD_ECHO, R_LOAD_KV, R_LOAD_CTL, R_LEASE, R_APPEND_SYNC, R_APPEND_DEFERRED,
	R_THOTHD, R_COUNT
} role_t;

static const char *const role_names[R_COUNT + 1] = {
	"echo 1", "echo 2", "kv-service", "codex", "bus driver", "disk driver",
	"echo load", "kv load", "status load", "lease holder", "sync appender", "deferred appender", "thothd",
	"nothing",      /* R_COUNT: no victim (start-up) */
};

typedef struct proc {
	pid_t pid;
	int out;                        /* our end of its stdout (-1: none) */
	int in;                         /* our end of its stdin (appenders) */
	char line[512];
	size_t len;
	uint64_t last_report_ms;        /* load: its last line */
	uint64_t started_ms;
	char log[400];                  /* its log, shared by its role's instances */
	off_t log_off;                  /* where this instance's lines begin */
	/* appenders: records written and not yet acknowledged, oldest first */
	uint64_t pending[64];
	uint64_t pending_ms[64];
	unsigned pending_head, pending_count;
	uint64_t next_write_ms;
	unsigned long reports, ok, failed;
	struct { char name[40]; unsigned long n; } errors[8];  /* failed calls by error name */
} proc_t;

typedef struct acked {
	uint64_t seq, id;
} acked_t;

typedef struct chaos {
	harness_t h;
	unsigned seed;                  /* the run's, printed and replayed */
	unsigned rng;                   /* rand_r's state, from the seed: the rounds' draws only */
	proc_t p[R_COUNT];
	char data_dir[128];
	uint64_t next_id;               /* record ids: "r<seed>-<id>" */
	acked_t *acked[2];              /* per stream (sync, deferred) */
	size_t n_acked[2];
	unsigned kills[R_COUNT];
	unsigned round;
	role_t last_victim;             /* whose death an exit may be the reaction to */
	uint64_t last_kill_ms;
	uint64_t exit_after_kill_ms[R_COUNT];   /* slowest reaction: death noticed, exited */
	int fds_baseline;               /* this thothd instance's, settled */
	pid_t fds_of;                   /* the instance fds_baseline belongs to */
	int clients_baseline, watches_baseline;
	int sockets_extra;              /* thothd's sockets that are no connection (listeners) */
	pid_t svc_fds_of[R_COUNT];      /* services: the instance svc_fds belongs to */
	int svc_fds[R_COUNT];           /* its descriptors when first settled */
	long rss_first_kb;
	uint64_t run_deadline_ms;       /* no wait goes past it (RUN_TAIL_MS) */
	int bare_fds;                   /* the first thothd's, no client, no session */
	char why[1024];
} chaos_t;

static chaos_t *cx_global;      /* for the fail message's seed */

#define CHAOS_FAIL(c, ...)                                                                          \
	do {                                                                                        \
		char msg_[1500];                                                                    \
		snprintf(msg_, sizeof msg_, __VA_ARGS__);                                           \
		fail_msg("chaos seed %u round %u: %s (replay: THOTH_CHAOS_SEED=%u; logs kept in %s " \
			 "with THOTH_TEST_KEEP=1)", (c)->seed, (c)->round, msg_, (c)->seed, (c)->h.dir); \
	} while (0)

static uint64_t rnd(chaos_t *c, uint64_t n)
{
	return n ? (uint64_t)rand_r(&c->rng) % n : 0;
}

/* ---- processes ---------------------------------------------------------- */

/* Start ARGV as P: stderr (and stdout unless WANT_OUT) to DIR/LOG_NAME.log;
 * WANT_OUT: stdout on a pipe we read; WANT_IN: stdin on a pipe we write. */
static pid_t spawn_proc(chaos_t *c, proc_t *p, const char *log_name, const char *const *argv, bool want_out,
			bool want_in)
{
	int out[2] = { -1, -1 }, in[2] = { -1, -1 };
	if ((want_out && pipe2(out, O_CLOEXEC)) || (want_in && pipe2(in, O_CLOEXEC)))
		CHAOS_FAIL(c, "pipe: %s", strerror(errno));
	char log[400];
	snprintf(log, sizeof log, "%s/%s.log", c->h.dir, log_name);
	snprintf(p->log, sizeof p->log, "%s", log);
	struct stat lst;
	p->log_off = stat(log, &lst) ? 0 : lst.st_size;
	pid_t pid = fork();
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		int err = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
		dup2(want_out ? out[1] : err, 1);
		dup2(err, 2);
		if (want_in)
			dup2(in[0], 0);
		else
			close(0);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	if (pid < 0)
		CHAOS_FAIL(c, "fork: %s", strerror(errno));
	if (want_out) {
		close(out[1]);
		fcntl(out[0], F_SETFL, O_NONBLOCK);
	}
	if (want_in)
		close(in[0]);
	p->pid = pid;
	p->out = want_out ? out[0] : -1;
	p->in = want_in ? in[1] : -1;
	p->len = 0;
	p->pending_head = p->pending_count = 0;
	p->started_ms = p->last_report_ms = harness_now_ms();
	p->next_write_ms = 0;
	return pid;
}

static void close_pipes(proc_t *p)
{
	if (p->out >= 0)
		close(p->out);
	if (p->in >= 0)
		close(p->in);
	p->out = p->in = -1;
}

static int count_in(const char *list, const char *what);

static void start_role(chaos_t *c, role_t r)
{
	proc_t *p = &c->p[r];
	const char *d = c->h.dir;
	p->out = p->in = -1;
	switch (r) {
	case R_THOTHD: {
		/* --http-port 0: a port of its own every time.  At the default
		 * (9180, optional) a restarted thothd ran without a dashboard
		 * whenever another test's thothd held 9180 at that moment, two
		 * descriptors short of the first one's count (the listener and
		 * libmicrohttpd's epoll): make test's ASan stage failed so. */
		const char *extra[] = { "--log-level", "info", "--http-port", "0", NULL };
		if (harness_start_thothd(&c->h, extra) <= 0)
			CHAOS_FAIL(c, "thothd did not start (see %s)", c->h.log);
		p->pid = c->h.thothd;
		if (c->bare_fds < 0) {
			/* nobody else started yet: once the harness's readiness
			 * connection is gone, the count steady for 300 ms */
			int last = -1, same = 0;
			for (uint64_t t0 = harness_now_ms(); same < 6 && harness_now_ms() - t0 < 5000; same++) {
				int n = client_proc_fds(c->h.thothd);
				if (n != last)
					same = 0;
				last = n;
				struct timespec ts = { 0, 50 * 1000 * 1000 };
				nanosleep(&ts, NULL);
			}
			char list[4096];
			client_proc_fd_list(c->h.thothd, list, sizeof list);
			c->bare_fds = last - count_in(list, "[eventfd]") - count_in(list, "[pidfd]");
		}
		/* A trace session: every process is traced from now on. */
		const char *argv[] = { THOTHCTL_PATH, "--runtime-dir", d, "trace", "start", NULL };
		char out[1024];
		int st;
		harness_run(&c->h, argv, out, sizeof out, &st);
		if (!WIFEXITED(st) || WEXITSTATUS(st))
			CHAOS_FAIL(c, "thothctl trace start failed: %s", out);
		return;
	}
	case R_ECHO1:
	case R_ECHO2: {
		const char *argv[] = { ECHO_PATH, "--runtime-dir", d, NULL };
		spawn_proc(c, p, r == R_ECHO1 ? "echo1" : "echo2", argv, false, false);
		return;
	}
	case R_KV: {
		const char *argv[] = { KV_SERVICE_PATH, "--runtime-dir", d, NULL };
		spawn_proc(c, p, "kv", argv, false, false);
		return;
	}
	case R_CODEX: {
		const char *argv[] = { CODEX_PATH, "--runtime-dir", d, "--data-dir", c->data_dir, "--workers", "2",
				       "--segment-bytes", "4096", NULL };
		spawn_proc(c, p, "codex", argv, false, false);
		return;
	}
	case R_BUS: {
		const char *argv[] = { PM_SIM_DRIVER_PATH, "bus", "--runtime-dir", d, NULL };
		spawn_proc(c, p, "bus", argv, false, false);
		return;
	}
	case R_DRIVER: {
		/* the disk needs the bus ON at its top level: a driver whose
		 * element holds another up */
		const char *argv[] = { PM_SIM_DRIVER_PATH, "disk", "--needs", "bus", "--runtime-dir", d, NULL };
		spawn_proc(c, p, "driver", argv, false, false);
		return;
	}
	case R_LOAD_ECHO:
	case R_LOAD_KV:
	case R_LOAD_CTL: {
		char deadline[16];
		snprintf(deadline, sizeof deadline, "%d", CALL_DEADLINE_MS);
		const char *kind = r == R_LOAD_ECHO ? "echo" : r == R_LOAD_KV ? "kv" : "status";
		const char *argv[] = { CHAOS_CLIENT_PATH, d, kind, deadline, NULL };
		char log_name[32];
		snprintf(log_name, sizeof log_name, "load-%s", kind);
		spawn_proc(c, p, log_name, argv, true, false);
		return;
	}
	case R_LEASE: {
		const char *argv[] = { CHAOS_CLIENT_PATH, d, "lease", "disk", "2", NULL };
		spawn_proc(c, p, "lease", argv, true, false);
		return;
	}
	case R_APPEND_SYNC:
	case R_APPEND_DEFERRED: {
		const char *argv[] = { THOTHCTL_PATH, "--runtime-dir", d, "codex", "append",
				       r == R_APPEND_SYNC ? "sync" : "deferred",
				       r == R_APPEND_SYNC ? "--sync" : "--deferred", NULL };
		spawn_proc(c, p, r == R_APPEND_SYNC ? "append-sync" : "append-deferred", argv, true, true);
		return;
	}
	default:
		return;
	}
}

/* ---- load: reading reports, feeding appenders --------------------------- */

/* The longest a load client's tick may legally take: each of its calls has
 * the deadline -- echo connects and echoes, kv connects, puts and gets,
 * status connects and asks -- plus the slack for a loaded machine. */
static uint64_t tick_limit_ms(role_t r)
{
	return (uint64_t)(r == R_LOAD_KV ? 3 : 2) * CALL_DEADLINE_MS + HANG_SLACK_MS;
}

static void handle_line(chaos_t *c, role_t r, const char *line)
{
	proc_t *p = &c->p[r];
	uint64_t now = harness_now_ms();
	p->last_report_ms = now;
	p->reports++;
	if (r == R_APPEND_SYNC || r == R_APPEND_DEFERRED) {
		char *end;
		uint64_t seq = strtoull(line, &end, 10);
		if (*end || !p->pending_count)
			CHAOS_FAIL(c, "%s printed \"%s\" with %u records outstanding", role_names[r], line,
				   p->pending_count);
		int s = r == R_APPEND_SYNC ? 0 : 1;
		if (c->n_acked[s] == MAX_ACKED)
			CHAOS_FAIL(c, "more than %d acknowledged records", MAX_ACKED);
		c->acked[s][c->n_acked[s]++] = (acked_t){ seq, p->pending[p->pending_head] };
		p->pending_head = (p->pending_head + 1) % 64;
		p->pending_count--;
		p->ok++;
		return;
	}
	unsigned long ms = 0;
	if (!strncmp(line, "ok ", 3)) {
		p->ok++;
		ms = strtoul(line + 3, NULL, 10);
	} else if (!strncmp(line, "err ", 4)) {
		p->failed++;
		char *name;
		ms = strtoul(line + 4, &name, 10);
		char what[40] = "";
		sscanf(name, " %39s", what);
		for (int k = 0; k < 8; k++)
			if (!p->errors[k].name[0] || !strcmp(p->errors[k].name, what)) {
				snprintf(p->errors[k].name, sizeof p->errors[k].name, "%s", what);
				p->errors[k].n++;
				break;
			}
	} else if (!strncmp(line, "bad", 3)) {
		CHAOS_FAIL(c, "%s read back something else than it put: %s", role_names[r], line);
	}
	if (ms > tick_limit_ms(r))
		CHAOS_FAIL(c, "%s: a tick took %lu ms, past its calls' %d ms deadlines (%llu ms in all): %s",
			   role_names[r], ms, CALL_DEADLINE_MS, (unsigned long long)tick_limit_ms(r), line);
}

static void read_reports(chaos_t *c, role_t r)
{
	proc_t *p = &c->p[r];
	if (p->out < 0)
		return;
	for (;;) {
		ssize_t n = read(p->out, p->line + p->len, sizeof p->line - 1 - p->len);
		if (n <= 0)
			return;
		p->len += (size_t)n;
		char *nl;
		while ((nl = memchr(p->line, '\n', p->len))) {
			*nl = 0;
			handle_line(c, r, p->line);
			size_t used = (size_t)(nl - p->line) + 1;
			memmove(p->line, p->line + used, p->len - used);
			p->len -= used;
		}
		if (p->len == sizeof p->line - 1)
			p->len = 0;     /* an over-long line: not ours */
	}
}

static void feed_appender(chaos_t *c, role_t r)
{
	proc_t *p = &c->p[r];
	uint64_t now = harness_now_ms();
	if (p->in < 0 || p->pid <= 0 || p->pending_count >= 4 || now < p->next_write_ms)
		return;
	char line[64];
	uint64_t id = ++c->next_id;
	int n = snprintf(line, sizeof line, "r%u-%llu\n", c->seed, (unsigned long long)id);
	if (write(p->in, line, (size_t)n) != n)
		return;         /* it died: noticed by reap_unexpected */
	unsigned slot = (p->pending_head + p->pending_count) % 64;
	p->pending[slot] = id;
	p->pending_ms[slot] = now;
	p->pending_count++;
	/* Pacing from the record id, not from the rounds' stream: how many
	 * records the machine's timing lets through must not change which
	 * process a later round kills (a replay of the seed). */
	unsigned pace = c->seed ^ (unsigned)(id * 2654435761u);
	p->next_write_ms = now + 10 + (uint64_t)rand_r(&pace) % 20;
}

/* Is anyone stuck?  A load client reports every 20 ms; an appender
 * answers each record or fails. */
static void check_hangs(chaos_t *c)
{
	uint64_t now = harness_now_ms();
	for (role_t r = R_LOAD_ECHO; r <= R_LOAD_CTL; r++)
		if (c->p[r].pid > 0 && now - c->p[r].last_report_ms > tick_limit_ms(r))
			CHAOS_FAIL(c, "%s (pid %d) has reported nothing for %llu ms: a call hangs past its "
				   "%d ms deadline", role_names[r], (int)c->p[r].pid,
				   (unsigned long long)(now - c->p[r].last_report_ms), CALL_DEADLINE_MS);
	for (role_t r = R_APPEND_SYNC; r <= R_APPEND_DEFERRED; r++) {
		proc_t *p = &c->p[r];
		if (p->pid > 0 && p->pending_count && now - p->pending_ms[p->pending_head] > CALL_DEADLINE_MS + HANG_SLACK_MS)
			CHAOS_FAIL(c, "%s (pid %d): a record has waited %llu ms for its acknowledgement or an "
				   "error", role_names[r], (int)p->pid,
				   (unsigned long long)(now - p->pending_ms[p->pending_head]));
	}
}

/* Which exits of a process we did not kill are its documented reaction to
 * the death of VICTIM (R_COUNT: none). */
static bool may_exit(role_t r, role_t victim)
{
	if (r == R_APPEND_SYNC || r == R_APPEND_DEFERRED)
		return victim == R_CODEX || victim == R_THOTHD;
	if (r == R_LEASE)
		return victim == R_THOTHD;
	return false;   /* services, the driver included, outlive thothd */
}

/* Did this instance of P (its lines of the shared log) say NEEDLE? */
static bool log_has(const proc_t *p, const char *needle)
{
	FILE *f = fopen(p->log, "r");
	if (!f)
		return false;
	bool found = false;
	char line[1024];
	if (!fseeko(f, p->log_off, SEEK_SET))
		while (!found && fgets(line, sizeof line, f))
			found = strstr(line, needle) != NULL;
	fclose(f);
	return found;
}

/* The documented exit status of R's reaction to a death: an appender 1
 * (thothctl's failure), the lease holder 3 ("thothd gone"). */
static int reaction_status(role_t r)
{
	return r == R_LEASE ? 3 : 1;
}

/* Reap anyone who exited; restart those allowed to, fail on the others. */
static void reap_exits(chaos_t *c, role_t victim)
{
	for (role_t r = 0; r < R_COUNT; r++) {
		proc_t *p = &c->p[r];
		if (p->pid <= 0)
			continue;
		int st;
		pid_t w = waitpid(p->pid, &st, WNOHANG);
		if (w != p->pid)
			continue;
		/* reaped: forgotten before anything can fail, or teardown would
		 * signal a pid that may be someone else's by then */
		pid_t dead = p->pid;
		p->pid = 0;
		if (r == R_THOTHD)
			c->h.thothd = 0;
		read_reports(c, r);
		close_pipes(p);
		if (!may_exit(r, victim) && !may_exit(r, c->last_victim))
			CHAOS_FAIL(c, "%s (pid %d) %s %d after %s was killed (%s/*.log say more)", role_names[r],
				   (int)dead, WIFSIGNALED(st) ? "died of signal" : "exited",
				   WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st), role_names[c->last_victim], c->h.dir);
		/* A reaction, not a crash: its documented status ... */
		if (!WIFEXITED(st) || WEXITSTATUS(st) != reaction_status(r))
			CHAOS_FAIL(c, "%s (pid %d) %s %d after %s was killed, not exit %d (%s)", role_names[r],
				   (int)dead, WIFSIGNALED(st) ? "died of signal" : "exited",
				   WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st), role_names[c->last_victim],
				   reaction_status(r), p->log);
		/* ... and it says why, not vanish: this instance names codex
		 * or thothd (another instance's lines do not count) */
		if ((r == R_APPEND_SYNC || r == R_APPEND_DEFERRED) && !log_has(p, "codex") && !log_has(p, "thothd"))
			CHAOS_FAIL(c, "%s (pid %d) exited without saying why (%s from byte %lld)", role_names[r],
				   (int)dead, p->log, (long long)p->log_off);
		uint64_t took = harness_now_ms() - c->last_kill_ms;
		if (took > c->exit_after_kill_ms[r])
			c->exit_after_kill_ms[r] = took;
		/* Its outstanding records were never acknowledged: nothing promised. */
		p->pending_count = 0;
	}
}

static void pump(chaos_t *c, uint64_t ms, role_t victim)
{
	uint64_t end = harness_now_ms() + ms;
	do {
		for (role_t r = 0; r < R_COUNT; r++)
			read_reports(c, r);
		feed_appender(c, R_APPEND_SYNC);
		feed_appender(c, R_APPEND_DEFERRED);
		check_hangs(c);
		reap_exits(c, victim);
		struct timespec ts = { 0, 5 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	} while (harness_now_ms() < end);
}

/* ---- checks --------------------------------------------------------------- */

static int daemon_status(chaos_t *c, thoth_daemon_Daemon_status_resp_t *st)
{
	thoth_control_t ctl;
	if (harness_connect(&c->h, &ctl))
		return -1;
	int r = harness_status(&ctl, st);
	thoth_control_close(&ctl);
	return r ? -1 : 0;
}

static int registrations(chaos_t *c)
{
	thoth_daemon_Daemon_status_resp_t st;
	return daemon_status(c, &st) ? -1 : (int)st.registrations;
}

/* Connections and watches as at the baseline (the cast connected again,
 * nothing left of the dead). */
static bool clients_at_baseline(void *arg)
{
	chaos_t *c = arg;
	thoth_daemon_Daemon_status_resp_t st;
	return !daemon_status(c, &st) && (int)st.clients == c->clients_baseline &&
	       (int)st.watches == c->watches_baseline;
}

/* Leases held by PID in PowerBroker.state (-1: no answer). */
static int leases_of(chaos_t *c, pid_t pid, uint32_t *status)
{
	thoth_control_t ctl;
	if (harness_connect(&c->h, &ctl))
		return -1;
	static uint64_t scratch[1 << 16];
	thoth_arena_t arena;
	thoth_arena_init(&arena, scratch, sizeof scratch);
	thoth_pm_PowerBroker_state_req_t req = { 0 };
	thoth_pm_PowerBroker_state_resp_t st;
	int r = thoth_pm_PowerBroker_state(&ctl.client, &req, &st, &arena);
	thoth_control_close(&ctl);
	if (r)
		return -1;
	int n = 0;
	for (uint32_t i = 0; i < st.leases.count; i++)
		if (st.leases.items[i].holder_pid == (uint32_t)pid) {
			n++;
			if (status)
				*status = st.leases.items[i].status;
		}
	return n;
}

static long rss_kb(pid_t pid)
{
	char path[64], line[256];
	snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "r");
	long kb = -1;
	while (f && fgets(line, sizeof line, f))
		if (sscanf(line, "VmRSS: %ld", &kb) == 1)
			break;
	if (f)
		fclose(f);
	return kb;
}

/* Processes whose command line names our runtime dir and that are not in
 * the cast (nor this test): leaked. */
static void check_no_strays(chaos_t *c)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	while (d && (e = readdir(d))) {
		pid_t pid = (pid_t)atoi(e->d_name);
		if (pid <= 0 || pid == getpid())
			continue;
		char path[64], cmd[4096];
		snprintf(path, sizeof path, "/proc/%d/cmdline", (int)pid);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		ssize_t n = read(fd, cmd, sizeof cmd - 1);
		close(fd);
		if (n <= 0)
			continue;
		for (ssize_t i = 0; i < n; i++)
			if (!cmd[i])
				cmd[i] = ' ';
		cmd[n] = 0;
		if (!strstr(cmd, c->h.dir))
			continue;
		bool ours = false;
		for (role_t r = 0; r < R_COUNT; r++)
			ours = ours || c->p[r].pid == pid;
		char stat_path[64], state = '?';
		snprintf(stat_path, sizeof stat_path, "/proc/%d/stat", (int)pid);
		FILE *f = fopen(stat_path, "r");
		if (f) {
			if (fscanf(f, "%*d %*s %c", &state) != 1)
				state = '?';
			fclose(f);
		}
		if (!ours)
			CHAOS_FAIL(c, "process %d (%s, state %c) is not in the cast: leaked", (int)pid, cmd, state);
		if (state == 'Z')
			CHAOS_FAIL(c, "process %d (%s) is a zombie", (int)pid, cmd);
	}
	if (d)
		closedir(d);
}

/* The journal holds every acknowledged record of STREAM with its bytes. */
static void check_codex(chaos_t *c, int s)
{
	const char *stream = s == 0 ? "sync" : "deferred";
	const char *argv[] = { THOTHCTL_PATH, "--runtime-dir", c->h.dir, "codex", "read", stream, NULL };
	static char out[8 << 20];
	int st = 0;
	harness_run(&c->h, argv, out, sizeof out, &st);
	if (!WIFEXITED(st) || WEXITSTATUS(st))
		CHAOS_FAIL(c, "thothctl codex read %s failed: %.300s", stream, out);
	/* "SEQ\tr<seed>-<id>" lines, in sequence order */
	static uint64_t ids[MAX_ACKED + 1];
	uint64_t max_seq = 0;
	memset(ids, 0, sizeof ids);
	for (char *line = out; *line;) {
		char *nl = strchr(line, '\n');
		if (nl)
			*nl = 0;
		unsigned long long seq, id;
		unsigned seed;
		if (sscanf(line, "%llu\tr%u-%llu", &seq, &seed, &id) == 3 && seq <= MAX_ACKED) {
			ids[seq] = id;
			max_seq = seq > max_seq ? seq : max_seq;
		}
		if (!nl)
			break;
		line = nl + 1;
	}
	for (size_t i = 0; i < c->n_acked[s]; i++) {
		acked_t *a = &c->acked[s][i];
		if (a->seq > MAX_ACKED || ids[a->seq] != a->id)
			CHAOS_FAIL(c, "codex lost an acknowledged %s record: seq %llu should be r%u-%llu, reads %s%llu "
				   "(%zu acknowledged, last seq read %llu)", stream, (unsigned long long)a->seq,
				   c->seed, (unsigned long long)a->id, ids[a->seq] ? "r-" : "nothing ",
				   (unsigned long long)ids[a->seq], c->n_acked[s], (unsigned long long)max_seq);
	}
}

typedef struct { chaos_t *c; } settle_arg_t;

static bool cast_registered(void *arg)
{
	chaos_t *c = arg;
	return registrations(c) == EXPECTED_REGISTRATIONS;
}

/* What a dead peer held is given back.  Exactly: a socket for each
 * connection thothd counts and its listener, nothing for the dead.  In
 * all: at most the instance's settled count plus what comes and goes with
 * timing rather than with kills -- while the trace session runs, the
 * pidfds its readers hold of busy writer threads; descriptors opened on
 * first use (an eventfd) -- FD_SLACK, which a descriptor kept per kill
 * passes within a few rounds. */
#define FD_SLACK 16

static int count_in(const char *list, const char *what)
{
	int n = 0;
	for (const char *p = list; (p = strstr(p, what)); p += strlen(what))
		n++;
	return n;
}

static bool fds_at_baseline(void *arg)
{
	chaos_t *c = arg;
	thoth_daemon_Daemon_status_resp_t st;
	static char list[16384];
	client_proc_fd_list(c->h.thothd, list, sizeof list);
	int sockets = count_in(list, "->socket:");
	/* the status connection is counted in clients and open while it is */
	if (daemon_status(c, &st))
		return false;
	if (c->sockets_extra < 0)
		c->sockets_extra = sockets - (int)st.clients;     /* listeners: the first settled instance */
	if (sockets > (int)st.clients + c->sockets_extra)
		return false;
	return client_proc_fds(c->h.thothd) <= c->fds_baseline + FD_SLACK;
}

/* A socket file in the runtime dir that nobody listens on any more: a
 * dead service's endpoint or a dead loop's timer doorbell (tk.*) that
 * thothd did not remove.  Names the first into C->why. */
static bool no_stale_sockets(void *arg)
{
	chaos_t *c = arg;
	DIR *d = opendir(c->h.dir);
	struct dirent *e;
	bool clean = true;
	while (clean && d && (e = readdir(d))) {
		struct stat st;
		if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) || !S_ISSOCK(st.st_mode))
			continue;
		struct sockaddr_un a = { .sun_family = AF_UNIX };
		snprintf(a.sun_path, sizeof a.sun_path, "%s/%s", c->h.dir, e->d_name);
		static const int types[] = { SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET };
		bool refused = false;
		for (int t = 0; t < 3; t++) {
			int fd = socket(AF_UNIX, types[t] | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
			int r = connect(fd, (struct sockaddr *)&a, sizeof a);
			int err = errno;
			close(fd);
			if (r == 0 || err == EAGAIN || err == EINPROGRESS)
				break;
			if (err == EPROTOTYPE)
				continue;
			refused = err == ECONNREFUSED;
			break;
		}
		if (refused) {
			snprintf(c->why, sizeof c->why, "%s", e->d_name);
			clean = false;
		}
	}
	if (d)
		closedir(d);
	return clean;
}

/* The lease holder's assertive lease, SATISFIED (the bus and the disk
 * raised by their drivers: nothing stuck once the drivers answer,
 * docs/PM.md), and codex's opportunistic one. */
static bool leases_held(void *arg)
{
	chaos_t *c = arg;
	uint32_t status = 0;
	return leases_of(c, c->p[R_LEASE].pid, &status) == 1 && status == THOTH_PM_LEASE_STATUS_SATISFIED &&
	       leases_of(c, c->p[R_CODEX].pid, NULL) == 1;
}

typedef struct {
	chaos_t *c;
	pid_t dead;
} dead_arg_t;

static bool leases_freed(void *arg)
{
	dead_arg_t *a = arg;
	return leases_of(a->c, a->dead, NULL) == 0;
}

#define SVC_FD_SLACK 12

typedef struct {
	chaos_t *c;
	role_t r;
	int slack;
} svc_arg_t;

/* A service's descriptors, less codex's segment files: codex keeps each
 * segment open for reads, one more per roll (docs/CODEX.md, Limits), which
 * is the journal's growth, not a dead client's leftovers. */
static int svc_fd_count(pid_t pid)
{
	static char list[65536];
	client_proc_fd_list(pid, list, sizeof list);
	return client_proc_fds(pid) - count_in(list, "/journal/seg-");
}

static bool svc_fds_back(void *arg)
{
	svc_arg_t *a = arg;
	return svc_fd_count(a->c->p[a->r].pid) <= a->c->svc_fds[a->r] + a->slack;
}

/* Everything back: restart whoever is down, wait for the registry and
 * leases, then the invariants. */
static void restart_down(chaos_t *c)
{
	if (c->p[R_THOTHD].pid <= 0)
		start_role(c, R_THOTHD);
	for (role_t r = 0; r < R_THOTHD; r++)
		if (c->p[r].pid <= 0)
			start_role(c, r);
}

/* Has a wait begun at T0 with bound MS run out?  The run's deadline cuts
 * every bound. */
static bool waited_out(chaos_t *c, uint64_t t0, uint64_t ms)
{
	uint64_t now = harness_now_ms();
	return now - t0 > ms || now > c->run_deadline_ms;
}

/* MS, or less: what is left of the run. */
static int capped(chaos_t *c, int ms)
{
	uint64_t now = harness_now_ms();
	uint64_t left = now < c->run_deadline_ms ? c->run_deadline_ms - now : 0;
	return left < (uint64_t)ms ? (int)left : ms;
}

static void settle(chaos_t *c, role_t victim)
{
	restart_down(c);
	uint64_t t0 = harness_now_ms();
	while (!cast_registered(c)) {
		pump(c, 20, victim);
		restart_down(c);
		if (waited_out(c, t0, SETTLE_MS))
			CHAOS_FAIL(c, "registrations %d, not %d, %d ms after %s was killed and restarted",
				   registrations(c), EXPECTED_REGISTRATIONS, SETTLE_MS, role_names[victim]);
	}
	/* codex retries its lease backing off 0.5 s to 30 s while thothd
	 * answers without one (docs/CODEX.md; 20 ms to 1 s while thothd is
	 * away, since loose38): after a run of refusals (the driver down) the
	 * next try may be 30 s (+ 1/8 slack) off, so it gets that long. */
	t0 = harness_now_ms();
	uint32_t st_lease = 0;
	while (!leases_held(c)) {
		pump(c, 20, victim);
		restart_down(c);
		if (waited_out(c, t0, LEASE_SETTLE_MS))
			CHAOS_FAIL(c, "the lease holder (pid %d) holds %d leases (status %u), codex (pid %d) %d, %d ms "
				   "after %s was killed (1 each wanted, the holder's SATISFIED; or the run's deadline came)", (int)c->p[R_LEASE].pid,
				   leases_of(c, c->p[R_LEASE].pid, &st_lease), st_lease,
				   (int)c->p[R_CODEX].pid, leases_of(c, c->p[R_CODEX].pid, NULL), LEASE_SETTLE_MS,
				   role_names[victim]);
	}
	pump(c, 100, victim);
	int st;
	char out[4096];
	const char *argv[] = { THOTHCTL_PATH, "--runtime-dir", c->h.dir, "status", NULL };
	harness_run(&c->h, argv, out, sizeof out, &st);
	char want[64];
	snprintf(want, sizeof want, "registrations   %d\n", EXPECTED_REGISTRATIONS);
	if (!WIFEXITED(st) || WEXITSTATUS(st) || !strstr(out, want))
		CHAOS_FAIL(c, "thothctl status after %s was killed: %s", role_names[victim], out);
	thoth_daemon_Daemon_status_resp_t ds;
	if (c->clients_baseline < 0) {
		if (daemon_status(c, &ds))
			CHAOS_FAIL(c, "no status");
		c->clients_baseline = (int)ds.clients;
		c->watches_baseline = (int)ds.watches;
	}
	t0 = harness_now_ms();
	while (!clients_at_baseline(c)) {
		pump(c, 20, victim);
		if (waited_out(c, t0, SETTLE_MS)) {
			daemon_status(c, &ds);
			CHAOS_FAIL(c, "thothd has %u clients and %u watches, %d and %d at the baseline, after %s "
				   "was killed", ds.clients, ds.watches, c->clients_baseline, c->watches_baseline,
				   role_names[victim]);
		}
	}
	if (c->fds_of != c->h.thothd) {
		c->fds_of = c->h.thothd;
		c->fds_baseline = client_proc_fds(c->h.thothd);
		c->rss_first_kb = rss_kb(c->h.thothd);
		if (!harness_wait_until(fds_at_baseline, c, capped(c, SETTLE_MS)))
			CHAOS_FAIL(c, "thothd's sockets are not its connections and listeners");
	} else {
		t0 = harness_now_ms();
		while (!fds_at_baseline(c)) {
			pump(c, 20, victim);
			if (waited_out(c, t0, SETTLE_MS)) {
				char list[4096];
				client_proc_fd_list(c->h.thothd, list, sizeof list);
				daemon_status(c, &ds);
				CHAOS_FAIL(c, "thothd holds %d descriptors (%d sockets for %u connections), %d + %d at the "
					   "baseline, after %s was killed: %s", client_proc_fds(c->h.thothd),
					   count_in(list, "->socket:"), ds.clients, c->fds_baseline, FD_SLACK,
					   role_names[victim], list);
			}
		}
	}
	/* Services give back what a killed client's channel held: within
	 * SVC_FD_SLACK of the count their instance settled at (channels come
	 * and go with the load: a few descriptors each), and at the end, once
	 * every client has stopped, at most that count (shut_down). */
	for (role_t r = R_ECHO1; r <= R_DRIVER; r++) {
		/* the PM drivers carry no load: exactly their settled count,
		 * whatever thothd's deaths made them reconnect */
		svc_arg_t a = { c, r, r >= R_BUS ? 0 : SVC_FD_SLACK };
		if (c->svc_fds_of[r] != c->p[r].pid) {
			c->svc_fds_of[r] = c->p[r].pid;
			c->svc_fds[r] = svc_fd_count(c->p[r].pid);
		} else if (!harness_wait_until(svc_fds_back, &a, capped(c, SETTLE_MS))) {
			char list[4096];
			client_proc_fd_list(c->p[r].pid, list, sizeof list);
			CHAOS_FAIL(c, "%s holds %d descriptors, %d + %d when it settled, after %s was killed: %s",
				   role_names[r], svc_fd_count(c->p[r].pid), c->svc_fds[r], a.slack,
				   role_names[victim], list);
		}
	}
	t0 = harness_now_ms();
	while (!no_stale_sockets(c)) {
		pump(c, 20, victim);
		if (waited_out(c, t0, SETTLE_MS))
			CHAOS_FAIL(c, "%s/%s: a socket nobody listens on, left after %s was killed", c->h.dir, c->why,
				   role_names[victim]);
	}
	check_no_strays(c);
}

/* After the chaos, an orderly stop still works: every process ends within
 * a deadline on SIGTERM (appenders on the end of their input) and says
 * nothing is wrong -- exit 0; death by SIGTERM only for pm-sim-driver,
 * which has no handler; under ASan a leak found at exit is a non-zero
 * exit (so not checked on pm-sim-driver). */
static int threads_of(pid_t pid)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
	DIR *d = opendir(path);
	int n = 0;
	for (struct dirent *e; d && (e = readdir(d));)
		n += e->d_name[0] != '.';
	if (d)
		closedir(d);
	return n;
}

/* The first instance's count at its start, and besides: one eventfd
 * (opened on first use, its wake-up doorbell, and kept) and pidfds of its
 * own threads (its trace reader holds them of busy writer threads: 0 to 2
 * seen at a start, the same with no client at the end, so timing), at most
 * one a thread.  Nothing else. */
static bool thothd_bare(void *arg)
{
	chaos_t *c = arg;
	static char list[16384];
	client_proc_fd_list(c->h.thothd, list, sizeof list);
	int n = client_proc_fds(c->h.thothd), ev = count_in(list, "[eventfd]"), pf = count_in(list, "[pidfd]");
	return ev <= 1 && pf <= threads_of(c->h.thothd) && n - ev - pf == c->bare_fds;
}

static void shut_down(chaos_t *c)
{
	static const role_t order[] = { R_APPEND_SYNC, R_APPEND_DEFERRED, R_LOAD_ECHO, R_LOAD_KV, R_LOAD_CTL, R_LEASE,
					R_ECHO1, R_ECHO2, R_KV, R_CODEX, R_BUS, R_DRIVER, R_THOTHD };
	for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
		role_t r = order[i];
		proc_t *p = &c->p[r];
		if (p->pid <= 0)
			continue;
		svc_arg_t a = { c, r, 0 };
		if (r >= R_ECHO1 && r <= R_CODEX && c->svc_fds_of[r] == p->pid &&
		    !harness_wait_until(svc_fds_back, &a, capped(c, SETTLE_MS))) {
			char list[4096];
			client_proc_fd_list(p->pid, list, sizeof list);
			CHAOS_FAIL(c, "%s holds %d descriptors with every client gone, %d when it settled: %s",
				   role_names[r], svc_fd_count(p->pid), c->svc_fds[r], list);
		}
		/* thothd with every client stopped and the trace session over:
		 * exactly the first instance's count before anyone came (the
		 * same program and arguments), a descriptor kept per kill or
		 * per connection shows here without slack */
		if (r == R_THOTHD && !harness_wait_until(thothd_bare, c, SETTLE_MS)) {
			char list[4096];
			client_proc_fd_list(p->pid, list, sizeof list);
			CHAOS_FAIL(c, "thothd holds %d descriptors with every client gone and no trace session, "
				   "%d other than an eventfd and its threads' pidfds at its start: %s",
				   client_proc_fds(p->pid), c->bare_fds, list);
		}
		if (p->in >= 0) {
			close(p->in);
			p->in = -1;
		} else {
			kill(p->pid, SIGTERM);
		}
		uint64_t t0 = harness_now_ms();
		int st = 0;
		pid_t w;
		while ((w = waitpid(p->pid, &st, WNOHANG)) == 0 && harness_now_ms() - t0 < (uint64_t)SETTLE_MS) {
			read_reports(c, r);
			struct timespec ts = { 0, 5 * 1000 * 1000 };
			nanosleep(&ts, NULL);
		}
		if (w == 0)
			CHAOS_FAIL(c, "%s (pid %d) did not stop within %d ms of SIGTERM (or the end of its input)",
				   role_names[r], (int)p->pid, SETTLE_MS);
		pid_t dead = p->pid;
		p->pid = 0;
		if (r == R_THOTHD)
			c->h.thothd = 0;
		read_reports(c, r);
		close_pipes(p);
		/* pm-sim-driver has no SIGTERM handler: it alone may die of it
		 * (and LeakSanitizer does not run on it) */
		bool no_handler = r == R_BUS || r == R_DRIVER;
		if (!(WIFEXITED(st) && WEXITSTATUS(st) == 0) &&
		    !(no_handler && WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM))
			CHAOS_FAIL(c, "%s (pid %d) %s %d when stopped after the chaos (%s/*.log say more)",
				   role_names[r], (int)dead, WIFSIGNALED(st) ? "died of signal" : "exited",
				   WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st), c->h.dir);
	}
}

static void test_random_sigkills_lose_nothing_and_hang_nothing(void **state)
{
	static chaos_t c;
	memset(&c, 0, sizeof c);
	cx_global = &c;
	const char *seed_env = getenv("THOTH_CHAOS_SEED");
	c.seed = seed_env && *seed_env ? (unsigned)strtoul(seed_env, NULL, 0) : (unsigned)time(NULL) ^ (unsigned)getpid();
	unsigned seed0 = c.seed;
	c.rng = c.seed;
	const char *secs_env = getenv("THOTH_CHAOS_SECONDS");
	int seconds = secs_env && *secs_env ? atoi(secs_env) : 12;
	fprintf(stderr, "# chaos: seed %u (replay with THOTH_CHAOS_SEED=%u), %d s\n", seed0, seed0, seconds);
	c.fds_baseline = c.clients_baseline = c.sockets_extra = c.bare_fds = -1;
	c.last_victim = R_COUNT;
	c.run_deadline_ms = harness_now_ms() + (uint64_t)seconds * 1000 + RUN_TAIL_MS;
	c.acked[0] = calloc(MAX_ACKED, sizeof(acked_t));
	c.acked[1] = calloc(MAX_ACKED, sizeof(acked_t));
	assert_non_null(c.acked[0]);
	assert_non_null(c.acked[1]);
	for (role_t r = 0; r < R_COUNT; r++)
		c.p[r].out = c.p[r].in = -1;
	assert_int_equal(harness_setup(&c.h), 0);
	snprintf(c.data_dir, sizeof c.data_dir, "%s/journal", c.h.dir);
	assert_int_equal(mkdir(c.data_dir, 0700), 0);

	start_role(&c, R_THOTHD);
	for (role_t r = R_ECHO1; r <= R_DRIVER; r++)
		start_role(&c, r);
	uint64_t t0 = harness_now_ms();
	while (!cast_registered(&c) && harness_now_ms() - t0 < (uint64_t)SETTLE_MS)
		pump(&c, 20, R_COUNT);
	for (int s = 0; s < 2; s++) {
		const char *argv[] = { THOTHCTL_PATH, "--runtime-dir", c.h.dir, "codex", "create",
				       s ? "deferred" : "sync", NULL };
		char out[1024];
		int st;
		harness_run(&c.h, argv, out, sizeof out, &st);
		if (!WIFEXITED(st) || WEXITSTATUS(st))
			CHAOS_FAIL(&c, "codex create: %s", out);
	}
	for (role_t r = R_LOAD_ECHO; r <= R_APPEND_DEFERRED; r++)
		start_role(&c, r);
	settle(&c, R_COUNT);
	pump(&c, 500, R_COUNT);
	settle(&c, R_COUNT);
	fprintf(stderr, "# chaos: baseline: thothd %d fds, %ld KiB RSS, %d clients, %d watches\n", c.fds_baseline,
		c.rss_first_kb, c.clients_baseline, c.watches_baseline);

	uint64_t end = harness_now_ms() + (uint64_t)seconds * 1000;
	unsigned kills = 0;
	pid_t thothd_pid = c.h.thothd;
	while (harness_now_ms() < end) {
		c.round++;
		pump(&c, 100 + rnd(&c, 600), R_COUNT);
		/* thothd and codex more often than the rest: they hold the promises */
		static const role_t bag[] = { R_THOTHD, R_THOTHD, R_CODEX, R_CODEX, R_CODEX, R_ECHO1, R_ECHO2, R_KV,
					      R_DRIVER, R_BUS, R_LOAD_ECHO, R_LOAD_KV, R_LOAD_CTL, R_LEASE, R_LEASE, R_APPEND_SYNC,
					      R_APPEND_DEFERRED };
		role_t victim = bag[rnd(&c, sizeof bag / sizeof bag[0])];
		proc_t *p = &c.p[victim];
		/* each round's draw, for comparing a replay with its original */
		fprintf(stderr, "# chaos: round %u: %s%s\n", c.round, role_names[victim], p->pid <= 0 ? " (down, spared)" : "");
		if (p->pid <= 0)
			continue;
		pid_t dead = p->pid;
		read_reports(&c, victim);
		if (victim == R_THOTHD) {
			harness_kill(&c.h, dead, SIGKILL);
			c.h.thothd = 0;         /* reaped: teardown must not signal the pid again */
		} else {
			kill(dead, SIGKILL);
			int st;
			while (waitpid(dead, &st, 0) < 0 && errno == EINTR)
				;
		}
		p->pid = 0;
		read_reports(&c, victim);       /* what it acknowledged before it died */
		close_pipes(p);
		p->pending_count = 0;
		c.kills[victim]++;
		kills++;
		c.last_victim = victim;
		c.last_kill_ms = harness_now_ms();
		if (victim == R_LEASE || victim == R_CODEX) {
			dead_arg_t a = { &c, dead };
			if (!harness_wait_until(leases_freed, &a, THOTH_TEST_DEADLINE_MS(5000)))
				CHAOS_FAIL(&c, "the leases of dead %s (pid %d) are still held", role_names[victim],
					   (int)dead);
		}
		if (victim == R_THOTHD)
			pump(&c, rnd(&c, 300), victim);       /* away for a while, under load */
		else
			pump(&c, rnd(&c, 50), victim);
		settle(&c, victim);
		if (victim == R_CODEX) {
			check_codex(&c, 0);
			check_codex(&c, 1);
		}
		if (c.h.thothd != thothd_pid) {
			thothd_pid = c.h.thothd;        /* a new instance: its own baselines (settle) */
		} else {
			long kb = rss_kb(c.h.thothd);
			if (c.rss_first_kb > 0 && kb > c.rss_first_kb + 16 * 1024)
				CHAOS_FAIL(&c, "thothd RSS %ld KiB, %ld KiB at the baseline", kb, c.rss_first_kb);
		}
	}
	check_codex(&c, 0);
	check_codex(&c, 1);
	/* The session stopped, the descriptors are the settled count at most */
	const char *stop_argv[] = { THOTHCTL_PATH, "--runtime-dir", c.h.dir, "trace", "stop", NULL };
	char out[4096];
	int st;
	harness_run(&c.h, stop_argv, out, sizeof out, &st);
	if (!WIFEXITED(st) || WEXITSTATUS(st))
		CHAOS_FAIL(&c, "thothctl trace stop: %s", out);
	settle(&c, R_COUNT);
	shut_down(&c);
	fprintf(stderr, "# chaos: seed %u: %u rounds, %u kills:", seed0, c.round, kills);
	for (role_t r = 0; r < R_COUNT; r++)
		fprintf(stderr, " %s %u%s", role_names[r], c.kills[r], r + 1 < R_COUNT ? "," : "\n");
	fprintf(stderr, "# chaos: calls answered/failed: status %lu/%lu, echo %lu/%lu, kv %lu/%lu; codex records acknowledged and "
		"read back: sync %zu, deferred %zu\n", c.p[R_LOAD_CTL].ok, c.p[R_LOAD_CTL].failed, c.p[R_LOAD_ECHO].ok, c.p[R_LOAD_ECHO].failed,
		c.p[R_LOAD_KV].ok, c.p[R_LOAD_KV].failed, c.n_acked[0], c.n_acked[1]);
	fprintf(stderr, "# chaos: slowest exit after the death it reacts to: sync appender %llu ms, deferred "
		"appender %llu ms, lease holder %llu ms\n",
		(unsigned long long)c.exit_after_kill_ms[R_APPEND_SYNC],
		(unsigned long long)c.exit_after_kill_ms[R_APPEND_DEFERRED],
		(unsigned long long)c.exit_after_kill_ms[R_LEASE]);
	for (role_t r = R_LOAD_ECHO; r <= R_LOAD_CTL; r++) {
		fprintf(stderr, "# chaos: %s failures:", role_names[r]);
		for (int k = 0; k < 8 && c.p[r].errors[k].name[0]; k++)
			fprintf(stderr, " %s %lu", c.p[r].errors[k].name, c.p[r].errors[k].n);
		fprintf(stderr, "\n");
	}
}

/* Every process of the cast killed and reaped, the runtime dir removed,
 * whether the test passed or failed. */
static int chaos_teardown(void **state)
{
	chaos_t *c = cx_global;
	if (!c)
		return 0;
	for (role_t r = 0; r < R_THOTHD; r++)
		if (c->p[r].pid > 0) {
			kill(c->p[r].pid, SIGKILL);
			waitpid(c->p[r].pid, NULL, 0);
			c->p[r].pid = 0;
			close_pipes(&c->p[r]);
		}
	harness_teardown(&c->h);
	free(c->acked[0]);
	free(c->acked[1]);
	cx_global = NULL;
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_random_sigkills_lose_nothing_and_hang_nothing, chaos_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
