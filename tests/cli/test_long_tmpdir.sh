#!/usr/bin/env bash
# tests/cli/test_long_tmpdir.sh SOURCE_DIR PYTHON3 TEST...
#
# A developer's long TMPDIR (docs/TESTING.md "Honest stages (stop 43)"):
# each TEST, a socket test of the thothd harness, tests/reliability/
# chan_proc.h or tests/common/tmpdir.h's test_sock_template, passes with
# TMPDIR at a path of over 150 bytes, under the leftovers guard, which also
# fails on a short folder of the stage's left in /tmp.  On the old code
# the harness refused ("too long for a runtime dir"), test_timerpage's
# setup failed without a word, and the channel tests failed at bind.
set -euo pipefail
SRC=$1 PY=$2
shift 2
fail() { echo "FAIL: $*"; exit 1; }
W=$(mktemp -d "${TMPDIR:-/tmp}/thoth-long-tmpdir-XXXXXX")
trap 'rm -rf "$W"' EXIT
LONG=$W/$(printf 'a%.0s' $(seq 1 150))
mkdir -p "$LONG"
# The guard makes the stage's TMPDIR in LONG: $LONG/thoth-stage-PID-XXXXXXXX.
rc=0
THOTH_STAGE_SHM=0 THOTH_STAGE_TMP=$LONG "$PY" "$SRC/tests/common/clean_stage.py" -- bash -c '
  echo "TMPDIR is ${#TMPDIR} bytes"
  for t; do "$t" >"$TMPDIR/../$(basename "$t").log" 2>&1 || { echo "FAIL: $t:"; cat "$TMPDIR/../$(basename "$t").log"; exit 1; }
    echo "ok: $(basename "$t")"; done' _ "$@" || rc=$?
[ $rc = 0 ] || fail "a socket test failed, or left something, under a TMPDIR of over 150 bytes ($rc)"
echo "ok: ${#} socket tests pass with a TMPDIR of over 150 bytes, nothing left"
