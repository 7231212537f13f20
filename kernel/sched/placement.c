/*
 * placement.c - the SCHED-4 placement policy (placement.h, docs/SCHED.md).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <math.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "placement.h"
#include "thoth/trace.h"

void place_policy_default(place_policy_t *p)
{
	*p = (place_policy_t){
		.max_rate_hz = 5000,
		.max_busy = 0.5,
		.spread_slowdown = 1.2,
		.spread_busy = 0.9,
		.min_dwell_ns = 2000000000ull,
		.apart_idle = 0.5,
		.apart_dwell_ns = 4000000000ull,
	};
}

static bool finite_frac(double v) { return isfinite(v) && v >= 0 && v <= 1.5; }

/* One "key=value" of place_policy_parse into P; false when the key is
 * unknown or the value is not a finite number in its range. */
static bool policy_set(place_policy_t *p, const char *key, size_t klen, const char *val, size_t vlen)
{
	char buf[32];
	if (!vlen || vlen >= sizeof buf)
		return false;
	memcpy(buf, val, vlen);
	buf[vlen] = 0;
	char *end;
	errno = 0;
	double v = strtod(buf, &end);
	if (*end || errno || !isfinite(v) || v < 0)
		return false;
#define KEY(k) (klen == sizeof k - 1 && !memcmp(key, k, klen))
	if (KEY("max_rate_hz"))
		p->max_rate_hz = v;
	else if (KEY("max_busy") && v <= 1.5)
		p->max_busy = v;
	else if (KEY("spread_slowdown") && v <= 1000)
		p->spread_slowdown = v;
	else if (KEY("spread_busy") && v <= 1.5)
		p->spread_busy = v;
	else if (KEY("apart_idle") && v <= 1)
		p->apart_idle = v;
	else if (KEY("min_dwell_ms") && v <= 86400000)
		p->min_dwell_ns = (uint64_t)(v * 1e6);
	else if (KEY("apart_dwell_ms") && v <= 86400000)
		p->apart_dwell_ns = (uint64_t)(v * 1e6);
	else
		return false;
#undef KEY
	return true;
}

int place_policy_parse(place_policy_t *p, const char *spec, char *why, size_t why_len)
{
	place_policy_t out = *p;
	const char *s = spec ? spec : "";
	while (*s) {
		const char *comma = strchr(s, ',');
		size_t len = comma ? (size_t)(comma - s) : strlen(s);
		const char *eq = memchr(s, '=', len);
		if (!eq || eq == s || !policy_set(&out, s, (size_t)(eq - s), eq + 1, len - (size_t)(eq - s) - 1)) {
			if (why && why_len)
				snprintf(why, why_len, "placement policy \"%.*s\": want KEY=NUMBER, KEY one of max_rate_hz, "
					 "max_busy, spread_slowdown, spread_busy, apart_idle (0..1), min_dwell_ms, "
					 "apart_dwell_ms, each in its range", (int)(len > 60 ? 60 : len), s);
			return -1;
		}
		s += len;
		if (*s == ',')
			s++;
	}
	*p = out;
	return 0;
}

