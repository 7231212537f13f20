#!/bin/sh
# Run every benchmark program (bench_*) built in BUILD_DIR, one after the
# other, with the machine facts first so the output can be pasted into
# docs/BENCHMARKS.md as it is.
set -eu
build=${1:?usage: bench.sh BUILD_DIR}
echo "== machine: $(uname -srm), $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "== date: $(date -u +%Y-%m-%dT%H:%MZ), commit $(git -C "$(dirname "$0")/.." rev-parse --short HEAD 2>/dev/null || echo none)"
for b in $(find "$build/bench" -type f -name 'bench_*' -perm -u+x | sort); do
	echo
	echo "== $(basename "$b")"
	"$b"
done
