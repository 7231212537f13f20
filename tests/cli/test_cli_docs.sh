#!/usr/bin/env bash
# tests/cli/test_cli_docs.sh SOURCE_DIR BUILD_DIR PYTHON3
#
# Man pages, bash completions, docs/THOTHD.md's synopsis and every
# program's --help agree on the commands and flags (check_cli_docs.py).
# Then the checker must catch a drift: on copies of the tree with one
# flag dropped from a man page, one command from a completion and one
# option from the doc, each run has to fail naming what went missing (a
# checker that passes everything would pass the real tree too).
set -euo pipefail
SRC=$1 BUILD=$2 PY=$3
CHECK=$SRC/tests/cli/check_cli_docs.py
fail() { echo "FAIL: $*"; exit 1; }

"$PY" "$CHECK" "$SRC" "$BUILD" || fail "the tree's docs and programs disagree (above)"

TMP=$(mktemp -d /tmp/thoth-cli-docs-XXXXXX)
trap 'rm -rf "$TMP"' EXIT
# A copy of what the checker reads as text; the sources it greps are linked.
copy() {
  rm -rf "$TMP/src"
  mkdir -p "$TMP/src/docs" "$TMP/src/tools" "$TMP/src/kernel"
  cp -r "$SRC/man" "$SRC/completion" "$TMP/src/"
  cp "$SRC/docs/THOTHD.md" "$TMP/src/docs/"
  for d in tools/thothctl tools/thothc tools/thothlock kernel/thothd codex services; do
    ln -s "$SRC/$d" "$TMP/src/$d"
  done
}
# broken FILE SED-EXPR EXPECTED: the drift must make the checker fail with EXPECTED
broken() {
  copy
  local before
  before=$(cat "$TMP/src/$1")
  sed -i "$2" "$TMP/src/$1"
  [ "$before" != "$(cat "$TMP/src/$1")" ] || fail "mutation '$2' changed nothing in $1: update this test"
  local out rc=0
  out=$("$PY" "$CHECK" "$TMP/src" "$BUILD" 2>&1) || rc=$?
  [ $rc = 1 ] || fail "checker passed $1 with '$2' (exit $rc): $out"
  grep -qF -- "$3" <<<"$out" || fail "checker on $1 with '$2' did not name '$3': $out"
  echo "ok: drift in $1 caught: $(grep -F -- "$3" <<<"$out" | head -1)"
}
broken man/thothctl.1.scd 's/ \[\*--min-version\* _V_\]//' "thothctl resolve flags: in --help, not in thothctl(1): --min-version"
broken man/thothd.8.scd '/^\*--etcd-ttl\* _S_$/d' "in thothd --help, not in thothd(8) OPTIONS: --etcd-ttl"
broken completion/thothc.bash 's/gen check fmt lint --help/gen check fmt --help/' "in thothc --help, not in the completion: lint"
broken completion/thothctl.bash 's/--pid --json --runtime-dir --help/--json --runtime-dir --help/' "thothctl serve flags: in --help, not in the completion: --pid"
broken docs/THOTHD.md 's/ \[--ready-fd FD\]//' "not in docs/THOTHD.md \"Running it\": --ready-fd"
echo "PASS"
