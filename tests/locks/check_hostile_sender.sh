#!/usr/bin/env bash
# test_locks_hostile_sender THOTHLOCK HOSTILE_SENDER: thothlock's socket
# (THOTHLOCK_FD) is open in everything it runs, so what comes through it is
# anybody's.  hostile_sender sends 307 messages no preload sends (none or
# three descriptors, /dev/null, a pipe, a directory, an unsealed memfd,
# 300 sealed memfds naming pids it is not) and then forks a child that
# takes a lock 1000 times: the report has the sender and its child, exact,
# no made-up pid, and one line naming what was refused.  Before the
# checks at receipt, the 300 took the 256 places (the child's table was
# dropped) and their refusals at the report made the exit status 1.  Now
# (pid namespaces) a table is kept under the pid the kernel names as its
# sender, whatever its header says: the 300 are the sender's own
# hand-overs, each a copy of its header (the same start), so none takes a
# place, none displaces its real table, and none is refused: 7 are.
set -uo pipefail
THOTHLOCK=$1
SENDER=$2
T=$(mktemp -d "${TMPDIR:-/tmp}/thoth-locks-hostile-XXXXXX")
trap 'rm -rf "$T"' EXIT
# Its programs are killed with -9, so a live marker they publish in the
# user's runtime dir (/tmp/thoth-UID, where one exists) would stay there
# for ever: give them a runtime dir of the test's own that does not
# exist, so under thothlock nothing is published anywhere.
export THOTH_RUNTIME_DIR="$T/rt"
fail() { echo "FAIL: $*"; exit 1; }
# The python3 CMake found (THOTH_PYTHON3), not a version manager's shim.
PY=${THOTH_PYTHON3:-python3}

timeout 120 "$THOTHLOCK" --all --json --output "$T/json" -- "$SENDER" >"$T/out" 2>"$T/err"
rc=$?
cat "$T/out" "$T/err"
[ $rc = 0 ] || fail "thothlock exit $rc, want 0"
read -r _ sent _ child <"$T/out" || fail "hostile_sender said: $(cat "$T/out")"
[ "$sent" = 307 ] || fail "hostile_sender sent $sent messages, want 307"
grep -q "^thothlock: 7 messages on thothlock's socket refused (the last: a message with more than one descriptor)$" "$T/err" ||
  fail "no line naming the 7 refused messages: $(cat "$T/err")"
jq -e . "$T/json" >/dev/null || fail "not JSON: $(cat "$T/json")"
pids=$(jq -c '[.processes[].pid] | sort' "$T/json")
sender=$(jq -r '[.processes[] | select(.pid != '"$child"') | .pid] | first' "$T/json")
[ "$pids" = "$(jq -nc "[$sender, $child] | sort")" ] ||
  fail "processes $pids, want the sender and its child $child only"
# Its real table, not a forged one: no namespace pid (a header naming
# 40002xx) and its own program's name.
[ "$(jq -c '[.processes[] | select(has("namespace_pid"))]' "$T/json")" = "[]" ] ||
  fail "a forged header's pid reported: $(jq -c '.processes' "$T/json")"
[ "$(jq -r '[.locks[] | select(.name == "hostile_child_lock" and .pid == '"$child"')] | .[0].acquisitions' "$T/json")" = 1000 ] ||
  fail "the child's hostile_child_lock: $(jq -c '[.locks[] | select(.pid == '"$child"') | {name, acquisitions}]' "$T/json")"
echo "ok: 7 hostile messages refused at receipt, 300 forged pids took no place, the child's 1000 acquisitions reported"

# A program that closes THOTHLOCK_FD and puts a socket of its own under
# that number, then forks: the child's preload must not send its table (a
# byte and a descriptor) into the program's socket.  Through libc (close,
# dup2: interposed since lock43) the close spares thothlock's socket and
# the dup2 moves it to another number: the child still hands its table to
# thothlock, and nothing is said; so does a child that execs a program
# (the variable names the old number: its preload finds the socket by
# the inode).  Through the raw dup3 syscall (not seen
# by the preload) THOTHLOCK_FD's inode tells it is no longer that socket:
# nothing sent, a warning, the copy at exit.
reuse_prog='
import ctypes, os, socket, sys
fd = int(os.environ["THOTHLOCK_FD"].split(":")[0])
os.close(fd)
mine, peer = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
if sys.argv[1] == "raw":
    if ctypes.CDLL(None, use_errno=True).syscall(292, mine.fileno(), fd, 0) != fd:
        sys.exit("raw dup3 failed")
else:
    os.dup2(mine.fileno(), fd)
pid = os.fork()
if pid == 0:
    os._exit(0)
os.waitpid(pid, 0)
execd = os.fork()
if execd == 0:
    os.execv(sys.executable, [sys.executable, "-c", "pass"])
os.waitpid(execd, 0)
peer.setblocking(False)
try:
    got = peer.recvmsg(16, 64)
    sys.exit(f"FAIL: the forked child sent {got!r} into the program'"'"'s own socket")
except BlockingIOError:
    print(f"nothing sent into the program'"'"'s socket; child {pid}; execd {execd}")
'
"$THOTHLOCK" --output "$T/reuse" -- "$PY" -c "$reuse_prog" libc >"$T/reuse.out" 2>"$T/reuse.err" ||
  fail "the program whose descriptor was reused: $(cat "$T/reuse.err")"
child=$(sed -n 's/.*; child \([0-9]*\); execd [0-9]*$/\1/p' "$T/reuse.out")
execd=$(sed -n 's/.*; execd \([0-9]*\)$/\1/p' "$T/reuse.out")
[ -n "$child" ] && [ -n "$execd" ] || fail "the program said: $(cat "$T/reuse.out")"
[ -s "$T/reuse.err" ] && fail "something said on stderr: $(cat "$T/reuse.err")"
for p in "$child" "$execd"; do
  grep -q "^thothlock: pid $p " "$T/reuse" || fail "the child's table ($p) not reported: $(grep '^thothlock: pid' "$T/reuse")"
done
echo "ok: close and dup2 onto THOTHLOCK_FD through libc: the forked and the exec'd child's tables still handed to thothlock, nothing sent into the program's socket"
if [ "$(uname -m)" = x86_64 ]; then
  "$THOTHLOCK" --output "$T/reuse" -- "$PY" -c "$reuse_prog" raw >"$T/reuse.out" 2>"$T/reuse.err" ||
    fail "the program whose descriptor was reused by a raw dup3: $(cat "$T/reuse.err")"
  grep -q "not thothlock's socket (the program closed or reused it?)" "$T/reuse.err" ||
    fail "no warning for the reused THOTHLOCK_FD: $(cat "$T/reuse.err")"
  echo "ok: a forked child does not send into a socket the program put at THOTHLOCK_FD by a raw dup3"
fi
echo PASS
