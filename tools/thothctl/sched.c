/*
 * sched.c - `thothctl sched`: why and how often every thoth process wakes
 * up, from the loop's own trace points (loop_wakeup: reasons mask;
 * timer_fire: lateness and slack; docs/SCHED.md).
 *
 *   thothctl sched [--duration SECONDS] [--json]      collect now (thothd traces)
 *   thothctl sched --from TRACE.json [--json]         read a saved trace
 *
 * Per process: wake-ups per second by reason, timers fired, timers that
 * rode another timer's wake-up in the same process (coalesced locally), and
 * timer wake-ups that another process shared within 200 us (coalesced
 * across processes: the CPU woke once), timer wake-ups rung by another
 * process's loop (the window page), spin hits / misses / skips of its
 * channel waits (chan_spin), and every placement move with its reason
 * (place_move).  Counts cover the collection window.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "thoth/loop.h"
#include "thothctl.h"

#define SHARE_NS 200000u        /* wake-ups of two processes this close: one CPU wake-up */
/* Rows kept, one per distinct pid (~240 bytes each, and a lateness list
 * from its first timer_fire): a trace of 1,000,000 pids took 238 MB
 * (cli47).  The events of every pid first seen after the first
 * SCHED_MAX_PROCS are counted in one "other" row, said as such: the
 * report of the rest stays whole, and the rows take ~16 MB at most; what
 * stays linear is in the events (a lateness per timer_fire, 16 bytes per
 * timer wake-up): 1,000,000 pids with one event each took 41-63 MB.  A
 * host's thoth processes are far fewer. */
#define SCHED_MAX_PROCS 65536u

typedef struct proc {
	uint32_t pid;
	char name[64];
	uint64_t wakeups, by_reason[4];     /* fd, timer, signal, deferred */
	uint64_t timer_fires, timer_wakeups, shared_timer_wakeups, rung_wakeups;
	uint64_t late_sum_ns;
	uint64_t *late;                     /* every timer_fire's lateness (ns), for p50/p99 */
	size_t nlate, caplate;
	uint64_t spin[3];                   /* hits, misses, skips */
	uint64_t moves;
	bool other;                         /* the row of the pids past SCHED_MAX_PROCS */
} proc_t;

typedef struct move {
	uint64_t ts;
	uint32_t pid;
	uint64_t tid;
	unsigned action, reason;
	int cpu;
	bool failed;
} move_t;

typedef struct twake {
	uint64_t ts;
	uint32_t pid;
	bool shared;
} twake_t;

typedef struct sched_report {
	proc_t *procs;
	size_t n, cap;
	twake_t *tw;
	size_t ntw, captw;
	move_t *mv;
	size_t nmv, capmv;
	uint64_t first_ns, last_ns;
	size_t bad_line;                    /* read_trace's -4: the line and key */
	const char *bad_key;
	uint32_t *slot;                     /* pid -> index + 1 (0: empty), open addressing */
	size_t nslot;                       /* a power of two, more than twice n; 0: none yet */
	proc_t *other;                      /* pids past SCHED_MAX_PROCS: one row (NULL: none) */
	uint64_t other_events;              /* the events counted in it */
} sched_report_t;

/* The slot of PID, or the empty one where it goes.  The table keeps the
 * low bits of a mixed pid: the low bits of pid * 2654435761 are those of
 * pid times an odd number, so pids that are multiples of 2^16 (a hostile or
 * synthetic trace) all fell on a few slots and each insertion walked one
 * long run: quadratic again (hostile46 review).  murmur3's finaliser mixes
 * every bit of the pid into the low ones. */
static size_t pid_slot(const sched_report_t *r, uint32_t pid)
{
	uint32_t h = pid;
	h ^= h >> 16;
	h *= 0x85ebca6bu;
	h ^= h >> 13;
	h *= 0xc2b2ae35u;
	h ^= h >> 16;
	size_t i = h & (r->nslot - 1);
	while (r->slot[i] && r->procs[r->slot[i] - 1].pid != pid)
		i = (i + 1) & (r->nslot - 1);
	return i;
}

