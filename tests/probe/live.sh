#!/bin/bash
# test_probe_live: probes attached to a running process through thothd,
# without restarting it: thothctl probe attach / list / maps / detach, a
# rejected object refused with the verifier's reason, a missing target.
set -u
THOTHD=$1 THOTHCTL=$2 TARGET=$3 CORPUS=$4 ECHO=${5:-} ECHO_CLIENT=${6:-}
# The python3 CMake found (THOTH_PYTHON3_EXE, tests/CMakeLists.txt): not a
# version manager's shim, which costs ~0.7 s of CPU per start.
PYTHON3=${THOTH_PYTHON3:-python3}
. "$(dirname "$0")/../common/thoth_test.sh"
tt_init
fail() { echo "FAIL: $*"; [ -f "$RT/thothd.log" ] && tail -20 "$RT/thothd.log"; exit 1; }
tt_mkdir RT probe
ctl() { "$THOTHCTL" --runtime-dir "$RT" "$@"; }
tt_start_thothd "$RT"

tt_spawn "$TARGET" "$RT" >"$RT/target.out" 2>"$RT/target.err"
TPID=$TT_PID
for _ in $(seq 1 500); do grep -q ready "$RT/target.out" 2>/dev/null && break; sleep 0.01; done
grep -q ready "$RT/target.out" || fail "target not ready"

# The target's buffer reaches thothd asynchronously (a oneway attach): retry
# while thothd does not know the pid yet (a condition with a deadline).
for _ in $(seq 1 250); do
  out=$(ctl probe attach "$CORPUS/a02_hash_sum.o" --pid "$TPID" 2>&1) && break
  case $out in *"no traced process"*) sleep 0.02 ;; *) fail "attach: $out" ;; esac
done
echo "$out"
case $out in *"probe 1: thoth/msg_send in pid $TPID: running"*) ;; *) fail "attach: $out" ;; esac

# The hash map fills while the target runs: @bytes[7] grows by 2000 an event.
val=0
for _ in $(seq 1 250); do
  json=$(ctl --json probe maps 1) || fail "maps: $json"
  val=$(echo "$json" | "$PYTHON3" -c 'import json,sys; d=json.load(sys.stdin); e=[x for x in d["maps"][0]["entries"] if x["key"]==7]; print(e[0]["value"] if e else 0)')
  [ "$val" -gt 20000 ] && break
  sleep 0.02
done
[ "$val" -gt 20000 ] || fail "bytes[7] = $val"
[ $((val % 2000)) -eq 0 ] || fail "bytes[7] = $val, not a multiple of 2000"
ctl probe maps 1 | grep -q "^bytes (hash" || fail "text maps: $(ctl probe maps 1)"
ctl probe list | grep -q "^1 .*$TPID .*thoth/msg_send .*running" || fail "list: $(ctl probe list)"

# Rejected: the verifier's message, exit 1; no target: exit 1 with why.
out=$(ctl probe attach "$CORPUS/r01_null_deref.o" --pid "$TPID" 2>&1) && fail "rejected object attached"
case $out in *"dereference without a NULL check"*) ;; *) fail "reject reason: $out" ;; esac
out=$(ctl probe attach "$CORPUS/a01_count.o" --pid 999999 2>&1) && fail "attached to no process"
case $out in *"no traced process with pid 999999"*) ;; *) fail "no target: $out" ;; esac

# A second object beside the first, then detach the first: the second runs on.
out=$(ctl probe attach "$CORPUS/a01_count.o" --pid "$TPID") || fail "second attach: $out"
ctl probe detach 1 >/dev/null || fail "detach"
for _ in $(seq 1 250); do
  ctl probe list | grep -q "^1 .*detached" && break
  sleep 0.02
