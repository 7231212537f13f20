#!/usr/bin/env bash
# scripts/beside.sh LOG BUILD... -- STAGE...
#
# Runs the command BUILD in the background, its output to LOG, while the
# command STAGE runs in the foreground; then waits for BUILD.  BUILD runs
# at SCHED_IDLE (chrt --idle; else nice 19, below) and in the idle I/O
# class: it gets only
# the CPU time STAGE leaves idle, and a test thread that wakes takes its CPU
# at once, so to the tests it is less load than one more test.  `make test`
# builds each sanitizer build beside the test stage before it: its ctest
# stages keep 2 CPUs under half busy (docs/TESTING.md "Test stage (stop 42)").
#
# Exit status: STAGE's when it failed (after BUILD ended: nothing is left
# running), else BUILD's, with the last 40 lines of LOG shown when it failed.
set -u
if [ $# -lt 1 ]; then
  echo "usage: beside.sh LOG BUILD... -- STAGE..." >&2
  exit 2
fi
log=$1
shift
build=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do
  build+=("$1")
  shift
done
if [ ${#build[@]} -eq 0 ] || [ $# -lt 2 ]; then
  echo "beside.sh: need a BUILD command, then --, then a STAGE command" >&2
  exit 2
fi
shift

# SCHED_IDLE only where BUILD can be given its priority back after the
# stage (below: root, or an RLIMIT_NICE that allows it); elsewhere nice 19,
# which a machine busy with other work starves less.
idle=(chrt --idle 0)
if ! chrt --idle 0 chrt --other 0 true 2>/dev/null; then
  idle=(nice -n 19)
fi
# Its disk writes (hundreds of MB of objects) in the idle I/O class too,
# where the disk's scheduler has classes (BFQ; "none" ignores them): a
# RUN_SERIAL test times journal epochs on the real disk.
if ionice -c 3 true 2>/dev/null; then
  idle+=(ionice -c 3)
fi
mkdir -p "$(dirname "$log")" || exit 2
"${idle[@]}" "${build[@]}" >"$log" 2>&1 &
build_pid=$!

tree() {  # the pids of PID's descendants, read from /proc: procps (ps,
  # pgrep) is in no Build-Depends and not in a minimal Debian, and without
  # it only the build's first process would be stopped or given its
  # priority back
  local f s pid ppid
  local -A kids=()
  for f in /proc/[0-9]*/stat; do
    { read -r s <"$f"; } 2>/dev/null || continue   # gone meanwhile
    pid=${f#/proc/}
    pid=${pid%/stat}
    s=${s##*) }   # after "pid (comm) ": "state ppid ..."
    s=${s#* }
    ppid=${s%% *}
    kids[$ppid]+=" $pid"
  done
  local queue=("$1") p
  while [ ${#queue[@]} -gt 0 ]; do
    p=${queue[0]}
    queue=("${queue[@]:1}")
    for pid in ${kids[$p]:-}; do
      echo "$pid"
      queue+=("$pid")
    done
  done
}
# A background command of a script ignores SIGINT: an interrupted `make
# test` must not leave BUILD running.  STAGE runs in the background too,
# and the script waits for it with `wait`, which a signal interrupts: bash
# runs a trap only after a foreground command ends, so a SIGTERM sent to
# this script alone (make forwards its own SIGTERM to its children) would
# have waited out the whole stage, minutes, with make already gone.  STAGE
# gets SIGINT and SIGQUIT back (its tests send them to their thothds) and
# the caller's stdin instead of /dev/null: as a foreground command.
# Parents first: a shell or make whose child died first would go on to its
# next command before its own signal came.
trap 'kill "$stage_pid" $(tree "$stage_pid") "$build_pid" $(tree "$build_pid") 2>/dev/null; exit 130' INT TERM

stage_pid=
( trap - INT QUIT; exec "$@" ) <&0 &
stage_pid=$!
wait "$stage_pid"
stage_rc=$?

# The stage is over: what is left of BUILD gets ordinary priority, so that
# on a machine busy with other work it is not starved (SCHED_IDLE above
# only where this is allowed).
# Twice: a process forked while the first pass ran may have been missed.
if kill -0 "$build_pid" 2>/dev/null && [ "${idle[0]}" = chrt ]; then
  for pass in 1 2; do
    for p in "$build_pid" $(tree "$build_pid"); do
      chrt --all-tasks --other -p 0 "$p" >/dev/null 2>&1
      ionice -c 0 -p "$p" >/dev/null 2>&1
    done
  done
fi

wait "$build_pid"
build_rc=$?
if [ "$build_rc" -ne 0 ]; then
  tail -n 40 "$log"
  echo "beside.sh: the build beside the stage failed (exit $build_rc), log: $log" >&2
fi
if [ "$stage_rc" -ne 0 ]; then
  exit "$stage_rc"
fi
exit "$build_rc"
