#!/bin/sh
# The kv example end to end (also a CTest test): start the service, put,
# get, forget, get again (NotFound), stop the service.
set -eu
service=$1
client=$2
dir=$(mktemp -d /tmp/thoth-kv-XXXXXX)
sock=$dir/kv.sock
"$service" "$sock" & pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$dir"' EXIT
i=0; while [ ! -S "$sock" ] && [ $i -lt 200 ]; do sleep 0.01; i=$((i+1)); done
"$client" "$sock" put greeting "hello, thoth"
test "$("$client" "$sock" get greeting)" = "hello, thoth"
# A key never put: the service's declared error, by name.
if "$client" "$sock" get nothing 2>"$dir/err"; then echo "get of a missing key succeeded" >&2; exit 1; fi
grep -q NotFound "$dir/err"
# forget is oneway: it is served even though the client closes at once, but
# messages on two different channels are not ordered, so wait for it.
"$client" "$sock" forget greeting
i=0; while "$client" "$sock" get greeting >/dev/null 2>&1; do
	i=$((i+1)); [ $i -lt 100 ] || { echo "forget was lost" >&2; exit 1; }; sleep 0.01
done
echo "kv example: ok"
