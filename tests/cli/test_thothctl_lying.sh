#!/usr/bin/env bash
# tests/cli/test_thothctl_lying.sh BUILD_DIR LYING_THOTHD
#
# thothctl status against a thothd that lies (lying_thothd.c, cli47): each
# answer that contradicts itself, cannot be decoded, is cut short, stalls,
# announces 4 GiB, answers another call or is no thoth message at all is
# refused with exit 1, nothing on stdout, and one line on stderr naming the
# listener's socket and what is wrong; strings with ESC, newlines, C1 and
# bidi controls come out escaped (text) or as exact JSON (--json).  Plain
# and --json; never a crash, a hang (thothctl's own 5 s timeout bounds the
# stall) or a sanitizer report.
set -uo pipefail
. "$(dirname "$0")/../common/thoth_test.sh"
BUILD=$1 FAKE=$2
tt_init "$BUILD"
tt_mkdir TMP lying
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

# case SCENARIO RC PATTERN [--json]: thothctl [--json] status (CMD) against
# lying_thothd SCENARIO exits RC, its stderr holds PATTERN (fixed string).
n=0 CMD=status
case_() {
  local sc=$1 want=$2 pattern=$3 json=${4:-}
  n=$((n + 1))
  local rt=$TMP/$n
  mkdir -m 700 "$rt"
  "$FAKE" "$rt" "$sc" >"$TMP/$n.fake" 2>&1 &
  local fake=$!
  TT_PIDS+=("$fake")
  tt_until --show "$TMP/$n.fake" 30 "lying_thothd $sc listening" test -S "$rt/thothd.sock"
  timeout 60 "$THOTHCTL" --runtime-dir "$rt" $json $CMD >"$TMP/$n.out" 2>"$TMP/$n.err"
  local rc=$?
  local what="$sc${json:+ $json}"
  if [ "$rc" = 124 ]; then
    fail "$what: thothctl hung (60 s)"
  elif [ "$rc" != "$want" ]; then
    fail "$what: exit $rc, want $want"
  elif [ -n "$pattern" ] && ! grep -qF -- "$pattern" "$TMP/$n.err"; then
    fail "$what: stderr lacks '$pattern'"
  elif [ "$want" != 0 ] && [ "$CMD" = status ] && [ -s "$TMP/$n.out" ]; then
    fail "$what: refused, yet printed to stdout"
  elif [ "$want" != 0 ] && [ "$(wc -l <"$TMP/$n.err")" != 1 ]; then
    fail "$what: not one line on stderr"
  elif grep -q $'\x1b' "$TMP/$n.out" "$TMP/$n.err"; then
    fail "$what: a raw ESC reached the terminal"
  elif grep -qE 'AddressSanitizer|LeakSanitizer|runtime error' "$TMP/$n.err"; then
    fail "$what: sanitizer report"
  else
    echo "ok: $what: exit $rc: $(head -c 300 "$TMP/$n.err")"
    kill "$fake" 2>/dev/null
    tt_reap "$fake" >/dev/null
    return 0
  fi
  sed 's/^/  | /' "$TMP/$n.err" "$TMP/$n.out" | head -20
  sed 's/^/  fake| /' "$TMP/$n.fake" | head -5
  kill "$fake" 2>/dev/null
  tt_reap "$fake" >/dev/null
  return 1
}

for j in "" --json; do
  case_ hosts-total 1 "contradicts itself: 3 other hosts listed, but hosts_total says 1; refused" $j
  case_ many-hosts 1 "contradicts itself: 1000 other hosts listed; thothd lists at most 256" $j
  case_ sum 1 "contradicts itself: the 2 hosts listed hold 10 instances, but remote_instances says 3" $j
  case_ ages 1 "contradicts itself: host host-000001 last seen 5124095 h 34 min ago, but thothd is up 1.0 s" $j
  case_ events 1 "contradicts itself: 65 lifecycle events listed, but thothd keeps 64" $j
  case_ huge-list 1 "decodes to more than the 256 KiB thothctl takes for it" $j
  case_ wrong-id 1 "sent 1 answer to no call of this connection (another request id) and none to this one within 5 s" $j
  case_ wrong-method 1 "is not an answer to this call (another method or interface): refused" $j
  case_ truncated 1 "was cut short: the connection closed after 64 bytes of its " $j
  case_ huge-frame 1 "announces a body of 4294967288 bytes, more than a message may hold (268435456): refused unread" $j
  case_ garbage 1 "sent no thoth message (bad magic): is it thothd?" $j
  case_ bad-utf8 1 "is malformed (string is not valid UTF-8): refused" $j
done
# services: a list whose "more" never ends with the same page was asked
# for again and again, its rows printed forever (a hang, the output
# unbounded): refused at the second page.
CMD=services
case_ list-loop 1 "says there is more, but its page does not end past the one before (its last instance: 'beta'): refused"
case_ list-loop 1 "says there is more, but its page does not end past the one before" --json
CMD=status
# Stalled mid-answer: thothctl's own timeout (5 s) ends it, said as such.
case_ stall 1 "stopped after 64 bytes of its "

# Every string a peer chose: escaped on the terminal, no line forged ...
if case_ strings 0 ""; then
  out=$TMP/$n.out
  grep -q '^forged line' "$out" && fail "strings: a newline in a peer's string forged a line"
  grep -q $'\xe2\x80\xae' "$out" && fail "strings: a raw bidi override reached the terminal"
  grep -qF 'federation      host me\x1b[31mred\x0aforged line\x0dback\x7f' "$out" ||
    fail "strings: the host id is not shown escaped: $(grep federation "$out")"
  grep -qF 'host \u{202e}b-reversed' "$out" || fail "strings: the bidi host id is not shown escaped"
  grep -qF 'etcd http://etcd\x1b[31mred' "$out" || fail "strings: the etcd URL is not shown escaped"
fi
# ... and exact in --json (every byte back, as JSON escapes).
if case_ strings 0 "" --json; then
  if [ -n "$TT_PYTHON3" ]; then
    "$TT_PYTHON3" - "$TMP/$n.out" <<'EOF' || fail "strings --json: not the strings thothd sent"
import json, sys
ugly = "\x1b[31mred\nforged line\rback\x7f\x9b2J\u202edesrever\u2066\u200b"
d = json.load(open(sys.argv[1]))
f = d["federation"]
assert f["host_id"] == "me" + ugly, f["host_id"]
assert f["etcd"] == "http://etcd" + ugly + ":2379", f["etcd"]
assert f["hosts"][0]["id"] == "a" + ugly, f["hosts"][0]
assert d["version"] == "0.47" + ugly and d["runtime_dir"] == "/run/" + ugly
assert d["events"][0]["service"] == "svc" + ugly
EOF
  fi
fi

[ "$failures" = 0 ] || tt_fail "$failures of $n cases"
echo "PASS: $n cases"
