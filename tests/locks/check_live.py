#!/usr/bin/env python3
"""test_locks_thothctl_live: `thothctl locks` reads a running process.

No thothd runs here: thothctl must say so and read the tables itself
(labelled); the same through a real thothd is test_locks_thothd.

  check_live.py THOTHCTL LIBTHOTHLOCK LIVE_WORKLOAD

live_workload runs with LD_PRELOAD=libthothlock.so in a private runtime
dir (THOTH_RUNTIME_DIR), forces 10 contended acquisitions of `live_lock`,
says "ready" and waits.  While it lives:
  * `thothctl --json locks --pid P` shows live_lock with exactly 10
    contentions and 20 acquisitions, its call site symbolized;
  * the text form names the lock, `--top 1` keeps one lock;
  * `--pid` of a process that publishes nothing: exit 1 and a line saying
    so; a bad `--top`: exit 2.
Then its stdin closes: it exits, its table is removed, and `thothctl
locks` says no process publishes statistics (exit 1).
"""
import json
import os
import subprocess
import sys

sys.dont_write_bytecode = True  # importing a helper leaves no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
from checklib import fail  # noqa: E402  fail(), wait_for(): one copy for the checks
from sockdir import sock_tempdir  # noqa: E402  a short folder where TMPDIR is too long


def main():
    thothctl, lib, workload = sys.argv[1:4]
    with sock_tempdir("thoth-locks-live-") as rt:
        env = dict(os.environ, THOTH_RUNTIME_DIR=rt, LD_PRELOAD=lib)
        env.pop("THOTHLOCK_DIR", None)
        proc = subprocess.Popen([workload, "10"], env=env, stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True)
        try:
            line = proc.stdout.readline()
            if not line.startswith("ready"):
                fail(f"workload said {line!r}")
            pid = proc.pid
            ctl_env = dict(os.environ)
            ctl_env.pop("LD_PRELOAD", None)

            def ctl(*args):
                return subprocess.run([thothctl, "--runtime-dir", rt, *args], env=ctl_env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True, timeout=60)

            r = ctl("--json", "locks", "--pid", str(pid))
            if r.returncode != 0:
                fail(f"thothctl locks exited {r.returncode}: {r.stderr}")
            if "thothd is not running" not in r.stderr or "directly" not in r.stderr:
                fail(f"the direct read is not labelled: {r.stderr}")
            doc = json.loads(r.stdout)
            if doc["processes"][0]["pid"] != pid or doc["processes"][0]["exited"]:
                fail(f"processes {doc['processes']}")
            live = [l for l in doc["locks"] if l["name"] == "live_lock"]
            if len(live) != 1:
                fail(f"live_lock not in {[l['name'] for l in doc['locks']]}")
            l = live[0]
            if l["contentions"] != 10 or l["acquisitions"] != 20:
                fail(f"live_lock contentions {l['contentions']} acquisitions {l['acquisitions']}, "
                     "expected 10 and 20")
            fns = {s["function"] for s in l["call_sites"] if s["contentions"]}
            if fns != {"waiter"}:
                fail(f"contended call sites {fns}, expected waiter")
            print(f"ok live JSON: live_lock {l['contentions']} contentions, "
                  f"wait {l['wait_ns_total']} ns, sites {fns}")

            r = ctl("locks", "--top", "1")
            if r.returncode != 0 or "live_lock" not in r.stdout:
                fail(f"text report: {r.returncode} {r.stdout} {r.stderr}")
            if not r.stdout.startswith("(read directly from"):
                fail(f"the text report does not say it was read directly: {r.stdout[:200]}")
            if "1 shown" not in r.stdout:
                fail(f"--top 1 shows more: {r.stdout}")
            print("ok text report, --top 1")

            r = ctl("locks", "--pid", str(os.getpid()))
            if r.returncode != 1 or "publishes no lock statistics" not in r.stderr:
                fail(f"--pid of an unprofiled process: {r.returncode} {r.stderr}")
            r = ctl("locks", "--top", "zero")
            if r.returncode != 2 or "--top" not in r.stderr:
                fail(f"bad --top: {r.returncode} {r.stderr}")
            print("ok errors: unprofiled pid (1), bad --top (2)")
        finally:
            proc.stdin.close()
            proc.wait(timeout=30)
        if proc.returncode != 0:
            fail(f"workload exited {proc.returncode}")
        left = os.listdir(os.path.join(rt, "locks"))
        if left:
            fail(f"tables left after exit: {left}")
        r = subprocess.run([thothctl, "--runtime-dir", rt, "locks"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, timeout=60)
        if r.returncode != 1 or "no running process" not in r.stderr:
            fail(f"after exit: {r.returncode} {r.stderr}")
        print("ok table removed at exit; nothing left to show")
    print("PASS")


if __name__ == "__main__":
    main()
