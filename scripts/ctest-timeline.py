#!/usr/bin/env python3
"""ctest-timeline.py: where a ctest -j run's wall time goes (docs/TESTING.md).

  scripts/ctest-timeline.py run LOG -- CTEST-ARGS...   run ctest, echo its output,
                                                       keep it time-stamped in LOG
  scripts/ctest-timeline.py show LOG [N]               read LOG back

Prints the run's wall time, the sum of the tests' own times, how long 0, 1,
2... tests ran at once (with -j2, time at 1 is a CPU idle unless that test
keeps both busy), when the first RUN_SERIAL-like stretch began (the tests
that ran alone at the end), and the N longest tests with their start and end.
"""
import collections
import re
import subprocess
import sys
import time


def run(log, args):
    with open(log, "w") as out:
        p = subprocess.Popen(["ctest"] + args, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, bufsize=1)
        for line in p.stdout:
            sys.stdout.write(line)
            out.write("%.3f %s" % (time.time(), line))
        return p.wait()


def show(log, top):
    start, end, result = {}, {}, {}
    t0 = None
    for line in open(log):
        stamp, _, rest = line.rstrip("\n").partition(" ")
        try:
            t = float(stamp)
        except ValueError:
            continue
        t0 = t if t0 is None else t0
        m = re.search(r"Start\s+\d+: (\S+)", rest)
        if m:
            start[m.group(1)] = t - t0
            continue
        m = re.search(r"Test\s+#\d+: (\S+) \.+\**\s*(.*?)\s+([\d.]+) sec", rest)
        if m:
            end[m.group(1)] = t - t0
            result[m.group(1)] = (m.group(2), float(m.group(3)))
    if not end:
        sys.exit("%s: no finished test in it" % log)
    events = []
    for name, t in end.items():
        events += [(start.get(name, t - result[name][1]), 1), (t, -1)]
    events.sort()
    at = collections.Counter()
    cur, last = 0, 0.0
    for t, d in events:
        at[cur] += t - last
        cur, last = cur + d, t
    # The tail: from the last time two tests ran at once to the end.
    tail_from, cur = 0.0, 0
    for t, d in events:
        cur += d
        if cur >= 2:
            tail_from = t
    print("%d tests, wall %.0f s, sum of test times %.0f s" %
          (len(end), max(end.values()), sum(r[1] for r in result.values())))
    print("time with 0/1/2/... tests running: " +
          ", ".join("%d: %.0f s" % (k, v) for k, v in sorted(at.items())))
    print("one test at a time from %.0f s to the end (%.0f s)" %
          (tail_from, max(end.values()) - tail_from))
    skipped = [n for n, r in result.items() if "Skipped" in r[0]]
    failed = [n for n, r in result.items() if not r[0].startswith("Passed") and n not in skipped]
    if skipped:
        print("skipped: " + " ".join(skipped))
    if failed:
        print("not passed: " + " ".join(failed))
    for name, r in sorted(result.items(), key=lambda x: -x[1][1])[:top]:
        print("%7.1f s  start %5.0f  end %5.0f  %s %s" %
              (r[1], start.get(name, 0), end[name], name, r[0]))


if __name__ == "__main__":
    if len(sys.argv) >= 4 and sys.argv[1] == "run" and sys.argv[3] == "--":
        sys.exit(run(sys.argv[2], sys.argv[4:]))
    if len(sys.argv) in (3, 4) and sys.argv[1] == "show":
        show(sys.argv[2], int(sys.argv[3]) if len(sys.argv) == 4 else 30)
        sys.exit(0)
    sys.exit(__doc__)
