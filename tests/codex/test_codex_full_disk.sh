#!/bin/bash
# test_codex_full_disk.sh THOTHD THOTHCTL CODEX
# codex on a full disk (docs/CODEX.md, the operator's drill in
# docs/OPERATIONS.md): a real 128 KiB tmpfs holds the journal; sync appends
# of 1000-byte records fill it.  The append that does not fit fails with an
# error naming ENOSPC and the segment's path, `thothctl codex stats` says
# STOPPED with the same cause, a later append fails at once the same way;
# nothing acknowledged is lost and nothing is acknowledged that is not on
# the disk; codex still ends on SIGTERM.  Then the tmpfs grows (mount -o
# remount,size=1m), codex starts again: it recovers every acknowledged
# record intact, cuts the torn tail (copied aside), and the next append
# gets the next sequence number.
# Needs root (CAP_SYS_ADMIN) for the mount: skipped (77) only when the
# mount is refused.  The tmpfs is unmounted on every exit (EXIT trap).
set -u
. "$(dirname "$0")/../common/thoth_test.sh"
tt_own_mount_ns "$@"
THOTHD=$1 THOTHCTL=$2 CODEX=$3
tt_init
tt_mkdir RT codex-full
export THOTH_RUNTIME_DIR=$RT
show_logs() { for f in "$RT"/*.log; do echo "--- $f"; tail -30 "$f"; done; }
fail() { echo "FAIL: $*"; show_logs; exit 1; }

# The mount point: tt_mkdir's (a short folder of the stage's where TMPDIR
# is long: the error's path is cut at thoth_error_info_t.what's 160 bytes);
# tt_cleanup unmounts it before it removes it.
tt_tmpfs DISK codex-full-disk size=128k,mode=0700
# The data dir's name long enough that the failed append's "append to
# DATA/seg-0000000000000007.log" is 155 of thoth_error_info_t.what's 160
# bytes: the whole cause, with ": ENOSPC (No space left on device)" after
# it, is then ~210 bytes and must reach the operator whole (thothctl's
# 200-byte buffer cut the errno's text: "ENOSPC (No space lef (Failed)").
DATA=$DISK/cx-$(printf '%*s' $((155 - 39 - ${#DISK})) '' | tr ' ' d)
[ $((10 + ${#DATA} + 25)) = 155 ] || fail "the data dir's path is ${#DATA} bytes"

tt_start_thothd "$RT"
codex_up() { "$THOTHCTL" codex stats >/dev/null 2>&1; }
start_codex() {
	tt_spawn "$CODEX" --data-dir "$DATA" --workers 2 --no-pm --segment-bytes 16384 2>>"$RT/codex.log"
	CODEX_PID=$TT_PID
	tt_until --show "$RT/codex.log" 30 "codex to register" codex_up
}
start_codex
"$THOTHCTL" codex create notes || fail "create notes"

# 400 records of 1000 bytes (400 KB: three times the disk), each one's
# number in it; appended --sync from one stream, each acknowledged number
# printed as it comes.
rec() { printf 'rec-%04d-%0991d\n' "$1" 0; }
for i in $(seq 1 400); do rec "$i"; done >"$RT/input"
[ "$(head -1 "$RT/input" | tr -d '\n' | wc -c)" = 1000 ] || fail "a record is not 1000 bytes"
rc=0
timeout 60 "$THOTHCTL" codex append notes --sync <"$RT/input" >"$RT/acks" 2>"$RT/append.err" || rc=$?
[ $rc != 124 ] || fail "append on a full disk hung (60 s)"
[ $rc = 1 ] || fail "append on a full disk exited $rc, not 1: $(cat "$RT/append.err")"
acked=$(wc -l <"$RT/acks")
[ "$acked" -ge 50 ] && [ "$acked" -lt 131 ] || fail "$acked records acknowledged on a 128 KiB disk"
[ "$(cat "$RT/acks")" = "$(seq 1 "$acked")" ] || fail "the acknowledgements are not 1..$acked: $(tr '\n' ' ' <"$RT/acks")"
err=$(cat "$RT/append.err")
echo "ok: $acked records acknowledged, then: $err"
grep -q "the journal stopped after an I/O error" <<<"$err" || fail "the failed append said: $err"
# whole: the errno, its text and the code after it (a cut cause ended "(No space lef (Failed)")
grep -qE "ENOSPC \([^()]+\) \(Failed\)$" <<<"$err" || fail "the failed append does not name ENOSPC, whole: $err"
grep -qF "$DATA/seg-" <<<"$err" || fail "the failed append does not name the journal's path ($DATA/seg-...): $err"

# stats: STOPPED, with the cause
st=$("$THOTHCTL" codex stats) || fail "stats after the failure"
head -1 <<<"$st" | grep -q "^STOPPED: .*ENOSPC" || fail "stats' first line: $(head -1 <<<"$st")"
head -1 <<<"$st" | grep -qF "$DATA/seg-" || fail "stats does not name the journal's path: $(head -1 <<<"$st")"
[ "$("$THOTHCTL" codex stats --json | jq -r '.failure | test("ENOSPC")')" = true ] ||
	fail "stats --json failure: $("$THOTHCTL" codex stats --json | jq -r .failure)"
# codex's log says it once
[ "$(grep -c "the journal stopped: .*ENOSPC" "$RT/codex.log")" = 1 ] ||
	fail "codex's log does not say the cause once: $(grep stopped "$RT/codex.log")"
# a later append fails at once, the same way; reads of what was acknowledged go on
rc=0
err=$(rec 999 | timeout 30 "$THOTHCTL" codex append notes --sync 2>&1) || rc=$?
[ $rc = 1 ] || fail "an append on the stopped journal exited $rc: $err"
grep -qE "ENOSPC \([^()]+\) \(Failed\)$" <<<"$err" || fail "an append on the stopped journal said: $err"
echo "ok: stats says $(head -1 <<<"$st"); a later append: $err"

# Nothing acknowledged is lost, nothing is acknowledged that is not on the
# disk: on a tmpfs the disk is the files, so every acknowledged record is
# in a segment, whole, now (before any restart)
head -n "$acked" "$RT/input" >"$RT/acked"
found=$(cat "$DATA"/seg-*.log | grep -aoF -f "$RT/acked" | sort -u | wc -l)
[ "$found" = "$acked" ] || fail "$found of the $acked acknowledged records are in the segments"
got=$("$THOTHCTL" codex read notes --json) || fail "read on the stopped journal"
[ "$(jq length <<<"$got")" = "$acked" ] || fail "the stopped journal reads $(jq length <<<"$got") records, $acked acknowledged"
echo "ok: all $acked acknowledged records are in the segments and read back"

# codex still ends on SIGTERM (bounded: a hang fails here, not at ctest's timeout)
kill -TERM "$CODEX_PID"
for _ in $(seq 1500); do _tt_ours "$CODEX_PID" live || break; sleep 0.02; done
_tt_ours "$CODEX_PID" live && fail "codex did not end within 30 s of SIGTERM on a full disk"
tt_reap "$CODEX_PID"
echo "ok: codex ended on SIGTERM"

# Make room and start again
mount -o remount,size=1m "$DISK" || fail "remount to 1 MiB"
mv "$RT/codex.log" "$RT/codex-before.log"
start_codex
rl=$(grep "recovered" "$RT/codex.log") || fail "codex's log does not say what it recovered"
echo "ok: restarted: $rl"
got=$("$THOTHCTL" codex read notes --json) || fail "read after the restart"
jq -e --argjson n "$acked" '. == [range(1; $n + 1) | {seq: ., data: ("rec-" + ("000" + tostring)[-4:] + "-" + ("0" * 991))}]' \
	<<<"$got" >/dev/null || fail "after the restart the records are not exactly the $acked acknowledged: $(jq -c '[length, .[-1].seq]' <<<"$got")"
ls "$DATA"/seg-*.log.cut-* >/dev/null 2>&1 || grep -q "cut 0 torn bytes" <<<"$rl" ||
	fail "a torn tail was cut but not copied aside: $(ls "$DATA")"
next=$(echo after-the-room | "$THOTHCTL" codex append notes --sync) || fail "append after the restart"
[ "$next" = $((acked + 1)) ] || fail "the next append got $next, not $((acked + 1))"
"$THOTHCTL" codex stats | head -1 | grep -q STOPPED && fail "stats says STOPPED after the restart"
echo "ok: all $acked acknowledged records intact after the restart; the next append is $next"
