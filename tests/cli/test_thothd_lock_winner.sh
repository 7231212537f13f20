#!/usr/bin/env bash
# tests/cli/test_thothd_lock_winner.sh BUILD_DIR
#
# Two thothds starting together after a crash: the winner has taken
# thothd.pid's lock but not yet written its pid over the crashed thothd's;
# the loser's "another thothd (pid P) is already running" must name the
# winner (the lock's holder, /proc/locks), not the crashed pid still in the
# file (stop 44's note; it did before guard45).  The winner is held at that
# moment here by a python3 process that holds flock on a pid file naming
# a dead pid.
set -euo pipefail
. "$(dirname "$0")/../common/thoth_test.sh"
tt_init "$1"
[ -n "$TT_PYTHON3" ] || tt_skip "needs python3 to hold the lock"
[ -r /proc/locks ] || tt_skip "needs /proc/locks"
tt_mkdir RT lockwin
crashed=$(sh -c 'echo $$')                  # a thothd's pid that is gone
echo "$crashed" >"$RT/thothd.pid"
"$TT_PYTHON3" -c '
import fcntl, sys, time
f = open(sys.argv[1], "a")
fcntl.flock(f, fcntl.LOCK_EX)
open(sys.argv[2], "w").write("held\n")
time.sleep(60)' "$RT/thothd.pid" "$RT/winner.up" </dev/null &
winner=$!; TT_PIDS+=("$winner")
tt_until 30 "the winner's lock" test -s "$RT/winner.up"
rc=0
out=$("$THOTHD" --runtime-dir "$RT" 2>&1) || rc=$?
[ $rc = 1 ] || tt_fail "the loser exited $rc, want 1: $out"
grep -q "another thothd (pid $winner) is already running on $RT" <<<"$out" ||
  tt_fail "the loser did not name the lock's holder $winner (the file names the crashed $crashed): $out"
echo "ok: the loser names the winner ($winner), not the crashed thothd ($crashed)"
