#!/usr/bin/env bash
# tests/federation/test_run_cluster.sh SOURCE_DIR BUILD_DIR
#
# `make run-cluster` (scripts/run-cluster.sh) prints the commands that look
# at the cluster it started.  Each is run here exactly as printed and must
# work: the one showing what etcd holds named etcdctl, which is Debian's
# etcd-client and not installed with thoth ("command not found").  Then a
# SIGTERM to the script alone must stop everything within seconds.
# Skips (77) where etcd is not installed.
set -uo pipefail
SRC=$1 BUILD=$2
command -v etcd >/dev/null || [ -x /usr/bin/etcd ] || { echo "SKIP: no etcd"; exit 77; }
OUT=$(mktemp "${TMPDIR:-/tmp}/thoth-run-cluster-XXXXXX")
pid="" FAKE="" passed=0 LOGDIRS=()
# A pid still running: not gone, not an unreaped zombie.
running() {
  local st
  st=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null) || return 1
  [ "${st%% *}" != Z ]
}
# The logs folder each run of run-cluster.sh made (it prints it).
note_logs() { LOGDIRS+=($(grep -o '[^ :]*/thoth-cluster-logs-[A-Za-z0-9]*' "$OUT" | sort -u)); }
# A run still going gets SIGTERM and 30 s, then SIGKILL with every pid it
# printed (hosts, and all it was stopping); the logs go on success only.
cleanup() {
  if [ -n "$pid" ] && running "$pid"; then
    kill -TERM "$pid" 2>/dev/null
    local end=$((SECONDS + 30))
    while running "$pid" && [ $SECONDS -lt $end ]; do sleep 0.1; done
    if running "$pid"; then
      echo "run-cluster.sh $pid still running 30 s after SIGTERM: SIGKILL to it and its pids"
      kill -KILL "$pid" $(grep -o 'host[0-9]=[0-9]*' "$OUT" | cut -d= -f2) \
        $(sed -n 's/^stopping: //p' "$OUT" | grep -o '[0-9]*') 2>/dev/null
    fi
    wait "$pid" 2>/dev/null
  fi
  note_logs
  if [ $passed = 1 ]; then
    rm -rf "${LOGDIRS[@]}"
  elif [ ${#LOGDIRS[@]} -gt 0 ]; then
    echo "run-cluster.sh's logs kept in ${LOGDIRS[*]}"
  fi
  [ -z "$FAKE" ] || rm -rf "$FAKE"
  rm -f "$OUT"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; echo "--- run-cluster.sh said:"; cat "$OUT"; exit 1; }

"$SRC/scripts/run-cluster.sh" "$BUILD" --hosts 2 --for 120 >"$OUT" 2>&1 &
pid=$!

deadline=$((SECONDS + 90))
until grep -q "Ctrl-C stops everything" "$OUT"; do
  kill -0 "$pid" 2>/dev/null || fail "run-cluster.sh ended before the cluster was up"
  [ $SECONDS -lt $deadline ] || fail "the cluster was not up within 90 s"
  sleep 0.1
done

# The commands: the indented lines between the banner and "Kill a host".
mapfile -t cmds < <(sed -n '/^Every host lists/,/^Kill a host/p' "$OUT" | grep '^  ')
[ ${#cmds[@]} -ge 3 ] || fail "expected 3 commands to look at the cluster, found ${#cmds[@]}"
for c in "${cmds[@]}"; do
  out=$(bash -c "$c" 2>&1) || fail "\`${c#  }\` exited $?: $out"
  [ -n "$out" ] || fail "\`${c#  }\` printed nothing"
  echo "ok: ${c#  }"
done
etcd_cmd=$(printf '%s\n' "${cmds[@]}" | grep -F '/v3/kv/range') || fail "no command shows what etcd holds"
# run-cluster.sh waits at most 10 s for host1 to see host2's echo, then
# prints the banner anyway: on a loaded machine (ctest -j beside it) the
# keys may come a little later, so they get 30 s (etcd's gateway leaves
# "kvs" out while there are none: the command fails until then).  A command
# that does not work as printed failed in the loop above, on its first run.
deadline=$((SECONDS + 30))
while :; do
  keys=$(bash -c "$etcd_cmd" 2>&1)
  grep -qx "/thoth/v1/host/host1" <<<"$keys" && grep -qx "/thoth/v1/host/host2" <<<"$keys" &&
    grep -q "^/thoth/v1/inst/host2/" <<<"$keys" && break
  [ $SECONDS -lt $deadline ] || break
  sleep 0.2
done
grep -qx "/thoth/v1/host/host1" <<<"$keys" && grep -qx "/thoth/v1/host/host2" <<<"$keys" ||
  fail "what etcd holds lacks the hosts' keys after 30 s: $keys"
grep -q "^/thoth/v1/inst/host2/" <<<"$keys" || fail "what etcd holds lacks host2's echo instance after 30 s: $keys"

# SIGTERM to the script alone (a service manager, `kill PID`) stops
# everything at once: it waited out --for (a foreground sleep defers the trap),
# and exits 143 as usual (it said 0).
hosts=$(grep -o 'host[0-9]=[0-9]*' "$OUT" | cut -d= -f2)
[ -n "$hosts" ] || fail "no host pids printed"
kill -TERM "$pid"
deadline=$((SECONDS + 30))
while kill -0 "$pid" 2>/dev/null; do
  [ $SECONDS -lt $deadline ] || fail "run-cluster.sh still running 30 s after SIGTERM"
  sleep 0.1
done
stopped=$(sed -n 's/^stopping: //p' "$OUT")
[ -n "$stopped" ] && [ "$stopped" != nothing ] || fail "run-cluster.sh did not say what it was stopping"
for h in $hosts; do
  grep -qw "$h" <<<"$stopped" || fail "thothd $h is not among what run-cluster.sh was stopping: $stopped"
done
# every pid it stopped (etcd, the thothds, the echo services), not only the thothds
for p in $stopped; do
  ! kill -0 "$p" 2>/dev/null || fail "$p (of 'stopping: $stopped') still running after run-cluster.sh ended"
done
grep -q "^stopped; removed " "$OUT" || fail "run-cluster.sh did not say it stopped"
wait "$pid"; rc=$?
[ $rc = 143 ] || fail "run-cluster.sh exited $rc on SIGTERM, not 143"
note_logs
echo "ok: SIGTERM stopped everything, exit 143"

# A SIGTERM while it is still choosing ports: it ended with exit 2 and
# "trap: unexpected EOF while looking for matching \`)'" (bash 5.2 running
# the trap inside `A=$(..) B=$(..)`).
"$SRC/scripts/run-cluster.sh" "$BUILD" --hosts 1 --for 60 >"$OUT" 2>&1 &
pid=$!
sleep 0.3
kill -TERM "$pid"
wait "$pid"; rc=$?
[ $rc = 143 ] && ! grep -q "unexpected EOF" "$OUT" || fail "an early SIGTERM: exit $rc, not 143"
note_logs
echo "ok: an early SIGTERM: exit 143"

# A SIGTERM just as it makes its folders (a stand-in mktemp sends it to the
# script as the logs folder is made): both went before the traps were set,
# so the script died leaving an empty thoth-cluster-logs-* in TMPDIR (the
# stage's leftovers guard failed on it) and its runtime folder in /tmp.
SHIM=$(mktemp -d "${TMPDIR:-/tmp}/thoth-run-cluster-shim-XXXXXX")
mkdir "$SHIM/bin" "$SHIM/tmp"
REAL_MKTEMP=$(command -v mktemp)
printf '#!/bin/sh\nd=$(%s "$@") || exit\necho "$d" >>%s/made\ncase $d in */thoth-cluster-logs-*) kill -TERM $PPID;; esac\necho "$d"\n' \
  "$REAL_MKTEMP" "$SHIM" >"$SHIM/bin/mktemp"
chmod +x "$SHIM/bin/mktemp"
TMPDIR=$SHIM/tmp PATH=$SHIM/bin:$PATH "$SRC/scripts/run-cluster.sh" "$BUILD" --hosts 1 --for 60 >"$OUT" 2>&1
rc=$?
made=$(cat "$SHIM/made" 2>/dev/null)
left=$(for d in $made; do [ ! -e "$d" ] || echo "$d"; done)
rm -rf $made "$SHIM"
[ $rc = 143 ] || fail "a SIGTERM as the folders are made: exit $rc, not 143"
grep -q "thoth-cluster-logs-" <<<"$made" || fail "the stand-in mktemp never made the logs folder: $made"
[ -z "$left" ] || fail "a SIGTERM as the folders are made left $left"
echo "ok: a SIGTERM as the folders are made leaves none"

# A host that does not end on SIGTERM gets SIGKILL after 10 s: cleanup waited
# for it forever.  A stand-in build folder whose thothd ignores SIGTERM.
FAKE=$(mktemp -d "${TMPDIR:-/tmp}/thoth-run-cluster-build-XXXXXX")
mkdir -p "$FAKE/kernel/thothd" "$FAKE/tools/thothctl" "$FAKE/services"
printf '#!/bin/sh\ntrap "" TERM\necho ready >&3\nexec 3>&-\nexec sleep 300\n' >"$FAKE/kernel/thothd/thothd"
printf '#!/bin/sh\nexec sleep 300\n' >"$FAKE/services/echo"
printf '#!/bin/sh\necho "echo tcp:127.0.0.1:1"\n' >"$FAKE/tools/thothctl/thothctl"
chmod +x "$FAKE/kernel/thothd/thothd" "$FAKE/services/echo" "$FAKE/tools/thothctl/thothctl"
"$SRC/scripts/run-cluster.sh" "$FAKE" --hosts 1 --for 120 >"$OUT" 2>&1 &
pid=$!
deadline=$((SECONDS + 90))
until grep -q "Ctrl-C stops everything" "$OUT"; do
  kill -0 "$pid" 2>/dev/null || fail "run-cluster.sh (stand-in thothd) ended before the cluster was up"
  [ $SECONDS -lt $deadline ] || fail "the cluster (stand-in thothd) was not up within 90 s"
  sleep 0.1
done
stuck=$(grep -o 'host1=[0-9]*' "$OUT" | cut -d= -f2)
kill -TERM "$pid"
deadline=$((SECONDS + 30))
while kill -0 "$pid" 2>/dev/null; do
  [ $SECONDS -lt $deadline ] || { kill -9 "$stuck" 2>/dev/null; fail "run-cluster.sh still running 30 s after SIGTERM with a thothd that ignores it"; }
  sleep 0.1
done
! kill -0 "$stuck" 2>/dev/null || fail "the thothd that ignored SIGTERM ($stuck) still runs"
grep -q "^$stuck did not end within 10 s of SIGTERM: SIGKILL" "$OUT" || fail "no SIGKILL said for $stuck"
echo "ok: a thothd ignoring SIGTERM was killed"
passed=1
echo PASS
