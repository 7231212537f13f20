#!/bin/bash
# test_codex_service.sh THOTHD THOTHCTL CODEX PM_SIM_DRIVER CODEX_PROBE
# codex as a service (docs/CODEX.md): registered with thothd, driven by
# `thothctl codex`; bad input gets a clear error and loses nothing; a
# deferred append survives SIGKILL of codex; a client killed mid-stream
# costs nothing else; the disk's power element at its active level (another
# client's assertive lease, through the PM broker) flushes deferred data;
# retention (--retain-bytes) bounds the log and keeps every newer record,
# across a restart; a cut tail is shown and removed by retention; codex
# holds its disk lease again within 3 s of a killed thothd's return.
set -u
. "$(dirname "$0")/../common/thoth_test.sh"
THOTHD=$1 THOTHCTL=$2 CODEX=$3 DRIVER=$4 PROBE=$5
tt_init
export THOTH_RUNTIME_DIR
tt_mkdir THOTH_RUNTIME_DIR codex-svc
tt_mkdir DATA codex-svc-data "$PWD"
fail() { echo "FAIL: $*"; for f in "$THOTH_RUNTIME_DIR"/*.log; do echo "--- $f"; tail -20 "$f"; done; exit 1; }
# wait_for DESC CMD...: poll CMD (10 s deadline)
wait_for() {
	local desc=$1; shift
	for _ in $(seq 200); do "$@" >/dev/null 2>&1 && return 0; sleep 0.05; done
	fail "timed out waiting for $desc"
}
# jq, not python3: each python3 start costs ~0.7 s of CPU, and this test
# reads JSON fourteen times.
json() { jq -r "$@"; }

tt_start_thothd "$THOTH_RUNTIME_DIR"
tt_spawn "$DRIVER" disk >"$THOTH_RUNTIME_DIR/driver.log" 2>&1
# codex takes its lease at start (else it retries, backing off)
wait_for "the disk driver's declaration" grep -q declared "$THOTH_RUNTIME_DIR/driver.log"
start_codex() {
	tt_spawn "$CODEX" --data-dir "$DATA" --workers 4 "$@" 2>>"$THOTH_RUNTIME_DIR/codex.log"
	CODEX_PID=$TT_PID
	wait_for "codex to register" "$THOTHCTL" codex stats
}
start_codex

# create, sync appends acknowledged with their sequence numbers, read back
"$THOTHCTL" codex create logs || fail "create logs"
out=$(printf 'first\nsecond "quoted"\n\nlast\n' | "$THOTHCTL" codex append logs --sync) || fail "append --sync"
[ "$out" = "$(printf '1\n2\n3\n4')" ] || fail "append printed '$out'"
got=$("$THOTHCTL" codex read logs --json)
want='[{"seq": 1, "data": "first"}, {"seq": 2, "data": "second \"quoted\""}, {"seq": 3, "data": ""}, {"seq": 4, "data": "last"}]'
[ "$got" = "$want" ] || fail "read --json gave $got"
[ "$("$THOTHCTL" codex read logs --from 4 --json)" = '[{"seq": 4, "data": "last"}]' ] || fail "read --from 4"
echo "ok: create, append --sync, read --json"

# a record that is not UTF-8: read --json is still UTF-8 (U+FFFD in
# "data") and gives the exact bytes in "base64"
[ "$(printf '\xff\xfe bin\n' | "$THOTHCTL" codex append logs)" = 5 ] || fail "append of a binary record"
got=$("$THOTHCTL" codex read logs --from 5 --json) || fail "read --from 5"
printf '%s' "$got" | iconv -f UTF-8 -t UTF-8 >/dev/null 2>&1 || fail "read --json wrote bytes that are not UTF-8: $got"
[ "$(json -r '.[0].data' <<<"$got")" = $'\ufffd\ufffd bin' ] || fail "data of a binary record: $got"
json -r '.[0].base64' <<<"$got" | base64 -d | cmp -s - <(printf '\xff\xfe bin') || fail "base64 of a binary record: $got"
# ... and as text, shown as \xNN, not written raw to the terminal (as an
# escape sequence another client appended would be)
[ "$("$THOTHCTL" codex read logs --from 5)" = "$(printf '5\t\\xff\\xfe bin')" ] ||
	fail "text read of a binary record: $("$THOTHCTL" codex read logs --from 5 | od -c | head -3)"
echo "ok: a record that is not UTF-8 reads back as JSON, exactly in base64"

# C1 controls are UTF-8 (U+009B is c2 9b) but a terminal obeys U+009B as
# CSI: shown as \xNN too, while other UTF-8 (é) is written as it is
"$THOTHCTL" codex create c1 || fail "create c1"
[ "$(printf '\xc2\x9b31mred \xc3\xa9\xc2\x80\n' | "$THOTHCTL" codex append c1)" = 1 ] || fail "append of a C1 record"
[ "$("$THOTHCTL" codex read c1)" = "$(printf '1\t\\xc2\\x9b31mred \xc3\xa9\\xc2\\x80')" ] ||
	fail "text read of a C1 record: $("$THOTHCTL" codex read c1 | od -c | head -3)"
echo "ok: C1 controls read back as \\xNN"

# bad input: clear errors, nothing else lost
err=$(echo x | "$THOTHCTL" codex append nosuch 2>&1) && fail "append to an unknown stream succeeded"
grep -q "no such stream" <<<"$err" || fail "unknown stream said: $err"
err=$({ head -c 300000 /dev/zero | tr '\0' y; echo; } | "$THOTHCTL" codex append logs 2>&1) && fail "an oversized record was accepted"
grep -q "record too large" <<<"$err" || fail "oversized record said: $err"
# an endless line: refused as too large at once, in bounded memory (getline
# grew it until malloc failed, then ended the input as done: exit 0)
err=$(head -c 400M /dev/zero | (ulimit -v 262144; "$THOTHCTL" codex append logs) 2>&1) &&
	fail "an endless line was taken as the end of the input"
grep -q "record too large" <<<"$err" || fail "an endless line said: $err"
err=$("$THOTHCTL" codex create 'Bad Name' 2>&1) && fail "a bad stream name was accepted"
grep -q "bad stream name" <<<"$err" || fail "bad name said: $err"
[ "$("$PROBE" bad-durability logs)" = "THOTH_E_REMOTE BadDurability" ] || fail "unknown durability class: $("$PROBE" bad-durability logs)"
[ "$("$THOTHCTL" codex read logs --json | json 'length')" = 5 ] || fail "bad input cost records"
echo "ok: unknown stream, oversized record, bad name, unknown durability class refused; nothing lost"

# a client killed in the middle of its stream: what it had acknowledged stays, codex goes on
"$THOTHCTL" codex create events || fail "create events"
fifo=$THOTH_RUNTIME_DIR/in.fifo; mkfifo "$fifo"
"$THOTHCTL" codex append events --sync <"$fifo" >"$THOTH_RUNTIME_DIR/acks" & victim=$!; TT_PIDS+=($victim)
exec 7>"$fifo"
for i in 1 2 3; do echo "e$i" >&7; done
wait_for "3 acknowledgements" grep -qx 3 "$THOTH_RUNTIME_DIR/acks"
kill -9 $victim; tt_reap $victim; exec 7>&-
echo e4 | "$THOTHCTL" codex append events --sync >/dev/null || fail "append after a client died"
[ "$("$THOTHCTL" codex read events --json | json -c '[.[].data]')" = '["e1","e2","e3","e4"]' ] ||
	fail "after a client's death: $("$THOTHCTL" codex read events --json)"
echo "ok: a client killed mid-stream costs nothing else"

# writeback aligned to the disk's awake window (PM broker)
wait_for "codex's opportunistic lease on disk" sh -c "'$THOTHCTL' codex stats --json | grep -q '\"pm_leased\":true'"
seq 1 5 | sed 's/^/d/' | "$THOTHCTL" codex append logs --deferred >/dev/null || fail "append --deferred"
st=$("$THOTHCTL" codex stats --json)
[ "$(json '.pending_records' <<<"$st")" = 5 ] || fail "deferred records not pending: $st"
[ "$(json '.epochs_by_reason["pm-awake"]' <<<"$st")" = 0 ] || fail "an awake epoch without a wake-up"
coproc HOLD { "$PROBE" hold-disk disk; }
TT_PIDS+=($HOLD_PID)
read -r line <&"${HOLD[0]}"; [ "$line" = held ] || fail "could not take a lease on the disk"
wait_for "a pm-awake epoch" sh -c "'$THOTHCTL' codex stats --json | jq -e '.epochs_by_reason[\"pm-awake\"] >= 1 and .pending_records == 0'"
eval "exec ${HOLD[1]}>&-"; tt_reap $HOLD_PID
echo "ok: deferred records flushed when the disk element reached its active level"

# deferred survives SIGKILL of codex (it is in the page cache at once)
acked=$(seq 1 20 | sed 's/^/k/' | "$THOTHCTL" codex append events --deferred | tail -1)
[ "$acked" = 24 ] || fail "deferred appends acknowledged up to '$acked'"
kill -9 $CODEX_PID; tt_reap $CODEX_PID
start_codex
n=$("$THOTHCTL" codex read events --json | json 'length')
[ "$n" = 24 ] || fail "after SIGKILL codex returned $n records of 24 acknowledged"
[ "$("$THOTHCTL" codex read events --from 24 --json)" = '[{"seq": 24, "data": "k20"}]' ] || fail "last deferred record"
echo "ok: 20 deferred records acknowledged before SIGKILL are all there after restart"

# by time: everything from the start of time, nothing from the future
[ "$("$THOTHCTL" codex read events --since 1 --json | json 'length')" = 24 ] || fail "read --since"
[ "$("$THOTHCTL" codex read events --since 9000000000000000000 --json)" = "[]" ] || fail "read --since future"
"$THOTHCTL" codex stats >/dev/null || fail "stats"
echo "ok: read by time, stats"

# retention: small segments, keep >= 16 KiB; the log stays bounded, every
# record newer than the retired ones is there, before and after a restart
kill $CODEX_PID; tt_reap $CODEX_PID
err=$("$CODEX" --data-dir "$DATA" --retain-bytes -5 2>&1) && fail "a negative retention was accepted"
grep -q "retain-bytes" <<<"$err" || fail "bad --retain-bytes said: $err"
start_codex --segment-bytes 4096 --retain-bytes 16384
"$THOTHCTL" codex create bulk || fail "create bulk"
# deferred (fast), then one sync: its epoch makes all durable, then compacts
seq 1 599 | sed 's/^/bulk-record-number-/' | "$THOTHCTL" codex append bulk --deferred >/dev/null || fail "append bulk"
echo bulk-record-number-600 | "$THOTHCTL" codex append bulk --sync >/dev/null || fail "append bulk --sync"
check_retained() {
	local st first
	st=$("$THOTHCTL" codex stats --json)
	# (compactions are counted per codex process: the restarted one made none yet)
	[ "$(json --arg phase "$1" '(.compactions >= 1 or $phase != "running") and .segment_bytes >= 16384 and .segment_bytes < 16384 + 3 * 4096' <<<"$st")" = true ] ||
		fail "retention did not bound the log ($1): $st"
	first=$(json '[.streams[] | select(.name == "bulk") | .first_seq][0]' <<<"$st")
	[ "$first" -gt 1 ] || fail "nothing retired from bulk ($1)"
	"$THOTHCTL" codex read bulk --json |
		jq -e --argjson first "$first" '. == [range($first; 601) | {seq: ., data: "bulk-record-number-\(.)"}]' >/dev/null ||
		fail "bulk records $first..600 not all there intact ($1)"
	echo "ok: retention kept records $first..600 of bulk ($1)"
}
check_retained "running"
kill $CODEX_PID; tt_reap $CODEX_PID
start_codex --segment-bytes 4096 --retain-bytes 16384
check_retained "after a restart"

# codex killed while `codex append` streams into it: thothctl ends at once,
# exit 1, saying codex went away and that only the printed records are
# kept (it said "peer gone")
mkfifo "$THOTH_RUNTIME_DIR/in"
"$THOTHCTL" codex append bulk <"$THOTH_RUNTIME_DIR/in" >"$THOTH_RUNTIME_DIR/app.out" 2>"$THOTH_RUNTIME_DIR/app.err" &
ap=$!; TT_PIDS+=($ap)
exec 8>"$THOTH_RUNTIME_DIR/in"
echo one-more >&8
wait_for "the streamed record's acknowledgement" grep -q 601 "$THOTH_RUNTIME_DIR/app.out"
kill -9 $CODEX_PID; tt_reap $CODEX_PID
echo after-the-kill >&8
exec 8>&-
tt_reap $ap && fail "append went on after codex was killed"
grep -q "codex went away" "$THOTH_RUNTIME_DIR/app.err" || fail "codex killed mid-append said: $(cat "$THOTH_RUNTIME_DIR/app.err")"
start_codex --segment-bytes 4096 --retain-bytes 16384
[ "$("$THOTHCTL" codex read bulk --from 601 --json)" = '[{"seq": 601, "data": "one-more"}]' ] ||
	fail "the acknowledged record after the kill: $("$THOTHCTL" codex read bulk --from 601 --json)"
echo "ok: codex killed mid-append: thothctl says so, the acknowledged record is kept"

# a record damaged on the disk after it was written (a bit flipped by hand):
# the records before it are read, then thothctl names it and how to read
# past it; the journal runs on (appends, stats).  The damage was reported
# as "the journal stopped after an I/O error" and nothing of the read came.
"$THOTHCTL" codex create dmg || fail "create dmg"
printf 'dmg-one\ndmg-two\ndmg-three\n' | "$THOTHCTL" codex append dmg --sync >/dev/null || fail "append dmg"
seg=$(grep -l 'dmg-two' "$DATA"/seg-*.log | head -1)
[ -n "$seg" ] || fail "no segment holds dmg-two"
off=$(grep -obUa 'dmg-two' "$seg" | head -1 | cut -d: -f1)
printf 'D' | dd of="$seg" bs=1 seek="$off" conv=notrunc status=none || fail "damaging $seg"
out=$("$THOTHCTL" codex read dmg 2>"$THOTH_RUNTIME_DIR/dmg.err") && fail "a read over a damaged record succeeded"
[ "$out" = "$(printf '1\tdmg-one')" ] || fail "the records before the damaged one: '$out' ($(cat "$THOTH_RUNTIME_DIR/dmg.err"))"
grep -q "record 2 does not read back intact" "$THOTH_RUNTIME_DIR/dmg.err" &&
	grep -q -- "--from 3 reads past it" "$THOTH_RUNTIME_DIR/dmg.err" ||
	fail "a damaged record said: $(cat "$THOTH_RUNTIME_DIR/dmg.err")"
[ "$("$THOTHCTL" codex read dmg --from 3)" = "$(printf '3\tdmg-three')" ] || fail "read past the damaged record"
"$THOTHCTL" codex stats | grep -q STOPPED && fail "one damaged record stopped the journal"
[ "$(echo dmg-four | "$THOTHCTL" codex append dmg)" = 4 ] || fail "append after a damaged read"
grep -q "record 2 does not read back intact" "$THOTH_RUNTIME_DIR/codex.log" || fail "codex did not log the damaged record"
echo "ok: a record damaged on the disk: the ones before it read, it is named, the journal runs on"

# a restart cuts the log at the damaged record: the tail is copied aside to
# a cut file, which codex's log and `thothctl codex stats` show and which
# retention removes beyond its budget (--cut-bytes 1 here: every one; cut
# files were never removed: a crash loop grew the disk without bound).  An entry
# named like a cut file that is not a regular file -- a FIFO, which would
# block codex's start if opened -- is left alone and said so.
mkfifo "$DATA/seg-0000000000000001.log.cut-99" || fail "mkfifo"
kill $CODEX_PID; tt_reap $CODEX_PID
start_codex --segment-bytes 4096 --retain-bytes 16384 --cut-bytes 1
grep -q "cut files\{0,1\} ([0-9]* bytes) held in .*the oldest removed beyond --cut-bytes" "$THOTH_RUNTIME_DIR/codex.log" ||
	fail "codex's log does not show the cut files: $(grep cut "$THOTH_RUNTIME_DIR/codex.log")"
grep -q "1 entry in .* named like cut files but not regular files" "$THOTH_RUNTIME_DIR/codex.log" ||
	fail "codex's log does not name the FIFO: $(grep cut "$THOTH_RUNTIME_DIR/codex.log")"
st=$("$THOTHCTL" codex stats --json)
[ "$(json '.cut_files >= 1 and .cut_bytes > 0' <<<"$st")" = true ] || fail "stats do not show the cut files: $st"
"$THOTHCTL" codex stats | grep -q "cut files (seg-\*.log.cut-\*, tails set aside by recovery): [1-9]" ||
	fail "thothctl codex stats does not show the cut files: $("$THOTHCTL" codex stats)"
seq 1 599 | sed 's/^/after-the-cut-number-/' | "$THOTHCTL" codex append bulk --deferred >/dev/null || fail "append after the cut"
echo after-the-cut-600 | "$THOTHCTL" codex append bulk --sync >/dev/null || fail "append --sync after the cut"
wait_for "retention to remove the cut files" sh -c "'$THOTHCTL' codex stats --json | jq -e '.cut_files == 0 and .cut_files_removed >= 1'"
ls "$DATA"/seg-*.log.cut-* 2>/dev/null | grep -v 'cut-99$' && fail "cut files left: $(ls "$DATA")"
[ -p "$DATA/seg-0000000000000001.log.cut-99" ] || fail "the FIFO named like a cut file was touched"
[ "$("$THOTHCTL" codex stats --json | jq -c '[.cut_budget_bytes, .cut_files_stuck]')" = "[1,0]" ] ||
	fail "stats do not show the cut budget: $("$THOTHCTL" codex stats --json)"
echo "ok: the cut tail is shown (log, stats) and removed by retention; a FIFO named like one is left alone"

# thothd killed -9 and back 12 s later: codex takes its disk lease again
# about a second after the return (20 ms doubling to 1 s while thothd is
# away, docs/CODEX.md).  It backed off 0.5 s to 30 s before, each try also
# waiting up to 0.5 s for thothd's socket: its tries at ~0.5, 2, 4.5 and
# 9 s all missed, the next came at ~17.5 s, ~5.5 s after the return (an
# absence of 9 s ended inside the 9 s try's wait in one run of two).
# Read from thothd's side (the lease holders), which needs no
# re-registration of codex.
codex_holds() { "$THOTHCTL" --json pm | jq -e --argjson p "$CODEX_PID" 'any(.lease_holders[]; .pid == $p)'; }
wait_for "codex's lease before thothd's kill" codex_holds
kill -9 $THOTHD_PID; tt_reap $THOTHD_PID
sleep 12
# t0 once thothd is ready (its READY line): its own start-up (2.9 s
# measured at load 11-15) is not codex's delay.
tt_start_thothd "$THOTH_RUNTIME_DIR"
t0=$(date +%s%N)
wait_for "codex's lease after thothd's return" codex_holds
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
[ $ms -le 4000 ] || fail "codex took its disk lease again ${ms} ms after thothd came back (4000 allowed)"
echo "ok: codex holds its disk lease again ${ms} ms after a killed thothd came back"
# ... and codex's log says each step of its registration: away, retrying,
# registered again.  It said nothing of thothd at all, so a codex started
# before thothd (or refused its name) printed "serving" and nothing else
# while `thothctl codex` found no codex.
said() { grep -c "^codex\[$CODEX_PID\]: worker 0: $1" "$THOTH_RUNTIME_DIR/codex.log"; }
registered_again() { [ "$(said "registered with thothd")" -ge 2 ]; }
wait_for "codex's log to say it registered again" registered_again
[ "$(said "not registered with thothd, retrying: ")" -ge 1 ] ||
	fail "codex's log does not say it lost thothd: $(grep "^codex\[$CODEX_PID\]" "$THOTH_RUNTIME_DIR/codex.log")"
echo "ok: codex's log follows its registration: $(grep "^codex\[$CODEX_PID\]: worker 0: not registered" "$THOTH_RUNTIME_DIR/codex.log" | head -1)"
