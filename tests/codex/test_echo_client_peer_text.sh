#!/bin/bash
# test_echo_client_peer_text.sh THOTHD ECHO_CLIENT CODEX_FAKE
# echo-client names an instance's address when a call to it fails; the
# address is whatever the registrant gave thothd, which refuses C0 and DEL
# but not C1 (U+009B is CSI to xterm; as UTF-8, c2 9b: a raw 9b is not
# UTF-8, which the registry's strings must be).  It must
# reach the terminal as \xNN, through the writer thothctl uses
# (tools/peertext): echo-client printed it raw.
set -u
. "$(dirname "$0")/../common/thoth_test.sh"
THOTHD=$1 CLIENT=$2 FAKE=$3
THOTHCTL=/bin/true
tt_init
tt_mkdir RT echo-peer-text
tt_start_thothd "$RT" --http-port off
addr=$(printf '%s/echo-\xc2\x9b31m-\xc2\x9b2J.sock' "$RT")
shown="$RT/echo-\\xc2\\x9b31m-\\xc2\\x9b2J.sock"
tt_spawn "$FAKE" "$RT" echo "$addr" 2>"$RT/fake.log"
tt_until --show "$RT/fake.log" 30 "the fake echo to register" grep -q registered "$RT/fake.log"
# Until echo-client has named the failing instance (a count of events, not
# a time: 3 s of it were too few for an ASan echo-client at load 20), then
# SIGTERM, which ends it; it must not have exited on its own before.
tt_spawn "$CLIENT" --runtime-dir "$RT" --rate 10 --report 1 >"$RT/out" 2>"$RT/err"
CLIENT_PID=$TT_PID
tt_until --show "$RT/err" 30 "echo-client to name a failed call to the fake echo" grep -qF failed "$RT/err"
_tt_ours "$CLIENT_PID" live || { cat "$RT/err"; tt_fail "echo-client exited after the failed call"; }
kill -TERM "$CLIENT_PID"
rc=0
tt_reap "$CLIENT_PID" || rc=$?
[ $rc = 0 ] || { cat "$RT/err"; tt_fail "echo-client exited $rc on SIGTERM"; }
if LC_ALL=C grep -q $'\xc2\x9b' "$RT/err" "$RT/out"; then
	tt_fail "echo-client wrote U+009B (CSI) raw: $(LC_ALL=C grep -a failed "$RT/err" | head -1 | od -c | head -5)"
fi
grep -qF "at $shown failed" "$RT/err" || { cat "$RT/err"; tt_fail "echo-client does not show the address as $shown"; }
echo "ok: $(grep -F failed "$RT/err" | head -1)"
