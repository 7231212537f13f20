#!/usr/bin/env bash
# scripts/run.sh BUILD_DIR [--for SECONDS]
#
# `make run`: start thothd in a fresh runtime dir, two echo service
# instances and one echo client generating load; print what runs and how to
# inspect it; wait.  Ctrl-C (or SIGTERM, or the end of --for SECONDS) stops
# everything, removes the runtime dir (no stray process or socket) and exits
# 0.  The logs are kept, in a folder whose path is printed at start and end.
# thothd's readiness is awaited on --ready-fd (a line when it serves its
# socket), not by polling.
set -euo pipefail

usage() { echo "usage: $0 BUILD_DIR [--for SECONDS]" >&2; exit 2; }
[ $# -ge 1 ] || usage
BUILD=$(cd "$1" && pwd) || usage; shift
FOR=""
while [ $# -gt 0 ]; do
  case $1 in
    --for) [ $# -ge 2 ] || usage; FOR=$2; shift 2
           # a number of seconds (3, 3.5): sleep's own error came after the
           # whole system had started, and the demo then ended at once
           [[ $FOR =~ ^[0-9]+(\.[0-9]+)?$ ]] ||
             { echo "run.sh: --for '$FOR' is not a number of seconds" >&2; exit 2; } ;;
    *) usage ;;
  esac
done

THOTHD=$BUILD/kernel/thothd/thothd
THOTHCTL=$BUILD/tools/thothctl/thothctl
ECHO=$BUILD/services/echo
CLIENT=$BUILD/services/echo-client
CODEX=$BUILD/codex/codex
for bin in "$THOTHD" "$THOTHCTL" "$ECHO" "$CLIENT" "$CODEX"; do
  [ -x "$bin" ] || { echo "run.sh: $bin is missing: build first (make build)" >&2; exit 1; }
done

RT=$(mktemp -d /tmp/thoth-run-XXXXXX)     # 0700, ours
LOGS=$(mktemp -d "${TMPDIR:-/tmp}/thoth-run-logs-XXXXXX")   # kept after the run (under TMPDIR: make test's guard sees them)
PIDS=()
stopping=0
cleanup() {
  [ $stopping = 1 ] && return
  stopping=1
  trap '' INT TERM
  echo
  echo "stopping: ${PIDS[*]:-nothing}"
  # Clients first, then services, thothd last (reverse start order).
  for ((i=${#PIDS[@]}-1; i>=0; i--)); do
    kill -TERM "${PIDS[$i]}" 2>/dev/null || true
    wait "${PIDS[$i]}" 2>/dev/null || true
  done
  [ -z "${TIMER:-}" ] || kill "$TIMER" 2>/dev/null || true
  rm -rf "$RT"
  echo "stopped; removed $RT; logs kept in $LOGS"
}
trap cleanup EXIT
# Ctrl-C and SIGTERM are the normal way to stop the demo: a clean exit.
trap 'exit 0' INT TERM

# thothd writes READY=1 to the fifo once it serves its socket; if it dies
# first, the fifo closes and the read ends with nothing.
mkfifo "$RT/ready"
# The dashboard on any free port of 127.0.0.1 (THOTH_HTTP_PORT to fix one;
# thothd's own default is 9180): read back from thothctl status below.
"$THOTHD" --runtime-dir "$RT" --log-level info --ready-fd 3 --http-port "${THOTH_HTTP_PORT:-0}" \
  3>"$RT/ready" 2>"$LOGS/thothd.log" &
PIDS+=($!)
ready=""
read -r -t 30 ready <"$RT/ready" || true
if [ "$ready" != "READY=1" ]; then
  echo "run.sh: thothd did not become ready:" >&2
  cat "$LOGS/thothd.log" >&2
  exit 1
fi

"$ECHO" --runtime-dir "$RT" 2>"$LOGS/echo-1.log" &
PIDS+=($!)
"$ECHO" --runtime-dir "$RT" 2>"$LOGS/echo-2.log" &
PIDS+=($!)
for _ in $(seq 1 250); do
  [ "$("$THOTHCTL" --runtime-dir "$RT" --json services echo 2>/dev/null | wc -l)" -ge 2 ] && break
  sleep 0.02
done
"$CLIENT" --runtime-dir "$RT" --rate 200 --report 3 &
PIDS+=($!)
# codex, the journal service (docs/CODEX.md); its data is kept with the logs
"$CODEX" --runtime-dir "$RT" --data-dir "$LOGS/codex-data" --workers 2 2>"$LOGS/codex.log" &
PIDS+=($!)

# Neither this nor the listing below may end the script under set -e: a
# thothd that died meanwhile is reported by the wait at the end.
DASHBOARD=$("$THOTHCTL" --runtime-dir "$RT" --json status |
  sed -n 's/.*"dashboard_url":"\([^"]*\)".*/\1/p') || true
cat <<MSG
ThothOS is running (runtime dir $RT):
  thothd       pid ${PIDS[0]}
  echo         pid ${PIDS[1]}   (instance 1)
  echo         pid ${PIDS[2]}   (instance 2)
  echo-client  pid ${PIDS[3]}   200 calls/s, round-robin over the instances
  codex        pid ${PIDS[4]}   the journal (data in $LOGS/codex-data)
Logs (kept after the run): $LOGS/thothd.log, echo-1.log, echo-2.log, codex.log
Dashboard: ${DASHBOARD:-none (see thothd.log)}   (live page; Prometheus metrics at ${DASHBOARD:-.../}metrics)

Inspect it from another terminal:
  $THOTHCTL --runtime-dir $RT status
  $THOTHCTL --runtime-dir $RT services
  $THOTHCTL --runtime-dir $RT services --watch
  $THOTHCTL --runtime-dir $RT resolve echo --json
  $THOTHCTL --runtime-dir $RT trace --duration 2 --json trace.json
                (every process's trace events; open trace.json in ui.perfetto.dev)
  $THOTHCTL --runtime-dir $RT codex create notes
  echo hello | $THOTHCTL --runtime-dir $RT codex append notes --deferred
  $THOTHCTL --runtime-dir $RT codex read notes --json
  $THOTHCTL --runtime-dir $RT codex stats
Try: kill -9 ${PIDS[1]}   (its instance disappears at once; the client moves on)

MSG
"$THOTHCTL" --runtime-dir "$RT" services || true
echo
TIMER=""
if [ -n "$FOR" ]; then
  echo "(running for $FOR s)"
  sleep "$FOR" &
  TIMER=$!
else
  echo "(Ctrl-C to stop)"
fi
# Returns at the end of --for, or if thothd dies; Ctrl-C and SIGTERM run
# the trap instead.  thothd dying is a failure the user must see (it ended
# the demo with "stopping" and exit 0, as if it had been asked to).
# A thothd that died before the wait (a signal, while thothctl ran above)
# is no longer a job bash can `wait -n` for: its status is still there for
# a plain `wait PID`.
ended=""
status=0
if kill -0 "${PIDS[0]}" 2>/dev/null; then
  wait -n -p ended "${PIDS[0]}" ${TIMER:+"$TIMER"} 2>/dev/null || status=$?
fi
if [ "${ended:-}" != "${PIDS[0]}" ] && ! kill -0 "${PIDS[0]}" 2>/dev/null; then
  ended=${PIDS[0]}
  status=0
  wait "${PIDS[0]}" 2>/dev/null || status=$?
fi
if [ "${ended:-}" = "${PIDS[0]}" ]; then
  [ -z "$TIMER" ] || kill "$TIMER" 2>/dev/null || true
  echo "run.sh: thothd (pid ${PIDS[0]}) exited on its own (status $status); the end of $LOGS/thothd.log:" >&2
  tail -n 5 "$LOGS/thothd.log" >&2
  exit 1
fi
