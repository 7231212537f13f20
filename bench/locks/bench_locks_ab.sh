#!/bin/sh
# bench_locks_ab - two builds of libthothlock.so in all-acquisitions mode
# against each other and against the unprofiled program, in the same run:
# each round runs the program unprofiled, under LIB_A, under LIB_B (in
# that order) and prints the CPU-time ratios (unprofiled / profiled: 1 =
# no cost); medians at the end.  Tables on /dev/shm, as thothlock does.
#   bench_locks_ab LIB_A [LIB_B [REPS [SYSBENCH ARGS...]]]
# LIB_B defaults to this build's library, REPS to 7, the program to
# `sysbench mutex --threads=4` (4096 mutexes).  Without LIB_A (`make
# bench`) it says so and does nothing.
set -eu
CPUTIME=@CPUTIME_PATH@
[ $# -ge 1 ] || { echo "bench_locks_ab: skipped (give another build's libthothlock.so to compare)"; exit 0; }
command -v sysbench >/dev/null 2>&1 || { echo "bench_locks_ab: skipped (sysbench not installed)"; exit 0; }
A=$1; B=${2:-@THOTHLOCK_LIB_PATH@}; REPS=${3:-7}
if [ $# -ge 3 ]; then shift 3; else shift $#; fi
[ $# -gt 0 ] || set -- mutex --threads=4
d=$(mktemp -d /dev/shm/bench_locks_ab.XXXXXX 2>/dev/null) || d=$(mktemp -d /tmp/bench_locks_ab.XXXXXX)
trap 'rm -rf "$d"' EXIT
echo "A = $A; B = $B; sysbench $*; $REPS rounds"
for _ in $(seq "$REPS"); do
	"$CPUTIME" "$d/base" env sysbench "$@" run >/dev/null
	# Only sysbench is preloaded (env sets it after cputime's fork): a
	# preloaded cputime's forked child was counted too.
	"$CPUTIME" "$d/a" env THOTHLOCK_MODE=all THOTHLOCK_DIR="$d" LD_PRELOAD="$A" sysbench "$@" run >/dev/null
	rm -f "$d"/*.table "$d"/*.maps
	"$CPUTIME" "$d/b" env THOTHLOCK_MODE=all THOTHLOCK_DIR="$d" LD_PRELOAD="$B" sysbench "$@" run >/dev/null
	rm -f "$d"/*.table "$d"/*.maps
	echo "$(cat "$d/base") $(cat "$d/a") $(cat "$d/b")" |
		awk '{printf "unprofiled %.3f s CPU; A %.4f; B %.4f\n", $1, $1/$2, $1/$3}'
done | tee "$d/out"
for col in 6:A 8:B; do
	awk -v c="${col%:*}" '{sub(";", "", $c); print $c}' "$d/out" | sort -g |
		awk -v w="${col#*:}" '{a[NR]=$1} END {printf "median %s %.4f\n", w, (NR % 2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'
done
