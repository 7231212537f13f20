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
# The last: instructions per uncontended lock+unlock pair (callgrind, 2
# threads alive, locks_uncontended --only plt: the difference of 100,000
# and 1,100,000 pairs over 10^6, so start-up cancels; deterministic) for
# glibc, contention-only mode and all mode at each N.
# REPS defaults to 9, the program to `sysbench mutex --threads=4
# --mutex-num=1` (one hot mutex); after "--" any program (locks_hot).
set -eu
CPUTIME=@CPUTIME_PATH@
UNC=@UNCONTENDED_PATH@
LIB=${THOTHLOCK_LIB:-@THOTHLOCK_LIB_PATH@}
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