/* The process PID's row, made on first sight (NULL: out of memory).  Found
 * through a hash: a linear search per event made a trace of 100,000
 * processes (one event each) take 59 s at load 12 (hostile46). */
static proc_t *proc_of(sched_report_t *r, uint32_t pid)
{
	if (r->nslot) {
		size_t i = pid_slot(r, pid);
		if (r->slot[i])
			return &r->procs[r->slot[i] - 1];
	}
	if (r->n >= SCHED_MAX_PROCS) {
		/* full: every pid not in it is "other" from its first sight on,
		 * so a pid's events all go to one row */
		if (!r->other && (r->other = calloc(1, sizeof *r->other)) != NULL) {
			r->other->other = true;
			snprintf(r->other->name, sizeof r->other->name, "(other pids)");
		}
		return r->other;
	}
	if (r->n == r->cap) {
		size_t cap = r->cap ? 2 * r->cap : 16;
		proc_t *p = realloc(r->procs, cap * sizeof *p);
		if (!p)
			return NULL;
		r->procs = p;
		r->cap = cap;
	}
	if (2 * (r->n + 1) >= r->nslot) {
		size_t ns = r->nslot ? 2 * r->nslot : 64;
		uint32_t *sl = calloc(ns, sizeof *sl);
		if (!sl)
			return NULL;
		uint32_t *old = r->slot;
		r->slot = sl;
		r->nslot = ns;
		for (size_t k = 0; k < r->n; k++)
			r->slot[pid_slot(r, r->procs[k].pid)] = (uint32_t)k + 1;
		free(old);
	}
	r->slot[pid_slot(r, pid)] = (uint32_t)r->n + 1;
	proc_t *p = &r->procs[r->n++];
	memset(p, 0, sizeof *p);
	p->pid = pid;
	snprintf(p->name, sizeof p->name, "pid %u", pid);
	return p;
}

/* The number after "KEY": in LINE in *V (0 when absent); false when it is
 * not a JSON number from 0 to MAX.  strtod alone took "0x10", "inf" and
 * "-1", and converting "1e300" or "-1" to an integer type is undefined
 * behaviour (hostile46): the range is checked here, in double, before any
 * caller converts. */
static bool num_after(const char *line, const char *key, double max, double *v)
{
	*v = 0;
	const char *p = strstr(line, key);
	if (!p)
		return true;
	p += strlen(key);
	/* JSON's number: -?digits[.digits][e[+-]digits]; no hex, inf or nan */
	size_t n = strspn(p, "-0123456789.eE+");
	if (n == 0 || n >= 64 || (p[n] && !strchr(",}] \t\r\n", p[n])))    /* "0x10": not "0" */
		return false;
	char buf[64], *end;
	memcpy(buf, p, n);
	buf[n] = 0;
	errno = 0;
	double x = strtod(buf, &end);
	if (*end || end == buf || errno == ERANGE || !(x >= 0) || !(x <= max))
		return false;
	*v = x;
	return true;
}

/* The four hex digits at P (no sign, no space, no "0x": sscanf's %4x
 * takes all three) in *CP; false if P does not begin with four. */
static bool hex4(const char *p, unsigned *cp)
{
	unsigned v = 0;
	for (int i = 0; i < 4; i++) {
		char c = p[i];          /* a NUL stops it before the next read */
		unsigned d = c >= '0' && c <= '9' ? (unsigned)(c - '0')
			   : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10)
			   : c >= 'A' && c <= 'F' ? (unsigned)(c - 'A' + 10) : 16u;
		if (d > 15)
			return false;
		v = v << 4 | d;
	}
	*cp = v;
	return true;
}

