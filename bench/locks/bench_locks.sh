#!/bin/sh
# bench_locks - what the lock profiler (libthothlock.so) costs, each figure
# with its baseline measured in the same run, as medians of REPS rounds
# whose order alternates (baseline, contention-only, all-acquisitions):
#   1. the uncontended lock/unlock pair, with one thread and with a second
#      one alive: ns added to glibc's own functions timed in the same
#      process (locks_uncontended), and instructions (callgrind, the
#      difference of two runs);
#   2. sysbench mutex (its defaults: 4096 mutexes, and one hot mutex) and
#      sysbench threads: wall time and CPU time;
#   3. memcached (4 threads) under memcaslap on 127.0.0.1: ops/s and
#      memcached's CPU time per op.
# Environment: BENCH_LOCKS_REPS (5), BENCH_LOCKS_SECONDS (memcaslap run, 3).  Skips a part whose tool is missing, saying so.
set -eu
UNC=@UNCONTENDED_PATH@
CPUTIME=@CPUTIME_PATH@
LIB=@THOTHLOCK_LIB_PATH@
REPS=${BENCH_LOCKS_REPS:-5}
LOAD_S=${BENCH_LOCKS_SECONDS:-3}
tmp=$(mktemp -d /tmp/bench_locks.XXXXXX)
# The profiled programs' tables on tmpfs, where the thothlock launcher puts
# them: on a disk file system each first touch of a table page is a page
# fault that reserves a block (ext4 here), which is not the profiler's cost.
shm=$(mktemp -d /dev/shm/bench_locks.XXXXXX 2>/dev/null) || shm=$tmp/shm
mkdir -p "$shm"
trap 'rm -rf "$tmp" "$shm"' EXIT

median() { sort -g | awk '{a[NR]=$1} END {if (NR == 0) print "nan"; else if (NR % 2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
modes="base contention all"
echo "rounds: $REPS (medians); modes: baseline, contention-only (default), all-acquisitions (--all)"

# 1. Uncontended pair: locks_uncontended times glibc's own functions and
# the program's (the wrappers when preloaded) in the same run, alternating
# batches, and prints medians; run REPS times per case, median of those.
for threads in 1 2; do
	flag=""; [ "$threads" = 2 ] && flag="--threaded"
	for m in base contention all; do
		: >"$tmp/unc_${m}_$threads"
	done
	for r in $(seq "$REPS"); do
		for m in $modes; do
			case $m in
			base) env "$UNC" $flag ;;
			contention) THOTHLOCK_DIR=$shm LD_PRELOAD=$LIB "$UNC" $flag ;;
			all) THOTHLOCK_MODE=all THOTHLOCK_DIR=$shm LD_PRELOAD=$LIB "$UNC" $flag ;;
			esac | awk '/^glibc_ns_per_pair/ {g=$2} /^added_ns_per_pair/ {a=$2} END {print g, a}' >>"$tmp/unc_${m}_$threads"
		done
	done
	gb=$(awk '{print $1}' "$tmp/unc_contention_$threads" | median)
	c=$(awk '{print $2}' "$tmp/unc_contention_$threads" | median)
	a=$(awk '{print $2}' "$tmp/unc_all_$threads" | median)
	ctl=$(awk '{print $2}' "$tmp/unc_base_$threads" | median)
	awk -v t="$threads" -v b="$gb" -v c="$c" -v a="$a" -v ctl="$ctl" 'BEGIN {
		printf "uncontended lock+unlock pair, %d thread(s) alive: glibc %.2f ns; added: contention-only %+.2f ns, all %+.2f ns (control, nothing preloaded: %+.2f ns)\n", t, b, c, a, ctl }'
done
if command -v valgrind >/dev/null 2>&1; then
	instr() { # instructions of PAIRS pairs through the PLT in MODE
		case $1 in
		base) valgrind --tool=callgrind --callgrind-out-file=/dev/null "$UNC" --threaded --only plt "$2" ;;
		contention) THOTHLOCK_DIR=$shm LD_PRELOAD=$LIB valgrind --tool=callgrind --callgrind-out-file=/dev/null "$UNC" --threaded --only plt "$2" ;;
		all) THOTHLOCK_MODE=all THOTHLOCK_DIR=$shm LD_PRELOAD=$LIB valgrind --tool=callgrind --callgrind-out-file=/dev/null "$UNC" --threaded --only plt "$2" ;;
		esac 2>&1 >/dev/null | awk '/Collected :/ {print $NF}'
	}
	for m in $modes; do
		lo=$(instr "$m" 100000); hi=$(instr "$m" 1100000)
		echo $(( (hi - lo) / 1000000 )) >"$tmp/cg_$m"   # 10^6 pairs more
	done
	awk -v b="$(cat "$tmp/cg_base")" -v c="$(cat "$tmp/cg_contention")" -v a="$(cat "$tmp/cg_all")" 'BEGIN {
		printf "uncontended pair, callgrind (2 threads alive): glibc %d instructions, contention-only %d (%+d), all %d (%+d)\n", b, c, c-b, a, a-b }'
else
	echo "uncontended pair, callgrind: skipped (valgrind not installed)"
fi

