/*
 * live_harness.h - thothd's dashboard beside a busy traced process, for
 * the SCALE-2 checks of its drains (tests/thothd/test_thothd_live_drain.c
 * and bench/scale/bench_scale.c sections 10-11 share it): a traced process
 * that writes bursts of records on demand, the dashboard's port, its event
 * stream and /metrics, thothd's loop-thread CPU time and its log.
 *
 * Nothing here asserts: each call returns an error (-1, NULL or
 * UINT64_MAX) the test asserts on and the benchmark dies on.
 */
#ifndef THOTH_TEST_LIVE_HARNESS_H
#define THOTH_TEST_LIVE_HARNESS_H

#include <stdint.h>
#include <sys/types.h>

#include "harness.h"

/* A traced process: one ring of RING_RECORDS records (2 rings, overwrite
 * oldest) named "busy"; once thothd switches category LOOP on, N
 * loop_wakeup records (reason timer) per uint32_t N written on GO, each
 * burst answered by a byte on DONE.  It exits when GO closes (its
 * connection to thothd closes with it), or with status 3 when LOOP is
 * not switched on within 10 s of a burst asked for. */
typedef struct live_traced {
	pid_t pid;
	int go, done;
} live_traced_t;

int live_traced_spawn(harness_t *h, uint32_t ring_records, live_traced_t *out);
/* The same, its rings DROP_NEWEST: a record written into a full ring is
 * refused (counted in that ring's `dropped`), the ring keeps its oldest. */
int live_traced_spawn_dropping(harness_t *h, uint32_t ring_records, live_traced_t *out);
/* The same, and its main thread, the first to claim a ring (ring 0),
 * writes loop_wakeup records (reason fd, arg1 counting) on its own while
 * LOOP is on, about STREAM_PER_S a second all along: a busy first ring.
 * The bursts (reason timer) are then another thread's, in ring 1, each
 * once the first ring is claimed. */
int live_traced_spawn_streaming(harness_t *h, uint32_t ring_records, uint32_t stream_per_s,
				live_traced_t *out);
/* One burst of N records, written and done (60 s at most): 0, or -1. */
int live_traced_burst(const live_traced_t *p, uint32_t n);
/* Close GO and DONE: the process exits, its connection closes (it stays in
 * H's children: reaped by harness_teardown, or wait for it here). */
void live_traced_close(live_traced_t *p);
/* Close GO and wait until the process has exited (10 s at most): 0, or -1. */
int live_traced_exit(live_traced_t *p);
/* PID's state letter in /proc/PID/stat ('S' asleep, 'Z' a zombie ...), 0
 * when it cannot be read (gone). */
char live_proc_state(pid_t pid);

/* The dashboard's port from Daemon.status, or -1. */
int live_dashboard_port(thoth_control_t *ctl);
/* A TCP connection to 127.0.0.1:PORT, or -1. */
int live_http_connect(int port);
/* A page on /events (collection on while it is connected): the stream's
 * fd, its request sent, or -1. */
int live_page_open(int port);
/* Read PAGE until its next tick (TIMEOUT_MS at most): 0, or -1. */
int live_page_tick(int page, int timeout_ms);
/* GET /metrics (each scrape drains what waits): the response, malloc'd,
 * or NULL (no answer, or not 200). */
char *live_metrics(int port);
/* GET PATH (HTTP/1.0): the whole answer, head and body, malloc'd and
 * NUL-terminated, its length in *LEN; NULL on an error (none in 120 s). */
char *live_http_get(int port, const char *path, size_t *len);
/* Send GET PATH on a new connection without reading: its fd, or -1. */
int live_http_send(int port, const char *path);
/* Read FD's answer to its end (120 s at most), as live_http_get. */
char *live_http_read(int fd, size_t *len);
/* The sum of METRIC{pid="PID",...} lines whose labels contain WITH (NULL:
 * any). */
uint64_t live_metric_sum(const char *text, const char *metric, pid_t pid, const char *with);
/* thoth_process_wakeups_total{reason="all"} of PID, or UINT64_MAX. */
uint64_t live_wakeups(int port, pid_t pid);
/* Scrape every 20 ms until PID's wake-ups reach WANT (TIMEOUT_MS at most):
 * the last count (WANT when reached), UINT64_MAX on an error. */
uint64_t live_wait_wakeups(int port, pid_t pid, uint64_t want, int timeout_ms);

/* The CPU time of thothd's loop thread (its main thread), ns; 0 on error. */
uint64_t live_loop_cpu_ns(pid_t thothd);
/* Lines of LOG containing NEEDLE (0 when it cannot be read). */
int live_log_count(const char *log, const char *needle);

#endif
