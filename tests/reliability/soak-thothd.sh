#!/bin/sh
# thothd's soak: every hostile scenario of thothd_hostile.py for SECONDS
# each, then the kill -9 test of services (endpoint sockets) repeated.
set -u
build=${1:?usage: soak-thothd.sh BUILD_DIR SECONDS}
seconds=${2:-60}
here=$(cd "$(dirname "$0")" && pwd)
status=0
# Debian's python3 where there is one, as CMake finds it for the tests: a
# version manager's shim first on PATH costs seconds a start.
py=${THOTH_PYTHON3:-python3}
[ -n "${THOTH_PYTHON3:-}" ] || [ ! -x /usr/bin/python3 ] || py=/usr/bin/python3
for scenario in idle partial fdlimit detach crash; do
	"$py" "$here/thothd_hostile.py" "$scenario" --seconds "$seconds" \
		--thothd "$build/kernel/thothd/thothd" --thothctl "$build/tools/thothctl/thothctl" \
		--service "$build/services/echo" || status=1
done
end=$(( $(date +%s) + seconds ))
runs=0
while [ "$(date +%s)" -lt "$end" ]; do
	"$build/tests/reliability/test_thothd_endpoints" >/dev/null 2>&1 || { status=1; echo "test_thothd_endpoints failed (run $runs)"; break; }
	runs=$((runs + 1))
done
echo "test_thothd_endpoints: $runs runs (20 kill -9 each)"
exit $status
