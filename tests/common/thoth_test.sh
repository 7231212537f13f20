# tests/common/thoth_test.sh: the set-up shared by the shell tests that
# start thothd and services.  Sourced (`. "$(dirname "$0")/../common/thoth_test.sh"`),
# never run.  Everything it starts it remembers by pid and ends on exit,
# also when the test fails (exit 1), skips (77) or is interrupted (INT,
# TERM, HUP); it never kills by name (other tests run thothd beside it).
#
#   tt_init [BUILD_DIR]        THOTHD, THOTHCTL (and TT_BUILD) from the build
#                              tree (without it, as the caller set them);
#                              installs the clean-up trap.
#   tt_fail MSG                "FAIL: MSG", exit 1 (clean-up runs).
#   tt_skip MSG                "SKIP: MSG", exit 77: MSG names what is missing.
#   tt_mkdir VAR [TAG [PARENT]] VAR := a fresh dir under PARENT (by default
#                              ${TMPDIR:-/tmp}), mode 0700, removed on exit.
#   tt_tempdir TAG             prints such a dir's path (made, not removed:
#                              for a script with its own EXIT trap).
#   tt_spawn CMD...            CMD in the background, its pid remembered (and
#                              in TT_PID); must run in the test's own shell
#                              (not in $(...)), or the pid is not remembered.
#                              Output redirections reach CMD, stdin ones do
#                              not (a background job reads /dev/null); a
#                              command that needs one, or opens a fifo, is
#                              started with & and its $! added to TT_PIDS.
#   tt_start_thothd RT [ARGS]  thothd --runtime-dir RT --ready-fd ARGS (and
#                              --http-port 0 unless ARGS name a port), its
#                              stderr appended to $RT/thothd.log; returns once
#                              it said READY=1 and its socket is there
#                              (deadline TT_DEADLINE s, 60 by default), else fails with its
#                              log.  THOTHD_PID := its pid.  TT_THOTHD_WRAP
#                              (an array), when set, is put before thothd
#                              (env VAR=..., prlimit ...).  RT at most 90
#                              bytes long (its sockets' paths fit 107).
#   tt_wait_registered RT NAME thothctl resolves NAME (exactly) within the deadline.
#   tt_start_service RT NAME CMD...
#                              CMD (stderr to $RT/NAME.log) and waits until
#                              NAME is registered; TT_PID is its pid.
#   tt_until [--show FILE] SECS WHAT CMD...
#                              polls CMD (every 20 ms) until it succeeds;
#                              past the deadline shows FILE and fails
#                              "WHAT within SECS s".
#   tt_reap PID                waits for PID (the test's own child) and
#                              forgets it; returns PID's exit status.
#   TT_PYTHON3                 the python3 to run (THOTH_PYTHON3, else
#                              /usr/bin/python3, else the one on PATH: a
#                              version manager's shim there costs seconds
#                              a start on a loaded machine); empty if none.
#
# Deadlines are for a loaded machine (TT_DEADLINE, 60 s by default): a wait
# is always for a condition, never a fixed sleep.

TT_DEADLINE=${TT_DEADLINE:-60}
TT_PIDS=()
TT_THOTHD_PIDS=()
TT_DIRS=()
if [ -n "${THOTH_PYTHON3:-}" ]; then TT_PYTHON3=$THOTH_PYTHON3
elif [ -x /usr/bin/python3 ]; then TT_PYTHON3=/usr/bin/python3
else TT_PYTHON3=$(command -v python3 || true)
fi

tt_fail() { echo "FAIL: $*"; exit 1; }
tt_skip() { echo "SKIP: $*"; exit 77; }

# _tt_ours PID [live]: PID is still this shell's child (one reaped already
# may have been reused by another process, which is not ours); with live,
# one that has not exited either.
_tt_ours() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }                     # past "PID (COMM) ": comm may hold anything
  set -- $stat "${2:-}"                 # STATE PPID ...
  [ "$2" = "$$" ] && { [ "${!#}" != live ] || [ "$1" != Z ]; }
}

