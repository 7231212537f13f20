#!/usr/bin/env bash
# tests/thothd/test_thothctl_status_watch_events.sh BUILD_DIR
#
# hist46: `thothctl status --watch` showed no lifecycle events.  With a real
# thothd, a watch started (text, and --json), then a client registered,
# killed (-9) and registered again, then withdrawn cleanly:
#   - the watch shows each event once, as it comes, with its number (seq:
#     its place in thothd's history), in order: registered, lost,
#     reregistered, deregistered; never the history from before it began
#     (thothd's "started", an earlier registration);
#   - --json: one object per event with "seq" and the status --json event
#     members, the status lines unchanged between them;
#   - 400 events in a burst (more than the 64 kept): each shown once or
#     counted in {"events_unseen":N}.
set -uo pipefail
. "$(dirname "$0")/../common/thoth_test.sh"
tt_init "$1"
HELPER=$1/tests/thothd/thothd_test_service
[ -x "$HELPER" ] || tt_fail "no $HELPER"
PY=$TT_PYTHON3
[ -n "$PY" ] || tt_skip "python3 is needed to read the JSON"
tt_mkdir RT watchev

tt_start_thothd "$RT"
# An instance from before the watch: its registration is history.
tt_spawn "$HELPER" --raw "$RT" before 60000 >"$RT/before.out"; before=$TT_PID
tt_until 30 "the instance from before the watch registered" grep -q '^registered$' "$RT/before.out"

tt_spawn "$THOTHCTL" --runtime-dir "$RT" status --watch 50 >"$RT/watch.txt" 2>"$RT/watch.err"; wtext=$TT_PID
tt_spawn "$THOTHCTL" --runtime-dir "$RT" --json status --watch 50 >"$RT/watch.json" 2>"$RT/watch.jerr"; wjson=$TT_PID
# Both have begun (a status line each) before anything happens.
tt_until 30 "the text watch's first line" grep -q '^thothd pid ' "$RT/watch.txt"
tt_until 30 "the JSON watch's first line" grep -q '"source":"table"' "$RT/watch.json"

tt_spawn "$HELPER" --raw "$RT" alpha 60000 >"$RT/a1.out"; a1=$TT_PID
tt_until 30 "alpha registered" grep -q '^registered$' "$RT/a1.out"
kill -KILL "$a1"; tt_reap "$a1"
tt_until 30 "alpha (pid $a1) dropped" eval '! "$THOTHCTL" --runtime-dir "$RT" resolve alpha >/dev/null 2>&1'
tt_spawn "$HELPER" --raw "$RT" alpha 60000 >"$RT/a2.out"; a2=$TT_PID
tt_until 30 "alpha registered again" grep -q '^registered$' "$RT/a2.out"
kill -TERM "$before"; tt_reap "$before" || true          # its connection closed: lost too

tt_until --show "$RT/watch.txt" 30 "the text watch's events" \
  eval '[ "$(grep -c "^  event " "$RT/watch.txt")" -ge 4 ]'
tt_until --show "$RT/watch.json" 30 "the JSON watch's events" \
  eval '[ "$(grep -c "^{\"seq\":" "$RT/watch.json")" -ge 4 ]'
sleep 0.3       # a few more status lines: no event shown twice
kill -TERM "$wtext" "$wjson"; tt_reap "$wtext"; tt_reap "$wjson"

grep -E '^  event ' "$RT/watch.txt" >"$RT/events.txt"
"$PY" - "$RT/events.txt" "$a1" "$a2" "$before" <<'PYEOF' || { cat "$RT/watch.txt" "$RT/watch.err"; tt_fail "status --watch's event lines are not the 4 events since it began, each once, in order"; }
import re, sys
a1, a2, before = sys.argv[2:5]
ev = []
for l in open(sys.argv[1]):
    m = re.match(r"^  event (\d+)  20[0-9-]+T[0-9:.]+Z  .* ago  (\S+) +(.*)$", l.rstrip("\n"))
    assert m, l
    ev.append((int(m.group(1)), m.group(2), m.group(3)))
