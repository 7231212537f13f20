/*
 * sim_trace.c - traces for the simulator (sim.h): synthetic ones from a
 * one-line description, recorded ones from `thothctl trace` Chrome JSON or
 * a plain text list.  Recorded traces are untrusted input: every number is
 * range-checked, every error names the line and the problem, and the
 * parsers are fuzzed (fuzz/pm_sim).
 */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/stat.h>

#include "sim.h"
#include "thoth/error.h"
#include "backend.h"

#define US 1000ull
#define MS 1000000ull

/* ---- growing the job array ---------------------------------------------------------- */

typedef struct builder {
	thoth_pm_trace_t *t;
	size_t cap;
} builder_t;

static int push_from(builder_t *b, uint64_t arrival, uint64_t work, uint64_t deadline,
		     uint32_t client)
{
	thoth_pm_trace_t *t = b->t;
	if (t->count >= THOTH_PM_TRACE_MAX_JOBS)
		return THOTH_E_LIMIT;
	if (t->count == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 256;
		thoth_pm_job_t *j = realloc(t->jobs, cap * sizeof(*j));
		if (!j)
			return THOTH_E_NOMEM;
		t->jobs = j;
		b->cap = cap;
	}
	t->jobs[t->count++] = (thoth_pm_job_t){ arrival, work, deadline, false, client };
	return 0;
}

/* A request whose sender is unknown (recorded traces). */
static int push(builder_t *b, uint64_t arrival, uint64_t work, uint64_t deadline)
{
	return push_from(b, arrival, work, deadline, 0);
}

void thoth_pm_trace_free(thoth_pm_trace_t *t)
{
	if (!t)
		return;
	free(t->jobs);
	memset(t, 0, sizeof(*t));
}

int thoth_pm_trace_write(const thoth_pm_trace_t *t, FILE *out)
{
	if (!t || !out)
		return THOTH_E_INVAL;
	fprintf(out, "# thoth-pm-trace v1\n# %s\n%s", t->origin,
		t->timer_driven ? "# timer-driven\n" : "");
	fprintf(out, "# arrival_us work_us deadline_us (relative)\n");
	for (size_t i = 0; i < t->count; i++) {
		const thoth_pm_job_t *j = &t->jobs[i];
		fprintf(out, "%llu.%03llu %llu.%03llu %llu.%03llu\n",
			(unsigned long long)(j->arrival_ns / 1000), (unsigned long long)(j->arrival_ns % 1000),
			(unsigned long long)(j->work_ns / 1000), (unsigned long long)(j->work_ns % 1000),
			(unsigned long long)((j->deadline_ns - j->arrival_ns) / 1000),
			(unsigned long long)((j->deadline_ns - j->arrival_ns) % 1000));
	}
	return ferror(out) ? THOTH_E_IO : 0;
}

/*
 * Jobs in arrival order, equal arrivals kept in the order they were pushed
 * (a stable bottom-up merge sort: O(n log n) whatever the input, where an
 * insertion sort is quadratic on a hostile one).  The simulators admit jobs
 * in index order, so a job listed after a later arrival would be hidden
 * from the policy until then while the optimum (which sorts its points)
 * sees it at once: overlapping chains and bursts are generated out of
 * order, and JSON pairs are pushed in response order.
 */
static int sort_by_arrival(thoth_pm_trace_t *t)
{
	size_t n = t->count;
	bool sorted = true;
	for (size_t i = 1; i < n && sorted; i++)
		sorted = t->jobs[i - 1].arrival_ns <= t->jobs[i].arrival_ns;
	if (sorted)
		return 0;
	thoth_pm_job_t *a = t->jobs, *b = malloc(n * sizeof(*b));
	if (!b)
		return THOTH_E_NOMEM;
	for (size_t width = 1; width < n; width *= 2) {
		for (size_t lo = 0; lo < n; lo += 2 * width) {
			size_t mid = lo + width < n ? lo + width : n;
			size_t hi = lo + 2 * width < n ? lo + 2 * width : n;
			size_t i = lo, j = mid, k = lo;
			while (i < mid && j < hi)
				b[k++] = a[j].arrival_ns < a[i].arrival_ns ? a[j++] : a[i++];
			while (i < mid)
				b[k++] = a[i++];
			while (j < hi)
				b[k++] = a[j++];
		}
		thoth_pm_job_t *x = a;
		a = b;
		b = x;
	}
	if (a != t->jobs) {
		memcpy(t->jobs, a, n * sizeof(*a));
		b = a;
	}
	free(b);
	return 0;
}

