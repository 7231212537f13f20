#!/usr/bin/env python3
"""test_locks_site_race: one site entry per (lock, call site), however the
threads that first meet a call site interleave (preload.c, site_entry).

  check_site_race.py LIBTHOTHLOCK SITE_RACE_WORKLOAD LOCK_REPORT_DUMP

site_race_workload (site_race_workload.c) starts its threads at a barrier;
each takes 8 locks in the same order at site_x and at site_y, so the
threads' first acquisitions of every (lock, site) pair race.  In both
modes, the exit table must name each (lock, return address) once: two
entries for one pair split its counts in two (test_locks_exact_counts
once saw exact_lock_0's site_a as 400 + 1,200 acquisitions, not 1,600).
All mode must count THREADS x ROUNDS acquisitions at each site.

Runs: a plain stress (16 threads), then the same with
THOTHLOCK_TEST_SITE_DELAY_US: the thread adding a site sleeps inside the
addition, where the old writer had linked the entry but not yet keyed it
(a preempted or page-faulting inserter); the others' bounded wait for the
key ran out and they added the pair a second time.
"""
import json
import os
import subprocess
import sys
import signal
import tempfile

sys.dont_write_bytecode = True  # importing a helper leaves no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
from checklib import fail  # noqa: E402  fail(), wait_for(): one copy for the checks

LOCKS, ROUNDS = 8, 50


def run(lib, workload, tool, mode, threads, delay_us):
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, LD_PRELOAD=lib, THOTHLOCK_MODE=mode, THOTHLOCK_DIR=tmp)
        if delay_us:
            env["THOTHLOCK_TEST_SITE_DELAY_US"] = str(delay_us)
        p = subprocess.run([workload, str(threads), str(LOCKS), str(ROUNDS)], env=env,
                           capture_output=True, text=True, timeout=120)
        if p.returncode != 0 or p.stdout.strip() != "done":
            fail(f"workload exited {p.returncode}: {p.stdout!r} {p.stderr!r}")
        tables = [f for f in os.listdir(tmp) if f.endswith(".table")]
        if len(tables) != 1:
            fail(f"expected one table, found {tables}")
        table = os.path.join(tmp, tables[0])
        r = subprocess.run([tool, table, table[:-len("table")] + "maps"],
                           capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            fail(f"lock_report_dump: {r.returncode} {r.stderr}")
        return json.loads(r.stdout)


def check(doc, mode, threads, what):
    proc = doc["processes"][0]
    if proc["losses"]["site_table_full"]:
        fail(f"{what}: {proc['losses']['site_table_full']} sites found no room")
    seen = 0
    for l in doc["locks"]:
        if not (l["name"] or "").startswith("race_locks"):
            continue
        seen += 1
        addrs = [s["address"] for s in l["call_sites"]]
        dups = sorted({a for a in addrs if addrs.count(a) > 1})
        if dups:
            sites = [(s["function"], s["address"], s["acquisitions"], s["contentions"])
                     for s in l["call_sites"]]
            fail(f"{what}: {l['name']} has call sites {sites}: {dups} more than once")
        if mode == "all":
            got = sorted((s["function"], s["acquisitions"]) for s in l["call_sites"])
            want = [("site_x", threads * ROUNDS), ("site_y", threads * ROUNDS)]
            if got != want:
                fail(f"{what}: {l['name']} call sites {got}, expected {want}")
    if seen != LOCKS:
        fail(f"{what}: {seen} race_locks entries, expected {LOCKS}")
    print(f"ok {what}: {LOCKS} locks, one entry per call site")


def fork_case(lib, workload):
    """A child made by _Fork() (no atfork handler) while a thread holds the
    site-addition lock: its first new site must not wait forever."""
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, LD_PRELOAD=lib, THOTHLOCK_MODE="all", THOTHLOCK_DIR=tmp,
                   THOTHLOCK_TEST_SITE_DELAY_US="3000000")
        # its own process group: a hung child is killed with its parent
        p = subprocess.Popen([workload, "fork"], env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, start_new_session=True)
        try:
            out, err = p.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.communicate()
            fail("a _Fork child with the site-addition lock held hung (60 s)")
        if p.returncode != 0 or out.strip() != "child ok":
            fail(f"fork case exited {p.returncode}: {out!r} {err!r}")
    print("ok a _Fork child with the addition lock held takes a new site's lock")


def main():
    lib, workload, tool = sys.argv[1:4]
    fork_case(lib, workload)
    for mode in ("all", "contention"):
        for threads, delay in ((16, 0), (8, 50000)):
            what = f"{mode} mode, {threads} threads, site delay {delay} us"
            check(run(lib, workload, tool, mode, threads, delay), mode, threads, what)
    print("PASS")


if __name__ == "__main__":
    main()
