#!/usr/bin/env bash
# tests/locks/test_thothlock_reclaim.sh THOTHLOCK
#
# thothlock's private folder (/dev/shm/thothlock-XXXXXX: the maps and
# table copies of the run) is removed at its exit; one killed by SIGKILL
# ran no exit path and left it for good (flake45: test_cli_args killed by
# its TIMEOUT left one per kill).  The next thothlock removes the folder
# of a thothlock that is gone (its flock went with it), never a live one's.
set -uo pipefail
THOTHLOCK=$1
fail() { echo "FAIL: $*"; exit 1; }
[ -d /dev/shm ] && [ -w /dev/shm ] || { echo "skip: no writable /dev/shm (thothlock's folder is then under /tmp)"; exit 77; }
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
  wait 2>/dev/null
  for d in "${dirs[@]}"; do rm -rf "$d"; done
}
dirs=()
trap cleanup EXIT

# start_run VAR: thothlock -- sleep 300 in the background; VAR= its folder
# (THOTHLOCK_DIR in the environment of the program it runs)
start_run() {
  "$THOTHLOCK" -- sleep 300 2>/dev/null &
  local tl=$! child= d= i
  pids+=("$tl")
  for i in $(seq 1 500); do
    child=$(pgrep -P "$tl" | head -1)
    [ -n "$child" ] && d=$(tr '\0' '\n' <"/proc/$child/environ" 2>/dev/null | sed -n 's/^THOTHLOCK_DIR=//p')
    [ -n "$d" ] && break
    sleep 0.02
  done
  [ -n "$d" ] || fail "thothlock (pid $tl) started no program with THOTHLOCK_DIR"
  pids+=("$child")
  dirs+=("$d")
  printf -v "$1" %s "$d"
  printf -v "$1_pid" %s "$tl"
  printf -v "$1_child" %s "$child"
}

start_run dead
start_run live
case $dead in /dev/shm/thothlock[.-]??????) ;; *) fail "thothlock's folder is $dead, not under /dev/shm" ;; esac
kill -KILL "$dead_pid"; wait "$dead_pid" 2>/dev/null
kill -KILL "$dead_child"
[ -d "$dead" ] || fail "a thothlock killed by SIGKILL did not leave $dead (nothing to check)"
echo "ok: a thothlock killed by SIGKILL left $dead ($(ls "$dead" | wc -l) file(s))"

"$THOTHLOCK" -- true >/dev/null 2>&1 || fail "thothlock -- true failed"
[ ! -e "$dead" ] || fail "the next thothlock did not remove $dead, left by a thothlock killed by SIGKILL"
echo "ok: the next thothlock removed it"
[ -d "$live" ] || fail "the next thothlock removed $live, a running thothlock's (pid $live_pid)"
kill -0 "$live_pid" || fail "the running thothlock (pid $live_pid) is gone"
echo "ok: a running thothlock's $live was left alone"

kill -TERM "$live_pid"   # forwarded to sleep; thothlock reports and removes its folder
wait "$live_pid" 2>/dev/null
[ ! -e "$live" ] || fail "thothlock did not remove $live at its exit"
echo "ok: and removed at its exit"
echo PASS
