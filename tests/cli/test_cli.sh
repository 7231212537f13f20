#!/usr/bin/env bash
# tests/cli/test_cli.sh SOURCE_DIR BUILD_DIR PYTHON3
#
# Command-line conventions of the installed programs:
#  - `--version` of thothd, thothctl and thothc prints the one version
#    (CMake project(VERSION), via thoth/version.h);
#  - every thothctl command honours the global --json, before or after the
#    command name: each line of output is a JSON object (python3 parses it),
#    --version and --help (global or a command's) included;
#  - the man pages are built from man/*.scd; the bash completions complete.
set -euo pipefail
. "$(dirname "$0")/../common/thoth_test.sh"
SRC=$1 BUILD=$2 PY=$3
tt_init "$BUILD"
THOTHC=$BUILD/tools/thothc/thothc ECHO=$BUILD/services/echo
V=$(sed -n 's/^project(thoth VERSION \([0-9.]*\).*/\1/p' "$SRC/CMakeLists.txt")
fail() { tt_fail "$@"; }

[ "$("$THOTHD" --version)" = "thothd $V" ] || fail "thothd --version: $("$THOTHD" --version)"
[ "$("$THOTHCTL" --version)" = "thothctl $V" ] || fail "thothctl --version: $("$THOTHCTL" --version)"
case $("$THOTHC" --version) in "thothc $V "*|"thothc $V") ;; *) fail "thothc --version: $("$THOTHC" --version)" ;; esac
grep -q "THOTH_VERSION_STRING \"$V\"" "$BUILD/include/thoth/version.h" || fail "version.h"

tt_mkdir RT cli
tt_start_thothd "$RT"
# Registration is asynchronous: tt_start_service waits for it (the
# commands below need the service).
tt_start_service "$RT" echo "$ECHO" --runtime-dir "$RT"

# json_lines ARGS...: run thothctl and keep its output; check_json (below)
# checks every output at once in one python3 (a start-up per command would
# cost more than the commands): stdout must be JSON objects, one a line, or
# one object (a report such as sched's).
n_out=0
json_lines() {
  local out
  out=$("$THOTHCTL" "$@") || fail "thothctl $* exited $?"
  [ -n "$out" ] || fail "thothctl $*: no output"
  n_out=$((n_out + 1))
  printf '%s\n' "thothctl $*" >"$RT/out.$n_out.cmd"
  printf '%s' "$out" >"$RT/out.$n_out"
}
check_json() {
  "$PY" - "$RT" "$n_out" <<'PY' || fail "thothctl output is not JSON objects"
import json, sys
rt, n = sys.argv[1], int(sys.argv[2])
bad = 0
for i in range(1, n + 1):
    cmd = open(f"{rt}/out.{i}.cmd").read().strip()
    text = open(f"{rt}/out.{i}").read()
    try:
        try:
            docs = [json.loads(text)]
        except ValueError:
            docs = [json.loads(line) for line in text.splitlines()]
        for d in docs:
            if not isinstance(d, dict):
                raise ValueError("not an object: %r" % (d,))
        print("ok:", cmd)
    except ValueError as e:
        print(f"FAIL: {cmd}: not JSON ({e}): {text}")
        bad += 1
sys.exit(1 if bad else 0)
PY
}
json_lines --runtime-dir "$RT" --json status
json_lines --runtime-dir "$RT" status --json
json_lines --runtime-dir "$RT" --json services
json_lines --runtime-dir "$RT" services echo --json
json_lines --runtime-dir "$RT" --json resolve echo
json_lines --json resolve echo --runtime-dir "$RT" --min-version 1.0.0
json_lines --runtime-dir "$RT" --json trace start --categories ipc
json_lines --runtime-dir "$RT" --json trace stop
json_lines --runtime-dir "$RT" --json trace dump --json "$RT/t.json"
json_lines --runtime-dir "$RT" --json sched --from "$RT/t.json"
json_lines --runtime-dir "$RT" sched --from "$RT/t.json" --json
json_lines --runtime-dir "$RT" --json topology echo
json_lines --json moderation --policy adaptive --rate 100000
json_lines moderation --policy dim --rate 1000 --json
# --version and --help answer in JSON under --json too (they printed text),
# in either order, and each command's --help as well.
json_lines --json --version
json_lines --version --json
json_lines --json --help
for c in status services resolve trace sched codex topology serve locks moderation probe pm; do
  json_lines --json "$c" --help
done
json_lines --json pm sim --help
check_json
[ "$("$THOTHCTL" --json --version | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["version"])')" = "$V" ] ||
  fail "thothctl --json --version: $("$THOTHCTL" --json --version)"
