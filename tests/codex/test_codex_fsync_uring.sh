#!/bin/bash
# test_codex_fsync_uring.sh THOTHD THOTHCTL CODEX
# A failed fdatasync on codex's normal path: its committer on io_uring
# (test_codex_fsync_eio fails libc's fdatasync through a shim, which
# io_uring's never reach), the error a real kernel's.  The data dir is an
# ext4 on a loop device whose backing file lies, sparse, on a small tmpfs
# that a filler then fills: the device's write of blocks the backing file
# never had fails in the block layer (ENOSPC from the loop device, "I/O
# error" in dmesg) and fdatasync returns it.  Sync appends of 200 kB
# records: the first may land in pages mkfs made (written, acknowledged),
# 8 of them cannot all.  Checked: an append fails, the error names the
# segment file, that it is not retried and nothing more is acknowledged;
# after the room comes back (the filler removed: a retry
# would now succeed) an append is still refused; stats says STOPPED.
# Needs root (mount, a loop device) and io_uring: skipped (77) naming
# which is missing.
set -u
. "$(dirname "$0")/../common/thoth_test.sh"
tt_own_mount_ns "$@"
THOTHD=$1 THOTHCTL=$2 CODEX=$3
tt_init
tt_mkdir RT codex-uring
tt_mkdir BACK codex-uring-back
tt_mkdir DISK codex-uring-disk
unset 'TT_DIRS[-1]' 'TT_DIRS[-1]'     # removed by uring_cleanup after the umounts
MOUNTED=()
uring_cleanup() {
	local rc=$? m
	tt_cleanup
	# the ext4 first (-o loop: its loop device is detached with it)
	for m in "$DISK" "$BACK"; do
		[[ " ${MOUNTED[*]} " == *" $m "* ]] || continue
		umount "$m" 2>/dev/null || umount -l "$m" || echo "WARNING: cannot unmount $m"
	done
	rm -rf "$DISK" "$BACK"
	return $rc
}
trap uring_cleanup EXIT
export THOTH_RUNTIME_DIR=$RT
fail() { echo "FAIL: $*"; echo "--- codex.log"; tail -30 "$RT/codex.log"; exit 1; }

command -v mkfs.ext4 >/dev/null || tt_skip "no mkfs.ext4 (e2fsprogs) to make the loop device's file system"
if ! err=$(mount -t tmpfs -o size=6m,mode=0700 thoth-codex-uring "$BACK" 2>&1); then
	tt_skip "mounting a tmpfs was refused (needs CAP_SYS_ADMIN, i.e. root, and mount(8)): $err"
fi
MOUNTED+=("$BACK")
truncate -s 64m "$BACK/disk.img" || fail "truncate"
mkfs.ext4 -q -E lazy_itable_init=1,lazy_journal_init=1 -O ^has_journal "$BACK/disk.img" ||
	fail "mkfs.ext4 on $BACK/disk.img"
if ! err=$(mount -o loop "$BACK/disk.img" "$DISK" 2>&1); then
	tt_skip "mounting an ext4 on a loop device was refused (needs /dev/loop-control and loop devices): $err"
fi
MOUNTED+=("$DISK")
DATA=$DISK/cx
tt_start_thothd "$RT" --http-port off
tt_spawn "$CODEX" --data-dir "$DATA" --workers 2 --no-pm 2>>"$RT/codex.log"
tt_until --show "$RT/codex.log" 30 "codex to register" bash -c "'$THOTHCTL' codex stats >/dev/null 2>&1"
be=$("$THOTHCTL" codex stats --json | jq -r .backend)
[ "$be" = uring ] || tt_skip "codex's committer runs on '$be': io_uring refused here (test_codex_fsync_eio covers epoll)"
"$THOTHCTL" codex create notes || fail "create notes"
acks=$(printf 'r%d\n' 1 2 3 | "$THOTHCTL" codex append notes --sync) || fail "the first 3 sync appends"
[ "$acks" = "$(seq 1 3)" ] || fail "the first acknowledgements: $acks"

dd if=/dev/zero of="$BACK/filler" bs=64k 2>/dev/null && fail "dd filled no tmpfs"
seg=$DATA/seg-0000000000000001.log
rc=0
err=$(for i in $(seq 4 11); do printf 'r%d-%0200000d\n' "$i" 0; done |
	timeout 60 "$THOTHCTL" codex append notes --sync 2>&1 >"$RT/acks") || rc=$?
[ $rc = 1 ] || fail "8 sync appends of 200 kB onto a device that cannot write them exited $rc: $err (acknowledged: $(tr '\n' ' ' <"$RT/acks"))"
grep -qE "the journal stopped after an I/O error: system call failed: fdatasync $seg: E[A-Z]+ \(.*\); not retried \(the kernel may have dropped the unwritten pages\): nothing written since the last good sync is acknowledged \(Failed\)" <<<"$err" ||
	fail "the error does not name fdatasync of the segment file, its errno and that nothing more is acknowledged: $err"
echo "ok: on io_uring, after $(wc -l <"$RT/acks") of 8 acknowledged: $err"

# The room comes back: a journal that retried its fdatasync now would get
# 0 and acknowledge; codex must not.
rm "$BACK/filler"
rc=0
err=$(echo r5 | timeout 60 "$THOTHCTL" codex append notes --sync 2>&1 >"$RT/acks") || rc=$?
[ ! -s "$RT/acks" ] || fail "acknowledged after a failed fdatasync: $(cat "$RT/acks")"
[ $rc = 1 ] && grep -qF "fdatasync $seg: E" <<<"$err" || fail "an append after the failed fdatasync (exit $rc): $err"
"$THOTHCTL" codex stats | head -1 | grep -qF "STOPPED: system call failed: fdatasync $seg: E" ||
	fail "stats' first line: $("$THOTHCTL" codex stats | head -1)"
echo "ok: nothing acknowledged after it, with room again"
