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
set -euo pipefail
BUILD=$1 SHIM=$2
THOTHD=$BUILD/kernel/thothd/thothd THOTHCTL=$BUILD/tools/thothctl/thothctl
fail() { echo "FAIL: $*"; exit 1; }
skip() { echo "SKIP: $*"; exit 77; }
command -v python3 >/dev/null || skip "needs python3 for the impostor listener"
[ -r "$SHIM" ] || fail "no shim at $SHIM"

RT=$(mktemp -d /tmp/thoth-pidfile-XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -CONT "$p" 2>/dev/null || true; kill -KILL "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true; done
  rm -rf "$RT"
}
trap cleanup EXIT

# thothctl with the listener's pid hidden from SO_PEERCRED.  Under ASan the
# sanitizer's runtime must come first: it tolerates the shim after it.
ctl() {
  LD_PRELOAD=$SHIM ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0 \
    timeout 60 "$THOTHCTL" --runtime-dir "$RT" "$@"
}

start_thothd() {
  rm -f "$RT/ready"
  mkfifo "$RT/ready"
  "$THOTHD" --runtime-dir "$RT" --http-port off --ready-fd 3 3>"$RT/ready" 2>>"$RT/thothd.log" &
  thothd=$!
  pids+=("$thothd")
  read -r -t 30 ready <"$RT/ready" || true
  [ "${ready:-}" = READY=1 ] || { cat "$RT/thothd.log"; fail "thothd not ready"; }
}

# IMPOSTOR [LOCK]: a listener on thothd.sock that answers nothing; with
# LOCK it also holds thothd.pid's lock, as only a thothd should.
impostor() {
  rm -f "$RT/thothd.sock" "$RT/impostor.up"
  python3 -c '
import fcntl, socket, sys, time
s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(8)
if sys.argv[3] == "lock":
    f = open(sys.argv[4], "a"); fcntl.flock(f, fcntl.LOCK_EX)
open(sys.argv[2], "w").write("up")
time.sleep(600)' "$RT/thothd.sock" "$RT/impostor.up" "${1:-}" "$RT/thothd.pid" &
  imp=$!
  pids+=("$imp")
  local deadline=$((SECONDS + 30))
  until [ -e "$RT/impostor.up" ]; do
    [ $SECONDS -lt $deadline ] || fail "the impostor listener did not start"
    sleep 0.05
  done
}

# The shim hides the pid, nothing else: a healthy thothd answers through it.
start_thothd
ctl status >"$RT/ok.out" 2>"$RT/ok.err" || { cat "$RT/ok.err"; fail "status through the shim"; }

# 1. A stopped thothd: the socket cannot name it, its held pid file does.
kill -STOP "$thothd"
if ctl status >"$RT/stopped.out" 2>"$RT/stopped.err"; then
  fail "status answered by a stopped thothd"
fi
grep -q "thothd (pid $thothd) is stopped (SIGSTOP or a debugger).*kill -CONT $thothd" "$RT/stopped.err" ||
  { cat "$RT/stopped.err"; fail "the held pid file of a stopped thothd is not read"; }
kill -CONT "$thothd"
echo "ok: without SO_PEERCRED's pid a stopped thothd is named from its held pid file"

# 2. A stale pid file: thothd killed (its pid file stays, unlocked), an
# impostor listening, the file edited to name an unrelated stopped process.
kill -KILL "$thothd"
wait "$thothd" 2>/dev/null || true
[ -e "$RT/thothd.pid" ] || fail "a killed thothd left no pid file (the case is not set up)"
sleep 600 &
sleeper=$!
pids+=("$sleeper")
deadline=$((SECONDS + 30))
until [ "$(cat "/proc/$sleeper/comm" 2>/dev/null)" = sleep ]; do   # exec'd, no longer bash
  [ $SECONDS -lt $deadline ] || fail "the sleep did not start"
  sleep 0.02
done
kill -STOP "$sleeper"
impostor
echo "$sleeper" >"$RT/thothd.pid"
if ctl status >"$RT/stale.out" 2>"$RT/stale.err"; then
  fail "status answered by a listener that is not thothd"
fi
if grep -q "pid $sleeper\|kill -CONT" "$RT/stale.err"; then
  cat "$RT/stale.err"; fail "status believes a stale pid file"
fi
grep -q "pid file $RT/thothd.pid is stale: no thothd holds it" "$RT/stale.err" ||
  { cat "$RT/stale.err"; fail "status does not say the pid file is stale"; }
echo "ok: a stale pid file is not believed, and is named stale"
kill -KILL "$imp"; wait "$imp" 2>/dev/null || true

# 3. A foreign pid file: held, but by the impostor, and naming the stopped
# sleep.  Its pid is not a thothd's: never "thothd ... is stopped", never
# "kill -CONT", and the sleep is not called the listener.
impostor lock
echo "$sleeper" >"$RT/thothd.pid"
if ctl status >"$RT/foreign.out" 2>"$RT/foreign.err"; then
  fail "status answered by a listener that is not thothd"
fi
if grep -q "kill -CONT\|is stopped\|listening at [^ ]* (pid $sleeper" "$RT/foreign.err"; then
  cat "$RT/foreign.err"; fail "status takes a foreign pid file's process for thothd or for the listener"
fi
grep -q "its pid file $RT/thothd.pid names pid $sleeper (sleep), which is not thothd" "$RT/foreign.err" ||
  { cat "$RT/foreign.err"; fail "status does not say the pid file names a process that is not thothd"; }
echo "ok: a pid file naming a process that is not thothd is said to be so"
