#!/bin/bash
# test_probe_maps_ctl_hostile: thothctl probe maps against a probed process
# that lies about its maps descriptor (probe_target HOSTILE): after the
# probe attached, the descriptor number it told thothd names a pipe, or a
# file on disk it holds a read lease on.  thothctl must refuse both by
# name, at once, without opening either: the pipe's kind is read through
# an O_PATH descriptor, and the file on disk (no memfd) is never opened,
# so its lease is never broken (opening it for writing would block
# thothctl for lease-break-time, 45 s, or break the peer's lease).
set -u
THOTHD=$1 THOTHCTL=$2 TARGET=$3 CORPUS=$4
. "$(dirname "$0")/../common/thoth_test.sh"
tt_init
fail() { echo "FAIL: $*"; [ -f "$RT/thothd.log" ] && tail -20 "$RT/thothd.log"; exit 1; }
tt_mkdir RT pmaps
ctl() { "$THOTHCTL" --runtime-dir "$RT" "$@"; }
tt_start_thothd "$RT"

# One hostile target: attach a probe, wait for its swap, ask for its maps.
# Prints thothctl's output; fails when thothctl succeeds or takes > 10 s.
hostile_maps() {
  local kind=$1 tag=$2
  tt_spawn "$TARGET" "$RT" "$kind" >"$RT/$tag.out" 2>"$RT/$tag.err"
  TPID=$TT_PID
  tt_until --show "$RT/$tag.err" 10 "$tag target ready" grep -q ready "$RT/$tag.out"
  local out id
  for _ in $(seq 1 250); do
    out=$(ctl probe attach "$CORPUS/a01_count.o" --pid "$TPID" 2>&1) && break
    case $out in *"no traced process"*) sleep 0.02 ;; *) fail "$tag attach: $out" ;; esac
  done
  id=$(echo "$out" | sed -n 's/^probe \([0-9]*\):.*/\1/p')
  [ -n "$id" ] || fail "$tag attach: $out"
  tt_until --show "$RT/$tag.err" 10 "$tag target swapped its maps" grep -q swapped "$RT/$tag.out"
  local t0=$SECONDS
  MAPS_OUT=$(timeout 30 "$THOTHCTL" --runtime-dir "$RT" probe maps "$id" 2>&1) &&
    fail "$tag: maps of a lying process printed: $MAPS_OUT"
  [ $((SECONDS - t0)) -le 10 ] || fail "$tag: thothctl probe maps took $((SECONDS - t0)) s: $MAPS_OUT"
  echo "$tag: $MAPS_OUT"
}

hostile_maps fifo fifo
case $MAPS_OUT in *"not a memfd (a pipe or FIFO)"*) ;; *) fail "fifo: $MAPS_OUT" ;; esac
kill "$TPID"; tt_reap "$TPID"

echo "no memfd" >"$RT/leased"   # $RT is under TMPDIR: not shmem on a usual host
if [ "$(stat -f -c %T "$RT/leased")" = tmpfs ]; then
  echo "SKIP part: $RT is on tmpfs (the file-on-disk case needs another file system)"
else
  hostile_maps "$RT/leased" leased
  case $MAPS_OUT in *"a regular file not on shmem, not a memfd: not opened"*) ;;
    *) fail "leased: $MAPS_OUT" ;; esac
  kill "$TPID"; tt_reap "$TPID"
  grep -q "fired" "$RT/leased.out" || fail "leased target did not end cleanly: $(cat "$RT/leased.err")"
  grep -q "lease broken" "$RT/leased.out" && fail "thothctl opened the peer's file on disk (its lease broke)"
fi
echo ok
