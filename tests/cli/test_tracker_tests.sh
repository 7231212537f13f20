#!/usr/bin/env bash
# tests/cli/test_tracker_tests.sh SOURCE_DIR BUILD_DIR PYTHON3 CTEST
#
# Every test docs/TRACKER.md (README.md, docs/*.md) cites exists (check_tracker_tests.py); and a
# copy of the tracker citing a test that does not must fail the check.
set -euo pipefail
SRC=$1 BUILD=$2 PY=$3 CTEST=$4
CHECK=$SRC/tests/cli/check_tracker_tests.py
fail() { echo "FAIL: $*"; exit 1; }
"$PY" "$CHECK" --ctest="$CTEST" "$SRC" "$BUILD" || fail "docs/TRACKER.md cites tests that do not exist (above)"
TMP=$(mktemp "${TMPDIR:-/tmp}/thoth-tracker-XXXXXX.md")
trap 'rm -f "$TMP"' EXIT
sed 's/`test_rtable_thothd`/`test_rtable_thothd_renamed`/' "$SRC/docs/TRACKER.md" >"$TMP"
cmp -s "$TMP" "$SRC/docs/TRACKER.md" && fail "the tracker no longer cites test_rtable_thothd: update this test"
rc=0
out=$("$PY" "$CHECK" --ctest="$CTEST" "$SRC" "$BUILD" "$TMP") || rc=$?
[ $rc = 1 ] && grep -q "names test_rtable_thothd_renamed" <<<"$out" ||
  fail "a tracker citing a missing test passed the check (exit $rc): $out"
echo "ok: a missing test is caught"
# The ctest asked is CMake's: a broken `ctest` first on PATH changes nothing,
# and a ctest that cannot run is a failure, not an empty list of tests.
BIN=$(mktemp -d "${TMPDIR:-/tmp}/thoth-tracker-bin-XXXXXX")
trap 'rm -f "$TMP"; rm -rf "$BIN"' EXIT
printf '#!/bin/sh\ntouch "%s/ran"\nexit 1\n' "$BIN" >"$BIN/ctest"
chmod +x "$BIN/ctest"
PATH="$BIN:$PATH" "$PY" "$CHECK" --ctest="$CTEST" "$SRC" "$BUILD" >/dev/null ||
  fail "the check failed with a broken ctest on PATH"
[ ! -e "$BIN/ran" ] || fail "the check ran the ctest on PATH, not $CTEST"
rc=0
out=$("$PY" "$CHECK" --ctest="$BIN/no-such-ctest" "$SRC" "$BUILD" 2>&1) || rc=$?
[ $rc != 0 ] && grep -q "cannot run $BIN/no-such-ctest" <<<"$out" ||
  fail "a ctest that cannot run passed the check (exit $rc): $out"
echo "ok: CMake's ctest is the one run; one that cannot run is named"
echo "PASS"
