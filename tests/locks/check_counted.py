#!/usr/bin/env python3
"""test_locks_counted: contention mode counts an acquisition before its
attempt (never inside the hold) and takes back the attempts that acquire
nothing (counted_workload.c).

  check_counted.py LIBTHOTHLOCK COUNTED_WORKLOAD LOCK_REPORT_DUMP THOTHLOCK

While a waiter sleeps in pthread_mutex_lock on held_lock (main holds it),
the live table already counts the waiter's acquisition: 2 (main's and the
waiter's), with a busy trylock and a timed-out timedlock counted as such
and not as acquisitions.  After exit: 2, 1 contention.

`counted_workload misses` (a thread past 1,024 cache misses, within its
first 4,096 acquisitions): the text report says cache misses were sampled,
never "1 in 64 counted"; JSON: miss_sampling_threads 1, acq_sampling_threads
0.  Bad THOTHLOCK_ACQ_SAMPLE values (0, abc, 65537, "", -3) are refused by
name on stderr and the default (64) kept; in all mode any value but 1 is
said not to apply (all mode counts every acquisition).
"""
import json
import os
import subprocess
import sys
import tempfile

sys.dont_write_bytecode = True  # importing a helper leaves no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
from checklib import fail  # noqa: E402  fail(), wait_for(): one copy for the checks


def dump(tool, table, names):
    r = subprocess.run([tool, table, names], capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        fail(f"lock_report_dump {table}: {r.returncode} {r.stderr}")
    return json.loads(r.stdout)


def held(doc):
    l = [l for l in doc["locks"] if l["name"] == "held_lock"]
    if len(l) != 1:
        fail(f"held_lock not in {[x['name'] for x in doc['locks']]}")
    return l[0]


def main():
    lib, workload, tool = sys.argv[1:4]
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, LD_PRELOAD=lib, THOTHLOCK_DIR=tmp)
        env.pop("THOTHLOCK_MODE", None)
        env.pop("THOTHLOCK_ACQ_SAMPLE", None)
        proc = subprocess.Popen([workload], env=env, stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True)
        try:
            if proc.stdout.readline().strip() != "paused":
                fail("the workload did not pause")
            live = held(dump(tool, f"live:{proc.pid}", str(proc.pid)))
            proc.stdin.write("go\n")
            proc.stdin.flush()
            proc.stdin.close()
            if proc.wait(timeout=60) != 0:
                fail(f"counted_workload exited {proc.returncode}")
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        if live["trylock_busy"] != 1 or live["timeouts"] != 1:
            fail(f"live: trylock_busy {live['trylock_busy']}, timeouts {live['timeouts']}, "
                 "expected 1 and 1")
        if live["acquisitions"] != 2:
            fail(f"live, the waiter asleep in lock(): acquisitions {live['acquisitions']}, "
                 "expected 2 (the waiter's counted before its attempt; not the failed "
                 "trylock and timedlock)")
        print("ok live: 2 acquisitions while the waiter sleeps, 1 busy trylock, 1 timeout")
        end = held(dump(tool, os.path.join(tmp, f"{proc.pid}.table"),
                        os.path.join(tmp, f"{proc.pid}.maps")))
        if end["acquisitions"] != 2 or end["contentions"] != 1:
            fail(f"at exit: acquisitions {end['acquisitions']}, contentions "
                 f"{end['contentions']}, expected 2 and 1")
        print("ok at exit: 2 acquisitions, 1 contention")
    misses(sys.argv[4], workload)
    bad_values(lib, workload, tool)
    print("PASS")


def misses(thothlock, workload):
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "report.txt")
        env = {k: v for k, v in os.environ.items() if not k.startswith("THOTHLOCK_")}
        p = subprocess.run([thothlock, "--output", out, "--", workload, "misses"], env=env,
                           capture_output=True, text=True, timeout=60)
        if p.returncode != 0:
            fail(f"misses: exit {p.returncode}: {p.stderr}")
        text = open(out).read()
        jout = os.path.join(tmp, "report.json")
        p = subprocess.run([thothlock, "--json", "--output", jout, "--", workload, "misses"],
                           env=env, capture_output=True, text=True, timeout=60)
        if p.returncode != 0:
            fail(f"misses --json: exit {p.returncode}: {p.stderr}")
        proc = json.load(open(jout))["processes"][0]
    if "in 64 counted" in text or "cache misses 1 in 32" not in text:
        fail(f"misses: the text report should say cache misses were sampled, not "
             f"acquisitions:\n{text[:1500]}")
    if (not proc["acquisitions_sampled"] or proc.get("miss_sampling_threads") != 1 or
            proc.get("acq_sampling_threads") != 0):
        fail(f"misses: JSON {proc}")
    print("ok misses sampled, acquisitions not: the report says cache misses")