/* The end of a trace: its last request served at full speed, plus a little
 * idle time so that every policy ends the same way. */
static void finish(thoth_pm_trace_t *t)
{
	uint64_t end = 0, busy_until = 0;
	for (size_t i = 0; i < t->count; i++) {
		uint64_t start = t->jobs[i].arrival_ns > busy_until ? t->jobs[i].arrival_ns : busy_until;
		busy_until = start + t->jobs[i].work_ns;
		if (busy_until > end)
			end = busy_until;
		/* the CPU optimum is computed up to the last deadline: every
		 * policy is charged over the same span */
		if (t->jobs[i].deadline_ns > end)
			end = t->jobs[i].deadline_ns;
		/* agreeable deadlines (earliest deadline = first come) */
		if (i && t->jobs[i].deadline_ns < t->jobs[i - 1].deadline_ns)
			t->jobs[i].deadline_ns = t->jobs[i - 1].deadline_ns;
	}
	if (t->end_ns < end + 1 * MS)
		t->end_ns = end + 1 * MS;
}

/* ---- synthetic ------------------------------------------------------------------------ */

/* splitmix64: small, seedable, good enough for workload shapes. */
static uint64_t next_random(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* uniform in (0, 1] */
static double uniform(uint64_t *s)
{
	return ((double)(next_random(s) >> 11) + 1.0) / 9007199254740992.0;
}

enum { K_PERIODIC, K_POISSON, K_BURSTY, K_PARETO, K_CHAIN, K_COUNT };
static const char *const kinds[K_COUNT] = { "periodic", "poisson", "bursty", "pareto", "chain" };

enum {
	P_DURATION, P_DEADLINE, P_SEED, P_WORK, P_JITTER_W, P_PERIOD, P_JITTER, P_GAP, P_BURST,
	P_BURST_GAP, P_XMIN, P_ALPHA, P_DEPTH, P_CLIENTS, P_COUNT
};
static const char *const keys[P_COUNT] = {
	"duration_ms", "deadline_us", "seed", "work_us", "work_jitter", "period_us", "jitter_us",
	"mean_gap_us", "burst", "burst_gap_us", "xmin_us", "alpha", "depth", "clients",
};
/* gap_us is bursty's in-burst spacing: an alias read into P_GAP */

/* *WHY of a refusal that names what the user wrote ("spec: unknown key
 * gap", not "spec: unknown key"): this thread's, valid until its next call. */
static _Thread_local char spec_why[160];

static const char *spec_refusal(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static const char *spec_refusal(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(spec_why, sizeof spec_why, fmt, ap);
	va_end(ap);
	return spec_why;
}

int thoth_pm_trace_generate(const char *spec, const char *name, thoth_pm_trace_t *out,
			    const char **why)
{
	double v[P_COUNT] = { 0 };
	bool set[P_COUNT] = { 0 };
	v[P_DURATION] = 10000;
	v[P_DEADLINE] = 10000;
	v[P_SEED] = 1;
	v[P_JITTER_W] = 0.2;
	v[P_CLIENTS] = 8;
	memset(out, 0, sizeof(*out));
	if (!spec) {
		*why = "spec: missing";
		return THOTH_E_INVAL;
	}
	char buf[512];
	if (strlen(spec) >= sizeof(buf)) {
		*why = "spec: longer than 511 bytes";
		return THOTH_E_INVAL;
	}
	strcpy(buf, spec);
	char *save = NULL;
	char *tok = strtok_r(buf, " \t", &save);
	int kind = -1;
	for (int k = 0; tok && k < K_COUNT; k++)
		if (strcmp(tok, kinds[k]) == 0)
			kind = k;
	if (kind < 0) {
		*why = "kind: expected periodic, poisson, bursty, pareto or chain";
		return THOTH_E_INVAL;
	}
	/* P_GAP as the user wrote it, or as docs/PM.md names it for the kind
	 * (bursty's in-burst spacing is gap_us): "bursty needs mean_gap_us"
	 * named a key the user had not written and the docs do not list. */
	const char *gap_key = kind == K_BURSTY ? "gap_us" : "mean_gap_us";
	while ((tok = strtok_r(NULL, " \t", &save))) {
		char *eq = strchr(tok, '=');
		if (!eq) {
			*why = spec_refusal("spec: \"%.40s\" is not key=value", tok);
			return THOTH_E_INVAL;
		}
		*eq = '\0';
		int key = -1;
		for (int k = 0; k < P_COUNT; k++)
			if (strcmp(tok, keys[k]) == 0)
				key = k;
		if (strcmp(tok, "gap_us") == 0)
			key = P_GAP;
		if (key == P_GAP)
			gap_key = strcmp(tok, "gap_us") == 0 ? "gap_us" : "mean_gap_us";
		if (key < 0) {
			*why = spec_refusal("spec: unknown key \"%.40s\" (sim.h lists the keys)", tok);
			return THOTH_E_INVAL;
		}
		char *end;
		errno = 0;
		double x = strtod(eq + 1, &end);
		if (end == eq + 1 || *end || errno || !isfinite(x) || x < 0 || x > 1e12) {
			*why = spec_refusal("spec: %s=%.40s is not a number in 0..1e12", tok, eq + 1);
			return THOTH_E_INVAL;
		}
		v[key] = x;
		set[key] = true;
	}
	static const int need[K_COUNT][4] = {
		[K_PERIODIC] = { P_PERIOD, P_WORK, -1, -1 },
		[K_POISSON] = { P_GAP, P_WORK, -1, -1 },
		[K_BURSTY] = { P_BURST, P_GAP, P_BURST_GAP, P_WORK },
		[K_PARETO] = { P_XMIN, P_ALPHA, P_WORK, -1 },
		[K_CHAIN] = { P_DEPTH, P_GAP, P_WORK, -1 },
	};
	for (int i = 0; i < 4; i++) {
		int k = need[kind][i];
		if (k >= 0 && (!set[k] || v[k] <= 0)) {
			*why = spec_refusal("spec: %s needs %s > 0%s", kinds[kind],
					    k == P_GAP ? gap_key : keys[k], set[k] ? "" : " (missing)");
			return THOTH_E_INVAL;
		}
	}
	/* Each range with the value given: "out of range (six rules)" left the
	 * user to find which of their keys broke which. */
	static const struct { int key; double lo, hi; const char *range; } ranges[] = {
		{ P_JITTER_W, 0, 1, "0..1" },
		{ P_DURATION, 1, 3600e3, "1..3600000" },
		{ P_DEPTH, 0, 1000, "at most 1000" },
		{ P_BURST, 0, 1e6, "at most 1e6" },
		{ P_DEADLINE, 1, 1e12, "at least 1" },
		{ P_CLIENTS, 1, 65536, "1..65536" },
	};
	for (size_t i = 0; i < sizeof ranges / sizeof ranges[0]; i++)
		if (v[ranges[i].key] < ranges[i].lo || v[ranges[i].key] > ranges[i].hi) {
			*why = spec_refusal("spec: %s=%g is out of range (%s)", keys[ranges[i].key],
					    v[ranges[i].key], ranges[i].range);
			return THOTH_E_INVAL;
		}
	if (kind == K_PARETO && v[P_ALPHA] <= 1.0) {
		*why = spec_refusal("spec: alpha=%g is out of range (above 1: a finite mean gap)", v[P_ALPHA]);
		return THOTH_E_INVAL;
	}

	out->timer_driven = kind == K_PERIODIC && v[P_JITTER] == 0;
	out->end_ns = (uint64_t)(v[P_DURATION] * MS);
	snprintf(out->name, sizeof(out->name), "%s", name ? name : kinds[kind]);
	snprintf(out->origin, sizeof(out->origin), "synthetic: %s", spec);
	builder_t b = { out, 0 };
	uint64_t rng = (uint64_t)v[P_SEED] * 0x2545f4914f6cdd1dull + 1;
	double t = 0, end = v[P_DURATION] * 1000.0; /* us */
	uint64_t deadline = (uint64_t)(v[P_DEADLINE] * US);
	int err = 0;
	uint32_t clients = (uint32_t)v[P_CLIENTS];
	for (uint64_t group = 0; !err; group++) {
		int n = 1;
		double gap;
		switch (kind) {
		case K_PERIODIC:
			gap = v[P_PERIOD];
			break;
		case K_POISSON:
			gap = -log(uniform(&rng)) * v[P_GAP];
			break;
		case K_BURSTY:
			n = (int)v[P_BURST];
			gap = -log(uniform(&rng)) * v[P_BURST_GAP];
			break;
		case K_PARETO:
			gap = v[P_XMIN] / pow(uniform(&rng), 1.0 / v[P_ALPHA]);
			break;
		case K_CHAIN:
		default:
			n = (int)v[P_DEPTH];
			gap = -log(uniform(&rng)) * v[P_GAP];
			break;
		}
		t += gap;
		double at = t + (v[P_JITTER] > 0 ? uniform(&rng) * v[P_JITTER] : 0);
		for (int i = 0; i < n && at < end && !err; i++) {
			double w = v[P_WORK] * (1 + v[P_JITTER_W] * (2 * uniform(&rng) - 1));
			uint64_t a = (uint64_t)(at * US), wn = (uint64_t)(w * US);
			err = push_from(&b, a, wn ? wn : 1, a + deadline,
					(uint32_t)(group % clients) + 1);
			/* bursts: GAP apart; chains: the next step when this one
			 * would be answered at full speed, plus 20 us */
			at += kind == K_BURSTY ? v[P_GAP] : w + 20;
		}
		if (at >= end || t >= end)
			break;
	}
	if (!err)
		err = sort_by_arrival(out);     /* overlapping chains and bursts */
	if (err) {
		*why = err == THOTH_E_LIMIT ? "spec: more than 1e6 requests" : "out of memory";
		thoth_pm_trace_free(out);
		return err;
	}
	finish(out);
	return 0;
}

/* ---- recorded: errors ------------------------------------------------------------------ */

/* ---- recorded: the text list ------------------------------------------------------------- */

static int parse_text(const char *buf, size_t len, uint64_t deadline_ns, thoth_pm_trace_t *out,
		      char *why, size_t why_len)
{
	builder_t b = { out, 0 };
	size_t line = 0;
	uint64_t last = 0;
	for (size_t pos = 0; pos < len;) {
		size_t eol = pos;
		while (eol < len && buf[eol] != '\n')
			eol++;
		line++;
		char text[128];
		size_t n = eol - pos;
		if (n >= sizeof(text))
			return thoth__pm_fail(why, why_len, THOTH_E_INVAL, "line %zu: longer than 127 bytes", line);
		memcpy(text, buf + pos, n);
		text[n] = '\0';
		pos = eol + 1;
		if (strstr(text, "timer-driven") && text[0] == '#')
			out->timer_driven = true;
		if (strncmp(text, "# recorded:", 11) == 0 && !out->origin[0])
			snprintf(out->origin, sizeof(out->origin), "%s", text + 2);
		if (text[0] == '#' || strspn(text, " \t\r") == n)
			continue;
		double f[3] = { 0, 0, 0 };
		int got = 0;
		char *p = text, *end;
		while (got < 3) {
			while (*p == ' ' || *p == '\t')
				p++;
			if (!*p || *p == '\r')
				break;
			errno = 0;
			f[got] = strtod(p, &end);
			if (end == p || errno || !isfinite(f[got]) || f[got] < 0 ||
			    f[got] > THOTH_PM_TRACE_MAX_NS / US)
				return thoth__pm_fail(why, why_len, THOTH_E_INVAL,
					    "line %zu: field %d is not a number of us in 0..3600e6",
					    line, got + 1);
			p = end;
			got++;
		}
		while (*p == ' ' || *p == '\t' || *p == '\r')
			p++;
		if (got < 2 || *p)
			return thoth__pm_fail(why, why_len, THOTH_E_INVAL,
				    "line %zu: expected \"arrival_us work_us [deadline_us]\"", line);
		uint64_t a = (uint64_t)(f[0] * US), w = (uint64_t)(f[1] * US);
		if (a < last)
			return thoth__pm_fail(why, why_len, THOTH_E_INVAL,
				    "line %zu: arrival before the previous one", line);
		last = a;
		uint64_t d = got == 3 ? (uint64_t)(f[2] * US) : deadline_ns;
		int err = push(&b, a, w ? w : 1, a + d);
		if (err)
			return thoth__pm_fail(why, why_len, err, "line %zu: more than %u requests", line,
				    THOTH_PM_TRACE_MAX_JOBS);
	}
	return 0;
}

/* ---- recorded: Chrome JSON from thothctl trace ------------------------------------------ */

/* One message event of the exporter's format (export_json.c writes one
 * object per line: "ph","ts","pid","tid", then "name", "args"). */
typedef struct msg_event {
	uint64_t ts_ns;
	uint32_t pid, tid, service_id;
	bool recv;
} msg_event_t;

/* The value after "KEY": within LINE[0..n), copied into OUT (bounded). */
static bool field(const char *line, size_t n, const char *key, char *out, size_t out_len)
{
	size_t klen = strlen(key);
	for (size_t i = 0; i + klen < n; i++) {
		if (memcmp(line + i, key, klen) != 0)
			continue;
		size_t j = i + klen, k = 0;
		while (j < n && k + 1 < out_len && line[j] != ',' && line[j] != '}')
			out[k++] = line[j++];
		out[k] = '\0';
		return true;
	}
	return false;
}

static bool number(const char *s, double max, double *out)
{
	char *end;
	errno = 0;
	double x = strtod(s, &end);
	if (end == s || errno || !isfinite(x) || x < 0 || x > max)
		return false;
	*out = x;
	return true;
}

static int cmp_event(const void *a, const void *b)
{
	const msg_event_t *x = a, *y = b;
	return x->ts_ns < y->ts_ns ? -1 : x->ts_ns > y->ts_ns;
}

#define MAX_THREADS 64
#define MAX_OPEN 256

static int pair_events(msg_event_t *ev, size_t count, uint64_t deadline_ns, uint32_t want_pid,
		       const char *what, thoth_pm_trace_t *out, char *why, size_t why_len);

static int parse_json(const char *buf, size_t len, uint64_t deadline_ns, uint32_t want_pid,
		      thoth_pm_trace_t *out, char *why, size_t why_len)
{
	msg_event_t *ev = NULL;
	size_t count = 0, cap = 0, line = 0;
	int err = 0;
	for (size_t pos = 0; pos < len && !err;) {
		size_t eol = pos;
		while (eol < len && buf[eol] != '\n')
			eol++;
		const char *l = buf + pos;
		size_t n = eol - pos;
		pos = eol + 1;
		line++;
		char v[40];
		/* message events: complete ("X", older exporters) or instant
		 * ("i", what `thothctl trace dump --json` writes now) */
		if (!field(l, n, "\"ph\":", v, sizeof(v)) ||
		    (strcmp(v, "\"X\"") != 0 && strcmp(v, "\"i\"") != 0))
			continue;
		bool recv;
		if (field(l, n, "\"name\":", v, sizeof(v)) &&
		    (strcmp(v, "\"chan_recv\"") == 0 || strcmp(v, "\"msg_recv\"") == 0))
			recv = true;
		else if (field(l, n, "\"name\":", v, sizeof(v)) &&
			 (strcmp(v, "\"chan_send\"") == 0 || strcmp(v, "\"msg_send\"") == 0))
			recv = false;
		else
			continue;
		double ts, pid, tid, svc;
		if (!field(l, n, "\"ts\":", v, sizeof(v)) || !number(v, 1e13, &ts) ||
		    !field(l, n, "\"pid\":", v, sizeof(v)) || !number(v, UINT32_MAX, &pid) ||
		    !field(l, n, "\"tid\":", v, sizeof(v)) || !number(v, UINT32_MAX, &tid) ||
		    !field(l, n, "\"service_id\":", v, sizeof(v)) || !number(v, UINT32_MAX, &svc)) {
			err = thoth__pm_fail(why, why_len, THOTH_E_INVAL,
				   "line %zu: a message event without a valid ts, pid, tid or "
				   "service_id", line);
			break;
		}
		if (count == cap) {
			size_t ncap = cap ? cap * 2 : 1024;
			if (ncap > 4 * (size_t)THOTH_PM_TRACE_MAX_JOBS) {
				err = thoth__pm_fail(why, why_len, THOTH_E_LIMIT, "line %zu: too many events", line);
				break;
			}
			msg_event_t *grown = realloc(ev, ncap * sizeof(*ev));
			if (!grown) {
				err = thoth__pm_fail(why, why_len, THOTH_E_NOMEM, "out of memory");
				break;
			}
			ev = grown;
			cap = ncap;
		}
		ev[count++] = (msg_event_t){ (uint64_t)(ts * 1000.0), (uint32_t)pid, (uint32_t)tid,
					     (uint32_t)svc, recv };
	}
	if (err) {
		free(ev);
		return err;
	}
	return pair_events(ev, count, deadline_ns, want_pid, "thothctl trace", out, why, why_len);
}

/* Pair the message events EV[COUNT] (freed here) into jobs: a receive in
 * the serving process is a request, its send on the same thread the
 * response. */
static int pair_events(msg_event_t *ev, size_t count, uint64_t deadline_ns, uint32_t want_pid,
		       const char *what, thoth_pm_trace_t *out, char *why, size_t why_len)
{
	int err = 0;
	/* The serving process: a receive in the process the message is for is
	 * a request; its send on the same thread is the response. */
	uint32_t pid = want_pid;
	if (!pid) {
		/* the process with the most requests (among the first 64 seen) */
		struct pid_count { uint32_t pid; size_t n; } seen[64];
		size_t nseen = 0, best = 0;
		for (size_t i = 0; i < count; i++) {
			if (!ev[i].recv || ev[i].pid != ev[i].service_id)
				continue;
			size_t k = 0;
			while (k < nseen && seen[k].pid != ev[i].pid)
				k++;
			if (k == nseen) {
				if (nseen == 64)
					continue;
				seen[nseen++] = (struct pid_count){ ev[i].pid, 0 };
			}
			if (++seen[k].n > best) {
				best = seen[k].n;
				pid = seen[k].pid;
			}
		}
	}
	if (count)
		qsort(ev, count, sizeof(*ev), cmp_event);
	/* Pair per thread, oldest open request first. */
	struct open { uint32_t tid; size_t n; uint64_t ts[MAX_OPEN]; } *open = calloc(MAX_THREADS, sizeof(*open));
	if (!open) {
		free(ev);
		return thoth__pm_fail(why, why_len, THOTH_E_NOMEM, "out of memory");
	}
	size_t threads = 0;
	builder_t b = { out, 0 };
	for (size_t i = 0; i < count && !err; i++) {
		if (ev[i].pid != pid || ev[i].service_id != pid)
			continue;
		size_t t = 0;
		while (t < threads && open[t].tid != ev[i].tid)
			t++;
		if (t == threads) {
			if (threads == MAX_THREADS)
				continue; /* more serving threads than we pair: skipped */
			open[threads++].tid = ev[i].tid;
		}
		if (ev[i].recv) {
			if (open[t].n < MAX_OPEN)
				open[t].ts[open[t].n++] = ev[i].ts_ns;
		} else if (open[t].n) {
			uint64_t start = open[t].ts[0];
			memmove(open[t].ts, open[t].ts + 1, --open[t].n * sizeof(open[t].ts[0]));
			uint64_t w = ev[i].ts_ns - start;
			err = push(&b, start, w ? w : 1, start + deadline_ns);
		}
	}
	free(open);
	free(ev);
	if (err)
		return thoth__pm_fail(why, why_len, err, "too many requests");
	if (!out->count)
		return thoth__pm_fail(why, why_len, THOTH_E_INVAL,
			    "no request/response pairs found (a trace with chan_recv/chan_send or "
			    "msg_recv/msg_send events of a serving process is needed)");
	/* Jobs were pushed in response order: sort by arrival, then start at 0. */
	if (sort_by_arrival(out))
		return thoth__pm_fail(why, why_len, THOTH_E_NOMEM, "out of memory");
	uint64_t base = out->jobs[0].arrival_ns;
	for (size_t i = 0; i < out->count; i++) {
		out->jobs[i].arrival_ns -= base;
		out->jobs[i].deadline_ns -= base;
	}
	snprintf(out->origin, sizeof(out->origin), "recorded: %s (pid %u)", what, pid);
	return 0;
}

static int complete(thoth_pm_trace_t *out, int err, char *why, size_t why_len);

int thoth_pm_trace_parse(const char *buf, size_t len, uint64_t deadline_ns, uint32_t pid,
			 thoth_pm_trace_t *out, char *why, size_t why_len)
{
	memset(out, 0, sizeof(*out));
	if (!buf || !deadline_ns || deadline_ns > THOTH_PM_TRACE_MAX_NS)
		return thoth__pm_fail(why, why_len, THOTH_E_INVAL, "deadline: must be 1 ns .. 1 h");
	size_t i = 0;
	while (i < len && (buf[i] == ' ' || buf[i] == '\n' || buf[i] == '\t' || buf[i] == '\r'))
		i++;
	int err = i < len && buf[i] == '{'
			  ? parse_json(buf, len, deadline_ns, pid, out, why, why_len)
			  : parse_text(buf, len, deadline_ns, out, why, why_len);
	return complete(out, err, why, why_len);
}

/* What every recorded trace passes before it is used. */
static int complete(thoth_pm_trace_t *out, int err, char *why, size_t why_len)
{
	if (!err && !out->count)
		err = thoth__pm_fail(why, why_len, THOTH_E_INVAL, "the trace has no requests");
	if (!err && out->jobs[out->count - 1].arrival_ns > THOTH_PM_TRACE_MAX_NS)
		err = thoth__pm_fail(why, why_len, THOTH_E_INVAL, "the trace is longer than an hour");
	if (err) {
		thoth_pm_trace_free(out);
		return err;
	}
	snprintf(out->name, sizeof(out->name), "recorded");
	if (!out->origin[0])
		snprintf(out->origin, sizeof(out->origin), "recorded: text list");
	finish(out);
	return 0;
}

/* ---- recorded: CTF from `thothctl trace dump --ctf DIR` -------------------------------- */

/* The layout export_ctf.c writes (docs/OBSERVABILITY.md "Exporters"):
 * DIR/metadata (TSDL: one "event { name = "X"; id = N; ...}" per name) and
 * one stream file per thread: a 48-byte packet header and context (magic,
 * stream id, first and last timestamp, content and packet size in bits,
 * pid, tid), then 58-byte events (id u32, timestamp u64, cpu u16,
 * category u8, flags u8, service_id u32, interface_id u32, method u16,
 * request_id u32, payload_size u32, trace_id u64, arg0 u64, arg1 u64),
 * little endian, byte aligned. */
#define CTF_MAGIC 0xC1FC1FC1u
#define CTF_HEAD 48u
#define CTF_EVENT 58u

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t le64(const uint8_t *p)
{
	return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32;
}

/* The ids of the message events named in METADATA: IDS[0..3] for
 * chan_recv, msg_recv, chan_send, msg_send (UINT32_MAX if absent). */
static void ctf_message_ids(const char *meta, size_t len, uint32_t ids[4])
{
	static const char *const names[4] = { "\"chan_recv\"", "\"msg_recv\"", "\"chan_send\"",
					      "\"msg_send\"" };
	for (int k = 0; k < 4; k++)
		ids[k] = UINT32_MAX;
	for (size_t pos = 0; pos < len;) {
		size_t eol = pos;
		while (eol < len && meta[eol] != '\n')
			eol++;
		char line[128];
		size_t n = eol - pos < sizeof line - 1 ? eol - pos : sizeof line - 1;
		memcpy(line, meta + pos, n);
		line[n] = '\0';
		pos = eol + 1;
		const char *name = strstr(line, "name = ");
		for (int k = 0; name && k < 4; k++) {
			if (strncmp(name + 7, names[k], strlen(names[k])) != 0)
				continue;
			/* "id = N;" follows on the next line */
			const char *id = NULL;
			if (pos < len) {
				size_t e2 = pos;
				while (e2 < len && meta[e2] != '\n')
					e2++;
				char next[64];
				size_t m = e2 - pos < sizeof next - 1 ? e2 - pos : sizeof next - 1;
				memcpy(next, meta + pos, m);
				next[m] = '\0';
				id = strstr(next, "id = ");
				if (id) {
					char *end;
					unsigned long v = strtoul(id + 5, &end, 10);
					if (end != id + 5 && *end == ';' && v < UINT32_MAX)
						ids[k] = (uint32_t)v;
				}
			}
		}
	}
}

int thoth_pm_trace_parse_ctf(const char *meta, size_t meta_len, const uint8_t *const *streams,
			     const size_t *lens, size_t n_streams, uint64_t deadline_ns, uint32_t pid,
			     thoth_pm_trace_t *out, char *why, size_t why_len)
{
	memset(out, 0, sizeof(*out));
	if (!meta || (n_streams && (!streams || !lens)) || !deadline_ns ||
	    deadline_ns > THOTH_PM_TRACE_MAX_NS)
		return thoth__pm_fail(why, why_len, THOTH_E_INVAL, "ctf: bad arguments");
	if (meta_len < 10 || memcmp(meta, "/* CTF 1.8", 10) != 0)
		return thoth__pm_fail(why, why_len, THOTH_E_INVAL, "ctf metadata: not CTF 1.8 TSDL from thothctl");
	uint32_t ids[4];
	ctf_message_ids(meta, meta_len, ids);
	msg_event_t *ev = NULL;
	size_t count = 0, cap = 0;
	int err = 0;
	for (size_t s = 0; s < n_streams && !err; s++) {
		const uint8_t *p = streams[s];
		size_t len = lens[s];
		if (len < CTF_HEAD || le32(p) != CTF_MAGIC || (len - CTF_HEAD) % CTF_EVENT ||
		    le64(p + 24) != (uint64_t)len * 8 || le64(p + 32) != (uint64_t)len * 8) {
			err = thoth__pm_fail(why, why_len, THOTH_E_INVAL,
				   "ctf stream %zu: bad packet header (magic, sizes or a partial event)", s);
			break;
		}
		uint32_t spid = le32(p + 40), stid = le32(p + 44);
		for (size_t off = CTF_HEAD; off < len; off += CTF_EVENT) {
			const uint8_t *e = p + off;
			uint32_t id = le32(e);
			int k = 0;
			while (k < 4 && ids[k] != id)
				k++;
			if (k == 4)
				continue;
			uint64_t ts = le64(e + 4);
			if (ts > (uint64_t)1e16) {
				err = thoth__pm_fail(why, why_len, THOTH_E_INVAL,
					   "ctf stream %zu: event at byte %zu: timestamp out of range", s, off);
				break;
			}
			if (count == cap) {
				size_t ncap = cap ? cap * 2 : 1024;
				msg_event_t *grown = ncap > 4 * (size_t)THOTH_PM_TRACE_MAX_JOBS
							     ? NULL : realloc(ev, ncap * sizeof(*ev));
				if (!grown) {
					err = thoth__pm_fail(why, why_len, THOTH_E_LIMIT, "ctf: too many events");
					break;
				}
				ev = grown;
				cap = ncap;
			}
			ev[count++] = (msg_event_t){ ts, spid, stid, le32(e + 16), k < 2 };
		}
	}
	if (err) {
		free(ev);
		return err;
	}
	err = pair_events(ev, count, deadline_ns, pid, "thothctl trace, CTF", out, why, why_len);
	return complete(out, err, why, why_len);
}

/* Read FILE whole (at most 256 MiB) into *BUF. */
static int slurp(const char *path, char **buf_out, size_t *len_out, char *why, size_t why_len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return thoth__pm_fail(why, why_len, THOTH_E_IO, "%s: %s", path, strerror(errno));
	char *buf = NULL;
	size_t len = 0, cap = 0;
	int err = 0;
	for (;;) {
		if (len == cap) {
			cap = cap ? cap * 2 : 65536;
			if (cap > (256u << 20)) {
				err = thoth__pm_fail(why, why_len, THOTH_E_LIMIT, "%s: larger than 256 MiB", path);
				break;
			}
			char *grown = realloc(buf, cap);
			if (!grown) {
				err = thoth__pm_fail(why, why_len, THOTH_E_NOMEM, "out of memory");
				break;
			}
			buf = grown;
		}
		size_t n = fread(buf + len, 1, cap - len, f);
		len += n;
		if (n == 0) {
			if (ferror(f))
				err = thoth__pm_fail(why, why_len, THOTH_E_IO, "%s: read error", path);
			break;
		}
	}
	fclose(f);
	if (err) {
		free(buf);
		return err;
	}
	*buf_out = buf;
	*len_out = len;
	return 0;
}

#define CTF_MAX_STREAMS 1024

static int load_ctf_dir(const char *dir, uint64_t deadline_ns, uint32_t pid, thoth_pm_trace_t *out,
			char *why, size_t why_len)
{
	char path[4096];
	char *meta = NULL;
	size_t meta_len = 0;
	snprintf(path, sizeof path, "%s/metadata", dir);
	int err = slurp(path, &meta, &meta_len, why, why_len);
	if (err)
		return err;
	uint8_t **streams = calloc(CTF_MAX_STREAMS, sizeof(*streams));
	size_t *lens = calloc(CTF_MAX_STREAMS, sizeof(*lens));
	size_t n = 0;
	DIR *d = opendir(dir);
	if (!streams || !lens || !d) {
		err = d ? thoth__pm_fail(why, why_len, THOTH_E_NOMEM, "out of memory")
			: thoth__pm_fail(why, why_len, THOTH_E_IO, "%s: %s", dir, strerror(errno));
		goto out;
	}
	struct dirent *e;
	while (!err && (e = readdir(d))) {
		if (strncmp(e->d_name, "stream_", 7) != 0)
			continue;
		if (n == CTF_MAX_STREAMS) {
			err = thoth__pm_fail(why, why_len, THOTH_E_LIMIT, "%s: more than %d streams", dir,
				   CTF_MAX_STREAMS);
			break;
		}
		snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
		err = slurp(path, (char **)&streams[n], &lens[n], why, why_len);
		if (!err)
			n++;
	}
	if (!err)
		err = thoth_pm_trace_parse_ctf(meta, meta_len, (const uint8_t *const *)streams, lens, n,
					       deadline_ns, pid, out, why, why_len);
out:
	if (d)
		closedir(d);
	for (size_t i = 0; streams && i < n; i++)
		free(streams[i]);
	free(streams);
	free(lens);
	free(meta);
	return err;
}

int thoth_pm_trace_load(const char *path, uint64_t deadline_ns, uint32_t pid,
			thoth_pm_trace_t *out, char *why, size_t why_len)
{
	memset(out, 0, sizeof(*out));
	struct stat st;
	int err;
	if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
		err = load_ctf_dir(path, deadline_ns, pid, out, why, why_len);
	} else {
		char *buf = NULL;
		size_t len = 0;
		err = slurp(path, &buf, &len, why, why_len);
		if (!err)
			err = thoth_pm_trace_parse(buf, len, deadline_ns, pid, out, why, why_len);
		free(buf);
	}
	if (!err) {
		const char *base = strrchr(path, '/');
		snprintf(out->name, sizeof(out->name), "%s", base ? base + 1 : path);
	}
	return err;
}