"$THOTHCTL" --json trace --help | "$PY" -c 'import json,sys; d=json.load(sys.stdin); assert d["command"] == "trace" and "--duration" in d["usage"], d' ||
  fail "thothctl --json trace --help: $("$THOTHCTL" --json trace --help)"
# -h right after the command asks its usage; a later -h may be an option's
# value (`--service -h`) and is the command's to judge, not usage (it was).
"$THOTHCTL" --json trace -h | "$PY" -c 'import json,sys; d=json.load(sys.stdin); assert d["command"] == "trace" and "usage" in d, d' ||
  fail "thothctl --json trace -h: $("$THOTHCTL" --json trace -h)"
out=$(cd "$RT" && "$THOTHCTL" --json pm sim 'synthetic:poisson mean_gap_us=20000 work_us=500' --export-list -h)
case $out in *'"usage"'*|'') fail "thothctl --json pm sim ... --export-list -h answered usage: $out" ;; esac
[ -s "$RT/-h" ] || fail "thothctl pm sim --export-list -h wrote no list"
# serve and topology parse their own arguments: the same rule there.
for c in "serve -x -h" "topology x -h"; do
  out=$("$THOTHCTL" $c 2>/dev/null) && fail "thothctl $c succeeded: $out"
  case $out in *usage*) fail "thothctl $c answered usage: $out" ;; esac
done
"$THOTHCTL" topology -h | grep -q '^usage' || fail "thothctl topology -h: no usage"
# Errors under --json stay one line on stderr, nothing on stdout, exit 2
# for usage errors: `help` is no command.
set +e
out=$("$THOTHCTL" --json help 2>"$RT/help.err"); rc=$?
set -e
[ $rc = 2 ] && [ -z "$out" ] && grep -q "unknown command: help" "$RT/help.err" ||
  fail "thothctl --json help: exit $rc, stdout '$out', stderr $(head -1 "$RT/help.err")"
# After `trace`, --json names the output file: without --json before it,
# the result is text.
out=$("$THOTHCTL" --runtime-dir "$RT" trace dump --json "$RT/t2.json")
case $out in wrote*) ;; *) fail "trace dump text output: $out" ;; esac
# Usage errors stay usage errors (exit 2) with --json.
set +e
"$THOTHCTL" --runtime-dir "$RT" --json frobnicate 2>/dev/null; rc=$?
set -e
[ $rc = 2 ] || fail "unknown command exited $rc, not 2"

# A thothd serving no dashboard: status says why there may be none (it
# said "none", and a new user looked for the page at :9180 all the same).
RT3=$RT/nodash
mkdir -m 700 "$RT3"
tt_start_thothd "$RT3" --http-port off
out=$("$THOTHCTL" --runtime-dir "$RT3" status)
case $out in
  *"dashboard       none (--http-port off, or its port was taken: thothd's log says which)"*) ;;
  *) fail "status of a thothd without a dashboard said: $out" ;;
esac

# A thothd at its per-uid connection limit closes a new connection at once:
# thothctl says so (it said "peer gone", as if thothd had gone).
RT2=$RT/limited
mkdir -m 700 "$RT2"
tt_start_thothd "$RT2" --http-port off --max-clients-per-uid 1
tt_spawn "$THOTHCTL" --runtime-dir "$RT2" services --watch >"$RT2/watch.out" 2>&1
# the watch holds the one connection once it says so (before, its
# connection is idle and thothd would evict it for the next one)
deadline=$((SECONDS + 60))
until grep -q "watching" "$RT2/watch.out"; do
  [ $SECONDS -lt $deadline ] || fail "the watch did not start: $(cat "$RT2/watch.out")"
  sleep 0.02
done
set +e
err=$("$THOTHCTL" --runtime-dir "$RT2" status 2>&1 >/dev/null); rc=$?
set -e
[ $rc = 1 ] || fail "status past the connection limit exited $rc: $err"
case $err in
  *"closed the connection at once"*"--max-clients-per-uid"*) ;;
  *) fail "status past the connection limit said: $err" ;;
esac

# --help is a question wherever docs/THOTHD.md and the man pages say so, and
# only there.  thothc: help when no file is named (`fmt --check --help`
# too); with files, --help is no question (`check --help X` answered
# "wire-compatible", exit 0, and `gen --help ... x.tidl` exited 0 having
# generated nothing), and ./--help is a file.
code_of() { local rc=0; "$@" >"$RT/q.out" 2>"$RT/q.err" || rc=$?; echo $rc; }
said() { cat "$RT/q.out" "$RT/q.err" | head -1; }   # what the last code_of printed first
for args in "check --help" "gen --help" "fmt --help" "lint --help" "fmt --check --help" \
            "gen --lang c --help" "lint -h"; do
  # shellcheck disable=SC2086
  [ "$(code_of "$THOTHC" $args)" = 0 ] && grep -q "^usage: thothc gen" "$RT/q.out" ||
    fail "thothc $args: exit $(code_of "$THOTHC" $args), $(said)"
