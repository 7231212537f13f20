#!/usr/bin/env bash
# tests/systemd/test_socket_activation.sh THOTHD THOTHCTL
#
# systemd-socket-activate (systemd's own implementation of the protocol, no
# PID-1 systemd needed) listens on RUNTIME_DIR/thothd.sock and starts thothd
# on the first connection, passing the socket as fd 3 with LISTEN_FDS=1.
# thothd must serve that socket (the first client's status call succeeds and
# names thothd's pid, which is the pid systemd-socket-activate became), and
# leave the socket file in place when it stops (it belongs to the manager).
set -euo pipefail
. "$(dirname "$0")/../common/thoth_test.sh"
THOTHD=$1 THOTHCTL=$2
tt_init
tt_mkdir RT sockact
mkfifo "$RT/log"
# (started here, not by tt_spawn: the fifo's open must be the background
# job's, or it waits for the reader opened below; likewise the cat below,
# whose stdin tt_spawn would not pass on)
# (--http-port 0: the dashboard on a port of its own, not the default 9180
# that another test's thothd may hold at that moment)
systemd-socket-activate -l "$RT/thothd.sock" "$THOTHD" --runtime-dir "$RT" --http-port 0 2>"$RT/log" &
pid=$!
TT_PIDS+=("$pid")
exec 3<"$RT/log"
# systemd-socket-activate says when it listens; wait for that line (bounded).
line=""
while IFS= read -r -t 20 line <&3; do
  case $line in *"Listening on"*) break ;; esac
done
case $line in *"Listening on"*) ;; *) echo "FAIL: systemd-socket-activate did not listen: $line"; exit 1 ;; esac
# Keep draining its (then thothd's) stderr so neither blocks on the fifo.
cat <&3 >"$RT/thothd.log" &
TT_PIDS+=("$!")
out=$("$THOTHCTL" --runtime-dir "$RT" --json status) || { echo "FAIL: status"; cat "$RT/thothd.log"; exit 1; }
echo "$out"
grep -q "\"pid\":$pid," <<<"$out" || { echo "FAIL: status does not name pid $pid"; exit 1; }
# The log reaches the file through the cat above, maybe after status has
# answered (on a loaded machine the line was not there yet: a failed run):
# wait for it, bounded.
deadline=$((SECONDS + 20))
until grep -q "socket activation" "$RT/thothd.log"; do
  [ $SECONDS -lt $deadline ] || { echo "FAIL: thothd did not say it took the passed socket"; cat "$RT/thothd.log"; exit 1; }
  sleep 0.02
done
kill -TERM "$pid"
rc=0
tt_reap "$pid" || rc=$?
[ "$rc" = 0 ] || tt_fail "thothd exited $rc on SIGTERM"
[ -S "$RT/thothd.sock" ] || { echo "FAIL: thothd removed the socket it was given"; exit 1; }
echo "PASS"
