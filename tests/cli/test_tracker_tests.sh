#!/usr/bin/env bash
# tests/cli/test_tracker_tests.sh SOURCE_DIR BUILD_DIR PYTHON3
#
# Every test docs/TRACKER.md (README.md, docs/*.md) cites exists (check_tracker_tests.py); and a
# copy of the tracker citing a test that does not must fail the check.
set -euo pipefail
SRC=$1 BUILD=$2 PY=$3
CHECK=$SRC/tests/cli/check_tracker_tests.py
fail() { echo "FAIL: $*"; exit 1; }
"$PY" "$CHECK" "$SRC" "$BUILD" || fail "docs/TRACKER.md cites tests that do not exist (above)"
TMP=$(mktemp /tmp/thoth-tracker-XXXXXX.md)
trap 'rm -f "$TMP"' EXIT
sed 's/`test_rtable_thothd`/`test_rtable_thothd_renamed`/' "$SRC/docs/TRACKER.md" >"$TMP"
cmp -s "$TMP" "$SRC/docs/TRACKER.md" && fail "the tracker no longer cites test_rtable_thothd: update this test"
rc=0
out=$("$PY" "$CHECK" "$SRC" "$BUILD" "$TMP") || rc=$?
[ $rc = 1 ] && grep -q "names test_rtable_thothd_renamed" <<<"$out" ||
  fail "a tracker citing a missing test passed the check (exit $rc): $out"
echo "ok: a missing test is caught"
echo "PASS"
