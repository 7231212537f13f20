/*
 * thothctl.h - what thothctl's command files share (main.c: options,
 * connecting; trace.c: `thothctl trace`).
 */
#ifndef THOTHCTL_H
#define THOTHCTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "thoth/service.h"
#include "daemon.thoth.h"

/* The global options, parsed once in main.c for every command. */
typedef struct thothctl_opts {
	const char *runtime_dir;        /* --runtime-dir (NULL: the default rule) */
	bool json;                      /* --json: machine-readable output, one JSON
					 * object per line on stdout (errors stay
					 * one line of text on stderr) */
} thothctl_opts_t;

/* A command: argv[0] is its name, the rest its own arguments (the global
 * options taken out).  Returns the exit status (0, 1 failed, 2 usage).
 * Add a row to `commands` in main.c for a new one. */
typedef int thothctl_cmd_fn(int argc, char **argv, const thothctl_opts_t *opts);

/* Write S as a JSON string (quoted, escaped) to stdout (or F): valid JSON
 * whatever S holds -- a byte that is not part of well-formed UTF-8 is
 * written as U+FFFD (json.c). */
void thothctl_json_str(const char *s, size_t len);
void thothctl_json_fstr(FILE *f, const char *s, size_t len);
/* Whether S is well-formed UTF-8; the length of the sequence at S (0: not
 * well-formed). */
bool thothctl_utf8_valid(const char *s, size_t len);

/* A peer's string as text for the terminal: tools/peertext/peertext.h. */
#include "peertext.h"

/* A usage error of the command CMD ("trace", "pm sim"; NULL: thothctl's
 * own): one line on stderr, "thothctl: CMD: WHAT ARG" and where its usage
 * is (thothctl(1): errors are one line, never the whole usage after it).
 * ARG may be NULL.  Returns 2, the exit status. */
int thothctl_usage_error(const char *cmd, const char *what, const char *arg);

/* thothd's registry's rule for a service name (kernel/thothd/registry.c):
 * 1..128 bytes of [a-z0-9_.-], a letter first.  topology.c. */
bool thothctl_service_name_ok(const char *s);

/* An option given an empty value: `--policy=`, or `--policy "$P"` with P
 * unset.  Each getopt_long loop calls thothctl_empty_option with the
 * index getopt_long wrote (LI, reset to -1 here for the next option):
 * the option's name when its value is empty, else NULL.  Then
 * thothctl_empty_value says so in one line, with what the option takes
 * (TAKES, NULL: nothing listed), and returns 2.  Without it an empty
 * value reached each parser as a word of its own: "--policy: unknown
 * policy" followed by nothing, "not a number:" naming nothing. */
struct option;
const char *thothctl_empty_option(const struct option *options, int *li);
int thothctl_empty_value(const char *cmd, const char *name, const char *takes);

/* After getopt_long refused an option ('?' or ':'), the word of ARGV that
 * holds it ("-xj", "--bogus"): argv[optind - 1] is not always it. */
const char *thothctl_refused_word(int argc, char *const *argv);

/* Connect to thothd; on failure print why (no thothd: "thothd is not
 * running (no socket at PATH): start it, or give the runtime dir ...")
 * and return non-zero. */
int thothctl_connect(thoth_control_t *ctl, const char *runtime_dir);

/* Print why the call WHAT failed (thothd's own message for THOTH_E_REMOTE);
 * returns 1, the exit status. */
int thothctl_call_failed(thoth_control_t *ctl, const char *what, int r);

/* `thothctl locks ...` (locks.c). */
thothctl_cmd_fn thothctl_locks;

/* `thothctl trace ...` (trace.c). */
thothctl_cmd_fn thothctl_trace;

/* `thothctl sched ...` (sched.c). */
thothctl_cmd_fn thothctl_sched;
/* `thothctl pm sim ...` (pm_sim.c): ARGV[0] is "sim".  Needs no thothd. */
thothctl_cmd_fn thothctl_pm_sim;
/* `thothctl pm [--json]` (pm.c): ARGV[0] is "pm". */
thothctl_cmd_fn thothctl_pm;
/* `thothctl codex ...` (codex.c): the journal service. */
thothctl_cmd_fn thothctl_codex;
/* `thothctl topology [NAME]` (topology.c, SCALE-1/2). */
thothctl_cmd_fn thothctl_topology;
/* `thothctl status --watch [MS]` (status_watch.c, SCALE-2): the
 * status from the shared table every INTERVAL_MS, no round trip each. */
int thothctl_status_watch(const thothctl_opts_t *opts, unsigned interval_ms);
/* One lifecycle event of Daemon.status (main.c): a line of text, or a
 * JSON object's members (no braces); NOW: CLOCK_MONOTONIC, for "ago". */
void thothctl_lifecycle_event_text(const thoth_daemon_LifecycleEvent_t *e, uint64_t now);
void thothctl_lifecycle_event_json(const thoth_daemon_LifecycleEvent_t *e, uint64_t now);
/* `thothctl moderation ...` (moderation.c, PM-3).  Needs no thothd. */
thothctl_cmd_fn thothctl_moderation;

/* `thothctl serve [--pid PID]` (serve.c, SCALE-2): serving processes'
 * counters, their workers folded by thothd. */
thothctl_cmd_fn thothctl_serve;

/* `thothctl probe ...` (probe.c): eBPF probes at trace points. */
thothctl_cmd_fn thothctl_probe;

#endif
