#!/bin/bash
# test_codex_long_dir_eio.sh THOTHD THOTHCTL CODEX SHIM
# codex's I/O errors with a data dir over 200 bytes long, and the
# directory's fsync failing (docs/CODEX.md "Errors", "The fsync policy"),
# through the LD_PRELOAD shim of test_codex_fsync_eio (eio_fdatasync.c):
# 1. a failed fdatasync: the error still names the segment file (an error's
#    path was cut at 156 bytes from its start: a data dir over ~125 bytes
#    cut the file name out, leaving "fdatasync /long/dir/dee...");
# 2. a failed fsync of the directory after a segment roll (a path that had
#    never run): the error names the directory (its head and its last
#    component), EIO, and that nothing more is acknowledged; the append
#    that needed it is not acknowledged, the next is refused too, codex
#    does not fsync the directory again (the shim's next one would
#    succeed: a retry), stats says STOPPED, the log says it once; after a
#    restart every acknowledged record reads back.
set -u
. "$(dirname "$0")/../common/thoth_test.sh"
THOTHD=$1 THOTHCTL=$2 CODEX=$3 SHIM=$4
tt_init
tt_mkdir RT codex-longdir
tt_mkdir W codex-longdir-work
export THOTH_RUNTIME_DIR=$RT
LONG=$W/$(printf 'a-deep-directory-%02d/' $(seq 1 12))
FLAG=$W/fail-now
mkdir -p "$LONG"
show_logs() { echo "--- codex.log"; tail -30 "$W/codex.log"; }
fail() { echo "FAIL: $*"; show_logs; exit 1; }
tt_start_thothd "$RT" --http-port off
codex_up() { "$THOTHCTL" codex stats >/dev/null 2>&1; }
# start_codex DATA VAR [ARGS]: a codex whose VAR (the shim's selector)
# names $FLAG.
start_codex() {
	local data=$1 var=$2
	shift 2
	tt_spawn env LD_PRELOAD="$SHIM" "$var=$FLAG" \
		ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0" \
		"$CODEX" --runtime-dir "$RT" --data-dir "$data" --workers 2 --no-pm "$@" 2>>"$W/codex.log"
	CODEX_PID=$TT_PID
	tt_until --show "$W/codex.log" 30 "codex to register" codex_up
	be=$("$THOTHCTL" codex stats --json | jq -r .backend)
	[ "$be" = epoll ] || fail "codex's loop runs on '$be' under the shim, not epoll: the shim cannot see its syncs"
}
stop_codex() {
	kill -TERM "$CODEX_PID"
	for _ in $(seq 1500); do _tt_ours "$CODEX_PID" live || break; sleep 0.02; done
	_tt_ours "$CODEX_PID" live && fail "codex did not end within 30 s of SIGTERM"
	tt_reap "$CODEX_PID"
	mv "$W/codex.log" "$W/codex-$CODEX_PID.log"
}

