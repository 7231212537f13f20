#!/usr/bin/env bash
# test_run_sh.sh BUILD_DIR: `scripts/run.sh BUILD_DIR --for 3` starts the
# demo, the client reports calls served by both echo instances, and when it
# ends no process and no runtime dir is left behind.
set -euo pipefail
BUILD=$1
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
out=$(mktemp)
trap 'rm -f "$out"' EXIT
"$ROOT/scripts/run.sh" "$BUILD" --for 3.5 >"$out" 2>&1 || { cat "$out"; echo "FAIL: run.sh exited $?"; exit 1; }
cat "$out"
rt=$(sed -n 's/^ThothOS is running (runtime dir \(.*\)):$/\1/p' "$out")
[ -n "$rt" ] || { echo "FAIL: no runtime dir announced"; exit 1; }
[ ! -e "$rt" ] || { echo "FAIL: $rt left behind"; exit 1; }
# The logs are kept (and said where); this test then removes them.
logs=$(sed -n 's/^stopped; .*; logs kept in \(.*\)$/\1/p' "$out")
[ -n "$logs" ] && [ -s "$logs/thothd.log" ] || { echo "FAIL: logs not kept: '$logs'"; exit 1; }
rm -rf "$logs"
grep -q "^Dashboard: http://127.0.0.1:[0-9]*/ " "$out" || { echo "FAIL: no dashboard URL printed"; exit 1; }
grep -q "^echo-client: .*calls/s" "$out" || { echo "FAIL: the echo client reported nothing"; exit 1; }
# Both instances served calls (round-robin through the registry).
line=$(grep "^echo-client: .*calls/s" "$out" | head -1)
[ "$(grep -o '\[pid [0-9]*: [1-9][0-9]*\]' <<<"$line" | wc -l)" -ge 2 ] ||
  { echo "FAIL: calls did not spread over two instances: $line"; exit 1; }
for pid in $(sed -n 's/^  \(thothd\|echo\|echo-client\) *pid \([0-9]*\).*/\2/p' "$out"); do
  if kill -0 "$pid" 2>/dev/null && grep -q "$rt" "/proc/$pid/cmdline" 2>/dev/null; then
    echo "FAIL: pid $pid still running"; exit 1
  fi
done
echo "PASS"