seqs = [e[0] for e in ev]
assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), seqs          # each once, in order
assert seqs[0] == 2, seqs      # 0 started, 1 before's registration: history, not shown
kinds = [(e[1], e[2].split(" pid ")[0]) for e in ev]
assert kinds == [("registered", "alpha 1.0.0"), ("lost", "alpha 1.0.0"),
                 ("reregistered", "alpha 1.0.0"), ("lost", "before 1.0.0")], kinds
assert ev[0][2] == "alpha 1.0.0 pid " + a1, ev[0]
assert ev[1][2].startswith("alpha 1.0.0 pid %s: its connection closed while registered; process " % a1), ev[1]
assert re.match(r"alpha 1\.0\.0 pid %s, [0-9.]+ m?s after pid %s was lost$" % (a2, a1), ev[2][2]), ev[2]
PYEOF

"$PY" - "$RT/watch.json" "$a1" "$a2" <<'PYEOF' || { cat "$RT/watch.json" "$RT/watch.jerr"; tt_fail "status --watch --json's events are not the 4 events since it began, each once"; }
import json, sys
a1, a2 = int(sys.argv[2]), int(sys.argv[3])
lines = [json.loads(l) for l in open(sys.argv[1])]
ev = [l for l in lines if "seq" in l]
st = [l for l in lines if "seq" not in l]
assert all(l.get("source") == "table" for l in st) and len(st) >= 2, st
keys = {"seq", "kind", "at_unix_ns", "at_ns", "ago_ns", "service", "version", "lease", "pid", "pid_state",
        "gap_ns", "previous_pid", "predecessor_pid", "predecessor_started_unix_ns"}
assert all(set(e) == keys for e in ev), [sorted(e) for e in ev]
assert [e["seq"] for e in ev] == [2, 3, 4, 5], [e["seq"] for e in ev]
assert [(e["kind"], e["service"], e["pid"]) for e in ev[:3]] == [
    ("registered", "alpha", a1), ("lost", "alpha", a1), ("reregistered", "alpha", a2)], ev
assert ev[2]["previous_pid"] == a1 and ev[2]["gap_ns"] > 0, ev[2]
assert ev[3]["kind"] == "lost" and ev[3]["service"] == "before", ev[3]
PYEOF
[ ! -s "$RT/watch.err" ] || { cat "$RT/watch.err"; tt_fail "status --watch said something on stderr"; }

# More than the history holds between two looks (a client registering and
# withdrawing 200 times: 400 events, the history keeps 64): every one shown
# once or counted in events_unseen, never shown twice, in order.
tt_spawn "$THOTHCTL" --runtime-dir "$RT" --json status --watch 1000 >"$RT/flood.json" 2>"$RT/flood.jerr"; wflood=$TT_PID
tt_until 30 "the third watch's first line" grep -q '"source":"table"' "$RT/flood.json"
"$HELPER" --flood "$RT" flood 200 >"$RT/flood.out" || tt_fail "the flooding client failed: $(cat "$RT/flood.out")"
flood_accounted() {
  "$PY" - "$RT/flood.json" <<'PYEOF'
import json, sys
shown = unseen = 0
seqs = []
for l in open(sys.argv[1]):
    try:
        o = json.loads(l)
    except ValueError:
        continue                    # a line being written
    if "seq" in o:
        seqs.append(o["seq"])
    unseen += o.get("events_unseen", 0)
assert seqs == sorted(set(seqs)), seqs
print(len(seqs) + unseen, len(seqs), unseen)
PYEOF
}
tt_until --show "$RT/flood.json" 30 "400 events shown or counted unseen" \
  eval '[ "$(flood_accounted | cut -d" " -f1)" = 400 ]'
kill -TERM "$wflood"; tt_reap "$wflood"
read -r total shown unseen < <(flood_accounted)
[ "$shown" -ge 64 ] || tt_fail "400 events: only $shown shown ($unseen unseen): not even the last history's"
echo "PASS: status --watch showed events 2-5 once each, text and --json; of 400 in a burst $shown shown, $unseen counted unseen"
