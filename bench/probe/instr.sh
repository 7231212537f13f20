#!/bin/sh
# Instructions per fired event, counted by callgrind (docs/PROBES.md, OBS-2):
# bench_probe --instr N fires N msg_send events from one instr_* function
# per case (nothing attached; tiny and hash programs on the JIT and the
# interpreter); callgrind counts each function's instructions (callees
# included) and this divides by N, then subtracts the unprobed loop.
# Instructions do not depend on the machine's load, unlike nanoseconds.
#   bench/probe/instr.sh [BUILD_DIR] [N]
set -eu
build=${1:-build/default}
n=${2:-200000}
out=$(mktemp -d /tmp/thoth-instr-XXXXXX)
trap 'rm -rf "$out"' EXIT
valgrind --tool=callgrind --callgrind-out-file="$out/cg" --dump-instr=no --collect-atstart=no \
	--toggle-collect='instr_*' "$build/bench/probe/bench_probe" --instr "$n" >/dev/null 2>"$out/log" ||
	{ cat "$out/log" >&2; exit 1; }
echo "instructions per event (callgrind, $n events each), and extra over nothing attached"
callgrind_annotate --inclusive=yes --threshold=100 "$out/cg" 2>/dev/null |
	awk -v n="$n" '/instr_[a-z_]+/ {
		gsub(",", "", $1); fn = $0; sub(/.*instr_/, "instr_", fn); sub(/[ (\[:].*/, "", fn)
		if (!(fn in seen)) { seen[fn] = 1; v[fn] = $1 / n; order[++k] = fn } }
		END { for (i = 1; i <= k; i++) { f = order[i]
			printf "  %-20s %8.1f  +%.1f\n", f, v[f], v[f] - v["instr_none"] } }'
