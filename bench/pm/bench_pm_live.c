/*
 * bench_pm_live - SCHED-1's governor options on live requests, against the
 * simulator, with the governor without options as the baseline in the same
 * run (docs/PM.md "The governor's options (chains)", docs/BENCHMARKS.md).
 *
 * For each CPU model (HiKey A53, Juno A57, Juno A53) and each option set
 * (none, ff, chain, ff+chain) a governed echo service (kernel/pm/governed.h)
 * is started as a real process; one client thread per sender of the chain
 * trace (sim.h: "chain depth=3 mean_gap_us=50000 work_us=2000
 * deadline_us=10000", 8 senders; work_us, at capacity 1024, scaled to each
 * model's top capacity as bench_pm scales its CPU traces, so that Juno's
 * A53 (top 447) is offered 873 us, which its top OPP burns in 2 ms, and
 * not 2 ms that take it 4.6 ms) replays its requests over real channels,
 * each step of a chain sent when the previous one is answered (or at its
 * trace time, if later).  The service's dispatch tells the governor who sent
 * each request and what waits behind it (thoth_chan_server_caller), which is
 * what lets the options act live.
 *
 * What is real and what is modelled: channels, dispatch, processes, clocks
 * and the governor's decisions are real.  This VM has no cpufreq, so the
 * OPP is chosen and recorded, not written (dvfs.h's simulated backend; the
 * service runs with THOTH_SYSFS_ROOT at an empty directory, so a host's
 * cpufreq is never touched); the handler burns a request's work (ns at
 * capacity 1024) divided by the chosen OPP's capacity, so a slow OPP takes
 * longer as it would.  There is no switch latency live.
 *
 * Ramp (as sim.h): time from a request's send until the OPP is at least its
 * right speed (the optimum's over the synthetic trace's arrivals, the
 * fastest efficient OPP at or below it), or its answer if that comes first.
 * Printed: live ramp p50 / p95 and deadline misses per option set; the
 * simulator's p95 and misses on the synthetic trace; live / sim; and each
 * option set's live p95 over the live p95 without options.  The synthetic
 * trace's chain steps arrive when the previous step would be answered at
 * the top OPP; live, a step is sent when the previous one is answered, so
 * the live arrivals are not the trace's and neither are their right
 * speeds.  --diag adds, per phase, the same figures on the live arrivals
 * (their right speeds; the simulator on them) and a replay of the live
 * shim's rules on them (shim_replay), which is what tells the governor's
 * live gap from the bench's accounting (docs/PM.md "Why the live governor
 * missed more than the model").
 *
 * Deadlines: the governed service asks its clients for the channel's send
 * stamps (thoth_chan_server_config_t.send_stamps, set by the wrap; each
 * request is stamped when the client publishes it), so a request is planned
 * due 10 ms after its send; --no-stamps asks for none (no clock read on the
 * clients) and plans it due 10 ms after its dispatch, as before 2026-12-01.
 * (Until 2026-12-01 the bench carried the stamp in its payload, data bytes
 * 16..23, read by thoth_pm_governed_on_sent; the bytes are still sent, for
 * the bench's own accounting, and no longer read by the service.)
 *
 * Load: the service's handler measures, per request, the CPU time of its
 * burn and the wall time it took; "cpu got" is their ratio over the phase
 * (and its 10th percentile per request).  A phase where the service got
 * less than 90% of a CPU while it had work is marked LOADED, and the run
 * ends with a verdict: a loaded run's ramps and misses are the machine's
 * (the service waited for a CPU), not the governor's, and must not be
 * read as governor figures.
 *
 * Feasibility: before any phase runs, each model's trace is replayed as the
 * bench sends it with the model's top OPP held throughout and nothing else
 * on the CPU (live_feasible.h).  A request that misses its deadline there
 * is a miss no governor can avoid: that model's phases are refused (no
 * figure; a REFUSED row), the run ends "verdict: INFEASIBLE" and exits 3.
 *
 * --service-nice N runs the service at nice N, in a session of its own whose
 * autogroup gets nice N too: on a kernel with autogroup (this VM) nice only
 * orders the tasks of one session, so against other sessions' builds a
 * niced service still got an equal share per session (measured at load
 * 5-7: at nice -20 without its own autogroup, 9 of 12 phases under 90% of
 * a CPU, the least 46.7%; with it, none, the least 96.7%).  The governor's decisions
 * are the same either way; what changes is whether the service waits for a
 * CPU while it has work, which the "cpu got" column measures in every row.
 * The clients' own CPU time (clients column: 12-27 ms per ~5.5 s phase, the
 * service 0.9-1.6 s) shows
 * the bench's helpers are not what competes with the service.
 *
 *   bench_pm_live [--duration-ms N] [--model NAME] [--seed S] [--trace SPEC]
 *                 [--no-scale] [--service-nice N] [--check-only] [--diag]
 *                 [--no-stamps] [--no-mid] [--no-peek]
 * (SPEC: a synthetic trace of sim.h without duration_ms and seed; the
 * default is bench_pm's chain cell.  --no-scale: work_us as given on every
 * model (how the bench offered it before; Juno's A53 is then refused).
 * --check-only: the feasibility lines and the exit status alone, no service.
 * --diag: after each row, where its misses and late ramps come from (above).
 * --no-stamps: deadlines from the dispatch, the old shim's.  --no-mid: no
 * decisions while a handler runs.  --no-peek: the requests waiting in the
 * rings are counted at dispatch only (one per non-empty ring, due as the
 * dispatched one), as before the shim looked at them (governed.h "Seeing
 * the rings").)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "echo.thoth.h"
#include "governed.h"
#include "live_feasible.h"
#include "pm_clock.h"
#include "sim.h"
#include "thoth/channel.h"
#include "thoth/loop.h"

#define MAX_CHANGES (1u << 16)
#define MAX_CLIENTS 16

/* ---- the service (a child process: bench_pm_live --serve ...) ---------------------- */

static thoth_pm_governed_t *gov;
static const thoth_pm_cpu_model_t *model;
static uint64_t change_at[MAX_CHANGES];
static uint32_t change_opp[MAX_CHANGES];
static uint32_t n_changes;
#define MAX_JOBS (1u << 16)
static uint64_t started_at[MAX_JOBS];   /* per request index: when its handler began */
/* Per request index: the burn's CPU time and the wall time it took.  Their
 * ratio is the share of a CPU the service got while it had work: 1 on a
 * quiet machine; on a loaded one the service waits for a CPU, the answers
 * come late for that reason alone, and the run measures the machine. */
static uint64_t burn_cpu[MAX_JOBS], burn_wall[MAX_JOBS];

static void on_change(void *arg, uint64_t now_ns, uint32_t opp)
{
	if (n_changes < MAX_CHANGES) {
		change_at[n_changes] = now_ns;
		change_opp[n_changes++] = opp;
	}
}