done
ctl probe list | grep -q "^1 .*detached" || fail "not detached: $(ctl probe list)"
ctl probe list | grep -q "^2 .*running" || fail "second not running: $(ctl probe list)"
# An id thothd does not have: named, and where the ids are (it said "no
# probe with that id").
out=$(ctl probe detach 99 2>&1) && fail "detached probe 99, which is not there"
case $out in *"probe detach 99: no probe 99 (\`thothctl probe list\`"*) ;; *) fail "detach 99: $out" ;; esac
c1=$(ctl --json probe maps 2 | "$PYTHON3" -c 'import json,sys; print(json.load(sys.stdin)["maps"][0]["entries"][0]["value"])')
for _ in $(seq 1 250); do
  c2=$(ctl --json probe maps 2 | "$PYTHON3" -c 'import json,sys; print(json.load(sys.stdin)["maps"][0]["entries"][0]["value"])')
  [ "$c2" -gt "$c1" ] && break
  sleep 0.02
done
[ "$c2" -gt "$c1" ] || fail "second probe stopped counting ($c1 -> $c2)"
# The one-line language: compiled, verified, attached for 1 s, maps printed, detached.
out=$(ctl probe run 'msg_send /size > 1024/ { @bytes[service_id] = sum(size); @n = count() }' --pid "$TPID" --duration 1 2>&1) ||
  fail "probe run: $out"
echo "$out" | head -5
echo "$out" | grep -q "^bytes (hash" || fail "probe run printed no @bytes: $out"
v=$(echo "$out" | sed -n 's/^  7: \([0-9]*\)$/\1/p' | head -1)
[ -n "$v" ] && [ "$v" -gt 0 ] && [ $((v % 2000)) -eq 0 ] || fail "probe run @bytes[7] = '$v': $out"
json=$(ctl --json probe run 'msg_send { @n = count() }' --pid "$TPID" --duration 0.5 2>&1) || fail "probe run --json: $json"
echo "$json" | "$PYTHON3" -c 'import json,sys; d=json.loads(sys.stdin.read().strip().splitlines()[-1]); assert d["maps"][0]["entries"][0]["value"] > 0, d' ||
  fail "probe run --json: $json"
out=$(ctl probe run 'msg_send { @n = cnt() }' --pid "$TPID" 2>&1); rc=$?
[ $rc = 2 ] || fail "bad script: exit $rc"
case $out in *"column 17: expected an aggregation"*) ;; *) fail "bad script message: $out" ;; esac
# A point the process does not have (its points: the "thoth" USDT notes of
# what it maps): exit 1, one line naming the point, the nearest and where
# the points are listed, nothing attached.  It ran --duration and printed
# an empty map, exit 0, as if the point had just not fired.
probes=$(ctl probe list | wc -l)
out=$(ctl probe run 'msg_sned { @n = count() }' --pid "$TPID" --duration 0.2 2>&1); rc=$?
[ $rc = 1 ] || fail "probe run at no such point: exit $rc: $out"
[ "$(printf '%s\n' "$out" | wc -l)" = 1 ] || fail "probe run at no such point: not one line: $out"
case $out in
  "thothctl: probe run: pid $TPID has no trace point 'msg_sned' (nearest: msg_send); its points: "*'docs/OBSERVABILITY.md "Trace points in the tree"') ;;
  *) fail "probe run at no such point said: $out" ;;
esac
out=$(ctl probe run 'zz_not_here { @n = count() }' --pid "$TPID" --duration 0.2 2>&1) && fail "probe run at zz_not_here: exit 0: $out"
case $out in *"has no trace point 'zz_not_here' (none near it)"*) ;; *) fail "probe run at zz_not_here said: $out" ;; esac
[ "$(ctl probe list | wc -l)" = "$probes" ] || fail "a probe at no such point was attached: $(ctl probe list)"
# ... while one it has but has not fired (timer_fire: probe_target arms no
# timer) is taken as before: an empty map, exit 0.
out=$(ctl probe run 'timer_fire { @n = count() }' --pid "$TPID" --duration 0.2 2>&1) || fail "probe run at timer_fire: $out"
case $out in *"thoth/timer_fire in pid $TPID: running"*) ;; *) fail "probe run at timer_fire: $out" ;; esac
# probe attach of an object whose program names such a point: the same
# check, the same line, nothing attached (it attached, exit 0, and sat
# there pending for a point the process never reaches).  The object is
# a01_count.o with its section renamed (the same length, so the ELF holds).
sed 's|thoth/msg_send|thoth/msg_sned|g' "$CORPUS/a01_count.o" >"$RT/sned.o"
probes=$(ctl probe list | wc -l)
out=$(ctl probe attach "$RT/sned.o" --pid "$TPID" --wait 0.2 2>&1); rc=$?
[ $rc = 1 ] || fail "probe attach of a program at no such point: exit $rc: $out"
[ "$(printf '%s\n' "$out" | wc -l)" = 1 ] || fail "probe attach at no such point: not one line: $out"
case $out in
  "thothctl: probe attach: pid $TPID has no trace point 'msg_sned' (nearest: msg_send); its points: "*'docs/OBSERVABILITY.md "Trace points in the tree"') ;;
  *) fail "probe attach at no such point said: $out" ;;