static bool str_after(const char *line, const char *key, char *out, size_t len)
{
	const char *p = strstr(line, key);
	if (!p)
		return false;
	p += strlen(key);
	/* a JSON string: its escapes undone (a process name with ESC is
	 * "\u001b" in the trace, a backslash "\\": shown as they were, the
	 * text writer made them "\\u001b" and "\\\\"); cut at LEN - 1
	 * bytes, never inside a character */
	size_t n = 0;
	while (*p && *p != '"') {
		char ch[4];
		size_t k = 1;
		ch[0] = *p++;
		if (ch[0] == '\\' && *p) {
			char e = *p++;
			ch[0] = e == 'b' ? '\b' : e == 'f' ? '\f' : e == 'n' ? '\n' : e == 'r' ? '\r' : e == 't' ? '\t' : e;
			unsigned cp;
			if (e == 'u' && hex4(p, &cp)) {
				p += 4;
				unsigned lo;
				if (cp >= 0xd800 && cp < 0xdc00 && p[0] == '\\' && p[1] == 'u' && hex4(p + 2, &lo) &&
				    lo >= 0xdc00 && lo < 0xe000) {
					cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
					p += 6;
				} else if ((cp >= 0xd800 && cp < 0xe000) || cp == 0) {
					/* a lone surrogate; U+0000, which would end
					 * the name there and hide what follows */
					cp = 0xfffd;
				}
				if (cp < 0x80) {
					ch[0] = (char)cp;
				} else if (cp < 0x800) {
					ch[0] = (char)(0xc0 | cp >> 6);
					ch[1] = (char)(0x80 | (cp & 0x3f));
					k = 2;
				} else if (cp < 0x10000) {
					ch[0] = (char)(0xe0 | cp >> 12);
					ch[1] = (char)(0x80 | (cp >> 6 & 0x3f));
					ch[2] = (char)(0x80 | (cp & 0x3f));
					k = 3;
				} else {
					ch[0] = (char)(0xf0 | cp >> 18);
					ch[1] = (char)(0x80 | (cp >> 12 & 0x3f));
					ch[2] = (char)(0x80 | (cp >> 6 & 0x3f));
					ch[3] = (char)(0x80 | (cp & 0x3f));
					k = 4;
				}
			}
		}
		if (n + k > len - 1)
			break;
		memcpy(out + n, ch, k);
		n += k;
	}
	/* a raw multi-byte character the cut split: left out whole */
	n -= peertext_cut_tail(out, n);
	out[n] = 0;
	return true;
}

static int cmp_tw(const void *a, const void *b)
{
	const twake_t *x = a, *y = b;
	return x->ts < y->ts ? -1 : x->ts > y->ts;
}

/* Read a Chrome JSON trace as thothd writes it (one record per line).
 * -1: out of memory; -2: not such a trace (no "traceEvents" line: a wrong
 * file would otherwise read as a trace with no wake-up, and exit 0); -3:
 * cut short (no closing "]}" line: the same, for a truncated dump); -4: a
 * number out of range or not a JSON number (r->bad_line, r->bad_key). */
