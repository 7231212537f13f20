/*
 * defer.c - deferred answers (SCALE-2, docs/THOTHD.md "Slow requests").
 *
 * thothd serves every client on one loop thread; a request whose work
 * takes long (a trace dump: seconds at 500k events; a process's first lock
 * report: ~100 ms of symbolizing) used to keep every other client waiting
 * that long.  Such a handler now calls thothd_defer: its work runs on one of
 * THOTHD_DEFER_WORKERS worker threads and its answer is encoded and queued
 * on the loop thread when the work is done.
 *
 *   loop thread                         worker thread
 *   handler: thothd_defer (slot held)
 *   handle_message: thothd_jobs_submit -> queue -> work(arg)
 *                                        done list, eventfd write
 *   doorbell: done(arg, resp) -> encode -> thothd_client_answered
 *             release(arg)
 *
 * The eventfd is written only when a job is done, and the workers wait on a
 * condition variable with no timeout: an idle thothd never wakes up.  The
 * workers start with the first deferred job and stay (blocked) until
 * thothd_jobs_stop.  Every job's done and release run on the loop thread,
 * so whatever ties a job to a connection (its answer slot, the client
 * pointer) is only ever touched there: a connection that closes orphans its
 * jobs (client NULL), and their answers are freed unsent.
 *
 * A task (thothd_defer_task) is a job that answers nobody: thothd's own
 * slow work (the dashboard's drain of busy trace rings, trace.c).  Its
 * DONE runs on the loop thread like a job's, with no response; it is not
 * counted against the per-connection and total bounds (its owner keeps
 * at most one in flight).  Tasks have their own thread ("thothd-task",
 * started with the first), at thothd's own priority: a drain must keep up
 * with the processes that fill the rings (at nice +10 on a busy machine it
 * lost records a drain on the loop thread did not), and it holds the
 * tracer's mutex in short stretches that the loop thread may wait for (a
 * niced thread preempted holding it made the loop thread wait 20-45 ms).
 * A slow task (thothd_defer_task_slow: the lock panel's report, which holds
 * nothing the loop thread waits for and may be late) goes to the workers'
 * queue instead: on the task thread a cold report (~90 ms of CPU, 0.4 s of
 * wall on a loaded VM) made the drain queued behind it wait as long.
 *
 * A deferred answer may have a PREP, run on the task thread before its
 * WORK goes to the workers (or instead of it): a stop's last drain or a
 * write's drain of an active session beside the dashboard (trace.c) is a
 * drain like the dashboard's own, so it runs where those run, in turn with
 * them, at thothd's priority; the export that may follow stays niced.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <unistd.h>

#include "ipc_trace.h"
#include "log.h"
#include "thothd.h"

enum { WORKER_NICE = 10 };

typedef struct thothd_job thothd_job_t;
struct thothd_job {
	thothd_t *d;
	thothd_client_t *client;        /* NULL: the connection closed (loop thread only) */
	struct thothd_held *slot;       /* its place in the client's answers */
	const thothd_job_ops_t *ops;
	void *arg;
	thoth_msg_header_t rh;          /* the request's ids, for the answer */
	bool ran;
	bool prepped;                   /* ops->prep has run (on the task thread) */
	bool task;                      /* thothd_defer_task: no request, no connection */
	bool slow;                      /* thothd_defer_task_slow: on the workers */
	uint64_t queued_ns, waited_ns;  /* when queued; how long before a thread took it */
	struct thothd_job *next;        /* in the queue, then in the done list */
};

struct thothd_jobs {
	pthread_mutex_t mu;
	pthread_cond_t cv;              /* work queued, or quit */
	thothd_job_t *queue_head, *queue_tail;  /* not started */
	thothd_job_t *done_head, *done_tail;    /* worked on, for the loop */
	bool quit;
	pthread_t workers[THOTHD_DEFER_WORKERS];
	unsigned n_workers;
	/* Tasks: their own queue and thread (not niced). */
	pthread_cond_t task_cv;
	thothd_job_t *task_head, *task_tail;
	pthread_t task_worker;
	bool task_worker_running;
	int efd;                        /* the doorbell: written when a job is done */
	thoth_source_t *src;
	/* Loop thread only. */
	uint32_t pending;               /* deferred and not answered yet */
	uint64_t deferred, refused, orphaned, tasks;
	bool stopped;
};

/* Take the first job of a queue (mu held). */
static thothd_job_t *dequeue(thothd_job_t **head, thothd_job_t **tail)
{
	thothd_job_t *job = *head;
	*head = job->next;
	if (!*head)
		*tail = NULL;
	job->next = NULL;
	return job;
}