esac
[ "$(ctl probe list | wc -l)" = "$probes" ] || fail "an object at no such point was attached: $(ctl probe list)"
echo "ok: probe run or attach at a point the process does not have: exit 1, the nearest named"

# --service NAME: the registered service's process, resolved through thothd.
if [ -n "$ECHO" ]; then
  tt_spawn "$ECHO" --runtime-dir "$RT" --name probe-echo 2>"$RT/echo.err"
  EPID=$TT_PID
  for _ in $(seq 1 500); do
    out=$(ctl probe attach "$CORPUS/a01_count.o" --service probe-echo --wait 0.2 2>&1) && break
    case $out in *"no process for service"*|*"no traced process"*) sleep 0.02 ;; *) fail "attach --service: $out" ;; esac
  done
  echo "$out"
  case $out in *" in pid $EPID: "*) ;; *) fail "attach --service went elsewhere (echo is $EPID): $out" ;; esac
  out=$(ctl probe attach "$CORPUS/a01_count.o" --service no-such-service 2>&1) && fail "attached to no service"
  case $out in *"no process for service 'no-such-service' (no live instance is registered"*) ;;
    *) fail "no service: $out" ;; esac
  ctl probe attach "$CORPUS/a01_count.o" --service probe-echo --pid "$TPID" >/dev/null 2>&1
  [ $? = 2 ] || fail "--pid with --service must be a usage error (2)"
fi

