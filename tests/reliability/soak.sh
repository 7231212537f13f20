#!/bin/sh
# make soak: the long variants of the reliability suite.  Each part of the
# suite ships a soak-<part>.sh here, run in name order as
#   soak-<part>.sh BUILD_DIR SECONDS
# (SECONDS: the attack time of each scenario; CI sets SOAK_SECONDS to fit
# its budget).  Exits non-zero if any part fails.
set -u
build=${1:?usage: soak.sh BUILD_DIR SECONDS}
seconds=${2:-60}
here=$(cd "$(dirname "$0")" && pwd)
status=0
for part in "$here"/soak-*.sh; do
	[ -e "$part" ] || continue
	echo "== $(basename "$part") (${seconds}s per scenario)"
	sh "$part" "$build" "$seconds" || status=1
done
exit $status
