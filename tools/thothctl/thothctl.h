/*
 * thothctl.h - what thothctl's command files share (main.c: options,
 * connecting; trace.c: `thothctl trace`).
 */
#ifndef THOTHCTL_H
#define THOTHCTL_H

#include <stdbool.h>

#include "thoth/service.h"

/* Connect to thothd; on failure print why (no thothd: "thothd is not
 * running (no socket at PATH)") and return non-zero. */
int thothctl_connect(thoth_control_t *ctl, const char *runtime_dir);

/* Print why the call WHAT failed (thothd's own message for THOTH_E_REMOTE);
 * returns 1, the exit status. */
int thothctl_call_failed(thoth_control_t *ctl, const char *what, int r);

/* `thothctl trace ...`: ARGV[0] is "trace".  Returns the exit status. */
int thothctl_trace(int argc, char **argv, const char *runtime_dir);

/* `thothctl pm [--json]`: ARGV[0] is "pm" (pm.c).  JSON: --json came before it. */
int thothctl_pm(int argc, char **argv, const char *runtime_dir, bool json);

/* `thothctl sched ...`: ARGV[0] is "sched" (sched.c).  Returns the exit status. */
int thothctl_sched(int argc, char **argv, const char *runtime_dir);

/* `thothctl pm sim ...` (pm_sim.c): ARGV[0] is "sim".  Needs no thothd
 * (RUNTIME_DIR is unused).  Returns the exit status. */
int thothctl_pm_sim(int argc, char **argv, const char *runtime_dir);

#endif
