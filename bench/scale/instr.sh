#!/bin/sh
# Instructions per lookup, counted by callgrind (docs/SCALE.md, SCALE-2):
# bench_scale --instr N calls each kind of lookup N times from its own
# instr_* function; callgrind counts each function's instructions (callees
# included) and this divides by N.  Instructions do not depend on the
# machine's load, unlike nanoseconds.
#   bench/scale/instr.sh [BUILD_DIR] [N]
set -eu
build=${1:-build/default}
n=${2:-200000}
out=$(mktemp -d /tmp/thoth-instr-XXXXXX)
trap 'rm -rf "$out"' EXIT
valgrind --tool=callgrind --callgrind-out-file="$out/cg" --collect-atstart=no \
	--toggle-collect='instr_*' "$build/bench/scale/bench_scale" --instr "$n" >/dev/null 2>"$out/log" ||
	{ cat "$out/log" >&2; exit 1; }
echo "instructions per call (callgrind, $n calls each; one refresh per handle per table change)"
callgrind_annotate --inclusive=yes "$out/cg" 2>/dev/null |
	awk -v n="$n" '/instr_[a-z_]+/ {
		gsub(",", "", $1); fn = $0; sub(/.*instr_/, "instr_", fn); sub(/[ (\[].*/, "", fn)
		if (!(fn in seen)) { seen[fn] = 1; printf "  %-24s %8.1f\n", fn, $1 / n } }'
