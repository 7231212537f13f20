#!/usr/bin/env bash
# tests/cli/test_cli_operator.sh SOURCE_DIR BUILD_DIR
#
# What an operator trying thothd and thothctl for the first time met
# (session 38's trial): each case failed on the code before.
#  - a bad --http-addr, --etcd, --host-id or --advertise (or --host-id
#    without --etcd) was found after thothd had taken the runtime dir and
#    served its socket, and exited 1: thothd(8) says 2 for bad arguments;
#  - a lock file thothd cannot open said "system call failed";
#  - SIGHUP (a closed terminal, or `kill -HUP` meant as "reload") killed
#    thothd on the spot, leaving its socket and pid file behind; then,
#    under nohup, SIGHUP still stopped it;
#  - a dashboard token file every user could read (0644) was taken, a FIFO
#    hung thothd, and "Authorization: bearer TOKEN" (the scheme in lower
#    case), "Bearer  TOKEN" or "Bearer TOKEN " was 401;
#  - `thothctl sched --from <TAB>` offered directories only, and the value
#    of `codex read --from` (a sequence number) directories too;
#  - `thothctl -- status` was "unknown option --"; `probe check`/`kernel`
#    of a missing file named the path twice; `codex read --from 5 --to 1`
#    read nothing and exited 0.
# And session 39's (ops39):
#  - `thothctl topology NOSUCH` printed "none" per node and exited 0;
#  - `thothctl status --json --version` was "unknown option --version"
#    (exit 2) while `thothctl --version status` answered the version;
#  - thothd with an unknown option printed its whole usage (40 lines),
#    where getopt-based tools say one line and "Try ... --help";
#  - `thothd --http-port off --http-token-file F` (or --http-addr, ...)
#    ignored the other --http-* option without a word.
set -uo pipefail
SRC=$1 BUILD=$2
THOTHD=$BUILD/kernel/thothd/thothd
. "$SRC/tests/common/thoth_test.sh"
# thothd's sockets go in it: a short folder of the stage's if TMPDIR is long.
TMP=$(tt_tempdir cli-operator) || { echo "FAIL: no temp dir"; exit 1; }
PID=""
cleanup() {
  [ -z "$PID" ] || { kill -KILL "$PID" 2>/dev/null; wait "$PID" 2>/dev/null; }
  rm -rf "$TMP"
}
trap cleanup EXIT
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

# refused RC PATTERN ARGS...: thothd ARGS exits RC, its stderr holds
# PATTERN, and it created no runtime dir (it refused before starting).
refused() {
  local want=$1 pattern=$2
  shift 2
  rm -rf "$TMP/rt"
  # --http-port 0, not off: off with another --http-* option is refused
  # by itself (section 8); every case here is refused before a port is taken.
  timeout 10 "$THOTHD" --runtime-dir "$TMP/rt" --http-port 0 "$@" >"$TMP/out" 2>"$TMP/err"
  local rc=$?
  if [ "$rc" != "$want" ] || ! grep -qF -- "$pattern" "$TMP/err"; then
    fail "thothd $*: exit $rc (want $want), stderr: $(head -3 "$TMP/err")"
  elif [ -e "$TMP/rt" ]; then
    fail "thothd $*: refused only after creating its runtime dir"
  else
    echo "ok: thothd $*: $(head -1 "$TMP/err")"
  fi
}

# 1. Bad option values: exit 2 before anything starts.
refused 2 "--http-addr 'localhost' is not a numeric IPv4 or IPv6 address" --http-addr localhost
refused 2 "--etcd foo: expected http://HOST:PORT" --etcd foo
refused 2 "--host-id bad/name: 1..63 characters" --etcd http://127.0.0.1:1 --host-id bad/name
refused 2 "--advertise: address \"nonsense\" does not start with \"tcp:\"" \
  --etcd http://127.0.0.1:1 --advertise nonsense
refused 2 "--host-id, --advertise and --etcd-ttl need --etcd" --host-id h1

