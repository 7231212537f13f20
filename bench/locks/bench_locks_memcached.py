#!/usr/bin/env python3
"""bench_locks_memcached - contention-only mode on Debian's memcached, per
operation (docs/BENCHMARKS.md "Contention-only mode on memcached").

  bench_locks_memcached callgrind [LIB...]
  bench_locks_memcached events [LIB...]
  bench_locks_memcached pairs ROUNDS OPS LIB_OLD [LIB_NEW]

callgrind: memcached -t 4 under `valgrind --tool=callgrind
--separate-threads=yes` serving memcaslap (-T 1 -c 4) 4,000 and 12,000
operations, unprofiled and preloaded with each LIB (default: this build's)
in contention-only mode; the difference of the two runs over the 8,000
operations between them (start-up and exit cancel), per thread group:
memcached 1.6.18's worker threads (callgrind threads 3-6: -t 4), and
thread 9, the LRU maintainer (it alone tries item locks and releases out
of order).  The maintainer works by the clock, not per operation, so its
figures are also given per lock it releases (its work per unlock is what
the profiler changes); "normalized" scales that to the unprofiled run's
unlocks per operation.  Also the library's own instructions per operation
by function and the lock calls per operation.  Deterministic up to the
thread interleaving valgrind picks.

events: the same runs with callgrind's cache and branch simulation
(--cache-sim=yes --branch-sim=yes), per operation for the workers and
the maintainer (scaled by its unlocks as above): instructions, D1 misses
(read + write), LL misses, mispredicted branches (conditional +
indirect), each added over the unprofiled run.

pairs: memcached's CPU time per operation (all its threads' schedstat run
time, ns) under memcaslap -T 2 -c 32 -x OPS, unprofiled, LIB_OLD and
LIB_NEW (default this build's) in rotating order, ROUNDS rounds; ratios
per round and medians with quartiles.
"""
import glob
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict

LIB = "@THOTHLOCK_LIB_PATH@"
WORKERS = (3, 4, 5, 6)
MAINTAINER = 9
LOCK_FNS = ("pthread_mutex_lock", "pthread_mutex_unlock", "pthread_mutex_trylock")


def need(*tools):
    for t in tools:
        if not shutil.which(t):
            print(f"bench_locks_memcached: skipped ({t} not installed)")
            sys.exit(0)


