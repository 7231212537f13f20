#!/usr/bin/env python3
"""test_locks_unordered: releases out of order and trylocks count exactly
(contention mode's fast paths for both, preload.c: release_unordered,
pthread_mutex_trylock; docs/LOCKS.md "The uncontended fast path").

  check_unordered.py LIBTHOTHLOCK UNORDERED_WORKLOAD LOCK_REPORT_DUMP

unordered_workload (unordered_workload.c), 4 threads x 3,000 iterations,
contending: each iteration releases locks out of order three ways (the
bottom of two, the bottom and the middle of three) and takes a default
mutex and a recursive one by trylock.  In contention mode and in all
mode every lock's acquisitions are exact (uo_a 2, uo_b 3, uo_c 2, uo_rec
1 per thread and iteration), no held entry overflowed (a release that
lost its entry would leave the others behind it: they would pile up) and
no count is sampled.
"""
import json
import os
import subprocess
import sys
import tempfile

THREADS, ITER = 4, 3000
PER = {"uo_a": 2, "uo_b": 3, "uo_c": 2, "uo_rec": 1}


def fail(msg):
    sys.exit(f"FAIL {msg}")


def main():
    lib, workload, tool = sys.argv[1:4]
    for mode in ("contention", "all"):
        with tempfile.TemporaryDirectory() as tmp:
            env = dict(os.environ, LD_PRELOAD=lib, THOTHLOCK_MODE=mode, THOTHLOCK_DIR=tmp)
            p = subprocess.run([workload, str(THREADS), str(ITER)], env=env,
                               capture_output=True, text=True, timeout=120)
            if p.returncode != 0 or p.stdout.strip() != "done":
                fail(f"{mode}: workload exited {p.returncode}: {p.stdout!r} {p.stderr!r}")
            tables = [f for f in os.listdir(tmp) if f.endswith(".table")]
            if len(tables) != 1:
                fail(f"{mode}: expected one table, found {tables}")
            table = os.path.join(tmp, tables[0])
            r = subprocess.run([tool, table, table[:-len("table")] + "maps"],
                               capture_output=True, text=True, timeout=60)
            if r.returncode != 0:
                fail(f"{mode}: lock_report_dump: {r.returncode} {r.stderr}")
            doc = json.loads(r.stdout)
        proc = doc["processes"][0]
        if proc["mode"] != mode:
            fail(f"{mode}: table says mode {proc['mode']}")
        if proc["losses"]["held_overflow"] or proc["acquisitions_sampled"]:
            fail(f"{mode}: losses {proc['losses']}, sampled {proc['acquisitions_sampled']}")
        locks = {l["name"]: l for l in doc["locks"] if l["name"]}
        contended = 0
        for name, per in PER.items():
            l = locks.get(name)
            if l is None:
                fail(f"{mode}: {name} not in {sorted(locks)}")
            want = per * THREADS * ITER
            if l["acquisitions"] != want:
                fail(f"{mode}: {name} acquisitions {l['acquisitions']}, expected {want}")
            contended += l["contentions"]
        print(f"ok {mode} mode: acquisitions exact ({', '.join(f'{n} {PER[n] * THREADS * ITER}' for n in PER)}), "
              f"{contended} contentions")
    print("PASS")


if __name__ == "__main__":
    main()