# 2. A lock file that cannot be opened: the file and the reason.
mkdir -m 700 "$TMP/lockdir" && mkdir "$TMP/lockdir/thothd.pid"
timeout 20 "$THOTHD" --runtime-dir "$TMP/lockdir" --http-port off >/dev/null 2>"$TMP/err"
rc=$?
if [ $rc = 1 ] && grep -qF "cannot take the lock file $TMP/lockdir/thothd.pid: Is a directory" "$TMP/err"; then
  echo "ok: lock file: $(head -1 "$TMP/err")"
else
  fail "a lock file that is a directory: exit $rc, stderr: $(head -2 "$TMP/err")"
fi

# start_thothd ARGS...: thothd in $TMP/rt, in the background, ready.
# A thothd left from an earlier start that failed is killed first.
start_thothd() {
  [ -z "$PID" ] || { kill -KILL "$PID" 2>/dev/null; wait "$PID" 2>/dev/null; PID=""; }
  rm -rf "$TMP/rt" "$TMP/ready"
  mkfifo "$TMP/ready"
  ${LAUNCH:-} "$THOTHD" --runtime-dir "$TMP/rt" --ready-fd 3 "$@" 3>"$TMP/ready" >/dev/null 2>"$TMP/log" &
  PID=$!
  local ready=""
  read -r -t 30 ready <"$TMP/ready" || true
  [ "$ready" = "READY=1" ]
}

# stop_thothd SIGNAL: send it, give thothd 20 s to exit, and set rc to its
# exit status; one still running then is a failure, killed (a bare wait
# would hang the test until ctest's timeout).
stop_thothd() {
  kill "-$1" "$PID" 2>/dev/null
  timeout 20 tail --pid="$PID" -f /dev/null
  if kill -0 "$PID" 2>/dev/null; then
    fail "thothd still running 20 s after SIG$1: $(tail -2 "$TMP/log")"
    kill -KILL "$PID" 2>/dev/null
  fi
  wait "$PID"
  rc=$?
  PID=""
}

# 3. SIGHUP: a clean stop like SIGTERM's (exit 0, socket and pid file gone).
if start_thothd --http-port off; then
  stop_thothd HUP
  left=$(ls "$TMP/rt" 2>/dev/null | grep -E '^thothd\.(sock|pid)$' | tr '\n' ' ')
  if [ $rc = 0 ] && [ -z "$left" ] && grep -q "signal 1: shutting down" "$TMP/log"; then
    echo "ok: SIGHUP stops thothd cleanly"
  else
    fail "SIGHUP: exit $rc, left behind: '${left}', log: $(tail -2 "$TMP/log")"
  fi
else
  fail "thothd did not start: $(tail -3 "$TMP/log")"
  kill -KILL "$PID" 2>/dev/null
fi

# 3b. ... but under nohup SIGHUP stays ignored: thothd blocked it for its
# signalfd, and a blocked signal reaches the signalfd even when ignored,
# so `nohup thothd` stopped on the hangup it was started to survive.
if LAUNCH=nohup start_thothd --http-port off; then
  kill -HUP "$PID"
  sleep 1
  if kill -0 "$PID" 2>/dev/null && ! grep -q "signal 1" "$TMP/log"; then
    echo "ok: under nohup SIGHUP is ignored"
  else
    fail "under nohup SIGHUP stopped thothd: $(tail -2 "$TMP/log")"
  fi
  stop_thothd TERM
  [ $rc = 0 ] || fail "nohup thothd after SIGTERM: exit $rc (want 0)"
else
  fail "nohup thothd did not start: $(tail -3 "$TMP/log")"
  kill -KILL "$PID" 2>/dev/null
fi

# 3c. A host name that is no host id, with no --host-id given: named as the
# host name (it said "--host-id NAME", an option nobody gave).  The name is
# set in a user+UTS namespace; skipped where those cannot be made.
if unshare --user --map-root-user --uts true 2>/dev/null && [ -n "$TT_PYTHON3" ]; then
  rm -rf "$TMP/rt"
  timeout 20 unshare --user --map-root-user --uts "$TT_PYTHON3" -c '
