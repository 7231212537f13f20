#!/usr/bin/env bash
# scripts/run.sh BUILD_DIR [--for SECONDS]
#
# `make run`: start thothd in a fresh runtime dir, two echo service
# instances and one echo client generating load; print what runs and how to
# inspect it; wait.  Ctrl-C (or SIGTERM, or the end of --for SECONDS) stops
# everything and removes the runtime dir: no stray process or socket.
set -euo pipefail

usage() { echo "usage: $0 BUILD_DIR [--for SECONDS]" >&2; exit 2; }
[ $# -ge 1 ] || usage
BUILD=$(cd "$1" && pwd) || usage; shift
FOR=""
while [ $# -gt 0 ]; do
  case $1 in
    --for) [ $# -ge 2 ] || usage; FOR=$2; shift 2 ;;
    *) usage ;;
  esac
done

THOTHD=$BUILD/kernel/thothd/thothd
THOTHCTL=$BUILD/tools/thothctl/thothctl
ECHO=$BUILD/services/echo
CLIENT=$BUILD/services/echo-client
for bin in "$THOTHD" "$THOTHCTL" "$ECHO" "$CLIENT"; do
  [ -x "$bin" ] || { echo "run.sh: $bin is missing: build first (make build)" >&2; exit 1; }
done

RT=$(mktemp -d /tmp/thoth-run-XXXXXX)     # 0700, ours
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
  rm -rf "$RT"
  echo "stopped; removed $RT"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

"$THOTHD" --runtime-dir "$RT" --log-level info 2>"$RT/thothd.log" &
PIDS+=($!)
# Wait (bounded) until thothd answers.
for _ in $(seq 1 250); do
  "$THOTHCTL" --runtime-dir "$RT" status >/dev/null 2>&1 && break
  kill -0 "${PIDS[0]}" 2>/dev/null || { cat "$RT/thothd.log" >&2; exit 1; }
  sleep 0.02
done
"$THOTHCTL" --runtime-dir "$RT" status >/dev/null

"$ECHO" --runtime-dir "$RT" 2>"$RT/echo-1.log" &
PIDS+=($!)
"$ECHO" --runtime-dir "$RT" 2>"$RT/echo-2.log" &
PIDS+=($!)
for _ in $(seq 1 250); do
  [ "$("$THOTHCTL" --runtime-dir "$RT" --json services echo 2>/dev/null | wc -l)" -ge 2 ] && break
  sleep 0.02
done
"$CLIENT" --runtime-dir "$RT" --rate 200 --report 3 &
PIDS+=($!)

cat <<MSG
ThothOS is running (runtime dir $RT):
  thothd       pid ${PIDS[0]}   log: $RT/thothd.log
  echo         pid ${PIDS[1]}   (instance 1)
  echo         pid ${PIDS[2]}   (instance 2)
  echo-client  pid ${PIDS[3]}   200 calls/s, round-robin over the instances

Inspect it from another terminal:
  $THOTHCTL --runtime-dir $RT status
  $THOTHCTL --runtime-dir $RT services
  $THOTHCTL --runtime-dir $RT services --watch
  $THOTHCTL --runtime-dir $RT resolve echo --json
Try: kill -9 ${PIDS[1]}   (its instance disappears at once; the client moves on)

MSG
"$THOTHCTL" --runtime-dir "$RT" services
echo
if [ -n "$FOR" ]; then
  echo "(running for $FOR s)"
  sleep "$FOR" & wait $! || true
else
  echo "(Ctrl-C to stop)"
  wait "${PIDS[0]}" || true     # returns on Ctrl-C (trap) or if thothd dies
fi
