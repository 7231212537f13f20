#!/bin/sh
# make soak, chaos part: test_chaos (random SIGKILLs of thothd, services,
# codex, the PM driver and clients under load) for SECONDS instead of the
# short run of make test.  THOTH_CHAOS_SEED (if set) replays a failure.
#   soak-chaos.sh BUILD_DIR SECONDS
set -u
build=${1:?usage: soak-chaos.sh BUILD_DIR SECONDS}
seconds=${2:-60}
bin=$build/tests/reliability/test_chaos
[ -x "$bin" ] || { echo "soak-chaos: $bin not built" >&2; exit 1; }
THOTH_CHAOS_SECONDS=$seconds "$bin"