import os, socket, sys
socket.sethostname("bad host")
os.execvp("timeout", ["timeout", "10"] + sys.argv[1:])' \
    "$THOTHD" --runtime-dir "$TMP/rt" --http-port off --etcd http://127.0.0.1:1 >/dev/null 2>"$TMP/err"
  rc=$?
  if [ $rc = 1 ] && grep -qF "the host name bad host (no --host-id given) is not a host id" "$TMP/err"; then
    echo "ok: an invalid host name: $(grep -o 'federation: .*' "$TMP/err")"
  else
    fail "an invalid host name, no --host-id: exit $rc, stderr: $(tail -1 "$TMP/err")"
  fi
else
  echo "skip: no user+UTS namespace here: the host-name case is not checked"
fi

# 4. The dashboard's token file: refused when others can read it ...
printf 'a-token-of-ours\n' >"$TMP/token"
chmod 644 "$TMP/token"
refused 2 "has mode 644: group/other must have no access (chmod 600)" --http-token-file "$TMP/token"
# ... or write it (0620 was named "other users can read")...
chmod 620 "$TMP/token"
refused 2 "has mode 620: group/other must have no access (chmod 600)" --http-token-file "$TMP/token"
# ... and a FIFO (or <(...)) is no file: fopen waited forever for a writer.
# refused runs thothd under timeout 10: a hang is exit 124, not 1.
mkfifo -m 600 "$TMP/token.fifo"
refused 2 "the token file $TMP/token.fifo is not a regular file" --http-token-file "$TMP/token.fifo"
chmod 600 "$TMP/token"
ln -s "$TMP/token" "$TMP/token.link"
refused 2 "the token file $TMP/token.link is a symbolic link" --http-token-file "$TMP/token.link"
# ... and taken once it is 0600.
chmod 600 "$TMP/token"
if start_thothd --http-port 0 --http-token-file "$TMP/token"; then
  # The Authorization scheme is case-insensitive: "bearer" was 401.
  url=$(grep -o 'dashboard at http://[^ ]*' "$TMP/log" | head -1 | sed 's/^dashboard at //')
  if [ -z "$url" ]; then
    fail "no dashboard URL in thothd's log: $(tail -2 "$TMP/log")"
  else
    for scheme in Bearer bearer BEARER; do
      code=$(curl -s -m 10 -o /dev/null -w '%{http_code}' -H "Authorization: $scheme a-token-of-ours" "${url}metrics")
      [ "$code" = 200 ] && echo "ok: Authorization: $scheme TOKEN: 200" ||
        fail "Authorization: $scheme TOKEN: $code (want 200)"
    done
    # One or more spaces or tabs after the scheme, trailing ones trimmed:
    # two spaces, or one after the token, were 401.
    tab=$'\t'
    for value in "Bearer  a-token-of-ours" "Bearer a-token-of-ours " "Bearer${tab}a-token-of-ours" \
                 "bearer ${tab} a-token-of-ours${tab} "; do
      code=$(curl -s -m 10 -o /dev/null -w '%{http_code}' -H "Authorization: $value" "${url}metrics")
      [ "$code" = 200 ] && echo "ok: Authorization: '$value': 200" ||
        fail "Authorization: '$value': $code (want 200)"
    done
    for value in "bearer wrong-token" "Bearer" "Bearer " "Bearera-token-of-ours" "Bearer a-token-of-our" \
                 "Basic a-token-of-ours"; do
      code=$(curl -s -m 10 -o /dev/null -w '%{http_code}' -H "Authorization: $value" "${url}metrics")
      [ "$code" = 401 ] && echo "ok: Authorization: '$value': 401" ||
        fail "Authorization: '$value': $code (want 401)"
    done
  fi
  stop_thothd TERM
  [ $rc = 0 ] && echo "ok: a 0600 token file is taken" || fail "thothd with a 0600 token: exit $rc"
