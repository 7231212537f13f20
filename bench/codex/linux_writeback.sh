#!/bin/bash
# [SEED=N] linux_writeback.sh [SECONDS (600)] [DIR (.)] - the Linux default writeback
# baseline of bench_codex MEASURED on this kernel instead of modelled: the
# same trace (5 services, each appending a record every U(1, 10) s, no
# fsync) written to 5 plain files on DIR's file system in real time, while
# bpftrace records every writeback_single_inode of those 5 inodes (the
# flusher writing their dirty pages).  A "flush epoch" is a burst of such
# writebacks with less than 1 s between them (one flusher pass).  Prints
# the epochs, per minute, and the ratio to codex's 1 per 60 s budget window.
#
# What it does not count: ext4's journal commits (jbd2, every 5 s while
# metadata is dirty: mtime and size of these files), which wake the disk
# too; on a disk shared with other work they cannot be told apart.  So the
# figure is a lower bound on the kernel's disk wake-ups for this trace.
# Needs root (bpftrace) and python3.  Not run by `make bench` (10 minutes
# of wall time): docs/BENCHMARKS.md gives the command.
set -eu
SECONDS_RUN=${1:-600}
DIR=$(mktemp -d "${2:-.}/linux-wb-XXXXXX")
OUT=$DIR/events
cleanup() {
	[ -n "${BT:-}" ] && kill -INT "$BT" 2>/dev/null && wait "$BT" 2>/dev/null
	[ -n "${WR:-}" ] && kill "$WR" 2>/dev/null
	rm -rf "$DIR"
}
trap cleanup EXIT
command -v bpftrace >/dev/null || { echo "linux_writeback: bpftrace not installed"; exit 77; }
for k in 0 1 2 3 4; do : >"$DIR/svc$k.log"; done
sync -f "$DIR/svc0.log"     # their creation is not what we measure
inos=$(for k in 0 1 2 3 4; do stat -c %i "$DIR/svc$k.log"; done)
filter=$(for i in $inos; do printf 'args->ino == %s || ' "$i"; done)
filter=${filter% || }
bpftrace -B line -e "tracepoint:writeback:writeback_single_inode /$filter/ { printf(\"%llu %llu\\n\", nsecs, args->ino); }" \
	>"$OUT" 2>"$DIR/bpftrace.err" & BT=$!
for _ in $(seq 100); do grep -q Attaching "$OUT" 2>/dev/null && break; sleep 0.1; done
grep -q Attaching "$OUT" || { echo "linux_writeback: bpftrace did not attach: $(cat "$DIR/bpftrace.err")"; exit 1; }
start_ns=$(python3 -c 'import time; print(time.clock_gettime_ns(time.CLOCK_MONOTONIC))')
python3 - "$DIR" "$SECONDS_RUN" "${SEED:-0}" <<'EOF' & WR=$!
import random, sys, threading, time
d, secs, seed = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
end = time.monotonic() + secs
def svc(k):
    rng = random.Random(seed * 100 + k)
    with open("%s/svc%d.log" % (d, k), "a") as f:
        n = 0
        while True:
            t = time.monotonic() + rng.uniform(1, 10)
            if t >= end:
                return
            time.sleep(t - time.monotonic())
            n += 1
            f.write("service %d record %d %s\n" % (k, n, "x" * 100))
            f.flush()     # into the page cache (write(2)), never fsync
ts = [threading.Thread(target=svc, args=(k,)) for k in range(5)]
for t in ts: t.start()
for t in ts: t.join()
EOF
wait "$WR"; WR=
sleep 1
kill -INT "$BT"; wait "$BT" 2>/dev/null || true; BT=
python3 - "$OUT" "$start_ns" "$SECONDS_RUN" <<'EOF'
import sys
path, start, secs = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
ts = sorted(int(l.split()[0]) for l in open(path) if l[:1].isdigit())
ts = [t for t in ts if t >= start]
epochs, last = 0, None
for t in ts:
    if last is None or t - last > 1_000_000_000:
        epochs += 1
    last = t
per_min = epochs / (secs / 60)
codex = secs / 60          # one epoch per 60 s budget window (bench_codex: 10 in 10 min)
print("linux default writeback, measured (%s, %.0f s, 5 services, U(1,10) s): %d inode writebacks in %d flush epochs, "
      "%.1f per minute; codex %.0f epochs: %.1fx fewer" % ("this kernel", secs, len(ts), epochs, per_min, codex,
                                                            epochs / codex if codex else 0))
EOF
