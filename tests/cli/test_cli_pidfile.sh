#!/usr/bin/env bash
# tests/cli/test_cli_pidfile.sh BUILD_DIR SHIM
#
# thothctl against a listener that does not answer, when the socket cannot
# name its peer (SO_PEERCRED gives pid 0 to a thothctl in another pid
# namespace than thothd; SHIM, an LD_PRELOAD library, makes it so here):
# thothctl falls back to thothd.pid beside the socket, and believes it only
# while a thothd holds its lock.  Three pid files: a live stopped thothd's
# (believed: "kill -CONT PID"), a stale one left by a killed thothd naming
# an unrelated stopped process (not believed: "stale"), and a foreign one,
# locked by the impostor listener itself (its pid is named as not thothd,
# never as a stopped thothd).
#
# Each case waits out thothctl's timeouts (5 s for a stopped thothd, 10 s
# for a listener that answers nothing): the three run at once, each in its
# own runtime dir, and are checked once all have ended (the test took 31 s
# with them one after the other).
set -euo pipefail
. "$(dirname "$0")/../common/thoth_test.sh"
tt_init "$1"
SHIM=$2
[ -n "$TT_PYTHON3" ] || tt_skip "needs python3 for the impostor listener"
[ -r "$SHIM" ] || tt_fail "no shim at $SHIM"

# thothctl with the listener's pid hidden from SO_PEERCRED.  Under ASan the
# sanitizer's runtime must come first: it tolerates the shim after it.
CTL_ENV=(env LD_PRELOAD="$SHIM" ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0")
ctl() {
  local rt=$1
  shift
  "${CTL_ENV[@]}" timeout 60 "$THOTHCTL" --runtime-dir "$rt" "$@"
}

# impostor RT [lock]: a listener on RT/thothd.sock that answers nothing;
# with lock it also holds thothd.pid's lock, as only a thothd should.
# Started, not waited for (a python3 start costs seconds on a loaded
# machine): impostor_up RT waits until it listens.
impostor() {
  local rt=$1
  rm -f "$rt/thothd.sock" "$rt/impostor.up"
  tt_spawn "$TT_PYTHON3" -c '
import fcntl, socket, sys, time
s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(8)
if sys.argv[3] == "lock":
    f = open(sys.argv[4], "a"); fcntl.flock(f, fcntl.LOCK_EX)
open(sys.argv[2], "w").write("up")
time.sleep(600)' "$rt/thothd.sock" "$rt/impostor.up" "${2:-}" "$rt/thothd.pid"
}
impostor_up() { tt_until 30 "the impostor listener started" test -e "$1/impostor.up"; }

# status_bg RT CASE: `status` through the shim in the background (its pid
# in status_pid[CASE]), its output in RT/CASE.{out,err}.
declare -A status_pid
status_bg() {
  tt_spawn "${CTL_ENV[@]}" timeout 60 "$THOTHCTL" --runtime-dir "$1" status >"$1/$2.out" 2>"$1/$2.err"
  status_pid[$2]=$TT_PID
}
# failed CASE: the status of CASE failed (was not answered).
failed() {
  if tt_reap "${status_pid[$1]}"; then
    tt_fail "status answered by a listener that is not a running thothd ($1)"
  fi
}

# An unrelated stopped process for the pid files of cases 2 and 3.
tt_spawn sleep 600
sleeper=$TT_PID
exec_done() { [ "$(cat "/proc/$sleeper/comm" 2>/dev/null)" = sleep ]; }   # no longer bash
tt_until 30 "the sleep started" exec_done
kill -STOP "$sleeper"
tt_mkdir RT1 pidfile
tt_mkdir RT2 pidfile
tt_mkdir RT3 pidfile

# 3. A foreign pid file: held, but by the impostor, and naming the stopped
# sleep.  Its pid is not a thothd's: never "thothd ... is stopped", never
# "kill -CONT", and the sleep is not called the listener.
impostor "$RT3" lock

# 2. A stale pid file: thothd killed (its pid file stays, unlocked), an
# impostor listening, the file edited to name an unrelated stopped process.
tt_start_thothd "$RT2" --http-port off
kill -KILL "$THOTHD_PID"
tt_reap "$THOTHD_PID" || true
[ -e "$RT2/thothd.pid" ] || tt_fail "a killed thothd left no pid file (the case is not set up)"
impostor "$RT2"

# The shim hides the pid, nothing else: a healthy thothd answers through it.
tt_start_thothd "$RT1" --http-port off
thothd1=$THOTHD_PID
ctl "$RT1" status >"$RT1/ok.out" 2>"$RT1/ok.err" || { cat "$RT1/ok.err"; tt_fail "status through the shim"; }

# 1. A stopped thothd: the socket cannot name it, its held pid file does.
kill -STOP "$thothd1"
status_bg "$RT1" stopped

impostor_up "$RT2"
echo "$sleeper" >"$RT2/thothd.pid"
status_bg "$RT2" stale

impostor_up "$RT3"
echo "$sleeper" >"$RT3/thothd.pid"
status_bg "$RT3" foreign

failed stopped
grep -q "thothd (pid $thothd1) is stopped (SIGSTOP or a debugger).*kill -CONT $thothd1" "$RT1/stopped.err" ||
  { cat "$RT1/stopped.err"; tt_fail "the held pid file of a stopped thothd is not read"; }
kill -CONT "$thothd1"
echo "ok: without SO_PEERCRED's pid a stopped thothd is named from its held pid file"

failed stale
if grep -q "pid $sleeper\|kill -CONT" "$RT2/stale.err"; then
  cat "$RT2/stale.err"; tt_fail "status believes a stale pid file"
fi
grep -q "pid file $RT2/thothd.pid is stale: no thothd holds it" "$RT2/stale.err" ||
  { cat "$RT2/stale.err"; tt_fail "status does not say the pid file is stale"; }
echo "ok: a stale pid file is not believed, and is named stale"

failed foreign
if grep -q "kill -CONT\|is stopped\|listening at [^ ]* (pid $sleeper" "$RT3/foreign.err"; then
  cat "$RT3/foreign.err"; tt_fail "status takes a foreign pid file's process for thothd or for the listener"
fi
grep -q "its pid file $RT3/thothd.pid names pid $sleeper (sleep), which is not thothd" "$RT3/foreign.err" ||
  { cat "$RT3/foreign.err"; tt_fail "status does not say the pid file names a process that is not thothd"; }
echo "ok: a pid file naming a process that is not thothd is said to be so"