/* echo(data): data holds the request's work in ns at capacity 1024 */
static int on_echo(void *self, const thoth_echo_Echo_echo_req_t *req, thoth_echo_Echo_echo_resp_t *resp,
		   thoth_arena_t *arena)
{
	uint64_t work = 0, index = UINT64_MAX;
	if (req->data.len >= 16) {
		memcpy(&work, req->data.ptr, 8);
		memcpy(&index, req->data.ptr + 8, 8);
	}
	if (index < MAX_JOBS)
		started_at[index] = thoth_pm_clock_monotonic_ns();  /* just after the governor's decision at dispatch */
	/* The work burns at the OPP in effect, which a check while the
	 * handler runs may raise (governed.h): 50 us slices of CPU time, each
	 * at the OPP read before it. */
	uint64_t wall0 = thoth_pm_clock_monotonic_ns(), cpu0 = thoth_pm_clock_thread_cpu_ns(), cpu1 = cpu0;
	double left = (double)work;             /* ns at capacity 1024 */
	while (left > 0) {
		double cap = model->opps[thoth_pm_governed_opp(gov)].capacity;
		double slice = left * 1024.0 / cap;
		if (slice > 50000.0)
			slice = 50000.0;
		uint64_t from = cpu1, until = from + (uint64_t)slice + 1;
		while ((cpu1 = thoth_pm_clock_thread_cpu_ns()) < until)
			;
		left -= (double)(cpu1 - from) * cap / 1024.0;
	}
	if (index < MAX_JOBS) {
		burn_cpu[index] = cpu1 - cpu0;
		burn_wall[index] = thoth_pm_clock_monotonic_ns() - wall0;
	}
	resp->data = req->data;
	return 0;
}

static int on_stats(void *self, const thoth_echo_Echo_stats_req_t *req, thoth_echo_Echo_stats_resp_t *resp,
		    thoth_arena_t *arena)
{
	thoth_pm_governed_stats_t st;
	thoth_pm_governed_stats(gov, &st);
	resp->calls = st.identified;
	return 0;
}

static void on_stop(thoth_loop_t *loop, const struct signalfd_siginfo *info, void *arg)
{
	thoth_loop_stop(loop);
}

/* --serve SOCKET MODEL OPTIONS QOS_US TIMELINE_FILE STAMPS MID PEEK (STAMPS 1:
 * deadlines from the clients' send stamps, 0: from the dispatch; MID 1:
 * checks while a handler runs, 0: none; PEEK 1: the waiting requests seen
 * in the rings, 0: counted at dispatch, governed.h) */
static int serve(char **argv)
{
	model = thoth_pm_cpu_model_find(argv[1]);
	unsigned options = (unsigned)strtoul(argv[2], NULL, 10);
	uint64_t qos_ns = strtoull(argv[3], NULL, 10) * 1000;
	thoth_loop_t *loop;
	thoth_pm_dvfs_t *dvfs;
	if (!model || thoth_loop_new(&loop) || thoth_pm_dvfs_new(0, model, thoth_pm_clock_monotonic_ns(), &dvfs) ||
	    thoth_pm_governed_new(loop, dvfs, qos_ns, &gov))
		return 1;
	if (thoth_pm_dvfs_backend(dvfs) != THOTH_PM_DVFS_SIMULATED) {
		fprintf(stderr, "bench_pm_live: the service found cpufreq; refusing to write it\n");
		return 1;
	}
	thoth_pm_governed_set_options(gov, options);
	if (!strcmp(argv[6], "0"))
		thoth_pm_governed_set_mid_ns(gov, 0);
	if (!strcmp(argv[7], "0"))
		thoth_pm_governed_set_peek(gov, false);
	thoth_pm_governed_stats_t st;
	thoth_pm_governed_stats(gov, &st);
	on_change(NULL, 0, st.opp);     /* where it starts */
	thoth_pm_governed_on_change(gov, on_change, NULL);
	thoth_loop_add_signal(loop, SIGTERM, on_stop, NULL);
	static const thoth_echo_Echo_handlers_t handlers = { .echo = on_echo, .stats = on_stats };
	thoth_chan_server_config_t cfg = {
		.path = argv[0], .iface = &thoth_echo_Echo_info, .invoke = thoth_echo_Echo_invoke,
		.handlers = &handlers, .wait = THOTH_CHAN_SLEEP,
	};
	thoth_pm_governed_wrap(gov, &cfg);
	/* The wrap asked the clients for send stamps (the channel's); the
	 * run before them (--no-stamps) asks for none: no clock read on
	 * the clients, deadlines from the dispatch. */
	cfg.send_stamps = !strcmp(argv[5], "1");
	thoth_chan_server_t *srv;
	char why[256];
	if (thoth_chan_server_new(loop, &cfg, &srv, why, sizeof why)) {
		fprintf(stderr, "bench_pm_live: %s\n", why);
		return 1;
	}
	thoth_loop_run(loop);
	thoth_chan_server_free(srv);
	FILE *f = fopen(argv[4], "w");
	if (!f)
		return 1;
	for (uint32_t i = 0; i < n_changes; i++)
		fprintf(f, "c %llu %u\n", (unsigned long long)change_at[i], change_opp[i]);
	for (uint32_t i = 0; i < MAX_JOBS; i++)
		if (started_at[i])
			fprintf(f, "d %llu %u\nu %llu %u\nw %llu %u\n", (unsigned long long)started_at[i], i,
				(unsigned long long)burn_cpu[i], i, (unsigned long long)burn_wall[i], i);
	fclose(f);
	thoth_pm_governed_free(gov);
	thoth_pm_dvfs_free(dvfs);
	thoth_loop_free(loop);
	return 0;
}

/* ---- the clients ------------------------------------------------------------------------ */

typedef struct sent {
	uint64_t at, done;              /* CLOCK_MONOTONIC */
} sent_t;

typedef struct client {
	const char *sock;
	const thoth_pm_trace_t *t;
	uint32_t id;                    /* the trace's sender */
	uint64_t start;
	sent_t *sent;                   /* per job of the trace (this sender's filled) */
	int err;
} client_t;

static void *client_main(void *arg)
{
	client_t *c = arg;
	thoth_chan_config_t cfg = { .iface = &thoth_echo_Echo_info, .wait = THOTH_CHAN_SLEEP, .timeout_ms = 10000 };
	thoth_chan_t *ch;
	char why[256];
	if ((c->err = thoth_chan_connect(c->sock, &cfg, &ch, why, sizeof why)) != 0) {
		fprintf(stderr, "bench_pm_live: connect: %s\n", why);
		return NULL;
	}
	for (size_t j = 0; j < c->t->count && !c->err; j++) {
		const thoth_pm_job_t *job = &c->t->jobs[j];
		if (job->client != c->id)
			continue;
		uint64_t when = c->start + job->arrival_ns;
		struct timespec ts = { (time_t)(when / 1000000000ull), (long)(when % 1000000000ull) };
		while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
			;
		uint8_t payload[24];
		uint64_t index = j;
		c->sent[j].at = thoth_pm_clock_monotonic_ns();
		memcpy(payload, &job->work_ns, 8);
		memcpy(payload + 8, &index, 8);
		memcpy(payload + 16, &c->sent[j].at, 8);        /* unread: the service reads the channel's stamp */
		thoth_echo_Echo_echo_req_t req = { .data = { .ptr = payload, .len = 24 } };
		thoth_echo_Echo_echo_resp_t resp;
		c->err = thoth_echo_Echo_echo(thoth_chan_client(ch), &req, &resp, NULL);
		c->sent[j].done = thoth_pm_clock_monotonic_ns();
	}
	thoth_chan_close(ch);
	return NULL;
}

