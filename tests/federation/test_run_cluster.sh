#!/usr/bin/env bash
# tests/federation/test_run_cluster.sh SOURCE_DIR BUILD_DIR
#
# `make run-cluster` (scripts/run-cluster.sh) prints the commands that look
# at the cluster it started.  Each is run here exactly as printed and must
# work: the one showing what etcd holds named etcdctl, which is Debian's
# etcd-client and not installed with thoth ("command not found").  Then a
# SIGTERM to the script alone must stop everything within seconds.
# Skips (77) where etcd is not installed.
set -uo pipefail
SRC=$1 BUILD=$2
command -v etcd >/dev/null || [ -x /usr/bin/etcd ] || { echo "SKIP: no etcd"; exit 77; }
OUT=$(mktemp /tmp/thoth-run-cluster-XXXXXX)
"$SRC/scripts/run-cluster.sh" "$BUILD" --hosts 2 --for 120 >"$OUT" 2>&1 &
pid=$!
cleanup() {
  kill "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  rm -f "$OUT"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; echo "--- run-cluster.sh said:"; cat "$OUT"; exit 1; }

deadline=$((SECONDS + 90))
until grep -q "Ctrl-C stops everything" "$OUT"; do
  kill -0 "$pid" 2>/dev/null || fail "run-cluster.sh ended before the cluster was up"
  [ $SECONDS -lt $deadline ] || fail "the cluster was not up within 90 s"
  sleep 0.1
done

# The commands: the indented lines between the banner and "Kill a host".
mapfile -t cmds < <(sed -n '/^Every host lists/,/^Kill a host/p' "$OUT" | grep '^  ')
[ ${#cmds[@]} -ge 3 ] || fail "expected 3 commands to look at the cluster, found ${#cmds[@]}"
for c in "${cmds[@]}"; do
  out=$(bash -c "$c" 2>&1) || fail "\`${c#  }\` exited $?: $out"
  [ -n "$out" ] || fail "\`${c#  }\` printed nothing"
  echo "ok: ${c#  }"
done
etcd_cmd=$(printf '%s\n' "${cmds[@]}" | grep -F '/v3/kv/range') || fail "no command shows what etcd holds"
keys=$(bash -c "$etcd_cmd")
grep -qx "/thoth/v1/host/host1" <<<"$keys" && grep -qx "/thoth/v1/host/host2" <<<"$keys" ||
  fail "what etcd holds lacks the hosts' keys: $keys"
grep -q "^/thoth/v1/inst/host2/" <<<"$keys" || fail "what etcd holds lacks host2's echo instance: $keys"

# SIGTERM to the script alone (a service manager, `kill PID`) stops
# everything at once: it waited out --for (a foreground sleep defers the trap).
hosts=$(grep -o 'host[0-9]=[0-9]*' "$OUT" | cut -d= -f2)
[ -n "$hosts" ] || fail "no host pids printed"
kill -TERM "$pid"
deadline=$((SECONDS + 30))
while kill -0 "$pid" 2>/dev/null; do
  [ $SECONDS -lt $deadline ] || fail "run-cluster.sh still running 30 s after SIGTERM"
  sleep 0.1
done
for h in $hosts; do
  ! kill -0 "$h" 2>/dev/null || fail "thothd $h still running after run-cluster.sh ended"
done
grep -q "^stopped; removed " "$OUT" || fail "run-cluster.sh did not say it stopped"
echo PASS