/* Append JOB to the queue HEAD..TAIL and wake the thread waiting on CV
 * (NULL: none waits; mu held). */
static void queue_push(thothd_job_t **head, thothd_job_t **tail, pthread_cond_t *cv, thothd_job_t *job)
{
	if (*tail)
		(*tail)->next = job;
	else
		*head = job;
	*tail = job;
	if (cv)
		pthread_cond_signal(cv);
}

/* A worked job to the done list, and ring the loop (mu held). */
static void finished(struct thothd_jobs *j, thothd_job_t *job)
{
	job->ran = true;
	queue_push(&j->done_head, &j->done_tail, NULL, job);
	uint64_t one = 1;
	/* Cannot fail short of a counter at 2^64-2: the loop reads it. */
	if (write(j->efd, &one, sizeof one) < 0)
		thothd_error("defer: cannot ring the loop: %s", strerror(errno));
}

/* Run JOB's part for this thread (mu NOT held).  True: its PREP ran on
 * the task thread and its WORK is for the workers (handed over). */
static bool run_job(thothd_job_t *job, bool task_thread)
{
	const thothd_job_ops_t *ops = job->ops;
	if (job->task) {
		ops->work(job->arg);
		return false;
	}
	if (ops->prep && !job->prepped) {
		ops->prep(job->arg);
		job->prepped = true;
		if (task_thread && ops->work)
			return true;
	}
	if (ops->work)
		ops->work(job->arg);
	return false;
}


/* Queue JOB for the workers (mu held). */
static void to_workers(struct thothd_jobs *j, thothd_job_t *job)
{
	queue_push(&j->queue_head, &j->queue_tail, &j->cv, job);
}

/* Run the jobs of one queue (HEAD, TAIL, signalled on CV) until quit. */
static void run_queue(struct thothd_jobs *j, thothd_job_t **head, thothd_job_t **tail, pthread_cond_t *cv,
		      bool task_thread)
{
	pthread_mutex_lock(&j->mu);
	for (;;) {
		while (!j->quit && !*head)
			pthread_cond_wait(cv, &j->mu);
		if (j->quit)
			break;
		thothd_job_t *job = dequeue(head, tail);
		job->waited_ns = thoth_clock_now() - job->queued_ns;
		pthread_mutex_unlock(&j->mu);
		bool handoff = run_job(job, task_thread);
		pthread_mutex_lock(&j->mu);
		if (handoff) {
			job->queued_ns = thoth_clock_now();
			to_workers(j, job);     /* given up by thothd_jobs_stop if they quit */
		} else {
			finished(j, job);
		}
	}
	pthread_mutex_unlock(&j->mu);
}

static void *task_main(void *arg)
{
	struct thothd_jobs *j = arg;
	pthread_setname_np(pthread_self(), "thothd-task");
	run_queue(j, &j->task_head, &j->task_tail, &j->task_cv, true);
	return NULL;
}

static void *worker_main(void *arg)
{
	struct thothd_jobs *j = arg;
	pthread_setname_np(pthread_self(), "thothd-work");
	/* Below the loop thread (nice +WORKER_NICE, this thread only): on a
	 * busy machine a runnable loop thread goes first, so a dump makes the
	 * requests it serves meanwhile wait less (bench_scale --section 8). */
	errno = 0;
	int nice_now = getpriority(PRIO_PROCESS, (id_t)gettid());
	int nice_to = (errno ? 0 : nice_now) + WORKER_NICE;
	if (setpriority(PRIO_PROCESS, (id_t)gettid(), nice_to > 19 ? 19 : nice_to) != 0)
		thothd_debug("defer: worker priority unchanged: %s", strerror(errno));
	run_queue(j, &j->queue_head, &j->queue_tail, &j->cv, false);
	return NULL;
}

