#!/usr/bin/env bash
# tests/cli/test_cli_thothd_dies.sh BUILD_DIR
#
# A thothd killed in the middle of a thothctl command that waits: `thothctl
# trace --duration 600` (and `sched --duration`, which runs it) slept out the
# whole duration and only then said "trace stop: peer gone".  Now it sees
# the hang-up at once and says that thothd went away.
set -euo pipefail
BUILD=$1
THOTHD=$BUILD/kernel/thothd/thothd THOTHCTL=$BUILD/tools/thothctl/thothctl
fail() { echo "FAIL: $*"; exit 1; }

RT=$(mktemp -d /tmp/thoth-dies-XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -rf "$RT"
}
trap cleanup EXIT

start_thothd() {
  rm -f "$RT/ready"
  mkfifo "$RT/ready"
  "$THOTHD" --runtime-dir "$RT" --http-port off --ready-fd 3 3>"$RT/ready" 2>>"$RT/thothd.log" &
  thothd=$!
  pids+=("$thothd")
  read -r -t 30 ready <"$RT/ready" || true
  [ "${ready:-}" = READY=1 ] || { cat "$RT/thothd.log"; fail "thothd not ready"; }
}

# gone PID WHAT: PID exits within 30 s of thothd's death (the command asked
# for 600 s), non-zero, and its stderr says thothd went away.
gone() {
  local pid=$1 what=$2 deadline=$((SECONDS + 30))
  while kill -0 "$pid" 2>/dev/null; do
    [ $SECONDS -lt $deadline ] || fail "$what still waits 30 s after thothd was killed"
    sleep 0.05
  done
  if wait "$pid"; then fail "$what exited 0 after thothd was killed"; fi
  grep -q "thothd went away" "$RT/$what.err" || { cat "$RT/$what.err"; fail "$what does not say thothd went away"; }
  echo "ok: $what ends when thothd is killed"
}

start_thothd
"$THOTHCTL" --runtime-dir "$RT" trace --duration 600 --json "$RT/t.json" >"$RT/trace.out" 2>"$RT/trace.err" &
ctl=$!
pids+=("$ctl")
deadline=$((SECONDS + 30))
until grep -q "started" "$RT/trace.out"; do
  [ $SECONDS -lt $deadline ] || { cat "$RT/trace.err"; fail "trace session did not start"; }
  sleep 0.02
done
kill -KILL "$thothd"
gone "$ctl" trace

start_thothd
"$THOTHCTL" --runtime-dir "$RT" sched --duration 600 >"$RT/sched.out" 2>"$RT/sched.err" &
ctl=$!
pids+=("$ctl")
# sched prints nothing until its report: wait until thothd counts it as a
# client (thothctl status is one more).
deadline=$((SECONDS + 30))
until "$THOTHCTL" --runtime-dir "$RT" --json status | grep -q '"clients":[2-9]'; do
  [ $SECONDS -lt $deadline ] || { cat "$RT/sched.err"; fail "sched did not connect"; }
  sleep 0.02
done
kill -KILL "$thothd"
gone "$ctl" sched

# A stuck thothd (stopped, not dead) once `trace --duration` has slept its
# duration: the stop waits up to 10 minutes for the answer.  Ctrl-C there
# used to only set the flag of the sleep's handler and was never looked at;
# now the first says what thothctl waits for and the second ends it.
start_thothd
"$THOTHCTL" --runtime-dir "$RT" trace --duration 1 --json "$RT/t2.json" >"$RT/stuck.out" 2>"$RT/stuck.err" &
ctl=$!
pids+=("$ctl")
deadline=$((SECONDS + 30))
until grep -q "started" "$RT/stuck.out"; do
  [ $SECONDS -lt $deadline ] || { cat "$RT/stuck.err"; fail "trace session did not start"; }
  sleep 0.02
done
kill -STOP "$thothd"
sleep 2    # past the 1 s duration: thothctl now waits on the stop
# A background job of a script starts with SIGINT ignored: it stays so.
kill -INT "$ctl"
sleep 0.5
kill -0 "$ctl" 2>/dev/null || fail "an ignored SIGINT ended trace"
grep -q "waiting for thothd" "$RT/stuck.err" && fail "an ignored SIGINT was taken"
kill -TERM "$ctl"
deadline=$((SECONDS + 10))
until grep -q "waiting for thothd to stop" "$RT/stuck.err"; do
  [ $SECONDS -lt $deadline ] || { cat "$RT/stuck.err"; fail "trace says nothing on SIGTERM while a stopped thothd holds up its stop"; }
  sleep 0.05
done
kill -0 "$ctl" 2>/dev/null || fail "one SIGTERM ended trace: a healthy but slow thothd gets no chance to write"
kill -TERM "$ctl"
deadline=$((SECONDS + 10))
while kill -0 "$ctl" 2>/dev/null; do
  [ $SECONDS -lt $deadline ] || fail "trace ignores a second SIGTERM while a stopped thothd holds up its stop"
  sleep 0.05
done
if wait "$ctl"; then fail "trace exited 0 after SIGTERM"; fi
echo "ok: a second SIGTERM ends trace waiting on a stuck thothd; an ignored SIGINT stays ignored"
kill -CONT "$thothd" 2>/dev/null || true
