#!/usr/bin/env bash
# tests/cli/test_clean_stage.sh SOURCE_DIR PYTHON3
#
# make test's leftovers guard (tests/common/clean_stage.py, docs/TESTING.md
# "Leftovers guard"): a stage that leaves a file in its TMPDIR or a process
# running fails, naming each, and they are gone afterwards; a tidy stage
# passes and leaves no stage folder; a failing stage's status is kept.  And
# no test or fuzz harness hard-codes a /tmp template (the guard sees only
# what is made under TMPDIR).
set -euo pipefail
SRC=$1 PY=$2
GUARD=$SRC/tests/common/clean_stage.py
fail() { echo "FAIL: $*"; exit 1; }
W=$(mktemp -d "${TMPDIR:-/tmp}/thoth-clean-stage-XXXXXX")
trap 'rm -rf "$W"' EXIT
export THOTH_STAGE_TMP=$W           # the stages below make their TMPDIR here
export W
# /dev/shm is looked at only where asked (below): other programs make
# and remove theirs there while this runs
export THOTH_STAGE_SHM=0
# ... and the user's runtime dirs likewise: the other tests beside this one
# may use /tmp/thoth-UID
export THOTH_STAGE_RUNDIRS=0
run() { rc=0; out=$("$PY" "$GUARD" -- bash -c "$1" 2>&1) || rc=$?; }

run 'd=$(mktemp -d); touch "$d/x"; rm -r "$d"'
[ $rc = 0 ] || fail "a tidy stage failed ($rc): $out"
[ -z "$(ls -A "$W")" ] || fail "a tidy stage left its folder: $(ls -A "$W")"

run 'exit 3'
[ $rc = 3 ] || fail "a failing stage's status 3 came back as $rc"

run 'd=$(mktemp -d -t leaky-XXXXXX); touch "$d/a" "$d/b"; : >"$TMPDIR/loose.txt"'
[ $rc = 1 ] || fail "a stage that left files passed ($rc): $out"
grep -q 'left in TMPDIR: leaky-[A-Za-z0-9]*/ (2 entries)' <<<"$out" || fail "the left folder not named: $out"
grep -q 'left in TMPDIR: loose.txt' <<<"$out" || fail "the left file not named: $out"
[ -z "$(ls -A "$W")" ] || fail "the leftovers were not removed: $(ls -A "$W")"

# A daemon (its own session, parent gone: handed to the guard, the
# subreaper) and one that also cleared its environment and left TMPDIR.
run 'setsid sleep 300 </dev/null >/dev/null 2>&1 & cd / && env -i setsid sleep 301 </dev/null >/dev/null 2>&1 & exit 0'
[ $rc = 1 ] || fail "a stage that left processes running passed ($rc): $out"
for s in 300 301; do
  pid=$(sed -n "s/^  pid \([0-9]*\): sleep $s\$/\1/p" <<<"$out")
  [ -n "$pid" ] || fail "the left 'sleep $s' not named: $out"
  ! kill -0 "$pid" 2>/dev/null || fail "the left 'sleep $s' (pid $pid) still runs"
done
echo "ok: the guard names and removes a stage's leftovers"

# A process the stage did not start (not below the guard, no mark) with its
# cwd in the stage's folder, as a shell cd'ed there: named, not killed.
rm -f "$W/path" "$W/go"
"$PY" "$GUARD" -- bash -c 'echo "$TMPDIR" >"$W/path"; while [ ! -e "$W/go" ]; do sleep 0.1; done' \
  >"$W/out" 2>&1 & guard=$!
