#!/bin/bash
# test_codex_fake.sh THOTHD THOTHCTL CODEX_FAKE
# thothctl's error line for a codex call that names no stream: a service
# registered as codex (codex_fake.c) fails every stats call with Failed,
# and `thothctl codex stats` must say "thothctl: codex stats: ..." (it
# said "codex stats : ", a stray space where the stream would go).
set -u
. "$(dirname "$0")/../common/thoth_test.sh"
THOTHD=$1 THOTHCTL=$2 FAKE=$3
tt_init
tt_mkdir RT codex-fake
tt_start_thothd "$RT" --http-port off
tt_start_service "$RT" codex "$FAKE" "$RT"
rc=0
err=$("$THOTHCTL" --runtime-dir "$RT" codex stats 2>&1) || rc=$?
[ $rc = 1 ] || tt_fail "codex stats against a failing codex exited $rc: $err"
grep -q "^thothctl: codex stats: the journal stopped after an I/O error" <<<"$err" ||
	tt_fail "codex stats' error line: $err"
echo "ok: $err"