else
  fail "thothd refused a 0600 token file: $(tail -2 "$TMP/log")"
  kill -KILL "$PID" 2>/dev/null
fi

# 5. Completion: the values of --from.
complete_words() {   # WORD...: COMPREPLY for the last word
  COMP_WORDS=("$@")
  COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
  COMPREPLY=()
  _thothctl
  echo "${COMPREPLY[*]}"
}
. "$SRC/completion/thothctl.bash"
mkdir -p "$TMP/traces/older" && : >"$TMP/traces/run1.json"
got=$(complete_words thothctl sched --from "$TMP/traces/ru")
[ "$got" = "$TMP/traces/run1.json" ] && echo "ok: sched --from completes a trace file" ||
  fail "thothctl sched --from $TMP/traces/ru<TAB>: '$got' (want the file)"
got=$(cd "$TMP/traces" && complete_words thothctl codex read s --from '')
[ -z "$got" ] && echo "ok: codex read --from offers nothing (a sequence number)" ||
  fail "thothctl codex read s --from <TAB>: '$got' (want nothing: a number)"

# 6. thothctl: "--" ends the global options ("unknown option --" before),
# and an object file that cannot be opened is named once ("x.o: x.o: ...").
THOTHCTL=$BUILD/tools/thothctl/thothctl
timeout 20 "$THOTHCTL" --runtime-dir "$TMP/none" -- status >/dev/null 2>"$TMP/err"
rc=$?
[ $rc = 1 ] && grep -qF "thothd is not running (no socket at $TMP/none/thothd.sock)" "$TMP/err" &&
  echo "ok: thothctl -- status: $(head -1 "$TMP/err")" ||
  fail "thothctl -- status: exit $rc (want 1, thothd not running): $(head -1 "$TMP/err")"
for sub in check kernel; do
  timeout 20 "$THOTHCTL" --runtime-dir "$TMP/none" probe $sub "$TMP/nosuch.o" >/dev/null 2>"$TMP/err"
  rc=$?
  if [ $rc = 2 ] && [ "$(head -1 "$TMP/err")" = "thothctl: $TMP/nosuch.o: No such file or directory" ]; then
    echo "ok: probe $sub NOSUCH: $(head -1 "$TMP/err")"
  else
    fail "probe $sub NOSUCH: exit $rc, stderr: $(head -1 "$TMP/err")"
  fi
done

