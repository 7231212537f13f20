#!/usr/bin/env bash
# test_locks_pid_namespace THOTHLOCK NS_WORKLOAD NS_WORKLOAD_B THOTHD: `thothlock -- unshare -pf
# --mount-proc NS_WORKLOAD 5000`.  unshare forks the workload as pid 1 of
# a new pid namespace, which forks its child as pid 2: their tables'
# headers name 1 and 2, the kernel (SO_PASSCRED) thothlock's own pids for
# them.  The report must have unshare, the workload and its child under
# the kernel's pids, the namespace's pids beside them, and the workload's
# locks exact (5000 and 10000), symbolized from the maps the processes
# saved under their own pids.  Before (lock42's receipt check) both
# hand-overs were refused ("a table naming pid 1, sent by pid N") and,
# the preloads having made no exit copies, their reports were lost.
# Then bare LD_PRELOAD runs in their own namespace: with no thothd they
# publish silently; with a thothd outside it, no marker and one line why.
# Skipped (77) where unshare is refused: it needs root (CAP_SYS_ADMIN).
set -uo pipefail
THOTHLOCK=$1
WORKLOAD=$2
WORKLOAD_B=$3
THOTHD=$4
. "$(dirname "$0")/../common/thoth_test.sh"     # tt_tempdir only: this script keeps its own trap
T=$(mktemp -d "${TMPDIR:-/tmp}/thoth-locks-pidns-XXXXXX")
# The bare runs' runtime dir (thothd's sockets): a short folder of the
# stage's where TMPDIR is long (tt_tempdir), padded to 90 bytes, thothd's
# socket then 102 of sun_path's 107: the library's "locks/../thothd.sock"
# (111 bytes) did not fit, it asked no thothd and published its marker.
RTB=$(tt_tempdir locks-pidns-rt) || { echo "FAIL: no temp dir for the runtime dir"; rm -rf "$T"; exit 1; }
trap 'rm -rf "$T" "$RTB"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

if ! unshare -pf --mount-proc true 2>"$T/probe"; then
  echo "SKIP: needs root (CAP_SYS_ADMIN) for unshare -pf --mount-proc (new pid and mount namespaces): $(cat "$T/probe")"
  exit 77
fi

timeout 50 "$THOTHLOCK" --all --json --output "$T/json" -- unshare -pf --mount-proc "$WORKLOAD" 5000 \
  >"$T/out" 2>"$T/err"
rc=$?
cat "$T/out" "$T/err"
[ $rc = 0 ] || fail "thothlock exit $rc, want 0"
[ "$(cat "$T/out")" = "pid 1 child 2" ] || fail "the workload said: $(cat "$T/out"), want pid 1 child 2"
[ -s "$T/err" ] && fail "thothlock said something on stderr: $(cat "$T/err")"
jq -e . "$T/json" >/dev/null || fail "not JSON: $(cat "$T/json")"
procs=$(jq -c '[.processes[] | {program: (.program | split("/") | last), ns: .namespace_pid}] | sort_by(.ns)' "$T/json")
want='[{"program":"unshare","ns":null},{"program":"ns_workload","ns":1},{"program":"ns_workload","ns":2}]'
[ "$procs" = "$want" ] || fail "processes $procs, want $want"
# Reported under the kernel's pids: none is 1 or 2 (thothlock's namespace
# is the host's, where those are init and kthreadd).
jq -e '[.processes[].pid] | all(. > 2)' "$T/json" >/dev/null ||
  fail "a process reported under its namespace's pid: $(jq -c '[.processes[].pid]' "$T/json")"
for want in "ns_lock 1 5000" "ns_child_lock 2 10000"; do
  read -r name ns n <<<"$want"
  pid=$(jq -r ".processes[] | select(.namespace_pid == $ns) | .pid" "$T/json")
  got=$(jq -r "[.locks[] | select(.name == \"$name\" and .pid == $pid)] | .[0].acquisitions" "$T/json")
  [ "$got" = "$n" ] || fail "$name of pid $pid ($ns in its namespace): $got acquisitions, want $n: $(jq -c '[.locks[] | {pid, name, acquisitions}]' "$T/json")"
done
echo "ok: the workload (1 in its namespace) and its child (2) reported exact under the kernel's pids"

# The text report names both pids.
"$THOTHLOCK" --output "$T/text" -- unshare -pf --mount-proc "$WORKLOAD" 100 >/dev/null 2>"$T/err2" ||
  fail "thothlock (text): $(cat "$T/err2")"
