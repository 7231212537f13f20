#!/usr/bin/env bash
# tests/thothd/test_thothd_predecessor.sh BUILD_DIR
#
# The crash drill's "kill -9 thothd, start it again" step (docs/OPERATIONS.md):
# the new thothd replaced the old one's pid file and socket without a
# word, exactly as after a clean stop, so the log of a restarted system did
# not say that thothd had died (ops44).  Now it says once, at warn, which
# thothd (pid) did not stop cleanly and when that one started; after a
# clean stop (SIGTERM) nothing is said.  An echo service outlives both and
# registers with each new thothd.
set -uo pipefail
. "$(dirname "$0")/../common/thoth_test.sh"
tt_init "$1"
ECHO=$1/services/echo
[ -x "$ECHO" ] || tt_fail "no echo service in $1/services"
tt_mkdir RT predecessor

tt_start_thothd "$RT" --http-port off; first=$THOTHD_PID
tt_start_service "$RT" echo "$ECHO" --runtime-dir "$RT"; svc=$TT_PID

kill -KILL "$first"; tt_reap "$first"
[ -S "$RT/thothd.sock" ] && [ -f "$RT/thothd.pid" ] || tt_fail "the killed thothd left no socket or pid file (the test's premise)"
: >"$RT/thothd.log"
tt_start_thothd "$RT" --http-port off; second=$THOTHD_PID
grep -E "warn: the previous thothd on $RT \(pid $first, started [0-9T:-]+Z\) did not stop cleanly \(killed or crashed\) and left its pid file and socket, replaced now" "$RT/thothd.log" ||
  { cat "$RT/thothd.log"; tt_fail "the thothd started after a kill -9 does not name the killed one (pid $first)"; }
tt_wait_registered "$RT" echo
kill -0 "$svc" || tt_fail "the echo service died with thothd"

# A clean stop leaves nothing to report.
kill -TERM "$second"; tt_reap "$second"
[ ! -e "$RT/thothd.pid" ] || tt_fail "a thothd stopped by SIGTERM left its pid file"
: >"$RT/thothd.log"
tt_start_thothd "$RT" --http-port off
if grep -q "previous thothd" "$RT/thothd.log"; then
  cat "$RT/thothd.log"; tt_fail "after a clean stop the new thothd says its predecessor did not stop cleanly"
fi
tt_wait_registered "$RT" echo
echo PASS