/* ---- one phase: a service, the trace replayed, the ramps ------------------------------ */

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* as sim_cpu.c: the fastest efficient OPP at or below SPEED (the most
 * efficient OPP if that is slower) */
static uint32_t right_capacity(const thoth_pm_cpu_model_t *m, double speed)
{
	uint32_t right = thoth_pm_opp_for_capacity(m, 0);
	for (uint32_t i = right; i < m->opp_count; i++)
		if (!thoth_pm_opp_inefficient(m, i) && m->opps[i].capacity <= speed + 1e-6)
			right = i;
	return m->opps[right].capacity;
}

/* --diag: the live shim's decisions replayed on the live arrivals with no
 * machine in the way (governed.c's rules through the same dvfs layer, on a
 * clock of its own): one server, requests served in send order, each told
 * to the governor at its dispatch only (due QOS after its send with STAMPS,
 * after its dispatch without), the requests already sent counted as
 * waiting, its burn fixed at the OPP chosen at its dispatch, a decision at
 * its completion, and the hold timer's checks in idle gaps.  What the
 * simulator does differently on the same arrivals is to tell the governor
 * of each request when it is sent and to speed up the running request when
 * the OPP rises.  Misses of LIVE (COUNT requests, by send time), or -1.
 *
 * MID_NS (0: none): the governor is asked again every MID_NS while a
 * handler runs (what a decision in the middle of a handler would add:
 * docs/PM.md "Deciding while a handler runs"), the rest of the running
 * request burning at the OPP it then chooses; with MID_SEES_ARRIVALS the
 * requests sent meanwhile are announced to it as waiting (the rings'
 * heads and their send stamps), each due QOS after its send.  *ENERGY_MJ
 * (may be NULL): the modelled energy of the replay, busy at each OPP's
 * power and idle at the model's sleep power, from the first send to the
 * last answer or deadline (mJ).
 *
 * LOOK: the shim's look at the rings (governed.c announce_waiting, what a
 * live run does unless --no-peek): at the dispatch and at each check while
 * a handler runs, every request sent by then and not yet dispatched is
 * announced one by one (thoth_pm_dvfs_waiting_due), each due when the
 * running request is due, or earlier where QOS after its send is; at the
 * dispatch in place of the count.  (The bench's senders have one channel each and
 * at most one request in flight, so the look's bound of 16 channels and
 * the ring's slots never cut what it sees here; live_feasible.h
 * thoth_pm_live_replay_look.) */
static long shim_replay_look(const thoth_pm_cpu_model_t *m, const thoth_pm_trace_t *live, unsigned options,
			     bool with_stamps, uint64_t mid_ns, bool mid_sees_arrivals, bool look,
			     double *energy_mj)
{
	enum { LOOK_MAX = 64 };         /* governed.c PEEK_MAX */
	uint64_t seen[LOOK_MAX];
	double busy_e = 0, busy_ns = 0;         /* mW x ns, ns */
	thoth_pm_dvfs_t *d;
	if (thoth_pm_dvfs_new(0, m, 0, &d))
		return -1;
	if (thoth_pm_dvfs_backend(d) != THOTH_PM_DVFS_SIMULATED) {
		thoth_pm_dvfs_free(d);
		return -1;
	}
	thoth_pm_dvfs_set_options(d, options);
	uint32_t opp = 0, floor_opp;
	thoth_pm_dvfs_update(d, 0, 0, &opp);
	floor_opp = opp;
	const uint64_t hold = THOTH_PM_THOTH_DOWN_HOLD_NS;
	uint64_t fin = 0, timer_at = 0;  /* 0: no check armed */
	long misses = 0;
	for (size_t k = 0; k < live->count; k++) {
		const thoth_pm_job_t *job = &live->jobs[k];
		uint64_t disp = job->arrival_ns > fin ? job->arrival_ns : fin;
		/* the hold timer's checks before this dispatch (governed.c on_check) */
		while (timer_at && timer_at <= disp) {
			uint64_t at = timer_at;
			timer_at = 0;
			thoth_pm_dvfs_forget_waiting(d);
			thoth_pm_dvfs_update(d, at, 0, &opp);
			if (opp > floor_opp)
				timer_at = at + hold + hold / 8;
		}
		uint32_t waiting = 0;
		for (size_t l = k + 1; l < live->count && live->jobs[l].arrival_ns <= disp; l++)
			waiting++;
		uint64_t due = (with_stamps ? job->arrival_ns : disp) + (job->deadline_ns - job->arrival_ns);
		if (thoth_pm_dvfs_dispatched(d, disp, job->client, due, look ? 0 : waiting) == 0) {
			if (look)
				thoth_pm_dvfs_waiting_due(d, seen,
							  thoth_pm_live_replay_look(live, k, disp, with_stamps, due, seen, LOOK_MAX));
			thoth_pm_dvfs_update(d, disp, 0, &opp);
		}
		if (opp > floor_opp && !timer_at)
			timer_at = disp + hold + hold / 8;
		/* the burn: work_ns at capacity 1024, at the OPP in effect */
		double left = (double)job->work_ns;   /* work still to do */
		uint64_t t = disp;
		for (uint64_t next = disp + mid_ns; mid_ns; next += mid_ns) {
			double cap = m->opps[opp].capacity;
			if (t + (uint64_t)(left * 1024.0 / cap) <= next)
				break;
			left -= (double)(next - t) * cap / 1024.0;
			uint64_t ran = next - t;
			busy_e += (double)thoth_pm_opp_power_mw(m, opp) * (double)ran;
			busy_ns += (double)ran;
			t = next;
			if (look) {
				thoth_pm_dvfs_waiting_due(d, seen,
							  thoth_pm_live_replay_look(live, k, t, with_stamps, due, seen, LOOK_MAX));
			} else if (mid_sees_arrivals) {
				uint32_t w = 0;
				uint64_t due_w = 0;
				for (size_t l = k + 1; l < live->count && live->jobs[l].arrival_ns <= t; l++, w++)
					if (!due_w)
						due_w = (with_stamps ? live->jobs[l].arrival_ns : t) +
							(live->jobs[l].deadline_ns - live->jobs[l].arrival_ns);
				thoth_pm_dvfs_waiting(d, w, due_w);
			}
			thoth_pm_dvfs_update(d, t, ran, &opp);
			if (opp > floor_opp && !timer_at)
				timer_at = t + hold + hold / 8;
		}
		uint64_t burn = (uint64_t)(left * 1024.0 / m->opps[opp].capacity);
		fin = t + burn;
		busy_e += (double)thoth_pm_opp_power_mw(m, opp) * (double)burn;
		busy_ns += (double)burn;
		misses += fin - job->arrival_ns > job->deadline_ns - job->arrival_ns;
		/* the work learnt exactly (CPU time at the final OPP's speed) */
		thoth_pm_dvfs_completed(d, job->work_ns * 1024 / m->opps[opp].capacity);
		thoth_pm_dvfs_update(d, fin, burn, &opp);
		if (opp > floor_opp && !timer_at)
			timer_at = fin + hold + hold / 8;
		else if (opp <= floor_opp)
			timer_at = 0;
	}
	thoth_pm_dvfs_free(d);
	if (energy_mj) {
		uint64_t span = live->count ? (fin > live->end_ns ? fin : live->end_ns) - live->jobs[0].arrival_ns : 0;
		double idle = (double)span > busy_ns ? (double)span - busy_ns : 0;
		*energy_mj = (busy_e + (double)m->sleep_mw * idle) / 1e9;
	}
	return misses;
}

