#!/bin/bash
# test_codex_refused.sh THOTHD THOTHCTL CODEX
# A codex that thothd refuses to register exits 1 with thothd's reason in
# one line (docs/CODEX.md): it kept serving sockets no client could find,
# and only its log said so.  The refusal here is thothd's real one: the
# name "codex" is held by another executable (a copy of codex, another
# inode), and only the same executable may add instances of a name.
set -u
. "$(dirname "$0")/../common/thoth_test.sh"
THOTHD=$1 THOTHCTL=$2 CODEX=$3
tt_init
tt_mkdir RT codex-refused
tt_mkdir W codex-refused-work
tt_start_thothd "$RT"

# The name's holder: codex itself, copied (thothd tells executables apart
# by device and inode).
cp "$CODEX" "$W/codex-other" || tt_fail "cannot copy $CODEX"
mkdir "$W/data-other" "$W/data"
tt_spawn "$W/codex-other" --runtime-dir "$RT" --data-dir "$W/data-other" --workers 1 --no-pm 2>"$W/other.log"
OTHER=$TT_PID
tt_wait_registered "$RT" codex

# The refused one must end by itself; bounded so that the old codex, which
# served on, fails here instead of hanging the test.
rc=0
timeout 30 "$CODEX" --runtime-dir "$RT" --data-dir "$W/data" --workers 2 --no-pm 2>"$W/codex.log" || rc=$?
[ "$rc" != 124 ] || { cat "$W/codex.log"; tt_fail "codex kept serving after thothd refused its registration"; }
[ "$rc" = 1 ] || { cat "$W/codex.log"; tt_fail "a refused codex exited $rc, not 1"; }
reason='name "codex" is held by another executable (pid '"$OTHER"') while it has live instances'
n=$(grep -cF "$reason" "$W/codex.log")
[ "$n" = 1 ] || { cat "$W/codex.log"; tt_fail "thothd's reason is in $n lines of codex's log, not one"; }
last=$(tail -n 1 "$W/codex.log")
case $last in
	"codex["*"]: thothd refused to register codex, exiting: $reason"*) ;;
	*) cat "$W/codex.log"; tt_fail "codex's last line does not name thothd's refusal: $last" ;;
esac
echo "ok: a refused codex exits 1: $last"

# The holder was not disturbed: still codex's only instance, and serving.
out=$("$THOTHCTL" --runtime-dir "$RT" --json services codex) || tt_fail "services codex: $out"
pids=$(jq -rs '[.[].pid] | unique | map(tostring) | join(" ")' <<<"$out")   # one object a line
[ "$pids" = "$OTHER" ] || tt_fail "codex's instances are of pids '$pids', not only the holder's $OTHER"
kill -0 "$OTHER" 2>/dev/null || { cat "$W/other.log"; tt_fail "the name's holder died"; }
echo "ok: the holder keeps the name"
