#!/usr/bin/env python3
"""test_dashboard_locks.py BUILD_DIR LIBTHOTHLOCK LIVE_WORKLOAD: the lock
panel's source is OBS-4's profiler.  A process run with
LD_PRELOAD=libthothlock.so in thothd's runtime dir forces 10 contended
acquisitions of `live_lock` (tests/locks/live_workload); the dashboard's
event stream must then carry the lock with exactly 10 contentions and its
call site symbolized; the window export must draw exactly those 10 waits as
`lock_wait` slices on the waiting thread of that process (the table's
contention ring, read by thothd each tick); and the panel must say the
source is absent once the process exits.
"""
import json
import os
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # importing a helper leaves no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import EventStream, System, fail  # noqa: E402

BUILD, LIB, WORKLOAD = sys.argv[1:4]


def lock_slices(s, from_ns, tick, pid):
    """The lock_wait "X" slices of PID in the window export up to TICK."""
    code, _, body = s.get("/trace.json?from_ns=%d&to_ns=%d" % (from_ns - 1_000_000_000,
                                                                tick["t_ns"]))
    if code != 200:
        fail("/trace.json answered %d" % code)
    trace = json.loads(body)
    events = trace["traceEvents"] if isinstance(trace, dict) else trace
    return [e for e in events if e.get("name") == "lock_wait" and e.get("ph") == "X"
            and e.get("pid") == pid]


def main():
    with System(BUILD, demo=False) as s:
        es = EventStream(s)
        tick = es.next_tick()
        first_ns = tick["t_ns"]
        if tick["locks"]["available"] or "thothlock -- PROGRAM" not in tick["locks"]["why"]:
            fail("with no profiled process the panel must say so: %s" % tick["locks"])
        # a FIFO planted where a table would be: thothd must refuse it, not
        # block on it (the ticks below would stop)
        os.makedirs(os.path.join(s.rt, "locks"), exist_ok=True)
        fifo = os.path.join(s.rt, "locks", "%d.table" % os.getpid())
        os.mkfifo(fifo)
        env = dict(os.environ, THOTH_RUNTIME_DIR=s.rt, LD_PRELOAD=LIB)
        env.pop("THOTHLOCK_DIR", None)
        w = subprocess.Popen([WORKLOAD, "10"], env=env, stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
        try:
            if not w.stdout.readline().startswith("ready"):
                fail("live_workload did not start")
            lock = None
            # the report is refreshed every 5 ticks: 12 made after "ready"
            for tick in es.ticks_after(time.monotonic_ns(), 12):
                locks = tick["locks"].get("report", {}) or {}
                found = [k for k in locks.get("locks", []) if k.get("name") == "live_lock"]
                if found:
                    lock = found[0]
                    break
            if not lock:
                fail("live_lock not on the dashboard within 12 ticks: %s" % tick["locks"])
            if lock["contentions"] != 10 or lock["pid"] != w.pid:
                fail("live_lock: %s contentions, pid %s (want 10, %d)" %
                     (lock["contentions"], lock["pid"], w.pid))
            site = lock["call_sites"][0]
            if "live_workload.c:" not in site.get("location", ""):
                fail("call site not symbolized: %s" % site)
            slices = lock_slices(s, first_ns, tick, w.pid)
            if len(slices) != 10:
                fail("%d lock_wait slices of pid %d in the exported window, want 10: %s" %
                     (len(slices), w.pid, slices[:3]))
            tids = {e["tid"] for e in slices}
            if len(tids) != 1 or w.pid in tids:
                fail("the slices are not on the one waiting thread: tids %s" % tids)
            total_us = sum(e["dur"] for e in slices)
            if any(e["dur"] <= 0 for e in slices) or \
                    abs(total_us * 1000 - lock["wait_ns_total"]) > 0.01 * lock["wait_ns_total"] + 10:
                fail("slice lengths %.3f us in all, the report's wait %d ns" %
                     (total_us, lock["wait_ns_total"]))
            if tick["lock_slices"]["kept"] < 10:
                fail("lock_slices in the tick: %s" % tick["lock_slices"])
        finally:
            w.stdin.close()
            w.wait(timeout=20)
            os.unlink(fifo)
        for tick in es.ticks_after(time.monotonic_ns(), 12):
            if not tick["locks"]["available"]:
                break
        else:
            fail("the exited process's locks are still shown: %s" % tick["locks"])
        es.close()
    print("ok: live_lock with 10 contentions at %s on the dashboard (a FIFO beside it "
          "refused without blocking), 10 lock_wait slices in the Chrome JSON export summing "
          "to the reported wait; absent again after exit" % site["location"])
    print("PASS")


if __name__ == "__main__":
    main()
