#!/bin/sh
# test_probe_zero_cost: callgrind counts the instructions of 100000 disabled
# trace points with the probe hook folded into the enabled test and with the
# enabled test as it was before probes; they must be equal (0 extra).
set -eu
BIN=$1
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
command -v valgrind >/dev/null || { echo "FAIL: valgrind is missing (debian/control, group test)"; exit 1; }
count() {
	valgrind --tool=callgrind --toggle-collect="$1" --callgrind-out-file="$TMP/$1.out" \
	         "$BIN" >/dev/null 2>"$TMP/$1.err" || { cat "$TMP/$1.err"; exit 1; }
	awk '/^(summary|totals):/ { print $2; exit }' "$TMP/$1.out"
}
with=$(count loop_with_probe_hook)
before=$(count loop_before_probes)
echo "instructions for 100000 disabled trace points: with the probe hook $with, before probes $before"
[ -n "$with" ] && [ -n "$before" ] || { echo "FAIL: no callgrind totals"; exit 1; }
[ "$with" -le "$before" ] || { echo "FAIL: the probe hook costs $((with - before)) instructions"; exit 1; }
echo ok