/* The answer of a finished JOB as a whole message (malloc'd), or NULL. */
static uint8_t *encode_answer(thothd_job_t *job, int status, const void *resp, const char *reason,
			      size_t *len)
{
	const thoth_method_info_t *m = job->ops->method;
	uint8_t *buf = NULL;
	if (!status) {
		size_t need = thoth_method_size(m, true, resp);
		if (posix_memalign((void **)&buf, THOTH_WIRE_ALIGN, need + 8))
			return NULL;
		if (thoth_method_encode(m, true, resp, &job->rh, buf, need + 8, len) == 0)
			return buf;
		free(buf);
		buf = NULL;
		status = THOTH_E_NOMEM;
		reason = "thothd could not encode its deferred answer";
	}
	uint32_t code = 0;
	int32_t st = status;
	if (status > 0) {
		code = (uint32_t)status;
		st = THOTH_E_REMOTE;
		if (!reason)
			for (size_t i = 0; i < m->n_errors; i++)
				if (m->error_codes[i] == code)
					reason = m->error_names[i];
	}
	if (!reason)
		reason = status > 0 ? "application error" : thoth_strerror(status);
	size_t cap = THOTH_WIRE_HEADER_SIZE + 64 + strlen(reason) + 16;
	if (posix_memalign((void **)&buf, THOTH_WIRE_ALIGN, cap))
		return NULL;
	thoth_builder_t b;
	thoth_builder_init(&b, buf, cap);
	thoth_msg_header_t h = job->rh;
	h.schema_major = m->major;
	h.schema_minor = m->minor;
	h.interface_id = m->interface_id;
	h.method = m->ordinal;
	h.flags = THOTH_MSG_RESPONSE | THOTH_MSG_ERROR;
	if (thoth_wire_encode_error(&b, code, st, reason) || thoth_builder_finish(&b, &h, len)) {
		free(buf);
		return NULL;
	}
	return buf;
}

/* Loop thread: answer JOB (if anyone waits) and free it. */
static void job_finish(thothd_t *d, thothd_job_t *job)
{
	struct thothd_jobs *j = d->jobs;
	if (!job->task)
		j->pending--;
	else if (job->ran && job->waited_ns > 1000000)
		thothd_debug("defer: a task waited %.1f ms for %s", job->waited_ns / 1e6,
			     job->slow ? "a worker" : "the task thread");
	thothd_client_t *c = job->client;
	const thoth_method_info_t *m = job->ops->method;
	thoth_arena_t arena;
	thoth_arena_init(&arena, d->arena, d->arena_cap);
	void *resp = NULL;
	if (c) {
		c->n_jobs--;
		resp = thoth_arena_alloc(&arena, m->resp_struct_size ? m->resp_struct_size : 1);
		if (resp)
			memset(resp, 0, m->resp_struct_size);
	}
	const char *reason = NULL;
	int status = job->ops->done(job->arg, job->ran, resp, &arena, &reason);
	if (c) {
		size_t len = 0;
		uint8_t *buf = NULL;
		if (resp || status) {
			buf = encode_answer(job, resp ? status : THOTH_E_NOMEM, resp, reason, &len);
		} else {
			buf = encode_answer(job, THOTH_E_NOMEM, NULL, "out of memory for the answer", &len);
		}
		if (buf)
			THOTH_TRACE_WIRE_MSG(msg_send, THOTH_TRACE_SEND, d->pid, buf, THOTH_TRACE_INLINE);
		else
			thothd_client_doom(c, "its deferred answer could not be encoded");
		thothd_client_answered(c, job->slot, buf, len);
	}
	job->ops->release(job->arg);
	free(job);
}

/* Take the whole done list. */
static thothd_job_t *take_done(struct thothd_jobs *j)
{
	pthread_mutex_lock(&j->mu);
	thothd_job_t *list = j->done_head;
	j->done_head = j->done_tail = NULL;
	pthread_mutex_unlock(&j->mu);
	return list;
}

static void doorbell(thoth_loop_t *loop, thoth_source_t *src, int fd, uint32_t events, void *arg)
{
	(void)loop;
	(void)src;
	(void)events;
	thothd_t *d = arg;
	uint64_t n;
	if (read(fd, &n, sizeof n) < 0 && errno != EAGAIN)
		thothd_warn("defer: doorbell read: %s", strerror(errno));
	for (thothd_job_t *job = take_done(d->jobs), *next; job; job = next) {
		next = job->next;
		job_finish(d, job);
	}
	thothd_reap(d);
}

