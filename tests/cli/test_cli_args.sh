#!/usr/bin/env bash
# tests/cli/test_cli_args.sh SOURCE_DIR BUILD_DIR [PART]
#
# Bad arguments to the programs a user types (thothctl, thothd, thothc,
# thothlock, codex) are refused with a message that names the problem and
# a non-zero exit: never a number silently read as 0 or cut to 32 bits
# (`probe attach --pid 4294967297` was pid 1), never an overflow taken as
# the largest value, never a wrong input file read as an empty result with
# exit 0.  None of these needs a running thothd: each is refused before
# connecting (the runtime dir below does not exist); the last case (a
# watch whose thothd dies) starts one.
set -uo pipefail
. "$(dirname "$0")/../common/thoth_test.sh"
SRC=$1 BUILD=$2 PART=${3:-all}
# PART: thothctl, tools, thothd or usage, one ctest test each
# (test_cli_args_PART, run side by side), or all.  All in one test was
# 41-44 s alone and 105-118 s at load 13-24 on 2 CPUs, over its 120 s
# TIMEOUT there (flake45): ~250 program starts one after the other.
case $PART in all | thothctl | tools | thothd | usage) ;;
  *) echo "test_cli_args.sh: unknown part '$PART' (thothctl, tools, thothd, usage or all)"; exit 2 ;; esac
part() { [ "$PART" = all ] || [ "$PART" = "$1" ]; }
tt_init "$BUILD"
THOTHC=$BUILD/tools/thothc/thothc THOTHLOCK=$BUILD/tools/thothlock/thothlock
CODEX=$BUILD/codex/codex ECHO_CLIENT=$BUILD/services/echo-client ECHO=$BUILD/services/echo
tt_mkdir TMP "cli-args-$PART"
export THOTH_RUNTIME_DIR=$TMP/no-thothd
failures=0

# refused RC PATTERN PROGRAM ARGS...: PROGRAM exits RC and its stderr
# contains PATTERN (fixed string).  Each run is bounded: a hang is a failure.
refused() {
  local want=$1 pattern=$2
  shift 2
  timeout 20 "$@" >"$TMP/out" 2>"$TMP/err"
  local rc=$?
  if [ "$rc" != "$want" ] || ! grep -qF -- "$pattern" "$TMP/err"; then
    echo "FAIL: ${1##*/} ${*:2}: exit $rc (want $want), stderr:"
    sed 's/^/  | /' "$TMP/err" | head -5
    failures=$((failures + 1))
  else
    # builtins: two processes fewer per case (~110 cases)
    local first=
    IFS= read -r first <"$TMP/err" || true
    echo "ok: ${1##*/} ${*:2}: $first"
  fi
}

OBJ=$TMP/p.o   # never read: the arguments are refused first
: >"$OBJ"
printf 'root:x:0:0:root:/root:/bin/bash\n' >"$TMP/passwd"     # not a trace (parts thothctl, usage)

if part thothctl; then
# thothctl probe: pids, ids and seconds are numbers, whole, in range.
refused 2 "--pid" "$THOTHCTL" probe attach "$OBJ" --pid 12abc
refused 2 "--pid" "$THOTHCTL" probe attach "$OBJ" --pid 4294967297
refused 2 "--pid" "$THOTHCTL" probe attach "$OBJ" --pid -1
refused 2 "--wait" "$THOTHCTL" probe attach "$OBJ" --pid 1 --wait -5
refused 2 "--wait" "$THOTHCTL" probe attach "$OBJ" --pid 1 --wait nan
refused 2 "--wait" "$THOTHCTL" probe attach "$OBJ" --pid 1 --wait 1e300
refused 2 "--pid" "$THOTHCTL" probe run 'loop_wakeup { @n = count(); }' --pid abc
refused 2 "--duration" "$THOTHCTL" probe run 'loop_wakeup { @n = count(); }' --pid 1 --duration 5s
refused 2 "--duration" "$THOTHCTL" probe kernel "$OBJ" --duration abc
refused 2 "--every" "$THOTHCTL" probe kernel "$OBJ" --every -1
refused 2 "probe ID" "$THOTHCTL" probe detach abc
refused 2 "probe ID" "$THOTHCTL" probe detach 99999999999999999999999
refused 2 "probe ID" "$THOTHCTL" probe maps 7x

# echo-client (make run's client): --rate abc was 0 calls/s, --rate -1
# 4294967295, and --report's seconds overflowed; none of them was refused.
# echo's --name is part of its socket's file name: a 128-byte name (legal)
# made the path too long and echo blamed the runtime dir ("runtime dir path
# too long"); a '/' put the socket outside the runtime dir before thothd
# refused the name.
mkdir -p "$TMP/echo-rt" && chmod 700 "$TMP/echo-rt"
refused 1 "a Unix socket path holds 107: a shorter --name or runtime dir" "$ECHO" --runtime-dir "$TMP/echo-rt" --name "$(printf 'a%.0s' $(seq 128))"
refused 2 "--name '../x' is not a service name" "$ECHO" --runtime-dir "$TMP/echo-rt" --name ../x
refused 2 "--rate wants a number 1..1000000" "$ECHO_CLIENT" --rate abc
refused 2 "--rate wants a number 1..1000000" "$ECHO_CLIENT" --rate -1
refused 2 "--rate wants a number 1..1000000" "$ECHO_CLIENT" --rate 0
refused 2 "--report wants a number 1..86400" "$ECHO_CLIENT" --report 18446744073709551615

# thothctl codex stats takes no stream (an extra word was ignored)
refused 2 "unexpected argument logs" "$THOTHCTL" codex stats logs

# thothctl trace --pid: "-18446744073709551615" was pid 1 (strtoul wraps)
refused 2 "--pid wants a process id" "$THOTHCTL" trace start --pid -18446744073709551615
refused 2 "--pid wants a process id" "$THOTHCTL" trace --duration 1 --pid " 7" --json "$TMP/t.json"

# thothctl moderation --rate: a negative number wrapped to a small one
# ("-18446744073709551615" was 1 message/s).
refused 2 "--rate wants 1..100000000" "$THOTHCTL" moderation --policy dim --rate -18446744073709551615
refused 2 "--rate wants 1..100000000" "$THOTHCTL" moderation --policy dim --rate " 5"
refused 2 "--rate wants 1..100000000" "$THOTHCTL" moderation --policy dim --rate 18446744073709551617

