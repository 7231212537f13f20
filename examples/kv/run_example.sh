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
"$client" "$sock" forget greeting
if "$client" "$sock" get greeting 2>"$dir/err"; then echo "get after forget succeeded" >&2; exit 1; fi
grep -q NotFound "$dir/err"
echo "kv example: ok"
