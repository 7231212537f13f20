#!/bin/bash
# client_measure.sh BUILD_DIR [IDLE_SECONDS [AWAY_SECONDS]] - the figures of docs/RELIABILITY.md,
# "Clients and services across thothd restarts", measured with real processes
# of the build in BUILD_DIR (run it on an older build for the "before" column):
#   1. idle cost: thothd + 10 registered echo services (+ an idle resolving
#      client when the build has tests/reliability/client_helper), voluntary
#      context switches of each process over IDLE_SECONDS (default 60);
#   2. thothd restarts: thothd + 2 echo + echo-client --rate 1000; thothd is
#      killed (-9) and restarted 3 times (away AWAY_SECONDS, default 2, each
#      time, then 3 s until the next kill); echo-client's
#      calls/s every second, the time until both services are registered again
#      after each restart, and descriptor counts before and after.
# Everything runs in a fresh temp runtime dir, removed at the end; only
# processes started here are killed.
set -u
B=$1
IDLE=${2:-60}
AWAY=${3:-2}
THOTHD=$B/kernel/thothd/thothd ECHO=$B/services/echo CLIENT=$B/services/echo-client
CTL=$B/tools/thothctl/thothctl HELPER=$B/tests/reliability/client_helper
D=$(mktemp -d "${TMPDIR:-/tmp}/thoth-measure-XXXXXX")
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; wait "$p" 2>/dev/null; done; rm -rf "$D"; }
trap cleanup EXIT
now_ms() { date +%s%3N; }
vcs() { awk '/^voluntary_ctxt_switches/ {print $2}' /proc/$1/status; }
regs() { "$CTL" --runtime-dir "$D" --json status 2>/dev/null | sed -n 's/.*"registrations":\([0-9]*\).*/\1/p'; }
wait_regs() {  # N DEADLINE_MS -> prints ms waited
	local t0; t0=$(now_ms)
	while [ "$(regs)" != "$1" ]; do
		[ $(( $(now_ms) - t0 )) -gt "$2" ] && { echo "timeout"; return 1; }
		sleep 0.002
	done
	echo $(( $(now_ms) - t0 ))
}
wait_up() {  # DEADLINE_MS -> prints ms until thothd answers
	local t0; t0=$(now_ms)
	while [ -z "$(regs)" ]; do
		[ $(( $(now_ms) - t0 )) -gt "$1" ] && { echo "timeout"; return 1; }
		sleep 0.002
	done
	echo $(( $(now_ms) - t0 ))
}
LOG=$D/idle.log
start_thothd() { "$THOTHD" --runtime-dir "$D" --http-port 0 2>>"$LOG" & T=$!; PIDS+=($T); }

echo "== idle: thothd + 10 echo services$( [ -x "$HELPER" ] && echo " + an idle resolving client"), ${IDLE} s"
start_thothd
wait_up 5000 >/dev/null
SVC=()
for i in $(seq 10); do "$ECHO" --runtime-dir "$D" 2>/dev/null & SVC+=($!); PIDS+=($!); done
HP=
if [ -x "$HELPER" ]; then "$HELPER" "$D" echo >/dev/null 2>&1 & HP=$!; PIDS+=($HP); fi
wait_regs 10 10000 >/dev/null
sleep 1
ALL=("$T" "${SVC[@]}" $HP)
declare -A V0
for p in "${ALL[@]}"; do V0[$p]=$(vcs "$p"); done
sleep "$IDLE"
line="thothd $(( $(vcs "$T") - ${V0[$T]} ))  services"
for p in "${SVC[@]}"; do line+=" $(( $(vcs "$p") - ${V0[$p]} ))"; done
[ -n "$HP" ] && line+="  client $(( $(vcs "$HP") - ${V0[$HP]} ))"
echo "voluntary context switches in ${IDLE} s: $line"
for p in "${ALL[@]}"; do kill -9 "$p" 2>/dev/null; done
for p in "${ALL[@]}"; do wait "$p" 2>/dev/null; done
PIDS=()
rm -f "$D"/*.sock "$D"/thothd.pid

echo "== thothd restarts: thothd + 2 echo + echo-client --rate 1000, 3 x (kill -9, ${AWAY} s away, restart)"
LOG=$D/restarts.log
start_thothd
wait_up 5000 >/dev/null
"$ECHO" --runtime-dir "$D" 2>/dev/null & E1=$!; PIDS+=($E1)
"$ECHO" --runtime-dir "$D" 2>/dev/null & E2=$!; PIDS+=($E2)
wait_regs 2 10000 >/dev/null
"$CLIENT" --runtime-dir "$D" --rate 1000 --report 1 >"$D/client.log" 2>&1 & C=$!; PIDS+=($C)
sleep 3.5
F0="echo $(ls /proc/$E1/fd | wc -l)/$(ls /proc/$E2/fd | wc -l), echo-client $(ls /proc/$C/fd | wc -l)"
for i in 1 2 3; do
	kill -9 "$T"; wait "$T" 2>/dev/null
	sleep "$AWAY"
	start_thothd
	sleep 3         # the measurement window of this restart (calls/s keep being reported)
done
sleep 2
F1="echo $(ls /proc/$E1/fd | wc -l)/$(ls /proc/$E2/fd | wc -l), echo-client $(ls /proc/$C/fd | wc -l)"
echo "descriptors before: $F0; after 3 restarts: $F1"
# Re-registration: from thothd's "listening on" to the second "registered"
# line after it, both from thothd's own log (ms timestamps, no polling).
awk '/ listening on / { t = ms($1); n = 0; next }
     / registered / && t { if (++n == 2) { printf "restart %d: both services registered again %d ms after thothd listened\n", k++, ms($1) - t; t = 0 } }
     function ms(s,  a) { split(substr(s, 12, 12), a, /[:.]/); return ((a[1] * 60 + a[2]) * 60 + a[3]) * 1000 + a[4] }' "$LOG" | tail -n 3
echo "echo-client calls/s, one report per second:"
grep -o '[0-9]* calls/s' "$D/client.log" | tr '\n' ' '; echo
