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

# A pid file that is not thothd's "PID\n" is no predecessor to name, and
# is never taken for a pid: garbage, negative, too large (atoi() read
# "4294967297" as pid 1), a pid and junk.  (The pid is only ever said,
# never signalled.)  A symlink in its place is refused (O_NOFOLLOW).
third=$THOTHD_PID
kill -KILL "$third"; tt_reap "$third"
for junk in "abc" "-5" "4294967297" "99999999999999999999" "12 junk" ""; do
  printf '%s\n' "$junk" >"$RT/thothd.pid"
  : >"$RT/thothd.log"
  tt_start_thothd "$RT" --http-port off; p=$THOTHD_PID
  if grep -q "previous thothd" "$RT/thothd.log"; then
    cat "$RT/thothd.log"; tt_fail "a pid file holding '$junk' was taken for a crashed thothd's pid"
  fi
  kill -KILL "$p"; tt_reap "$p"
done
rm -f "$RT/thothd.pid"
ln -s /nonexistent-ops44 "$RT/thothd.pid"
rc=0; "$THOTHD" --runtime-dir "$RT" --http-port off >"$RT/sym.out" 2>&1 || rc=$?
rm -f "$RT/thothd.pid"
[ $rc = 1 ] && grep -q "cannot take the lock file $RT/thothd.pid" "$RT/sym.out" ||
  { cat "$RT/sym.out"; tt_fail "thothd with a symlink as its pid file exited $rc, not 1 naming the file"; }
echo PASS
