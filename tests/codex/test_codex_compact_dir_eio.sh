#!/bin/bash
# test_codex_compact_dir_eio.sh THOTHD THOTHCTL CODEX SHIM
# Retention's catalog commit whose directory fsync fails (docs/CODEX.md
# "Retention and compaction"), through the LD_PRELOAD shim eio_fdatasync.c
# (THOTH_TEST_EIO_CATALOG: the fsync of the directory right after the
# rename to "catalog" fails with EIO, once; every later one is real and
# succeeds, as a kernel that dropped the error says).  A retried commit
# then removed the dropped segments on that "success", while the disk may
# hold the old catalog.  Checked: after the failure no segment file is
# removed (the shim logs any unlink of one), compactions stop counting,
# stats names the cause (compaction_stopped), the log says it once, and
# appends go on; after a restart every acknowledged record still retained
# reads back in order and compaction resumes.  A restart whose directory
# fsync fails removes none of the segments the catalog drops (recovery
# makes the catalog durable again first: on codex46's order they were gone
# before the fsync failed).  The directory fsync after retention removed
# segment files failing (THOTH_TEST_EIO_UNLINKDIR): retention stops the
# same way (it was ignored, and the journal's next fsync of the same
# descriptor could pass for what it lost).
set -u
. "$(dirname "$0")/../common/thoth_test.sh"
THOTHD=$1 THOTHCTL=$2 CODEX=$3 SHIM=$4
tt_init
tt_mkdir RT codex-catdir
tt_mkdir W codex-catdir-work
export THOTH_RUNTIME_DIR=$RT
DATA=$W/data
FLAG=$W/fail-now
LOG=$W/codex.log
SHIMVAR=THOTH_TEST_EIO_CATALOG
show_logs() { echo "--- $LOG"; tail -30 "$LOG"; }
fail() { echo "FAIL: $*"; show_logs; exit 1; }
tt_start_thothd "$RT" --http-port off
codex_up() { "$THOTHCTL" codex stats >/dev/null 2>&1; }
stats() { "$THOTHCTL" codex stats --json; }
start_codex() {
	tt_spawn env LD_PRELOAD="$SHIM" "$SHIMVAR=$FLAG" ${EXTRA:+"$EXTRA"} \
		ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0" \
		"$CODEX" --runtime-dir "$RT" --data-dir "$DATA" --workers 2 --no-pm \
		--segment-bytes 4096 --retain-bytes 8192 2>>"$LOG"
	CODEX_PID=$TT_PID
	tt_until --show "$LOG" 30 "codex to register" codex_up
	be=$(stats | jq -r .backend)
	[ "$be" = epoll ] || fail "codex's loop runs on '$be' under the shim, not epoll: the shim cannot see its syncs"
}
stop_codex() {
	kill -TERM "$CODEX_PID"
	for _ in $(seq 1500); do _tt_ours "$CODEX_PID" live || break; sleep 0.02; done
	_tt_ours "$CODEX_PID" live && fail "codex did not end within 30 s of SIGTERM"
	local rc=0
	tt_reap "$CODEX_PID" || rc=$?
	[ $rc = 0 ] || fail "codex exited $rc on SIGTERM, not 0 (a sanitizer report is in its log)"
}
# Record I: 1000 bytes (4 KiB segments: a roll every 3 or 4): "rI" and
# x's.  Made by the shell's builtins: a printf | tr pipeline for each of
# the ~130 records written and read back took 8 of this test's 28 s at
# load 11 (stop 47, docs/TESTING.md "Test stage (stop 47)").
rec() { local r; printf -v r "r%-999s" "$1"; printf '%s\n' "${r// /x}"; }
N=0
append() {      # append COUNT: one sync append each, record N+1 ...
	local i
	for i in $(seq "$1"); do
		N=$((N + 1))
		seq_=$(rec $N | timeout 60 "$THOTHCTL" codex append notes --sync 2>&1) ||
			fail "append $N: $seq_"
		[ "$seq_" = "$N" ] || fail "append $N was acknowledged as '$seq_'"
	done
}
segs() { (cd "$DATA" && ls seg-*.log 2>/dev/null | sort); }
# The retained records read back in order, each as written.
check_read() {
	local got first n
	got=$("$THOTHCTL" codex read notes --json) || fail "read notes"
	first=$(jq '.[0].seq' <<<"$got")
	n=$(jq length <<<"$got")
	[ $((first + n - 1)) = "$N" ] || fail "$1: read $n records from $first, the last acknowledged is $N"
	jq -e --argjson f "$first" 'to_entries | all(.value.seq == .key + $f)' <<<"$got" >/dev/null ||
		fail "$1: the records are not in order: $(jq -c 'map(.seq)' <<<"$got")"
	# Each record's data against rec's, all in one jq and one diff (a jq
	# and a rec per record took 14 of this test's 28 s): the first line
	# that differs names the record.
	local bad
	bad=$(diff <(jq -r '.[].data' <<<"$got") <(for i in $(seq "$first" "$N"); do rec "$i"; done) |
		sed -n '1s/^\([0-9]*\).*/\1/p')
	[ -z "$bad" ] || fail "$1: record $((first + bad - 1)) does not read back as written"
	echo "ok: $1: records $first..$N read back"
}

