#!/usr/bin/env python3
"""test_locks_exact_counts: all-acquisitions mode counts every acquisition
exactly, though each thread counts in entries of its own that are never
folded into the shared ones (lockprof_layout.h, thothlock_tstat_t).

  check_exact_counts.py LIBTHOTHLOCK EXACT_WORKLOAD LOCK_REPORT_DUMP

exact_workload (exact_workload.c) runs preloaded in all mode with 4
threads x 2,400 iterations per wave, three waves, 600 fork iterations:
  * paused after wave 2 (wave 1 exited, wave 2 alive with its counts in
    its own entries), its live table read through the reader API: each
    mutex 2 x 4 x 600 acquisitions, 800 at each of its sites; the rwlock
    2,400 (1,200 per site); holds_measured equal to acquisitions;
  * after exit (wave 3 in the slots the others left, then fork): the
    parent's table 3 x 4 x 600 per mutex, + 2 x 600 for exact_lock_0
    (main's before and after fork), + 600 for exact_lock_1 and the rwlock
    through pthread_mutex_clocklock / pthread_rwlock_clockrdlock at their
    own sites, exactly 1 timeout (and 1 acquisition at clock_timeout) for
    exact_lock_2, not one of the child's; the child's
    table exact_lock_0 only, 2 x 600 (its main thread and a new thread),
    nothing of the parent's before fork.
"""
import json
import os
import subprocess
import sys
import tempfile

sys.dont_write_bytecode = True  # importing a helper leaves no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
from checklib import fail  # noqa: E402  fail(), wait_for(): one copy for the checks

THREADS, ITER, FORK_N = 4, 2400, 600


def dump(tool, table, pid=None):
    # A live process: its own maps; one that is gone: the maps it saved.
    names = str(pid) if pid else table[:-len("table")] + "maps"
    r = subprocess.run([tool, table, names], capture_output=True,
                       text=True, timeout=60)
    if r.returncode != 0:
        fail(f"lock_report_dump {table}: {r.returncode} {r.stderr}")
    return json.loads(r.stdout)


def by_name(doc):
    return {l["name"]: l for l in doc["locks"] if l["name"]}


def check(doc, want, what, timeouts=None):
    locks = by_name(doc)
    for name, n in (timeouts or {}).items():
        if locks.get(name, {}).get("timeouts") != n:
            fail(f"{what}: {name} timeouts {locks.get(name, {}).get('timeouts')}, expected {n}")
        print(f"ok {what}: {name} {n} timeout(s)")
    for name, (acq, sites) in want.items():
        l = locks.get(name)
        if l is None:
            fail(f"{what}: {name} not in {sorted(locks)}")
        if l["acquisitions"] != acq or l["holds_measured"] != acq:
            fail(f"{what}: {name} acquisitions {l['acquisitions']}, holds_measured "
                 f"{l['holds_measured']}, expected {acq}")
        got = sorted((s["function"], s["acquisitions"]) for s in l["call_sites"]
                     if s["acquisitions"])
        if got != sorted(sites.items()):
            fail(f"{what}: {name} call sites {got}, expected {sorted(sites.items())}")
        # site_a takes three locks: only the first has a site entry in
        # the table; the reader makes the others one, with site_a's stack.
        for s in l["call_sites"]:
            if s["acquisitions"] and (not s["stack"] or
                                      s["stack"][0]["function"] != s["function"]):
                fail(f"{what}: {name} site {s['function']} stack {s['stack'][:1]}")
        if l["hold_ns_total"] <= 0:
            fail(f"{what}: {name} hold_ns_total {l['hold_ns_total']}")
        print(f"ok {what}: {name} {acq} acquisitions, sites {sites}")
    extra = set(locks) & {"exact_lock_0", "exact_lock_1", "exact_lock_2",
                          "exact_rwlock"} - set(want)
    if extra:
        fail(f"{what}: unexpected locks {sorted(extra)}")


def main():
    lib, workload, tool = sys.argv[1:4]
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, LD_PRELOAD=lib, THOTHLOCK_MODE="all", THOTHLOCK_DIR=tmp)
        proc = subprocess.Popen([workload, str(THREADS), str(ITER), str(FORK_N)], env=env,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            line = proc.stdout.readline()
            if line.strip() != "paused":
                fail(f"workload said {line!r}")
            per = 2 * THREADS * ITER // 12
            mutex = (3 * per, {"site_a": per, "site_b": per, "site_try": per})
            rw = (2 * THREADS * ITER // 4, {"site_wr": 2 * THREADS * ITER // 8,
                                           "site_rd": 2 * THREADS * ITER // 8})
            live = dump(tool, f"live:{proc.pid}", proc.pid)
            check(live, {"exact_lock_0": mutex, "exact_lock_1": mutex, "exact_lock_2": mutex,
                         "exact_rwlock": rw}, "live, wave 2 alive")
            proc.stdin.write("go\n")
            proc.stdin.flush()
            out = proc.stdout.read()
        finally:
            proc.stdin.close()
            proc.wait(timeout=60)
        if proc.returncode != 0:
            fail(f"workload exited {proc.returncode}")
        child = int(out.split()[1])
        per = 3 * THREADS * ITER // 12
        mutex = (3 * per, {"site_a": per, "site_b": per, "site_try": per})
        lock0 = (3 * per + 2 * FORK_N, {"site_a": per + 2 * FORK_N, "site_b": per,
                                         "site_try": per})
        lock1 = (3 * per + FORK_N, {"site_a": per, "site_b": per, "site_try": per,
                                    "site_clock": FORK_N})
        lock2 = (3 * per + 1, {"site_a": per, "site_b": per, "site_try": per,
                               "clock_timeout": 1})
        rw = (3 * THREADS * ITER // 4 + FORK_N, {"site_wr": 3 * THREADS * ITER // 8,
                                                "site_rd": 3 * THREADS * ITER // 8,
                                                "site_clock_rd": FORK_N})
        parent = dump(tool, os.path.join(tmp, f"{proc.pid}.table"))
        check(parent, {"exact_lock_0": lock0, "exact_lock_1": lock1, "exact_lock_2": lock2,
                       "exact_rwlock": rw}, "parent after exit", {"exact_lock_2": 1})
        kid = dump(tool, os.path.join(tmp, f"{child}.table"))
        check(kid, {"exact_lock_0": (2 * FORK_N, {"site_a": 2 * FORK_N})}, "fork child")
    print("PASS")


if __name__ == "__main__":
    main()
