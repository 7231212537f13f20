#!/bin/sh
# bench_locks_sample - what all mode's hold sampling (THOTHLOCK_HOLD_SAMPLE,
# docs/LOCKS.md "Hold sampling") saves: each round runs the program
# unprofiled, then under this build's libthothlock.so in contention-only
# mode and in all mode with N = 1 (every hold timed), 16, 64 and 256, the
# profiled configurations in an order rotated by one each round (none
# always runs first or right after the unprofiled run); prints the
# CPU-time ratios (unprofiled / profiled: 1 = no cost) and the medians.
#   bench_locks_sample [REPS [SYSBENCH ARGS...]]
#   bench_locks_sample REPS -- PROGRAM [ARGS...]
#   bench_locks_sample callgrind
#   bench_locks_sample pairs [REPS [SYSBENCH ARGS...]]
#   bench_locks_sample events [SYSBENCH ARGS...]
#   bench_locks_sample events-memcached
# The last: instructions per uncontended lock+unlock pair (callgrind, 2
# threads alive, locks_uncontended --only plt: the difference of 100,000
# and 1,100,000 pairs over 10^6, so start-up cancels; deterministic) for
# glibc, contention-only mode and all mode at each N.  `pairs`: contention-
# only mode alone against unprofiled, REPS (default 21) pairs in
# alternating order (unprofiled first in odd pairs), on `sysbench mutex
# --threads=4` (4096 mutexes) unless other arguments are given: the ratio
# per pair, the median and the quartiles.  `events`: contention-only mode's
# added work counted, not timed: callgrind with its cache and branch
# simulation (D1 48 KiB, LL as the host's) of `sysbench mutex --threads=2`
# (4096 mutexes, sysbench's default loops) at 1,000 and 3,000 locks per
# thread, unprofiled and preloaded; the difference of the two runs over the
# 4,000 acquisitions between them (start-up and exit cancel), per event:
# instructions, D1 and LL misses, mispredicted branches, each as a ratio to
# the unprofiled figure.  If a run's time is any positive combination of
# these counts plus what the profiler does not change (the program's own
# system calls, page faults of its own memory), the added time is at most
# the largest of these ratios.  EVENTS_LOCKS_LO / EVENTS_LOCKS_HI set the
# two lengths (locks per thread; contention-only mode counts a thread's
# first 4,096 acquisitions one by one, so 5000 and 7000 measure the
# sampled steady state).  `events-memcached`: the same for memcached
# (4 threads, Debian's) serving memcaslap (1 thread, 4 connections) 4,000
# and 12,000 operations, per operation (memcached under valgrind needs -c
# equal to valgrind's file limit, 12 below the hard limit).
# REPS defaults to 9, the program to `sysbench mutex --threads=4
# --mutex-num=1` (one hot mutex); after "--" any program (locks_hot).
set -eu
CPUTIME=@CPUTIME_PATH@
UNC=@UNCONTENDED_PATH@
LIB=${THOTHLOCK_LIB:-@THOTHLOCK_LIB_PATH@}
if [ "${1:-}" = pairs ]; then
	shift
	REPS=${1:-21}
	case $REPS in ''|*[!0-9]*|0) echo "bench_locks_sample: pairs REPS wants a count, not '$REPS'" >&2; exit 2 ;; esac
	if [ $# -ge 1 ]; then shift; fi
	command -v sysbench >/dev/null 2>&1 || { echo "bench_locks_sample: skipped (sysbench not installed)"; exit 0; }
	[ $# -gt 0 ] || set -- mutex --threads=4
	d=$(mktemp -d /dev/shm/bench_locks_sample.XXXXXX 2>/dev/null) || d=$(mktemp -d /tmp/bench_locks_sample.XXXXXX)
	trap 'rm -rf "$d"' EXIT
	echo "contention-only vs unprofiled: sysbench $*; $REPS pairs; load: $(cut -d' ' -f1-3 /proc/loadavg)"
	for r in $(seq "$REPS"); do
		for w in $(if [ $((r % 2)) = 1 ]; then echo base c; else echo c base; fi); do
			if [ "$w" = base ]; then "$CPUTIME" "$d/base" env sysbench "$@" run >/dev/null
			else "$CPUTIME" "$d/c" env THOTHLOCK_DIR="$d" LD_PRELOAD="$LIB" sysbench "$@" run >/dev/null
				rm -f "$d"/*.table "$d"/*.maps; fi
		done
		awk -v b="$(cat "$d/base")" -v c="$(cat "$d/c")" -v l="$(cut -d' ' -f1 /proc/loadavg)" \
			'BEGIN {printf "pair: unprofiled %.3f s CPU, contention-only %.3f s: ratio %.4f; load %s\n", b, c, b/c, l}'
	done | tee "$d/out"
	awk '{print $10}' "$d/out" | sed 's/;//' | sort -g | awk '{a[NR]=$1} END {
		printf "median %.4f, quartiles %.4f .. %.4f (%d pairs)\n", (NR % 2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2,
			a[int((NR+3)/4)], a[int((3*NR+3)/4)], NR }'
	exit 0
fi
if [ "${1:-}" = events ]; then
	shift
	command -v valgrind >/dev/null 2>&1 || { echo "bench_locks_sample: events skipped (valgrind not installed)"; exit 0; }
	command -v sysbench >/dev/null 2>&1 || { echo "bench_locks_sample: events skipped (sysbench not installed)"; exit 0; }
	[ $# -gt 0 ] || set -- mutex --threads=2
	d=$(mktemp -d /dev/shm/bench_locks_sample.XXXXXX 2>/dev/null) || d=$(mktemp -d /tmp/bench_locks_sample.XXXXXX)
	trap 'rm -rf "$d"' EXIT
	lo=${EVENTS_LOCKS_LO:-1000} hi=${EVENTS_LOCKS_HI:-3000}
	for w in base c; do
		for n in "$lo" "$hi"; do
			if [ "$w" = base ]; then pre=""; else pre="$LIB"; fi
			env THOTHLOCK_DIR="$d" ${pre:+LD_PRELOAD="$pre"} valgrind --tool=callgrind --cache-sim=yes \
				--branch-sim=yes --callgrind-out-file="$d/cg" sysbench "$@" --mutex-locks=$n run \
				>/dev/null 2>&1
			rm -f "$d"/*.table "$d"/*.maps
			# events: Ir Dr Dw I1mr D1mr D1mw ILmr DLmr DLmw Bc Bcm Bi Bim
			grep -m1 '^summary:\|^totals:' "$d/cg" | cut -d' ' -f2- >"$d/$w.$n"
		done
	done
	echo "sysbench $* ($((2 * (hi - lo))) acquisitions between the runs, 2 threads): per acquisition"
	paste -d' ' "$d/base.$lo" "$d/base.$hi" "$d/c.$lo" "$d/c.$hi" | awk -v acq=$((2 * (hi - lo))) '{
		n = NF / 4
		for (i = 1; i <= n; i++) { b[i] = ($(i + n) - $i) / acq; c[i] = ($(i + 3 * n) - $(i + 2 * n)) / acq }
		split("instructions:1 D1-misses:5,6 LL-misses:8,9 mispredicted-branches:11,13", ev, " ")
		for (k = 1; k <= 4; k++) {
			split(ev[k], p, ":"); split(p[2], ix, ",")
			bb = b[ix[1]] + (ix[2] ? b[ix[2]] : 0); cc = c[ix[1]] + (ix[2] ? c[ix[2]] : 0)
			printf "  %-22s unprofiled %12.2f, contention-only %12.2f (%+.2f): ratio %.5f\n", p[1], bb, cc, cc - bb, cc / bb
		} }'
	exit 0
fi
if [ "${1:-}" = events-memcached ]; then
	for t in valgrind memcached memcaslap; do
		command -v $t >/dev/null 2>&1 || { echo "bench_locks_sample: events-memcached skipped ($t not installed)"; exit 0; }
	done
	d=$(mktemp -d /dev/shm/bench_locks_sample.XXXXXX 2>/dev/null) || d=$(mktemp -d /tmp/bench_locks_sample.XXXXXX)
	trap 'rm -rf "$d"' EXIT
	maxconns=$(( $(ulimit -Hn) - 12 ))
	port=$((20000 + $$ % 20000))
	for w in base c; do
		for n in 4000 12000; do
			if [ "$w" = base ]; then pre=""; else pre="$LIB"; fi
			env THOTHLOCK_DIR="$d" ${pre:+LD_PRELOAD="$pre"} valgrind --tool=callgrind --cache-sim=yes \
				--branch-sim=yes --callgrind-out-file="$d/cg" memcached -u "$(id -un)" -t 4 \
				-c "$maxconns" -p "$port" -l 127.0.0.1 -U 0 >/dev/null 2>&1 &
			vp=$!
			i=0
			until memcaslap -s "127.0.0.1:$port" -T 1 -c 1 -x 1 >/dev/null 2>&1; do
				i=$((i + 1)); [ $i -lt 100 ] || { echo "memcached did not start" >&2; kill $vp; exit 1; }
				sleep 0.2
			done
			memcaslap -s "127.0.0.1:$port" -T 1 -c 4 -x "$n" >/dev/null 2>&1
			kill -TERM $vp; wait $vp || true
			rm -f "$d"/*.table "$d"/*.maps
			grep -m1 '^summary:\|^totals:' "$d/cg" | cut -d' ' -f2- >"$d/$w.$n"
		done
	done
	echo "memcached -t 4 under memcaslap (8,000 operations between the runs): per operation"
	paste -d' ' "$d/base.4000" "$d/base.12000" "$d/c.4000" "$d/c.12000" | awk '{
		n = NF / 4; ops = 8000
		for (i = 1; i <= n; i++) { b[i] = ($(i + n) - $i) / ops; c[i] = ($(i + 3 * n) - $(i + 2 * n)) / ops }
		split("instructions:1 D1-misses:5,6 LL-misses:8,9 mispredicted-branches:11,13", ev, " ")
		for (k = 1; k <= 4; k++) {
			split(ev[k], p, ":"); split(p[2], ix, ",")
			bb = b[ix[1]] + (ix[2] ? b[ix[2]] : 0); cc = c[ix[1]] + (ix[2] ? c[ix[2]] : 0)
			printf "  %-22s unprofiled %12.2f, contention-only %12.2f (%+.2f): ratio %.5f\n", p[1], bb, cc, cc - bb, cc / bb
		} }'
	exit 0
fi
if [ "${1:-}" = callgrind ]; then
	command -v valgrind >/dev/null 2>&1 || { echo "bench_locks_sample: callgrind skipped (valgrind not installed)"; exit 0; }
	d=$(mktemp -d /dev/shm/bench_locks_sample.XXXXXX 2>/dev/null) || d=$(mktemp -d /tmp/bench_locks_sample.XXXXXX)
	trap 'rm -rf "$d"' EXIT
	instr() { # CONFIG PAIRS -> instructions
		case $1 in
		base) env valgrind --tool=callgrind --callgrind-out-file=/dev/null "$UNC" --threaded --only plt "$2" ;;
		c) env THOTHLOCK_DIR="$d" LD_PRELOAD="$LIB" valgrind --tool=callgrind \
			--callgrind-out-file=/dev/null "$UNC" --threaded --only plt "$2" ;;
		*) env THOTHLOCK_MODE=all THOTHLOCK_HOLD_SAMPLE="${1#a}" THOTHLOCK_DIR="$d" LD_PRELOAD="$LIB" \
			valgrind --tool=callgrind --callgrind-out-file=/dev/null "$UNC" --threaded --only plt "$2" ;;
		esac 2>&1 >/dev/null | awk '/Collected :/ {print $NF}'
		rm -f "$d"/*.table "$d"/*.maps
	}
	for w in base c a1 a16 a64 a256; do
		lo=$(instr "$w" 100000); hi=$(instr "$w" 1100000)
		echo "$w $lo $hi"
	done | awk '{ per = ($3 - $2) / 1000000; if ($1 == "base") b = per
		printf "%-5s %7.1f instructions per uncontended pair (%+.1f over glibc)\n", $1, per, per - b }'
	exit 0
fi
REPS=${1:-9}
case $REPS in
''|*[!0-9]*|0) echo "bench_locks_sample: REPS wants a count (or pairs, events, events-memcached, callgrind), not '$REPS'" >&2; exit 2 ;;
esac
if [ $# -ge 1 ]; then shift; fi
if [ "${1:-}" = -- ]; then
	shift
	[ $# -gt 0 ] || { echo "bench_locks_sample: no program after --" >&2; exit 2; }
else
	command -v sysbench >/dev/null 2>&1 || { echo "bench_locks_sample: skipped (sysbench not installed)"; exit 0; }
	[ $# -gt 0 ] || set -- mutex --threads=4 --mutex-num=1
	set -- sysbench "$@" run
fi
d=$(mktemp -d /dev/shm/bench_locks_sample.XXXXXX 2>/dev/null) || d=$(mktemp -d /tmp/bench_locks_sample.XXXXXX)
trap 'rm -rf "$d"' EXIT
CONFIGS="c a1 a16 a64 a256"
echo "lib = $LIB; $*; $REPS rounds; load: $(cut -d' ' -f1-3 /proc/loadavg)"
# One profiled run: c = contention-only mode, aN = all mode, THOTHLOCK_HOLD_SAMPLE=N.
profiled() {
	w=$1; shift
	case $w in
	c) "$CPUTIME" "$d/$w" env THOTHLOCK_MODE=contention THOTHLOCK_DIR="$d" LD_PRELOAD="$LIB" "$@" >/dev/null ;;
	*) "$CPUTIME" "$d/$w" env THOTHLOCK_MODE=all THOTHLOCK_HOLD_SAMPLE="${w#a}" THOTHLOCK_DIR="$d" \
		LD_PRELOAD="$LIB" "$@" >/dev/null ;;
	esac
	rm -f "$d"/*.table "$d"/*.maps
}
for r in $(seq "$REPS"); do
	"$CPUTIME" "$d/base" env "$@" >/dev/null
	# rotate: round r starts at configuration r mod 5
	order=$(echo $CONFIGS | awk -v r="$r" '{n=NF; for (i=0;i<n;i++) printf "%s ", $(((r+i)%n)+1)}')
	for w in $order; do profiled "$w" "$@"; done
	line="unprofiled $(cat "$d/base") s CPU;"
	for w in $CONFIGS; do
		line="$line $w $(awk -v b="$(cat "$d/base")" '{printf "%.4f", b/$1}' "$d/$w")"
	done
	echo "$line; load $(cut -d' ' -f1 /proc/loadavg)"
done | tee "$d/out"
for w in $CONFIGS; do
	awk -v w="$w" '{for (i=1;i<NF;i++) if ($i==w) print $(i+1)}' "$d/out" | sed 's/;//' | sort -g |
		awk -v w="$w" '{a[NR]=$1} END {printf "median %s %.4f (%d rounds)\n", w, (NR % 2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2, NR}'
done
