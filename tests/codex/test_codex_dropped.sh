#!/bin/bash
# test_codex_dropped.sh THOTHD THOTHCTL CODEX
# What codex does when thothd drops it after it was registered
# (docs/CODEX.md), with real thothds and a real codex:
# 1. thothd goes away (its connection closes): codex says so once, serves
#    on and waits for a thothd without a busy loop; a thothd that comes
#    back gets the registration again.
# 2. thothd restarts and another executable takes the name "codex" first:
#    thothd refuses the re-registration.  codex exits 1 with thothd's
#    reason in one line, through its orderly stop: nothing it acknowledged
#    (sync or deferred) is lost.  The old codex logged the refusal and
#    stayed, an instance no client could find, for good.
set -u
. "$(dirname "$0")/../common/thoth_test.sh"
THOTHD=$1 THOTHCTL=$2 CODEX=$3
tt_init
tt_mkdir RT codex-dropped
tt_mkdir W codex-dropped-work
mkdir "$W/data" "$W/data-other"
ctl() { "$THOTHCTL" --runtime-dir "$RT" "$@"; }
said() { grep -c "$1" "$W/codex.log"; }
# Context switches of all of codex's threads: what a busy loop shows.
switches() {
	local n=0 f v
	for f in /proc/"$CX"/task/*/status; do
		v=$(awk '/^(non)?voluntary_ctxt_switches/ { s += $2 } END { print s + 0 }' "$f" 2>/dev/null) || v=0
		n=$((n + v))
	done
	echo $n
}

tt_start_thothd "$RT"
T1=$THOTHD_PID
tt_spawn "$CODEX" --runtime-dir "$RT" --data-dir "$W/data" --workers 2 --no-pm 2>"$W/codex.log"
CX=$TT_PID
tt_wait_registered "$RT" codex
ctl codex create logs >/dev/null || tt_fail "create logs"
printf 's1\ns2\n' | ctl codex append logs --sync >/dev/null || tt_fail "append --sync"
printf 'd1\nd2\n' | ctl codex append logs --deferred >/dev/null || tt_fail "append --deferred"

# 1. thothd goes: said once (worker 0 speaks for both), no busy loop.
kill -TERM "$T1"
tt_reap "$T1"
tt_until --show "$W/codex.log" 10 "codex to say thothd went" sh -c "grep -q 'not registered with thothd, retrying' '$W/codex.log'"
sleep 0.5       # the hang-up, then the first retry's "nothing listens" (its reason changed)
n1=$(said 'not registered with thothd, retrying')
a=$(switches)
sleep 2
b=$(switches)
n2=$(said 'not registered with thothd, retrying')
_tt_ours "$CX" live || { cat "$W/codex.log"; tt_fail "codex exited when thothd went away"; }
[ $((b - a)) -lt 200 ] || tt_fail "codex switched $((b - a)) times in 2 s without thothd: a busy loop"
[ "$n2" -le 2 ] || { cat "$W/codex.log"; tt_fail "codex said 'not registered' $n2 times without thothd (a line a retry)"; }
echo "ok: without thothd codex waits quietly ($((b - a)) context switches in 2 s, $n1 then $n2 lines)"

# A thothd that comes back holds codex again.
tt_start_thothd "$RT"
T2=$THOTHD_PID
tt_until --show "$W/codex.log" 20 "codex to register again" sh -c "[ \$(grep -c 'worker 0: registered with thothd' '$W/codex.log') = 2 ]"
tt_wait_registered "$RT" codex
[ "$(ctl codex read logs | cut -f2 | tr '\n' ' ')" = "s1 s2 d1 d2 " ] || tt_fail "read after thothd returned: $(ctl codex read logs)"
echo "ok: codex registers with a thothd that returns, and serves"

# 2. thothd restarts; while codex is stopped another executable (a copy of
# codex: another inode) takes the name; codex, let go, is refused.
kill -STOP "$CX"
kill -TERM "$T2"
tt_reap "$T2"
tt_start_thothd "$RT"
cp "$CODEX" "$W/codex-other" || tt_fail "cannot copy $CODEX"
tt_spawn "$W/codex-other" --runtime-dir "$RT" --data-dir "$W/data-other" --workers 1 --no-pm 2>"$W/other.log"
OTHER=$TT_PID
tt_wait_registered "$RT" codex
kill -CONT "$CX"
cx_gone() { ! _tt_ours "$CX" live; }
tt_until --show "$W/codex.log" 30 "codex to exit after thothd refused its re-registration" cx_gone
rc=0
tt_reap "$CX" || rc=$?
[ "$rc" = 1 ] || { cat "$W/codex.log"; tt_fail "codex refused after registration exited $rc, not 1"; }
reason='name "codex" is held by another executable (pid '"$OTHER"') while it has live instances'
n=$(grep -cF "$reason" "$W/codex.log")
[ "$n" = 1 ] || { cat "$W/codex.log"; tt_fail "thothd's reason is in $n lines of codex's log, not one"; }
last=$(tail -n 1 "$W/codex.log")
case $last in
	"codex[$CX]: thothd refused to register codex again (thothd had held it), exiting: $reason"*) ;;
	*) cat "$W/codex.log"; tt_fail "codex's last line does not name thothd's refusal: $last" ;;
esac
echo "ok: refused after registration, codex exits 1: $last"
kill -0 "$OTHER" 2>/dev/null || { cat "$W/other.log"; tt_fail "the name's new holder died"; }

# Nothing acknowledged was lost: the data dir, opened again (with a thothd
# of its own), holds all four records.
tt_mkdir RT2 codex-dropped-again
tt_start_thothd "$RT2"
tt_spawn "$CODEX" --runtime-dir "$RT2" --data-dir "$W/data" --workers 1 --no-pm 2>"$W/codex2.log"
tt_wait_registered "$RT2" codex
got=$("$THOTHCTL" --runtime-dir "$RT2" codex read logs | cut -f2 | tr '\n' ' ')
[ "$got" = "s1 s2 d1 d2 " ] || { cat "$W/codex2.log"; tt_fail "after the refusal the journal holds '$got', not 's1 s2 d1 d2 '"; }
echo "ok: the journal kept every acknowledged record"
