#!/usr/bin/env bash
# test_locks_prune THOTHD THOTHCTL LIBTHOTHLOCK LIVE_WORKLOAD: thothd removes
# the lock markers (RUNTIME_DIR/locks/PID.table, docs/LOCKS.md "Dead
# markers") of processes that are gone, when it starts and when it scans
# them, and never a live process's: real processes, a real thothd in a
# runtime dir of the test's own.
#   at start: a dead pid's marker and PID.table.new; a profiled process
#     killed with -9 (its marker left); a pid reused (a marker older than
#     the process that now has the pid, which holds no table) go, each
#     logged; a live profiled process's marker stays; a marker newer than
#     its pid's process (the maker, perhaps exec'd without the preload)
#     stays; a symlink under a dead pid's marker name is named and neither
#     followed nor removed (its target is untouched);
#   at a scan (thothctl locks): a profiled process killed with -9 after
#     thothd started: its marker goes, the live one stays;
#   /metrics counts them: thothd_lock_markers_pruned_total 5.
# Fails on the thothd before guard45, which removed none.
set -uo pipefail
THOTHD=$1 THOTHCTL=$2 LIB=$3 LIVE=$4
command -v curl >/dev/null && command -v jq >/dev/null || { echo "skip: needs curl and jq"; exit 77; }
T=$(mktemp -d "${TMPDIR:-/tmp}/thoth-prune-XXXXXX")
RT=$T/rt
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
  wait 2>/dev/null
  rm -rf "$T"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; [ -f "$T/log" ] && sed 's/^/  thothd: /' "$T/log"; exit 1; }
mkdir -m 700 "$RT" && mkdir "$RT/locks" || fail "cannot make $RT"
export THOTH_RUNTIME_DIR=$RT

# A profiled process (a bare run: LD_PRELOAD), its pid on fd WPID; its
# stdin stays open (a fifo held by the test) until it is killed.
start_workload() {
  local n=$1
  mkfifo "$T/in$n" "$T/out$n"
  LD_PRELOAD=$LIB "$LIVE" 2 <"$T/in$n" >"$T/out$n" 2>"$T/err$n" &
  pids+=($!)
  exec {hold}>"$T/in$n"
  local word pid
  read -r word pid <"$T/out$n" || fail "workload $n did not start: $(cat "$T/err$n")"
  [ "$word" = ready ] || fail "workload $n said '$word $pid'"
  for _ in $(seq 200); do [ -f "$RT/locks/$pid.table" ] && break; sleep 0.05; done
  [ -f "$RT/locks/$pid.table" ] || fail "workload $n ($pid) published no marker: $(cat "$T/err$n")"
  eval "W$n=$pid"
}
dead_pid() { sh -c 'echo $$'; }

start_workload 1                 # lives throughout
start_workload 2                 # killed before thothd starts
kill -9 "$W2"; wait "$W2" 2>/dev/null
[ -f "$RT/locks/$W2.table" ] || fail "the killed workload left no marker (nothing to test)"
D1=$(dead_pid) D2=$(dead_pid) D3=$(dead_pid)
: >"$RT/locks/$D1.table"
: >"$RT/locks/$D2.table.new"
echo keep >"$T/victim"
ln -s "$T/victim" "$RT/locks/$D3.table"
# A pid reused: the marker an hour older than the process now under it
sleep 300 & R=$!; pids+=($R)
: >"$RT/locks/$R.table"
touch -d "@$(( $(date +%s) - 3600 ))" "$RT/locks/$R.table"
# A marker newer than its pid's process (no table there): kept
sleep 301 & K=$!; pids+=($K)
sleep 0.3
: >"$RT/locks/$K.table"

"$THOTHD" --runtime-dir "$RT" --http-port 0 >/dev/null 2>"$T/log" & pids+=($!)
for _ in $(seq 300); do "$THOTHCTL" status >/dev/null 2>&1 && break; sleep 0.1; done
"$THOTHCTL" status >/dev/null 2>&1 || fail "thothd did not start"

for p in "$W2" "$D1" "$R"; do
  [ ! -e "$RT/locks/$p.table" ] || fail "the dead marker $p.table is still there at start"
done
[ ! -e "$RT/locks/$D2.table.new" ] || fail "the dead $D2.table.new is still there at start"
grep -q "removed the dead marker $RT/locks/$W2.table: process $W2 is gone" "$T/log" ||
  fail "the killed workload's marker not logged"
grep -q "removed the dead marker $RT/locks/$D1.table: process $D1 is gone" "$T/log" ||
  fail "a dead pid's marker not logged"
grep -q "removed the dead marker $RT/locks/$R.table: pid $R is now another process's" "$T/log" ||
  fail "the reused pid's marker not logged"
[ -f "$RT/locks/$W1.table" ] || fail "the live workload's marker ($W1) was removed"
[ -f "$RT/locks/$K.table" ] || fail "a marker newer than its live process ($K) was removed"
[ -L "$RT/locks/$D3.table" ] && [ "$(cat "$T/victim")" = keep ] ||
  fail "the symlink under a marker's name was removed or followed"
grep -q "$RT/locks/$D3.table: a symbolic link, not a marker: not followed, not removed" "$T/log" ||
  fail "the symlink not named"
echo "ok: at start, dead markers removed and logged, live ones and a symlink kept"

start_workload 3
kill -9 "$W3"; wait "$W3" 2>/dev/null
[ -f "$RT/locks/$W3.table" ] || fail "the killed workload 3 left no marker"
"$THOTHCTL" locks >"$T/locks.out" 2>&1
[ ! -e "$RT/locks/$W3.table" ] || fail "a scan kept the killed workload's marker"
[ -f "$RT/locks/$W1.table" ] || fail "a scan removed the live workload's marker"
grep -q "process $W1\|pid $W1" "$T/locks.out" || fail "the live workload not reported: $(cat "$T/locks.out")"
grep -q "removed the dead marker $RT/locks/$W3.table: process $W3 is gone" "$T/log" ||
  fail "the scan's removal not logged"
echo "ok: at a scan, a killed process's marker removed, the live one kept"

url=$("$THOTHCTL" --json status | jq -r .dashboard_url)
n=$(curl -sf "${url}metrics" | sed -n 's/^thothd_lock_markers_pruned_total \([0-9]*\)$/\1/p')
[ "$n" = 5 ] || fail "thothd_lock_markers_pruned_total is '$n', want 5"
echo "ok: /metrics counts the 5 removed"