grep -Eq '^thothlock: pid [0-9]+ \(pid 1 in its namespace\) \([^)]*ns_workload\), ' "$T/text" ||
  fail "no text line naming pid 1 in its namespace: $(grep '^thothlock: pid' "$T/text")"
echo "ok: the text report says \"pid N (pid 1 in its namespace)\""

# Two namespaces at once, two different binaries: both workloads are pid 1
# and both children pid 2 in their namespaces.  Each process's locks must
# be named from its own maps (saved under its memfd's inode, lock43):
# under the namespace's pid, the later process's maps symbolized both, and
# the other's locks came out unnamed or misnamed.
timeout 50 "$THOTHLOCK" --all --json --output "$T/two.json" -- bash -c \
  'unshare -pf --mount-proc "$0" 3000 & unshare -pf --mount-proc "$1" 4000 & wait' \
  "$WORKLOAD" "$WORKLOAD_B" >"$T/out2" 2>"$T/err2"
rc=$?
[ $rc = 0 ] || fail "thothlock (two namespaces) exit $rc: $(cat "$T/err2")"
[ -s "$T/err2" ] && fail "thothlock (two namespaces) said something on stderr: $(cat "$T/err2")"
[ "$(sort "$T/out2" | uniq)" = "pid 1 child 2" ] || fail "the workloads said: $(cat "$T/out2")"
named() {   # PROGRAM NS_PID: that process's locks, sorted: "name acquisitions ..."
  jq -r --arg prog "$1" --argjson ns "$2" '
    [.processes[] | select((.program | split("/") | last) == $prog and .namespace_pid == $ns) | .pid] as $p
    | if ($p | length) != 1 then "not one such process: \($p)" else
      [.locks[] | select(.pid == $p[0] and .acquisitions > 0 and (.name // "" | test("^nsb?_"))) | "\(.name) \(.acquisitions)"] | sort | join(", ") end' "$T/two.json"
}
for want in "ns_workload 1 ns_lock 3000" "ns_workload 2 ns_child_lock 6000" \
            "ns_workload_b 1 nsb_lock 4000" "ns_workload_b 2 nsb_child_lock 8000"; do
  read -r prog ns name n <<<"$want"
  got=$(named "$prog" "$ns")
  [ "$got" = "$name $n" ] || fail "$prog (pid $ns in its namespace): locks '$got', want '$name $n': $(jq -c '[.processes[] | {pid, program, namespace_pid}], [.locks[] | {pid, name, acquisitions}]' "$T/two.json")"
done
echo "ok: two namespaces' pid 1s and 2s, different binaries: each named from its own maps"

# Bare LD_PRELOAD runs in a pid namespace of their own (RT: their runtime
# dir).  bare_run LABEL: `unshare -pf --mount-proc sleep 60` preloaded; once
# sleep (pid 1 there) is in its clock_nanosleep (its constructor has
# decided), the markers in RT/locks/ go to $markers, its stderr to
# $T/LABEL.err.  unshare itself, outside, publishes its own ($up.table).
LIB=$(dirname "$THOTHLOCK")/libthothlock.so
RT=$RTB/r
[ ${#RT} -lt 90 ] && RT=$RT$(printf '%*s' $((90 - ${#RT})) '' | tr ' ' r)
mkdir -m 700 "$RT"
[ ${#RT} = 90 ] || echo "note: the runtime dir is ${#RT} bytes, not 90 (a long stage folder): its length is not tested"
# clock_nanosleep's number on this machine: a plain sleep's blocked call
sleep 60 & calib=$!
nanosleep_nr=
for _ in $(seq 500); do
  read -r nanosleep_nr _ <"/proc/$calib/syscall" 2>/dev/null
  [ "$(cut -d' ' -f3 "/proc/$calib/stat" 2>/dev/null)" = S ] && [[ $nanosleep_nr =~ ^[0-9]+$ ]] && break
  nanosleep_nr=
  sleep 0.02
done
kill "$calib"; wait "$calib" 2>/dev/null
[ -n "$nanosleep_nr" ] || fail "could not read a sleeping sleep's syscall number from /proc/PID/syscall"
bare_run() {
  THOTH_RUNTIME_DIR=$RT LD_PRELOAD=$LIB unshare -pf --kill-child --mount-proc sleep 60 \
    >/dev/null 2>"$T/$1.err" &
  up=$!
  inner=
  # 30 s: a loaded machine's start, not a measured time
  for _ in $(seq 1500); do
    inner=$(pgrep -P "$up" | head -1)
    nr=
    [ -n "$inner" ] && read -r nr _ <"/proc/$inner/syscall" 2>/dev/null
    [ -n "$inner" ] && [ "$(cat "/proc/$inner/comm" 2>/dev/null)" = sleep ] &&
      grep -q 'memfd:thothlock:1 ' <<<"$(ls -l "/proc/$inner/fd" 2>/dev/null)" &&
      [ "$nr" = "$nanosleep_nr" ] && break
    inner=
    sleep 0.02
  done
  markers=$(ls "$RT/locks" 2>/dev/null | LC_ALL=C sort | tr '\n' ' ')
  # SIGKILL: unshare ignores SIGTERM while it waits, and a namespace's pid 1
  # gets from outside only the signals it handles (sleep handles none)
  kill -9 "$up" 2>/dev/null; [ -n "$inner" ] && kill -9 "$inner" 2>/dev/null
  wait "$up" 2>/dev/null
  [ -n "$inner" ] || fail "$1: the bare run's sleep never started profiled in its namespace: $(cat "$T/$1.err")"
  rm -f "$RT/locks/"*.table
}

# No thothd (a container without one): publishes as before, silently:
# thothctl locks in the same namespace reads the directory itself.
# Failed on lock44's first library: no marker and the line below.
bare_run nothothd
want=$(printf '%s\n' 1.table "$up.table" | LC_ALL=C sort | tr '\n' ' ')
[ "$markers" = "$want" ] ||
  fail "no thothd: markers while it ran: '$markers', want unshare's and the namespace's ('$want')"
[ -s "$T/nothothd.err" ] && fail "no thothd: the bare run said something on stderr: $(cat "$T/nothothd.err")"
echo "ok: no thothd: a bare run in its own pid namespace publishes 1.table and says nothing"

# A thothd of the runtime dir outside the namespace (its SO_PEERCRED pid
# there is 0): no marker (1 would name another process to it, and its
# removal at exit remove that one's) and one line why per program image.
# Before lock44 the namespace's process made RT/locks/1.table.
"$THOTHD" --runtime-dir "$RT" --http-port 0 >"$T/thothd.log" 2>&1 &
dpid=$!
trap 'kill "$dpid" 2>/dev/null; wait "$dpid" 2>/dev/null; rm -rf "$T" "$RTB"' EXIT
for _ in $(seq 1500); do
  [ -S "$RT/thothd.sock" ] && break
  kill -0 "$dpid" 2>/dev/null || fail "thothd exited: $(cat "$T/thothd.log")"
  sleep 0.02
done
[ -S "$RT/thothd.sock" ] || fail "thothd made no $RT/thothd.sock in 30 s: $(cat "$T/thothd.log")"
bare_run outside
[ "$markers" = "$up.table " ] || fail "thothd outside: markers while it ran: '$markers', want unshare's only ('$up.table ')"
grep -q '^libthothlock: this process is in a pid namespace of its own (pid 1 there, .*run it as `thothlock -- PROGRAM`' "$T/outside.err" ||
  fail "thothd outside: the bare run did not say why it is not seen live: $(cat "$T/outside.err")"
echo "ok: thothd outside: a bare run in its own pid namespace makes no marker and says why: $(head -1 "$T/outside.err")"

# The decision is kept per pid namespace: unshare's forked child (pid 1)
# asks thothd once, ns_workload's image once more, its forked child (pid 2,
# same namespace) not again: two connects to thothd.sock.  Needs strace.
if command -v strace >/dev/null; then
  THOTH_RUNTIME_DIR=$RT LD_PRELOAD=$LIB strace -f -qq -e trace=connect -o "$T/strace" \
    unshare -pf --mount-proc "$WORKLOAD" 100 >/dev/null 2>"$T/ws.err" ||
    fail "strace'd bare ns_workload: $(cat "$T/ws.err")"
  c=$(grep -c 'thothd\.sock' "$T/strace")
  [ "$c" = 2 ] || fail "connects to thothd.sock: $c, want 2 (the forked child in the same namespace must not ask again): $(cat "$T/strace")"
  echo "ok: thothd asked once per program image in the namespace, not by a forked child"
else
  echo "note: no strace: the per-namespace cache of the decision is not checked"
fi
echo PASS
