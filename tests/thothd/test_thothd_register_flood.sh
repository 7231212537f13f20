#!/usr/bin/env bash
# tests/thothd/test_thothd_register_flood.sh BUILD_DIR
#
# hist46: a client registering and withdrawing in a loop wrote one
# "registered" line per turn, unthrottled (5,000 turns: 5,000 lines).  With
# a real thothd and a flooding client (thothd_test_service --flood):
#   - the "registered" lines are rate-limited: every registration is either
#     logged or counted as suppressed, exactly (lines + the counts the log
#     says == registrations), some are suppressed, and the count is said
#     when the burst ends ("registered: N similar lines suppressed since
#     the last one logged"), not at the next registration;
#   - /metrics' thoth_thothd_log_suppressed_total{line="registered"} is the
#     sum of those counts;
#   - a loss (kill -9 of a registered client) and an expiry during the
#     flood still have their lines ("lost NAME ...", "1 lease expired"):
#     the flood never takes them;
#   - a client holding 40 registrations killed: 40 losses, each logged or
#     counted, the count said when the burst ends ("lost: N similar lines
#     suppressed since the last one logged").
set -uo pipefail
. "$(dirname "$0")/../common/thoth_test.sh"
tt_init "$1"
HELPER=$1/tests/thothd/thothd_test_service
[ -x "$HELPER" ] || tt_fail "no $HELPER"
PY=$TT_PYTHON3
[ -n "$PY" ] || tt_skip "python3 is needed to read /metrics"
tt_mkdir RT regflood
LOG=$RT/thothd.log
N=5000

tt_start_thothd "$RT"
tt_spawn "$HELPER" --raw "$RT" goner 60000 >"$RT/goner.out"; goner=$TT_PID
tt_until 30 "the client to be lost registered" grep -q '^registered$' "$RT/goner.out"

flood_lines() { grep -c ' info: registered flood 1\.0\.0 ' "$LOG"; }
tt_spawn "$HELPER" --flood "$RT" flood "$N" >"$RT/flood.out"; flood=$TT_PID
# Once the bucket's burst (20) is spent: a loss and an expiry, the flood
# going on (or just over).
tt_until 60 "20 registered lines of the flood" eval '[ "$(flood_lines)" -ge 20 ]'
kill -KILL "$goner"; tt_reap "$goner"
tt_spawn "$HELPER" --raw "$RT" brief 200 >"$RT/brief.out"; brief=$TT_PID
tt_reap "$flood" || { cat "$RT/flood.out"; tt_fail "the flooding client failed"; }
grep -qx "flooded $N" "$RT/flood.out" || tt_fail "the flood did not finish: $(cat "$RT/flood.out")"
tt_until --show "$LOG" 30 "thothd's line for the loss of goner (pid $goner)" \
  grep -qE " info: lost goner 1\.0\.0 \(pid $goner, lease [0-9a-f]{16}\): its connection closed while registered$" "$LOG"
tt_until --show "$LOG" 30 "thothd's line for brief's expired lease" grep -qE ' info: 1 lease expired ' "$LOG"

# Every registration (goner, N of flood, brief) logged or counted, once
# the last burst's count is said (1 s after its first suppressed line).
accounted() {
  "$PY" - "$LOG" <<'PYEOF'
import re, sys
lines = logged = said = 0
for l in open(sys.argv[1], errors="replace"):
    m = re.search(r" info: registered (\S+) ", l)
    if m:
        logged += 1
        s = re.search(r" \((\d+) similar lines? suppressed\)$", l)
        said += int(s.group(1)) if s else 0
    s = re.search(r" info: registered: (\d+) similar lines? suppressed since the last one logged$", l)
    if s:
        said += int(s.group(1))
print(logged, said)
PYEOF
}
want=$((N + 2))
tt_until --show "$LOG" 30 "$want registrations logged or said suppressed ($(accounted))" \
  eval '[ $(accounted | awk "{print \$1 + \$2}") -eq $want ]'