# thothctl sched --from: a file that is not a trace is an error.
: >"$TMP/empty.json"
refused 2 "not a Chrome JSON trace" "$THOTHCTL" sched --from "$TMP/passwd"
refused 2 "not a Chrome JSON trace" "$THOTHCTL" sched --from "$TMP/empty.json"
printf '{"displayTimeUnit":"ns","traceEvents":[\n{"ph":"M","name":"trace_source","pid":0,"tid":0,"args":{"name":"thoth"}},\n' >"$TMP/cut.json"
refused 2 "is cut short" "$THOTHCTL" sched --from "$TMP/cut.json"
# ... but a whole trace with a trailing blank line (an editor's, or `echo
# >>`) is whole: the "]}" check skips blank lines
printf '{"displayTimeUnit":"ns","traceEvents":[\n{"ph":"M","name":"trace_source","pid":0,"tid":0,"args":{"name":"thoth"}}\n]}\n\n \r\n' >"$TMP/blank.json"
if timeout 20 "$THOTHCTL" sched --from "$TMP/blank.json" >/dev/null 2>"$TMP/blank.err"; then
  echo "ok: sched --from reads a trace with a trailing blank line"
else
  echo "FAIL: sched --from refused a whole trace with a trailing blank line: $(cat "$TMP/blank.err")"
  failures=$((failures + 1))
fi
refused 2 "not a Chrome JSON trace" "$THOTHCTL" --json sched --from "$TMP/empty.json"
refused 2 "is a directory, not a trace" "$THOTHCTL" sched --from "$TMP"
# A trace's numbers are JSON numbers in range: strtod took "0x10" for 16
# (or, cut at the x, 0), and "-1" or "1e300" converted to an integer type
# was undefined behaviour (UBSan: "outside the range of representable
# values"), pid -1 silently pid 4294967295 on x86 (hostile46 review).
sched_num() {   # sched_num FIELD: a one-event trace with "pid":5 ... FIELD overridden
  printf '{"displayTimeUnit":"ns","traceEvents":[\n{"ph":"i","name":"loop_wakeup","ts":%s,"pid":%s,"tid":1,"s":"t","args":{"arg0":%s,"arg1":%s}}\n]}\n' \
    "$1" "$2" "$3" "$4" >"$TMP/num.json"
}
sched_num 1.0 -1 2 0
refused 2 "num.json line 2: \"pid\" is not a number from 0 to 4294967295" "$THOTHCTL" sched --from "$TMP/num.json"
sched_num 1.0 4294967296 2 0
refused 2 "\"pid\" is not a number from 0 to 4294967295" "$THOTHCTL" sched --from "$TMP/num.json"
sched_num 1.0 0x10 2 0
refused 2 "\"pid\" is not a number" "$THOTHCTL" sched --from "$TMP/num.json"
sched_num 1e300 5 2 0
refused 2 "\"ts\" is not a number from 0 to 1.8e16 (microseconds)" "$THOTHCTL" sched --from "$TMP/num.json"
sched_num -0.5 5 2 0
refused 2 "\"ts\" is not a number" "$THOTHCTL" sched --from "$TMP/num.json"
sched_num 1.0 5 18446744073709555000 0
refused 2 "\"arg0\" is not a number from 0 to 18446744073709551615" "$THOTHCTL" sched --from "$TMP/num.json"
sched_num 1.0 5 2 nan
refused 2 "\"arg1\" is not a number" "$THOTHCTL" sched --from "$TMP/num.json"
# ... while the largest of each is read
sched_num 1.8e16 4294967295 18446744073709551615 0
if out=$(timeout 20 "$THOTHCTL" sched --from "$TMP/num.json" 2>&1) && [[ $out == *"pid 4294967295"* ]]; then
  echo "ok: sched --from reads pid 4294967295 and the largest ts and arg0"
else
  echo "FAIL: sched --from the largest numbers:"; printf '%s\n' "$out" | sed 's/^/  | /' | head -5
  failures=$((failures + 1))
fi
# --duration is decimal seconds from 1 ms: "0x1p3" was 8 s and "1e-300"
# passed "> 0" for a session of no length.
for d in 0x1p3 1e-300 0.0005 1e300 inf; do
  refused 2 "--duration wants decimal seconds from 0.001 to 86400, not $d" "$THOTHCTL" sched --duration "$d"
done
# probe run's compile error shows the script with a caret under the column:
# the script as text (a newline in it broke the line, an ESC went out raw)
# and the caret under the column as shown (hostile46).
out=$(timeout 20 "$THOTHCTL" probe run "$(printf 'loop_wakeup {\n @n = bogus(); }')" --emit "$TMP/x.o" 2>&1)
want=$(printf '%s\n%s\n%s' "thothctl: probe run: column 21: expected an aggregation (count, sum, min, max, hist), found 'bogus'" \
  '  loop_wakeup {\x0a @n = bogus(); }' '                         ^')
if [ "$out" = "$want" ]; then
  echo "ok: probe run: a script with a newline shown escaped, the caret under the column"
else
  echo "FAIL: probe run's script and caret:"; printf '%s\n' "$out" | sed 's/^/  | /'
  failures=$((failures + 1))
fi
# Its session's temporary file goes under $TMPDIR: a literal /tmp ignored
# it (hostile46); one that does not exist is named.
refused 1 "cannot create a temporary file in $TMP/no-such-dir (TMPDIR)" \
  env TMPDIR="$TMP/no-such-dir" "$THOTHCTL" sched --duration 0.1
