#!/usr/bin/env python3
"""test_locks_fork: a forking program gets one table per process.

  check_fork.py THOTHLOCK FORK_WORKLOAD [--all]

Then `fork_workload warm`: a parent thread past its 4,096 exact
acquisitions (sampling one in 64) forks; the child's 100 acquisitions of
child_lock are exact and its process not marked sampled (the child's
thread starts its counting afresh).

fork_workload holds fork_lock across fork(); then the child forces 3
contended acquisitions and the parent 5.  The report must list both
processes, the child's fork_lock with exactly 3 contentions and the
parent's with exactly 5 (the child starts from a fresh table, nothing
counted twice), and acquisitions 1 + 2 x contentions each (the lock taken
before fork is released in both, counted in the parent only).
"""
import json
import os
import subprocess
import sys
import tempfile


def main():
    thothlock, program = sys.argv[1:3]
    mode = sys.argv[3:4]
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "report.json")
        p = subprocess.run([thothlock, "--json", *mode, "--output", out, "--", program],
                           stdout=subprocess.PIPE, text=True, timeout=60)
        if p.returncode != 0:
            sys.exit(f"FAIL fork_workload exited {p.returncode}")
        child = int(p.stdout.split()[1])
        with open(out) as f:
            report = json.load(f)
    pids = sorted(pr["pid"] for pr in report["processes"])
    if len(pids) != 2 or child not in pids:
        sys.exit(f"FAIL processes {report['processes']}, child {child}")
    by_pid = {l["pid"]: l for l in report["locks"] if l["name"] == "fork_lock"}
    parent = [x for x in pids if x != child][0]
    want = {child: (3, 6), parent: (5, 11)}
    for pid, (cont, acq) in want.items():
        l = by_pid.get(pid)
        if not l or l["contentions"] != cont or l["acquisitions"] != acq:
            sys.exit(f"FAIL pid {pid}: fork_lock {l and (l['contentions'], l['acquisitions'])}, "
                     f"expected contentions {cont}, acquisitions {acq}")
        print(f"ok pid {pid}: {cont} contentions, {acq} acquisitions")
    warm(thothlock, program, mode)
    print("PASS")


def warm(thothlock, program, mode):
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "report.json")
        p = subprocess.run([thothlock, "--json", *mode, "--output", out, "--", program, "warm"],
                           stdout=subprocess.PIPE, text=True, timeout=60)
        if p.returncode != 0:
            sys.exit(f"FAIL fork_workload warm exited {p.returncode}")
        child = int(p.stdout.split()[1])
        with open(out) as f:
            report = json.load(f)
    procs = {pr["pid"]: pr for pr in report["processes"]}
    if child not in procs:
        sys.exit(f"FAIL warm: no table of the child {child}: {report['processes']}")
    if procs[child].get("acquisitions_sampled"):
        sys.exit(f"FAIL warm: the child's counts are marked sampled: {procs[child]}")
    l = [l for l in report["locks"] if l["name"] == "child_lock" and l["pid"] == child]
    if len(l) != 1 or l[0]["acquisitions"] != 100:
        sys.exit(f"FAIL warm: the child's child_lock {l}, expected 100 acquisitions exactly")
    print("ok warm parent's child: child_lock 100 acquisitions, exact")


if __name__ == "__main__":
    main()
