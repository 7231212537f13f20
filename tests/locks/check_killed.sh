#!/usr/bin/env bash
# test_locks_killed THOTHLOCK LIVE_WORKLOAD: a program killed with -9 (no
# exit path, no end time in its table) is reported killed, not "running";
# so is a forked process killed before the report, while one still alive
# is running.  And a child killed with -9 mid-run keeps its locks in the
# report: thothlock holds its table (the memfd it was handed) when the
# process is gone.
set -uo pipefail
THOTHLOCK=$1
LIVE=$2
T=$(mktemp -d "${TMPDIR:-/tmp}/thoth-locks-killed-XXXXXX")
alive=
cleanup() { [ -n "$alive" ] && kill -9 "$alive" 2>/dev/null; rm -rf "$T"; }
trap cleanup EXIT
# Its programs are killed with -9, so a live marker they publish in the
# user's runtime dir (/tmp/thoth-UID, where one exists) would stay there
# for ever: give them a runtime dir of the test's own that does not
# exist, so under thothlock nothing is published anywhere.
export THOTH_RUNTIME_DIR="$T/rt"
fail() { echo "FAIL: $*"; exit 1; }

# thothlock's own child, SIGKILLed: exit 137 and "killed by signal 9"
"$THOTHLOCK" --output "$T/text" -- bash -c 'kill -9 $$'
rc=$?
[ $rc = 137 ] || fail "exit $rc, want 137 (128 + SIGKILL)"
grep -q "killed by signal 9 (SIGKILL)" "$T/text" || fail "text report: $(cat "$T/text")"
grep -q "running" "$T/text" && fail "a killed program reported running: $(cat "$T/text")"
echo "ok: thothlock's child killed by SIGKILL"

# a forked process SIGKILLed (reaped by its parent, which then exits
# normally) and another still running when the report is made (the parent
# waits for its table: the sleep's, after its exec.  Its maps are saved
# right after the hand-over, named by its memfd (memfd-DEV-INO.maps):
# their file says the table is in thothlock's socket; the memfd alone
# appears before)
"$THOTHLOCK" --json --output "$T/json" -- bash -c \
  'bash -c "kill -9 \$\$"; sleep 300 & echo $! >'"$T/alive"'
   for i in $(seq 500); do
     if [ "$(readlink /proc/$!/exe)" != "$BASH" ]; then
       for f in /proc/$!/fd/*; do
         [ "$(readlink "$f")" = "/memfd:thothlock:$! (deleted)" ] &&
           [ -e "$THOTHLOCK_DIR/$(stat -L -c "memfd-%d-%i.maps" "$f")" ] && break 2
       done
     fi
     sleep 0.01
   done
   sleep 0.2; exit 0'
rc=$?
[ $rc = 0 ] || fail "exit $rc, want 0"
alive=$(cat "$T/alive")
jq -e . "$T/json" >/dev/null || fail "not JSON: $(cat "$T/json")"
states() { jq -c '[.processes[] | {pid, program, state, exited}]' "$T/json"; }
# (the script's own helpers, seq and readlink, exited too)
[ "$(jq -r '[.processes[] | select(.state == "killed")] | length' "$T/json")" = 1 ] ||
  fail "not one killed process: $(states)"
[ "$(jq -r '[.processes[] | select(.state == "killed" and .exited and .program == "bash")] | length' "$T/json")" = 1 ] ||
  fail "the killed child not killed: $(states)"
[ "$(jq -r '[.processes[] | select(.state == "running")] | map(.pid) | @text' "$T/json")" = "[$alive]" ] ||
  fail "the live child ($alive) not the one running: $(states)"
[ "$(jq -r '[.processes[] | select(.state == "running" and .exited)] | length' "$T/json")" = 0 ] ||
  fail "a running process said exited: $(states)"
[ "$(jq -r '[.processes[] | select(.state == "exited" and (.exited | not))] | length' "$T/json")" = 0 ] ||
  fail "an exited process said not exited: $(states)"
echo "ok: a forked process killed by SIGKILL is killed, a live one running"

# thothlock's child killed with -9 from outside mid-run, after its 10
# forced contentions of live_lock: its table (handed over at its start)
# is reported whole
coproc W { "$THOTHLOCK" --json --output "$T/mid.json" -- "$LIVE" 10; }
read -r word wpid <&"${W[0]}" || fail "live_workload did not start"
[ "$word" = ready ] || fail "live_workload said '$word $wpid'"
kill -9 "$wpid"
wait "$W_PID"
rc=$?
[ $rc = 137 ] || fail "exit $rc, want 137 (128 + SIGKILL)"
jq -e . "$T/mid.json" >/dev/null || fail "not JSON: $(cat "$T/mid.json")"
[ "$(jq -r --argjson p "$wpid" '[.processes[] | select(.pid == $p and .state == "killed" and .signal == 9)] | length' "$T/mid.json")" = 1 ] ||
  fail "the killed child is not reported killed by 9: $(jq -c .processes "$T/mid.json")"
[ "$(jq -r --argjson p "$wpid" '[.locks[] | select(.pid == $p and .name == "live_lock")][0].contentions' "$T/mid.json")" = 10 ] ||
  fail "live_lock of the killed child not reported with its 10 contentions: $(jq -c '[.locks[] | {pid, name, contentions}]' "$T/mid.json")"
echo "ok: a child killed by -9 mid-run is reported with its 10 contentions of live_lock"
