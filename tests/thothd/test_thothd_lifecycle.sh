#!/usr/bin/env bash
# tests/thothd/test_thothd_lifecycle.sh BUILD_DIR
#
# OBS-3: which process died, when, and what came back, from `thothctl
# status` and the dashboard, not only from thothd's log (stop 44's crash
# drill, docs/OPERATIONS.md).  With a real thothd and echo services:
#   - kill -9 an echo and start another: the status (text and --json),
#     /lifecycle.json and /metrics show it registered, lost (its process
#     exited, judged by a pidfd) and re-registered with the new pid and the
#     gap;
#   - kill -9 thothd and start it again: its "started" event names the
#     predecessor (pid and start time) it found dead;
#   - echo lost and back 40 times: the history holds its bound (64)
#     and counts what it dropped;
#   - a SIGSTOPped echo: thothctl services says it is stopped (text and
#     --json), and it still resolves.
set -uo pipefail
. "$(dirname "$0")/../common/thoth_test.sh"
tt_init "$1"
ECHO=$1/services/echo
[ -x "$ECHO" ] || tt_fail "no echo service in $1/services"
PY=$TT_PYTHON3
[ -n "$PY" ] || tt_skip "python3 is needed to read the JSON"
tt_mkdir RT lifecycle

ctl() { "$THOTHCTL" --runtime-dir "$RT" "$@"; }
# jq-like: EXPR (Python) on the status's JSON, bound to s.
status_py() { ctl --json status | "$PY" -c "import json,sys; s=json.load(sys.stdin); $1"; }

tt_start_thothd "$RT"; first=$THOTHD_PID
tt_start_service "$RT" echo "$ECHO" --runtime-dir "$RT"; e1=$TT_PID
kill -KILL "$e1"; tt_reap "$e1"
tt_start_service "$RT" echo "$ECHO" --runtime-dir "$RT"; e2=$TT_PID

ctl --json status >"$RT/status.json" || tt_fail "thothctl --json status failed"
"$PY" - "$RT/status.json" "$first" "$e1" "$e2" <<'EOF' || { cat "$RT/status.json"; tt_fail "the status's events do not say that echo (pid $e1) was lost and came back as pid $e2"; }
import json, sys
s = json.load(open(sys.argv[1]))
thothd, e1, e2 = (int(a) for a in sys.argv[2:5])
ev = s["events"]
assert s["events_capacity"] == 64 and s["events_dropped"] == 0, (s["events_capacity"], s["events_dropped"])
keys = {"kind", "at_unix_ns", "at_ns", "ago_ns", "service", "version", "lease", "pid", "pid_state",
        "gap_ns", "previous_pid", "predecessor_pid", "predecessor_started_unix_ns"}
assert all(set(e) == keys for e in ev), [sorted(e) for e in ev]
kinds = [(e["kind"], e["service"], e["pid"]) for e in ev]
assert kinds == [("started", "", thothd), ("registered", "echo", e1), ("lost", "echo", e1),
                 ("reregistered", "echo", e2)], kinds
lost, back = ev[2], ev[3]
assert lost["pid_state"] == "exited", lost
assert back["previous_pid"] == e1 and back["gap_ns"] > 0, back
assert back["gap_ns"] == back["at_ns"] - lost["at_ns"], (back, lost)
assert ev[0]["predecessor_pid"] == 0, ev[0]
assert all(ev[i]["at_ns"] <= ev[i + 1]["at_ns"] for i in range(3)), "not oldest first"
assert all(e["at_unix_ns"] > 1.6e18 for e in ev), "no wall-clock time"
EOF

ctl status >"$RT/status.txt" || tt_fail "thothctl status failed"
grep -qE "^  recent events   4, newest last \(thothd keeps the last 64\)$" "$RT/status.txt" &&
  grep -qE "^    20[0-9-]+T[0-9:.]+Z  .* ago  lost         echo 1\.0\.0 pid $e1: its connection closed while registered; process exited$" "$RT/status.txt" &&
  grep -qE "^    20[0-9-]+T[0-9:.]+Z  .* ago  reregistered echo 1\.0\.0 pid $e2, [0-9.]+ m?s after pid $e1 was lost$" "$RT/status.txt" &&
  [ "$(tail -n 1 "$RT/status.txt" | grep -c reregistered)" = 1 ] ||
  { cat "$RT/status.txt"; tt_fail "thothctl status's recent events do not show echo lost (pid $e1) and back (pid $e2), newest last"; }

# The dashboard: the same events, and the loss counted by service.
url=$(status_py 'print(s["dashboard_url"] or "")')
[ -n "$url" ] || tt_fail "no dashboard_url in the status"
"$PY" - "$url" "$e1" "$e2" <<'EOF' || tt_fail "the dashboard's /lifecycle.json or /metrics does not show echo lost and back"
import json, sys, urllib.request
url, e1, e2 = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
doc = json.load(urllib.request.urlopen(url + "lifecycle.json", timeout=30))
kinds = [(e["kind"], e["pid"]) for e in doc["events"]]
assert kinds[1:] == [("registered", e1), ("lost", e1), ("reregistered", e2)], kinds
assert doc["capacity"] == 64 and doc["dropped"] == 0, doc
m = urllib.request.urlopen(url + "metrics", timeout=30).read().decode()
assert 'thoth_thothd_service_lost_total{service="echo"} 1\n' in m, [l for l in m.splitlines() if "lost_total" in l]
EOF

