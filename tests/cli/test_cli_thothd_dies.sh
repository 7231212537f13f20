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
skip() { echo "SKIP: $*"; exit 77; }

# What the waits below read: ppoll's number in /proc/PID/syscall (the
# sched case), and the bytes a stopped thothd holds unread (Recv-Q, which
# ss has only from the kernel's unix_diag; probed once thothd listens).
case $(uname -m) in
  x86_64) PPOLL_NR=271 ;;
  aarch64|riscv64) PPOLL_NR=73 ;;   # the generic syscall table
  *) skip "needs a known architecture for ppoll's syscall number (not $(uname -m))" ;;
esac
command -v ss >/dev/null || skip "needs ss (iproute2)"
read -r _ </proc/$$/syscall 2>/dev/null || skip "cannot read /proc/PID/syscall"

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

# Without unix_diag ss reads /proc/net/unix and shows every queue as 0: a
# listening socket's Send-Q (its backlog) is the tell.
probe_unix_diag() {
  ss -xlH 2>/dev/null | awk -v d="$RT/" 'index($0, d) && $4 > 0 { f = 1 } END { exit !f }' ||
    skip "ss shows no socket queues (no unix_diag in this kernel)"
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
probe_unix_diag
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
# sched prints nothing until its report: wait until it sleeps out its
# duration, blocked in a wait with a signal mask (its sleep's ppoll; the
# calls before it wait in plain poll, whose leftover registers can look
# like ppoll's arguments, hence the number: then fields 5 and 6 of
# /proc/PID/syscall are ppoll's sigmask and its size).  Waiting only until thothd counted it
# as a client lost to a loaded machine: thothd was killed while sched's
# trace start was still unanswered, and sched rightly said it could not
# reach thothd, not that thothd went away in its wait.
in_sleep() {
  local nr a0 a1 a2 a3 a4 rest
  read -r nr a0 a1 a2 a3 a4 rest <"/proc/$1/syscall" 2>/dev/null || return 1
  [ "$nr" = "$PPOLL_NR" ] && [ "$a3" != 0x0 ] && [ "$a4" = 0x8 ]
}
deadline=$((SECONDS + 30))
until in_sleep "$ctl"; do
  kill -0 "$ctl" 2>/dev/null || { cat "$RT/sched.err"; fail "sched ended before its sleep"; }
  [ $SECONDS -lt $deadline ] || { cat "$RT/sched.err"; cat "/proc/$ctl/syscall" || true; fail "sched did not start its sleep"; }
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
# Past the 1 s duration thothctl sends the stop and waits for the answer:
# wait until the stopped thothd holds it unread on the connection (Recv-Q)
# and thothctl has left its sleep (so the bytes held are its stop, not
# something sent before it).
# A fixed `sleep 2` here lost to a loaded machine (a package build beside
# it, the ASan build): thothctl was still in its sleep, where a SIGTERM
# ends the sleep early and says nothing, and the wait for the message
# below failed.
stop_sent() {
  ! in_sleep "$ctl" &&
  ss -xHp 2>/dev/null | awk -v p="pid=$thothd," 'index($0, p) && $3 > 0 { f = 1 } END { exit !f }'
}
deadline=$((SECONDS + 30))
until stop_sent; do
  [ $SECONDS -lt $deadline ] || { cat "$RT/stuck.err"; ss -xHp || true; fail "trace sent no stop to the stopped thothd"; }
  sleep 0.05
done
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
kill -KILL "$thothd" 2>/dev/null || true
wait "$thothd" 2>/dev/null || true

# A stopped thothd (SIGSTOP, a debugger) takes the connection and answers
# nothing: `thothctl status` said "status: timed out", naming neither
# thothd nor what was wrong with it.  Now it says thothd is stopped, with
# its pid and the command that wakes it.  (The old text fails the grep.)
start_thothd
kill -STOP "$thothd"
if "$THOTHCTL" --runtime-dir "$RT" status >"$RT/stopped.out" 2>"$RT/stopped.err"; then
  fail "status answered by a stopped thothd"
fi
grep -q "thothd (pid $thothd) is stopped (SIGSTOP or a debugger).*kill -CONT $thothd" "$RT/stopped.err" ||
  { cat "$RT/stopped.err"; fail "status does not say that thothd is stopped"; }
kill -CONT "$thothd"
echo "ok: a stopped thothd is named as stopped, with its pid"

# Not thothd at all: a listener on thothd.sock that answers nothing, and a
# stale thothd.pid naming an unrelated stopped process.  thothctl trusted
# the pid file and said "thothd (pid SLEEP) is stopped ... kill -CONT SLEEP";
# now the pid comes from the socket (SO_PEERCRED), names the listener, and
# the sleep is not named.
kill -TERM "$thothd"
wait "$thothd" 2>/dev/null || true
command -v python3 >/dev/null || skip "needs python3 for the impostor listener"
sleep 600 &
sleeper=$!
pids+=("$sleeper")
kill -STOP "$sleeper"
rm -f "$RT/thothd.sock"
python3 -c '
import socket, sys, time
s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(8)
open(sys.argv[2], "w").write("up")
time.sleep(600)' "$RT/thothd.sock" "$RT/impostor.up" &
impostor=$!
pids+=("$impostor")
deadline=$((SECONDS + 30))
until [ -e "$RT/impostor.up" ]; do
  [ $SECONDS -lt $deadline ] || fail "the impostor listener did not start"
  sleep 0.05
done
echo "$sleeper" >"$RT/thothd.pid"
if "$THOTHCTL" --runtime-dir "$RT" status >"$RT/impostor.out" 2>"$RT/impostor.err"; then
  fail "status answered by a listener that is not thothd"
fi
if grep -q "pid $sleeper\|kill -CONT" "$RT/impostor.err"; then
  cat "$RT/impostor.err"; fail "status names the stale pid file's stopped process"
fi
grep -q "(pid $impostor, python3.*it is not thothd" "$RT/impostor.err" ||
  { cat "$RT/impostor.err"; fail "status does not name the listener as not thothd"; }
echo "ok: a stale pid file is not trusted; the listener is named by its socket"