# 1. A failed fdatasync under a long data dir names the segment file.
DATA=${LONG}fdatasync-data
[ ${#DATA} -gt 200 ] || fail "the data dir is ${#DATA} bytes, not over 200"
start_codex "$DATA" THOTH_TEST_EIO_FDATASYNC
"$THOTHCTL" codex create notes || fail "create notes"
echo r1 | "$THOTHCTL" codex append notes --sync >/dev/null || fail "the first append"
touch "$FLAG"
rc=0
err=$(echo r2 | timeout 60 "$THOTHCTL" codex append notes --sync 2>&1) || rc=$?
[ $rc = 1 ] || fail "the append whose fdatasync failed exited $rc, not 1: $err"
grep -q "eio_fdatasync: fdatasync of $DATA/seg-0000000000000001.log fails with EIO" "$W/codex.log" ||
	fail "the shim failed no fdatasync of segment 1: $err"
# The head of the path, "...", its tail with the file's name, the errno.
pat="system call failed: fdatasync ${DATA:0:30}[^ ]*\.\.\.[^ ]*/fdatasync-data/seg-0000000000000001\.log: EIO"
grep -q "$pat" <<<"$err" || fail "the error does not name the segment file: $err"
"$THOTHCTL" codex stats | head -1 | grep -q "STOPPED: $pat" ||
	fail "stats does not name the segment file: $("$THOTHCTL" codex stats | head -1)"
grep -q "the journal stopped: $pat" "$W/codex.log" || fail "codex's log does not name the segment file"
echo "ok: a ${#DATA}-byte data dir: $err"
stop_codex
rm -f "$FLAG"

# 2. The directory's fsync fails after a roll (4 KiB segments, 1000-byte
#    records: a roll every 3 or 4).
DATA=${LONG}dirfsync-data
start_codex "$DATA" THOTH_TEST_EIO_DIRFSYNC --segment-bytes 4096
"$THOTHCTL" codex create notes || fail "create notes"
rec() { printf "r%-999s\n" "$1" | tr ' ' x; }
for i in 1 2; do rec $i; done | "$THOTHCTL" codex append notes --sync >"$W/acks" || fail "the first appends"
touch "$FLAG"
rc=0
for i in $(seq 3 12); do
	rec $i | timeout 60 "$THOTHCTL" codex append notes --sync >>"$W/acks" 2>"$W/append.err" || { rc=$?; break; }
done
err=$(cat "$W/append.err")
acked=$(wc -l <"$W/acks")
[ $rc = 1 ] || fail "no append failed with the directory's fsync failing (rc $rc, $acked acknowledged): $err"
[ "$(cat "$W/acks")" = "$(seq 1 "$acked")" ] || fail "the acknowledgements: $(tr '\n' ' ' <"$W/acks")"
grep -q "eio_fdatasync: fsync of the directory $DATA fails with EIO" "$W/codex.log" ||
	fail "the shim failed no fsync of the directory (append $((acked + 1)) exited $rc: $err)"
"$THOTHCTL" codex stats --json | jq -e '.segments >= 2' >/dev/null || fail "no roll: $("$THOTHCTL" codex stats --json)"
pat="system call failed: fsync the directory ${DATA:0:30}[^ ]*\.\.\.[^ ]*/dirfsync-data: EIO (Input/output error); not retried (the kernel may have dropped the unwritten pages): nothing written since the last good sync is acknowledged"
grep -q "$pat" <<<"$err" || fail "the error does not name the directory, EIO and that nothing more is acknowledged: $err"
echo "ok: append $((acked + 1)) (the roll) is refused: $err"
# Not retried: the shim's next fsync of the directory would succeed.
rc=0
err2=$(rec 99 | timeout 60 "$THOTHCTL" codex append notes --sync 2>&1) || rc=$?
[ $rc = 1 ] || fail "an append after the failed fsync exited $rc: $err2"
grep -q "$pat" <<<"$err2" || fail "an append after the failed fsync said: $err2"
rc=0
err2=$(timeout 60 "$THOTHCTL" codex create other 2>&1) || rc=$?
[ $rc = 1 ] || fail "a create after the failed fsync exited $rc: $err2"
"$THOTHCTL" codex stats | head -1 | grep -q "STOPPED: $pat" ||
	fail "stats' first line: $("$THOTHCTL" codex stats | head -1)"
n=$(grep -c "fsync of the directory .* again after its failure" "$W/codex.log")
[ "$n" = 0 ] || fail "codex fsynced the directory $n more times after it failed (a retry)"
[ "$(grep -c "the journal stopped: $pat" "$W/codex.log")" = 1 ] ||
	fail "codex's log does not say the cause once: $(grep stopped "$W/codex.log")"
echo "ok: nothing acknowledged after it, the directory not synced again"
stop_codex
rm -f "$FLAG"

# A restart (no failure now) recovers every acknowledged record.
start_codex "$DATA" THOTH_TEST_EIO_DIRFSYNC --segment-bytes 4096
got=$("$THOTHCTL" codex read notes --json) || fail "read after the restart"
jq -e --argjson n "$acked" '.[:$n] | map(.seq) == [range(1; $n + 1)] and all(.data | test("^r[0-9]+x+$"))' <<<"$got" >/dev/null ||
	fail "after the restart records 1..$acked are not the acknowledged ones: $(jq -c 'map(.seq)' <<<"$got")"
for i in $(seq 1 "$acked"); do
	[ "$(jq -r --argjson i "$i" '.[$i - 1].data' <<<"$got")" = "$(rec "$i" | tr -d '\n')" ] ||
		fail "acknowledged record $i does not read back as written"
done
echo "ok: restarted: the $acked acknowledged records intact, $(jq length <<<"$got") in all"