static int read_trace(FILE *f, sched_report_t *r)
{
	char *line = NULL;
	size_t cap = 0;
	bool is_trace = false, ended = false;
	size_t lineno = 0;
	while (getline(&line, &cap, f) > 0) {
		lineno++;
		if (!is_trace && !(is_trace = strstr(line, "\"traceEvents\":[") != NULL))
			continue;
		/* the writer's last line; blank lines after it (an editor's
		 * trailing newline) leave the trace ended */
		if (line[strspn(line, " \t\r\n")] == '\0')
			continue;
		ended = strncmp(line, "]}", 2) == 0;
		static const char meta[] = "{\"ph\":\"M\",\"name\":\"process_name\"";
		if (strncmp(line, meta, sizeof meta - 1) == 0) {
			double pid;
			if (!num_after(line, "\"pid\":", UINT32_MAX, &pid)) {
				r->bad_line = lineno;
				r->bad_key = "pid";
				free(line);
				return -4;
			}
			proc_t *p = proc_of(r, (uint32_t)pid);
			if (p && !p->other)
				str_after(line, "\"args\":{\"name\":\"", p->name, sizeof p->name);
			continue;
		}
		/* Instant events ("i", what thothd writes) and complete ones
		 * ("X", older dumps): both carry ts, pid, name and args. */
		if (strncmp(line, "{\"ph\":\"X\"", 9) != 0 && strncmp(line, "{\"ph\":\"i\"", 9) != 0)
			continue;
		char name[32];
		if (!str_after(line, "\"name\":\"", name, sizeof name))
			continue;
		bool wake = strcmp(name, "loop_wakeup") == 0, fire = strcmp(name, "timer_fire") == 0;
		bool spin = strcmp(name, "chan_spin") == 0, move = strcmp(name, "place_move") == 0;
		if (!wake && !fire && !spin && !move)
			continue;
		/* ts is in microseconds, kept in nanoseconds (below 2^64);
		 * the arguments are 64-bit, the pid 32-bit */
		/* 2^64: "18446744073709551615" (UINT64_MAX as thothd writes
		 * it) reads as 2^64 in double, taken as UINT64_MAX below */
		static const double U64_LIM = 18446744073709551616.0;
		static const struct {
			const char *key, *name;
			double max;
		} field[4] = { { "\"ts\":", "ts", 1.8e16 },   /* 570 years; * 1000 < 2^64 */
			       { "\"arg0\":", "arg0", U64_LIM },
			       { "\"arg1\":", "arg1", U64_LIM },
			       { "\"pid\":", "pid", UINT32_MAX } };
		double x[4];
		for (int k = 0; k < 4; k++)
			if (!num_after(line, field[k].key, field[k].max, &x[k])) {
				r->bad_line = lineno;
				r->bad_key = field[k].name;
				free(line);
				return -4;
			}
		uint64_t ts = (uint64_t)(x[0] * 1000.0 + 0.5);     /* 1.001 us is 1000.999.. ns: rounded, not cut */
		uint64_t arg0 = x[1] < U64_LIM ? (uint64_t)x[1] : UINT64_MAX;
		uint64_t arg1 = x[2] < U64_LIM ? (uint64_t)x[2] : UINT64_MAX;
		proc_t *p = proc_of(r, (uint32_t)x[3]);
		if (!p) {
			free(line);
			return -1;
		}
		r->other_events += p->other;
		if (!r->first_ns || ts < r->first_ns)
			r->first_ns = ts;
		if (ts > r->last_ns)
			r->last_ns = ts;
		if (fire) {
			p->timer_fires++;
			p->late_sum_ns += arg0;
			if (p->nlate == p->caplate) {
				size_t c = p->caplate ? 2 * p->caplate : 64;
				uint64_t *l = realloc(p->late, c * sizeof *l);
				if (!l) {
					free(line);
					return -1;
				}
				p->late = l;
				p->caplate = c;
			}
			p->late[p->nlate++] = arg0;
			continue;
		}
		if (spin) {
			if (arg0 < 3)
				p->spin[arg0]++;
			continue;
		}
		if (move) {
			p->moves++;
			if (r->nmv == r->capmv) {
				size_t c = r->capmv ? 2 * r->capmv : 16;
				move_t *m = realloc(r->mv, c * sizeof *m);
				if (!m) {
					free(line);
					return -1;
				}
				r->mv = m;
				r->capmv = c;
			}
			r->mv[r->nmv++] = (move_t){ .ts = ts, .pid = (uint32_t)x[3], .tid = arg0,
						    .action = (unsigned)(arg1 & 0xff),
						    .reason = (unsigned)((arg1 >> 8) & 0xff),
						    .cpu = (int)((arg1 >> 16) & 0xffff) - 1,
						    .failed = (arg1 >> 32) & 1 };
			continue;
		}
		p->wakeups++;
		if (arg0 & THOTH_LOOP_WAKE_RUNG)
			p->rung_wakeups++;
		for (int b = 0; b < 4; b++)
			p->by_reason[b] += (arg0 >> b) & 1;
		if (arg0 & THOTH_LOOP_WAKE_TIMER) {
			p->timer_wakeups++;
			if (r->ntw == r->captw) {
				size_t c = r->captw ? 2 * r->captw : 256;
				twake_t *t = realloc(r->tw, c * sizeof *t);
				if (!t) {
					free(line);
					return -1;
				}
				r->tw = t;
				r->captw = c;
			}
			r->tw[r->ntw++] = (twake_t){ .ts = ts, .pid = (uint32_t)x[3] };
		}
	}
	free(line);
	if (!is_trace)
		return -2;
	if (!ended)             /* cut short: it read as fewer wake-ups, exit 0 */
		return -3;
	/* Timer wake-ups of different processes within SHARE_NS: shared. */
	if (r->ntw)                     /* qsort(NULL, 0, ...) is undefined (UBSan) */
		qsort(r->tw, r->ntw, sizeof *r->tw, cmp_tw);
	/* A wake-up is shared when the nearest wake-up of another process
	 * on either side (in time order) is within SHARE_NS.  Every pair
	 * within SHARE_NS was compared: quadratic in a burst, 100,000
	 * wake-ups at one timestamp took 29 s at load 12 (hostile46). */
	for (size_t i = 0, other = SIZE_MAX; i < r->ntw; i++) {        /* the nearest before */
		if (i && r->tw[i - 1].pid != r->tw[i].pid)
			other = i - 1;  /* else i - 1's own nearest other is ours */
		if (other != SIZE_MAX && r->tw[i].ts - r->tw[other].ts <= SHARE_NS)
			r->tw[i].shared = true;
	}
	for (size_t i = r->ntw, other = SIZE_MAX; i-- > 0;) {           /* the nearest after */
		if (i + 1 < r->ntw && r->tw[i + 1].pid != r->tw[i].pid)
			other = i + 1;
		if (other != SIZE_MAX && r->tw[other].ts - r->tw[i].ts <= SHARE_NS)
			r->tw[i].shared = true;
	}
	for (size_t i = 0; i < r->ntw; i++)
		if (r->tw[i].shared)
			proc_of(r, r->tw[i].pid)->shared_timer_wakeups++;
	return 0;
}