start_codex
"$THOTHCTL" codex create notes || fail "create notes"
# Retention works under the shim before the failure.
append 16
c0=$(stats | jq .compactions)
[ "$c0" -ge 1 ] || fail "no compaction before the failure: $(stats)"
touch "$FLAG"
for _ in $(seq 40); do
	grep -q "eio_fdatasync: fsync of the directory .* fails with EIO" "$W/codex.log" && break
	append 1
done
grep -q "eio_fdatasync: renamed .*/catalog.tmp to $DATA/catalog" "$W/codex.log" ||
	fail "no catalog rename armed the shim"
grep -q "eio_fdatasync: fsync of the directory $DATA fails with EIO" "$W/codex.log" ||
	fail "no compaction's directory fsync failed in 40 appends"
c1=$(stats | jq .compactions)
before=$(segs)
echo "ok: the catalog commit's directory fsync failed after record $N ($c1 compactions)"
# Appends go on, with rolls: each epoch after a roll would compact.
append 24
grep "eio_fdatasync: unlink of" "$W/codex.log" && fail "segment files were removed after the failed fsync"
for f in $before; do [ -e "$DATA/$f" ] || fail "$f was removed after the failed fsync"; done
[ "$(stats | jq .compactions)" = "$c1" ] || fail "compactions went on: $(stats | jq .compactions), was $c1"
[ "$(segs | wc -l)" -gt "$(wc -w <<<"$before")" ] || fail "no roll after the failure: $(segs | tr '\n' ' ')"
pat="fsync the directory $DATA after the catalog's rename: Input/output error"
[ "$(stats | jq -r .compaction_stopped)" = "$pat" ] ||
	fail "stats' compaction_stopped: '$(stats | jq -r .compaction_stopped)'"
[ "$(stats | jq -r .failure)" = "" ] || fail "the journal stopped: $(stats | jq -r .failure)"
"$THOTHCTL" codex stats | grep -qF "retention STOPPED until codex restarts (no segment removed; appends go on): $pat" ||
	fail "thothctl codex stats does not say retention stopped: $("$THOTHCTL" codex stats)"
# The whole line, as docs/CODEX.md quotes it.
line="error: retention stopped removing segments until codex restarts: fsync the directory $DATA after renaming catalog.tmp to catalog failed: Input/output error; the disk may have the new catalog or the old one, and a second fsync could report success for a rename the disk lost, so no segment is removed (the log grows past --retain-bytes; appends go on); check the disk, then restart codex: recovery makes the catalog durable again, as a new change, before it removes a segment, and retention resumes"
n=$(grep -cF -e "$line" "$LOG")
[ "$n" = 1 ] || fail "codex's log says retention stopped $n times, not once"
grep -q "retention's catalog commit failed" "$W/codex.log" && fail "codex logged a commit to retry"
echo "ok: 24 appends after it, no segment removed ($(segs | wc -l) on the disk), said once"
check_read "before the restart"
stop_codex
rm -f "$FLAG"