# `probe run` twice in a row on an idle service (no client: it reaches no
# trace point, so it never takes the attach).  Each run says that nothing
# ran and withdraws its probe; the second is not refused as Busy; and when
# the service wakes up later, neither abandoned script attaches there.
# The old code: the first run failed ("no maps yet", exit 1), the second
# got "has not taken the previous probe command yet", and the first
# script attached at the service's first request, running with nobody
# to detach it.
if [ -n "$ECHO" ] && [ -n "$ECHO_CLIENT" ]; then
  tt_start_service "$RT" echo "$ECHO" --runtime-dir "$RT"
  IPID=$TT_PID
  sleep 0.3     # its buffer reaches thothd by a oneway attach
  for i in 1 2; do
    out=$(ctl probe run 'chan_send { @n = count() }' --service echo --duration 0.3 --wait 0.3 2>&1) ||
      fail "probe run $i on an idle service: exit $?: $out"
    case $out in *"pid $IPID reached no trace point"*"withdrawn"*) ;; *) fail "probe run $i on an idle service: $out" ;; esac
  done
  json=$(ctl --json probe run 'chan_send { @n = count() }' --service echo --duration 0.3 --wait 0.3 2>&1) ||
    fail "probe run --json on an idle service: $json"
  echo "$json" | "$PYTHON3" -c 'import json,sys; d=json.loads(sys.stdin.read().strip().splitlines()[-1]); assert d["ran"] is False and d["maps"] == [], d' ||
    fail "probe run --json on an idle service: $json"
  # A plain attach left pending is withdrawn by its detach, and frees the mailbox.
  out=$(ctl probe attach "$CORPUS/a01_count.o" --pid "$IPID" --wait 0.2 2>&1) || fail "idle attach: $out"
  id=$(echo "$out" | sed -n 's/^probe \([0-9]*\): .*pending.*/\1/p')
  [ -n "$id" ] || fail "idle attach not pending: $out"
  out=$(ctl probe attach "$CORPUS/a01_count.o" --pid "$IPID" --wait 0.2 2>&1) && fail "a second command while one is pending: $out"
  case $out in *"has not taken probe $id yet"*"probe detach $id"*) ;; *) fail "busy message: $out" ;; esac
  ctl probe detach "$id" || fail "detach of a pending probe"
  ctl probe list | grep -q "^$id .*withdrawn" || fail "not withdrawn: $(ctl probe list)"
  # Wake it: its trace points now find the withdrawn commands and skip them.
  tt_spawn "$ECHO_CLIENT" --runtime-dir "$RT" --rate 200 --report 60 >/dev/null 2>&1
  cpid=$TT_PID
  sleep 1
  kill "$cpid"; tt_reap "$cpid"
  ctl probe list | awk -v p="$IPID" '$2 == p' >"$RT/idle.list"
  [ "$(wc -l <"$RT/idle.list")" = 4 ] || fail "idle service's probes: $(cat "$RT/idle.list")"
  grep -v withdrawn "$RT/idle.list" && fail "an abandoned probe attached: $(cat "$RT/idle.list")"
  # and the mailbox takes the next command at once
  out=$(ctl probe attach "$CORPUS/a01_count.o" --pid "$IPID" --wait 0.2 2>&1) || fail "attach after withdrawals: $out"
  echo "ok: probe run twice on an idle service"
  # A detach posted once the service went idle waits for its next trace
  # point; a command meanwhile is refused naming that detach and what to
  # do (it said only "has not taken the previous probe command yet").
  id=$(echo "$out" | sed -n 's/^probe \([0-9]*\): .*/\1/p')
  [ -n "$id" ] || fail "no probe id in: $out"
  tt_spawn "$ECHO_CLIENT" --runtime-dir "$RT" --rate 200 --report 60 >/dev/null 2>&1
  cpid=$TT_PID
  tt_until "$TT_DEADLINE" "probe $id running" sh -c "'$THOTHCTL' --runtime-dir '$RT' probe list | grep -q '^$id .*running'"
  # A newer probe attached and detached meanwhile: its detach is taken but
  # its record keeps the detach's number, and the refusal below named it
  # (the newest record with a detach) instead of the pending one.
  out=$(ctl probe attach "$CORPUS/a01_count.o" --pid "$IPID" --wait 2 2>&1) || fail "a second attach: $out"
  id2=$(echo "$out" | sed -n 's/^probe \([0-9]*\): .*/\1/p')
  [ -n "$id2" ] || fail "no probe id in: $out"
  tt_until "$TT_DEADLINE" "probe $id2 running" sh -c "'$THOTHCTL' --runtime-dir '$RT' probe list | grep -q '^$id2 .*running'"
  ctl probe detach "$id2" >/dev/null || fail "detach of probe $id2"
  tt_until "$TT_DEADLINE" "probe $id2 detached" sh -c "'$THOTHCTL' --runtime-dir '$RT' probe list | grep -q '^$id2 .*detached'"
  kill "$cpid"; tt_reap "$cpid"
  # Stopped, the service reaches no trace point, so the detach stays
  # pending for certain (a sleep for the client's hang-up to be handled
  # raced it under load: the detach taken, the attach then accepted).
  kill -STOP "$IPID"
  ctl probe detach "$id" >/dev/null || { kill -CONT "$IPID"; fail "detach of a running probe"; }
  out=$(ctl probe attach "$CORPUS/a01_count.o" --pid "$IPID" --wait 0.2 2>&1)
  rc=$?
  kill -CONT "$IPID"
  [ $rc != 0 ] || fail "a command while a detach is pending: $out"
  case $out in *"has not taken the detach of probe $id yet"*"try again after it"*) ;; *) fail "pending detach message: $out" ;; esac
  echo "ok: a pending detach named: $out"
fi

# The target was never restarted.
kill -0 "$TPID" || fail "target died"
grep -q "ready $TPID" "$RT/target.out" || fail "target restarted?"
echo ok