read -r logged said < <(accounted)
[ "$said" -gt 0 ] && [ "$logged" -lt $((N / 2)) ] ||
  tt_fail "$N registrations in a loop: $logged lines logged, $said said suppressed (no rate limit)"
grep -qE ' info: registered: [0-9]+ similar lines? suppressed since the last one logged$' "$LOG" ||
  tt_fail "the end of the burst is not said"

url=$("$THOTHCTL" --runtime-dir "$RT" --json status | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["dashboard_url"] or "")')
[ -n "$url" ] || tt_fail "thothctl status names no dashboard URL"
"$PY" - "$url" "$said" <<'PYEOF' || tt_fail "/metrics does not count the suppressed registered lines ($said)"
import sys, urllib.request
m = urllib.request.urlopen(sys.argv[1] + "metrics", timeout=30).read().decode()
v = {l.split(" ")[0]: float(l.split(" ")[1]) for l in m.splitlines() if l.startswith("thoth_thothd_log_")}
assert v['thoth_thothd_log_suppressed_total{line="registered"}'] == int(sys.argv[2]), v
assert v['thoth_thothd_log_suppressed_total{line="lost"}'] == 0, v
PYEOF
kill -TERM "$brief"; tt_reap "$brief" || true

# 40 losses at once (a client holding 40 registrations killed) on the lost
# bucket: with goner's, 41 lost lines logged or counted (brief's lease had expired).
tt_spawn "$HELPER" --hold "$RT" many 40 >"$RT/many.out"; many=$TT_PID
tt_until 30 "40 registrations held" grep -q '^registered$' "$RT/many.out"
# Their registered lines all said first (the flush timer has fired): only
# the losses can arm it again.
want=$((N + 2 + 40))
tt_until --show "$LOG" 30 "$want registrations logged or said suppressed ($(accounted))" \
  eval '[ $(accounted | awk "{print \$1 + \$2}") -eq $want ]'
kill -KILL "$many"; tt_reap "$many"
lost_accounted() {
  "$PY" - "$LOG" <<'PYEOF'
import re, sys
logged = said = 0
for l in open(sys.argv[1], errors="replace"):
    if re.search(r" info: lost \S+ 1\.0\.0 \(pid \d+, lease [0-9a-f]{16}\): its connection closed while registered", l):
        logged += 1
        s = re.search(r" \((\d+) similar lines? suppressed\)$", l)
        said += int(s.group(1)) if s else 0
    s = re.search(r" info: lost: (\d+) similar lines? suppressed since the last one logged$", l)
    if s:
        said += int(s.group(1))
print(logged, said)
PYEOF
}
tt_until --show "$LOG" 30 "41 losses logged or said suppressed ($(lost_accounted))" \
  eval '[ $(lost_accounted | awk "{print \$1 + \$2}") -eq 41 ]'
read -r lost_logged lost_said < <(lost_accounted)
[ "$lost_said" -gt 0 ] || tt_fail "40 losses at once: $lost_logged lines logged, none suppressed"
# thothd stopping (SIGTERM) with registrations held: the services live on,
# none is lost, and no "lost" line says otherwise (each was logged before).
tt_spawn "$HELPER" --hold "$RT" stays 3 >"$RT/stays.out"; stays=$TT_PID
tt_until 30 "3 registrations held" grep -q '^registered$' "$RT/stays.out"
kill -TERM "$THOTHD_PID"; tt_reap "$THOTHD_PID" || tt_fail "thothd did not stop cleanly on SIGTERM"
grep -q ' info: stopped$' "$LOG" || tt_fail "thothd's log does not end with its stop"
! grep -E ' info: lost stays-' "$LOG" || tt_fail "thothd stopping logged its clients' registrations as lost"
echo "PASS: $N registrations: $logged lines, $said said suppressed; the loss and the expiry logged;" \
     "41 losses: $lost_logged lines, $lost_said said suppressed"