# 7. codex read with its range backwards: refused (it read nothing, exit 0,
# like an empty stream).  Refused before connecting: no codex needed.
# An explicit --to 0 / --until 0 (0 is "no bound" inside) escaped that
# check and read the whole stream.
for range in "--from 5 --to 1:is past --to 1" "--since 200 --until 100:is past --until 100" \
             "--from 5 --to 0:--to 0: sequence numbers start at 1" "--to 0:--to 0: sequence numbers" \
             "--since 200 --until 0:--until 0: no record is that old"; do
  want=${range#*:} range=${range%%:*}
  # shellcheck disable=SC2086
  timeout 20 "$THOTHCTL" --runtime-dir "$TMP/none" codex read s $range >/dev/null 2>"$TMP/err"
  rc=$?
  [ $rc = 2 ] && grep -qF -- "$want" "$TMP/err" && echo "ok: codex read s $range: $(head -1 "$TMP/err")" ||
    fail "codex read s $range: exit $rc (want 2), stderr: $(head -1 "$TMP/err")"
done

# 8. thothd's usage errors: one line naming the mistake and where the usage
# is, exit 2 (the whole usage, 40 lines, buried the one that mattered) ...
for args in "--no-such-option" "--runtime-dir" "stray-argument"; do
  # shellcheck disable=SC2086
  timeout 10 "$THOTHD" $args >"$TMP/out" 2>"$TMP/err"
  rc=$?
  lines=$(wc -l <"$TMP/err")
  if [ $rc = 2 ] && [ "$lines" = 2 ] && [ "$(tail -1 "$TMP/err")" = "Try 'thothd --help' for more information." ] &&
     head -1 "$TMP/err" | grep -q "^thothd: " && [ ! -s "$TMP/out" ]; then
    echo "ok: thothd $args: $(head -1 "$TMP/err")"
  else
    fail "thothd $args: exit $rc (want 2), $lines lines on stderr (want 2): $(head -3 "$TMP/err")"
  fi
done
grep -qF -- "'--no-such-option'" <(timeout 10 "$THOTHD" --no-such-option 2>&1) ||
  fail "thothd --no-such-option: the option is not named"
# ... and --http-port off beside another --http-* option, which it would
# ignore: refused naming them, in either order.
refused_off() {   # PATTERN ARGS...: thothd ARGS (with --http-port off somewhere in them)
  local pattern=$1
  shift
  rm -rf "$TMP/rt"
  timeout 10 "$THOTHD" --runtime-dir "$TMP/rt" "$@" >/dev/null 2>"$TMP/err"
  local rc=$?
  if [ $rc = 2 ] && grep -qF -- "$pattern" "$TMP/err" && [ ! -e "$TMP/rt" ]; then
    echo "ok: thothd $*: $(head -1 "$TMP/err")"
  else
    fail "thothd $*: exit $rc (want 2, before starting), stderr: $(head -2 "$TMP/err")"
  fi
}
refused_off "--http-port off turns the dashboard off, but --http-token-file was given" \
  --http-port off --http-token-file "$TMP/token"
refused_off "but --http-addr was given" --http-addr 127.0.0.1 --http-port off
refused_off "but --http-timeout-s, --http-max-connections and --http-events-memory-kib were given" \
  --http-port off --http-timeout-s 5 --http-max-connections 9 --http-events-memory-kib 64
# The last --http-port counts: "off" then a port is a dashboard.
if start_thothd --http-port off --http-port 0 --http-max-connections 9; then
  grep -q "dashboard at http://" "$TMP/log" && echo "ok: --http-port off then 0: a dashboard" ||
    fail "--http-port off --http-port 0: no dashboard: $(tail -2 "$TMP/log")"
  stop_thothd TERM
else
  fail "thothd --http-port off --http-port 0 --http-max-connections 9 did not start: $(tail -2 "$TMP/log")"
fi

# 9. thothctl --version is a global option wherever the global options are
# taken (after the command's name too, as --json): the version, exit 0,
# JSON under --json; the command does not run (no thothd is needed).
for args in "status --json --version" "--json status --version" "resolve echo --version --json" \
            "topology --version --json" "pm --json --version" "--version --json services"; do
  # shellcheck disable=SC2086
  out=$(timeout 20 "$THOTHCTL" --runtime-dir "$TMP/none" $args 2>"$TMP/err")
  rc=$?
  if [ $rc = 0 ] && printf '%s' "$out" | "$TT_PYTHON3" -c 'import json,sys; d=json.load(sys.stdin); assert d["tool"] == "thothctl" and d["version"]' 2>/dev/null; then
    echo "ok: thothctl $args: $out"
  else
    fail "thothctl $args: exit $rc, stdout '$out', stderr: $(head -1 "$TMP/err")"
  fi
done
for args in "status --version" "codex --version"; do
  # shellcheck disable=SC2086
  out=$(timeout 20 "$THOTHCTL" --runtime-dir "$TMP/none" $args 2>"$TMP/err")
  rc=$?
  case $out in
    "thothctl "[0-9]*) [ $rc = 0 ] && echo "ok: thothctl $args: $out" || fail "thothctl $args: exit $rc" ;;
    *) fail "thothctl $args: exit $rc, stdout '$out', stderr: $(head -1 "$TMP/err")" ;;
  esac
done
# The command's --help asked beside it is the command's help.
out=$(timeout 20 "$THOTHCTL" --runtime-dir "$TMP/none" status --version --help 2>&1)
case $out in "usage: thothctl"*status*) echo "ok: status --version --help: the usage" ;;
  *) fail "thothctl status --version --help: $out" ;; esac