for _ in $(seq 100); do [ -s "$W/path" ] && break; sleep 0.1; done
[ -s "$W/path" ] || fail "the stage did not start"
(cd "$(cat "$W/path")" && exec env -u THOTH_TEST_STAGE sleep 302) & outsider=$!
trap 'kill $outsider 2>/dev/null || true; rm -rf "$W"' EXIT
for _ in $(seq 100); do [ "$(readlink /proc/$outsider/cwd)" = "$(cat "$W/path")" ] && break; sleep 0.1; done
touch "$W/go"
rc=0; wait $guard || rc=$?
out=$(cat "$W/out")
[ $rc = 1 ] || fail "a process with its cwd in the stage's folder passed ($rc): $out"
grep -q "pid $outsider: sleep 302 (its cwd is in this stage's TMPDIR, but the stage did not start it: not killed)" \
  <<<"$out" || fail "the outsider not named as not killed: $out"
kill -0 $outsider 2>/dev/null || fail "the guard killed a process the stage did not start (pid $outsider)"
kill $outsider
echo "ok: a process of someone else's in the stage's folder is named, not killed"

# The short socket folders a test makes in /tmp when TMPDIR is too long
# (tests/common/tmpdir.h: /tmp/MARK-NAME-XXXXXX, MARK the stage folder's
# name) are the stage's too: named and removed.
run 'd=$(mktemp -d "/tmp/$(basename "$TMPDIR")-short-XXXXXX"); touch "$d/s"; echo "$d" >"$W/short"'
[ $rc = 1 ] || fail "a stage that left a short socket folder in /tmp passed ($rc): $out"
grep -q "left in /tmp: $(basename "$(cat "$W/short")")/ (1 entry)" <<<"$out" || fail "the short folder not named: $out"
[ ! -e "$(cat "$W/short")" ] || fail "the short folder $(cat "$W/short") was not removed"
rm -f "$W/short"

# /dev/shm: an entry the stage made and left fails it, named and removed;
# one it removed again is not named.  (THOTH_STAGE_SHM=1: a guard inside a
# stage leaves /dev/shm to the outer one.)  In a /dev/shm of its own, a
# tmpfs in a mount namespace of this section's: the guard removes every
# new entry no process holds open, and in the host's /dev/shm that was
# also the other tests' beside this one: test_codex_store's store folder
# and segment copy between two opens (its open failed at
# test_codex_store.c:163, 4 runs in 40 beside 3 loops of this section,
# load 13-15; flake45).
shm_section() {
  set -euo pipefail
  mount -t tmpfs -o mode=1777,size=1m thoth-clean-stage /dev/shm
  export THOTH_STAGE_SHM=1
  run 'echo x >/dev/shm/thoth-guard-test-$$; echo /dev/shm/thoth-guard-test-$$ >"$W/shm"'
  [ $rc = 1 ] || fail "a stage that left a /dev/shm file passed ($rc): $out"
  grep -q "left in /dev/shm: $(basename "$(cat "$W/shm")")" <<<"$out" || fail "the /dev/shm file not named: $out"
  [ ! -e "$(cat "$W/shm")" ] || fail "$(cat "$W/shm") was not removed"
  run 'echo x >/dev/shm/thoth-guard-test-$$; rm /dev/shm/thoth-guard-test-$$'
  ! grep -q "thoth-guard-test" <<<"$out" || fail "a /dev/shm file the stage removed was named: $out"
  rm -f "$W/shm"
}
export -f shm_section run fail
export GUARD PY
if unshare --mount --propagation private true 2>/dev/null; then
  unshare --mount --propagation private bash -c shm_section
elif unshare --user --map-root-user --mount true 2>/dev/null; then
  unshare --user --map-root-user --mount bash -c shm_section
else
  echo "skip: the /dev/shm section (no mount namespace: unshare --mount refused): in the host's /dev/shm its guard would remove other tests' entries"
fi
echo "ok: short socket folders and /dev/shm files a stage leaves are named and removed"

