#!/usr/bin/env python3
"""test_locks_closefrom: a program that closes every descriptor it did not
open (closefrom(3), close_range(3, ~0U, 0), close() over every number,
dup2 onto libthothlock's numbers first, or those dup2s in a vfork child
first) stays profiled in full.

  check_closefrom.py THOTHLOCK LIBTHOTHLOCK WORKLOAD LOCK_REPORT_DUMP

closefrom_workload closes, takes cf_parent_lock N times, forks a worker
that takes cf_lock N times, says "ready WORKER PARENT" and waits.  For
each way of closing:
  * live (LD_PRELOAD, its own runtime dir): the parent's table is found
    through /proc/PARENT/fd (thothlock_open_live, as thothctl and thothd
    find it) with cf_parent_lock's N acquisitions, exact (all mode);
  * under thothlock: the worker is killed with -9; its table, handed over
    through THOTHLOCK_FD after the parent's close, is in the report with
    cf_lock's N acquisitions and state killed.
Before (lock43) the close took the memfd and the socket with it: the live
read found no table, and the worker's hand-over failed and, killed without
its exit path, it left no copy: its report was lost.
"""
import json
import os
import subprocess
import sys
import tempfile

sys.dont_write_bytecode = True  # importing a helper leaves no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
from checklib import fail  # noqa: E402  fail(), wait_for(): one copy for the checks

N = 3000


def start(argv, env):
    proc = subprocess.Popen(argv, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline().split()
    if len(line) != 3 or line[0] != "ready":
        proc.kill()
        out, err = proc.communicate(timeout=30)
        fail(f"{argv}: the workload said {line!r}: {err}")
    return proc, int(line[1]), int(line[2])


def acquisitions(doc, pid, name):
    got = [l["acquisitions"] for l in doc["locks"] if l["pid"] == pid and l["name"] == name]
    return got[0] if len(got) == 1 else None


def live(lib, workload, dump, mode):
    with tempfile.TemporaryDirectory() as rt:
        env = dict(os.environ, THOTH_RUNTIME_DIR=rt, LD_PRELOAD=lib, THOTHLOCK_MODE="all")
        for k in ("THOTHLOCK_DIR", "THOTHLOCK_FD"):
            env.pop(k, None)
        proc, worker, parent = start([workload, mode, str(N)], env)
        try:
            clean = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
            r = subprocess.run([dump, f"live:{parent}", str(parent)], env=clean,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               timeout=60)
            if r.returncode != 0:
                fail(f"{mode}: the parent's table is not seen live: {r.stderr.strip()}")
            got = acquisitions(json.loads(r.stdout), parent, "cf_parent_lock")
            if got != N:
                fail(f"{mode}: live cf_parent_lock acquisitions {got}, want {N}")
        finally:
            out, err = proc.communicate(timeout=30)     # closes its stdin: it ends
        if proc.returncode != 0 or "worker exited 0" not in out:
            fail(f"{mode}: the workload exited {proc.returncode}: {out} {err}")
        if "libthothlock" in err:
            fail(f"{mode}: the preload complained: {err}")
    print(f"ok {mode}: the parent's table seen live after the close, {N} acquisitions")


def killed(thothlock, lib, workload, mode):
    with tempfile.TemporaryDirectory() as tmp:
        report = os.path.join(tmp, "report.json")
        env = dict(os.environ, THOTHLOCK_LIB=lib)
        proc, worker, parent = start([thothlock, "--all", "--json", "--output", report, "--",
                                      workload, mode, str(N)], env)
        os.kill(worker, 9)
        out, err = proc.communicate(timeout=60)
        if proc.returncode != 0 or "worker killed by 9" not in out:
            fail(f"{mode}: thothlock exited {proc.returncode}: {out} {err}")
        if "libthothlock" in err or "thothlock:" in err:
            fail(f"{mode}: something was said on stderr: {err}")
        doc = json.load(open(report))
        states = {p["pid"]: p["state"] for p in doc["processes"]}
        if states.get(worker) != "killed":
            fail(f"{mode}: the killed worker {worker} is not reported killed: {states}")
        got = acquisitions(doc, worker, "cf_lock")
        if got != N:
            fail(f"{mode}: the killed worker's cf_lock acquisitions {got}, want {N}")
        got = acquisitions(doc, parent, "cf_parent_lock")
        if got != N:
            fail(f"{mode}: the parent's cf_parent_lock acquisitions {got}, want {N}")
    print(f"ok {mode}: under thothlock the worker killed by -9 kept its {N} acquisitions")


def main():
    thothlock, lib, workload, dump = sys.argv[1:5]
    for mode in ("close_range", "closefrom", "loop", "dup2", "vfork"):
        live(lib, workload, dump, mode)
        killed(thothlock, lib, workload, mode)
    print("PASS")


if __name__ == "__main__":
    main()
