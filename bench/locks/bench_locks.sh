#!/bin/sh
# bench_locks - what the lock profiler (libthothlock.so) costs, each figure
# with its baseline measured in the same run, as medians of REPS rounds
# whose order alternates (baseline, contention-only, all-acquisitions):
#   1. the uncontended lock/unlock pair: ns (CLOCK_MONOTONIC over 10^7
#      pairs) and instructions (callgrind, the difference of two runs);
#   2. sysbench mutex (its defaults: 4096 mutexes, and one hot mutex):
#      total time;
#   3. memcached (4 threads) under memcaslap on 127.0.0.1: ops/s.
# Environment: BENCH_LOCKS_REPS (5), BENCH_LOCKS_SECONDS (memcaslap run, 3),
# THOTHLOCK (the launcher).  Skips a part whose tool is missing, saying so.
set -eu
THOTHLOCK=${THOTHLOCK:-@THOTHLOCK_PATH@}
UNC=@UNCONTENDED_PATH@
LIB=@THOTHLOCK_LIB_PATH@
REPS=${BENCH_LOCKS_REPS:-5}
LOAD_S=${BENCH_LOCKS_SECONDS:-3}
tmp=$(mktemp -d /tmp/bench_locks.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

median() { sort -g | awk '{a[NR]=$1} END {if (NR == 0) print "nan"; else if (NR % 2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
# run MODE CMD...: CMD plain (base), under thothlock (contention), thothlock --all (all).
run() {
	mode=$1; shift
	case $mode in
	base) "$@" ;;
	contention) "$THOTHLOCK" --output /dev/null -- "$@" ;;
	all) "$THOTHLOCK" --all --output /dev/null -- "$@" ;;
	esac
}
# The same, replacing the shell (for a server started in the background:
# $! is then the server or thothlock itself, which passes SIGTERM on).
run_exec() {
	mode=$1; shift
	case $mode in
	base) exec "$@" ;;
	contention) exec "$THOTHLOCK" --output /dev/null -- "$@" ;;
	all) exec "$THOTHLOCK" --all --output /dev/null -- "$@" ;;
	esac
}
modes="base contention all"
echo "rounds: $REPS (medians); modes: baseline, contention-only (default), all-acquisitions (--all)"

# 1. Uncontended pair.
for r in $(seq "$REPS"); do
	for m in $modes; do
		run "$m" "$UNC" 10000000 | awk '/ns_per_pair/ {print $2}' >>"$tmp/unc_$m"
	done
done
b=$(median <"$tmp/unc_base"); c=$(median <"$tmp/unc_contention"); a=$(median <"$tmp/unc_all")
awk -v b="$b" -v c="$c" -v a="$a" 'BEGIN {
	printf "uncontended lock+unlock pair: baseline %.2f ns, contention-only %.2f ns (+%.2f ns), all %.2f ns (+%.2f ns)\n", b, c, c-b, a, a-b }'
if command -v valgrind >/dev/null 2>&1; then
	instr() { # instructions of PAIRS pairs in MODE
		case $1 in
		base) valgrind --tool=callgrind --callgrind-out-file=/dev/null "$UNC" "$2" ;;
		contention) THOTHLOCK_DIR=$tmp LD_PRELOAD=$LIB valgrind --tool=callgrind --callgrind-out-file=/dev/null "$UNC" "$2" ;;
		all) THOTHLOCK_MODE=all THOTHLOCK_DIR=$tmp LD_PRELOAD=$LIB valgrind --tool=callgrind --callgrind-out-file=/dev/null "$UNC" "$2" ;;
		esac 2>&1 >/dev/null | awk '/Collected :/ {print $NF}'
	}
	for m in $modes; do
		lo=$(instr "$m" 100000); hi=$(instr "$m" 1100000)
		echo $(( (hi - lo) / 1100000 )) >"$tmp/cg_$m"   # pairs + warm-up (n/10) differ by 1.1e6
	done
	awk -v b="$(cat "$tmp/cg_base")" -v c="$(cat "$tmp/cg_contention")" -v a="$(cat "$tmp/cg_all")" 'BEGIN {
		printf "uncontended pair, callgrind: baseline %d instructions, contention-only %d (+%d), all %d (+%d)\n", b, c, c-b, a, a-b }'
else
	echo "uncontended pair, callgrind: skipped (valgrind not installed)"
fi

# 2. sysbench mutex.
if command -v sysbench >/dev/null 2>&1; then
	for variant in default hot; do
		case $variant in
		default) args="--threads=4" ; label="sysbench mutex (4 threads, defaults: 4096 mutexes)" ;;
		hot) args="--threads=4 --mutex-num=1 --mutex-locks=300000 --mutex-loops=100"; label="sysbench mutex (4 threads, one hot mutex)" ;;
		esac
		for r in $(seq "$REPS"); do
			for m in $modes; do
				# shellcheck disable=SC2086
				run "$m" sysbench mutex $args run | awk '/total time:/ {sub("s", "", $3); print $3}' >>"$tmp/sb_${variant}_$m"
			done
		done
		b=$(median <"$tmp/sb_${variant}_base"); c=$(median <"$tmp/sb_${variant}_contention"); a=$(median <"$tmp/sb_${variant}_all")
		awk -v l="$label" -v b="$b" -v c="$c" -v a="$a" 'BEGIN {
			printf "%s: baseline %.4f s, contention-only %.4f s (throughput ratio %.4f), all %.4f s (ratio %.4f)\n", l, b, c, b/c, a, b/a }'
	done
else
	echo "sysbench mutex: skipped (sysbench not installed)"
fi

# 3. memcached under memcaslap.
if command -v memcached >/dev/null 2>&1 && command -v memcaslap >/dev/null 2>&1; then
	user=""; [ "$(id -u)" = 0 ] && user="-u root"
	for r in $(seq "$REPS"); do
		for m in $modes; do
			rm -f "$tmp/port"
			# shellcheck disable=SC2086
			(MEMCACHED_PORT_FILENAME=$tmp/port run_exec "$m" memcached -p -1 -U 0 -l 127.0.0.1 -t 4 -m 64 $user) &
			pid=$!
			i=0
			while ! grep -q "TCP INET" "$tmp/port" 2>/dev/null; do
				i=$((i + 1)); [ $i -lt 400 ] || { echo "memcached did not start"; kill "$pid"; exit 1; }
				sleep 0.05
			done
			port=$(awk '/TCP INET/ {print $3; exit}' "$tmp/port")
			memcaslap -s "127.0.0.1:$port" -T 2 -c 32 -t "${LOAD_S}s" 2>&1 |
				awk '/^Run time/ {for (i = 1; i <= NF; i++) if ($i == "TPS:") print $(i+1)}' >>"$tmp/mc_$m"
			kill -TERM "$pid"; wait "$pid" || true
		done
	done
	b=$(median <"$tmp/mc_base"); c=$(median <"$tmp/mc_contention"); a=$(median <"$tmp/mc_all")
	awk -v b="$b" -v c="$c" -v a="$a" 'BEGIN {
		printf "memcached -t 4 + memcaslap -T 2 -c 32: baseline %d ops/s, contention-only %d ops/s (ratio %.4f), all %d ops/s (ratio %.4f)\n", b, c, c/b, a, a/b }'
else
	echo "memcached + memcaslap: skipped (memcached or libmemcached-tools not installed)"
fi
