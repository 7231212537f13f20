#!/bin/bash
# test_codex_fsync_eio.sh THOTHD THOTHCTL CODEX SHIM
# A failed fdatasync (docs/CODEX.md "Errors", "the fsync policy"): a real
# codex with an LD_PRELOAD shim (eio_fdatasync.c) whose first fdatasync of
# a segment after the test touches a flag file fails with EIO, every later
# one being the real one.  After a failed fdatasync the kernel may have
# dropped the pages it could not write, so a retry can succeed without
# them: codex must not retry and then acknowledge.  Checked: the sync
# append whose epoch failed is not acknowledged and its error names the
# segment file, EIO and that nothing more is acknowledged; a later append
# is refused the same way (the shim's next fdatasync would succeed); stats
# says STOPPED; codex's log says it once; SIGTERM ends codex; a restart
# recovers every acknowledged record and numbers on.
set -u
. "$(dirname "$0")/../common/thoth_test.sh"
THOTHD=$1 THOTHCTL=$2 CODEX=$3 SHIM=$4
tt_init
tt_mkdir RT codex-eio
tt_mkdir W codex-eio-work
export THOTH_RUNTIME_DIR=$RT
DATA=$W/data FLAG=$W/fail-now
show_logs() { echo "--- codex.log"; tail -30 "$W/codex.log"; }
fail() { echo "FAIL: $*"; show_logs; exit 1; }
tt_start_thothd "$RT" --http-port off
codex_up() { "$THOTHCTL" codex stats >/dev/null 2>&1; }
start_codex() {
	tt_spawn env LD_PRELOAD="$SHIM" THOTH_TEST_EIO_FDATASYNC="$FLAG" \
		ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0" \
		"$CODEX" --runtime-dir "$RT" --data-dir "$DATA" --workers 2 --no-pm 2>>"$W/codex.log"
	CODEX_PID=$TT_PID
	tt_until --show "$W/codex.log" 30 "codex to register" codex_up
}
start_codex
# The shim took io_uring away: codex's fdatasyncs are libc's, which it sees.
be=$("$THOTHCTL" codex stats --json | jq -r .backend)
[ "$be" = epoll ] || fail "codex's loop runs on '$be' under the shim, not epoll: the shim cannot see its fdatasyncs"
"$THOTHCTL" codex create notes || fail "create notes"

printf 'r%d\n' 1 2 3 4 5 | "$THOTHCTL" codex append notes --sync >"$W/acks" 2>"$W/append.err" ||
	fail "the first 5 sync appends: $(cat "$W/append.err")"
[ "$(cat "$W/acks")" = "$(seq 1 5)" ] || fail "the first acknowledgements: $(tr '\n' ' ' <"$W/acks")"

# A slow disk: a create waits for its fdatasync, thothctl gives up after
# 5 s, and the stream exists once the disk answers: the error says it may
# (it said only that codex did not answer).
touch "$FLAG.hang"
rc=0
timeout 60 "$THOTHCTL" codex create late >/dev/null 2>"$W/create.err" || rc=$?
rm "$FLAG.hang"
[ $rc = 1 ] || fail "a create waiting for a slow fdatasync exited $rc: $(cat "$W/create.err")"
grep -qF "thothctl: codex create late: codex (pid $CODEX_PID) did not answer within 5 s: busy or stuck (its log may say which); the stream may exist anyway (\`thothctl codex stats\` lists it once codex answers)" "$W/create.err" ||
	fail "the create's timeout does not say the stream may exist, and how to check: $(cat "$W/create.err")"
tt_until 30 "stream 'late' listed once the disk answers" bash -c "'$THOTHCTL' codex stats | grep -q '^stream late:'"
echo "ok: $(cat "$W/create.err"); then stats lists it"

# The disk fails the next fdatasync.
touch "$FLAG"
rc=0
printf 'r%d\n' 6 7 | timeout 60 "$THOTHCTL" codex append notes --sync >"$W/acks2" 2>"$W/append2.err" || rc=$?
err=$(cat "$W/append2.err")
grep -q "eio_fdatasync: fdatasync of $DATA/seg-0000000000000001.log fails with EIO" "$W/codex.log" ||
	fail "the shim failed no fdatasync of segment 1 (append exited $rc: $err)"
