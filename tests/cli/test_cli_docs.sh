#!/usr/bin/env bash
# tests/cli/test_cli_docs.sh SOURCE_DIR PYTHON3 NAME=PROGRAM...
#
# Man pages, bash completions, docs/THOTHD.md's synopsis and every
# program's --help agree on the commands and flags, and every flag --help
# lists is parsed by that program's (command's) own source
# (check_cli_docs.py; the programs are CMake's $<TARGET_FILE>s).
# Then the checker must catch a drift: on copies of the tree with one
# flag dropped from a man page, one command from a completion, one option
# from the doc, one option-table entry from a source, a command from
# thothctl's dispatch table, an environment variable from the docs, a
# JSON key from docs/PM.md, and with a program missing or a subcommand's
# --help failing, each run has to fail naming what went wrong (a checker
# that passes everything would pass the real tree too).
set -euo pipefail
SRC=$1 PY=$2
shift 2
PROGS=("$@")
CHECK=$SRC/tests/cli/check_cli_docs.py
fail() { echo "FAIL: $*"; exit 1; }

"$PY" "$CHECK" "$SRC" "${PROGS[@]}" || fail "the tree's docs and programs disagree (above)"

TMP=$(mktemp -d /tmp/thoth-cli-docs-XXXXXX)
trap 'rm -rf "$TMP"' EXIT
# The drifted copies run against the same programs: each --help and each
# completion (by its script's bytes) is asked once (check_cli_docs.py).
export CHECK_CLI_DOCS_CACHE=$TMP/cache
mkdir "$CHECK_CLI_DOCS_CACHE"
# A copy of what the checker reads: the docs, the man pages, the completions
# and every source the programs are built from (options, getenv, JSON keys).
copy() {
  rm -rf "$TMP/src"
  mkdir -p "$TMP/src"
  cp -r "$SRC/man" "$SRC/completion" "$SRC/docs" "$SRC/kernel" "$SRC/tools" "$SRC/services" \
        "$SRC/codex" "$SRC/web" "$SRC/idl" "$SRC/include" "$SRC/README.md" "$TMP/src/"
}
# expect_fail WHAT EXPECTED ARGS...: the checker run on ARGS fails naming EXPECTED
expect_fail() {
  local what=$1 expected=$2 out rc=0
  shift 2
  out=$("$PY" "$CHECK" "$@" 2>&1) || rc=$?
  [ $rc = 1 ] || fail "checker passed $what (exit $rc): $out"
  grep -qF -- "$expected" <<<"$out" || fail "checker on $what did not name '$expected': $out"
  echo "ok: $what caught: $(grep -F -- "$expected" <<<"$out" | head -1)"
}
# broken FILE SED-EXPR EXPECTED: the drift must make the checker fail with EXPECTED
broken() {
  copy
  local before
  before=$(cat "$TMP/src/$1")
  sed -i "$2" "$TMP/src/$1"
  [ "$before" != "$(cat "$TMP/src/$1")" ] || fail "mutation '$2' changed nothing in $1: update this test"
  expect_fail "drift in $1 ('$2')" "$3" "$TMP/src" "${PROGS[@]}"
}
broken man/thothctl.1.scd 's/ \[\*--min-version\* _V_\]//' "thothctl resolve flags: in --help, not in thothctl(1): --min-version"
broken man/thothd.8.scd '/^\*--etcd-ttl\* _S_$/d' "in thothd --help, not in thothd(8) OPTIONS: --etcd-ttl"
broken man/codex.8.scd 's/--group-window-us/--group-window/g' "codex options: in codex --help, not in codex(8): --group-window-us"
broken man/thothlock.1.scd 's/--hold-sample/--hold-samples/g' "thothlock options: in thothlock --help, not in thothlock(1): --hold-sample"
broken completion/thothc.bash 's/gen check fmt lint --help/gen check fmt --help/' "in thothc --help, not in the completion: lint"
broken completion/thothctl.bash 's/--pid --json --runtime-dir --help/--json --runtime-dir --help/' "thothctl serve flags: in --help, not in the completion: --pid"
broken docs/THOTHD.md 's/ \[--ready-fd FD\]//' "not in docs/THOTHD.md \"Running it\": --ready-fd"
# An option-table entry gone from the command's own file: "sync" and "watch"
# are still strings elsewhere in thothctl's sources (a journal's flush
# reason, a call's name), which the check must not take for the parser.
broken tools/thothctl/codex.c '/{ "sync", no_argument/d' "thothctl codex: --help names --sync, which tools/thothctl/codex.c never parse"
broken tools/thothctl/main.c '/{ "watch", no_argument/d' "thothctl status: --help names --watch, which tools/thothctl/main.c never parse"