refused 2 "not a regular file" "$THOTHCTL" probe attach "$TMP" --pid 1
# A FIFO nobody writes: open() without O_NONBLOCK waited for a writer
# forever (hostile46), for check, attach and kernel alike.
mkfifo "$TMP/fifo.o"
refused 2 "not a regular file" "$THOTHCTL" probe check "$TMP/fifo.o"
refused 2 "not a regular file" "$THOTHCTL" probe attach "$TMP/fifo.o" --pid 1
refused 2 "not a regular file" "$THOTHCTL" probe kernel "$TMP/fifo.o"
# A file name in probe's and sched's errors is the user's word, shown as
# text: a name with a newline and an ESC wrote them raw, a forged second
# error line and a colour on the terminal (cli47).  One line, escaped.
evil=$'evil\nthothctl: forged\e[31m'
evil_shown='evil\x0athothctl: forged\x1b[31m'
escaped_path() {
  local want=$1
  shift
  refused "$want" "$evil_shown" "$@"
  if [ "$(wc -l <"$TMP/err")" != 1 ] || grep -q $'\x1b' "$TMP/err"; then
    echo "FAIL: ${1##*/} ${*:2}: a file name's newline or ESC reached the terminal raw:"
    sed 's/^/  | /' "$TMP/err" | head -5
    failures=$((failures + 1))
  fi
}
escaped_path 2 "$THOTHCTL" sched --from "$TMP/$evil"                   # cannot read
escaped_path 2 "$THOTHCTL" probe check "$TMP/$evil.o"                 # no such file
escaped_path 2 "$THOTHCTL" probe kernel "$TMP/$evil.o"
escaped_path 2 "$THOTHCTL" probe attach "$TMP/$evil.o" --pid 1
mkdir "$TMP/${evil}dir"
escaped_path 2 "$THOTHCTL" sched --from "$TMP/${evil}dir"             # a directory
escaped_path 2 "$THOTHCTL" probe check "$TMP/${evil}dir"              # not a regular file
printf 'not a trace\n' >"$TMP/${evil}.json"
escaped_path 2 "$THOTHCTL" sched --from "$TMP/${evil}.json"           # not a trace
printf '{"traceEvents":[\n' >"$TMP/${evil}cut.json"
escaped_path 2 "$THOTHCTL" sched --from "$TMP/${evil}cut.json"        # cut short
: >"$TMP/${evil}empty.o"
escaped_path 2 "$THOTHCTL" probe check "$TMP/${evil}empty.o"          # 0 bytes
printf 'not an ELF object at all' >"$TMP/${evil}junk.o"
escaped_path 2 "$THOTHCTL" probe check "$TMP/${evil}junk.o"           # the loader's reason
# thothctl topology NAME: a name no service can have was looked up and
# said "no live instance", exit 1, as if the service had just gone
# (hostile46); the argument is shown escaped.
refused 2 "'a/b' is not a service name" "$THOTHCTL" topology a/b
refused 2 "is not a service name" "$THOTHCTL" topology ..
refused 2 "'x\\x1b[31m' is not a service name" "$THOTHCTL" topology "$(printf 'x\033[31m')"
# probe attach/run --service NAME: the same rule, before thothd is asked
# ("no process for service 'a/b' (peer returned an application error)").
refused 2 "--service 'a/b' is not a service name" "$THOTHCTL" probe attach "$OBJ" --service a/b
refused 2 "--service 'x\\x1b[31m' is not a service name" "$THOTHCTL" probe run \
  'loop_wakeup { @n = count(); }' --service "$(printf 'x\033[31m')"

# thothctl pm sim: getopt's own "sim: option ..." named neither thothctl
# nor the command.
refused 2 "thothctl: pm sim: missing value for --policy" "$THOTHCTL" pm sim x --policy
refused 2 "thothctl: pm sim: unknown option --bogus" "$THOTHCTL" pm sim x --bogus
# An empty value (`--policy=`, or "$P" unset) is said to be one, with the
# list --policy takes; it was "--policy: unknown policy" naming nothing.
# Every getopt option of thothctl alike: none read "" as a word of its own.
refused 2 "thothctl: pm sim: --policy needs a value, not an empty one: one of all always-on" \
  "$THOTHCTL" pm sim x --policy=
refused 2 "fixed-2s-qos apst break-even exp-average engine oracle performance powersave ondemand schedutil thoth optimum" \
  "$THOTHCTL" pm sim x --policy ''
refused 2 "--policy: unknown policy bogus; it takes one of all always-on" "$THOTHCTL" pm sim x --policy=bogus
refused 2 "thothctl: pm sim: --gov-options needs a value, not an empty one: one of none ff chain ff+chain" \
  "$THOTHCTL" pm sim x --gov-options=
for o in device cpu qos-us deadline-us pid export-list; do
  refused 2 "thothctl: pm sim: --$o needs a value, not an empty one (" "$THOTHCTL" pm sim x --$o=
done
refused 2 "thothctl: moderation: --policy needs a value, not an empty one: one of none dim adaptive" \
  "$THOTHCTL" moderation --policy= --rate 5
refused 2 "thothctl: moderation: --rate needs a value, not an empty one" "$THOTHCTL" moderation --policy dim --rate=
refused 2 "thothctl: moderation: --dev needs a value, not an empty one" "$THOTHCTL" moderation --dev=
for o in pid top; do
  refused 2 "thothctl: locks: --$o needs a value, not an empty one" "$THOTHCTL" locks --$o=
done
for o in duration from; do
  refused 2 "thothctl: sched: --$o needs a value, not an empty one" "$THOTHCTL" sched --$o=
done
for o in categories pid json ctf duration; do
  refused 2 "thothctl: trace: --$o needs a value, not an empty one" "$THOTHCTL" trace start --$o=
done
for o in budget-ms from to since until; do
  refused 2 "thothctl: codex: --$o needs a value, not an empty one" "$THOTHCTL" codex read s --$o=
done
refused 2 "thothctl: resolve: --min-version needs a value, not an empty one" "$THOTHCTL" resolve x --min-version=
# A malformed --min-version is a bad argument: exit 2 (thothctl(1)), said
# before connecting (no thothd here), the argument named, its bytes escaped.
# It was exit 1 after a round trip (cli47).
refused 2 "thothctl: resolve: --min-version '1.x' is not a version (MAJOR.MINOR.PATCH" "$THOTHCTL" resolve echo --min-version 1.x
refused 2 "--min-version '01.0.0' is not a version" "$THOTHCTL" resolve echo --min-version 01.0.0
refused 2 "--min-version '1.0.4294967296' is not a version" "$THOTHCTL" resolve echo --min-version 1.0.4294967296
refused 2 "--min-version '1.0.0.' is not a version" "$THOTHCTL" resolve echo --min-version 1.0.0.
refused 2 "--min-version '1\\x1b[31m.0.0' is not a version" "$THOTHCTL" resolve echo --min-version "$(printf '1\033[31m.0.0')"
# probe's own parser: run refused neither ('cannot write :', exit 1; a
# service named nothing asked of thothd), as attach refuses --service ''.
refused 2 "thothctl: probe run: --emit wants a file name, not ''" \
  "$THOTHCTL" probe run 'loop_wakeup { @n = count(); }' --emit ''