# 2. sysbench mutex (and threads): wall time as sysbench reports it, and the
# CPU time the process used (cputime): on a machine shared with other work
# the first says how much CPU it got, the second what its work cost.  The
# profiler is preloaded directly (THOTHLOCK_DIR: no launcher, no report in
# the figures).
# prof_env MODE: the environment that preloads the profiler in MODE.
prof_env() {
	case $1 in
	contention) echo "THOTHLOCK_DIR=$shm/tables LD_PRELOAD=$LIB" ;;
	all) echo "THOTHLOCK_MODE=all THOTHLOCK_DIR=$shm/tables LD_PRELOAD=$LIB" ;;
	esac
}
mkdir -p "$shm/tables"
if command -v sysbench >/dev/null 2>&1; then
	for variant in default hot threads; do
		case $variant in
		default) args="mutex --threads=4" ; label="sysbench mutex (4 threads, defaults: 4096 mutexes)" ;;
		hot) args="mutex --threads=4 --mutex-num=1 --mutex-locks=300000 --mutex-loops=100"; label="sysbench mutex (4 threads, one hot mutex)" ;;
		threads) args="threads --threads=4 --events=200 --time=0"; label="sysbench threads (4 threads, 8 locks, yields)" ;;
		esac
		for r in $(seq "$REPS"); do
			for m in $modes; do
				# shellcheck disable=SC2086
				# cputime runs env, which preloads sysbench alone (a
				# preloaded cputime's forked child was counted too).
				"$CPUTIME" "$tmp/cpu" env $(prof_env "$m") sysbench $args run |
					awk '/total time:/ {sub("s", "", $3); print $3}' >>"$tmp/sb_${variant}_$m"
				cat "$tmp/cpu" >>"$tmp/sbcpu_${variant}_$m"
				rm -f "$shm"/tables/*
			done
		done
		b=$(median <"$tmp/sb_${variant}_base"); c=$(median <"$tmp/sb_${variant}_contention"); a=$(median <"$tmp/sb_${variant}_all")
		bc=$(median <"$tmp/sbcpu_${variant}_base"); cc=$(median <"$tmp/sbcpu_${variant}_contention"); ac=$(median <"$tmp/sbcpu_${variant}_all")
		awk -v l="$label" -v b="$b" -v c="$c" -v a="$a" -v bc="$bc" -v cc="$cc" -v ac="$ac" 'BEGIN {
			printf "%s: wall %.3f s; contention-only ratio %.4f, all %.4f | CPU %.3f s; contention-only ratio %.4f, all %.4f\n", l, b, b/c, b/a, bc, bc/cc, bc/ac }'
	done
else
	echo "sysbench: skipped (sysbench not installed)"
fi

# 3. memcached under memcaslap: ops/s, and memcached's CPU time per op.
if command -v memcached >/dev/null 2>&1 && command -v memcaslap >/dev/null 2>&1; then
	user=""; [ "$(id -u)" = 0 ] && user="-u root"
	for r in $(seq "$REPS"); do
		for m in $modes; do
			rm -f "$tmp/port"
			# shellcheck disable=SC2086
			(MEMCACHED_PORT_FILENAME=$tmp/port exec "$CPUTIME" "$tmp/mccpu" env $(
				case $m in
				contention) echo "THOTHLOCK_DIR=$shm/tables LD_PRELOAD=$LIB" ;;
				all) echo "THOTHLOCK_MODE=all THOTHLOCK_DIR=$shm/tables LD_PRELOAD=$LIB" ;;
				esac) memcached -p -1 -U 0 -l 127.0.0.1 -t 4 -m 64 $user) &
			pid=$!
			i=0
			while ! grep -q "TCP INET" "$tmp/port" 2>/dev/null; do
				i=$((i + 1)); [ $i -lt 400 ] || { echo "memcached did not start"; kill "$pid"; exit 1; }
				sleep 0.05
			done
			port=$(awk '/TCP INET/ {print $3; exit}' "$tmp/port")
			tps=$(memcaslap -s "127.0.0.1:$port" -T 2 -c 32 -t "${LOAD_S}s" 2>&1 |
				awk '/^Run time/ {for (i = 1; i <= NF; i++) if ($i == "TPS:") print $(i+1)}')
			kill -TERM "$pid"; wait "$pid" || true
			echo "$tps" >>"$tmp/mc_$m"
			awk -v t="$tps" -v s="$LOAD_S" '{ printf "%.9f\n", $1 / (t * s) }' "$tmp/mccpu" >>"$tmp/mccpu_$m"
			rm -f "$shm"/tables/*
		done
	done
	b=$(median <"$tmp/mc_base"); c=$(median <"$tmp/mc_contention"); a=$(median <"$tmp/mc_all")
	bc=$(median <"$tmp/mccpu_base"); cc=$(median <"$tmp/mccpu_contention"); ac=$(median <"$tmp/mccpu_all")
	awk -v b="$b" -v c="$c" -v a="$a" -v bc="$bc" -v cc="$cc" -v ac="$ac" 'BEGIN {
		printf "memcached -t 4 + memcaslap -T 2 -c 32: %d ops/s; contention-only ratio %.4f, all %.4f | memcached CPU %.2f us/op; contention-only ratio %.4f, all %.4f\n", b, c/b, a/b, bc*1e6, bc/cc, bc/ac }'
else
	echo "memcached + memcaslap: skipped (memcached or libmemcached-tools not installed)"
fi
