#!/bin/bash
# bench/pm/traces/record.sh RATE SECONDS: record the `make run` demo (thothd,
# the echo service, echo-client at RATE calls/s) with `thothctl trace` and
# keep the echo service's requests as a small text list, echo-RATEhz.txt.
# Run from the repository root after `make build`.  Only the processes it
# starts are stopped; the runtime dir is removed.
set -eu
RATE=$1; DUR=$2
B=${BUILD:-build/default}
OUT=bench/pm/traces/echo-${RATE}hz.txt
RT=$(mktemp -d /tmp/thoth-pmrec-XXXXXX)
JSON=$RT/trace.json
PIDS=()
cleanup() {
	for ((i=${#PIDS[@]}-1; i>=0; i--)); do
		kill -TERM "${PIDS[$i]}" 2>/dev/null || true
		wait "${PIDS[$i]}" 2>/dev/null || true
	done
	rm -rf "$RT"
}
trap cleanup EXIT
"$B/kernel/thothd/thothd" --runtime-dir "$RT" 2>"$RT/thothd.log" & PIDS+=($!)
for _ in $(seq 1 250); do
	"$B/tools/thothctl/thothctl" --runtime-dir "$RT" status >/dev/null 2>&1 && break
	sleep 0.02
done
"$B/services/echo" --runtime-dir "$RT" 2>"$RT/echo.log" & PIDS+=($!)
ECHO_PID=${PIDS[1]}
for _ in $(seq 1 250); do
	[ "$("$B/tools/thothctl/thothctl" --runtime-dir "$RT" --json services echo 2>/dev/null | wc -l)" -ge 1 ] && break
	sleep 0.02
done
"$B/services/echo-client" --runtime-dir "$RT" --rate "$RATE" >/dev/null 2>"$RT/client.log" & PIDS+=($!)
"$B/tools/thothctl/thothctl" --runtime-dir "$RT" trace --duration "$DUR" --categories ipc --json "$JSON"
"$B/tools/thothctl/thothctl" pm sim "$JSON" --pid "$ECHO_PID" --device nic-sim --export-list "$RT/list.txt" >/dev/null
{
	head -2 "$RT/list.txt"
	echo "# the make run demo's echo service under echo-client --rate $RATE, $DUR s, recorded $(date -u +%F) with"
	echo "# bench/pm/traces/record.sh $RATE $DUR (thothctl trace --categories ipc, then thothctl pm sim --export-list)"
	tail -n +3 "$RT/list.txt"
} >"$OUT"
echo "wrote $OUT ($(grep -vc '^#' "$OUT") requests)"