refused 2 "thothctl: probe run: --service wants a name, not ''" \
  "$THOTHCTL" probe run 'loop_wakeup { @n = count(); }' --service ''

# thothctl moderation: a named interface that does not exist; the usage
# offers only the policies --policy takes.
refused 1 "thothctl: moderation: --dev nosuch0x: no such network interface" "$THOTHCTL" moderation --dev nosuch0x
if "$THOTHCTL" moderation --help | grep -q 'none|fixed'; then
  echo "FAIL: thothctl moderation --help offers --policy fixed, which it refuses"
  failures=$((failures + 1))
fi

# thothctl codex: a sequence number beyond 64 bits is not UINT64_MAX.
refused 2 "--from" "$THOTHCTL" codex read s --from 99999999999999999999999
# ... and an option of another subcommand is not silently ignored.
refused 2 "--sync/--deferred is not an option of create" "$THOTHCTL" codex create s --sync
refused 2 "--sync/--deferred is not an option of read" "$THOTHCTL" codex read s --deferred
refused 2 "--from/--to/--since/--until is not an option of stats" "$THOTHCTL" codex stats --from 3
refused 2 "--budget-ms is not an option of read" "$THOTHCTL" codex read s --budget-ms 5
refused 2 "--sync or --deferred, not both" "$THOTHCTL" codex append s --sync --deferred
fi  # part thothctl

if part tools; then
# codex: sizes that are negative, empty or beyond 64 bits.
refused 2 "--segment-bytes" "$CODEX" --data-dir "$TMP/cx" --segment-bytes -5
refused 2 "--segment-bytes" "$CODEX" --data-dir "$TMP/cx" --segment-bytes 99999999999999999999999
refused 2 "--retain-bytes" "$CODEX" --data-dir "$TMP/cx" --retain-bytes ''
refused 2 "--cut-bytes" "$CODEX" --data-dir "$TMP/cx" --cut-bytes 0
refused 2 "--cut-bytes" "$CODEX" --data-dir "$TMP/cx" --cut-bytes 4k
"$CODEX" --help 2>&1 | grep -q -- "--cut-bytes N" ||
  { echo "FAIL: codex --help does not name --cut-bytes"; failures=$((failures + 1)); }
for f in man/codex.8.scd docs/CODEX.md; do
  grep -q -- "--cut-bytes" "$SRC/$f" || { echo "FAIL: $f does not name --cut-bytes"; failures=$((failures + 1)); }
done
refused 2 "--workers" "$CODEX" --data-dir "$TMP/cx" --workers ''
# a stray word was dropped (`codex --data-dir D 4` ran 8 workers), and a
# missing --data-dir or an unknown option buried its line under the usage:
# now the line and "Try 'codex --help'", as thothd says it.
refused 2 "codex: unexpected argument '4' (codex takes options only)" "$CODEX" --data-dir "$TMP/cx" 4
for args in "" "--bogus"; do
  # shellcheck disable=SC2086
  timeout 20 "$CODEX" $args >"$TMP/out" 2>"$TMP/err"
  rc=$?
  if [ $rc = 2 ] && [ "$(wc -l <"$TMP/err")" = 2 ] && grep -qx "Try 'codex --help' for more information." "$TMP/err"; then
    echo "ok: codex $args: $(head -1 "$TMP/err")"
  else
    echo "FAIL: codex $args: exit $rc (want 2), want its line and the --help hint: $(head -3 "$TMP/err")"
    failures=$((failures + 1))
  fi
done

# thothc: a --c-prefix that is not a C identifier.
printf 'package t.args;\nversion 1.0;\n\ninterface I {\n  1: f(string s) -> (string t);\n}\n' \
  >"$TMP/t.tidl"
mkdir -p "$TMP/gen"
refused 2 "not a C identifier" "$THOTHC" gen --lang c --c-prefix 'a b;' -o "$TMP/gen" "$TMP/t.tidl"
refused 2 "not a C identifier" "$THOTHC" gen --lang c --c-prefix '9v_' -o "$TMP/gen" "$TMP/t.tidl"
refused 2 "not a C identifier" "$THOTHC" gen --lang c --c-prefix '' -o "$TMP/gen" "$TMP/t.tidl"
"$THOTHC" gen --lang c --c-prefix v2_ -o "$TMP/gen" "$TMP/t.tidl" ||
  { echo "FAIL: thothc --c-prefix v2_ refused"; failures=$((failures + 1)); }

# thothd: a token file whose token is longer than the 255 bytes kept (it
# was cut silently: every request then got 401).
head -c 300 /dev/zero | tr '\0' 'k' >"$TMP/token"
chmod 600 "$TMP/token"   # a token others can read is refused first
refused 2 "longer than 255 bytes" "$THOTHD" --runtime-dir "$TMP/rt" --http-token-file "$TMP/token"
[ ! -e "$TMP/rt" ] || { echo "FAIL: thothd started before refusing its token"; failures=$((failures + 1)); }

# thothd --max-leases-per-uid: a count of 1..16384 (thothd's whole limit),
# whole; and named in --help and thothd(8).
refused 2 "--max-leases-per-uid wants a number 1..16384" "$THOTHD" --runtime-dir "$TMP/rt" --max-leases-per-uid 0
refused 2 "--max-leases-per-uid wants a number 1..16384" "$THOTHD" --runtime-dir "$TMP/rt" --max-leases-per-uid 16385
refused 2 "--max-leases-per-uid wants a number 1..16384" "$THOTHD" --runtime-dir "$TMP/rt" --max-leases-per-uid 12k
"$THOTHD" --help | grep -q -- "--max-leases-per-uid N" ||
  { echo "FAIL: thothd --help does not name --max-leases-per-uid"; failures=$((failures + 1)); }
