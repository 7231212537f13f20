#!/bin/sh
# The kv example end to end (also a CTest test): thothd in a fresh runtime
# dir, kv-service registers with it, kv-client finds it by name: put, get,
# forget, get again (NotFound); then everything stops.  Only the pids
# started here are stopped.
#   run_example.sh THOTHD THOTHCTL KV_SERVICE KV_CLIENT
set -eu
thothd=$1
thothctl=$2
service=$3
client=$4
dir=$(mktemp -d /tmp/thoth-kv-XXXXXX)
chmod 700 "$dir"
spid= tpid=
cleanup() {
	[ -z "$spid" ] || { kill "$spid" 2>/dev/null; wait "$spid" 2>/dev/null || true; }
	[ -z "$tpid" ] || { kill "$tpid" 2>/dev/null; wait "$tpid" 2>/dev/null || true; }
	rm -rf "$dir"
}
trap cleanup EXIT
# --http-port 0: the default 127.0.0.1:9180 may be another thothd's
"$thothd" --runtime-dir "$dir" --http-port 0 2>"$dir/thothd.log" & tpid=$!
# thothd is up once it answers (a condition with a deadline, not a sleep)
i=0; until "$thothctl" --runtime-dir "$dir" status >/dev/null 2>&1; do
	i=$((i+1)); [ $i -lt 250 ] || { echo "thothd did not start" >&2; cat "$dir/thothd.log" >&2; exit 1; }
	sleep 0.02
done
# a small store: 250 bytes in all, each entry costing its key, its value
# and 88 bytes for its record and allocations (kv_service.c, ENTRY_COST)
"$service" --runtime-dir "$dir" --max-bytes 250 2>"$dir/kv.log" & spid=$!
kv() { "$client" --runtime-dir "$dir" "$@"; }
kv put greeting "hello, thoth"      # waits (bounded) until kv has registered
test "$(kv get greeting)" = "hello, thoth"
# --help is asked for: the usage on stdout, exit 0 (both said it as an
# error, exit 2, on stderr)
for p in "$client" "$service"; do
  "$p" --help >"$dir/help" 2>"$dir/err" || { echo "$p --help: exit $?" >&2; exit 1; }
  grep -q "^usage: kv-" "$dir/help" || { echo "$p --help printed no usage" >&2; exit 1; }
done
# a word too many is said, not dropped (exit 2, the usage)
if kv get greeting extra 2>"$dir/err"; then echo "get with an extra argument succeeded" >&2; exit 1; fi
grep -q usage "$dir/err"
# the registry names it, with its endpoint in the runtime dir
"$thothctl" --runtime-dir "$dir" services kv | grep -q "kv-$spid.sock"
# a key never put: the service's declared error, by name
if kv get nothing 2>"$dir/err"; then echo "get of a missing key succeeded" >&2; exit 1; fi
grep -q NotFound "$dir/err"
# the store is bounded in total: a put past it is refused by name and the
# store keeps what it had; replacing a value counts only the difference
if kv put big "$(printf '%060d' 0)" 2>"$dir/err"; then echo "a put past --max-bytes succeeded" >&2; exit 1; fi
grep -q Full "$dir/err"
test "$(kv get greeting)" = "hello, thoth"
kv put greeting "hello again, thoth"
# a second key is counted beside the first
kv put greet x
test "$(kv get greeting)" = "hello again, thoth"
test "$(kv get greet)" = "x"
kv forget greet
i=0; while kv get greet >/dev/null 2>&1; do
	i=$((i+1)); [ $i -lt 100 ] || { echo "forget was lost" >&2; exit 1; }; sleep 0.01
done
# forgetting gave its bytes back: a put that fits only then succeeds
kv put other "$(printf '%030d' 0)"
# forget is oneway: it is served even though the client closes at once, but
# messages on two different channels are not ordered, so wait for it
kv forget greeting
i=0; while kv get greeting >/dev/null 2>&1; do
	i=$((i+1)); [ $i -lt 100 ] || { echo "forget was lost" >&2; exit 1; }; sleep 0.01
done
# stopping the service withdraws it: resolving fails (after its bounded retry)
kill "$spid"; wait "$spid" 2>/dev/null || true; spid=
if kv get greeting 2>"$dir/err"; then echo "kv still resolves after it stopped" >&2; exit 1; fi
grep -q "cannot find kv" "$dir/err"
echo "kv example: ok"