# Nothing is kept by hand: thothctl's commands come from its dispatch table,
# each command's parsing files from the function the table names (and the
# thothctl_cmd_fn it hands over to), a program's from its CMake sources and
# the headers they include from its folder.  A command the table lacks, or
# whose function is defined nowhere, fails by name; so does a flag parsed
# only in a file the derivation must find (pm sim's pm_sim.c, the moderators'
# moderator_cli.h), and a man page whose program no target builds.
broken tools/thothctl/main.c '/{ "serve", thothctl_serve, false },/d' "thothctl serve: not in the command table of tools/thothctl/main.c"
broken tools/thothctl/serve.c 's/^int thothctl_serve(/int thothctl_serve_moved(/' "thothctl serve: its function thothctl_serve is defined in none of"
broken tools/thothctl/pm_sim.c '/{ "export-list", required_argument/d' "thothctl pm: --help names --export-list, which tools/thothctl/pm.c tools/thothctl/pm_sim.c never parse"
broken services/moderator-common/moderator_cli.h 's/{ "sample-ms", required_argument/{ "sample-msx", required_argument/' "nic-moderator: --help names --sample-ms, which services/moderator-common/moderator_cli.h services/nic-moderator/main.c never parse"
copy
cp "$SRC/man/thothlock.1.scd" "$TMP/src/man/ghost.1.scd"
expect_fail "a man page of no program" "man/ghost.1.scd: no program ghost among the targets given" "$TMP/src" "${PROGS[@]}"

# Environment variables: one read and documented nowhere (a literal, or a
# wrapper's argument: preload.c's sample_env), and a getenv of a name no
# call says.
broken codex/main.c '0,/^#include/s//const char *codex_ghost(void);\nconst char *codex_ghost(void) { return getenv("THOTH_GHOST_VAR"); }\n#include/' "environment variable THOTH_GHOST_VAR (read in codex/main.c) is in no man page nor docs"
copy
sed -i 's/THOTHLOCK_ACQ_SAMPLE/THOTHLOCK_ACQ_SAMPLING/g' "$TMP/src/docs/LOCKS.md" "$TMP/src/man/thothlock.1.scd"
expect_fail "an undocumented wrapper's variable" "environment variable THOTHLOCK_ACQ_SAMPLE (read in kernel/observability/locks/preload.c)" "$TMP/src" "${PROGS[@]}"
broken codex/main.c '0,/^#include/s//const char *codex_env(const char *n);\nconst char *codex_env(const char *n) { return getenv(n); }\n#include/' "getenv(n): which variable? (no call of codex_env with a name in this file)"

# thothctl pm --json's keys, which docs/PM.md lists: one left out, one
# that is not written, and the list no longer marked as one.
broken docs/PM.md 's/`share_refusals`, //' "thothctl pm --json keys: in tools/thothctl/pm.c, not in docs/PM.md: share_refusals"
broken docs/PM.md 's/`lease_limit`,/`lease_limit`, `lease_ceiling`,/' "thothctl pm --json keys: in docs/PM.md, not in tools/thothctl/pm.c: lease_ceiling"
broken docs/PM.md 's/); its keys:/); it has/' "docs/PM.md: \`thothctl pm --json\`'s keys shown without \"keys:\""
# the list still held when its sentence names the command and --json apart
broken docs/PM.md 's/^`thothctl pm --json` prints one object/`thothctl pm` with `--json` prints one object/; s/`share_refusals`, //' "thothctl pm --json keys: in tools/thothctl/pm.c, not in docs/PM.md: share_refusals"

# The lock report's JSON tables in docs/LOCKS.md (`thothctl --json locks`),
# held to the file the section names as writing it: a key left out (the two
# sampling counts were), and one the file never writes.
broken docs/LOCKS.md 's/`acq_sampling_threads` and `miss_sampling_threads` (how many/(how many/' "in kernel/observability/locks/lockprof_report.c, not in docs/LOCKS.md: acq_sampling_threads miss_sampling_threads"
broken docs/LOCKS.md 's/`cond_waits`, /`cond_waits`, `cond_timeouts`, /' "in docs/LOCKS.md, not in kernel/observability/locks/lockprof_report.c: cond_timeouts"

# A program not built, or not given: named, not skipped.
copy
args=()
for a in "${PROGS[@]}"; do
  case $a in codex=*) args+=("codex=$TMP/no-such-codex") ;; thothlock=*) ;; *) args+=("$a") ;; esac
done
expect_fail "a missing codex" "codex: no program at $TMP/no-such-codex" "$SRC" "${args[@]}"
expect_fail "no thothlock given" "thothlock: no thothlock=PATH argument" "$SRC" "${args[@]}"

# A `thothctl CMD SUB --help` that fails: a thothctl answering probe detach's
# --help with exit 2 (as it did) must fail the check.
mkdir -p "$TMP/bin"
args=()
for a in "${PROGS[@]}"; do
  case $a in
    thothctl=*)
      printf '#!/bin/sh\n[ "$*" = "probe detach --help" ] && { echo "usage: thothctl probe detach ID"; exit 2; }\nexec %q "$@"\n' \
        "${a#thothctl=}" >"$TMP/bin/thothctl"
      chmod +x "$TMP/bin/thothctl"
      args+=("thothctl=$TMP/bin/thothctl") ;;
    *) args+=("$a") ;;
  esac
done
expect_fail "a failing probe detach --help" "\`thothctl probe detach --help\` exited 2" "$SRC" "${args[@]}"
echo "PASS"