for f in man/thothd.8.scd docs/THOTHD.md docs/PM.md; do
  grep -q -- "--max-leases-per-uid" "$SRC/$f" ||
    { echo "FAIL: $f does not name --max-leases-per-uid"; failures=$((failures + 1)); }
done
[ ! -e "$TMP/rt" ] || rm -rf "$TMP/rt"

# The PM drivers: an option without its value, or a count that is not one,
# is refused (pm-sim-driver "disk --name" declared "disk"; pm-runtime-driver
# "--max abc" scanned 0 devices and said "no device with runtime PM found").
SIMDRV=$BUILD/services/pm-sim-driver RTDRV=$BUILD/services/pm-runtime-driver
refused 2 "--name needs a value" "$SIMDRV" disk --name
refused 2 "--needs needs a value" "$SIMDRV" disk --name d2 --needs
refused 2 "--max 'abc' is not a number of devices (1..64)" "$RTDRV" --max abc --show
refused 2 "--max '0' is not a number of devices (1..64)" "$RTDRV" --max 0 --show
refused 2 "--max '65' is not a number of devices (1..64)" "$RTDRV" --max 65 --show
many=()
for i in $(seq 1 65); do many+=(--device "/sys/devices/d$i"); done
refused 2 "at most 64 --device" "$RTDRV" "${many[@]}" --show
# --show names each modelled power: "12.5 / 100.0 mW" was suspended /
# active, the reverse of docs/PM.md's "active / suspended" table.
show=$(THOTH_SYSFS_ROOT=$SRC/tests/fixtures/sysfs/x86-laptop "$RTDRV" --show 2>&1) || true
grep -q "^rpm.1-3 .*; active 100.0 mW, suspended 12.5 mW, suspend 3000 us, resume 20000 us" <<<"$show" ||
  { echo "FAIL: pm-runtime-driver --show does not name the USB device's powers: $show"; failures=$((failures + 1)); }

# thothlock: an option's missing value says so.
refused 2 "missing value for '--top'" "$THOTHLOCK" --top
# A program that cannot be run: said once, exit 127, and no second
# message about a lock table it never had the chance to leave.
refused 127 "$TMP/nosuch: No such file or directory" "$THOTHLOCK" -- "$TMP/nosuch"
if grep -q "left no lock table" "$TMP/err"; then
  echo "FAIL: thothlock -- NOSUCH also blamed the lock table: $(cat "$TMP/err")"
  failures=$((failures + 1))
fi

# The runtime dir: an empty value is not the default dir (another
# thothd's); one too long for a socket path says so.
refused 2 "--runtime-dir needs a directory" "$THOTHCTL" --runtime-dir '' status
refused 2 "an interval is 10..3600000 ms, not -5" "$THOTHCTL" status --watch -5
refused 2 "--runtime-dir needs a directory" "$THOTHCTL" status --runtime-dir=
refused 2 "--runtime-dir needs a directory" "$THOTHD" --runtime-dir ''
# a relative runtime dir: thothd listened on rel/thothd.sock, services
# registered rel/NAME.sock, and a client in another directory found nothing
cd "$TMP" || exit 1
refused 1 "runtime dir 'rel' is relative" "$THOTHD" --runtime-dir rel --http-port off
THOTH_RUNTIME_DIR=rel refused 1 "is relative" "$THOTHD" --http-port off
cd - >/dev/null || exit 1
[ ! -e "$TMP/rel" ] || { echo "FAIL: thothd made a relative runtime dir"; failures=$((failures + 1)); }
LONG=$TMP/$(head -c 150 /dev/zero | tr '\0' d)
refused 1 "socket path too long" "$THOTHCTL" --runtime-dir "$LONG" status
# ... and thothd says the limit too (it said only the path's length).
refused 1 "a Unix socket path holds at most 107" "$THOTHD" --runtime-dir "$LONG" --http-port off
touch "$TMP/file"
refused 1 "$TMP/file is not a directory: refusing" "$THOTHCTL" --runtime-dir "$TMP/file" status
fi  # part tools

if part thothd; then
# With a thothd: `status --watch` reads thothd's shared table, which keeps
# its last status when thothd dies (the uptime went on growing, the watch
# never ended): it must end, exit 1, saying thothd exited.
RT=$TMP/rt-live
mkdir -m 700 "$RT"
tt_start_thothd "$RT" --http-port off
thothd_pid=$THOTHD_PID
# A bad name or version thothd refuses is explained (it said "BadName").
# A bad argument: exit 2 (thothctl(1)), as topology and probe --service
# say it; it was 1, and the name's ESC went out raw (hostile46 review).
refused 2 "'Echo' is not a service name" "$THOTHCTL" --runtime-dir "$RT" resolve Echo
refused 2 "'x\\x1b[31m' is not a service name" "$THOTHCTL" --runtime-dir "$RT" resolve "$(printf 'x\033[31m')"
refused 2 "--min-version '1.x' is not a version" "$THOTHCTL" --runtime-dir "$RT" resolve echo --min-version 1.x
# A PREFIX that is not UTF-8 cannot be sent: a bad argument, named (it was
# "list: string is not valid UTF-8", exit 1; cli47).
refused 2 "thothctl: services: PREFIX is not UTF-8: \\xff" "$THOTHCTL" --runtime-dir "$RT" services $'\xff'
# Names and versions above thothd's request limit (4 KiB): thothd drops such
# a connection unanswered, and thothctl said "thothd went away (exited or
# killed)" of a thothd that runs on.  Said as a bad name; the list is empty.
long=$(printf 'a%.0s' $(seq 5000))
refused 2 "(5000 bytes) is not a service name" "$THOTHCTL" --runtime-dir "$RT" resolve "$long"
refused 2 "(5000 bytes) is not a version" "$THOTHCTL" --runtime-dir "$RT" resolve echo --min-version "$long"
out=$("$THOTHCTL" --runtime-dir "$RT" services "$long" 2>&1)
rc=$?
if [ "$rc" != 0 ] || [[ "$out" != "no services registered under 'aaaa"* ]]; then
  echo "FAIL: services with a 5000-byte prefix: exit $rc: ${out:0:200}"
  failures=$((failures + 1))