static const char *action_name(unsigned a)
{
	return a == 1 ? "colocate" : a == 2 ? "spread" : a == 3 ? "apart" : "stay";
}

static const char *reason_name(unsigned r)
{
	switch (r) {
	case 1: return "sleeping synchronous low-rate pair: service follows its client";
	case 2: return "co-located round trip got slower";
	case 3: return "the pair needs more than the shared CPU";
	case 4: return "sleeping pair saturates the CPU the kernel keeps it on, another CPU idle: service moved apart";
	case 5: return "apart got slower or the client followed: back to its own CPUs";
	default: return "unknown";
	}
}

static void json_string(const char *s)
{
	putchar('"');
	for (const char *c = s; *c; c++) {
		if (*c == '"' || *c == '\\')
			putchar('\\');
		putchar((unsigned char)*c < 0x20 ? '?' : *c);
	}
	putchar('"');
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* Lateness percentile Q (nearest rank) in us; 0 with no fire.  Sorts. */
static double late_pct_us(proc_t *p, double q)
{
	if (!p->nlate)
		return 0;
	qsort(p->late, p->nlate, sizeof *p->late, cmp_u64);
	size_t rank = (size_t)(q * (double)p->nlate + 0.999999);
	if (rank < 1)
		rank = 1;
	if (rank > p->nlate)
		rank = p->nlate;
	return (double)p->late[rank - 1] / 1e3;
}

static uint64_t coalesced(const proc_t *p)
{
	return p->timer_fires > p->timer_wakeups ? p->timer_fires - p->timer_wakeups : 0;
}

static void print_report(sched_report_t *r, double seconds, bool json)
{
	if (seconds <= 0)
		seconds = r->last_ns > r->first_ns ? (double)(r->last_ns - r->first_ns) / 1e9 : 1;
	if (json) {
		/* One object on one line, like every thothctl --json. */
		printf("{\"seconds\":%.3f,\"processes_max\":%u,\"other_events\":%llu,\"processes\":[", seconds,
		       SCHED_MAX_PROCS, (unsigned long long)r->other_events);
		for (size_t i = 0; i < r->n + (r->other != NULL); i++) {
			proc_t *p = i < r->n ? &r->procs[i] : r->other;
			if (p->other)   /* not one process: no pid */
				printf("%s{\"pid\":null,\"other\":true,\"name\":", i ? "," : "");
			else
				printf("%s{\"pid\":%u,\"name\":", i ? "," : "", p->pid);
			json_string(p->name);
			printf(",\"wakeups_per_s\":%.3f,\"by_reason_per_s\":{\"fd\":%.3f,\"timer\":%.3f,"
			       "\"signal\":%.3f,\"deferred\":%.3f},\"timers_fired\":%llu,"
			       "\"timers_coalesced_locally\":%llu,\"timer_wakeups_shared_across_processes\":%llu,"
			       "\"timer_wakeups_rung\":%llu,\"timer_lateness_mean_us\":%.1f,\"timer_lateness_p50_us\":%.1f,"
			       "\"timer_lateness_p99_us\":%.1f,\"placement_moves\":%llu,"
			       "\"spin_hits\":%llu,\"spin_misses\":%llu,\"spin_skips\":%llu}",
			       p->wakeups / seconds, p->by_reason[0] / seconds, p->by_reason[1] / seconds,
			       p->by_reason[2] / seconds, p->by_reason[3] / seconds,
			       (unsigned long long)p->timer_fires, (unsigned long long)coalesced(p),
			       (unsigned long long)p->shared_timer_wakeups, (unsigned long long)p->rung_wakeups,
			       p->timer_fires ? p->late_sum_ns / 1e3 / (double)p->timer_fires : 0,
			       late_pct_us(p, 0.50), late_pct_us(p, 0.99),
			       (unsigned long long)p->moves, (unsigned long long)p->spin[0],
			       (unsigned long long)p->spin[1], (unsigned long long)p->spin[2]);
		}
		printf("],\"moves\":[");
		for (size_t i = 0; i < r->nmv; i++) {
			const move_t *m = &r->mv[i];
			printf("%s{\"ts_ns\":%llu,\"pid\":%u,\"tid\":%llu,\"action\":\"%s\",\"cpu\":%d,"
			       "\"reason\":\"%s\",\"failed\":%s}",
			       i ? "," : "", (unsigned long long)m->ts, m->pid, (unsigned long long)m->tid,
			       action_name(m->action), m->cpu, reason_name(m->reason), m->failed ? "true" : "false");
		}
		printf("]}\n");
		return;
	}
	printf("%-8s %-20s %9s %8s %8s %8s %8s %7s %9s %7s %6s %8s %8s %8s %6s %6s %6s %5s\n", "PID", "NAME", "WAKE/s",
	       "fd/s", "timer/s", "sig/s", "defer/s", "TIMERS", "COALESCED", "SHARED", "RUNG", "LATE_us", "LATE50",
	       "LATE99", "SPIN+", "SPIN-", "SKIP", "MOVES");
	for (size_t i = 0; i < r->n + (r->other != NULL); i++) {
		proc_t *p = i < r->n ? &r->procs[i] : r->other;
		/* the name cut at 20 columns, never inside a character or an escape */
		const char *name = peertext_textz(p->name);
		int cols;
		size_t cut = peertext_prefix(name, 20, &cols);
		char pid[16];
		snprintf(pid, sizeof pid, p->other ? "other" : "%u", p->pid);
		printf("%-8s %.*s%*s %9.2f %8.2f %8.2f %8.2f %8.2f %7llu %9llu %7llu %6llu %8.1f %8.1f %8.1f %6llu %6llu "
		       "%6llu %5llu\n",
		       pid, (int)cut, name, 20 - cols, "", p->wakeups / seconds, p->by_reason[0] / seconds, p->by_reason[1] / seconds,
		       p->by_reason[2] / seconds, p->by_reason[3] / seconds, (unsigned long long)p->timer_fires,
		       (unsigned long long)coalesced(p), (unsigned long long)p->shared_timer_wakeups,
		       (unsigned long long)p->rung_wakeups,
		       p->timer_fires ? p->late_sum_ns / 1e3 / (double)p->timer_fires : 0,
		       late_pct_us(p, 0.50), late_pct_us(p, 0.99),
		       (unsigned long long)p->spin[0], (unsigned long long)p->spin[1], (unsigned long long)p->spin[2],
		       (unsigned long long)p->moves);
	}
	for (size_t i = 0; i < r->nmv; i++) {
		const move_t *m = &r->mv[i];
		char where[32] = "";
		if (m->cpu >= 0)
			snprintf(where, sizeof where, " to CPU %d", m->cpu);
		printf("move: pid %u thread %llu %s%s: %s%s\n", m->pid, (unsigned long long)m->tid,
		       action_name(m->action), where, reason_name(m->reason), m->failed ? " (failed)" : "");
	}
	if (r->other)
		printf("other: %llu events of the pids first seen after the first %u, in one row "
		       "(thothctl sched keeps at most %u rows)\n",
		       (unsigned long long)r->other_events, SCHED_MAX_PROCS, SCHED_MAX_PROCS);
	printf("over %.2f s.  COALESCED: timers that rode another timer's wake-up in the same process;\n"
	       "SHARED: timer wake-ups another process had within 200 us (one CPU wake-up); RUNG: timer\n"
	       "wake-ups another process's loop rang (thothd's window page); SPIN+/SPIN-/SKIP: channel waits\n"
	       "that ended spinning / spun in vain / did not spin (peer on our CPU or asleep).\n",
	       seconds);
}

static int sched_usage(FILE *out, int status)
{
	fprintf(out, "usage: thothctl sched [--duration SECONDS] [--json]\n"
		     "       thothctl sched --from TRACE.json [--json]\n"
		     "Wake-ups per process and why, from the loop_wakeup and timer_fire trace\n"
		     "points (collected through thothd for SECONDS, default 5, or read from a\n"
		     "trace written by `thothctl trace dump --json`).\n");
	return status;
}

int thothctl_sched(int argc, char **argv, const thothctl_opts_t *opts)
{
	const char *runtime_dir = opts->runtime_dir;
	static const struct option options[] = {
		{ "duration", required_argument, NULL, 'd' },
		{ "from", required_argument, NULL, 'f' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	double duration = 5;
	const char *from = NULL;
	bool json = opts->json;
	int opt;
	optind = 1;
	opterr = 0;
	int li = -1;
	while ((opt = getopt_long(argc, argv, ":h", options, &li)) != -1) {
		const char *empty = thothctl_empty_option(options, &li);
		if (empty)
			return thothctl_empty_value("sched", empty, NULL);
		char *end;
		switch (opt) {
		case 'd':
			/* decimal only: strtod also took "0x1p3", and "1e-300"
			 * passed "> 0" to trace a session of no length */
			errno = 0;
			duration = strtod(optarg, &end);
			if (*end || !*optarg || optarg[strspn(optarg, "0123456789.eE+-")] || errno == ERANGE ||
			    !(duration >= 0.001) || duration > 86400) {
				fprintf(stderr, "thothctl: sched: --duration wants decimal seconds from 0.001 to "
					"86400, not %s\n", peertext_textz(optarg));
				return 2;
			}
			break;
		case 'f': from = optarg; break;
		case 'j': json = true; break;
		case 'h': return sched_usage(stdout, 0);
		default:
			return thothctl_usage_error("sched", opt == ':' ? "missing value for" : "unknown option",
						    thothctl_refused_word(argc, argv));
		}
	}
	if (optind < argc)
		return thothctl_usage_error("sched", "unexpected argument", argv[optind]);
	/* The session's trace goes to a file under $TMPDIR (/tmp when unset
	 * or empty), as mktemp(1) puts it: a literal /tmp ignored a TMPDIR
	 * set because /tmp is small, read-only or shared (hostile46). */
	char tmp[4096];
	const char *tdir = getenv("TMPDIR");
	if (!tdir || !*tdir)
		tdir = "/tmp";
	if ((size_t)snprintf(tmp, sizeof tmp, "%s/thothctl-sched-XXXXXX", tdir) >= sizeof tmp) {
		fprintf(stderr, "thothctl: sched: TMPDIR is longer than %zu bytes\n", sizeof tmp - 24);
		return 1;
	}
	const char *path = from;
	if (!from) {
		int fd = mkstemp(tmp);
		if (fd < 0) {
			fprintf(stderr, "thothctl: sched: cannot create a temporary file in %s (TMPDIR): %s\n",
				peertext_textz(tdir), strerror(errno));
			return 1;
		}
		close(fd);
		path = tmp;
		/* `thothctl trace --duration S --categories loop,timer --json TMP`,
		 * its own chatter kept off our output. */
		char secs[32];
		snprintf(secs, sizeof secs, "%g", duration);
		char *targv[] = { "trace", "--duration", secs, "--categories", "loop,timer", "--json", tmp, NULL };
		fflush(stdout);
		int saved = dup(1), null = open("/dev/null", O_WRONLY | O_CLOEXEC);
		if (saved >= 0 && null >= 0)
			dup2(null, 1);
		const thothctl_opts_t topts = { .runtime_dir = runtime_dir, .json = false };
		int st = thothctl_trace(7, targv, &topts);
		fflush(stdout);
		if (saved >= 0) {
			dup2(saved, 1);
			close(saved);
		}
		if (null >= 0)
			close(null);
		if (st) {
			unlink(tmp);
			return st;
		}
	}
	/* A --from file that cannot be used (missing, unreadable, a directory,
	 * not a trace) is exit 2, as in every thoth tool (thothctl(1), EXIT
	 * STATUS): the argument names something that is not there, nothing
	 * ran.  It was 1 here, 2 in probe; our own session's trace stays 1. */
	int bad_input = from ? 2 : 1;
	FILE *f = fopen(path, "re");
	if (!f) {
		fprintf(stderr, "thothctl: sched: cannot read %s: %s\n", peertext_textz(path), strerror(errno));
		if (!from)
			unlink(tmp);
		return bad_input;
	}
	struct stat st;
	if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
		fprintf(stderr, "thothctl: sched: %s is a directory, not a trace\n", peertext_textz(path));
		fclose(f);
		return bad_input;
	}
	sched_report_t r = { 0 };
	int rc = read_trace(f, &r);
	fclose(f);
	if (!from)
		unlink(tmp);
	if (rc == -2) {
		fprintf(stderr, "thothctl: sched: %s is not a Chrome JSON trace as `thothctl trace dump "
			"--json` writes it (no \"traceEvents\")\n", peertext_textz(path));
	} else if (rc == -3) {
		fprintf(stderr, "thothctl: sched: %s is cut short: it ends before the trace's closing \"]}\" "
			"(a dump that did not finish?)\n", peertext_textz(path));
	} else if (rc == -4) {
		fprintf(stderr, "thothctl: sched: %s line %zu: \"%s\" is not a number from 0 to %s\n", peertext_textz(path),
			r.bad_line, r.bad_key,
			strcmp(r.bad_key, "pid") == 0 ? "4294967295"
			: strcmp(r.bad_key, "ts") == 0 ? "1.8e16 (microseconds)" : "18446744073709551615");
	} else if (rc) {
		fprintf(stderr, "thothctl: sched: out of memory reading the trace\n");
	} else {
		print_report(&r, from ? 0 : duration, json);
	}
	for (size_t i = 0; i < r.n; i++)
		free(r.procs[i].late);
	if (r.other)
		free(r.other->late);
	free(r.other);
	free(r.procs);
	free(r.slot);
	free(r.tw);
	free(r.mv);
	return rc == -2 || rc == -3 || rc == -4 ? bad_input : rc ? 1 : 0;
}
