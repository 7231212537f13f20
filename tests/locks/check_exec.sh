#!/usr/bin/env bash
# test_locks_exec THOTHLOCK EXEC_WORKLOAD: libthothlock's descriptors across
# exec (lock44).  An exec of a program without the preload carries neither
# the table's memfd (close-on-exec) nor thothlock's socket (marked
# close-on-exec for that exec: it stayed open in the new image until it
# ended); an exec of a profiled program still hands its table over through
# the socket, also after a failed exec without the preload.
set -uo pipefail
THOTHLOCK=$1
WORKLOAD=$2
LIB=$(dirname "$THOTHLOCK")/libthothlock.so
T=$(mktemp -d "${TMPDIR:-/tmp}/thoth-locks-exec-XXXXXX")
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

for mode in bare bare-env; do
  "$THOTHLOCK" --output "$T/report" -- "$WORKLOAD" "$mode" >"$T/ls" 2>"$T/err" ||
    fail "$mode: thothlock: $(cat "$T/err")"
  grep -q ' -> /proc/' "$T/ls" || fail "$mode: no listing: $(cat "$T/ls")"
  grep -E 'socket:|memfd:thothlock' "$T/ls" &&
    fail "$mode: the image exec'd without the preload holds libthothlock's descriptors"
  # a bare run (no thothlock): the memfd does not outlive the exec either
  THOTH_RUNTIME_DIR=$T LD_PRELOAD=$LIB "$WORKLOAD" "$mode" >"$T/ls" 2>"$T/err" ||
    fail "$mode (bare run): $(cat "$T/err")"
  grep -E 'memfd:thothlock' "$T/ls" && fail "$mode (bare run): the memfd outlived the exec"
  echo "ok $mode: the image exec'd without the preload holds neither the memfd nor the socket"
done

"$THOTHLOCK" --json --output "$T/json" -- "$WORKLOAD" again >"$T/out" 2>"$T/err" ||
  fail "again: thothlock exit $?: $(cat "$T/err")"
[ -s "$T/err" ] && fail "again: something was said on stderr: $(cat "$T/err")"
grep -q ' -> /proc/' "$T/out" || fail "again: posix_spawnp's ls listed nothing: $(cat "$T/out")"
grep -E 'socket:|memfd:thothlock' "$T/out" &&
  fail "again: the program posix_spawnp'd without the preload holds libthothlock's descriptors"
got=$(jq -r '[.locks[] | select(.name == "exec_child_lock")] | .[0].acquisitions' "$T/json")
[ "$got" = 100 ] || fail "again: the exec'd child's exec_child_lock: $got acquisitions, want 100"
echo "ok again: after a failed exec (errno kept) and a posix_spawnp (neither descriptor in ls) without the preload, the exec'd profiled program handed its table over"
echo PASS