/* The workers and the doorbell, at the first deferred job. */
static int jobs_start(thothd_t *d)
{
	if (d->jobs)
		return d->jobs->stopped ? THOTH_E_CLOSED : 0;
	if (d->jobs_freed)
		return THOTH_E_CLOSED;  /* shutting down: no workers again */
	struct thothd_jobs *j = calloc(1, sizeof *j);
	if (!j)
		return THOTH_E_NOMEM;
	j->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (j->efd < 0) {
		free(j);
		return THOTH_E_NOMEM;
	}
	if (pthread_mutex_init(&j->mu, NULL)) {
		close(j->efd);
		free(j);
		return THOTH_E_NOMEM;
	}
	if (pthread_cond_init(&j->cv, NULL)) {
		pthread_mutex_destroy(&j->mu);
		close(j->efd);
		free(j);
		return THOTH_E_NOMEM;
	}
	if (pthread_cond_init(&j->task_cv, NULL)) {
		pthread_cond_destroy(&j->cv);
		pthread_mutex_destroy(&j->mu);
		close(j->efd);
		free(j);
		return THOTH_E_NOMEM;
	}
	if (thoth_loop_add_fd(d->loop, j->efd, THOTH_LOOP_READ, doorbell, d, &j->src)) {
		pthread_cond_destroy(&j->task_cv);
		pthread_cond_destroy(&j->cv);
		pthread_mutex_destroy(&j->mu);
		close(j->efd);
		free(j);
		return THOTH_E_NOMEM;
	}
	/* Signals stay with the loop thread. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (unsigned i = 0; i < THOTHD_DEFER_WORKERS; i++) {
		int e = pthread_create(&j->workers[i], NULL, worker_main, j);
		if (e) {
			thothd_warn("defer: cannot start worker %u: %s", i, strerror(e));
			break;
		}
		j->n_workers++;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	d->jobs = j;
	if (!j->n_workers) {
		thothd_jobs_stop(d);
		return THOTH_E_NOMEM;
	}
	return 0;
}

int thothd_defer(thothd_call_t *call, const thothd_job_ops_t *ops, void *arg)
{
	thothd_t *d = call->d;
	thothd_client_t *c = call->client;
	if (!d->loop || d->defer_off || !c || !call->msg)
		return 1;
	int r = jobs_start(d);
	if (r == THOTH_E_CLOSED)
		return 1;               /* stopping: nothing more is deferred */
	if (r)
		return r;
	struct thothd_jobs *j = d->jobs;
	if (c->n_jobs >= THOTHD_DEFER_PER_CLIENT) {
		j->refused++;
		call->reason = "this connection already waits for " "2" " slow answers (trace dump/write/"
			       "stop, a first lock report): the limit per connection; wait for them";
		return THOTH_E_LIMIT;
	}
	if (j->pending >= THOTHD_DEFER_TOTAL) {
		j->refused++;
		call->reason = "thothd is working on " "16" " slow requests of other connections (its "
			       "limit): try again when one is answered";
		return THOTH_E_LIMIT;
	}
	thoth_msg_header_t h;
	if (thoth_wire_header_decode(call->msg, call->len, &h))
		return THOTH_E_PROTOCOL;
	thothd_job_t *job = calloc(1, sizeof *job);
	if (!job)
		return THOTH_E_NOMEM;
	job->slot = thothd_client_hold(c, job);
	if (!job->slot) {
		free(job);
		return THOTH_E_NOMEM;
	}
	h.features = call->io->features;
	job->d = d;
	job->client = c;
	job->ops = ops;
	job->arg = arg;
	job->rh = h;
	c->n_jobs++;
	j->pending++;
	j->deferred++;
	call->job = job;
	return 0;
}

/* The task thread, at its first job (loop thread). */
static int task_thread_start(struct thothd_jobs *j)
{
	if (j->task_worker_running)
		return 0;
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);       /* signals stay with the loop thread */
	int e = pthread_create(&j->task_worker, NULL, task_main, j);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (e) {
		thothd_warn("defer: cannot start the task thread: %s", strerror(e));
		return THOTH_E_NOMEM;
	}
	j->task_worker_running = true;
	return 0;
}

static int defer_task(thothd_t *d, const thothd_job_ops_t *ops, void *arg, bool slow)
{
	if (!d->loop || d->defer_off)
		return 1;
	int r = jobs_start(d);
	if (r == THOTH_E_CLOSED)
		return 1;               /* stopping: the caller works inline */
	if (r)
		return r;
	struct thothd_jobs *j = d->jobs;
	if (slow) {
		thothd_job_t *job = calloc(1, sizeof *job);
		if (!job)
			return THOTH_E_NOMEM;
		*job = (thothd_job_t){ .d = d, .ops = ops, .arg = arg, .task = true, .slow = true };
		j->tasks++;
		thothd_jobs_submit(d, job);     /* the workers' queue */
		return 0;
	}
	if ((r = task_thread_start(j)))
		return r;
	thothd_job_t *job = calloc(1, sizeof *job);
	if (!job)
		return THOTH_E_NOMEM;
	*job = (thothd_job_t){ .d = d, .ops = ops, .arg = arg, .task = true,
			       .queued_ns = thoth_clock_now() };
	j->tasks++;
	pthread_mutex_lock(&j->mu);
	queue_push(&j->task_head, &j->task_tail, &j->task_cv, job);
	pthread_mutex_unlock(&j->mu);
	return 0;
}

