#!/usr/bin/env python3
"""thothctl sched --from's shared timer wake-ups against the definition.

A timer wake-up is shared when a timer wake-up of another process lies
within 200 us of it (docs/SCHED.md).  thothctl computes this in one sweep
(hostile46: it compared every pair, quadratic); here every pair is
compared on random traces, with many wake-ups exactly 200 us, 200.001 us
and 0 apart, and the per-process counts must be the same.  The traces'
timestamps are written in microseconds with three decimals, as thothd
writes them: a nanosecond lost converting "1.001" (1000.999... ns, cut
to 1000) moves a pair across the 200 us edge.

usage: sched_shared_bruteforce.py THOTHCTL [SEED]   (its trace: a temp dir under $TMPDIR)
"""
import json
import random
import subprocess
import sys
import tempfile

SHARE_NS = 200_000


def trace(rng):
    n = rng.randint(1, 400)
    pids = list(range(1, rng.randint(2, 8)))
    events = []
    t = rng.randint(0, 5_000_000)
    for _ in range(n):
        step = rng.choice([0, 1, 999, SHARE_NS, SHARE_NS + 1, SHARE_NS - 1,
                           rng.randint(0, 3 * SHARE_NS)])
        t += step
        arg0 = rng.choice([2, 2, 2, 1, 3, 2 | 16])      # timer, fd, both, rung timer
        events.append((t, rng.choice(pids), arg0))
    rng.shuffle(events)                                  # thothd's rings are drained per process
    return events


def expected(events):
    timer = sorted((t, p) for t, p, a in events if a & 2)
    shared = {}
    for i, (ti, pi) in enumerate(timer):
        if any(pj != pi and abs(tj - ti) <= SHARE_NS for tj, pj in timer):
            shared[pi] = shared.get(pi, 0) + 1
    return shared


def main():
    thothctl = sys.argv[1]
    seed = int(sys.argv[2]) if len(sys.argv) > 2 else 46
    with tempfile.TemporaryDirectory(prefix="thoth-sched-shared-") as tmp:
        return run(thothctl, seed, tmp + "/bruteforce.json")


def run(thothctl, seed, path):
    rng = random.Random(seed)
    for k in range(60):
        events = trace(rng)
        with open(path, "w") as f:
            f.write('{"displayTimeUnit":"ns","traceEvents":[\n')
            for t, p, a in events:
                f.write('{"ph":"i","name":"loop_wakeup","ts":%d.%03d,"pid":%d,"tid":1,"s":"t",'
                        '"args":{"arg0":%d,"arg1":0}},\n' % (t // 1000, t % 1000, p, a))
            f.write("]}\n")
        out = subprocess.run([thothctl, "--json", "sched", "--from", path], capture_output=True,
                             text=True, timeout=60)
        if out.returncode != 0:
            print("trace %d (seed %d): exit %d: %s" % (k, seed, out.returncode, out.stderr))
            return 1
        got = {p["pid"]: p["timer_wakeups_shared_across_processes"]
               for p in json.loads(out.stdout)["processes"]
               if p["timer_wakeups_shared_across_processes"]}
        want = expected(events)
        if got != want:
            print("trace %d (seed %d, %d events): shared per pid %s, every pair says %s"
                  % (k, seed, len(events), got, want))
            return 1
    print("ok: 60 random traces' shared timer wake-ups as every pair says (seed %d)" % seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