# _tt_end PIDS...: SIGTERM (and SIGCONT: a stopped one takes its TERM) to
# each, wait up to 5 s for them to exit; LIVE := those still running.
_tt_end() {
  local p deadline=$((SECONDS + 5))
  for p in "$@"; do
    _tt_ours "$p" || continue
    kill -TERM "$p" 2>/dev/null
    kill -CONT "$p" 2>/dev/null
  done
  while :; do
    LIVE=()
    for p in "$@"; do
      ! _tt_ours "$p" live || LIVE+=("$p")
    done
    [ ${#LIVE[@]} -gt 0 ] && [ $SECONDS -lt $deadline ] || break
    sleep 0.02
  done
}

tt_cleanup() {
  # Only the test's own shell cleans up: a subshell or background job that
  # ran the inherited trap would end the test's children under it.
  [ "$BASHPID" = "$$" ] || return 0
  # No set -e here: a failing rm must neither turn a pass into a failure
  # nor leave the other dirs (the exit status stays the test's).
  set +e
  local p others=() thothds=() left=()
  trap - INT TERM HUP
  # Services leave cleanly while thothd still runs (as they do in normal
  # use), then thothd: each gets 5 s, then SIGKILL.
  for p in "${TT_PIDS[@]}"; do
    if [[ " ${TT_THOTHD_PIDS[*]} " == *" $p "* ]]; then thothds+=("$p"); else others+=("$p"); fi
  done
  _tt_end "${others[@]}"
  left=("${LIVE[@]}")
  _tt_end "${thothds[@]}"
  left+=("${LIVE[@]}")
  # The rest have exited (their files closed); these are waited for.  (A
  # wait on one the shell has reaped already makes bash say "No record of
  # process".)
  for p in "${left[@]}"; do kill -KILL "$p" 2>/dev/null; done
  for p in "${left[@]}"; do wait "$p" 2>/dev/null; done
  TT_PIDS=() TT_THOTHD_PIDS=()
  # tt_tmpfs's mounts: unmounted once the processes that used them are gone
  # (a busy one lazily), then their mount points go with the other dirs.
  for p in "${TT_MOUNTS[@]}"; do
    umount "$p" 2>/dev/null || umount -l "$p" || echo "WARNING: cannot unmount $p"
  done
  TT_MOUNTS=()
  for p in "${TT_DIRS[@]}"; do rm -rf "$p"; done
  TT_DIRS=()
}

# tt_tmpfs VAR NAME OPTIONS: a temp dir (tt_mkdir VAR NAME) with a tmpfs of
# mount OPTIONS (size=128k,mode=0700) on it, unmounted and removed by
# tt_cleanup; the test skips, naming what it needs, where mounting is
# refused.  Call tt_own_mount_ns "$@" first (a SIGKILLed test's tmpfs then
# goes with its namespace).
TT_MOUNTS=()
tt_tmpfs() {
  local err
  tt_mkdir "$1" "$2"
  if ! err=$(mount -t tmpfs -o "$3" "thoth-$2" "${!1}" 2>&1); then
    tt_skip "mounting a tmpfs was refused (needs CAP_SYS_ADMIN, i.e. root, and mount(8)): $err"
  fi
  TT_MOUNTS+=("${!1}")
}

# tt_own_mount_ns "$@": re-run the calling script in a mount namespace of
# its own where one can be made (unshare(1) without --fork: the same
# process, so ctest's pid is still this shell), before it mounts anything:
# the EXIT trap cannot run when ctest's timeout SIGKILLs the script, and a
# tmpfs would then stay mounted on the host; in a namespace of its own it
# goes with the last of the test's processes.  Where unshare is refused (a
# container without CAP_SYS_ADMIN) the script's mount is refused too and it
# skips; its EXIT trap is the fallback.
tt_own_mount_ns() {
	if [ -z "${THOTH_FULL_DISK_NS:-}" ] && command -v unshare >/dev/null &&
		unshare --mount --propagation private true 2>/dev/null; then
		THOTH_FULL_DISK_NS=1 exec unshare --mount --propagation private bash "$0" "$@"
	fi
}

tt_init() {
  if [ -n "${1:-}" ]; then
    TT_BUILD=$1
    THOTHD=$TT_BUILD/kernel/thothd/thothd
    THOTHCTL=$TT_BUILD/tools/thothctl/thothctl
  fi
  [ -n "${THOTHD:-}" ] && [ -n "${THOTHCTL:-}" ] || tt_fail "tt_init: no build dir, and THOTHD or THOTHCTL unset"
  trap tt_cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  trap 'exit 129' HUP
}

# tt_tempdir TAG: make a fresh dir for sockets and print its path (mode
# 0700 is the caller's business; removing it too): the folder tt_mkdir
# makes, for a script that keeps its own EXIT trap and does not tt_init.
# mktemp's message and status when it cannot.
tt_tempdir() {
  local parent=${TMPDIR:-/tmp} prefix=thoth-$1
  if [ $(( ${#parent} + ${#prefix} + 8 )) -gt 60 ]; then
    local stage=${THOTH_TEST_STAGE:-}
    stage=${stage%/}
    parent=/tmp prefix=${stage##*/}-$prefix
    [ -n "$stage" ] || prefix=thoth-short-$1
  fi
  mktemp -d "$parent/$prefix-XXXXXX"
}

# The folder is TMPDIR's unless PARENT is given; where a long TMPDIR would
# leave its sockets no room (their paths hold 107 bytes: a runtime dir of
# at most 90, tt_start_thothd) it is a short one in /tmp named for the
# stage, /tmp/MARK-thoth-NAME-XXXXXX, which the stage's guard checks as
# it does TMPDIR (tests/common/tmpdir.h, test_sock_template).
tt_mkdir() {
  local dir
  if [ -n "${3:-}" ]; then
    dir=$(mktemp -d "$3/thoth-${2:-test}-XXXXXX") || tt_fail "cannot make a temp dir under $3"
  else
    dir=$(tt_tempdir "${2:-test}") || tt_fail "cannot make a temp dir for ${2:-test}"
  fi
  chmod 0700 "$dir"
  TT_DIRS+=("$dir")
  printf -v "$1" '%s' "$dir"
}

tt_spawn() {
  "$@" &
  TT_PID=$!
  TT_PIDS+=("$TT_PID")
}

tt_reap() {
  local p=$1 rc=0 i
  wait "$p" 2>/dev/null || rc=$?
  for i in "${!TT_PIDS[@]}"; do [ "${TT_PIDS[$i]}" != "$p" ] || unset 'TT_PIDS[i]'; done
  TT_PIDS=("${TT_PIDS[@]}")
  return $rc
}

tt_until() {
  local show= secs what deadline
  if [ "$1" = --show ]; then show=$2; shift 2; fi
  secs=$1 what=$2
  shift 2
  deadline=$((SECONDS + secs))
  until "$@"; do
    if [ $SECONDS -ge $deadline ]; then
      [ -z "$show" ] || cat "$show"
      tt_fail "$what within $secs s"
    fi
    sleep 0.02
  done
}

tt_start_thothd() {
  local rt=$1 ready= part fd rc deadline
  shift
  # A unix socket's path holds at most 107 bytes: thothd.sock and the
  # services' sockets go in RT (a long TMPDIR pushes them past it).
  [ ${#rt} -le 90 ] ||
    tt_fail "runtime dir $rt is ${#rt} bytes long: over 90, its sockets' paths would pass the 107-byte limit (set TMPDIR shorter)"
  # The command is made here, in the test's shell: an expansion that fails
  # (set -u) fails the test at once, not the background job before it
  # opens the fifo.
  # The dashboard on a port of its own unless the test chose one: at
  # thothd's default (9180) it ran only when no other test's thothd held
  # 9180 at that moment, so the same test's thothd had a listener more or
  # fewer from run to run.
  local a port=(--http-port 0)
  for a in "$@"; do [ "$a" != --http-port ] || port=(); done
  local cmd=(${TT_THOTHD_WRAP+"${TT_THOTHD_WRAP[@]}"} "$THOTHD" --runtime-dir "$rt" --ready-fd 3 ${port+"${port[@]}"} "$@")
  rm -f "$rt/ready"
  mkfifo "$rt/ready" || tt_fail "cannot make the fifo $rt/ready"
  # Opened read-write, the fifo opens at once here and thothd's open (its
  # fd 3) does not wait either.  This shell then holds a writer itself, so
  # thothd's exit is no EOF: the read is in short slices, each followed by
  # a look at whether thothd still runs, up to the deadline.
  exec {fd}<>"$rt/ready"
  "${cmd[@]}" 3>"$rt/ready" 2>>"$rt/thothd.log" {fd}<&- &
  THOTHD_PID=$! TT_PID=$!
  TT_PIDS+=("$THOTHD_PID")
  TT_THOTHD_PIDS+=("$THOTHD_PID")
  deadline=$((SECONDS + TT_DEADLINE))
  while :; do
    part= rc=0
    IFS= read -r -t 0.1 -u "$fd" part || rc=$?
    ready+=$part                          # a slice's partial line is kept
    [ $rc -ne 0 ] || break                # a whole line
    if ! _tt_ours "$THOTHD_PID" live; then
      # Exited: what it wrote before is in the fifo still.
      IFS= read -r -t 0.1 -u "$fd" part || true
      ready+=$part
      break
    fi
    [ $SECONDS -lt $deadline ] || break
  done
  exec {fd}<&-
  rm -f "$rt/ready"                     # thothd has opened it, or is gone
  [ "$ready" = READY=1 ] && [ -S "$rt/thothd.sock" ] && return 0
  cat "$rt/thothd.log"
  _tt_ours "$THOTHD_PID" live || tt_fail "thothd (pid $THOTHD_PID) exited before it was ready in $rt (it said '$ready')"
  tt_fail "thothd (pid $THOTHD_PID) not ready within $TT_DEADLINE s in $rt (it said '$ready')"
}

tt_wait_registered() {
  local rt=$1 name=$2 deadline=$((SECONDS + TT_DEADLINE))
  # resolve, not services: services NAME lists every name NAME begins.
  until "$THOTHCTL" --runtime-dir "$rt" resolve "$name" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || { cat "$rt/$name.log" 2>/dev/null; tt_fail "$name did not register within $TT_DEADLINE s"; }
    sleep 0.02
  done
}

tt_start_service() {
  local rt=$1 name=$2 pid
  shift 2
  "$@" 2>>"$rt/$name.log" &
  pid=$!
  TT_PIDS+=("$pid")
  tt_wait_registered "$rt" "$name"
  TT_PID=$pid
}
