#!/usr/bin/env python3
"""test_locks_unordered: releases out of order and trylocks count exactly,
and contention mode's counted sample of acquisitions (preload.c:
count_before, count_failed; docs/LOCKS.md "The uncontended fast path") is
right and says it is an estimate.

  check_unordered.py LIBTHOTHLOCK UNORDERED_WORKLOAD LOCK_REPORT_DUMP

unordered_workload (unordered_workload.c), 4 threads, contending: each
iteration releases locks out of order three ways (the bottom of two, the
bottom and the middle of three) and takes a default mutex and a recursive
one by trylock: uo_a 2, uo_b 3, uo_c 2, uo_rec 1 acquisitions per thread
and iteration.

  * contention mode counting every acquisition (THOTHLOCK_ACQ_SAMPLE=1)
    and all mode, 3,000 iterations: every lock's acquisitions exact, no
    held entry overflowed (a release that lost its entry would leave the
    others behind it: they would pile up), nothing marked sampled;
  * contention mode as it comes (one acquisition in 64 counted past each
    thread's first 4,096), 20,000 iterations: marked estimated
    (acquisitions_sampled, acquisitions_sample 64, each lock's
    acquisitions_estimated); the four locks' sum within 4 x 126 below the
    true total and never above it (each counted acquisition carries the
    period it ends, so a thread's count is exact up to its last counted
    one); each lock within 4 standard errors of its true count (weights of
    1 .. 127, mean 64: SE ~ sqrt(4/3 x 64 x its sampled acquisitions)).
    The library before this sampling counted exactly and said so: this
    part fails on it (acquisitions_sampled false).
"""
import json
import math
import os
import subprocess
import sys
import tempfile

sys.dont_write_bytecode = True  # importing a helper leaves no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
from checklib import fail  # noqa: E402  fail(), wait_for(): one copy for the checks

THREADS = 4
PER = {"uo_a": 2, "uo_b": 3, "uo_c": 2, "uo_rec": 1}
N, EXACT = 64, 4096


def run(lib, workload, tool, mode, iters, extra):
    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if k != "THOTHLOCK_ACQ_SAMPLE"}
        env.update(LD_PRELOAD=lib, THOTHLOCK_MODE=mode, THOTHLOCK_DIR=tmp, **extra)
        p = subprocess.run([workload, str(THREADS), str(iters)], env=env,
                           capture_output=True, text=True, timeout=300)
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
    if proc["losses"]["held_overflow"]:
        fail(f"{mode}: losses {proc['losses']}")
    locks = {l["name"]: l for l in doc["locks"] if l["name"]}
    for name in PER:
        if name not in locks:
            fail(f"{mode}: {name} not in {sorted(locks)}")
    return proc, locks


def exact_run(lib, workload, tool, mode, extra):
    iters = 3000
    proc, locks = run(lib, workload, tool, mode, iters, extra)
    if proc["acquisitions_sampled"]:
        fail(f"{mode} {extra}: marked sampled")
    contended = 0
    for name, per in PER.items():
        want = per * THREADS * iters
        if locks[name]["acquisitions"] != want:
            fail(f"{mode} {extra}: {name} acquisitions {locks[name]['acquisitions']}, expected {want}")
        contended += locks[name]["contentions"]
    print(f"ok {mode} mode {extra}: acquisitions exact "
          f"({', '.join(f'{n} {PER[n] * THREADS * iters}' for n in PER)}), {contended} contentions")


def sampled_run(lib, workload, tool):
    iters = 20000
    proc, locks = run(lib, workload, tool, "contention", iters, {})
    if not proc["acquisitions_sampled"] or proc.get("acquisitions_sample") != N:
        fail(f"sampled: process says sampled {proc['acquisitions_sampled']}, "
             f"sample {proc.get('acquisitions_sample')}")
    if not all(locks[n].get("acquisitions_estimated") for n in PER):
        fail("sampled: a lock's acquisitions not marked estimated")
    true_total = sum(PER.values()) * THREADS * iters
    got_total = sum(locks[n]["acquisitions"] for n in PER)
    if not true_total - THREADS * (2 * N - 2) <= got_total <= true_total:
        fail(f"sampled: total {got_total}, true {true_total} (at most {THREADS * (2 * N - 2)} below)")
    exact_iters = EXACT // sum(PER.values())   # each thread's first 4096 are counted one by one
    for name, per in PER.items():
        want = per * THREADS * iters
        sampled = per * THREADS * (iters - exact_iters)
        se = math.sqrt(4 / 3 * N * sampled)
        got = locks[name]["acquisitions"]
        if abs(got - want) > 4 * se:
            fail(f"sampled: {name} {got}, true {want}: off by {got - want}, > 4 SE ({4 * se:.0f})")
        print(f"ok sampled {name}: {got} vs {want} ({(got - want) / want * 100:+.2f} %, "
              f"{(got - want) / se:+.2f} SE)")
    print(f"ok sampled: total {got_total} of {true_total}, marked estimated (1 in {N})")


def main():
    lib, workload, tool = sys.argv[1:4]
    exact_run(lib, workload, tool, "contention", {"THOTHLOCK_ACQ_SAMPLE": "1"})
    exact_run(lib, workload, tool, "all", {})
    sampled_run(lib, workload, tool)
    print("PASS")


if __name__ == "__main__":
    main()