static long shim_replay_mid(const thoth_pm_cpu_model_t *m, const thoth_pm_trace_t *live, unsigned options,
			    bool with_stamps, uint64_t mid_ns, bool mid_sees_arrivals, double *energy_mj)
{
	return shim_replay_look(m, live, options, with_stamps, mid_ns, mid_sees_arrivals, false, energy_mj);
}

static long shim_replay(const thoth_pm_cpu_model_t *m, const thoth_pm_trace_t *live, unsigned options,
			bool with_stamps)
{
	return shim_replay_mid(m, live, options, with_stamps, 0, false, NULL);
}

typedef struct phase {
	uint64_t p50_ns, p95_ns;        /* live ramp, from the send */
	uint64_t dispatch_p95_ns;       /* ...from the dispatch (the service's scheduling delay out) */
	uint64_t right_at_dispatch;     /* requests whose handler began at their right speed */
	double stretch;                 /* median answer time / burn at the dispatch's OPP */
	uint64_t misses;
	uint64_t identified, requests;
	/* The CPU the service got while burning: all burns' CPU time / their
	 * wall time, and the 10th percentile of that per request. */
	double cpu_share, cpu_share_p10;
	/* CPU time over the phase (user + system): the bench's own process
	 * (its client threads: what it adds to the machine's load) and the
	 * service's, ms. */
	double clients_cpu_ms, service_cpu_ms;
	/* --diag: where the misses and late ramps come from.  waited =
	 * requests dispatched >= WAITED_NS after their send (they queued
	 * behind another: the governor learnt of them only then, and dates
	 * their deadline from the dispatch); miss_waited = misses among them;
	 * miss_own_ok = misses answered within the QoS of their dispatch (the
	 * deadline the governor plans for): late only by their wait; miss_slow
	 * = misses whose handler began below their right speed; wait_p95 =
	 * p95 of dispatch - send; ramp_p95_unwaited = ramp p95 of the requests
	 * that did not wait. */
	uint64_t waited, miss_waited, miss_own_ok, miss_slow;
	uint64_t wait_p95_ns, ramp_p95_unwaited_ns, ramp_p95_waited_ns;
	/* --diag, the same arrivals: the live sends as a trace (each due
	 * deadline_us after its send, as the live misses count it).  A chain
	 * step is sent live when the previous one is answered; in the
	 * synthetic trace it arrives when the previous one would be answered
	 * at the top OPP, so the live arrivals are not the trace's.  live_p95
	 * against the right speeds of the live arrivals (the optimum over
	 * them), and the simulator's ramp p95 and misses on them. */
	uint64_t p95_liveright_ns, sim_live_p95_ns, sim_live_misses;
	bool have_live_sim;
	long shim_misses, shim_misses_stamped;  /* shim_replay, without / with stamps */
	/* shim_replay_mid with stamps, asked every 0.5 ms / 0.1 ms while a
	 * handler runs, without and with the arrivals meanwhile seen */
	long mid_misses[2][2];
	long look_misses;                       /* from the send, every 0.5 ms, the look (as live runs by default) */
	double replay_look_mj;
	double replay_mj, replay_mid_mj;        /* from the send: dispatch-only, every 0.5 ms */
	int err;
	bool service_died;              /* before it served: no phase can run */
} phase_t;
#define WAITED_NS 500000ull

/* A phase whose service got less than this share of a CPU while it had
 * work measured the machine, not the governor ("loaded"). */
#define QUIET_SHARE 0.90

static const char *self_path;
static int service_nice;        /* --service-nice: the service's nice value */
static bool service_nice_set;
static bool stamps = true;     /* --no-stamps: deadlines from the dispatch (as before 2026-12-01) */
static bool mid_checks = true; /* --no-mid: no decision while a handler runs (as before 2026-12-01) */
static bool peek = true;        /* --no-peek: waiting requests seen at dispatch only, counted (governed.h) */
static bool diag;               /* --diag: a line per phase on where misses and late ramps come from */

/* --service-nice N, in the service (the child, before exec): N as its nice
 * value, and, where the kernel groups tasks by session (autogroup:
 * /proc/sys/kernel/sched_autogroup_enabled), a session of its own with N
 * as that group's nice.  With autogroup a nice value only orders the tasks
 * of one session: against other sessions' builds the service's session
 * gets an equal share however its tasks are niced, so nice alone does
 * nothing there.  0, or -1 with the reason on stderr. */
static int raise_service(int nice_value)
{
	if (setpriority(PRIO_PROCESS, 0, nice_value)) {
		fprintf(stderr, "bench_pm_live: --service-nice %d: setpriority: %s\n", nice_value, strerror(errno));
		return -1;
	}
	FILE *f = fopen("/proc/sys/kernel/sched_autogroup_enabled", "r");
	int enabled = 0;
	if (f) {
		if (fscanf(f, "%d", &enabled) != 1)
			enabled = 0;
		fclose(f);
	}
	if (!enabled)
		return 0;
	if (setsid() < 0) {
		fprintf(stderr, "bench_pm_live: --service-nice: setsid: %s\n", strerror(errno));
		return -1;
	}
	f = fopen("/proc/self/autogroup", "w");
	if (!f || fprintf(f, "%d", nice_value) < 0 || fclose(f)) {
		fprintf(stderr, "bench_pm_live: --service-nice %d: /proc/self/autogroup: %s\n", nice_value,
			strerror(errno));
		return -1;
	}
	return 0;
}

static double rusage_ms(const struct rusage *r)
{
	return r->ru_utime.tv_sec * 1e3 + r->ru_utime.tv_usec / 1e3 + r->ru_stime.tv_sec * 1e3 +
	       r->ru_stime.tv_usec / 1e3;
}

