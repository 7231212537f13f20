#!/usr/bin/env bash
# tests/cli/test_long_tmpdir.sh SOURCE_DIR PYTHON3 TEST...
#
# A developer's long TMPDIR (docs/TESTING.md "A long TMPDIR works"): each
# TEST passes with TMPDIR at a path of over 150 bytes, under the leftovers
# guard, which also fails on a short folder of the stage's left in /tmp.
# A TEST is a command line, its words joined by '|' (a C test is just its
# program; a script "bash|SCRIPT|ARG..." or "PYTHON|SCRIPT|ARG...").  One of
# each family that makes its folder through the shared helpers: C through
# tests/common/tmpdir.h (the thothd harness, chan_proc.h,
# test_sock_template, test_tmp_template), Python through sockdir.py, shell
# through thoth_test.sh (tt_tempdir, tt_mkdir).  On the old code the
# harness refused ("too long for a runtime dir"), test_timerpage's setup
# failed without a word, the channel tests failed at bind,
# test_loop_arm_failure's timer page was refused ("no space"),
# test_thothc_writefile's setup said "TMPDIR ... is too long",
# test_systemd_notify could not bind its socket and test_cli_operator's
# thothd refused its runtime dir.
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
# The last TEST (test_cli_operator.sh, ~35 s: half this test's time when it
# ran after the others) runs beside the others, which run one after the
# other as before: each is a test that ctest runs beside others anyway.
# Each is waited for and judged alone, by its own exit status.
THOTH_STAGE_SHM=0 THOTH_STAGE_TMP=$LONG "$PY" "$SRC/tests/common/clean_stage.py" -- bash -c '
  echo "TMPDIR is ${#TMPDIR} bytes"
  one() {
    local cmd name log
    IFS="|" read -r -a cmd <<<"$1"
    name=$(basename "${cmd[0]}")
    case ${cmd[1]:-} in *.sh|*.py) name=$(basename "${cmd[1]}") ;; esac
    log=$TMPDIR/../$name.log
    "${cmd[@]}" >"$log" 2>&1 || { echo "FAIL: ${cmd[*]}:"; cat "$log"; return 1; }
    echo "ok: $name"
  }
  one "${@: -1}" & last=$!
  rc=0
  for t in "${@:1:$#-1}"; do one "$t" || { rc=1; break; }; done
  wait "$last" || rc=1
  exit $rc' _ "$@" || rc=$?
[ $rc = 0 ] || fail "a test failed, or left something, under a TMPDIR of over 150 bytes ($rc)"
echo "ok: ${#} tests (C, Python, shell) pass with a TMPDIR of over 150 bytes, nothing left"