def serve(pre, shm, args, port, wrap=()):
    env = dict(os.environ, THOTHLOCK_DIR=shm)
    env.pop("LD_PRELOAD", None)
    if pre:
        env["LD_PRELOAD"] = pre
    user = subprocess.run(["id", "-un"], capture_output=True, text=True).stdout.strip()
    p = subprocess.Popen([*wrap, "memcached", "-u", user,
                          "-t", "4", "-p", str(port), "-l", "127.0.0.1", "-U", "0", *args],
                         env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL if not os.environ.get("BENCH_DEBUG") else None)
    for _ in range(400):
        if subprocess.run(["memcaslap", "-s", f"127.0.0.1:{port}", "-T", "1", "-c", "1", "-x", "1"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0:
            return p
        time.sleep(0.05)
    p.kill()
    sys.exit("memcached did not start")


def stop(p, shm):
    p.terminate()
    p.wait()
    for f in glob.glob(os.path.join(shm, "*.table")) + glob.glob(os.path.join(shm, "*.maps")):
        os.unlink(f)


def parse(path):
    """Self instructions per function, and calls per called function."""
    names, selfc, calls = {}, defaultdict(int), defaultdict(int)
    fn, pending, after_calls, total, events = None, None, False, 0, {}
    with open(path) as f:
        for line in f:
            if line.startswith("events:"):
                names_ev = line.split()[1:]
                continue
            m = re.match(r"^(fn|cfn|fl|fi|fe|cfi|cfl|ob|cob)=\((\d+)\)(?: (.*))?$", line.rstrip("\n"))
            if m:
                kind, idx, name = m.groups()
                key = ("fn" if kind in ("fn", "cfn") else kind, idx)
                if name is not None:
                    names[key] = name
                if kind == "fn":
                    fn = names.get(key)
                elif kind == "cfn":
                    pending = names.get(key)
                continue
            if line.startswith("calls="):
                calls[pending] += int(line.split()[0][6:])
                after_calls = True
                continue
            if line.startswith(("summary:", "totals:")):
                total = int(line.split()[1])
                events = dict(zip(names_ev, map(int, line.split()[1:])))
                continue
            if line[:1].isdigit() or line[:1] in "+-*":
                if after_calls:
                    after_calls = False
                    continue
                parts = line.split()
                if len(parts) >= 2 and fn:
                    selfc[fn] += int(parts[1])
    return total, selfc, calls, events


def callgrind(libs, sim=False):
    need("valgrind", "memcached", "memcaslap")
    ops_lo, ops_hi = 4000, 12000
    shm = tempfile.mkdtemp(prefix="bench_locks_memcached.", dir="/dev/shm")
    try:
        maxconns = int(subprocess.run(["sh", "-c", "ulimit -Hn"], capture_output=True,
                                      text=True).stdout) - 12
        runs = {}
        for lib in [None, *libs]:
            for n in (ops_lo, ops_hi):
                out = os.path.join(shm, f"cg.{n}")
                port = random.randrange(20000, 40000)
                p = serve(lib, shm, ["-c", str(maxconns)], port,
                          ("valgrind", "--tool=callgrind", "--separate-threads=yes",
                           *(("--cache-sim=yes", "--branch-sim=yes") if sim else ()),
                           f"--callgrind-out-file={out}"))
                subprocess.run(["memcaslap", "-s", f"127.0.0.1:{port}", "-T", "1", "-c", "4",
                                "-x", str(n)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                stop(p, shm)
                runs[(lib, n)] = {int(f.rsplit("-", 1)[1]): parse(f) for f in glob.glob(out + "-*")}
                for f in glob.glob(out + "-*"):
                    os.unlink(f)
    finally:
        shutil.rmtree(shm, ignore_errors=True)
    ops = ops_hi - ops_lo

    def per_op(lib, tids, what):
        lo, hi = runs[(lib, ops_lo)], runs[(lib, ops_hi)]
        return sum(what(hi.get(t)) - what(lo.get(t)) for t in tids if t in hi or t in lo) / ops

    total = lambda r: r[0] if r else 0
    base_ev = {}
    # memcached's unlock calls: the wrapper's when preloaded (which may
    # call glibc's in turn), else glibc's own
    unlocks = lambda r: (r[2].get("pthread_mutex_unlock") or
                         r[2].get("pthread_mutex_unlock@@GLIBC_2.2.5", 0)) if r else 0
    base_unl = per_op(None, [MAINTAINER], unlocks)
    base_w = per_op(None, WORKERS, total)
    base_m = per_op(None, [MAINTAINER], total)
    base_all = per_op(None, range(1, 64), total)
    if sim:
        groups = {"Ir": ("Ir",), "D1 misses": ("D1mr", "D1mw"), "LL misses": ("DLmr", "DLmw"),
                  "mispredicted branches": ("Bcm", "Bim")}
        print(f"memcached -t 4 under callgrind --cache-sim --branch-sim, memcaslap -T 1 -c 4: "
              f"per operation ({ops} between the runs); maintainer scaled to the unprofiled "
              f"run's {base_unl:.2f} unlocks per operation")
        for lib in [None, *libs]:
            unl = per_op(lib, [MAINTAINER], unlocks)
            row = []
            for g, keys in groups.items():
                ev = lambda r: sum(r[3].get(k, 0) for k in keys) if r else 0
                w = per_op(lib, WORKERS, ev)
                m = per_op(lib, [MAINTAINER], ev) / unl * base_unl if unl else 0
                if lib is None:
                    base_ev[g] = (w, m)
                bw, bm = base_ev[g]
                row.append(f"{g} workers {w:.2f} ({w - bw:+.2f}) + maintainer {m:.2f} "
                           f"({m - bm:+.2f}) = {w + m - bw - bm:+.2f}")
            print(f"{lib or 'unprofiled'}:\n  " + "\n  ".join(row))
        return
    print(f"memcached -t 4 under callgrind, memcaslap -T 1 -c 4: per operation ({ops} between the runs)")
    print(f"unprofiled: workers {base_w:.0f} instructions, maintainer {base_m:.0f} "
          f"({base_unl:.2f} unlocks: {base_m / base_unl:.1f} per unlock), all threads {base_all:.0f}")
    for lib in libs:
        w = per_op(lib, WORKERS, total)
        m = per_op(lib, [MAINTAINER], total)
        unl = per_op(lib, [MAINTAINER], unlocks)
        allt = per_op(lib, range(1, 64), total)
        norm = (m / unl - base_m / base_unl) * base_unl
        print(f"{lib}:")
        print(f"  workers {w:.0f} ({w - base_w:+.0f}); maintainer {m:.0f} ({unl:.2f} unlocks: "
              f"{m / unl:.1f} per unlock, {m / unl - base_m / base_unl:+.1f}; normalized "
              f"{norm:+.0f} per operation); all threads {allt:.0f} ({allt - base_all:+.0f})")
        print(f"  added per operation: workers + normalized maintainer {w - base_w + norm:+.0f} "
              f"({(w - base_w + norm) / (base_w + base_m):+.1%} of their unprofiled instructions)")
        for tids, label in ((WORKERS, "workers"), ([MAINTAINER], "maintainer")):
            c = defaultdict(float)
            for t in tids:
                lo, hi = runs[(lib, ops_lo)].get(t), runs[(lib, ops_hi)].get(t)
                for k in set(lo[2] if lo else {}) | set(hi[2] if hi else {}):
                    c[k] += ((hi[2].get(k, 0) if hi else 0) - (lo[2].get(k, 0) if lo else 0)) / ops
            watched = [k for k in c if k in LOCK_FNS or k in (
                "release_unordered", "release_out_of_order", "release_slow", "try_acquire",
                "cache_miss", "commit", "lock_entry")]
            print(f"  {label} calls per operation: " +
                  ", ".join(f"{k} {c[k]:.2f}" for k in sorted(watched, key=lambda k: -c[k])
                            if abs(c[k]) >= 0.005))


def pairs(rounds, nops, old, new):
    need("memcached", "memcaslap")
    shm = tempfile.mkdtemp(prefix="bench_locks_memcached.", dir="/dev/shm")

    def cpu(pid):
        s = 0
        for f in glob.glob(f"/proc/{pid}/task/*/schedstat"):
            try:
                s += int(open(f).read().split()[0])
            except (OSError, ValueError, IndexError):
                pass
        return s

    def one(lib):
        port = random.randrange(20000, 40000)
        p = serve(lib, shm, ["-m", "64"], port)
        c0 = cpu(p.pid)
        r = subprocess.run(["memcaslap", "-s", f"127.0.0.1:{port}", "-T", "2", "-c", "32",
                            "-x", str(nops)], capture_output=True, text=True)
        c1 = cpu(p.pid)
        stop(p, shm)
        m = re.search(r"TPS:\s*(\d+)", r.stdout)
        return (c1 - c0) / nops, int(m.group(1)) if m else 0

    load = lambda: open("/proc/loadavg").read().split()[0]
    print(f"memcached -t 4, memcaslap -T 2 -c 32 -x {nops}, {rounds} rounds; old = {old}; "
          f"new = {new}; load {load()}")
    ro, rn, rx = [], [], []
    try:
        for r in range(rounds):
            order = [("base", None), ("old", old), ("new", new)]
            order = order[r % 3:] + order[:r % 3]
            res = {name: one(lib) for name, lib in order}
            b, o, n = res["base"][0], res["old"][0], res["new"][0]
            ro.append(b / o)
            rn.append(b / n)
            rx.append(n / o)
            print(f"round {r + 1}: CPU per op base {b:.0f} ns, old {o:.0f}, new {n:.0f}: "
                  f"base/old {b / o:.4f}, base/new {b / n:.4f}, new/old {n / o:.4f}; "
                  f"ops/s {res['base'][1]} / {res['old'][1]} / {res['new'][1]}; load {load()}")
    finally:
        shutil.rmtree(shm, ignore_errors=True)

    def q(a):
        s = sorted(a)
        return statistics.median(s), s[len(s) // 4], s[(3 * len(s)) // 4]
    print("medians (quartiles): base/old %.4f (%.4f..%.4f), base/new %.4f (%.4f..%.4f), "
          "new/old CPU %.4f (%.4f..%.4f)" % (*q(ro), *q(rn), *q(rx)))


def main():
    if len(sys.argv) >= 2 and sys.argv[1] == "callgrind":
        callgrind(sys.argv[2:] or [LIB])
    elif len(sys.argv) >= 2 and sys.argv[1] == "events":
        callgrind(sys.argv[2:] or [LIB], sim=True)
    elif len(sys.argv) in (5, 6) and sys.argv[1] == "pairs":
        pairs(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4],
              sys.argv[5] if len(sys.argv) == 6 else LIB)
    else:
        print(__doc__)
        sys.exit(2)


if __name__ == "__main__":
    main()
