#!/bin/sh
# bench/codex/test_bench_codex_args.sh BENCH_CODEX: bench_codex DIR keeps
# DIR (it removed DIR itself at the end: `bench_codex ~/data` took
# ~/data), works in a directory of its own inside it and removes only that;
# an option is not a DIR (--help ran the whole bench in ./--help).
set -u
b=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
dir=$(mktemp -d /tmp/bench-codex-args-XXXXXX)
trap 'rm -rf "$dir"' EXIT
echo precious >"$dir/keep"
BENCH_CODEX_ONLY=1 BENCH_CODEX_SECONDS=0.05 BENCH_CODEX_REPS=1 "$b" "$dir" >"$dir/../$(basename "$dir").out" 2>&1
rc=$?
rm -f "$dir/../$(basename "$dir").out"
[ $rc -eq 0 ] || { echo "FAIL: bench_codex DIR exited $rc"; exit 1; }
[ -f "$dir/keep" ] || { echo "FAIL: bench_codex removed DIR's own file"; exit 1; }
[ "$(ls -A "$dir")" = keep ] || { echo "FAIL: bench_codex left: $(ls -A "$dir")"; exit 1; }
cd "$dir" || exit 1
"$b" --bogus >/dev/null 2>&1; rc=$?
[ $rc -eq 2 ] || { echo "FAIL: bench_codex --bogus exited $rc, want 2"; exit 1; }
"$b" --help | grep -q '^usage: bench_codex' || { echo "FAIL: bench_codex --help"; exit 1; }
[ "$(ls -A)" = keep ] || { echo "FAIL: an option made a directory: $(ls -A)"; exit 1; }
echo ok
