#!/usr/bin/env bash
# tests/cli/test_trace_dump_full.sh BUILD_DIR
#
# `thothctl trace dump --json FILE` on a full disk: the write fails, says
# so, and FILE keeps the earlier dump whole, with no temporary file left;
# `--ctf DIR` likewise keeps the earlier trace in DIR whole.
# thothd truncated FILE first (fopen "w"), so the failure lost the earlier
# dump and left a cut one.  The full disk is thothd's RLIMIT_FSIZE (EFBIG,
# with SIGXFSZ ignored): the closest to a full disk without a mount.
set -uo pipefail
. "$(dirname "$0")/../common/thoth_test.sh"
tt_init "$1"
ECHO=$1/services/echo ECHO_CLIENT=$1/services/echo-client
tt_mkdir RT dump-full
tt_mkdir OUT dump-full-out
fail() { echo "FAIL: $*"; tail -5 "$RT/thothd.log" 2>/dev/null; exit 1; }
export THOTH_RUNTIME_DIR=$RT

# 64 KiB per file for thothd; SIGXFSZ ignored, so a longer write fails
# with EFBIG instead of killing thothd.  The ignore is inherited through
# fork and exec (trap '', not env --ignore-signal: that needs coreutils
# 8.31), and only thothd's start sees it.
TT_THOTHD_WRAP=(prlimit --fsize=65536)
trap '' XFSZ
tt_start_thothd "$RT" --http-port off
trap - XFSZ
unset TT_THOTHD_WRAP
tt_start_service "$RT" echo "$ECHO"

"$THOTHCTL" trace start >/dev/null || fail "trace start"
"$THOTHCTL" trace dump --json "$OUT/t.json" || fail "the first (small) dump"
cp "$OUT/t.json" "$OUT/first.json"
"$THOTHCTL" trace dump --ctf "$OUT/ctf" || fail "the first (small) CTF dump"
ctf_state() { (cd "$OUT/ctf" && ls -A && cat metadata stream_* | md5sum); }
ctf_first=$(ctf_state)
[ "$(stat -c %s "$OUT/first.json")" -lt 65536 ] || fail "the first dump is already over the limit"

# echo-client's calls fill the trace until it no longer fits in 64 KiB:
# probe dumps (to files the test does not check) until one fails for the
# limit, each one that succeeded whole and under it.  One second of
# `--rate 500` was assumed to be enough, and under ASan at load 20 the
# client made so few calls that the CTF dump (897 events) fit.
outgrow() {   # --json FILE | --ctf DIR: the probe's kind and path
  local kind=$1 probe=$2 n= fits=0 deadline=$((SECONDS + 60)) big
  tt_spawn "$ECHO_CLIENT" --rate 500 --report 60 >/dev/null 2>&1; client=$TT_PID
  while "$THOTHCTL" trace dump "$kind" "$probe" >"$OUT/probe.out" 2>"$OUT/probe.err"; do
    n=$(sed -n 's/^wrote \([0-9]*\) events.*/\1/p' "$OUT/probe.out") fits=$((fits + 1))
    big=$(find "$probe" -type f -size +65536c)
    [ -z "$big" ] || fail "a $kind dump over the file size limit succeeded: $(ls -l $big)"
    if [ "$kind" = --json ]; then
      jq -e .traceEvents "$probe" >/dev/null || fail "a $kind dump of $n events that succeeded is not whole JSON"
    fi
    [ "$SECONDS" -lt "$deadline" ] ||
      fail "the trace did not outgrow 64 KiB as $kind in 60 s of echo-client at 500 calls/s (the last dump wrote ${n:-no} events)"
    sleep 0.2
  done
  grep -q "File too large" "$OUT/probe.err" ||
    fail "a probe $kind dump failed, not for the file size limit: $(cat "$OUT/probe.err")"
  kill "$client"; tt_reap "$client"
  echo "the trace outgrew 64 KiB as $kind after $fits dumps that fit${n:+ (the last of $n events)}"
}
outgrow --json "$OUT/probe.json"
# the trace only grows (the session goes on): the dump to t.json cannot fit
"$THOTHCTL" trace dump --json "$OUT/t.json" 2>"$OUT/dump.err" && fail "a dump over the file size limit succeeded"
grep -q "t.json" "$OUT/dump.err" || fail "the failed dump did not name its file: $(cat "$OUT/dump.err")"
cmp -s "$OUT/t.json" "$OUT/first.json" ||
  fail "the failed dump damaged the earlier one ($(stat -c %s "$OUT/t.json") bytes, was $(stat -c %s "$OUT/first.json"))"
leftover=$(ls "$OUT" | grep -c 'tmp-' || true)
[ "$leftover" = 0 ] || fail "temporary files left: $(ls "$OUT")"
echo "ok: a dump that does not fit fails and keeps the earlier one whole"

