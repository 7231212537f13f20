#!/bin/sh
# soak-codex.sh BUILD_DIR SECONDS - codex's crash matrix, long (docs/CODEX.md):
# as many SIGKILL rounds as fit in SECONDS (about 7 a second here), at least
# 1000, on the real disk under BUILD_DIR.  make test runs 150.
set -u
build=${1:?usage: soak-codex.sh BUILD_DIR SECONDS}
seconds=${2:-60}
bin=$build/tests/codex/test_codex_crash
[ -x "$bin" ] || { echo "soak-codex: $bin not built"; exit 1; }
kills=$((seconds * 7))
[ "$kills" -ge 1000 ] || kills=1000
mkdir -p "$build/soak-codex"
"$bin" "$kills" "$build/soak-codex"
