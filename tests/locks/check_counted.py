#!/usr/bin/env python3
"""test_locks_counted: contention mode counts an acquisition before its
attempt (never inside the hold) and takes back the attempts that acquire
nothing (counted_workload.c).

  check_counted.py LIBTHOTHLOCK COUNTED_WORKLOAD LOCK_REPORT_DUMP

While a waiter sleeps in pthread_mutex_lock on held_lock (main holds it),
the live table already counts the waiter's acquisition: 2 (main's and the
waiter's), with a busy trylock and a timed-out timedlock counted as such
and not as acquisitions.  After exit: 2, 1 contention.
"""
import json
import os
import subprocess
import sys
import tempfile


def fail(msg):
    sys.exit(f"FAIL {msg}")


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
            live = held(dump(tool, os.path.join(tmp, f"{proc.pid}.table"), str(proc.pid)))
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
    print("PASS")


if __name__ == "__main__":
    main()