def bad_values(lib, workload, tool):
    for mode in ("contention", "all"):
        for bad in ("0", "abc", "65537", "", "-3", "16"):
            if mode == "contention" and bad == "16":
                continue
            with tempfile.TemporaryDirectory() as tmp:
                env = {k: v for k, v in os.environ.items() if not k.startswith("THOTHLOCK_")}
                env.update(LD_PRELOAD=lib, THOTHLOCK_DIR=tmp, THOTHLOCK_MODE=mode,
                           THOTHLOCK_ACQ_SAMPLE=bad)
                p = subprocess.run([workload, "misses"], env=env, capture_output=True,
                                   text=True, timeout=60)
                if p.returncode != 0:
                    fail(f"THOTHLOCK_ACQ_SAMPLE={bad!r}: exit {p.returncode}")
                table = [f for f in os.listdir(tmp) if f.endswith(".table")][0]
                table = os.path.join(tmp, table)
                doc = dump(tool, table, table[:-len("table")] + "maps")
            err = p.stderr
            want = "THOTHLOCK_ACQ_SAMPLE=" + bad
            if want not in err:
                fail(f"{mode} THOTHLOCK_ACQ_SAMPLE={bad!r}: stderr {err!r} lacks {want!r}")
            if mode == "contention":
                if "counting one acquisition in 64" not in err:
                    fail(f"THOTHLOCK_ACQ_SAMPLE={bad!r}: stderr {err!r} does not say the default")
                if doc["processes"][0]["acquisitions_sample"] != 64:
                    fail(f"THOTHLOCK_ACQ_SAMPLE={bad!r}: sample "
                         f"{doc['processes'][0]['acquisitions_sample']}, expected 64")
            else:
                if "in 64" in err or "all mode counts every acquisition" not in err:
                    fail(f"all mode THOTHLOCK_ACQ_SAMPLE={bad!r}: stderr {err!r}")
                if doc["processes"][0]["acquisitions_sample"] != 1:
                    fail(f"all mode: acquisitions_sample {doc['processes'][0]['acquisitions_sample']}")
            print(f"ok {mode} THOTHLOCK_ACQ_SAMPLE={bad!r}: {err.strip()}")
    # THOTHLOCK_MODE and THOTHLOCK_CLOCK: a typo is named on stderr (it was
    # silently contention mode / the TSC), the run goes on in the default.
    for var, bad, default in (("THOTHLOCK_MODE", "ALL", "contention"),
                              ("THOTHLOCK_MODE", "bogus", "contention"),
                              ("THOTHLOCK_CLOCK", "monotnic", None)):
        with tempfile.TemporaryDirectory() as tmp:
            env = {k: v for k, v in os.environ.items() if not k.startswith("THOTHLOCK_")}
            env.update(LD_PRELOAD=lib, THOTHLOCK_DIR=tmp, **{var: bad})
            p = subprocess.run([workload, "misses"], env=env, capture_output=True,
                               text=True, timeout=60)
            if p.returncode != 0:
                fail(f"{var}={bad!r}: exit {p.returncode}")
            if f"{var}={bad}" not in p.stderr:
                fail(f"{var}={bad!r}: stderr {p.stderr!r} does not name it")
            if default:
                table = [f for f in os.listdir(tmp) if f.endswith(".table")][0]
                table = os.path.join(tmp, table)
                doc = dump(tool, table, table[:-len("table")] + "maps")
                if doc["processes"][0]["mode"] != default:
                    fail(f"{var}={bad!r}: mode {doc['processes'][0]['mode']}")
        print(f"ok {var}={bad!r}: {p.stderr.strip()}")


if __name__ == "__main__":
    main()