else
  echo "ok: services with a 5000-byte prefix: ${out:0:60}"
fi
grep -q "message too large" "$RT/thothd.log" && { echo "FAIL: thothctl sent thothd a request it drops"; failures=$((failures + 1)); }

# thothd cannot read RUNTIME_DIR/locks (here a file; EACCES for a user's
# thothd): the reason and the path, not "cannot read the runtime
# directory's locks/".
touch "$RT/locks"
refused 1 "cannot read $RT/locks: Not a directory" "$THOTHCTL" --runtime-dir "$RT" locks
rm -f "$RT/locks"
# Nothing profiled: thothctl says first the thothlock launcher, by its
# full path: a program run under it is listed in this live view while it
# runs and reported at its exit (it was said to report at the exit only,
# "not here", before its preload published a live marker too); in its own
# words with thothd running too (its NoTables branch compared the schema's
# code with THOTH_E_REMOTE and never ran).
launcher=$(realpath "$THOTHLOCK")
refused 1 "no running process publishes lock statistics in thothd's runtime directory (to see one here, start it with $launcher -- PROGRAM: listed here while it runs and reported at its exit, kept through a kill -9; docs/LOCKS.md)" \
  "$THOTHCTL" --runtime-dir "$RT" locks
refused 1 "process 1 publishes no lock statistics in thothd's runtime directory (to see it here, restart it with $launcher -- PROGRAM: listed here" \
  "$THOTHCTL" --runtime-dir "$RT" locks --pid 1
