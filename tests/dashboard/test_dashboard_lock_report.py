#!/usr/bin/env python3
"""test_dashboard_lock_report.py BUILD_DIR LIBTHOTHLOCK LIVE_WORKLOAD: the
lock panel's report (scan + symbolize, ~100 ms for a process's first one)
is made on one of thothd's workers, not on its loop thread (SCALE-2,
docs/DASHBOARD.md).

A page is connected; a process profiled with LD_PRELOAD=libthothlock.so
(tests/locks/live_workload: 10 contentions of `live_lock`, one on each of
EXTRA heap locks) appears, and the panel shows it a tick or two later.
thothd logs each report with its CPU time and where it was made.  The loop
thread's own CPU time (schedstat of thothd's main thread) over the whole
window, from before the process starts until its lock is on the page,
must stay below half the first report's CPU: on the loop thread
(THOTHD_DEFER=off, the old placement) it is at least that report's CPU,
and the test fails.  Judged only against this run's own figures.
"""
import os
import re
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # importing a helper leaves no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import EventStream, System, fail  # noqa: E402

BUILD, LIB, WORKLOAD = sys.argv[1:4]
EXTRA = 60          # heap locks: a first report worth measuring (more call sites)


def loop_cpu_ns(pid):
    """The loop thread's (thothd's main thread) CPU time, ns."""
    with open("/proc/%d/task/%d/schedstat" % (pid, pid)) as f:
        return int(f.read().split()[0])


def reports(log_path):
    """(ms CPU, where) of every lock report thothd logged."""
    out = []
    with open(log_path) as f:
        for line in f:
            m = re.search(r"dashboard: lock report in [0-9.]+ ms \(([0-9.]+) ms CPU\) on (?:the|a) "
                          r"(worker|loop) thread", line)
            if m:
                out.append((float(m.group(1)), m.group(2)))
    return out


def main():
    with System(BUILD, demo=False, thothd_args=("--log-level", "debug")) as s:
        es = EventStream(s)
        es.next_tick()
        es.next_tick()              # the panel's first report is made and shown
        before = len(reports(s.log.name))
        cpu0 = loop_cpu_ns(s.thothd.pid)
        env = dict(os.environ, THOTH_RUNTIME_DIR=s.rt, LD_PRELOAD=LIB)
        env.pop("THOTHLOCK_DIR", None)
        w = subprocess.Popen([WORKLOAD, "10", str(EXTRA)], env=env, stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
        try:
            if not w.stdout.readline().startswith("ready"):
                fail("live_workload did not start")
            for _ in range(12):
                tick = es.next_tick()
                report = tick["locks"].get("report") or {}
                if any(k.get("name") == "live_lock" and k.get("pid") == w.pid
                       for k in report.get("locks", [])):
                    break
            else:
                fail("live_lock not on the dashboard within 12 ticks: %s" % tick["locks"])
            loop_ms = (loop_cpu_ns(s.thothd.pid) - cpu0) / 1e6
        finally:
            w.stdin.close()
            w.wait(timeout=20)
        made = reports(s.log.name)[before:]
        es.close()
    if not made:
        fail("thothd logged no lock report while the process appeared")
    first_ms, where = max(made)
    print("lock reports while the process appeared: %s; the loop thread's CPU over the "
          "window: %.1f ms" % (", ".join("%.1f ms CPU on the %s thread" % r for r in made), loop_ms))
    # The test can tell: the first report costs far more than the ticks.
    if first_ms < 20:
        fail("the first report took only %.1f ms of CPU: too cheap to tell" % first_ms)
    if loop_ms >= first_ms / 2:
        fail("the loop thread spent %.1f ms of CPU while the report (%.1f ms CPU) was made "
             "on the %s thread: it made the report itself" % (loop_ms, first_ms, where))
    print("ok: the first report (%.1f ms CPU) made on the %s thread; the loop thread %.1f ms "
          "in all meanwhile" % (first_ms, where, loop_ms))
    print("PASS")


if __name__ == "__main__":
    main()