int thothd_defer_task(thothd_t *d, const thothd_job_ops_t *ops, void *arg)
{
	return defer_task(d, ops, arg, false);
}

int thothd_defer_task_slow(thothd_t *d, const thothd_job_ops_t *ops, void *arg)
{
	return defer_task(d, ops, arg, true);
}

void thothd_jobs_submit(thothd_t *d, thothd_job_t *job)
{
	struct thothd_jobs *j = d->jobs;
	job->queued_ns = thoth_clock_now();
	/* A PREP (a drain) on the task thread first; without that thread the
	 * worker runs it before WORK. */
	bool prep_on_task = job->ops->prep && task_thread_start(j) == 0;
	pthread_mutex_lock(&j->mu);
	if (prep_on_task) {
		queue_push(&j->task_head, &j->task_tail, &j->task_cv, job);
	} else {
		to_workers(j, job);
	}
	pthread_mutex_unlock(&j->mu);
}

void thothd_jobs_orphan(thothd_job_t *job)
{
	job->client = NULL;
	job->slot = NULL;
	job->d->jobs->orphaned++;
}

int thothd_run_inline(thothd_call_t *call, const thothd_job_ops_t *ops, void *arg, void *resp,
		      thoth_arena_t *arena)
{
	if (ops->prep)
		ops->prep(arg);
	if (ops->work)
		ops->work(arg);
	const char *reason = NULL;
	int r = ops->done(arg, true, resp, arena, &reason);
	if (reason) {
		/* RELEASE frees what REASON points into: a copy in the arena. */
		char *copy = thoth_arena_alloc(arena, strlen(reason) + 1);
		call->reason = copy ? strcpy(copy, reason) : "error (no memory for its reason)";
	}
	ops->release(arg);
	return r;
}

int thothd_defer_or_run(thothd_call_t *call, const thothd_job_ops_t *ops, void *arg, void *resp,
			thoth_arena_t *arena)
{
	int r = thothd_defer(call, ops, arg);
	if (r == 1)
		return thothd_run_inline(call, ops, arg, resp, arena);
	if (r)
		ops->release(arg);      /* refused: DONE is not called, nothing happened */
	return r;
}

void thothd_jobs_stop(thothd_t *d)
{
	struct thothd_jobs *j = d->jobs;
	if (!j || j->stopped)
		return;
	pthread_mutex_lock(&j->mu);
	j->quit = true;
	pthread_cond_broadcast(&j->cv);
	pthread_cond_broadcast(&j->task_cv);
	pthread_mutex_unlock(&j->mu);
	/* A running job finishes first (a dump cannot be cut short halfway
	 * through a file); the queued ones are given up below. */
	for (unsigned i = 0; i < j->n_workers; i++)
		pthread_join(j->workers[i], NULL);
	j->n_workers = 0;
	if (j->task_worker_running)
		pthread_join(j->task_worker, NULL);
	j->task_worker_running = false;
	j->stopped = true;
	thothd_job_t *done = take_done(j);
	for (thothd_job_t *job = done, *next; job; job = next) {
		next = job->next;
		job_finish(d, job);
	}
	for (thothd_job_t *job = j->queue_head, *next; job; job = next) {
		next = job->next;
		job_finish(d, job);     /* ran false: given up */
	}
	j->queue_head = j->queue_tail = NULL;
	for (thothd_job_t *job = j->task_head, *next; job; job = next) {
		next = job->next;
		job_finish(d, job);     /* ran false: given up */
	}
	j->task_head = j->task_tail = NULL;
	if (j->src)
		thoth_loop_remove_fd(d->loop, j->src);
	j->src = NULL;
	close(j->efd);
	j->efd = -1;
}

void thothd_jobs_free(thothd_t *d)
{
	struct thothd_jobs *j = d->jobs;
	d->jobs_freed = true;
	if (!j)
		return;
	thothd_jobs_stop(d);
	pthread_cond_destroy(&j->task_cv);
	pthread_cond_destroy(&j->cv);
	pthread_mutex_destroy(&j->mu);
	free(j);
	d->jobs = NULL;
}

void thothd_jobs_stats(const thothd_t *d, thothd_jobs_stats_t *out)
{
	const struct thothd_jobs *j = d->jobs;
	*out = (thothd_jobs_stats_t){ 0 };
	if (j)
		*out = (thothd_jobs_stats_t){ .deferred = j->deferred, .refused = j->refused,
					      .orphaned = j->orphaned, .pending = j->pending,
					      .tasks = j->tasks };
}
