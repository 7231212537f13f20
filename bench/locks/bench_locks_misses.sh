#!/bin/sh
# bench_locks_misses - what an all-acquisitions acquisition costs in
# instructions and cache misses, counted (this VM has no hardware cache
# counters): callgrind's cache simulation (D1 48 KiB 12-way, 64 B lines)
# of `sysbench mutex` (2 threads, 4096 mutexes, 100 loops) at 10,000 and
# 30,000 locks per thread, unprofiled and under libthothlock.so in all
# mode; the difference of the two runs over the 40,000 acquisitions
# between them, so start-up and exit cancel out.  Deterministic: valgrind
# runs the threads one at a time.  Then the pages each touches in a
# default `sysbench mutex --threads=4` run (4096 mutexes, 50,000 locks per
# thread), as minor page faults over the unprofiled run's (medians of 3:
# nearly constant): each first acquisition of a (thread, lock, call site)
# claims table entries, and the first touch of a page costs ~25 us on
# this VM (a PVM guest), ~1000 cache misses' worth.
#   bench_locks_misses [OTHER_LIB...]   also each OTHER_LIB (another build
#                                       of libthothlock.so, e.g. format 3)
# Contention-only mode is measured too (its line also gives the 30,000-lock
# run's whole instruction count against the unprofiled one's), and all mode
# with THOTHLOCK_HOLD_SAMPLE=64.
set -eu
LIB=@THOTHLOCK_LIB_PATH@
CPUTIME=@CPUTIME_PATH@
command -v valgrind >/dev/null 2>&1 || { echo "bench_locks_misses: skipped (valgrind not installed)"; exit 0; }
command -v sysbench >/dev/null 2>&1 || { echo "bench_locks_misses: skipped (sysbench not installed)"; exit 0; }
tmp=$(mktemp -d /dev/shm/bench_locks_misses.XXXXXX 2>/dev/null) || tmp=$(mktemp -d /tmp/bench_locks_misses.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
measure() { # LIB|base WHAT [MODE [HOLD_SAMPLE]] -> one line per acquisition
	for n in 10000 30000; do
		if [ "$1" = base ]; then
			valgrind --tool=callgrind --cache-sim=yes --callgrind-out-file="$tmp/cg.$n" \
				sysbench mutex --threads=2 --mutex-locks=$n --mutex-loops=100 run >/dev/null 2>&1
		else
			THOTHLOCK_MODE=${3:-all} THOTHLOCK_HOLD_SAMPLE=${4:-1} THOTHLOCK_DIR="$tmp" LD_PRELOAD="$1" \
				valgrind --tool=callgrind --cache-sim=yes --callgrind-out-file="$tmp/cg.$n" \
				sysbench mutex --threads=2 --mutex-locks=$n --mutex-loops=100 run >/dev/null 2>&1
			rm -f "$tmp"/*.table "$tmp"/*.maps
		fi
		grep -m1 '^summary:\|^totals:' "$tmp/cg.$n" | cut -d' ' -f2- >"$tmp/sum.$n"
	done
	[ "$1" = base ] && cp "$tmp/sum.30000" "$tmp/base.30000"
	paste -d' ' "$tmp/sum.10000" "$tmp/sum.30000" "$tmp/base.30000" | awk -v what="$2" '{
		n = NF / 3; acq = 40000
		for (i = 1; i <= n; i++) d[i] = ($(i + n) - $i) / acq
		printf "%s: per acquisition %.1f instructions, %.2f D1 misses (read %.2f, write %.2f), %.2f LL misses; whole 30,000-lock run %.4f x the unprofiled instructions\n",
			what, d[1], d[5] + d[6], d[5], d[6], d[8] + d[9], $(n + 1) / $(2 * n + 1) }'
}
measure base "sysbench mutex, unprofiled"
measure "$LIB" "contention-only mode, this build" contention
measure "$LIB" "all mode, this build ($LIB)"
measure "$LIB" "all mode, THOTHLOCK_HOLD_SAMPLE=64" all 64
for other in "$@"; do
	measure "$other" "all mode, $other"
done
faults() { # LIB|base -> median minor faults of 3 default runs
	for _ in 1 2 3; do
		if [ "$1" = base ]; then
			"$CPUTIME" -f "$tmp/f" env sysbench mutex --threads=4 run >/dev/null
		else
			"$CPUTIME" -f "$tmp/f" env THOTHLOCK_MODE=all THOTHLOCK_DIR="$tmp" \
				LD_PRELOAD="$1" sysbench mutex --threads=4 run >/dev/null
			rm -f "$tmp"/*.table "$tmp"/*.maps
		fi
		cut -d' ' -f2 "$tmp/f"
	done | sort -n | sed -n 2p
}
base=$(faults base)
echo "sysbench mutex --threads=4, unprofiled: $base minor page faults"
for lib in "$LIB" "$@"; do
	n=$(faults "$lib")
	echo "all mode, $lib: $n minor page faults (+$((n - base)))"
done