# The user's runtime dirs (libthoth's rule: $THOTH_RUNTIME_DIR, else
# $XDG_RUNTIME_DIR/thoth, else /tmp/thoth-UID; THOTH_STAGE_RUNDIR_TMP moves
# /tmp here): what a stage leaves in any of the three fails it, each file
# named with the test that wrote it (COMMAND's child: ctest's test); what
# was there before is not the stage's; a file made and removed again is
# not named; nothing of the user's is removed.
R=$W/user
mkdir -p "$R/env" "$R/xdg/thoth" "$R/base/thoth-$(id -u)/locks"
: >"$R/env/before"; : >"$R/base/thoth-$(id -u)/locks/1.table"
export THOTH_STAGE_RUNDIRS=1 THOTH_STAGE_RUNDIR_TMP=$R/base
rc=0
out=$(THOTH_RUNTIME_DIR=$R/env XDG_RUNTIME_DIR=$R/xdg "$PY" "$GUARD" -- bash -c '
  bash -c "mkdir -p \"\$THOTH_RUNTIME_DIR/locks\"; sleep 30 & touch \"\$THOTH_RUNTIME_DIR/locks/\$!.table\"
           sleep 1.5; kill \$!" litterer-one
  bash -c "touch \"\$XDG_RUNTIME_DIR/thoth/x\"; sleep 1.5; :" litterer-two
  bash -c "unset THOTH_RUNTIME_DIR XDG_RUNTIME_DIR; touch \"\$THOTH_STAGE_RUNDIR_TMP/thoth-\$(id -u)/y\"; sleep 1.5; :" litterer-three
  bash -c "touch \"\$THOTH_RUNTIME_DIR/tidy\"; sleep 1; rm \"\$THOTH_RUNTIME_DIR/tidy\"" tidy-one
  touch "$THOTH_RUNTIME_DIR/late"' 2>&1) || rc=$?
[ $rc = 1 ] || fail "a stage that left files in the runtime dirs passed ($rc): $out"
grep -q "FAILED: 4 entries left in the user's runtime dirs ($R/env, $R/xdg/thoth, $R/base/thoth-$(id -u))" \
  <<<"$out" || fail "not 4 entries in the three runtime dirs: $out"
grep -q "left in $R/env/locks: [0-9]*\.table, written by pid [0-9]* of test: bash -c .* litterer-one$" <<<"$out" ||
  fail "the marker not named with the test that wrote it: $out"
grep -q "left in $R/xdg/thoth: x, written while this test ran: bash -c .* litterer-two$" <<<"$out" ||
  fail "the XDG_RUNTIME_DIR/thoth file not named with its test: $out"
grep -q "left in $R/base/thoth-$(id -u): y, written while this test ran: bash -c .* litterer-three$" <<<"$out" ||
  fail "the /tmp/thoth-UID file not named with its test: $out"
grep -q "left in $R/env: late, written (seen only after the stage ended)" <<<"$out" ||
  fail "a file made at the stage's end not named: $out"
! grep -q ": \(tidy\|before\|1\.table\)," <<<"$out" || fail "a file removed again or there before was named: $out"
[ -e "$R/env/locks" ] && [ -e "$R/xdg/thoth/x" ] && [ -e "$R/base/thoth-$(id -u)/y" ] ||
  fail "the guard removed the user's files"
rm -rf "$R"
mkdir -p "$R/env"
rc=0
out=$(THOTH_RUNTIME_DIR=$R/env "$PY" "$GUARD" -- bash -c 'd=$(mktemp -d "$THOTH_RUNTIME_DIR/x-XXXX"); rm -r "$d"' 2>&1) || rc=$?
[ $rc = 0 ] || fail "a stage tidy in the runtime dir failed ($rc): $out"
# a marker whose pid runs outside the stage (another user of the dir: a
# helper beside it, the user's own profiled program): named, not counted
sleep 30 & outside=$!
rc=0
out=$(THOTH_RUNTIME_DIR=$R/env "$PY" "$GUARD" -- bash -c "sleep 0.8; touch \"\$THOTH_RUNTIME_DIR/$outside.table\"; sleep 1.2; :" 2>&1) || rc=$?
kill $outside; wait $outside 2>/dev/null || true
[ $rc = 0 ] && grep -q "note: $R/env/$outside.table appeared during the stage, written by pid $outside (sleep 30), which this stage did not start: not counted" <<<"$out" ||
  fail "a marker of a process outside the stage counted ($rc): $out"
rm -f "$R/env/$outside.table"
# one that makes the runtime dir itself (a thothd's default, absent before)
rc=0
out=$("$PY" "$GUARD" -- bash -c 'mkdir -p "$THOTH_STAGE_RUNDIR_TMP/thoth-$(id -u)"' 2>&1) || rc=$?
[ $rc = 1 ] && grep -q "left in $R/base: thoth-$(id -u)/ (0 entries)" <<<"$out" ||
  fail "a runtime dir made by the stage not named ($rc): $out"
rm -rf "$R"
export THOTH_STAGE_RUNDIRS=0
echo "ok: what a stage leaves in the user's runtime dirs is named with the test that wrote it"

# A guard killed by SIGKILL leaves its folder (thoth-stage-PID-*) and its
# short folders: the next guard removes them, as it does not a live guard's
# or an old-style folder (no pid: whose it is cannot be told).
true & dead=$!; wait $dead
"$PY" "$GUARD" -- sleep 30 >/dev/null 2>&1 & live=$!
# once its own folder is there, its look for stale ones is over
for _ in $(seq 100); do compgen -G "$W/thoth-stage-$live-*" >/dev/null && break; sleep 0.1; done
compgen -G "$W/thoth-stage-$live-*" >/dev/null || fail "a guard made no folder of its pid"
# $$: a pid that runs but is no guard (a dead guard's pid reused)
mkdir "$W/thoth-stage-$dead-abcdefgh" "$W/thoth-stage-$live-livelive" "$W/thoth-stage-oldstyle" \
  "$W/thoth-stage-$$-reusedpi"
mkdir "/tmp/thoth-stage-$dead-abcdefgh-thothd-test-x1"
run 'true'
[ $rc = 0 ] || fail "a tidy stage after a killed guard failed ($rc): $out"
grep -q "removed $W/thoth-stage-$dead-abcdefgh, left by a guard (pid $dead) that no longer runs (and 1 fallback folder)" \
  <<<"$out" || fail "the killed guard's folder not named: $out"
[ ! -e "$W/thoth-stage-$dead-abcdefgh" ] && [ ! -e "/tmp/thoth-stage-$dead-abcdefgh-thothd-test-x1" ] \
  || fail "the killed guard's folders are still there"
grep -q "removed $W/thoth-stage-$$-reusedpi, left by a guard (pid $$) that no longer runs$" <<<"$out" \
  && [ ! -e "$W/thoth-stage-$$-reusedpi" ] || fail "a folder whose pid now runs another program was kept: $out"
[ -d "$W/thoth-stage-oldstyle" ] || fail "an old-style stage folder was removed"
[ -d "$W/thoth-stage-$live-livelive" ] || fail "a running guard's folder was removed"
kill -TERM $live; wait $live || true
rmdir "$W/thoth-stage-$live-livelive" "$W/thoth-stage-oldstyle"
echo "ok: the folders of a guard that was killed are removed by the next"

hard=$(grep -rnE '/tmp/[A-Za-z0-9_.-]*XXXXXX' "$SRC/tests" "$SRC/fuzz" --include='*.c' --include='*.h' \
         --include='*.sh' --include='*.py' --include='*.txt' --include='*.cmake' | grep -v '/tmp/MARK-' || true)
# (/tmp/MARK-...: the short socket folders named for the stage, which the
# guard checks: tmpdir.h, sockdir.py)
[ -z "$hard" ] || fail "a /tmp template that TMPDIR does not move (use tests/common/tmpdir.h or \${TMPDIR:-/tmp}): $hard"
echo "ok: no test hard-codes /tmp"