# No launcher beside it nor on PATH (a thothctl copied away): the bare
# LD_PRELOAD form, the library by its full path (LD_PRELOAD=libthothlock.so
# is not on ld.so's path: "cannot be preloaded: ignored"), saying why.
# (thothctl also looks at the configured prefix's bindir: an install
# there, `make install` on this machine, is found too.)
cp "$THOTHCTL" "$TMP/thothctl-alone"
prefix=$(sed -n 's/^CMAKE_INSTALL_PREFIX:PATH=//p' "$BUILD/CMakeCache.txt")
bindir=$(sed -n 's/^CMAKE_INSTALL_BINDIR:PATH=//p' "$BUILD/CMakeCache.txt")
case $bindir in /*) ;; *) bindir=$prefix/${bindir:-bin} ;; esac
if PATH=/usr/bin:/bin command -v thothlock >/dev/null || [ -x "$bindir/thothlock" ]; then
  echo "skip: a thothlock is installed (PATH or $bindir): the no-launcher hint is not reachable"
else
  refused 1 "(to see one here, start it with LD_PRELOAD=" env PATH=/usr/bin:/bin "$TMP/thothctl-alone" --runtime-dir "$RT" locks
  refused 1 " PROGRAM; no thothlock launcher found; docs/LOCKS.md)" env PATH=/usr/bin:/bin "$TMP/thothctl-alone" --runtime-dir "$RT" locks
fi

# The help that mentions the lock profiler names `thothlock -- PROGRAM`
# (the launcher: seen live and reported at the exit) before any
# LD_PRELOAD form; `trace --help` said LD_PRELOAD=libthothlock.so only.
for args in "trace --help" "--help"; do
  # shellcheck disable=SC2086
  help=$("$THOTHCTL" $args 2>&1)
  case $help in
    *"thothlock -- PROGRAM"*) ;;
    *) echo "FAIL: thothctl $args does not name thothlock -- PROGRAM"; exit 1 ;;
  esac
  before=${help%%thothlock -- PROGRAM*}
  case $before in
    *LD_PRELOAD*) echo "FAIL: thothctl $args names LD_PRELOAD before thothlock -- PROGRAM"; exit 1 ;;
  esac
done

# A trace session for a pid no process has (above pid_max) starts, as
# documented (a process may connect later), but warns: it said nothing.
nopid=$(( $(cat /proc/sys/kernel/pid_max) + 1 ))
"$THOTHCTL" --runtime-dir "$RT" trace start --pid "$nopid" >/dev/null 2>"$RT/trace.err"
rc=$?
"$THOTHCTL" --runtime-dir "$RT" trace stop >/dev/null 2>&1
if [ "$rc" != 0 ] || ! grep -qF "no process has pid $nopid" "$RT/trace.err"; then
  echo "FAIL: trace start --pid $nopid: exit $rc, stderr: $(cat "$RT/trace.err")"
  failures=$((failures + 1))
else
  echo "ok: trace start --pid $nopid: $(cat "$RT/trace.err")"
fi

# A pid that serves nothing is "not found" (exit 1), in text and JSON; no
# --pid and nothing serving is an empty answer (exit 0).
refused 1 "no connected process with pid 1 serves" "$THOTHCTL" --runtime-dir "$RT" serve --pid 1
refused 1 "no connected process with pid 1 serves" "$THOTHCTL" --runtime-dir "$RT" --json serve --pid 1
"$THOTHCTL" --runtime-dir "$RT" serve >/dev/null ||
  { echo "FAIL: thothctl serve with nothing serving exited $?"; failures=$((failures + 1)); }
# echo has a trace buffer and serves on its own loop (thoth_chan_server_new),
# which keeps no serve counters: said so.  The hint was "a service needs a
# trace buffer", of a service that had one.
tt_start_service "$RT" echo "$ECHO" --runtime-dir "$RT"
refused 1 "no connected process with pid $TT_PID serves with thoth_serve or thoth_serve_per_cpu" \
  "$THOTHCTL" --runtime-dir "$RT" serve --pid "$TT_PID"
out=$("$THOTHCTL" --runtime-dir "$RT" serve 2>&1)
if [[ "$out" != "no connected process serves with thoth_serve or thoth_serve_per_cpu ("* ]]; then
  echo "FAIL: thothctl serve beside echo: $out"; failures=$((failures + 1))
else
  echo "ok: thothctl serve beside echo: $out"
fi
kill "$TT_PID"; tt_reap "$TT_PID" || true
tt_spawn "$THOTHCTL" --runtime-dir "$RT" status --watch 20 >"$RT/watch.out" 2>"$RT/watch.err"
watch_pid=$TT_PID
until [ -s "$RT/watch.out" ]; do sleep 0.02; done       # it watches
kill -KILL "$thothd_pid"
{ tt_reap "$thothd_pid"; } 2>/dev/null     # no "Killed" line
# bounded: a watch still running after 30 s is killed (exit 143)
deadline=$((SECONDS + 30))
while kill -0 "$watch_pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.05; done
kill "$watch_pid" 2>/dev/null
tt_reap "$watch_pid"
rc=$?
if [ "$rc" != 1 ] || ! grep -qF "thothd (pid $thothd_pid) exited" "$RT/watch.err"; then
  echo "FAIL: status --watch after thothd died: exit $rc, stderr: $(cat "$RT/watch.err")"
  failures=$((failures + 1))
else
  echo "ok: status --watch ended when thothd died: $(cat "$RT/watch.err")"
fi

# An --etcd nothing answers at (a wrong URL, etcd down): thothd serves on,
# and its log says so (it said nothing but "federation: host ...").
RT=$TMP/rt-etcd
mkdir -m 700 "$RT"
tt_spawn "$THOTHD" --runtime-dir "$RT" --http-port off --etcd http://127.0.0.1:1 2>"$RT/thothd.log"
thothd_pid=$TT_PID
deadline=$((SECONDS + 30))
until grep -q "etcd at http://127.0.0.1:1 does not answer (connection refused)" "$RT/thothd.log" ||
      [ $SECONDS -ge $deadline ]; do sleep 0.05; done
if grep -q "does not answer" "$RT/thothd.log" && "$THOTHCTL" --runtime-dir "$RT" status >/dev/null; then
  echo "ok: $(grep -o 'federation: etcd.*' "$RT/thothd.log")"
else
  echo "FAIL: thothd with an unreachable etcd: $(cat "$RT/thothd.log")"
  failures=$((failures + 1))
fi
kill "$thothd_pid"
tt_reap "$thothd_pid"

# THOTH_* switches with a value that means nothing: libthoth never prints,
# so a typo gave epoll / no tracing / placement on in every process without
# a word; thothd says so at start (its log is where an operator looks).
RT=$TMP/rt-env
mkdir -m 700 "$RT"
TT_THOTHD_WRAP=(env THOTH_LOOP_BACKEND=io-uring THOTH_TRACE=ipc,lop THOTH_PLACEMENT=no THOTH_PLACEMENT_POLICY=apart_idle=2)
tt_start_thothd "$RT" --http-port off
unset TT_THOTHD_WRAP
thothd_pid=$THOTHD_PID
for want in "THOTH_LOOP_BACKEND=io-uring is not uring, io_uring or epoll" \
            "THOTH_TRACE=ipc,lop names no category list" "THOTH_PLACEMENT=no is not off or 0" \
            'THOTH_PLACEMENT_POLICY: placement policy "apart_idle=2"'; do
  if grep -qF "$want" "$RT/thothd.log"; then
    echo "ok: thothd says $want"
  else
    echo "FAIL: thothd's log lacks '$want': $(cat "$RT/thothd.log")"
    failures=$((failures + 1))
  fi
done
kill "$thothd_pid"
tt_reap "$thothd_pid" || true
fi  # part thothd

if part usage; then
# ops40: every thothctl command's usage error is one line naming the
# problem and where its usage is, exit 2: trace, pm sim, moderation and
# probe printed their whole usage (3 to 27 lines) after it, and some
# (moderation, probe attach/kernel/run, serve) said nothing else.  A bad
# flag, a missing value or operand and an extra argument of each.
one_line() {
  local pattern=$1
  shift
  timeout 20 "$THOTHCTL" "$@" >"$TMP/out" 2>"$TMP/err"
  local rc=$? lines
  lines=$(wc -l <"$TMP/err")
  if [ $rc = 2 ] && [ "$lines" = 1 ] && [ ! -s "$TMP/out" ] && grep -qF -- "$pattern" "$TMP/err" &&
     grep -qF -- "--help lists" "$TMP/err"; then
    echo "ok: thothctl $*: $(cat "$TMP/err")"
  else
    echo "FAIL: thothctl $*: exit $rc (want 2), $lines line(s) on stderr (want 1 with '$pattern'):"
    sed 's/^/  | /' "$TMP/err" | head -3
    failures=$((failures + 1))
  fi
}
one_line "trace: unknown option --bogus" trace start --bogus
# A usage error's argument is the user's word shown as text: its ESC went
# out raw (hostile46 review); one_line's fixed string holds no ESC.
one_line "unexpected argument x\x1b[31m" status "$(printf 'x\033[31m')"
one_line "moderation: --dev wants an interface name (1 to 15 bytes, no '/'), not a/\x1b[1m" \
  moderation --dev "$(printf 'a/\033[1m')"
one_line "trace: unknown trace command: bogus" trace bogus
one_line "trace: missing value for --pid" trace start --pid
one_line "trace: unexpected argument extra" trace stop extra
one_line "trace: start, stop, dump or --duration" trace
one_line "pm sim: unknown option --bogus" pm sim x --bogus
one_line "pm sim: no TRACE given" pm sim
one_line "pm sim: more than one TRACE given" pm sim a b
one_line "pm sim: --policy: unknown policy x" pm sim a --policy x
one_line "moderation: unknown option --bogus" moderation --bogus
one_line "moderation: missing value for --policy" moderation --policy
one_line "moderation: unexpected argument extra" moderation extra
one_line "moderation: --policy wants none, dim or adaptive, not fixed" moderation --policy fixed --rate 5
one_line "moderation: --policy needs --rate" moderation --policy dim
one_line "moderation: --rate needs --policy" moderation --rate 5
one_line "moderation: --policy/--rate (a model) and --dev/--probe" moderation --policy dim --rate 5 --probe
one_line "probe: which? check, attach" probe
one_line "probe: unknown subcommand bogus" probe bogus
one_line "probe: unknown option --bogus" probe --bogus
one_line "probe attach: no FILE.o given" probe attach --pid 1
one_line "probe attach: whose? give --pid PID or --service NAME" probe attach x.o
one_line "probe attach: --pid or --service, not both" probe attach x.o --pid 1 --service s
one_line "probe attach: missing value for --pid" probe attach x.o --pid
one_line "probe attach: unknown option --bogus" probe attach x.o --bogus 1
one_line "probe attach: unexpected argument y.o" probe attach x.o y.o --pid 1
one_line "probe kernel: no FILE.o given" probe kernel
one_line "probe kernel: unknown option --bogus" probe kernel x.o --bogus
one_line "probe kernel: missing value for --every" probe kernel x.o --every
# an option of another subcommand, its value given: not "missing value"
one_line "probe attach: unknown option --duration" probe attach x.o --duration 5 --pid 1
one_line "probe kernel: unknown option --pid" probe kernel x.o --pid 3
one_line "probe run: no 'SCRIPT' given" probe run --pid 1
one_line "probe run: whose? give --pid PID, --service NAME or --emit" probe run 'x'
one_line "probe run: unexpected argument y" probe run 'x' y --pid 1
one_line "probe check: takes one FILE.o, not 2 arguments" probe check a b
one_line "sched: unknown option --bogus" sched --bogus
one_line "sched: missing value for --from" sched --from
one_line "sched: unexpected argument extra" sched extra
one_line "locks: unknown option --bogus" locks --bogus
one_line "locks: unexpected argument extra" locks extra
one_line "serve: unknown option --bogus" serve --bogus
one_line "serve: missing value for --pid" serve --pid
one_line "serve: unexpected argument extra" serve extra
one_line "codex: unknown option --bogus" codex read s --bogus
one_line "codex: stats, create, append or read, not bogus" codex bogus
one_line "codex: missing value for --from" codex read s --from
one_line "codex read: needs one STREAM" codex read
one_line "moderation: --dev wants an interface name (1 to 15 bytes, no '/'), not a/b" moderation --dev a/b
# ... and a name the kernel has not, shown escaped (ESC went out raw).
refused 1 "moderation: --dev e\\x1b[1m: no such network interface" "$THOTHCTL" moderation --dev "$(printf 'e\033[1m')"
one_line "pm: unknown option --bogus" pm --bogus
one_line "pm: sim or nothing, not extra" pm extra
# status, services and resolve name themselves too (thothctl(1)): they said
# "unknown option --bogus" without the command, "status takes no arguments"
# of an option, and a bare "usage: resolve NAME ..." for a missing NAME.
one_line "status: unknown option --bogus" status --bogus
one_line "status: unexpected argument extra" status extra
one_line "status: unknown option --min-version" status --min-version 1
one_line "status: unexpected argument extra" status --watch 100 extra
one_line "status: --watch takes an interval of 10..3600000 ms, not extra" status --watch extra 100
one_line "services: unknown option --bogus" services --bogus
one_line "services: one PREFIX at most; unexpected argument b" services a b
one_line "services: unknown option --min-version" services --min-version 1
one_line "resolve: which service? give its NAME" resolve
one_line "resolve: one NAME; unexpected argument b" resolve a b
one_line "resolve: unknown option --watch" resolve a --watch
one_line "resolve: missing value for --min-version" resolve a --min-version
# The word refused, not the one before it: getopt leaves optind on a word
# of short options until its last letter, and argv[optind - 1] named the
# command ("trace: unknown option start") or a valid option ("unknown
# option --watch" for "--watch -500") (ops40 review).
one_line "trace: unknown option -xj" trace start -xj
one_line "moderation: unknown option -xh" moderation -xh
one_line "sched: unknown option -xj" sched --json -xj
one_line "status: an interval is 10..3600000 ms, not -500" status --watch -500

# ... and thothc's and thothlock's: the line, not the whole usage after it.
for cmd in "$THOTHC frobnicate" "$THOTHC gen --lang c" "$THOTHLOCK --bogus" "$THOTHLOCK"; do
  # shellcheck disable=SC2086
  timeout 20 $cmd >"$TMP/out" 2>"$TMP/err"
  rc=$?
  if [ $rc = 2 ] && [ "$(wc -l <"$TMP/err")" = 1 ] && grep -qF -- "--help lists" "$TMP/err"; then
    echo "ok: $(basename "${cmd%% *}") ${cmd#* }: $(cat "$TMP/err")"
  else
    echo "FAIL: $cmd: exit $rc (want 2), want one line: $(head -2 "$TMP/err")"
    failures=$((failures + 1))
  fi
done

refused 2 "unknown option '-x'" "$THOTHLOCK" -xv true   # not thothlock's own path

# ops40: an input file the command line names that cannot be used
# (missing, unreadable, a directory, not in its format) is exit 2 in every
# tool, as a bad argument: pm sim and sched --from said 1, probe and thothc
# 2, thothd 1 for its token file.  An output that cannot be written stays 1.
refused 2 "No such file" "$THOTHCTL" pm sim "$TMP/no-such.json"
refused 2 "not a number" "$THOTHCTL" pm sim "$TMP/passwd"
refused 2 "cannot read $TMP/no-such.json" "$THOTHCTL" sched --from "$TMP/no-such.json"
refused 2 "No such file" "$THOTHCTL" probe check "$TMP/no-such.o"
refused 2 "cannot open '$TMP/no-such.tidl'" "$THOTHC" lint "$TMP/no-such.tidl"
refused 2 "cannot open '$TMP/no-such.tidl'" "$THOTHC" check "$TMP/no-such.tidl" "$TMP/no-such.tidl"
refused 2 "cannot read a token from $TMP/no-such-token" "$THOTHD" --runtime-dir "$TMP/rt" --http-port 0 \
  --http-token-file "$TMP/no-such-token"
refused 1 "$TMP/no-such-dir/out" "$THOTHLOCK" -o "$TMP/no-such-dir/out" true

# ops40: a single-valued option given twice: the last counts, in every tool
# (thothd(8)'s --http-port rule; a script's default is overridden by
# appending): thothctl's, here, as thothd's in test_cli_operator.
out=$(timeout 20 "$THOTHCTL" moderation --policy dim --policy none --rate 5 2>&1)
case $out in "none at 5 msg/s"*) echo "ok: moderation --policy dim --policy none: the last counts" ;;
  *) echo "FAIL: moderation --policy dim --policy none: $out"; failures=$((failures + 1)) ;; esac
fi  # part usage

[ "$failures" = 0 ] || { echo "FAIL: $failures case(s)"; exit 1; }
echo "PASS"
