#!/usr/bin/env bash
# tests/cli/test_stage_skips.sh SOURCE_DIR PYTHON3 PROBE CTEST CMAKE
#
# make test's stages say what they did not run (tests/common/stage_skips.py,
# docs/TESTING.md "Honest stages (stop 43)"): a cmocka test whose every
# case skipped is ctest's Skipped (exit 77), one that passed a case or
# failed one keeps its status; the summary after a stage counts and names
# each skipped case with its reason and each skipped test; a skip not on
# the allowed list is listed again and fails the stage only with
# THOTH_STRICT_SKIPS=1 (not CI=true alone); and no skip() in the tree is
# without a reason printed before it.
set -euo pipefail
# make test in CI runs this with CI=true: the stages below must not
# inherit what they are told one by one.
unset CI THOTH_STRICT_SKIPS
SRC=$1 PY=$2 PROBE=$3 CTEST=$4 CMAKE=$5
SKIPS=$SRC/tests/common/stage_skips.py
fail() { echo "FAIL: $*"; exit 1; }
W=$(mktemp -d "${TMPDIR:-/tmp}/thoth-stage-skips-XXXXXX")
trap 'rm -rf "$W"' EXIT

rc=0; out=$("$PROBE" 2>&1) || rc=$?
[ $rc = 77 ] || fail "every case skipped: exit $rc, not 77: $out"
grep -q "skipped: the probe's first case has nothing to run" <<<"$out" || fail "no reason printed: $out"
rc=0; PROBE_PASS_ONE=1 "$PROBE" >/dev/null 2>&1 || rc=$?
[ $rc = 0 ] || fail "one case passed, one skipped: exit $rc, not 0"
rc=0; PROBE_FAIL_ONE=1 "$PROBE" >/dev/null 2>&1 || rc=$?
[ $rc = 1 ] || fail "one case failed, one skipped: exit $rc, not 1 (a failure must never read as a skip)"
echo "ok: every case skipped exits 77; a pass or a failure keeps its status"

# A ctest run as a stage's: the probe whole (Skipped), the probe with a
# case passing (Passed, one case skipped), a script's own skip (77), a
# NUMA skip (allowed in CI) and a plain pass.
mkdir "$W/p"
cat >"$W/p/CMakeLists.txt" <<EOT
cmake_minimum_required(VERSION 3.16)
project(p NONE)
enable_testing()
add_test(NAME all_skip COMMAND "$PROBE")
add_test(NAME one_pass COMMAND env PROBE_PASS_ONE=1 "$PROBE")
add_test(NAME script_skip COMMAND sh -c "echo 'SKIP: no widget here'; exit 77")
add_test(NAME numa_skip COMMAND sh -c "echo 'SKIP: one NUMA node online'; exit 77")
add_test(NAME plain COMMAND true)
set_tests_properties(all_skip one_pass script_skip numa_skip PROPERTIES SKIP_RETURN_CODE 77)
EOT
"$CMAKE" -S "$W/p" -B "$W/b" >/dev/null
stage() { rc=0; out=$("$PY" "$SRC/tests/common/clean_stage.py" --skips "$W/b" -- \
  "$CTEST" --test-dir "$W/b" --output-junit Testing/Temporary/LastStage.xml \
  --test-output-size-passed 16777216 2>&1) || rc=$?; }
export THOTH_STAGE_TMP=$W THOTH_STAGE_SHM=0   # /dev/shm: test_clean_stage's
stage
[ $rc = 0 ] || fail "a stage with skips failed outside CI ($rc): $out"
grep -q "== 3 test cases skipped, 3 whole tests skipped ($W/b) ==" <<<"$out" || fail "the counts: $out"
grep -q "^  one_pass: test_skips_unless_told_to_fail: skipped: the probe's second case has nothing to run$" \
  <<<"$out" || fail "the skipped case of a passing test not named with its reason: $out"
grep -q "^  all_skip (whole test): \[  SKIPPED \] every case of this test skipped (2): exit 77$" <<<"$out" \
  || fail "the all-skipped test not named: $out"
grep -q "^  script_skip (whole test): SKIP: no widget here$" <<<"$out" || fail "the script's skip not named: $out"
grep -q "all_skip .*(Skipped)" <<<"$out" || fail "ctest did not show the all-skipped test as Skipped: $out"
echo "ok: the summary counts and names each skipped case and test with its reason"

grep -q "^stage_skips: !! 5 skips for a reason not on the allowed list" <<<"$out" \
  || fail "the skips not on the allowed list not listed again: $out"
! grep -q "^  !! numa_skip: (whole test)" <<<"$out" || fail "an allowed skip listed as not allowed: $out"
CI=true stage
[ $rc = 0 ] || fail "CI=true alone failed a stage on its skips ($rc): $out"
THOTH_STRICT_SKIPS=1 stage
[ $rc = 1 ] || fail "THOTH_STRICT_SKIPS=1 passed a stage with skips not on the allowed list ($rc): $out"
grep -q "^stage_skips: FAILED (THOTH_STRICT_SKIPS=1): 5 skips" <<<"$out" || fail "the strict failure not counted: $out"
! grep -q "^  !! numa_skip: (whole test)" <<<"$out" || fail "an allowed skip failed the strict stage: $out"
echo "ok: a skip not on the allowed list is listed again; it fails only with THOTH_STRICT_SKIPS=1"

# A stage whose ctest wrote no JUnit file is not summed up from the last
# one's (the file above is still there).
rc=0; out=$("$PY" "$SRC/tests/common/clean_stage.py" --skips "$W/b" -- true 2>&1) || rc=$?
[ $rc = 0 ] && grep -q "LastStage.xml: No such file or directory: no skip summary" <<<"$out" \
  && ! grep -q "test cases skipped" <<<"$out" || fail "a stage without a JUnit file read an earlier one's ($rc): $out"
echo "ok: no JUnit file of this stage's, no summary"

"$PY" "$SKIPS" --lint "$SRC/tests" "$SRC/fuzz" || fail "a skip() in the tree prints no reason (above)"
mkdir "$W/lint"
printf 'static void t(void **s)\n{\n\t(void)s;\n\tif (1)\n\t\tskip();\n}\n' >"$W/lint/bare.c"
rc=0; out=$("$PY" "$SKIPS" --lint "$W/lint") || rc=$?
[ $rc = 1 ] && grep -q "bare.c:5: skip() with no reason printed before it" <<<"$out" \
  || fail "a bare skip() passed the lint ($rc): $out"
echo "ok: every skip() of the tree says why"
