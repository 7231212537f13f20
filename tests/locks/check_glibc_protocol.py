#!/usr/bin/env python3
"""test_locks_glibc_protocol(_all): glibc_protocol.c under thothlock --json
(contention mode, or all-acquisitions mode with --all, whose fast path uses
the same inline trylock): its own checks of glibc's semantics all pass with
the inline trylock engaged (`fast_path` "inline": the start-up check
accepted this glibc), and the report counts the one forced contention
exactly.

  check_glibc_protocol.py THOTHLOCK GLIBC_PROTOCOL [--all]
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
        report_path = os.path.join(tmp, "report.json")
        ref_path = os.path.join(tmp, "ref.json")
        p = subprocess.run([thothlock, "--json", *mode, "--output", report_path, "--", program,
                            ref_path],
                           capture_output=True, text=True, timeout=60)
        sys.stdout.write(p.stdout)
        if p.returncode != 0:
            sys.exit("FAIL glibc_protocol exited %d under the profiler:\n%s%s" %
                     (p.returncode, p.stdout, p.stderr))
        report = json.load(open(report_path))
        ref = json.load(open(ref_path))
    proc = report["processes"][0]
    if proc.get("fast_path") != "inline":
        sys.exit("FAIL the inline trylock is not engaged on this glibc: %s" % proc)
    print("ok fast_path: inline")
    hot = [l for l in report["locks"] if int(l["address"], 16) == int(ref["contended"], 16)]
    if len(hot) != 1 or hot[0]["contentions"] != 1:
        sys.exit("FAIL the contended mutex should show exactly 1 contention: %s" % hot)
    # main: lock, trylock (free again); the waiter: lock = 3 acquisitions.
    if hot[0]["acquisitions"] != 3:
        sys.exit("FAIL acquisitions %d, expected 3" % hot[0]["acquisitions"])
    print("ok contended mutex: 1 contention, 3 acquisitions")
    # A recursive mutex's contended hold, taken again by its holder: in
    # contention mode its one held entry lasts to the outermost unlock
    # (both 20 ms pauses); all mode times each acquisition's hold.
    rec = [l for l in report["locks"] if int(l["address"], 16) == int(ref["recursive"], 16)]
    if len(rec) != 1 or rec[0]["contentions"] != 1:
        sys.exit("FAIL the recursive mutex should show exactly 1 contention: %s" % rec)
    if not mode:
        if rec[0]["holds_measured"] != 1 or rec[0]["hold_ns_total"] < 40e6:
            sys.exit("FAIL recursive contended hold: %d timed, %d ns (expected 1, >= 40 ms)" %
                     (rec[0]["holds_measured"], rec[0]["hold_ns_total"]))
        print("ok recursive contended hold: %.1f ms, to the outermost unlock" %
              (rec[0]["hold_ns_total"] / 1e6))
    print("PASS")


if __name__ == "__main__":
    main()
