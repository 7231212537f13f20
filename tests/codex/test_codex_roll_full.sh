#!/bin/bash
# test_codex_roll_full.sh THOTHD THOTHCTL CODEX
# A full disk exactly when codex starts a new segment (a roll), not in the
# middle of an append (test_codex_full_disk): a real tmpfs, 16 KiB
# segments of 15 records of 1000 bytes.  Twice:
#  1. no block left (a filler file takes the rest): the new segment's
#     file is created but its header cannot be written;
#  2. no inode left (the tmpfs remounted with nr_inodes at what it uses):
#     the new segment's file cannot be created at all.
# Each time the append that needed the roll fails naming the new
# segment's path and ENOSPC, nothing is acknowledged that is not on the
# disk, no half-made segment is left, stats says STOPPED; after the room
# comes back (the filler removed, the inodes raised) and codex restarts,
# every acknowledged record reads back and the stream numbers on, its next
# record in the new segment.
# Needs root (CAP_SYS_ADMIN) for the mount: skipped (77) only when the
# mount is refused.
set -u
. "$(dirname "$0")/../common/thoth_test.sh"
tt_own_mount_ns "$@"
THOTHD=$1 THOTHCTL=$2 CODEX=$3
tt_init
tt_mkdir RT codex-roll
export THOTH_RUNTIME_DIR=$RT
fail() { echo "FAIL: $*"; echo "--- codex.log"; tail -30 "$RT/codex.log"; ls -la "$DATA" 2>&1; exit 1; }

tt_tmpfs DISK codex-roll-disk size=256k,mode=0700
DATA=$DISK/cx
tt_start_thothd "$RT" --http-port off
codex_up() { "$THOTHCTL" codex stats >/dev/null 2>&1; }
start_codex() {
	tt_spawn "$CODEX" --data-dir "$DATA" --workers 2 --no-pm --segment-bytes 16384 2>>"$RT/codex.log"
	CODEX_PID=$TT_PID
	tt_until --show "$RT/codex.log" 30 "codex to register" codex_up
}
stop_codex() {
	kill -TERM "$CODEX_PID"
	for _ in $(seq 1500); do _tt_ours "$CODEX_PID" live || break; sleep 0.02; done
	_tt_ours "$CODEX_PID" live && fail "codex did not end within 30 s of SIGTERM"
	tt_reap "$CODEX_PID"
}
rec() { printf 'rec-%04d-%0991d\n' "$1" 0; }
seg() { printf '%s/seg-%016x.log' "$DATA" "$1"; }
# append FROM TO: sync, every one acknowledged in order
append() {
	local acks
	acks=$(for i in $(seq "$1" "$2"); do rec "$i"; done | "$THOTHCTL" codex append notes --sync) ||
		fail "appending $1..$2"
	[ "$acks" = "$(seq "$1" "$2")" ] || fail "appending $1..$2 was acknowledged as $(tr '\n' ' ' <<<"$acks")"
}
# roll_fails N SEG WHAT: appending record N needs segment SEG, which the
# full disk refuses: the error says WHAT of its path and ENOSPC
roll_fails() {
	local n=$1 no=$2 what=$3 rc=0 err st
	[ -e "$(seg $((no - 1)))" ] && [ ! -e "$(seg "$no")" ] || fail "segment $((no - 1)) is not the last before record $n"
	err=$(rec "$n" | timeout 60 "$THOTHCTL" codex append notes --sync 2>&1 >"$RT/acks") || rc=$?
	[ $rc = 1 ] || fail "the append that rolls onto a full disk exited $rc: $err"
	[ ! -s "$RT/acks" ] || fail "record $n acknowledged on a full disk: $(cat "$RT/acks")"
	grep -qF "the journal stopped after an I/O error: system call failed: $what $(seg "$no"): ENOSPC (No space left on device) (Failed)" <<<"$err" ||
		fail "the failed roll does not name '$what' of the new segment's path and ENOSPC: $err"
	echo "ok: record $n: $err"
	[ ! -e "$(seg "$no")" ] || fail "a half-made segment $(seg "$no") is left ($(stat -c %s "$(seg "$no")") bytes)"
	st=$("$THOTHCTL" codex stats | head -1)
	grep -qF "STOPPED: system call failed: $what $(seg "$no"): ENOSPC" <<<"$st" || fail "stats' first line: $st"
	err=$(rec "$n" | "$THOTHCTL" codex append notes --sync 2>&1) && fail "an append after the failed roll: $err"
	grep -qF "$(seg "$no"): ENOSPC" <<<"$err" || fail "an append after the failed roll said: $err"
}
# after_restart N: records 1..N read back exactly, the next is N+1 in a new segment
after_restart() {
	local n=$1 got next
	got=$("$THOTHCTL" codex read notes --json) || fail "read after the restart"
	jq -e --argjson n "$n" '. == [range(1; $n + 1) | {seq: ., data: ("rec-" + ("000" + tostring)[-4:] + "-" + ("0" * 991))}]' \
		<<<"$got" >/dev/null || fail "after the restart the records are not exactly 1..$n: $(jq -c '[length, .[-1].seq]' <<<"$got")"
	next=$(rec $((n + 1)) | "$THOTHCTL" codex append notes --sync) || fail "append after the restart"
	[ "$next" = $((n + 1)) ] || fail "the next append got $next, not $((n + 1))"
	"$THOTHCTL" codex stats | head -1 | grep -q STOPPED && fail "stats says STOPPED after the restart"
	echo "ok: restarted: records 1..$n intact, the next append is $next"
}

start_codex
"$THOTHCTL" codex create notes || fail "create notes"
# Segment 1: a 64-byte header, the stream's create record (56 bytes) and
# 15 records of 1040 bytes (15,720 of 16,384): the 16th starts segment 2.
append 1 15
[ "$(ls "$DATA"/seg-*.log)" = "$(seg 1)" ] || fail "15 records do not fit in segment 1: $(ls "$DATA")"

# 1. No block left: the roll creates segment 2 but cannot write its header.
dd if=/dev/zero of="$DISK/filler" bs=4096 2>/dev/null && fail "dd filled no disk"
roll_fails 16 2 "write header of"
stop_codex
rm "$DISK/filler"                               # the room comes back
start_codex
after_restart 15
[ -e "$(seg 2)" ] || fail "record 16 is not in segment 2"

# 2. No inode left: segment 2 full (records 16..30), segment 3 cannot be created.
append 17 30
[ ! -e "$(seg 3)" ] || fail "segment 3 exists before record 31"
used=$(df --output=iused "$DISK" | tail -1 | tr -d " ")
mount -o remount,nr_inodes="$used" "$DISK" || fail "remount with nr_inodes=$used"
touch "$DISK/one-more" 2>/dev/null && fail "the tmpfs still has an inode (nr_inodes=$used)"
roll_fails 31 3 "create"
stop_codex
mount -o remount,nr_inodes=1024 "$DISK" || fail "remount with nr_inodes=1024"
start_codex
after_restart 30
[ -e "$(seg 3)" ] || fail "record 31 is not in segment 3"