static void decide(place_decision_t *d, place_action_t a, int cpu, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void decide(place_decision_t *d, place_action_t a, int cpu, const char *fmt, ...)
{
	d->action = a;
	d->reason = PLACE_WHY_NONE;
	d->cpu = cpu;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(d->why, sizeof d->why, fmt, ap);
	va_end(ap);
}

/*
 * Rule 6: a sleeping synchronous pair the kernel keeps on one CPU and that
 * saturates it (the two threads need more than spread_busy of it) is
 * split when another CPU the service may use was idle apart_idle of the
 * window: the service moves there and the pair spins across CPUs
 * (docs/SCHED.md "Apart").  The chosen CPU: the most idle, and among
 * those within 10% of it the nearest to the client's by topology.
 */
static void apart(const place_policy_t *pol, const place_obs_t *o, place_decision_t *d, double busy)
{
	if (busy <= pol->spread_busy) {
		decide(d, PLACE_STAY, -1, "on one CPU (%d), using %.0f%% of it (apart above %.0f%%)", o->client_cpu,
		       busy * 100, pol->spread_busy * 100);
		return;
	}
	if (o->calls == 0 || 2 * o->peer_wakeups < o->calls) {
		decide(d, PLACE_STAY, -1, "on one CPU (%d), not a sleeping synchronous pair (%llu wake-ups for %llu calls)",
		       o->client_cpu, (unsigned long long)o->peer_wakeups, (unsigned long long)o->calls);
		return;
	}
	unsigned undos = o->apart_undos < 6 ? o->apart_undos : 6;
	/* Saturated: a dwell of more than UINT64_MAX ns is "never again". */
	uint64_t dwell = pol->apart_dwell_ns > (UINT64_MAX >> undos) ? UINT64_MAX : pol->apart_dwell_ns << undos;
	if (o->since_last_move_ns < dwell) {
		decide(d, PLACE_STAY, -1, "on one CPU, saturated, moved %.1f s ago (apart dwell %.1f s after %u undo(s))",
		       o->since_last_move_ns / 1e9, dwell / 1e9, o->apart_undos);
		return;
	}
	if (!o->cpus || !o->ncpus) {
		decide(d, PLACE_STAY, -1, "on one CPU, saturated, other CPUs' load unknown");
		return;
	}
	double best = -1;
	for (unsigned i = 0; i < o->ncpus; i++)
		if (o->cpus[i].cpu != o->client_cpu && o->cpus[i].cpu >= 0 && finite_frac(o->cpus[i].idle) &&
		    o->cpus[i].idle > best)
			best = o->cpus[i].idle;
	if (best < pol->apart_idle) {
		decide(d, PLACE_STAY, -1, "on one CPU, saturated, but no other CPU was %.0f%% idle (best %.0f%%)",
		       pol->apart_idle * 100, best < 0 ? 0 : best * 100);
		return;
	}
	int cpu = -1;
	double idle = 0;
	uint32_t cd = UINT32_MAX;
	for (unsigned i = 0; i < o->ncpus; i++) {
		const place_cpu_idle_t *c = &o->cpus[i];
		if (c->cpu == o->client_cpu || c->cpu < 0 || !finite_frac(c->idle) || c->idle < best - 0.1 ||
		    c->idle < pol->apart_idle)
			continue;
		uint32_t dd = place_cpu_distance(o->map, c->cpu, o->client_cpu);
		if (cpu < 0 || dd < cd || (dd == cd && abs(c->cpu - o->client_cpu) < abs(cpu - o->client_cpu))) {
			cpu = c->cpu;
			idle = c->idle;
			cd = dd;
		}
	}
	decide(d, PLACE_APART, cpu,
	       "sleeping pair saturates CPU %d (%.0f%%, %.0f calls/s, %.1f us per round trip), CPU %d %.0f%% idle: "
	       "service moved apart to CPU %d", o->client_cpu, busy * 100, (double)o->calls * 1e9 / (double)o->window_ns,
	       o->rtt_ns / 1e3, cpu, idle * 100, cpu);
	d->reason = PLACE_WHY_SATURATED;
}

void place_decide(const place_policy_t *pol, const place_obs_t *o, place_decision_t *d)
{
	place_policy_t def;
	if (!pol) {
		place_policy_default(&def);
		pol = &def;
	}
	/* Rule 0: the user's word is final.  Only the service thread is ever
	 * moved: a client pinned by the user is a CPU it may follow (its
	 * affinity is untouched), a pinned service thread is never moved. */
	if (o->server_pinned) {
		decide(d, PLACE_STAY, -1, "the service thread has an affinity set by the user: never overridden");
		return;
	}
	if (!o->window_ns || !finite_frac(o->client_busy) || !finite_frac(o->server_busy) ||
	    !isfinite(o->rtt_ns) || o->rtt_ns < 0 || !isfinite(o->rtt_before_ns)) {
		decide(d, PLACE_STAY, -1, "observation incomplete or out of range");
		return;
	}
	if (o->since_last_move_ns < pol->min_dwell_ns) {
		decide(d, PLACE_STAY, -1, "moved %.1f s ago (dwell %.1f s)", o->since_last_move_ns / 1e9,
		       pol->min_dwell_ns / 1e9);
		return;
	}
	double rate = (double)o->calls * 1e9 / (double)o->window_ns;
	double busy = o->client_busy + o->server_busy;
	if (o->apart) {
		/* Rule 6's undo: the pair apart must stay faster than it was
		 * together (a busy chosen CPU turns the spin into cross-CPU
		 * sleeps, ~10x the one-CPU round trip). */
		if (o->rtt_before_ns > 0 && o->rtt_ns > pol->spread_slowdown * o->rtt_before_ns) {
			decide(d, PLACE_SPREAD, -1, "apart, the round trip %.1f us is %.2fx the %.1f us on one CPU: "
			       "back to its own CPUs", o->rtt_ns / 1e3, o->rtt_ns / o->rtt_before_ns,
			       o->rtt_before_ns / 1e3);
			d->reason = PLACE_WHY_APART_SLOWER;
			return;
		}
		/* The client woken by the service may be placed on the
		 * service's CPU (wake-affine): the pair is together again,
		 * sleeping, with one thread pinned for nothing. */
		if (o->client_cpu >= 0 && o->client_cpu == o->server_cpu) {
			decide(d, PLACE_SPREAD, -1, "apart, but the client followed the service to CPU %d: back to its own CPUs",
			       o->server_cpu);
			d->reason = PLACE_WHY_APART_SLOWER;
			return;
		}
		decide(d, PLACE_STAY, -1, "apart and not slower (%.2f us)", o->rtt_ns / 1e3);
		return;
	}
	if (o->colocated) {
		/* Rule 3: spread again when sharing a CPU hurts either side. */
		if (o->rtt_before_ns > 0 && o->rtt_ns > pol->spread_slowdown * o->rtt_before_ns) {
			decide(d, PLACE_SPREAD, -1, "co-located round trip %.1f us is %.2fx the %.1f us before the move",
			       o->rtt_ns / 1e3, o->rtt_ns / o->rtt_before_ns, o->rtt_before_ns / 1e3);
			d->reason = PLACE_WHY_SLOWER;
			return;
		}
		if (busy > pol->spread_busy) {
			decide(d, PLACE_SPREAD, -1, "the pair needs %.0f%% of the shared CPU (limit %.0f%%)",
			       busy * 100, pol->spread_busy * 100);
			d->reason = PLACE_WHY_BUSY;
			return;
		}
		decide(d, PLACE_STAY, -1, "co-located and not slower (%.1f us)", o->rtt_ns / 1e3);
		return;
	}
	if (o->client_cpu < 0 || o->server_cpu < 0) {
		decide(d, PLACE_STAY, -1, "CPU of %s unknown", o->client_cpu < 0 ? "client" : "service");
		return;
	}
	if (o->client_cpu == o->server_cpu) {
		apart(pol, o, d, busy);
		return;
	}
	/* Rule 1: only synchronous pairs: most calls cost a doorbell, i.e. the
	 * waiting side sleeps (a spinning pair on two CPUs is already fast). */
	if (o->calls == 0 || o->peer_wakeups < o->calls) {
		decide(d, PLACE_STAY, -1, "not a sleeping synchronous pair (%llu wake-ups for %llu calls)",
		       (unsigned long long)o->peer_wakeups, (unsigned long long)o->calls);
		return;
	}
	/* Rule 2: low rate and little CPU: both fit on one CPU. */
	if (rate > pol->max_rate_hz) {
		decide(d, PLACE_STAY, -1, "%.0f calls/s is above the %.0f/s co-location limit", rate, pol->max_rate_hz);
		return;
	}
	if (busy > pol->max_busy) {
		decide(d, PLACE_STAY, -1, "the pair uses %.0f%% of a CPU (co-locate below %.0f%%)", busy * 100,
		       pol->max_busy * 100);
		return;
	}
	decide(d, PLACE_COLOCATE, o->client_cpu,
	       "synchronous pair, %.0f calls/s, %.0f%% busy, %.1f us per round trip across CPUs %d/%d: "
	       "service follows its client to CPU %d", rate, busy * 100, o->rtt_ns / 1e3, o->client_cpu,
	       o->server_cpu, o->client_cpu);
	d->reason = PLACE_WHY_SYNC_PAIR;
}

/* ---- a thread's affinity, sized for the machine ---------------------------------- */

/* The most CPUs a mask is grown to name when the kernel refuses smaller
 * ones (EINVAL: its nr_cpu_ids is larger); Linux's NR_CPUS is at most 8192. */
enum { PLACE_MASK_MAX_BITS = 65536 };

static int mask_alloc(place_mask_t *m, unsigned bits)
{
	cpu_set_t *set = CPU_ALLOC(bits);
	if (!set)
		return -1;
	CPU_FREE(m->set);
	m->set = set;
	m->bits = bits;
	m->size = CPU_ALLOC_SIZE(bits);
	m->valid = false;
	return 0;
}

int place_mask_get(place_mask_t *m, pid_t tid)
{
	if (!m->set) {
		long conf = sysconf(_SC_NPROCESSORS_CONF);     /* the possible CPUs */
		unsigned bits = conf > CPU_SETSIZE && conf < PLACE_MASK_MAX_BITS ? (unsigned)conf : CPU_SETSIZE;
		if (mask_alloc(m, bits))
			return -1;
	}
	for (;;) {
		if (sched_getaffinity(tid, m->size, m->set) == 0) {
			m->valid = true;
			return 0;
		}
		if (errno != EINVAL || m->bits * 2 > PLACE_MASK_MAX_BITS)
			break;
		if (mask_alloc(m, m->bits * 2))
			return -1;
	}
	m->valid = false;
	return -1;
}

void place_mask_free(place_mask_t *m)
{
	CPU_FREE(m->set);
	*m = (place_mask_t){ 0 };
}

void place_mask_format(const place_mask_t *m, char *buf, size_t cap)
{
	size_t len = 0;
	if (!cap)
		return;
	buf[0] = 0;
	if (!m || !m->valid) {
		snprintf(buf, cap, "(unknown)");
		return;
	}
	for (unsigned c = 0; c < m->bits; c++) {
		if (!CPU_ISSET_S(c, m->size, m->set))
			continue;
		unsigned e = c;
		while (e + 1 < m->bits && CPU_ISSET_S(e + 1, m->size, m->set))
			e++;
		char item[32];
		int n = e == c ? snprintf(item, sizeof item, "%s%u", len ? "," : "", c)
			       : snprintf(item, sizeof item, "%s%u-%u", len ? "," : "", c, e);
		if (len + (size_t)n + 4 > cap) {
			snprintf(buf + len, cap - len, "...");
			return;
		}
		memcpy(buf + len, item, (size_t)n + 1);
		len += (size_t)n;
		c = e;
	}
	if (!len)
		snprintf(buf, cap, "(none)");
}

bool place_mask_pinned(const place_mask_t *m)
{
	return m->valid && CPU_COUNT_S(m->size, m->set) < sysconf(_SC_NPROCESSORS_ONLN);
}

int place_thread_pinned(pid_t tid)
{
	place_mask_t m = { 0 };
	int r = place_mask_get(&m, tid) ? -1 : place_mask_pinned(&m);
	place_mask_free(&m);
	return r;
}

/* Set TID's affinity to CPU alone (COLOCATE, APART). */
static int set_one_cpu(pid_t tid, int cpu)
{
	if (cpu < 0 || cpu >= PLACE_MASK_MAX_BITS) {
		errno = EINVAL;
		return -1;
	}
	cpu_set_t *set = CPU_ALLOC((unsigned)cpu + 1);
	if (!set)
		return -1;
	size_t size = CPU_ALLOC_SIZE((unsigned)cpu + 1);
	CPU_ZERO_S(size, set);
	CPU_SET_S((unsigned)cpu, size, set);
	int r = sched_setaffinity(tid, size, set);
	int err = errno;
	CPU_FREE(set);
	errno = err;
	return r;
}

/* Every CPU: the kernel keeps those the thread's cpuset allows and that
 * are online (the fallback when the saved mask is refused). */
static int set_every_cpu(pid_t tid, const place_mask_t *like)
{
	unsigned bits = like && like->bits ? like->bits : CPU_SETSIZE;
	cpu_set_t *set = CPU_ALLOC(bits);
	if (!set)
		return -1;
	size_t size = CPU_ALLOC_SIZE(bits);
	memset(set, 0xff, size);
	int r = sched_setaffinity(tid, size, set);
	int err = errno;
	CPU_FREE(set);
	errno = err;
	return r;
}

int place_apply(pid_t tid, const place_decision_t *d, const place_mask_t *restore, place_log_fn log, void *ctx)
{
	if (d->action == PLACE_STAY)
		return 0;
	int r, err;
	char where[160];
	const char *fallback = "";
	char why_back[64] = "";
	if (d->action == PLACE_COLOCATE || d->action == PLACE_APART) {
		r = set_one_cpu(tid, d->cpu);
		err = errno;
		snprintf(where, sizeof where, "moved %sto CPU %d", d->action == PLACE_APART ? "apart " : "", d->cpu);
	} else if (!restore || !restore->valid) {
		r = -1;
		err = EINVAL;
		snprintf(where, sizeof where, "not given back its CPUs (none saved before the move)");
	} else {
		char list[96];
		place_mask_format(restore, list, sizeof list);
		r = sched_setaffinity(tid, restore->size, restore->set);
		err = errno;
		snprintf(where, sizeof where, "given back its CPUs %s", list);
		if (r) {
			/* Its CPUs went offline or left the cpuset since the move:
			 * unpinned is the nearest to what it had. */
			snprintf(why_back, sizeof why_back, "%s", strerror(err));
			r = set_every_cpu(tid, restore);
			err = errno;
			fallback = r ? "" : " instead every CPU it may use";
		}
	}
	/* The thread by its id, also when it is the caller (TID 0): the line
	 * said "thread 0" for every service thread. */
	pid_t who = tid ? tid : gettid();
	THOTH_TRACE(LOOP, place_move, (uint64_t)who,
		    (uint64_t)d->action | (uint64_t)d->reason << 8 | (uint64_t)(uint32_t)(d->cpu + 1) << 16 |
			    (uint64_t)(r != 0) << 32);
	if (log) {
		char line[480];
		if (*why_back)
			snprintf(line, sizeof line, "placement: thread %d could not be given back its CPUs (%s), given%s: %s%s%s%s",
				 (int)who, why_back, *fallback ? fallback : " nothing", d->why,
				 r ? " (failed: " : "", r ? strerror(err) : "", r ? ")" : "");
		else
			snprintf(line, sizeof line, "placement: thread %d %s: %s%s%s%s", (int)who, where, d->why,
				 r ? " (failed: " : "", r ? strerror(err) : "", r ? ")" : "");
		log(ctx, line);
	}
	errno = err;
	return r;
}

/* ---- the client's CPU time -------------------------------------------------------- */

static uint64_t schedstat_ns(const char *path)
{
	char buf[96];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	char *end;
	unsigned long long v = strtoull(buf, &end, 10);
	return end != buf ? v : 0;
}

uint64_t place_thread_cpu_ns(pid_t pid, uint32_t tid, pid_t *read)
{
	char p[64];
	if (pid <= 0)
		return 0;
	/* pid_max is at most 2^22: a larger TID names no thread. */
	if (tid > 0 && tid <= (1u << 22) && (pid_t)tid != pid) {
		snprintf(p, sizeof p, "/proc/%d/task/%u/schedstat", (int)pid, tid);
		uint64_t v = schedstat_ns(p);
		if (v) {
			if (read)
				*read = (pid_t)tid;
			return v;
		}
	}
	if (read)
		*read = pid;
	snprintf(p, sizeof p, "/proc/%d/schedstat", (int)pid);
	return schedstat_ns(p);
}

/* ---- how idle each CPU is (/proc/stat) ------------------------------------------ */

int place_cpu_times_read(place_cpu_times_t *t, const char *path)
{
	t->ncpus = 0;
	memset(t->have, 0, sizeof t->have);
	FILE *f = fopen(path ? path : "/proc/stat", "re");
	if (!f)
		return -1;
	char line[512];
	bool any = false;
	while (fgets(line, sizeof line, f)) {
		size_t len = strlen(line);
		bool whole = len && line[len - 1] == '\n';
		/* "cpu " (the sum) first, then one "cpuN" line per online CPU;
		 * the next kind of line ends them. */
		if (strncmp(line, "cpu", 3))
			break;
		if (!whole)
			break;          /* a cpu line is ~80 bytes: this file is not /proc/stat */
		if (line[3] < '0' || line[3] > '9')
			continue;
		char *p = line + 3, *end;
		unsigned long cpu = strtoul(p, &end, 10);
		if (end == p || *end != ' ' || cpu >= PLACE_MAX_CPUS)
			continue;
		/* user nice system idle iowait irq softirq steal (guest and
		 * guest_nice are already in user and nice) */
		unsigned long long v[8] = { 0 };
		int n = 0;
		for (p = end; n < 8; n++, p = end) {
			v[n] = strtoull(p, &end, 10);
			if (end == p)
				break;
		}
		if (n < 4)
			continue;
		uint64_t total = 0;
		for (int i = 0; i < n; i++)
			total += v[i];
		t->idle[cpu] = v[3] + (n > 4 ? v[4] : 0);
		t->total[cpu] = total;
		t->have[cpu] = true;
		if (cpu + 1 > t->ncpus)
			t->ncpus = (unsigned)cpu + 1;
		any = true;
	}
	fclose(f);
	return any ? 0 : -1;
}

unsigned place_cpu_idle(const place_cpu_times_t *a, const place_cpu_times_t *b, const place_mask_t *allowed,
			place_cpu_idle_t *out, unsigned cap)
{
	unsigned n = 0;
	unsigned lim = a->ncpus < b->ncpus ? a->ncpus : b->ncpus;
	if (lim > PLACE_MAX_CPUS)
		lim = PLACE_MAX_CPUS;
	for (unsigned c = 0; c < lim && n < cap; c++) {
		if (!a->have[c] || !b->have[c])
			continue;
		if (allowed && (!allowed->valid || c >= allowed->bits || !CPU_ISSET_S(c, allowed->size, allowed->set)))
			continue;
		if (b->total[c] <= a->total[c] || b->idle[c] < a->idle[c])
			continue;       /* no time passed, or a counter went back (CPU re-onlined) */
		uint64_t dt = b->total[c] - a->total[c], di = b->idle[c] - a->idle[c];
		out[n].cpu = (int)c;
		out[n].idle = di >= dt ? 1.0 : (double)di / (double)dt;
		n++;
	}
	return n;
}

unsigned place_cpu_idle_all(const place_cpu_times_t *a, const place_cpu_times_t *b, const place_mask_t *allowed,
			    place_cpu_idle_t **out, unsigned *cap)
{
	unsigned need = a->ncpus < b->ncpus ? a->ncpus : b->ncpus;
	if (need > PLACE_MAX_CPUS)
		need = PLACE_MAX_CPUS;
	if (need > *cap) {
		place_cpu_idle_t *p = realloc(*out, need * sizeof *p);
		if (!p)
			return 0;
		*out = p;
		*cap = need;
	}
	return *out ? place_cpu_idle(a, b, allowed, *out, *cap) : 0;
}

/* ---- "nearest": CPUs by topology distance -------------------------------------- */

/* The whole small file at SYSROOT/PATH into BUF; false when unreadable. */
static bool read_small(const char *sysroot, const char *path, char *buf, size_t cap)
{
	char p[512];
	snprintf(p, sizeof p, "%s%s", sysroot, path);
	int fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	ssize_t n = read(fd, buf, cap - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = 0;
	return true;
}

static int read_int(const char *sysroot, const char *path, int fallback)
{
	char b[32];
	if (!read_small(sysroot, path, b, sizeof b))
		return fallback;
	char *end;
	long v = strtol(b, &end, 10);
	return end != b && v >= 0 && v < INT16_MAX ? (int)v : fallback;
}

/* Calls FN(cpu, ARG) for every CPU of a kernel cpulist ("0-3,8,10-11");
 * bounded by PLACE_MAX_CPUS whatever the text says. */
static void each_in_list(const char *list, void (*fn)(int cpu, void *arg), void *arg)
{
	const char *p = list;
	while (*p) {
		char *end;
		long a = strtol(p, &end, 10);
		if (end == p)
			break;
		long b = a;
		p = end;
		if (*p == '-') {
			b = strtol(p + 1, &end, 10);
			if (end == p + 1)
				break;
			p = end;
		}
		for (long c = a; c >= 0 && c <= b && c < PLACE_MAX_CPUS; c++)
			fn((int)c, arg);
		while (*p == ',' || *p == ' ' || *p == '\n')
			p++;
	}
}

typedef struct list_ctx {
	place_cpumap_t *m;
	int node;
} list_ctx_t;

static void count_cpu(int cpu, void *arg)
{
	place_cpumap_t *m = arg;
	if ((unsigned)cpu + 1 > m->ncpus)
		m->ncpus = (unsigned)cpu + 1;
}

static void set_node(int cpu, void *arg)
{
	list_ctx_t *c = arg;
	if ((unsigned)cpu < c->m->ncpus)
		c->m->node[cpu] = (int16_t)c->node;
}

int place_cpumap_load(place_cpumap_t *m, const char *sysroot)
{
	memset(m, 0, sizeof *m);
	if (!sysroot)
		sysroot = "";
	char buf[4096], path[160];
	if (!read_small(sysroot, "/sys/devices/system/cpu/possible", buf, sizeof buf))
		return -1;
	each_in_list(buf, count_cpu, m);
	if (!m->ncpus)
		return -1;
	for (unsigned c = 0; c < m->ncpus; c++) {
		snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu%u/topology/physical_package_id", c);
		m->package[c] = (int16_t)read_int(sysroot, path, -1);
		snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu%u/topology/core_id", c);
		m->core[c] = (int16_t)read_int(sysroot, path, -1);
		m->node[c] = 0;         /* no node files: one node */
	}
	m->nnodes = 1;
	m->dist[0][0] = 10;
	for (int n = 0; n < PLACE_MAX_NODES; n++) {
		snprintf(path, sizeof path, "/sys/devices/system/node/node%d/cpulist", n);
		if (!read_small(sysroot, path, buf, sizeof buf))
			continue;
		list_ctx_t lc = { m, n };
		each_in_list(buf, set_node, &lc);
		if ((unsigned)n + 1 > m->nnodes)
			m->nnodes = (unsigned)n + 1;
		snprintf(path, sizeof path, "/sys/devices/system/node/node%d/distance", n);
		for (int k = 0; k < PLACE_MAX_NODES; k++)
			m->dist[n][k] = k == n ? 10 : 20;     /* Linux's default without a SLIT */
		if (read_small(sysroot, path, buf, sizeof buf)) {
			char *p = buf, *end;
			for (int k = 0; k < PLACE_MAX_NODES; k++, p = end) {
				long d = strtol(p, &end, 10);
				if (end == p)
					break;
				m->dist[n][k] = d >= 10 && d <= 254 ? (uint8_t)d : 254;
			}
		}
	}
	return 0;
}

uint32_t place_cpu_distance(const place_cpumap_t *m, int a, int b)
{
	if (a == b)
		return 0;
	if (a < 0 || b < 0)
		return UINT32_MAX;
	if (!m || !m->ncpus)
		return (uint32_t)abs(a - b);
	if ((unsigned)a >= m->ncpus || (unsigned)b >= m->ncpus)
		return UINT32_MAX / 2;
	int na = m->node[a], nb = m->node[b];
	if (na < 0 || nb < 0 || na >= PLACE_MAX_NODES || nb >= PLACE_MAX_NODES)
		return UINT32_MAX / 4;
	/* Node distance first (10 = the same node); within a node, a different
	 * package costs 2, a different core 1 (an SMT sibling shares L1/L2). */
	uint32_t d = (uint32_t)m->dist[na][nb] * 4;
	bool same_pkg = m->package[a] >= 0 && m->package[a] == m->package[b];
	bool same_core = same_pkg && m->core[a] >= 0 && m->core[a] == m->core[b];
	return d + (same_pkg ? 0 : 2) + (same_core ? 0 : 1);
}

int place_nearest_cpu(const place_cpumap_t *m, int from, const int *cpus, unsigned n)
{
	if (!n)
		return -1;
	if (from < 0)
		return 0;
	int best = 0;
	uint32_t bd = place_cpu_distance(m, cpus[0], from);
	for (unsigned i = 1; i < n; i++) {
		uint32_t d = place_cpu_distance(m, cpus[i], from);
		if (d < bd || (d == bd && abs(cpus[i] - from) < abs(cpus[best] - from))) {
			bd = d;
			best = (int)i;
		}
	}
	return best;
}
