#!/usr/bin/env python3
"""test_locks_owner_changes: all mode's owner changes, exact.

  check_owner_changes.py THOTHLOCK OWNER_WORKLOAD

owner_workload's two threads take turns (9 turns, 4 acquisitions of each
lock per turn), so each lock changes owner exactly 8 times in 36
acquisitions: a default mutex (its last owner kept in the mutex, table
format 4) taken by lock, trylock and timedlock; a recursive mutex and an
rwlock (their last owner in the table's key).  Run twice: as it comes,
and with THOTHLOCK_OWNER=key (every owner in the keys, format 3's way):
both must give the same exact counts.
"""
import json
import os
import subprocess
import sys
import tempfile

TURNS, RUN = 9, 4


def main():
    thothlock, program = sys.argv[1:3]
    for owner in ("mutex", "key"):
        env = dict(os.environ)
        env.pop("THOTHLOCK_OWNER", None)
        if owner == "key":
            env["THOTHLOCK_OWNER"] = "key"
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "report.json")
            p = subprocess.run([thothlock, "--all", "--json", "--output", out, "--", program],
                               env=env, stdout=subprocess.PIPE, text=True, timeout=60)
            if p.returncode != 0:
                sys.exit(f"FAIL owner_workload exited {p.returncode}")
            with open(out) as f:
                report = json.load(f)
        by_name = {l["name"]: l for l in report["locks"]}
        for name in ("owner_default", "owner_recursive", "owner_rwlock"):
            l = by_name.get(name)
            got = l and (l["acquisitions"], l["owner_changes"], l["holds_measured"])
            want = (TURNS * RUN, TURNS - 1, TURNS * RUN)
            if got != want:
                sys.exit(f"FAIL ({owner} word) {name}: acquisitions, owner changes, holds "
                         f"{got}, expected {want}")
            print(f"ok ({owner} word) {name}: {want[0]} acquisitions, {want[1]} owner changes")
    print("PASS")


if __name__ == "__main__":
    main()
