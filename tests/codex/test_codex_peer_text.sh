#!/bin/bash
# test_codex_peer_text.sh THOTHD THOTHCTL CODEX
# thothctl never prints a peer's bytes raw to the operator's terminal
# (tools/peertext/peertext.c; docs/THOTHD.md "A peer's text"): codex's
# Stats.failure is whatever the process registered as codex says, and
# `thothctl codex stats` printed it raw ("STOPPED: %.*s"), as did a failed
# append's cause: ESC [ ..., OSC 52, CR and BEL reached the terminal.
# Here a real codex's failure carries such bytes: its data dir's name
# holds ESC [31m, CR, BEL and DEL, and a full disk (a real 64 KiB tmpfs,
# as test_codex_full_disk) stops the journal with an error naming the
# segment's path.  `codex stats`, the failed append's error and `codex read`
# of a record holding the same bytes must hold none of them raw, but
# "\x1b[31m\x0d\x07\x7f"; `codex stats --json` keeps the exact string.
# Needs root (CAP_SYS_ADMIN) for the mount: skipped (77) only when the
# mount is refused.
set -u
. "$(dirname "$0")/../common/thoth_test.sh"
tt_own_mount_ns "$@"
THOTHD=$1 THOTHCTL=$2 CODEX=$3
tt_init
tt_mkdir RT codex-peer-text
export THOTH_RUNTIME_DIR=$RT
show_logs() { for f in "$RT"/*.log; do echo "--- $f"; tail -30 "$f" | cat -v; done; }
fail() { echo "FAIL: $*" | cat -v; show_logs; exit 1; }
for t in jq; do command -v $t >/dev/null || tt_skip "needs $t"; done

tt_tmpfs DISK codex-peer-disk size=64k,mode=0700
HOSTILE=$'\e[31m\r\a\x7f'
SHOWN='\x1b[31m\x0d\x07\x7f'
DATA="$DISK/x$HOSTILE"

# Whether FILE holds ESC, CR, BEL or DEL raw (grep -P: the bytes themselves)
raw() { LC_ALL=C grep -qP '[\x1b\r\a\x7f]' "$1"; }

tt_start_thothd "$RT"
codex_up() { "$THOTHCTL" codex stats >/dev/null 2>&1; }
tt_spawn "$CODEX" --data-dir "$DATA" --workers 2 --no-pm --segment-bytes 16384 2>>"$RT/codex.log"
tt_until --show "$RT/codex.log" 30 "codex to register" codex_up
"$THOTHCTL" codex create notes || fail "create notes"

# a record holding the same bytes: `codex read` shows them (it did before too)
printf 'rec%s\n' "$HOSTILE" | "$THOTHCTL" codex append notes --sync >/dev/null || fail "append the hostile record"
"$THOTHCTL" codex read notes >"$RT/read.out" || fail "codex read"
raw "$RT/read.out" && fail "codex read printed a raw control byte: $(cat -v "$RT/read.out")"
grep -qF "rec$SHOWN" "$RT/read.out" || fail "codex read does not show $SHOWN: $(cat -v "$RT/read.out")"
echo "ok: codex read shows the record's controls: $(cat "$RT/read.out")"

# fill the 64 KiB disk: the append that does not fit stops the journal
rc=0
for i in $(seq 1 200); do printf 'r%04d-%0991d\n' "$i" 0; done |
	timeout 60 "$THOTHCTL" codex append notes --sync >/dev/null 2>"$RT/append.err" || rc=$?
[ $rc = 1 ] || fail "append on a full disk exited $rc, not 1: $(cat -v "$RT/append.err")"
grep -q "the journal stopped after an I/O error" "$RT/append.err" ||
	fail "the failed append said: $(cat -v "$RT/append.err")"
raw "$RT/append.err" && fail "the failed append printed a raw control byte: $(cat -v "$RT/append.err")"
grep -qF "/x$SHOWN/seg-" "$RT/append.err" ||
	fail "the failed append does not show the path as $SHOWN: $(cat -v "$RT/append.err")"
echo "ok: the failed append: $(cat "$RT/append.err")"

# stats: STOPPED, the cause shown, never obeyed
"$THOTHCTL" codex stats >"$RT/stats.out" 2>&1 || fail "stats after the failure: $(cat -v "$RT/stats.out")"
head -1 "$RT/stats.out" | grep -q "^STOPPED: " || fail "stats' first line: $(head -1 "$RT/stats.out" | cat -v)"
raw "$RT/stats.out" && fail "codex stats printed a raw control byte: $(head -1 "$RT/stats.out" | cat -v)"
head -1 "$RT/stats.out" | grep -qF "/x$SHOWN/seg-" ||
	fail "codex stats does not show the path as $SHOWN: $(head -1 "$RT/stats.out" | cat -v)"
echo "ok: stats: $(head -1 "$RT/stats.out")"

# a later append fails at once, the same way
rc=0
echo more | timeout 30 "$THOTHCTL" codex append notes --sync >/dev/null 2>"$RT/append2.err" || rc=$?
[ $rc = 1 ] || fail "an append on the stopped journal exited $rc: $(cat -v "$RT/append2.err")"
raw "$RT/append2.err" && fail "the later append printed a raw control byte: $(cat -v "$RT/append2.err")"

# JSON keeps the exact string (escaped as JSON), so a script sees the real path
f=$("$THOTHCTL" codex stats --json | jq -r .failure) || fail "stats --json"
[[ $f == *"/x$HOSTILE/seg-"* ]] || fail "stats --json's failure is not the exact path: $(cat -v <<<"$f")"
echo "ok: stats --json keeps the exact bytes"
