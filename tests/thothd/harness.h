/*
 * harness.h - real thothd and service processes for the multi-process
 * tests: a fresh runtime dir per test, children killed (and reaped) in
 * teardown even when an assertion failed, no sleeps as synchronization
 * (wait_until polls a condition against a deadline).
 */
#ifndef THOTH_TEST_HARNESS_H
#define THOTH_TEST_HARNESS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "daemon.thoth.h"
#include "registry.thoth.h"
#include "thoth/service.h"

#define HARNESS_MAX_CHILDREN 16

typedef struct harness {
	char dir[64];                   /* temp dir: runtime dir is dir itself */
	char log[300];                  /* thothd's stderr */
	pid_t thothd;
	/* Set on thothd alone between fork and exec (soft and hard); 0: the
	 * test's own limit.  The test process keeps its limit. */
	unsigned long thothd_nofile;
	/* thothd gets --http-port 0 unless the test's args name a port; true:
	 * none at all, thothd's default (9180), for a test of the default. */
	bool thothd_default_port;
	pid_t children[HARNESS_MAX_CHILDREN];
	int n_children;
} harness_t;

int harness_setup(harness_t *h);
void harness_teardown(harness_t *h);

/* Start thothd (extra args after the runtime dir) and wait until it answers. */
pid_t harness_start_thothd(harness_t *h, const char *const *extra_args);
/* SIGTERM thothd and wait for it; returns its exit status (or -1). */
int harness_stop_thothd(harness_t *h);

/* Start a program (argv[0] is a path); its stdout/stderr go to DIR/NAME.log. */
pid_t harness_spawn(harness_t *h, const char *log_name, const char *const *argv);
/* SIGNO to PID and reap it; returns the raw wait status. */
int harness_kill(harness_t *h, pid_t pid, int signo);
/* Run a program to completion, capturing stdout (and stderr) into OUT. */
int harness_run(harness_t *h, const char *const *argv, char *out, size_t cap, int *status);

uint64_t harness_now_ms(void);
/* Poll COND(ARG) every ~2 ms until true or DEADLINE_MS passes. */
bool harness_wait_until(bool (*cond)(void *arg), void *arg, int deadline_ms);

/* Control-plane helpers over a thoth_control_t. */
int harness_connect(harness_t *h, thoth_control_t *ctl);
int harness_resolve(thoth_control_t *ctl, const char *name, uint64_t *lease);
int harness_register(thoth_control_t *ctl, const char *name, uint32_t ttl_ms, uint64_t *lease);
/* The same at ENDPOINT (any bytes: a hostile peer's address). */
int harness_register_at(thoth_control_t *ctl, const char *name, uint32_t ttl_ms, const char *endpoint,
			uint64_t *lease);
int harness_status(thoth_control_t *ctl, thoth_daemon_Daemon_status_resp_t *st);
/* The remote application error of the last call (THOTH_REGISTRY_ERR_*). */
uint32_t harness_remote_code(thoth_control_t *ctl);

/* Does FILE contain NEEDLE? */
bool harness_file_contains(const char *file, const char *needle);

#endif
