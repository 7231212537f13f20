/*
 * dvfs.c - the thoth governor on a live system (dvfs.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "backend.h"
#include "dvfs.h"
#include "thoth/error.h"

#define MAX_QUEUED 256
#define MAX_HOST_FREQS 64
#define MAX_THREADS 16

struct thoth_pm_dvfs {
	uint32_t cpu;
	const thoth_pm_cpu_model_t *model;
	thoth_pm_governor_t gov;
	thoth_pm_dvfs_backend_t backend;
	uint32_t host_khz[MAX_HOST_FREQS]; /* scaling_available_frequencies, sorted */
	uint32_t host_count;
	uint32_t current_khz;
	uint32_t written_opp;
	bool written;
	thoth_pm_pending_t queue[MAX_QUEUED];
	uint32_t queued;
	uint32_t announced;             /* queue's tail entries: requests seen waiting, not yet dispatched */
	bool not_head;                  /* the running time the next update reports was not queue[0]'s
					 * (thoth_pm_dvfs_update) */
	int tids[MAX_THREADS];          /* uclamp: the threads whose clamps carry the choice */
	uint32_t n_tids;
	char uclamp_why[200];           /* why uclamp is not the backend ("": it is) */
	char error[600];
};

const char *thoth_pm_dvfs_backend_name(thoth_pm_dvfs_backend_t b)
{
	switch (b) {
	case THOTH_PM_DVFS_SETSPEED: return "cpufreq-setspeed";
	case THOTH_PM_DVFS_LIMITS: return "cpufreq-limits";
	case THOTH_PM_DVFS_UCLAMP: return "uclamp";
	default: return "simulated";
	}
}

static const char *root(void)
{
	const char *r = getenv("THOTH_SYSFS_ROOT");
	return r ? r : "";
}

static int cpufreq_path(char *out, size_t cap, uint32_t cpu, const char *file)
{
	int n = snprintf(out, cap, "%s/sys/devices/system/cpu/cpu%u/cpufreq/%s", root(), cpu, file);
	return n < 0 || (size_t)n >= cap ? THOTH_E_INVAL : 0;
}

static int read_line(const char *path, char *buf, size_t cap)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return THOTH_E_IO;
	char *ok = fgets(buf, (int)cap, f);
	fclose(f);
	if (!ok)
		return THOTH_E_IO;
	buf[strcspn(buf, "\n")] = '\0';
	return 0;
}