# A restart whose first directory fsync fails (THOTH_TEST_EIO_DIRFSYNC, the
# flag already there).  The catalog the kernel shows drops segments still
# on the disk (retention stopped before removing them); the disk may hold
# the old catalog, which names them.  Recovery makes the catalog durable
# again (catalog.tmp, rename, the directory's fsync) before it removes
# any: that fsync fails, codex refuses to start, every segment is there.
# codex46's recovery removed them first and then fsync'ed.
touch "$FLAG"
rc=0
timeout 60 env LD_PRELOAD="$SHIM" THOTH_TEST_EIO_DIRFSYNC="$FLAG" \
	ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0" \
	"$CODEX" --runtime-dir "$RT" --data-dir "$DATA" --workers 2 --no-pm \
	--segment-bytes 4096 --retain-bytes 8192 2>"$W/start1.log" || rc=$?
rm -f "$FLAG"
[ $rc = 1 ] || { cat "$W/start1.log"; fail "codex exited $rc with recovery's directory fsync failing, not 1"; }
grep -q "eio_fdatasync: fsync of the directory $DATA fails with EIO" "$W/start1.log" ||
	{ cat "$W/start1.log"; fail "the shim failed no directory fsync at recovery"; }
for f in $before; do
	[ -e "$DATA/$f" ] || { cat "$W/start1.log"; fail "$f was removed by a start whose directory fsync failed"; }
done
grep -q ": fsync data dir after rewriting the catalog, before removing the segments it drops: Input/output error$" \
	"$W/start1.log" || { cat "$W/start1.log"; fail "codex's refusal does not name the catalog's fsync and EIO"; }
grep -q "again after its failure" "$W/start1.log" && { cat "$W/start1.log"; fail "codex fsynced the directory again"; }
echo "ok: a start whose directory fsync failed removed no segment ($(wc -w <<<"$before") there)"

# A restart: recovery reads the catalog the disk has (the new one here:
# no power cut), compaction resumes.
start_codex
check_read "after the restart"
[ "$(stats | jq -r .compaction_stopped)" = "" ] || fail "compaction_stopped after the restart: $(stats)"
append 8
[ "$(stats | jq .compactions)" -ge 1 ] || fail "no compaction after the restart: $(stats)"
[ ! -e "$DATA/$(head -1 <<<"$before")" ] || fail "the oldest segment $(head -1 <<<"$before") is still there"
[ "$(stats | jq .segment_bytes)" -lt $((8192 + 3 * 4096)) ] || fail "the log is past retention: $(stats)"
check_read "after compaction resumed"
stop_codex

# Recovery's own directory fsync failing (THOTH_TEST_EIO_DIRFSYNC: the
# first one, the flag already there): codex refuses to start, naming the
# directory and EIO, and does not fsync it again.
touch "$FLAG"
rc=0
timeout 60 env LD_PRELOAD="$SHIM" THOTH_TEST_EIO_DIRFSYNC="$FLAG" \
	ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0" \
	"$CODEX" --runtime-dir "$RT" --data-dir "$DATA" --workers 2 --no-pm \
	--segment-bytes 4096 --retain-bytes 8192 2>"$W/start.log" || rc=$?
rm -f "$FLAG"
[ $rc = 1 ] || { cat "$W/start.log"; fail "codex exited $rc with recovery's directory fsync failing, not 1"; }
grep -q "eio_fdatasync: fsync of the directory $DATA fails with EIO" "$W/start.log" ||
	{ cat "$W/start.log"; fail "the shim failed no directory fsync at recovery"; }
grep -qF "codex: cannot open the journal in $DATA: " "$W/start.log" && grep -q ": fsync data dir: Input/output error$" "$W/start.log" ||
	{ cat "$W/start.log"; fail "codex's refusal does not name the directory and EIO"; }
grep -q "again after its failure" "$W/start.log" && { cat "$W/start.log"; fail "codex fsynced the directory again"; }
echo "ok: recovery's failed directory fsync: $(grep "cannot open" "$W/start.log")"

