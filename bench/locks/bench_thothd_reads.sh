#!/bin/sh
# bench_thothd_reads - the thothd hotspot of issue 17's "then use it"
# (docs/LOCKS.md "thothd under the profiler"), before and after its fix,
# in one run: commit b4eb312 made client_io stop reading a client once a
# read left room in the buffer, instead of reading until EAGAIN.
#
#   bench_thothd_reads [ROUNDS]     (default 5; BENCH_N sizes bench_registry)
#
# "before" is this tree's thothd with that commit reverted, built here
# under build/thothd-before (a git worktree of HEAD; needs the source
# checkout's git); "after" is this build's thothd.  Each round runs
# bench_registry once per variant (order alternating; THOTH_BENCH_THOTHD
# picks the thothd), then once more per variant under thothlock --all for
# the lock report.  Prints medians of the resolves/s with 1, 2 and 4
# clients (each client: blocking round trips).
set -eu
ROUNDS=${1:-5}
SRC=@PROJECT_SOURCE_DIR@
BUILD=@CMAKE_BINARY_DIR@
AFTER=@THOTHD_AFTER@
BENCH=@BENCH_REGISTRY@
THOTHLOCK=@THOTHLOCK_PATH@
FIX=b4eb312
BEFORE_SRC=$BUILD/thothd-before/src
BEFORE_BUILD=$BUILD/thothd-before/build
BEFORE=$BEFORE_BUILD/kernel/thothd/thothd
export BENCH_N=${BENCH_N:-2000} BENCH_IDLE_SECONDS=${BENCH_IDLE_SECONDS:-1}
tmp=$(mktemp -d /tmp/bench_thothd_reads.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

if [ ! -x "$BEFORE" ] && ! git -C "$SRC" cat-file -e "$FIX^{commit}" 2>/dev/null; then
	echo "bench_thothd_reads: skipped (needs the git history with $FIX to build the 'before' thothd)"
	exit 0
fi
if [ ! -x "$BEFORE" ]; then
	echo "building thothd without $FIX in $BEFORE_BUILD (once)"
	rm -rf "$BEFORE_SRC"
	git -C "$SRC" worktree prune
	git -C "$SRC" worktree add --detach "$BEFORE_SRC" HEAD >/dev/null
	git -C "$BEFORE_SRC" revert --no-commit "$FIX"
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
}

echo "rounds: $ROUNDS (medians), BENCH_N=$BENCH_N; before = HEAD with $FIX reverted, after = this build"
for r in $(seq "$ROUNDS"); do
	if [ $((r % 2)) = 1 ]; then run before "$BEFORE"; run after "$AFTER"
	else run after "$AFTER"; run before "$BEFORE"; fi
done
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