static void run_phase(const thoth_pm_cpu_model_t *m, const thoth_pm_trace_t *t, const uint32_t *rights,
		      unsigned options, const char *dir, phase_t *out)
{
	memset(out, 0, sizeof *out);
	char sock[300], timeline[300], opts[16], qos[32];
	snprintf(sock, sizeof sock, "%s/echo.sock", dir);
	snprintf(timeline, sizeof timeline, "%s/timeline.txt", dir);
	snprintf(opts, sizeof opts, "%u", options);
	snprintf(qos, sizeof qos, "%llu",
		 (unsigned long long)((t->jobs[0].deadline_ns - t->jobs[0].arrival_ns) / 1000));
	unlink(sock);
	struct rusage self0, self1, child;
	getrusage(RUSAGE_SELF, &self0);
	pid_t pid = fork();
	if (pid == 0) {
		if (service_nice_set && raise_service(service_nice))
			_exit(126);
		setenv("THOTH_SYSFS_ROOT", dir, 1);     /* no cpufreq there: simulated */
		execl(self_path, self_path, "--serve", sock, m->name, opts, qos, timeline, stamps ? "1" : "0", mid_checks ? "1" : "0",
		      peek ? "1" : "0", (char *)NULL);
		_exit(127);
	}
	/* its socket, then a channel per sender */
	struct stat st;
	for (int i = 0; i < 5000 && stat(sock, &st); i++) {
		int wst;
		if (waitpid(pid, &wst, WNOHANG) == pid) {       /* it died first (its reason is on stderr) */
			out->err = -1;
			out->service_died = true;
			return;
		}
		usleep(1000);
	}
	uint32_t senders = 0;
	for (size_t j = 0; j < t->count; j++)
		if (t->jobs[j].client > senders)
			senders = t->jobs[j].client;
	if (senders > MAX_CLIENTS)
		senders = MAX_CLIENTS;
	sent_t *sent = calloc(t->count, sizeof *sent);
	client_t cl[MAX_CLIENTS];
	pthread_t th[MAX_CLIENTS];
	uint64_t start = thoth_pm_clock_monotonic_ns() + 50000000ull;       /* everyone connected by then */
	for (uint32_t i = 0; i < senders; i++) {
		cl[i] = (client_t){ .sock = sock, .t = t, .id = i + 1, .start = start, .sent = sent };
		pthread_create(&th[i], NULL, client_main, &cl[i]);
	}
	for (uint32_t i = 0; i < senders; i++) {
		pthread_join(th[i], NULL);
		if (cl[i].err)
			out->err = cl[i].err;
	}
	/* the service's own count of requests whose sender it was told */
	thoth_chan_config_t cfg = { .iface = &thoth_echo_Echo_info, .wait = THOTH_CHAN_SLEEP, .timeout_ms = 10000 };
	thoth_chan_t *ch;
	char why[256];
	if (!thoth_chan_connect(sock, &cfg, &ch, why, sizeof why)) {
		thoth_echo_Echo_stats_req_t sreq = { 0 };
		thoth_echo_Echo_stats_resp_t sresp;
		if (!thoth_echo_Echo_stats(thoth_chan_client(ch), &sreq, &sresp, NULL) && sresp.calls)
			out->identified = sresp.calls - 1;      /* not this stats call */
		thoth_chan_close(ch);
	}
	kill(pid, SIGTERM);
	int wst = 0;
	memset(&child, 0, sizeof child);
	wait4(pid, &wst, 0, &child);
	if (!WIFEXITED(wst) || WEXITSTATUS(wst) != 0)
		out->err = -1;                  /* the service failed (its reason is on stderr) */
	getrusage(RUSAGE_SELF, &self1);
	out->clients_cpu_ms = rusage_ms(&self1) - rusage_ms(&self0);
	out->service_cpu_ms = rusage_ms(&child);
	/* the timeline of OPPs */
	uint64_t *at = malloc(MAX_CHANGES * sizeof *at);
	uint32_t *opp = malloc(MAX_CHANGES * sizeof *opp), n = 0;
	uint64_t *began = calloc(t->count + 1, sizeof *began);
	uint64_t *cpu = calloc(t->count + 1, sizeof *cpu), *wall = calloc(t->count + 1, sizeof *wall);
	FILE *f = fopen(timeline, "r");
	unsigned long long a;
	unsigned o;
	char kind;
	while (f && fscanf(f, " %c %llu %u", &kind, &a, &o) == 3) {
		if (kind == 'c' && n < MAX_CHANGES) {
			at[n] = a;
			opp[n++] = o < m->opp_count ? o : m->opp_count - 1;
		} else if (kind == 'd' && o < t->count) {
			began[o] = a;
		} else if (kind == 'u' && o < t->count) {
			cpu[o] = a;
		} else if (kind == 'w' && o < t->count) {
			wall[o] = a;
		}
	}
	if (f)
		fclose(f);
	/* Per request: from its send to the first instant the OPP in effect
	 * gives its right speed (or its answer, if that comes first). */
	uint64_t *ramp = calloc(t->count + 1, sizeof *ramp), *from_dispatch = calloc(t->count + 1, sizeof *ramp);
	double *stretch = calloc(t->count + 1, sizeof *stretch), *share = calloc(t->count + 1, sizeof *share);
	double cpu_sum = 0, wall_sum = 0;
	size_t n_share = 0;
	uint64_t *wait = calloc(t->count + 1, sizeof *wait), *ramp_w = calloc(t->count + 1, sizeof *wait),
		 *ramp_u = calloc(t->count + 1, sizeof *wait);
	size_t n_w = 0, n_u = 0;
	uint64_t qos_ns = t->jobs[0].deadline_ns - t->jobs[0].arrival_ns;
	/* the live sends as a trace, by send time (sent[] is by trace index) */
	thoth_pm_trace_t live = { .name = "live", .count = 0 };
	size_t *order = calloc(t->count + 1, sizeof *order);
	uint32_t *live_right = calloc(t->count + 1, sizeof *live_right);
	live.jobs = calloc(t->count + 1, sizeof *live.jobs);
	double *live_speed = calloc(t->count + 1, sizeof *live_speed);
	uint64_t *ramp_lr = calloc(t->count + 1, sizeof *ramp_lr);
	if (diag && order && live_right && live.jobs && live_speed && ramp_lr) {
		for (size_t j = 0; j < t->count; j++)
			if (sent[j].at)
				order[live.count++] = j;
		for (size_t x0 = 1; x0 < live.count; x0++)  /* insertion sort: nearly sorted */
			for (size_t b = x0; b > 0 && sent[order[b - 1]].at > sent[order[b]].at; b--) {
				size_t x = order[b];
				order[b] = order[b - 1];
				order[b - 1] = x;
			}
		for (size_t k = 0; k < live.count; k++) {
			const thoth_pm_job_t *job = &t->jobs[order[k]];
			uint64_t sent_at = sent[order[k]].at > start ? sent[order[k]].at - start : 0;
			live.jobs[k] = (thoth_pm_job_t){ .arrival_ns = sent_at, .work_ns = job->work_ns,
							 .deadline_ns = sent_at + qos_ns, .client = job->client };
			if (sent_at + qos_ns > live.end_ns)
				live.end_ns = sent_at + qos_ns;
		}
		double e;
		if (live.count) {
			thoth_pm_cpu_optimum(m, &live, live_speed, &e);
			for (size_t k = 0; k < live.count; k++)
				live_right[order[k]] = right_capacity(m, live_speed[k]);
			thoth_pm_cpu_result_t r;
			if (!thoth_pm_sim_cpu_options(m, &live, THOTH_PM_GOV_THOTH, options, &r)) {
				out->sim_live_p95_ns = r.ramp_p95_ns;
				out->sim_live_misses = r.deadline_misses;
				out->have_live_sim = true;
			}
			out->shim_misses = shim_replay(m, &live, options, false);
			out->shim_misses_stamped = shim_replay(m, &live, options, true);
			for (int every = 0; every < 2; every++)
				for (int sees = 0; sees < 2; sees++)
					out->mid_misses[every][sees] = shim_replay_mid(
						m, &live, options, true, every ? 100000 : 500000, sees,
						!every && !sees ? &out->replay_mid_mj : NULL);
			shim_replay_mid(m, &live, options, true, 0, false, &out->replay_mj);
			out->look_misses = shim_replay_look(m, &live, options, true, 500000, false, true,
							    &out->replay_look_mj);
		}
	}
	size_t n_lr = 0;
	for (size_t j = 0; j < t->count; j++) {
		if (!sent[j].at)
			continue;
		uint64_t arr = sent[j].at, done = sent[j].done;
		uint64_t disp = began[j] > arr && began[j] < done ? began[j] : arr;
		bool missed = done - arr > t->jobs[j].deadline_ns - t->jobs[j].arrival_ns;
		out->misses += missed;
		bool waited = disp - arr >= WAITED_NS;
		wait[out->requests] = disp - arr;
		out->waited += waited;
		out->miss_waited += missed && waited;
		out->miss_own_ok += missed && done - disp <= qos_ns;
		uint32_t lo = 0, hi = n;        /* the last change at or before the send */
		while (lo < hi) {
			uint32_t mid = (lo + hi) / 2;
			if (at[mid] <= arr)
				lo = mid + 1;
			else
				hi = mid;
		}
		uint64_t reached = done;
		for (uint32_t i = lo ? lo - 1 : 0; i < n && at[i] < done; i++)
			if (m->opps[opp[i]].capacity >= rights[j]) {
				reached = at[i] > arr ? at[i] : arr;
				break;
			}
		if (out->have_live_sim) {       /* the same, against the live arrivals' right speeds */
			uint64_t reached_l = done;
			for (uint32_t i = lo ? lo - 1 : 0; i < n && at[i] < done; i++)
				if (m->opps[opp[i]].capacity >= live_right[j]) {
					reached_l = at[i] > arr ? at[i] : arr;
					break;
				}
			ramp_lr[n_lr++] = reached_l - arr;
		}
		from_dispatch[out->requests] = reached > disp ? reached - disp : 0;
		out->right_at_dispatch += reached <= disp;
		/* how much longer the answer took than the burn at the OPP of its
		 * dispatch: 1 on a quiet machine; more where the service waits
		 * for a CPU (a loaded machine) */
		uint32_t at_disp = n ? opp[0] : 0;
		for (uint32_t i = 0; i < n && at[i] <= disp; i++)
			at_disp = opp[i];
		double burn = (double)t->jobs[j].work_ns * 1024.0 / m->opps[at_disp].capacity;
		stretch[out->requests] = (double)(done - disp) / burn;
		out->miss_slow += missed && m->opps[at_disp].capacity < rights[j];
		if (waited)
			ramp_w[n_w++] = reached - arr;
		else
			ramp_u[n_u++] = reached - arr;
		if (wall[j] && cpu[j]) {
			cpu_sum += (double)cpu[j];
			wall_sum += (double)wall[j];
			share[n_share++] = (double)cpu[j] / (double)wall[j];
		}
		ramp[out->requests++] = reached - arr;
	}
	if (out->requests) {
		size_t c = out->requests, p95 = c * 95 / 100 < c ? c * 95 / 100 : c - 1;
		qsort(ramp, c, sizeof *ramp, cmp_u64);
		qsort(from_dispatch, c, sizeof *ramp, cmp_u64);
		out->p50_ns = ramp[c / 2];
		out->p95_ns = ramp[p95];
		out->dispatch_p95_ns = from_dispatch[p95];
		qsort(stretch, c, sizeof *stretch, cmp_double);
		out->stretch = stretch[c / 2];
		qsort(wait, c, sizeof *wait, cmp_u64);
		out->wait_p95_ns = wait[p95];
	}
	if (n_u) {
		qsort(ramp_u, n_u, sizeof *ramp_u, cmp_u64);
		out->ramp_p95_unwaited_ns = ramp_u[n_u * 95 / 100 < n_u ? n_u * 95 / 100 : n_u - 1];
	}
	if (n_w) {
		qsort(ramp_w, n_w, sizeof *ramp_w, cmp_u64);
		out->ramp_p95_waited_ns = ramp_w[n_w * 95 / 100 < n_w ? n_w * 95 / 100 : n_w - 1];
	}
	if (n_lr) {
		qsort(ramp_lr, n_lr, sizeof *ramp_lr, cmp_u64);
		out->p95_liveright_ns = ramp_lr[n_lr * 95 / 100 < n_lr ? n_lr * 95 / 100 : n_lr - 1];
	}
	free(wait);
	free(ramp_w);
	free(ramp_u);
	free(order);
	free(live_right);
	free(live.jobs);
	free(live_speed);
	free(ramp_lr);
	if (n_share) {
		qsort(share, n_share, sizeof *share, cmp_double);
		out->cpu_share = cpu_sum / wall_sum;
		out->cpu_share_p10 = share[n_share / 10];
	}
	free(share);
	free(cpu);
	free(wall);
	free(stretch);
	free(ramp);
	free(from_dispatch);
	free(began);
	free(at);
	free(opp);
	free(sent);
	unlink(timeline);
	unlink(sock);
}