static int write_u32(thoth_pm_dvfs_t *d, const char *file, uint32_t v)
{
	char path[512];
	if (cpufreq_path(path, sizeof(path), d->cpu, file))
		return THOTH_E_INVAL;
	FILE *f = fopen(path, "w");
	if (!f || fprintf(f, "%u\n", v) < 0 || fclose(f) != 0) {
		snprintf(d->error, sizeof(d->error), "write %s: %s", path, strerror(errno));
		return THOTH_E_IO;
	}
	return 0;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

/*
 * The backend, in order of preference:
 *   setspeed  the userspace governor lets us write the frequency itself;
 *   uclamp    schedutil governs and the kernel has uclamp: the governed
 *             threads' clamps ask for the chosen OPP's capacity, and
 *             schedutil picks the frequency, for those threads only (other
 *             tasks on the domain keep their own demand, which pinned
 *             limits would override);
 *   limits    any other governor: pin scaling_min/max_freq;
 *   simulated no cpufreq.
 */
static void detect(thoth_pm_dvfs_t *d)
{
	char path[512], line[512];
	d->backend = THOTH_PM_DVFS_SIMULATED;
	char governor[64] = "";
	if (!cpufreq_path(path, sizeof(path), d->cpu, "scaling_governor"))
		read_line(path, governor, sizeof(governor));
	if (!cpufreq_path(path, sizeof(path), d->cpu, "scaling_available_frequencies") &&
	    !read_line(path, line, sizeof(line))) {
		char *save = NULL;
		for (char *tok = strtok_r(line, " ", &save); tok && d->host_count < MAX_HOST_FREQS;
		     tok = strtok_r(NULL, " ", &save)) {
			char *end;
			unsigned long v = strtoul(tok, &end, 10);
			if (end != tok && v > 0 && v < UINT32_MAX)
				d->host_khz[d->host_count++] = (uint32_t)v;
		}
		qsort(d->host_khz, d->host_count, sizeof(d->host_khz[0]), cmp_u32);
	}
	if (d->host_count && strcmp(governor, "userspace") == 0 &&
	    !cpufreq_path(path, sizeof(path), d->cpu, "scaling_setspeed") && access(path, W_OK) == 0) {
		d->backend = THOTH_PM_DVFS_SETSPEED;
		snprintf(d->uclamp_why, sizeof d->uclamp_why, "the userspace governor takes the frequency itself");
		return;
	}
	if (strcmp(governor, "schedutil") != 0)
		snprintf(d->uclamp_why, sizeof d->uclamp_why, "cpufreq governor is %s, not schedutil",
			 governor[0] ? governor : "absent");
	else if (thoth_pm_uclamp_probe(d->uclamp_why, sizeof d->uclamp_why))
		d->backend = THOTH_PM_DVFS_UCLAMP;
	if (d->backend == THOTH_PM_DVFS_SIMULATED && d->host_count)
		d->backend = THOTH_PM_DVFS_LIMITS;
}

int thoth_pm_dvfs_new(uint32_t cpu, const thoth_pm_cpu_model_t *model, uint64_t now_ns,
		      thoth_pm_dvfs_t **out)
{
	if (!model || !out || cpu > 4095)
		return THOTH_E_INVAL;
	thoth_pm_dvfs_t *d = calloc(1, sizeof(*d));
	if (!d)
		return THOTH_E_NOMEM;
	d->cpu = cpu;
	d->model = model;
	thoth_pm_governor_init(&d->gov, THOTH_PM_GOV_THOTH, model, now_ns);
	detect(d);
	d->current_khz = model->opps[d->gov.opp].freq_khz;
	*out = d;
	return 0;
}

void thoth_pm_dvfs_free(thoth_pm_dvfs_t *d)
{
	free(d);
}

thoth_pm_dvfs_backend_t thoth_pm_dvfs_backend(const thoth_pm_dvfs_t *d)
{
	return d->backend;
}

int thoth_pm_dvfs_arrived(thoth_pm_dvfs_t *d, uint64_t deadline_ns)
{
	if (d->queued == MAX_QUEUED)
		return THOTH_E_LIMIT;
	d->queue[d->queued++] = (thoth_pm_pending_t){ deadline_ns, 0 };
	return 0;
}

int thoth_pm_dvfs_dispatched(thoth_pm_dvfs_t *d, uint64_t now_ns, uint32_t client,
			     uint64_t deadline_ns, uint32_t waiting)
{
	/* This request was announced while it waited: it takes the first
	 * announced entry's place (its deadline the later, known one). */
	if (d->announced) {
		d->queue[d->queued - d->announced].deadline_ns = deadline_ns;
		d->announced--;
	} else if (d->queued == MAX_QUEUED) {
		return THOTH_E_LIMIT;
	} else {
		d->queue[d->queued++] = (thoth_pm_pending_t){ deadline_ns, 0 };
	}
	thoth_pm_governor_arrived(&d->gov, now_ns, client, deadline_ns);
	/* What ran since the last update came before this dispatch (the loop,
	 * the previous request's tail): not this request's work. */
	d->not_head = true;
	/* The requests behind it are demand too (the dispatcher knows they
	 * wait); announcements it no longer sees are dropped, never kept as
	 * phantom demand.  Their deadline: as if they arrived now. */
	thoth_pm_dvfs_waiting(d, waiting, deadline_ns);
	return 0;
}

void thoth_pm_dvfs_waiting(thoth_pm_dvfs_t *d, uint32_t waiting, uint64_t deadline_ns)
{
	while (d->announced < waiting && d->queued < MAX_QUEUED) {
		d->queue[d->queued++] = (thoth_pm_pending_t){ deadline_ns, 0 };
		d->announced++;
	}
	while (d->announced > waiting) {
		d->queued--;
		d->announced--;
	}
}

void thoth_pm_dvfs_waiting_due(thoth_pm_dvfs_t *d, const uint64_t *deadlines_ns, uint32_t n)
{
	d->queued -= d->announced;
	d->announced = 0;
	for (uint32_t i = 0; i < n && d->queued < MAX_QUEUED; i++) {
		d->queue[d->queued++] = (thoth_pm_pending_t){ deadlines_ns[i], 0 };
		d->announced++;
	}
}

void thoth_pm_dvfs_forget_waiting(thoth_pm_dvfs_t *d)
{
	d->queued -= d->announced;
	d->announced = 0;
}

uint32_t thoth_pm_dvfs_queued(const thoth_pm_dvfs_t *d)
{
	return d->queued;
}

void thoth_pm_dvfs_set_options(thoth_pm_dvfs_t *d, unsigned options)
{
	thoth_pm_governor_set_options(&d->gov, options);
}

void thoth_pm_dvfs_completed(thoth_pm_dvfs_t *d, uint64_t cpu_ns)
{
	/* What ran since the last update was this request's: it must not
	 * count as done work of the one now at the head (thoth_pm_dvfs_update). */
	d->not_head = true;
	/* frequency invariance: CPU time at capacity c is c/1024 of the work */
	double work = (double)cpu_ns * d->model->opps[d->gov.opp].capacity / 1024.0;
	thoth_pm_governor_completed(&d->gov, work);
	if (d->queued > d->announced) {
		memmove(d->queue, d->queue + 1, --d->queued * sizeof(d->queue[0]));
	}
}

/* The host frequency for model OPP I: the nearest available at or above
 * the OPP's frequency (the highest if none is). */
static uint32_t host_khz(const thoth_pm_dvfs_t *d, uint32_t i)
{
	uint32_t want = d->model->opps[i].freq_khz;
	for (uint32_t k = 0; k < d->host_count; k++)
		if (d->host_khz[k] >= want)
			return d->host_khz[k];
	return d->host_count ? d->host_khz[d->host_count - 1] : want;
}

int thoth_pm_dvfs_update(thoth_pm_dvfs_t *d, uint64_t now_ns, uint64_t running_ns,
			 uint32_t *opp_out)
{
	/* The head request ran for RUNNING_NS at the current OPP, unless a
	 * completion or a dispatch came since the last update: then that time
	 * was the completed request's (the tail of its handler since the last
	 * check; governed.c decides right after thoth_pm_dvfs_completed) or
	 * came before the dispatch.  Credited to the new head, a request seen
	 * waiting that has not started, it made the plan take that request for
	 * partly done, by up to a whole handler's CPU time
	 * (test_the_cpu_time_at_a_completion_is_the_completed_requests). */
	if (d->queued && !d->not_head)
		d->queue[0].done_work += (double)running_ns *
					 d->model->opps[d->gov.opp].capacity / 1024.0;
	d->not_head = false;
	uint32_t opp = thoth_pm_governor_update(&d->gov, now_ns, running_ns, d->queue, d->queued);
	if (opp_out)
		*opp_out = opp;
	if (d->written && opp == d->written_opp)
		return 0;
	uint32_t khz = host_khz(d, opp);
	int err = 0;
	d->error[0] = '\0';
	if (d->backend == THOTH_PM_DVFS_SETSPEED) {
		err = write_u32(d, "scaling_setspeed", khz);
	} else if (d->backend == THOTH_PM_DVFS_UCLAMP) {
		/* The OPP's capacity (the model's, on the kernel's 0..1024
		 * scale) as both clamps: schedutil then runs these threads at
		 * that performance, neither above (MAX) nor below (MIN).  The
		 * frequency reported is the model OPP's; schedutil maps it. */
		khz = d->model->opps[opp].freq_khz;
		uint32_t cap = d->model->opps[opp].capacity;
		for (uint32_t i = 0; i < d->n_tids && !err; i++) {
			err = thoth_pm_uclamp_set(d->tids[i], cap, cap);
			if (err)
				snprintf(d->error, sizeof(d->error), "sched_setattr(tid %d, util clamp %u): %s",
					 d->tids[i], cap, strerror(thoth_last_errno()));
		}
	} else if (d->backend == THOTH_PM_DVFS_LIMITS) {
		/* Order matters: the kernel refuses min > max, so raise max
		 * first when going up and lower min first when going down. */
		const char *first = khz >= d->current_khz ? "scaling_max_freq" : "scaling_min_freq";
		const char *second = khz >= d->current_khz ? "scaling_min_freq" : "scaling_max_freq";
		err = write_u32(d, first, khz);
		if (!err)
			err = write_u32(d, second, khz);
	}
	if (err)
		return err;
	d->current_khz = khz;
	d->written_opp = opp;
	d->written = true;
	return 0;
}

int thoth_pm_dvfs_add_thread(thoth_pm_dvfs_t *d, int tid)
{
	if (!d || tid < 0)
		return THOTH_E_INVAL;
	if (tid == 0)
		tid = (int)syscall(SYS_gettid);   /* a clamp written later, maybe from elsewhere */
	for (uint32_t i = 0; i < d->n_tids; i++)
		if (d->tids[i] == tid)
			return 0;
	if (d->n_tids == MAX_THREADS)
		return THOTH_E_LIMIT;
	d->tids[d->n_tids++] = tid;
	if (d->backend == THOTH_PM_DVFS_UCLAMP && d->written) {
		/* It joins at the OPP already chosen. */
		uint32_t cap = d->model->opps[d->written_opp].capacity;
		return thoth_pm_uclamp_set(tid, cap, cap);
	}
	return 0;
}

const char *thoth_pm_dvfs_uclamp_why(const thoth_pm_dvfs_t *d)
{
	return d->uclamp_why;
}

uint32_t thoth_pm_dvfs_current_khz(const thoth_pm_dvfs_t *d)
{
	return d->current_khz;
}

const thoth_pm_cpu_model_t *thoth_pm_dvfs_model(const thoth_pm_dvfs_t *d)
{
	return d->model;
}

const char *thoth_pm_dvfs_error(const thoth_pm_dvfs_t *d)
{
	return d->error;
}

int thoth_pm_thread_cpu_ns(int tid, uint64_t *out)
{
	if (tid < 0 || !out)
		return THOTH_E_INVAL;
	if (tid == 0 && !getenv("THOTH_SYSFS_ROOT")) {
		struct timespec ts;
		if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts))
			return THOTH_E_IO;
		*out = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
		return 0;
	}
	char path[512], line[256];
	int n = tid ? snprintf(path, sizeof(path), "%s/proc/self/task/%d/schedstat", root(), tid)
		    : snprintf(path, sizeof(path), "%s/proc/thread-self/schedstat", root());
	if (n < 0 || (size_t)n >= sizeof(path))
		return THOTH_E_INVAL;
	if (read_line(path, line, sizeof(line)))
		return THOTH_E_IO;
	char *end;
	errno = 0;
	unsigned long long v = strtoull(line, &end, 10);
	if (end == line || errno)
		return THOTH_E_IO;
	*out = v;
	return 0;
}
