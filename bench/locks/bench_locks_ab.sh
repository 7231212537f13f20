#!/bin/sh
# bench_locks_ab - two builds of libthothlock.so in all-acquisitions mode
# against each other and against the unprofiled program, in the same run:
# each round runs the program unprofiled, under LIB_A, under LIB_B (in
# that order) and prints the CPU-time ratios (unprofiled / profiled: 1 =
# no cost); medians at the end.  Tables on /dev/shm, as thothlock does.
#   bench_locks_ab LIB_A [LIB_B [REPS [SYSBENCH ARGS...]]]
#   bench_locks_ab LIB_A LIB_B REPS -- PROGRAM [ARGS...]
# LIB_B defaults to this build's library, REPS to 7, the program to
# `sysbench mutex --threads=4` (4096 mutexes); after "--" any program
# instead of sysbench (e.g. locks_hot, one hot mutex).  Without LIB_A
# (`make bench`) it says so and does nothing.
set -eu
CPUTIME=@CPUTIME_PATH@
[ $# -ge 1 ] || { echo "bench_locks_ab: skipped (give another build's libthothlock.so to compare)"; exit 0; }
A=$1; B=${2:-@THOTHLOCK_LIB_PATH@}; REPS=${3:-7}
# Checked first: an option or a typo is not a library, junk not a count.
for lib in "$A" "$B"; do
	[ -f "$lib" ] || { echo "bench_locks_ab: $lib: no such library (usage: bench_locks_ab LIB_A [LIB_B [REPS ...]])" >&2; exit 2; }
done
case $REPS in ''|*[!0-9]*|0) echo "bench_locks_ab: REPS wants a count, not '$REPS'" >&2; exit 2 ;; esac
if [ $# -ge 3 ]; then shift 3; else shift $#; fi
if [ "${1:-}" = -- ]; then
	shift
	[ $# -gt 0 ] || { echo "bench_locks_ab: no program after --" >&2; exit 2; }
else
	command -v sysbench >/dev/null 2>&1 || { echo "bench_locks_ab: skipped (sysbench not installed)"; exit 0; }
	[ $# -gt 0 ] || set -- mutex --threads=4
	set -- sysbench "$@" run
fi
d=$(mktemp -d /dev/shm/bench_locks_ab.XXXXXX 2>/dev/null) || d=$(mktemp -d /tmp/bench_locks_ab.XXXXXX)
trap 'rm -rf "$d"' EXIT
echo "A = $A; B = $B; $*; $REPS rounds"
# One profiled run: $1 = a or b.  Only the program is preloaded (env sets
# it after cputime's fork): a preloaded cputime's forked child was counted too.
profiled() {
	w=$1; shift
	if [ "$w" = a ]; then lib=$A; else lib=$B; fi
	"$CPUTIME" "$d/$w" env THOTHLOCK_MODE=all THOTHLOCK_DIR="$d" LD_PRELOAD="$lib" "$@" >/dev/null
	rm -f "$d"/*.table "$d"/*.maps
}
for r in $(seq "$REPS"); do
	"$CPUTIME" "$d/base" env "$@" >/dev/null
	# A before B in odd rounds, B before A in even ones: neither always
	# runs right after the unprofiled run.
	if [ $((r % 2)) = 1 ]; then profiled a "$@"; profiled b "$@"; else profiled b "$@"; profiled a "$@"; fi
	echo "$(cat "$d/base") $(cat "$d/a") $(cat "$d/b")" |
		awk '{printf "unprofiled %.3f s CPU; A %.4f; B %.4f\n", $1, $1/$2, $1/$3}'
done | tee "$d/out"
for col in 6:A 8:B; do
	awk -v c="${col%:*}" '{sub(";", "", $c); print $c}' "$d/out" | sort -g |
		awk -v w="${col#*:}" '{a[NR]=$1} END {printf "median %s %.4f\n", w, (NR % 2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'
done