# Retention's directory fsync after it removed segment files failing
# (THOTH_TEST_EIO_UNLINKDIR: the first unlink of a segment file after the
# flag arms the shim, the next directory fsync fails once; later ones are
# real).  codex46 ignored it (best effort) and went on removing; now
# retention stops until a restart, said once and in stats, appends go on
# (one sync append at a time: no segment's name is pending then).
LOG=$W/codex2.log
SHIMVAR=THOTH_TEST_EIO_UNLINKDIR
start_codex
touch "$FLAG"
for _ in $(seq 40); do
	grep -q "eio_fdatasync: fsync of the directory .* fails with EIO" "$LOG" && break
	append 1
done
grep -q "eio_fdatasync: unlinked $DATA/seg-.*: the next directory fsync fails" "$LOG" ||
	fail "no segment's removal armed the shim in 40 appends"
grep -q "eio_fdatasync: fsync of the directory $DATA fails with EIO" "$LOG" ||
	fail "no directory fsync after a removal failed in 40 appends"
c1=$(stats | jq .compactions)
before=$(segs)
echo "ok: the directory fsync after removing segments failed after record $N ($c1 compactions)"
append 24
pat="fsync the directory $DATA after removing segment files: Input/output error"
[ "$(stats | jq -r .compaction_stopped)" = "$pat" ] ||
	fail "stats' compaction_stopped: '$(stats | jq -r .compaction_stopped)', not '$pat'"
grep "eio_fdatasync: unlink of" "$LOG" && fail "segment files were removed after the failed fsync"
for f in $before; do [ -e "$DATA/$f" ] || fail "$f was removed after the failed fsync"; done
[ "$(stats | jq .compactions)" = "$c1" ] || fail "compactions went on: $(stats | jq .compactions), was $c1"
[ "$(stats | jq -r .failure)" = "" ] || fail "the journal stopped: $(stats | jq -r .failure)"
line="error: retention stopped removing segments until codex restarts: fsync the directory $DATA after removing segment files failed: Input/output error; not retried (a second fsync could report success for a change the disk lost), so no segment is removed (the log grows past --retain-bytes; appends go on); check the disk, then restart codex"
n=$(grep -cF -e "$line" "$LOG")
[ "$n" = 1 ] || fail "codex's log says retention stopped $n times, not once"
echo "ok: 24 appends after it, no segment removed, said once"
check_read "after the failed fsync of the removals"
stop_codex
rm -f "$FLAG"
start_codex
[ "$(stats | jq -r .compaction_stopped)" = "" ] || fail "compaction_stopped after the restart: $(stats)"
append 8
[ "$(stats | jq .compactions)" -ge 1 ] || fail "no compaction after the restart: $(stats)"
check_read "after the restart"
stop_codex

# Retention stopped, then the journal too (a failed fdatasync,
# THOTH_TEST_EIO_FDATASYNC): stats' retention line said "appends go on"
# while every append failed; it says the journal stopped too.
FLAG2=$W/fail-fdatasync
EXTRA="THOTH_TEST_EIO_FDATASYNC=$FLAG2"
start_codex
touch "$FLAG"
for _ in $(seq 40); do
	[ -n "$(stats | jq -r .compaction_stopped)" ] && break
	append 1
done
[ -n "$(stats | jq -r .compaction_stopped)" ] || fail "retention did not stop again in 40 appends"
touch "$FLAG2"
out=$(rec $((N + 1)) | timeout 60 "$THOTHCTL" codex append notes --sync 2>&1) &&
	fail "an append after a failed fdatasync was acknowledged: $out"
[ -n "$(stats | jq -r .failure)" ] || fail "the journal did not stop: $(stats)"
st=$("$THOTHCTL" codex stats)
grep -qF "retention STOPPED until codex restarts (no segment removed; the journal stopped too): fsync the directory $DATA after removing segment files: Input/output error" <<<"$st" ||
	fail "thothctl codex stats does not say the journal stopped too: $st"
grep -q "appends go on" <<<"$st" && fail "thothctl codex stats says appends go on with the journal stopped: $st"
echo "ok: retention and the journal stopped: stats says so"
stop_codex
rm -f "$FLAG" "$FLAG2"