# 9b. thothctl's usage errors are one line (thothctl(1): "Errors are one
# line on standard error"): the whole usage, 50 lines, followed it.
for args in "status extra" "--no-such-option status" "frobnicate" "resolve" "topology -x" "topology a b"; do
  # shellcheck disable=SC2086
  timeout 20 "$THOTHCTL" --runtime-dir "$TMP/none" $args >"$TMP/out" 2>"$TMP/err"
  rc=$?
  lines=$(wc -l <"$TMP/err")
  [ $rc = 2 ] && [ "$lines" = 1 ] && [ ! -s "$TMP/out" ] && echo "ok: thothctl $args: $(cat "$TMP/err")" ||
    fail "thothctl $args: exit $rc (want 2), $lines lines on stderr (want 1): $(head -2 "$TMP/err")"
done
# probe's subcommands with the wrong number of arguments said nothing but
# the 17-line usage: one line naming what each takes.
for args in "check:takes one FILE.o, not 0 arguments" "detach 1 2:takes one ID, not 2 arguments" \
            "maps:takes one ID, not 0" "list x:takes no argument, not 1 argument"; do
  want=${args#*:} args=${args%%:*}
  # shellcheck disable=SC2086
  timeout 20 "$THOTHCTL" --runtime-dir "$TMP/none" probe $args >/dev/null 2>"$TMP/err"
  rc=$?
  [ $rc = 2 ] && [ "$(wc -l <"$TMP/err")" = 1 ] && grep -qF "probe ${args%% *}: $want" "$TMP/err" &&
    echo "ok: thothctl probe $args: $(cat "$TMP/err")" ||
    fail "thothctl probe $args: exit $rc (want 2), stderr: $(head -2 "$TMP/err")"
done
grep -qF "unknown option -x" <(timeout 20 "$THOTHCTL" topology -x 2>&1) ||
  fail "thothctl topology -x: the option is not named"

# 10. thothctl topology NAME: a name no node is given an instance of is
# said, exit 1 (as resolve's "no live instance"), the machine still shown.
timeout 20 "$THOTHCTL" --runtime-dir "$TMP/none" topology nosuch >"$TMP/out" 2>"$TMP/err"
rc=$?
[ $rc = 1 ] && grep -qF "topology: cannot place 'nosuch': the resolve table is not available" "$TMP/err" &&
  grep -q "^resolve table: not available" "$TMP/out" &&
  echo "ok: topology NAME without thothd: $(head -1 "$TMP/err")" ||
  fail "topology nosuch without thothd: exit $rc (want 1): $(head -1 "$TMP/err")"
if start_thothd --http-port off; then
  for json in "" --json; do
    # shellcheck disable=SC2086
    timeout 20 "$THOTHCTL" --runtime-dir "$TMP/rt" $json topology nosuch >"$TMP/out" 2>"$TMP/err"
    rc=$?
    if [ $rc = 1 ] && grep -qF "thothctl: topology: no live instance of 'nosuch' in the resolve table" "$TMP/err"; then
      echo "ok: topology $json nosuch: $(head -1 "$TMP/err")"
    else
      fail "topology $json nosuch: exit $rc (want 1), stderr: $(head -1 "$TMP/err")"
    fi
    if [ -n "$json" ]; then
      "$TT_PYTHON3" -c 'import json,sys; [json.loads(l) for l in open(sys.argv[1]) if l.strip()]' "$TMP/out" ||
        fail "topology --json nosuch: stdout is not JSON lines: $(head -2 "$TMP/out")"
    fi
  done
  timeout 20 "$THOTHCTL" --runtime-dir "$TMP/rt" topology >/dev/null 2>"$TMP/err"
  rc=$?
  [ $rc = 0 ] && echo "ok: topology alone: exit 0" || fail "topology (no NAME): exit $rc: $(head -1 "$TMP/err")"
  stop_thothd TERM
else
  fail "thothd did not start: $(tail -3 "$TMP/log")"
fi

[ $failures = 0 ] || { echo "$failures failure(s)"; exit 1; }
echo "all passed"