done
mkdir -p "$RT/tidl"
cp "$SRC/idl/common.tidl" "$RT/tidl/--help"
for args in "check --help /nonexistent.tidl" "gen --help --lang c -o $RT/gen $RT/tidl/--help" \
            "fmt --check --help $RT/tidl/--help" "lint --help /nonexistent.tidl"; do
  # shellcheck disable=SC2086
  rc=$(code_of "$THOTHC" $args)
  [ "$rc" = 2 ] && ! grep -q "^usage: thothc gen" "$RT/q.out" ||
    fail "thothc $args: exit $rc (help or success for a command given files): $(said)"
done
[ ! -e "$RT/gen" ] || fail "thothc gen --help ... generated $(ls "$RT/gen")"
( cd "$RT/tidl" && "$THOTHC" check ./--help ./--help >"$RT/q.out" && "$THOTHC" lint ./--help >/dev/null ) ||
  fail "thothc check/lint ./--help: a file named --help is not read ($(cat "$RT/q.out"))"
# thothctl: status, services and resolve give their own usage (they gave
# the global one), probe's subcommands theirs (check read a file named
# --help, detach wanted a number).
for c in status services resolve; do
  [ "$(code_of "$THOTHCTL" "$c" --help)" = 0 ] &&
    grep -q "^usage: thothctl \[--runtime-dir DIR\] \[--json\] $c" "$RT/q.out" ||
    fail "thothctl $c --help: $(said)"
done
for sub in check attach list detach maps kernel run; do
  [ "$(code_of "$THOTHCTL" probe "$sub" --help)" = 0 ] && grep -q "^usage: thothctl probe check" "$RT/q.out" ||
    fail "thothctl probe $sub --help: exit $(code_of "$THOTHCTL" probe "$sub" --help), $(said)"
done
# pm sim's --policy is optional (it defaults to all), and said so.
"$THOTHCTL" --help | grep -q "pm sim TRACE \[--policy P\]" || fail "thothctl --help: pm sim's --policy shown as required"
"$THOTHCTL" pm --help | grep -q "pm sim TRACE \[--policy P\]" || fail "thothctl pm --help: pm sim's --policy shown as required"
# pm-sim-driver: --help after the kind is a question too ("needs a value")
for args in "--help" "disk --help" "disk --name d -h" "bus --name --help"; do
  # shellcheck disable=SC2086
  [ "$(code_of "$BUILD/services/pm-sim-driver" $args)" = 0 ] && grep -q "^usage: pm-sim-driver" "$RT/q.out" ||
    fail "pm-sim-driver $args: $(said)"
done

# Man pages (scdoc) built, one per program and tidl(5).
for page in thothd.8 thothctl.1 thothc.1 tidl.5 codex.8 thothlock.1; do
  grep -q '^\.SH NAME' "$BUILD/man/$page" || fail "man page $page not built"
done

# Completion: source the script, complete a few words.
complete_words() {   # WORD...: COMPREPLY for the last word
  COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1))
  COMPREPLY=()
  "_${1}"
  echo "${COMPREPLY[*]}"
}
. "$SRC/completion/thothctl.bash"
. "$SRC/completion/thothc.bash"
[ "$(complete_words thothctl tr)" = trace ] || fail "thothctl tr<TAB>: $(complete_words thothctl tr)"
[ "$(complete_words thothctl trace '')" = "start stop dump" ] || fail "thothctl trace <TAB>"
[ "$(complete_words thothctl --runtime-dir /tmp res)" = resolve ] || fail "thothctl --runtime-dir X res<TAB>"
# every command `thothctl --help` lists completes (locks and probe did not)
for c in $("$THOTHCTL" --help | sed -n '/^commands:/,/^options:/p' | sed -n 's/^  \([a-z][a-z]*\).*/\1/p' | sort -u); do
  case " $(complete_words thothctl '') " in
    *" $c "*) ;;
    *) fail "thothctl <TAB> does not offer $c (thothctl --help lists it)" ;;
  esac
done
[ "$(complete_words thothctl codex '')" = "stats create append read" ] || fail "thothctl codex <TAB>: $(complete_words thothctl codex '')"
[ "$(complete_words thothc g)" = gen ] || fail "thothc g<TAB>"
[ "$(complete_words thothc gen --la)" = --lang ] || fail "thothc gen --la<TAB>"
echo "PASS"
