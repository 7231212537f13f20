#!/bin/bash
# bench/pm/traces/record.sh RATE SECONDS: record the `make run` demo (thothd,
# the echo service, echo-client at RATE calls/s) with `thothctl trace` and
# keep the echo service's requests as a small text list, echo-RATEhz.txt.
# bench/pm/traces/record.sh kv SECONDS: the same for examples/kv under load
# (kv-service; bursts of 1-20 kv-client put/get calls, a new process each,
# then 0-300 ms of quiet), kept as kv-load.txt.
# Run from the repository root after `make build`.  Only the processes it
# starts are stopped; the runtime dir is removed.
set -eu
RATE=$1; DUR=$2
B=${BUILD:-build/default}
if [ "$RATE" = kv ]; then
	OUT=bench/pm/traces/kv-load.txt
	SERVICE=kv-service; SERVICE_BIN=examples/kv/kv-service; SERVICE_NAME=kv
else
	OUT=bench/pm/traces/echo-${RATE}hz.txt
	SERVICE=echo; SERVICE_BIN=services/echo; SERVICE_NAME=echo
fi
RT=$(mktemp -d /tmp/thoth-pmrec-XXXXXX)
JSON=$RT/trace.json
PIDS=()
cleanup() {
	for ((i=${#PIDS[@]}-1; i>=0; i--)); do
		kill -TERM "${PIDS[$i]}" 2>/dev/null || true
		wait "${PIDS[$i]}" 2>/dev/null || true
	done
	[ -n "${KEEP:-}" ] || rm -rf "$RT"
}
trap cleanup EXIT
"$B/kernel/thothd/thothd" --runtime-dir "$RT" 2>"$RT/thothd.log" & PIDS+=($!)
for _ in $(seq 1 250); do
	"$B/tools/thothctl/thothctl" --runtime-dir "$RT" status >/dev/null 2>&1 && break
	sleep 0.02
done
"$B/$SERVICE_BIN" --runtime-dir "$RT" 2>"$RT/$SERVICE.log" & PIDS+=($!)
ECHO_PID=${PIDS[1]}
for _ in $(seq 1 250); do
	[ "$("$B/tools/thothctl/thothctl" --runtime-dir "$RT" --json services "$SERVICE_NAME" 2>/dev/null | wc -l)" -ge 1 ] && break
	sleep 0.02
done
if [ "$RATE" = kv ]; then
	# the load: bursts of calls, each a new kv-client process
	(
		RANDOM=14; i=0
		while :; do
			for _ in $(seq 1 $((RANDOM % 20 + 1))); do
				i=$((i + 1))
				if ((RANDOM % 3)); then
					"$B/examples/kv/kv-client" --runtime-dir "$RT" get "k$((RANDOM % 50))" >/dev/null 2>&1 || true
				else
					"$B/examples/kv/kv-client" --runtime-dir "$RT" put "k$((RANDOM % 50))" "v$i" >/dev/null 2>&1 || true
				fi
			done
			sleep "0.$(printf %03d $((RANDOM % 300)))"
		done
	) & PIDS+=($!)
else
	"$B/services/echo-client" --runtime-dir "$RT" --rate "$RATE" >/dev/null 2>"$RT/client.log" & PIDS+=($!)
fi
"$B/tools/thothctl/thothctl" --runtime-dir "$RT" trace --duration "$DUR" --categories ipc --json "$JSON"
"$B/tools/thothctl/thothctl" pm sim "$JSON" --pid "$ECHO_PID" --device nic-sim --export-list "$RT/list.txt" >/dev/null
{
	head -2 "$RT/list.txt"
	if [ "$RATE" = kv ]; then
		echo "# examples/kv's kv-service under bursts of kv-client calls, $DUR s, recorded $(date -u +%F) with"
	else
		echo "# the make run demo's echo service under echo-client --rate $RATE, $DUR s, recorded $(date -u +%F) with"
	fi
	echo "# bench/pm/traces/record.sh $RATE $DUR (thothctl trace --categories ipc, then thothctl pm sim --export-list)"
	tail -n +3 "$RT/list.txt"
} >"$OUT"
echo "wrote $OUT ($(grep -vc '^#' "$OUT") requests)"
