#!/bin/sh
# bench_thothd_reads - the thothd hotspot of issue 17's "then use it"
# (docs/LOCKS.md "thothd under the profiler"), with and without its
# attempted fix, in one run: commit b4eb312 made client_io stop reading a
# client once a read left room in the buffer, instead of reading until
# EAGAIN; it was reverted (dbcf83d) after this benchmark showed it slower.
#
#   bench_thothd_reads [ROUNDS]     (default 5; BENCH_N sizes bench_registry)
#
# "before" is this build's thothd (reads until EAGAIN); "after" is this
# tree with b4eb312's change applied again, built here under
# build/thothd-before (a git worktree of HEAD; needs the source checkout's
# git; the directory keeps its old name).  Each round runs
# bench_registry once per variant (order alternating; THOTH_BENCH_THOTHD
# picks the thothd), then once more per variant under thothlock --all for
# the lock report.  Prints each round's pair and the medians of: the
# registration round trip (one client registering BENCH_N names), the
# resolve round trip p50 (one client), and resolves/s with 1, 2 and 4
# clients (each client: blocking round trips).
set -eu
ROUNDS=${1:-5}
# Checked before anything is built: junk (--help, a typo) is not a count.
case $ROUNDS in
''|*[!0-9]*|0) echo "usage: bench_thothd_reads [ROUNDS]   (a count, default 5; not '$ROUNDS')" >&2; exit 2 ;;
esac
[ $# -le 1 ] || { echo "usage: bench_thothd_reads [ROUNDS]" >&2; exit 2; }
SRC=@PROJECT_SOURCE_DIR@
BUILD=@CMAKE_BINARY_DIR@
THIS=@THOTHD_AFTER@
BENCH=@BENCH_REGISTRY@
THOTHLOCK=@THOTHLOCK_PATH@
FIX=b4eb312
BEFORE_SRC=$BUILD/thothd-before/src
BEFORE_BUILD=$BUILD/thothd-before/build
OTHER=$BEFORE_BUILD/kernel/thothd/thothd
BEFORE=$THIS AFTER=$OTHER
export BENCH_N=${BENCH_N:-2000} BENCH_IDLE_SECONDS=${BENCH_IDLE_SECONDS:-1}
tmp=$(mktemp -d /tmp/bench_thothd_reads.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

if [ ! -x "$OTHER" ] && ! git -C "$SRC" cat-file -e "$FIX^{commit}" 2>/dev/null; then
	echo "bench_thothd_reads: skipped (needs the git history with $FIX to build the 'after' thothd)"
	exit 0
fi
if [ ! -x "$OTHER" ]; then
	echo "building thothd with $FIX applied in $BEFORE_BUILD (once)"
	rm -rf "$BEFORE_SRC"
	git -C "$SRC" worktree prune
	git -C "$SRC" worktree add --detach "$BEFORE_SRC" HEAD >/dev/null 2>&1
	git -C "$SRC" show "$FIX" -- kernel/thothd/server.c | git -C "$BEFORE_SRC" apply
	cmake -S "$BEFORE_SRC" -B "$BEFORE_BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	      -DTHOTH_TESTS=OFF -DTHOTH_BENCH=OFF >/dev/null
	cmake --build "$BEFORE_BUILD" --target thothd -j"$(nproc)" >/dev/null
	git -C "$SRC" worktree remove --force "$BEFORE_SRC"   # the binary is all we keep
fi

median() { sort -g | awk '{a[NR]=$1} END {if (NR == 0) print "nan"; else if (NR % 2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }

# One bench_registry run with thothd EXE: its resolves/s lines.
run() {
	variant=$1 exe=$2 out=$tmp/run.$variant
	THOTH_BENCH_THOTHD=$exe "$BENCH" >"$out" 2>&1
	for c in 1 2 4; do
		awk -v c="$c" '$1 == c && $2 ~ /^client/ {print $3}' "$out" >>"$tmp/rate.$variant.$c"
	done
	# "registered N in X s (Y us each, ...)" and the resolve row's p50.
	reg=$(awk '/registered [0-9]+ in/ {sub("\\(", "", $6); print $6}' "$out")
	p50=$(awk '/thothd resolve \(4 registrations\)/ {print $(NF-1)}' "$out")
	echo "${reg:-nan}" >>"$tmp/reg.$variant"
	echo "${p50:-nan}" >>"$tmp/p50.$variant"
	echo "  $variant: registration ${reg:-?} us, resolve p50 ${p50:-?} us, resolves/s $(awk '$2 ~ /^client/ {printf "%s ", $3}' "$out")"
}

echo "rounds: $ROUNDS (medians), BENCH_N=$BENCH_N; before = this build (reads until EAGAIN), after = with $FIX applied"
for r in $(seq "$ROUNDS"); do
	echo "round $r (load $(cut -d' ' -f1 /proc/loadavg))"
	if [ $((r % 2)) = 1 ]; then run before "$BEFORE"; run after "$AFTER"
	else run after "$AFTER"; run before "$BEFORE"; fi
done
rb=$(median <"$tmp/reg.before"); ra=$(median <"$tmp/reg.after")
pb=$(median <"$tmp/p50.before"); pa=$(median <"$tmp/p50.after")
awk -v b="$rb" -v a="$ra" 'BEGIN { printf "registration round trip: before %.1f us, after %.1f us (after/before %.3f)\n", b, a, a / b }'
awk -v b="$pb" -v a="$pa" 'BEGIN { printf "resolve round trip p50, 1 client: before %.1f us, after %.1f us (after/before %.3f)\n", b, a, a / b }'
for c in 1 2 4; do
	b=$(median <"$tmp/rate.before.$c"); a=$(median <"$tmp/rate.after.$c")
	awk -v c="$c" -v b="$b" -v a="$a" 'BEGIN {
		printf "resolves/s, %d client(s): before %.0f, after %.0f (ratio %.3f)\n", c, b, a, a / b }'
done
# The lock report, before and after: thothd's own table.
for variant in before after; do
	exe=$AFTER; [ $variant = before ] && exe=$BEFORE
	THOTH_BENCH_THOTHD=$exe "$THOTHLOCK" --all --json --output "$tmp/locks.$variant.json" -- "$BENCH" >/dev/null 2>&1 || true
	python3 - "$tmp/locks.$variant.json" "$variant" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
procs = {p["pid"]: p["program"] for p in r["processes"]}
thothd = [p for p, prog in procs.items() if prog.endswith("thothd")]
locks = [l for l in r["locks"] if l["pid"] in thothd]
print("lock report %s: %d processes profiled; thothd: %d locks, %d acquisitions, %d contentions; "
      "all processes: %d contentions" % (
          sys.argv[2], len(procs), len(locks), sum(l["acquisitions"] for l in locks),
          sum(l["contentions"] for l in locks), sum(l["contentions"] for l in r["locks"])))
EOF
done