[ ! -s "$W/acks2" ] || fail "acknowledged after a failed fdatasync: $(tr '\n' ' ' <"$W/acks2") ($err)"
[ $rc = 1 ] || fail "the append whose fdatasync failed exited $rc, not 1: $err"
echo "ok: the append whose fdatasync failed: $err"
grep -qF "the journal stopped after an I/O error: system call failed: fdatasync $DATA/seg-0000000000000001.log: EIO (Input/output error); not retried (the kernel may have dropped the unwritten pages): nothing written since the last good sync is acknowledged (Failed)" <<<"$err" ||
	fail "the error does not name the segment file, EIO and that nothing more is acknowledged: $err"

# No retry: the shim's next fdatasync would succeed, and codex still
# acknowledges nothing (sync or create).
rc=0
err=$(echo r8 | timeout 30 "$THOTHCTL" codex append notes --sync 2>&1) || rc=$?
[ $rc = 1 ] || fail "an append after the failed fdatasync exited $rc: $err"
grep -qF "fdatasync $DATA/seg-0000000000000001.log: EIO" <<<"$err" || fail "an append after the failed fdatasync said: $err"
rc=0
err=$("$THOTHCTL" codex create other 2>&1) || rc=$?
[ $rc = 1 ] || fail "a create after the failed fdatasync exited $rc: $err"
st=$("$THOTHCTL" codex stats) || fail "stats after the failed fdatasync"
head -1 <<<"$st" | grep -qF "STOPPED: system call failed: fdatasync $DATA/seg-0000000000000001.log: EIO" ||
	fail "stats' first line: $(head -1 <<<"$st")"
[ "$(grep -c "the journal stopped: .*fdatasync $DATA/seg-0000000000000001.log: EIO" "$W/codex.log")" = 1 ] ||
	fail "codex's log does not say the cause once: $(grep stopped "$W/codex.log")"
# What a restart brings back, exactly: it said "it recovers what reached
# the disk", but what reached it unsynced may be lost or torn.
grep -qF "; nothing more is acknowledged until codex restarts; a restart keeps every sync-acknowledged record, and of the later ones (deferred or unacknowledged: never synced, so possibly lost or torn) those that read back intact up to the first that does not, where it ends the log (the rest set aside: seg-N.log.cut-OFFSET, *.orphan)" "$W/codex.log" ||
	fail "codex's log does not say what a restart keeps: $(grep stopped "$W/codex.log")"
echo "ok: nothing acknowledged after it; stats: $(head -1 <<<"$st")"

kill -TERM "$CODEX_PID"
for _ in $(seq 1500); do _tt_ours "$CODEX_PID" live || break; sleep 0.02; done
_tt_ours "$CODEX_PID" live && fail "codex did not end within 30 s of SIGTERM after a failed fdatasync"
tt_reap "$CODEX_PID"

# A restart (the disk healthy again) recovers every acknowledged record;
# r6 and r7 were written (the page cache has them here) but never
# acknowledged: they may or may not be there, and the next number follows
# whatever is.
rm -f "$FLAG"
mv "$W/codex.log" "$W/codex-before.log"
start_codex
got=$("$THOTHCTL" codex read notes --json) || fail "read after the restart"
n=$(jq length <<<"$got")
jq -e '.[:5] == [range(1; 6) | {seq: ., data: ("r" + tostring)}]' <<<"$got" >/dev/null ||
	fail "after the restart records 1..5 are not the acknowledged ones: $(jq -c . <<<"$got")"
next=$(echo after | "$THOTHCTL" codex append notes --sync) || fail "append after the restart"
[ "$next" = $((n + 1)) ] || fail "the next append got $next, not $((n + 1)) ($n records read back)"
echo "ok: restarted: 5 acknowledged records intact, $n in all, the next append is $next"
