# (No `| grep -q` under pipefail in these scripts: grep -q exits at the first
# match and the writer dies of SIGPIPE, failing the pipeline.)
# Shared by the install tests: start thothd in a fresh runtime dir, start the
# greeter service, call it, stop everything.  Only pids we started are killed.
#   run_greeter THOTHD THOTHCTL GREETER_SERVICE GREETER_CALL
# Prints the call's answer; fails (returns non-zero) with the logs otherwise.

# tt_tempdir: thothd's sockets go in the runtime dir, a short folder of the
# stage's when TMPDIR is long (thothd: "socket path too long").
. "$(dirname "${BASH_SOURCE[0]}")/../common/thoth_test.sh"

_pids=()
_rt=""
greeter_cleanup() {
  for ((i=${#_pids[@]}-1; i>=0; i--)); do
    kill -TERM "${_pids[$i]}" 2>/dev/null || true
    wait "${_pids[$i]}" 2>/dev/null || true
  done
  _pids=()
  [ -n "$_rt" ] && rm -rf "$_rt"
  _rt=""
}

run_greeter() {
  local thothd=$1 thothctl=$2 service=$3 call=$4
  _rt=$(tt_tempdir install-rt)
  # --http-port 0: at the default 9180 the dashboard ran only when no
  # other test's thothd held it at that moment.
  "$thothd" --runtime-dir "$_rt" --http-port 0 2>"$_rt/thothd.log" &
  _pids+=($!)
  # thothd answers once its socket listens: ask it, with a deadline.
  local ok=0
  for _ in $(seq 1 500); do
    if "$thothctl" --runtime-dir "$_rt" status >/dev/null 2>&1; then ok=1; break; fi
    kill -0 "${_pids[0]}" 2>/dev/null || break
    sleep 0.02
  done
  if [ $ok != 1 ]; then
    echo "thothd did not come up:" >&2; cat "$_rt/thothd.log" >&2; return 1
  fi
  "$service" --runtime-dir "$_rt" 2>"$_rt/service.log" &
  _pids+=($!)
  local answer
  if ! answer=$("$call" --runtime-dir "$_rt" world); then
    echo "call failed; service log:" >&2; cat "$_rt/service.log" >&2
    echo "thothd log:" >&2; cat "$_rt/thothd.log" >&2; return 1
  fi
  if [ "$answer" != "hello, world" ]; then
    echo "unexpected answer: '$answer'" >&2; return 1
  fi
  echo "$answer"
  greeter_cleanup
}