# thothd killed and started again: its start names the dead one.
kill -KILL "$first"; tt_reap "$first"
tt_start_thothd "$RT"; second=$THOTHD_PID
status_py "
e = s['events'][0]
assert (e['kind'], e['pid'], e['predecessor_pid']) == ('started', $second, $first), e
assert e['predecessor_started_unix_ns'] > 1.6e18 and e['predecessor_started_unix_ns'] <= e['at_unix_ns'], e
" || { ctl --json status; tt_fail "the restarted thothd's status does not name the killed one (pid $first)"; }
ctl status >"$RT/status.txt" || tt_fail "thothctl status failed"
grep -qE "  started      thothd pid $second, replacing pid $first \(started 20[0-9-]+T[0-9:.]+Z\), which did not stop cleanly \(killed or crashed\)$" "$RT/status.txt" ||
  { cat "$RT/status.txt"; tt_fail "thothctl status does not say that thothd pid $second replaced pid $first"; }
tt_wait_registered "$RT" echo

# Lost and back, again and again: the history keeps its last 64 and counts
# the rest, however many come.  Each echo registers while no other is
# registered and is lost before the next starts: two events each.
gone() { status_py "assert s['registrations'] == 0, s['registrations']" 2>/dev/null; }
kill -KILL "$e2"; tt_reap "$e2"
tt_until 30 "echo (pid $e2) dropped" gone
for i in $(seq 40); do
  tt_start_service "$RT" echo "$ECHO" --runtime-dir "$RT"; p=$TT_PID
  kill -KILL "$p"; tt_reap "$p"
  tt_until 30 "echo (pid $p) dropped" gone
done
# started, echo (pid $e2) registered and lost, 40 x (registered, lost): 83.
status_py "
assert len(s['events']) == 64 and s['events_capacity'] == 64, (len(s['events']), s['events_capacity'])
assert s['events_dropped'] == 83 - 64, s['events_dropped']
assert s['events'][-1]['kind'] == 'lost' and s['events'][-2]['kind'] == 'reregistered', s['events'][-2:]
" || { ctl --json status; tt_fail "41 losses: the history is not bounded at 64 with its 19 drops counted"; }
ctl status >"$RT/status.txt" || tt_fail "thothctl status failed"
grep -qE "^  recent events   64, newest last \(thothd keeps the last 64; 19 older dropped\)$" "$RT/status.txt" ||
  { cat "$RT/status.txt"; tt_fail "thothctl status does not say how many events were dropped"; }
url=$(status_py 'print(s["dashboard_url"] or "")')
"$PY" - "$url" <<'EOF' || tt_fail "/metrics does not count the drops and the 41 losses of echo"
import sys, urllib.request
m = urllib.request.urlopen(sys.argv[1] + "metrics", timeout=30).read().decode()
v = {l.split(" ")[0]: float(l.split(" ")[1]) for l in m.splitlines() if l.startswith("thoth_thothd_")}
assert v['thoth_thothd_service_lost_total{service="echo"}'] == 41, v
assert v["thoth_thothd_lifecycle_events_total"] - v["thoth_thothd_lifecycle_events_dropped_total"] == 64, v
EOF

# A SIGSTOPped service stays registered (its connection is open) and looks
# alive to thothd: thothctl services says it is stopped, display only.
tt_start_service "$RT" echo "$ECHO" --runtime-dir "$RT"; p=$TT_PID
ctl services echo >"$RT/services.txt" || tt_fail "thothctl services failed"
! grep -q stopped "$RT/services.txt" || { cat "$RT/services.txt"; tt_fail "a running echo said to be stopped"; }
kill -STOP "$p"
ctl services echo >"$RT/services.txt" || tt_fail "thothctl services failed"
grep -qE "^echo .* $p  [0-9a-f]{16}  never  \(stopped: SIGSTOP or a debugger; still registered\)$" "$RT/services.txt" ||
  { cat "$RT/services.txt"; kill -CONT "$p"; tt_fail "thothctl services does not say that echo (pid $p) is stopped"; }
ctl --json services echo | "$PY" -c "
import json, sys
v = [json.loads(l) for l in sys.stdin]
assert [(o['pid'], o.get('stopped')) for o in v] == [($p, True)], v
" || { kill -CONT "$p"; tt_fail "thothctl --json services does not say that echo (pid $p) is stopped"; }
ctl resolve echo >/dev/null || { kill -CONT "$p"; tt_fail "a stopped echo no longer resolves (display only)"; }
kill -CONT "$p"
ctl services echo >"$RT/services.txt" || tt_fail "thothctl services failed"
! grep -q stopped "$RT/services.txt" || { cat "$RT/services.txt"; tt_fail "echo (pid $p) still said stopped after SIGCONT"; }
echo PASS
