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

# --for takes seconds: anything else is refused before anything starts.
if "$ROOT/scripts/run.sh" "$BUILD" --for 3s >"$out" 2>&1 ||
   ! grep -q "run.sh: --for '3s' is not a number of seconds" "$out"; then
  cat "$out"; echo "FAIL: run.sh --for 3s was not refused"; exit 1
fi
grep -q "ThothOS is running" "$out" && { echo "FAIL: run.sh --for 3s started the system"; exit 1; }

# thothd dying under the demo is reported, exit 1 (it said "stopping",
# exit 0, as after Ctrl-C).
"$ROOT/scripts/run.sh" "$BUILD" --for 60 >"$out" 2>&1 &
run_pid=$!
deadline=$((SECONDS + 30))
until grep -q "^  thothd *pid" "$out" || [ $SECONDS -ge $deadline ]; do sleep 0.05; done
thothd_pid=$(sed -n 's/^  thothd *pid \([0-9]*\).*/\1/p' "$out")
[ -n "$thothd_pid" ] || { cat "$out"; kill "$run_pid"; echo "FAIL: no thothd pid printed"; exit 1; }
kill -KILL "$thothd_pid"
rc=0
wait "$run_pid" || rc=$?
cat "$out"
# thothd's death ends the demo without the "stopped" line: the logs'
# folder is the one the start-up named.
logs=$(sed -n 's/^Logs (kept after the run): \(.*\)\/thothd\.log, .*/\1/p' "$out")
[ -n "$logs" ] || { echo "FAIL: the logs' folder was not named at start-up"; exit 1; }
rm -rf "$logs"
[ "$rc" = 1 ] || { echo "FAIL: run.sh exited $rc after thothd was killed (want 1)"; exit 1; }
grep -q "run.sh: thothd (pid $thothd_pid) exited on its own (status 137)" "$out" ||
  { echo "FAIL: thothd's death not reported"; exit 1; }
echo "PASS"
