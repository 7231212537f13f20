/*
 * live_feasible.c - bench_pm_live's feasibility check (live_feasible.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "live_feasible.h"

int thoth_pm_live_feasibility(const thoth_pm_cpu_model_t *m, const thoth_pm_trace_t *t, uint32_t senders,
			      thoth_pm_live_feasibility_t *out, const char **why)
{
	memset(out, 0, sizeof *out);
	if (!m || !m->opp_count || !senders || !t || !t->count) {
		*why = !senders ? "senders: 0" : "trace: no request";
		return -1;
	}
	uint32_t top = m->opps[m->opp_count - 1].capacity;
	out->top_capacity = top;
	/* per sender: the index of its next request (t->count: none left)
	 * and when its previous request was answered */
	size_t *next = malloc((senders + 1) * sizeof *next);
	uint64_t *ready = calloc(senders + 1, sizeof *ready);
	if (!next || !ready) {
		free(next);
		free(ready);
		*why = "out of memory";
		return -1;
	}
	for (uint32_t s = 1; s <= senders; s++) {
		size_t j = 0;
		while (j < t->count && t->jobs[j].client != s)
			j++;
		next[s] = j;
	}
	uint64_t free_at = 0;   /* when the service is next idle */
	for (;;) {
		/* the request sent first among each sender's next one */
		uint32_t pick = 0;
		uint64_t pick_send = 0;
		for (uint32_t s = 1; s <= senders; s++) {
			if (next[s] >= t->count)
				continue;
			const thoth_pm_job_t *job = &t->jobs[next[s]];
			uint64_t send = job->arrival_ns > ready[s] ? job->arrival_ns : ready[s];
			if (!pick || send < pick_send || (send == pick_send && next[s] < next[pick])) {
				pick = s;
				pick_send = send;
			}
		}
		if (!pick)
			break;
		const thoth_pm_job_t *job = &t->jobs[next[pick]];
		uint64_t burn = job->work_ns * 1024 / top;      /* as the bench's handler */
		uint64_t start = pick_send > free_at ? pick_send : free_at;
		uint64_t answer = start + burn;
		free_at = ready[pick] = answer;
		out->requests++;
		out->misses += answer - pick_send > job->deadline_ns - job->arrival_ns;
		if (answer - pick_send > out->worst_ns)
			out->worst_ns = answer - pick_send;
		if (burn > out->longest_burn_ns)
			out->longest_burn_ns = burn;
		size_t j = next[pick] + 1;
		while (j < t->count && t->jobs[j].client != pick)
			j++;
		next[pick] = j;
	}
	free(next);
	free(ready);
	return 0;
}

int thoth_pm_live_spec(const thoth_pm_cpu_model_t *m, const char *spec, bool scale, char *out, size_t len)
{
	const char *w = strstr(spec, "work_us=");
	if (!w || !m || !m->opp_count)
		return -1;
	int n;
	if (!scale) {
		n = snprintf(out, len, "%s", spec);
	} else {
		double work = atof(w + 8) * m->opps[m->opp_count - 1].capacity / 1024.0;
		const char *rest = strchr(w, ' ');
		n = snprintf(out, len, "%.*swork_us=%.1f%s", (int)(w - spec), spec, work, rest ? rest : "");
	}
	return n < 0 || (size_t)n >= len ? -1 : 0;
}

uint32_t thoth_pm_live_replay_look(const thoth_pm_trace_t *live, size_t k, uint64_t t, bool with_stamps,
				   uint64_t running_due, uint64_t *due, uint32_t max)
{
	uint32_t n = 0;
	for (size_t l = k + 1; l < live->count && live->jobs[l].arrival_ns <= t && n < max; l++) {
		const thoth_pm_job_t *w = &live->jobs[l];
		uint64_t own = (with_stamps ? w->arrival_ns : t) + (w->deadline_ns - w->arrival_ns);
		uint64_t d = own < running_due ? own : running_due;
		uint32_t i = n++;               /* insertion: earliest first, as governed.c sort_due */
		for (; i > 0 && due[i - 1] > d; i--)
			due[i] = due[i - 1];
		due[i] = d;
	}
	return n;
}