/* The machine's load average, printed beside the verdict. */
static void print_loadavg(const char *when)
{
	char line[128] = "";
	FILE *f = fopen("/proc/loadavg", "r");
	if (f) {
		if (!fgets(line, sizeof line, f))
			line[0] = '\0';
		fclose(f);
	}
	line[strcspn(line, "\n")] = '\0';
	printf("load average %s: %s\n", when, line[0] ? line : "(unknown)");
}

#define VARIANTS 4
static const unsigned variant_options[VARIANTS] = {
	0, THOTH_PM_GOV_FASTER_ON_QUEUE, THOTH_PM_GOV_CHAIN_PREDICT,
	THOTH_PM_GOV_FASTER_ON_QUEUE | THOTH_PM_GOV_CHAIN_PREDICT,
};
static const char *const variant_names[VARIANTS] = { "none", "ff", "chain", "ff+chain" };

/* The senders the bench runs a client for: 1..the highest in T. */
static uint32_t trace_senders(const thoth_pm_trace_t *t)
{
	uint32_t senders = 0;
	for (size_t j = 0; j < t->count; j++)
		if (t->jobs[j].client > senders)
			senders = t->jobs[j].client;
	return senders;
}

int main(int argc, char **argv)
{
	self_path = argv[0];
	if (argc == 10 && !strcmp(argv[1], "--serve"))
		return serve(argv + 2);
	unsigned duration_ms = 5000, seed = 1;
	const char *only = NULL, *trace_spec = NULL;
	bool check_only = false, scale = true;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--duration-ms") && i + 1 < argc)
			duration_ms = (unsigned)strtoul(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--model") && i + 1 < argc)
			only = argv[++i];
		else if (!strcmp(argv[i], "--trace") && i + 1 < argc)
			trace_spec = argv[++i];
		else if (!strcmp(argv[i], "--seed") && i + 1 < argc)
			seed = (unsigned)strtoul(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--check-only"))
			check_only = true;
		else if (!strcmp(argv[i], "--no-scale"))
			scale = false;
		else if (!strcmp(argv[i], "--diag"))
			diag = true;
		else if (!strcmp(argv[i], "--no-stamps"))
			stamps = false;
		else if (!strcmp(argv[i], "--no-mid"))
			mid_checks = false;
		else if (!strcmp(argv[i], "--no-peek"))
			peek = false;
		else if (!strcmp(argv[i], "--service-nice") && i + 1 < argc) {
			char *end;
			long n = strtol(argv[++i], &end, 10);
			if (*end || n < -20 || n > 19) {
				fprintf(stderr, "bench_pm_live: --service-nice: -20..19\n");
				return 2;
			}
			service_nice = (int)n;
			service_nice_set = true;
		} else {
			fprintf(stderr, "usage: bench_pm_live [--duration-ms N] [--model NAME] [--seed S] "
				"[--trace SPEC] [--no-scale] [--service-nice N] [--check-only] [--diag] [--no-stamps] [--no-mid] [--no-peek]\n");
			return 2;
		}
	}
	if (duration_ms < 200 || duration_ms > 600000) {
		fprintf(stderr, "bench_pm_live: --duration-ms: 200..600000\n");
		return 2;
	}
	if (only && !thoth_pm_cpu_model_find(only)) {
		fprintf(stderr, "bench_pm_live: --model %s: unknown (hikey-a53, juno-a57, juno-a53)\n", only);
		return 2;
	}
	const char *base = trace_spec ? trace_spec : "chain depth=3 mean_gap_us=50000 work_us=2000 deadline_us=10000";
	/* Each model's trace (its work scaled to the model) and whether the
	 * model's top OPP can meet it at all, before any phase runs. */
	enum { MAX_MODELS = 8 };
	thoth_pm_trace_t traces[MAX_MODELS];
	char specs[MAX_MODELS][512];
	bool feasible[MAX_MODELS] = { false }, have[MAX_MODELS] = { false };
	unsigned infeasible = 0, selected = 0;
	printf("SCHED-1 live: the governor's options on real requests (channels, dispatch, processes) vs the "
	       "simulator on the same trace.\noffered work: %s; feasible = the model's top OPP, held "
	       "throughout and alone on a CPU, answers every request by its deadline as the bench sends "
	       "them (bench/pm/live_feasible.h); an infeasible model gets no figure\n",
	       scale ? "work_us scaled to each model's top capacity (x capacity/1024, as bench_pm)" :
		       "work_us UNSCALED (--no-scale: the same work at capacity 1024 on every model)");
	for (size_t mi = 0; mi < MAX_MODELS && thoth_pm_cpu_model_at(mi); mi++) {
		const thoth_pm_cpu_model_t *m = thoth_pm_cpu_model_at(mi);
		if (only && strcmp(only, m->name))
			continue;
		char spec[400];
		if (thoth_pm_live_spec(m, base, scale, spec, sizeof spec)) {
			fprintf(stderr, "bench_pm_live: --trace: no work_us= (sim.h: every kind needs one) or over 400 bytes\n");
			for (size_t k = 0; k < mi; k++)
				if (have[k])
					thoth_pm_trace_free(&traces[k]);
			return 2;
		}
		snprintf(specs[mi], sizeof specs[mi], "%s duration_ms=%u seed=%u", spec, duration_ms, seed);
		const char *why;
		if (thoth_pm_trace_generate(specs[mi], "chain", &traces[mi], &why)) {
			fprintf(stderr, "bench_pm_live: --trace: %s\n", why);
			for (size_t k = 0; k < mi; k++)
				if (have[k])
					thoth_pm_trace_free(&traces[k]);
			return 2;
		}
		have[mi] = true;
		selected++;
		uint32_t senders = trace_senders(&traces[mi]);
		thoth_pm_live_feasibility_t fz;
		int bad = senders == 0 || senders > MAX_CLIENTS ? 2 :
			  thoth_pm_live_feasibility(m, &traces[mi], senders, &fz, &why) ? 1 : 0;
		if (bad) {
			if (bad == 2)
				fprintf(stderr, "bench_pm_live: --trace: clients=%u: the bench runs 1..%d senders\n",
					senders, MAX_CLIENTS);
			else
				fprintf(stderr, "bench_pm_live: feasibility: %s\n", why);
			for (size_t k = 0; k <= mi; k++)
				if (have[k])
					thoth_pm_trace_free(&traces[k]);
			return bad;
		}
		feasible[mi] = fz.misses == 0;
		infeasible += !feasible[mi];
		printf("feasibility %-10s %s: top OPP capacity %u: longest request %.2f ms, longest answer %.2f ms, "
		       "%llu of %llu requests past their deadline%s\n",
		       m->name, feasible[mi] ? "ok        " : "INFEASIBLE", fz.top_capacity, fz.longest_burn_ns / 1e6,
		       fz.worst_ns / 1e6, (unsigned long long)fz.misses, (unsigned long long)fz.requests,
		       feasible[mi] ? "" : ": no governor can meet this phase; its rows are refused");
	}
	if (check_only || infeasible == selected) {      /* nothing to run */
		for (size_t mi = 0; mi < MAX_MODELS; mi++)
			if (have[mi])
				thoth_pm_trace_free(&traces[mi]);
		if (infeasible)
			printf("verdict: INFEASIBLE: %u model(s) offered work their top OPP cannot meet; no figures\n",
			       infeasible);
		return infeasible ? 3 : 0;
	}
	char dir[] = "/tmp/bench_pm_live-XXXXXX";
	if (!mkdtemp(dir))
		return 1;
	/* --diag's replay of the shim (shim_replay) governs a dvfs domain in
	 * this process: an empty root, so a host's cpufreq is never written */
	setenv("THOTH_SYSFS_ROOT", dir, 1);
	char nice_text[48];
	snprintf(nice_text, sizeof nice_text, service_nice_set ? "%d (--service-nice)" : "inherited (%d)",
		 service_nice_set ? service_nice : getpriority(PRIO_PROCESS, 0));
	printf("OPPs chosen and recorded, not written (no cpufreq: simulated backend); work burnt at the "
	       "chosen OPP's capacity; no switch latency live; each chain step sent when the previous one is "
	       "answered; service nice %s; deadlines %s.\n"
	       "ramp (ms) = time from a request's send until the OPP gives its right speed (the optimum's "
	       "on the trace, as the simulator), or its answer; sim miss / sim p95 = the simulator's deadline misses / ramp p95 on the same trace (its step times, not the live sends); live/sim = live p95 / simulator p95; "
	       "disp p95 = the same ramp counted from the request's dispatch (the service's scheduling delay taken out); right@d = share of requests whose handler began at their right speed (the governor's decision at dispatch, little moved by load); x none = live p95 / live p95 without options (same run); stretch = median answer time / the burn at its OPP (1 on a quiet machine: above that the service waited for a CPU, and chain steps that come more than a deadline apart are not chains to the predictor); named = requests whose sender "
	       "the dispatcher named; cpu got = the share of a CPU the service got while burning its requests' work "
	       "(CPU time / wall time of the burns; p10 = the 10th percentile per request): under 90%% the "
	       "row is LOADED; clients / service = CPU ms the bench's own client threads / the service used "
	       "over the phase\n", nice_text,
	       stamps ? "from each request's send stamp (10 ms after its send)" :
			"from each request's dispatch (--no-stamps: 10 ms after it, the wait in the ring unseen)");
	printf("decisions %s\n", mid_checks ? "also while a handler runs (every 0.5 ms; the burn follows the OPP)"
				     : "at dispatch and completion only (--no-mid)");
	printf("waiting requests %s\n", peek ? "seen in the rings at each dispatch and check, each due 10 ms after its send stamp"
				      : "counted at dispatch only, one per non-empty ring, due as the dispatched one (--no-peek)");
	print_loadavg("at start");
	printf("%-10s %-9s %8s %8s %9s %8s %6s %8s %8s %9s %7s %7s %9s %8s %5s %8s %8s\n", "model", "options",
	       "live p50", "live p95", "disp p95", "right@d", "misses", "sim miss", "sim p95", "live/sim", "x none", "stretch", "named",
	       "cpu got", "p10", "clients", "service");
	int status = 0;
	unsigned phases = 0, loaded = 0;
	double worst_share = 1;
	for (size_t mi = 0; mi < MAX_MODELS && thoth_pm_cpu_model_at(mi); mi++) {
		const thoth_pm_cpu_model_t *m = thoth_pm_cpu_model_at(mi);
		if (!have[mi])
			continue;
		const thoth_pm_trace_t *t = &traces[mi];
		printf("-- %s: %s (%zu requests)\n", m->name, specs[mi], t->count);
		if (!feasible[mi]) {
			printf("%-10s REFUSED: infeasible (above): no figure\n", m->name);
			continue;
		}
		double *speed = calloc(t->count + 1, sizeof *speed), e;
		uint32_t *rights = calloc(t->count + 1, sizeof *rights);
		thoth_pm_cpu_optimum(m, t, speed, &e);
		for (size_t j = 0; j < t->count; j++)
			rights[j] = right_capacity(m, speed[j]);
		phase_t ph[VARIANTS];
		for (int v = 0; v < VARIANTS; v++) {
			run_phase(m, t, rights, variant_options[v], dir, &ph[v]);
			if (ph[v].service_died) {
				fprintf(stderr, "bench_pm_live: the service exited before serving; stopping\n");
				for (size_t k = 0; k < MAX_MODELS; k++)
					if (have[k])
						thoth_pm_trace_free(&traces[k]);
				free(speed);
				free(rights);
				rmdir(dir);
				return 1;
			}
			if (ph[v].err)
				status = 1;
			thoth_pm_cpu_result_t r;
			thoth_pm_sim_cpu_options(m, t, THOTH_PM_GOV_THOTH, variant_options[v], &r);
			bool is_loaded = ph[v].cpu_share < QUIET_SHARE;
			phases++;
			loaded += is_loaded;
			if (ph[v].cpu_share < worst_share)
				worst_share = ph[v].cpu_share;
			printf("%-10s %-9s %8.2f %8.2f %9.2f %7.1f%% %6llu %8llu %8.2f %8.2fx %6.2fx %6.2fx %4llu/%llu %7.1f%% "
			       "%4.0f%% %8.1f %8.1f%s\n", m->name,
			       variant_names[v], ph[v].p50_ns / 1e6, ph[v].p95_ns / 1e6, ph[v].dispatch_p95_ns / 1e6,
			       ph[v].requests ? 100.0 * ph[v].right_at_dispatch / ph[v].requests : 0.0,
			       (unsigned long long)ph[v].misses, (unsigned long long)r.deadline_misses,
			       r.ramp_p95_ns / 1e6,
			       r.ramp_p95_ns ? (double)ph[v].p95_ns / (double)r.ramp_p95_ns : 0.0,
			       ph[0].p95_ns ? (double)ph[v].p95_ns / (double)ph[0].p95_ns : 0.0, ph[v].stretch,
			       (unsigned long long)ph[v].identified, (unsigned long long)ph[v].requests,
			       100 * ph[v].cpu_share, 100 * ph[v].cpu_share_p10, ph[v].clients_cpu_ms,
			       ph[v].service_cpu_ms, is_loaded ? "  LOADED" : "");
			if (diag)
				printf("   diag %-9s waited %llu/%llu (wait p95 %.2f ms); ramp p95 waited %.2f / not %.2f ms; "
				       "misses %llu: %llu waited, %llu within 10 ms of their dispatch, %llu began below "
				       "their right speed\n", variant_names[v], (unsigned long long)ph[v].waited,
				       (unsigned long long)ph[v].requests, ph[v].wait_p95_ns / 1e6,
				       ph[v].ramp_p95_waited_ns / 1e6, ph[v].ramp_p95_unwaited_ns / 1e6,
				       (unsigned long long)ph[v].misses, (unsigned long long)ph[v].miss_waited,
				       (unsigned long long)ph[v].miss_own_ok, (unsigned long long)ph[v].miss_slow);
			if (diag && ph[v].have_live_sim)
				printf("   diag %-9s on the live arrivals: live p95 %.2f ms against their right speeds; "
				       "simulator p95 %.2f ms, misses %llu; the shim replayed (dispatch-only) misses %ld "
				       "with deadlines from the dispatch, %ld from the send\n", variant_names[v],
				       ph[v].p95_liveright_ns / 1e6, ph[v].sim_live_p95_ns / 1e6,
				       (unsigned long long)ph[v].sim_live_misses, ph[v].shim_misses,
				       ph[v].shim_misses_stamped);
			if (diag && ph[v].have_live_sim)
				printf("   diag %-9s the shim replayed from the send, asked again while a handler runs: "
				       "every 0.5 ms %ld (seeing the arrivals meanwhile %ld), every 0.1 ms %ld (%ld); "
				       "modelled energy every 0.5 ms / dispatch-only %.4f (%.2f / %.2f mJ)\n",
				       variant_names[v], ph[v].mid_misses[0][0], ph[v].mid_misses[0][1],
				       ph[v].mid_misses[1][0], ph[v].mid_misses[1][1],
				       ph[v].replay_mj > 0 ? ph[v].replay_mid_mj / ph[v].replay_mj : 0.0,
				       ph[v].replay_mid_mj, ph[v].replay_mj);
			if (diag && ph[v].have_live_sim)
				printf("   diag %-9s the shim as it runs live (%s): replayed misses %ld vs live %llu; "
				       "with the look %ld, modelled energy with the look / without %.4f (%.2f mJ)\n",
				       variant_names[v],
				       peek ? "from the send, every 0.5 ms, the look at the rings"
					    : "from the send, every 0.5 ms, no look (--no-peek)",
				       peek ? ph[v].look_misses : ph[v].mid_misses[0][0],
				       (unsigned long long)ph[v].misses, ph[v].look_misses,
				       ph[v].replay_mid_mj > 0 ? ph[v].replay_look_mj / ph[v].replay_mid_mj : 0.0,
				       ph[v].replay_look_mj);
			fflush(stdout);
		}
		free(speed);
		free(rights);
	}
	print_loadavg("at end");
	if (infeasible)
		printf("verdict: INFEASIBLE: %u model(s) offered work their top OPP cannot meet: refused, no "
		       "figures for them\n", infeasible);
	if (loaded)
		printf("verdict: LOADED: in %u of %u phases the service got less than %.0f%% of a CPU while it had work "
		       "(least %.1f%%): its answers waited for a CPU, so these ramps and misses measure this "
		       "machine, not the governor; run it on a quiet machine\n",
		       loaded, phases, 100 * QUIET_SHARE, 100 * worst_share);
	else if (phases)
		printf("verdict: quiet: the service got at least %.0f%% of a CPU while it had work in every phase "
		       "(least %.1f%%): the ramps are the governor's\n", 100 * QUIET_SHARE, 100 * worst_share);
	for (size_t mi = 0; mi < MAX_MODELS; mi++)
		if (have[mi])
			thoth_pm_trace_free(&traces[mi]);
	rmdir(dir);
	return infeasible ? 3 : status;
}
