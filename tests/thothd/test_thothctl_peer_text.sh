#!/bin/bash
# test_thothctl_peer_text.sh THOTHD THOTHCTL SERVICE_HELPER
# A hostile peer's text through thothctl's tables, live (OBS-3;
# tools/thothctl/text.c; docs/THOTHD.md "A peer's text").  Of what a
# registrant sends, thothd holds the name, the version and the claims to
# strict alphabets and refuses a control byte (C0, DEL) in an endpoint
# address; any other byte reaches `thothctl services`, `resolve` and
# `topology`: here a bidi override (U+202E, the "Trojan source" RLO), a
# zero-width space, the four characters "\x1b" (which read as an escaped
# ESC while a backslash was printed as it is), CJK wide characters, a
# combining mark and U+009B (CSI to xterm).  Each command must show them
# escaped -- \u{202e}, \u{200b}, \\x1b, \xc2\x9b -- and its table must line
# up in terminal columns (the CJK characters are 2 columns each, the mark
# 0: padded by bytes, the rows after the address were shifted).  A
# registration with ESC in its address or its name is refused, and the
# refusal thothd logs and answers holds no raw ESC either.
set -u
. "$(dirname "$0")/../common/thoth_test.sh"
THOTHD=$1 THOTHCTL=$2 HELPER=$3
tt_init
tt_mkdir RT ctl-peer-text
export THOTH_RUNTIME_DIR=$RT
show_logs() { for f in "$RT"/*.log; do echo "--- $f"; tail -30 "$f" | cat -v; done; }
fail() { echo "FAIL: $*" | cat -v; show_logs; exit 1; }
[ -n "$TT_PYTHON3" ] || tt_skip "needs python3 (the column count)"

# RLO, "abc", ZWSP, the four characters \x1b, 漢字, e + U+0301, U+009B
ADDR=$'/s/\xe2\x80\xaeabc\xe2\x80\x8b\\x1b\xe6\xbc\xa2\xe5\xad\x97e\xcc\x81\xc2\x9bz'
SHOWN='/s/\u{202e}abc\u{200b}\\x1b'$'\xe6\xbc\xa2\xe5\xad\x97e\xcc\x81''\xc2\x9bz'

# Whether FILE holds a byte a peer may not put on the terminal raw: C0
# but newline, DEL, U+009B as UTF-8, RLO, ZWSP.
raw() { LC_ALL=C grep -qaP '[\x00-\x09\x0b-\x1f\x7f]|\xc2\x9b|\xe2\x80\xae|\xe2\x80\x8b' "$1"; }

# Every line of FILE has its column named by the header WORD at the same
# terminal column (East Asian wide 2, combining 0: Python's unicodedata, not
# thothctl's table).
aligned() {
	"$TT_PYTHON3" - "$1" "$2" <<'PY'
import sys, unicodedata
def cols(s):
    return sum(0 if unicodedata.combining(c) else 2 if unicodedata.east_asian_width(c) in "WF" else 1
               for c in s)
lines = open(sys.argv[1], encoding="utf-8").read().splitlines()
head = lines[0]
at = cols(head[:head.index(sys.argv[2])])
bad = []
for l in lines[1:]:
    # the row's characters up to that terminal column: a cell must begin there
    c, i = 0, 0
    while i < len(l) and c < at:
        c += cols(l[i])
        i += 1
    if c != at or (i < len(l) and l[i] == " ") or (i > 0 and l[i - 1] != " "):
        bad.append(l)
if bad:
    print("column %s (terminal column %d) not lined up in:\n%s" % (sys.argv[2], at, "\n".join(bad)))
    sys.exit(1)
PY
}

# Every line of FILE (a table of fixed-width columns) is as many terminal
# columns wide as its header.
same_width() {
	"$TT_PYTHON3" - "$1" <<'PY'
import sys, unicodedata
def cols(s):
    return sum(0 if unicodedata.combining(c) else 2 if unicodedata.east_asian_width(c) in "WF" else 1
               for c in s)
lines = open(sys.argv[1], encoding="utf-8").read().splitlines()
bad = [l for l in lines if cols(l) != cols(lines[0])]
if bad:
    print("not %d columns wide:\n%s" % (cols(lines[0]), "\n".join(bad)))
    sys.exit(1)
PY
}

tt_start_thothd "$RT"

# refused: ESC in the address, ESC in the name
"$HELPER" --raw "$RT" esc 30000 $'/s/x\e[31mred' >"$RT/esc.out" 2>"$RT/esc.err" &&
	fail "an address holding ESC was taken"
grep -q 'control byte 0x1b at offset 4' "$RT/esc.err" || fail "the refusal does not name the byte: $(cat "$RT/esc.err")"
"$HELPER" --raw "$RT" $'bad\e[31mname' 30000 /s/ok >"$RT/name.out" 2>"$RT/name.err" &&
	fail "a name holding ESC was taken"
grep -qF 'bad name "bad\x1b[31mname"' "$RT/name.err" || fail "the name refusal: $(cat "$RT/name.err")"
for f in esc.err name.err thothd.log; do raw "$RT/$f" && fail "$f holds a raw control: $(cat -v "$RT/$f")"; done
grep -qF 'register refused: bad name "bad\x1b[31mname"' "$RT/thothd.log" ||
	fail "thothd did not log the refused name escaped"

# taken: the hostile address, and a plain instance for the table to line up with
tt_spawn "$HELPER" --raw "$RT" hostile 0 "$ADDR" >"$RT/hostile.out" 2>"$RT/hostile.log"
tt_wait_registered "$RT" hostile
tt_spawn "$HELPER" --raw "$RT" plain 0 /s/plain >"$RT/plain.out" 2>"$RT/plain.log"
tt_wait_registered "$RT" plain

"$THOTHCTL" services >"$RT/services.txt" 2>&1 || fail "services: $(cat "$RT/services.txt")"
"$THOTHCTL" resolve hostile >"$RT/resolve.txt" 2>&1 || fail "resolve: $(cat "$RT/resolve.txt")"
for f in services.txt resolve.txt; do
	raw "$RT/$f" && fail "$f holds a peer's control raw: $(cat -v "$RT/$f")"
	grep -qF -- "$SHOWN" "$RT/$f" || fail "$f does not show the address as $SHOWN: $(cat "$RT/$f")"
	for col in WHERE LEASE EXPIRES; do
		aligned "$RT/$f" "$col" || fail "$f: its table does not line up ($col): $(cat "$RT/$f")"
	done
done
[ "$(grep -c . "$RT/services.txt")" = 3 ] || fail "services: not a header and two rows: $(cat "$RT/services.txt")"
# thothd's own log line for it, by the same rule and code (hist46: the RLO
# and ZWSP were logged raw, and the line read reversed)
raw "$RT/thothd.log" && fail "thothd.log holds the address's bidi/invisible characters raw: $(cat -v "$RT/thothd.log")"
grep -qF -- "registered hostile 1.0.0 at $SHOWN " "$RT/thothd.log" ||
	fail "thothd did not log the address as thothctl shows it ($SHOWN)"

# --json: the exact bytes, valid JSON
"$THOTHCTL" --json resolve hostile >"$RT/resolve.json" || fail "resolve --json"
"$TT_PYTHON3" -c 'import json,sys; e=json.load(open(sys.argv[1]))["endpoint"]; sys.exit(e.encode() != sys.argv[2].encode("utf-8","surrogateescape"))' \
	"$RT/resolve.json" "$ADDR" || fail "resolve --json does not hold the address as sent: $(cat "$RT/resolve.json")"

# topology NAME: the address picked per node, from the shared resolve table
if "$THOTHCTL" topology hostile >"$RT/topology.txt" 2>"$RT/topology.err"; then
	raw "$RT/topology.txt" && fail "topology holds a peer's control raw: $(cat -v "$RT/topology.txt")"
	grep -qF -- "$SHOWN" "$RT/topology.txt" || fail "topology does not show the address: $(cat "$RT/topology.txt")"
	sed -n '/^NODE /,$p' "$RT/topology.txt" >"$RT/topology.table"
	aligned "$RT/topology.table" ON || fail "topology's table does not line up: $(cat "$RT/topology.table")"
else
	# only a machine whose topology cannot be read is let off (exit 1
	# from thoth_topo_load); a crash, or the hostile instance not placed,
	# is this test's failure
	rc=$?
	[ "$rc" = 1 ] && ! grep -q 'cannot place\|no live instance' "$RT/topology.err" ||
		fail "topology hostile: exit $rc: $(cat "$RT/topology.err")"
	echo "topology not checked (no topology here): $(cat "$RT/topology.err")"
fi
# sched: a process's name is its own choice (its comm, which any process
# sets) and reaches the trace JSON-escaped: thothctl sched read the escapes
# as text ("\u001b" shown, "\\" doubled by the writer); now undone, the
# name shown escaped and cut at 20 columns between characters and escapes.
# (A trace as thothd writes it, not a live session: the path from the
# trace file on is the same.)
cat >"$RT/trace.json" <<'TRACE'
{"displayTimeUnit":"ns","traceEvents":[,
{"ph":"M","name":"process_name","pid":100,"tid":0,"args":{"name":"h\u001b[31m\u202e\\x1b\"q"}},
{"ph":"M","name":"process_name","pid":200,"tid":0,"args":{"name":"漢字漢字漢字漢字漢字漢字"}},
{"ph":"M","name":"process_name","pid":300,"tid":0,"args":{"name":"e\u0301t\u00e9"}},
{"ph":"M","name":"process_name","pid":400,"tid":0,"args":{"name":"n\u0000x\u-001\u0x1fy"}},
{"ph":"i","ts":1000000.000,"pid":100,"tid":100,"s":"t","name":"loop_wakeup","cat":"LOOP","args":{"arg0":2,"arg1":1}},
{"ph":"i","ts":1000000.050,"pid":200,"tid":200,"s":"t","name":"loop_wakeup","cat":"LOOP","args":{"arg0":2,"arg1":1}},
{"ph":"i","ts":1000000.090,"pid":300,"tid":300,"s":"t","name":"loop_wakeup","cat":"LOOP","args":{"arg0":2,"arg1":1}},
{"ph":"i","ts":1000000.095,"pid":400,"tid":400,"s":"t","name":"loop_wakeup","cat":"LOOP","args":{"arg0":2,"arg1":1}},
{"ph":"i","ts":1001000.000,"pid":300,"tid":300,"s":"t","name":"loop_wakeup","cat":"LOOP","args":{"arg0":2,"arg1":1}}
]}
TRACE
"$THOTHCTL" sched --from "$RT/trace.json" >"$RT/sched.txt" 2>&1 || fail "sched --from: $(cat "$RT/sched.txt")"
raw "$RT/sched.txt" && fail "sched holds a peer's control raw: $(cat -v "$RT/sched.txt")"
grep -qF -- '100      h\x1b[31m\u{202e}\\x   ' "$RT/sched.txt" ||
	fail "sched does not show pid 100's name escaped, cut at 20 columns: $(cat "$RT/sched.txt")"
grep -qF -- $'200      \xe6\xbc\xa2\xe5\xad\x97\xe6\xbc\xa2\xe5\xad\x97\xe6\xbc\xa2\xe5\xad\x97\xe6\xbc\xa2\xe5\xad\x97\xe6\xbc\xa2\xe5\xad\x97 ' "$RT/sched.txt" ||
	fail "sched does not cut pid 200's CJK name at 20 columns: $(cat "$RT/sched.txt")"
# a hostile trace: U+0000 (would end the name, hiding "x..."), "\u-001"
# and "\u0x1f" (sscanf's %4x took a sign and "0x": U+FFFFFFFF, ESC-like
# U+001F) are not four hex digits, left as text
grep -qF -- $'400      n\xef\xbf\xbdxu-001u0x1fy ' "$RT/sched.txt" ||
	fail "sched does not show pid 400's \\u0000 and malformed escapes as text: $(cat "$RT/sched.txt")"
sed -n '1,/^400 /p' "$RT/sched.txt" >"$RT/sched.table"
same_width "$RT/sched.table" || fail "sched's table does not line up: $(cat "$RT/sched.table")"
echo "PASS"