# The same for CTF: a stream over the limit fails the dump, which names the
# file, and the directory keeps the earlier trace exactly (its metadata and
# streams were overwritten in place, one by one, up to the failure).
outgrow --ctf "$OUT/probe-ctf"
"$THOTHCTL" trace dump --ctf "$OUT/ctf" 2>"$OUT/ctf.err" && fail "a CTF dump over the file size limit succeeded"
grep -q "$OUT/ctf/stream_" "$OUT/ctf.err" || fail "the failed CTF dump did not name its file: $(cat "$OUT/ctf.err")"
grep -q "File too large" "$OUT/ctf.err" || fail "the failed CTF dump did not say why: $(cat "$OUT/ctf.err")"
[ "$(ctf_state)" = "$ctf_first" ] || fail "the failed CTF dump changed the earlier trace: $(ls -lA "$OUT/ctf")"
echo "ok: a CTF dump that does not fit fails and keeps the earlier trace whole"

# a dump that fits replaces it (after the session is stopped, a new small one)
"$THOTHCTL" trace stop >/dev/null || fail "trace stop"
"$THOTHCTL" trace start >/dev/null || fail "trace start again"
# The new session must record something of its own.  With echo idle it
# records nothing, and a CTF dump of no events is its metadata alone, which
# differs from the first one only in the clock offset (CLOCK_REALTIME -
# CLOCK_MONOTONIC, read afresh by each dump): two reads that often come out
# the same to the nanosecond, so "replaced" held by chance.  A slow client
# (2 calls/s: a few events, far under the 64 KiB limit), until a probe dump
# sees its events or a deadline passes.
tt_spawn "$ECHO_CLIENT" --rate 2 --report 60 >/dev/null 2>&1; client=$TT_PID
deadline=$((SECONDS + 30))
until n=$("$THOTHCTL" trace dump --json "$OUT/probe.json" | sed -n 's/^wrote \([0-9]*\) events.*/\1/p')
      [ "${n:-0}" -gt 0 ]; do
  [ "$SECONDS" -lt "$deadline" ] || fail "the new session recorded no event in 30 s"
  sleep 0.1
done
kill "$client"; tt_reap "$client"
# the replaced file keeps its mode: `thothctl sched` dumps into a mkstemp
# 0600 file, which the rename of a 0666&~umask temporary made world-readable
chmod 0600 "$OUT/t.json"
"$THOTHCTL" trace dump --json "$OUT/t.json" || fail "a small dump after the failure"
jq -e .traceEvents "$OUT/t.json" >/dev/null || fail "the new dump is not JSON"
"$THOTHCTL" trace dump --ctf "$OUT/ctf" || fail "a small CTF dump after the failure"
ls -A "$OUT/ctf" | grep -q '^stream_' || fail "the new CTF dump has no stream: $(ls -A "$OUT/ctf")"
[ "$(ctf_state)" != "$ctf_first" ] || fail "the CTF dump that fits did not replace the trace"
ls -A "$OUT/ctf" | grep -q tmp && fail "a temporary left in the CTF directory: $(ls -A "$OUT/ctf")"
[ "$(stat -c %a "$OUT/t.json")" = 600 ] || fail "the dump changed the file's mode 600 to $(stat -c %a "$OUT/t.json")"
"$THOTHCTL" trace stop >/dev/null
echo "ok: a dump that fits replaces the file"

# A stop (or dump) that takes thothd longer than a call's 5 s: thothctl
# waits for it (it said "timed out" while thothd went on).  The slow stop
# is THOTHD_TEST_STOP_GATE: beside the dashboard's live observer a stop
# waits at a FIFO until a byte comes, here after 7 s.
"$THOTHCTL" trace stop >/dev/null 2>&1
kill "$THOTHD_PID"; tt_reap "$THOTHD_PID"
RT2=$RT/slow
mkdir -m 700 "$RT2"
mkfifo "$RT2/gate"
TT_THOTHD_WRAP=(env THOTHD_TEST_STOP_GATE="$RT2/gate")
tt_start_thothd "$RT2" --http-port 0
unset TT_THOTHD_WRAP
url=$("$THOTHCTL" --runtime-dir "$RT2" --json status | jq -r .dashboard_url)
curl -sf "${url}metrics" >/dev/null || fail "no /metrics at $url"    # the live observer on
"$THOTHCTL" --runtime-dir "$RT2" trace start >/dev/null || fail "trace start (slow)"
tt_spawn "$THOTHCTL" --runtime-dir "$RT2" trace stop >"$OUT/stop.out" 2>"$OUT/stop.err"; stopper=$TT_PID
sleep 7
printf x >"$RT2/gate"
tt_reap "$stopper" || fail "a stop that took thothd 7 s: $(cat "$OUT/stop.err")"
grep -q "trace stopped" "$OUT/stop.out" || fail "the slow stop printed: $(cat "$OUT/stop.out")"
echo "ok: a stop that takes thothd 7 s is waited for"
