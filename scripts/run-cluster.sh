#!/usr/bin/env bash
# scripts/run-cluster.sh BUILD_DIR [--hosts N] [--for SECONDS]
#
# `make run-cluster`: several ThothOS "hosts" on one machine, federated
# through etcd (docs/FEDERATION.md).  Starts etcd on free ports of
# 127.0.0.1 with a data dir in a temp folder, then N thothd (default 3),
# each with its own runtime dir, all sharing one cluster token (0600), and
# on each host an echo service that serves channels locally and TCP to the
# other hosts (its own free port).  Prints how to resolve across hosts;
# waits.  Ctrl-C (or SIGTERM, or the end of --for SECONDS) stops everything
# and removes the runtime dirs and etcd's data; logs are kept.
set -euo pipefail

usage() { echo "usage: $0 BUILD_DIR [--hosts N] [--for SECONDS]" >&2; exit 2; }
[ $# -ge 1 ] || usage
BUILD=$(cd "$1" && pwd) || usage; shift
FOR="" HOSTS=3
while [ $# -gt 0 ]; do
  case $1 in
    --for) [ $# -ge 2 ] || usage; FOR=$2; shift 2 ;;
    --hosts) [ $# -ge 2 ] || usage; HOSTS=$2; shift 2 ;;
    *) usage ;;
  esac
done
[[ $HOSTS =~ ^[1-9]$ ]] || { echo "run-cluster.sh: --hosts wants 1..9" >&2; exit 2; }

THOTHD=$BUILD/kernel/thothd/thothd
THOTHCTL=$BUILD/tools/thothctl/thothctl
ECHO=$BUILD/services/echo
ETCD=${ETCD:-$(command -v etcd || true)}
for bin in "$THOTHD" "$THOTHCTL" "$ECHO"; do
  [ -x "$bin" ] || { echo "run-cluster.sh: $bin is missing: build first (make build)" >&2; exit 1; }
done
[ -n "$ETCD" ] && [ -x "$ETCD" ] || {
  echo "run-cluster.sh: etcd is not installed (scripts/bootstrap.sh test, or apt-get install etcd-server)" >&2
  exit 1
}

BASE="" LOGS=""
PIDS=()
HOST_PIDS=()
stopping=0
# A pid still running: not gone, not a zombie (kill -0 succeeds on an
# unreaped child, which `wait` would reap but could block on forever).
running() {
  local st
  st=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null) || return 1
  [ "${st%% *}" != Z ]
}
cleanup() {
  [ $stopping = 1 ] && return
  stopping=1
  trap '' INT TERM
  echo
  echo "stopping: ${PIDS[*]:-nothing}"
  # Each (last started first) gets SIGTERM and 10 s to end, then SIGKILL: a
  # thothd that does not exit must not keep this script (and its caller) waiting.
  local p end
  for ((i=${#PIDS[@]}-1; i>=0; i--)); do
    p=${PIDS[$i]}
    kill -TERM "$p" 2>/dev/null || true
    end=$((SECONDS + 10))
    while running "$p" && [ $SECONDS -lt $end ]; do sleep 0.05; done
    if running "$p"; then
      echo "$p did not end within 10 s of SIGTERM: SIGKILL"
      kill -KILL "$p" 2>/dev/null || true
    fi
    wait "$p" 2>/dev/null || true
  done
  [ -z "$BASE" ] || rm -rf "$BASE"
  local said="stopped; removed ${BASE:-nothing}"
  # A folder of no logs (stopped before anything ran) is not kept.
  if [ -n "$LOGS" ] && rmdir "$LOGS" 2>/dev/null; then
    said+=" and $LOGS (no logs yet)"
  elif [ -n "$LOGS" ]; then
    said+="; logs kept in $LOGS"
  fi
  echo "$said"
}
trap cleanup EXIT
# As usual: 128 + the signal's number (the EXIT trap cleans up first).
trap 'exit 130' INT
trap 'exit 143' TERM
# The folders only once the traps are set: a SIGTERM between their mktemp
# and the traps (test_run_cluster's early one, under load) ended the script
# with neither removed nor named (an empty thoth-cluster-logs-* in the
# stage's TMPDIR, which its leftovers guard fails on).
BASE=$(mktemp -d /tmp/thoth-cluster-XXXXXX)     # 0700, ours
LOGS=$(mktemp -d "${TMPDIR:-/tmp}/thoth-cluster-logs-XXXXXX")

# Free ports of 127.0.0.1, found by the kernel (bind port 0), by Debian's
# python3 where there is one (THOTH_PYTHON3 first, as the tests' CMake
# finds it): a version manager's shim first on PATH (pyenv) costs seconds
# a start on a loaded machine, and test_run_cluster runs this script.
PY=${THOTH_PYTHON3:-python3}
[ -n "${THOTH_PYTHON3:-}" ] || [ ! -x /usr/bin/python3 ] || PY=/usr/bin/python3
free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# One substitution per statement: bash 5.2 runs a trap that arrives during
# `A=$(..) B=$(..)` as if still inside the second's parse ("trap: unexpected
# EOF while looking for matching `)'", exit 2).
CLIENT_PORT=$(free_port)
PEER_PORT=$(free_port)
URL=http://127.0.0.1:$CLIENT_PORT
"$ETCD" --data-dir "$BASE/etcd" --listen-client-urls "$URL" --advertise-client-urls "$URL" \
  --listen-peer-urls "http://127.0.0.1:$PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$PEER_PORT" \
  --initial-cluster "default=http://127.0.0.1:$PEER_PORT" --log-level warn >"$LOGS/etcd.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do
  curl -s "$URL/health" 2>/dev/null | grep -q '"health":"true"' && break
  kill -0 "${PIDS[0]}" 2>/dev/null || { echo "etcd died: $LOGS/etcd.log" >&2; tail "$LOGS/etcd.log" >&2; exit 1; }
  sleep 0.1
done

# One token for the whole cluster: every host's calls to another must show it.
umask 077
od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"$BASE/cluster.token"

for n in $(seq "$HOSTS"); do
  RT=$BASE/host$n
  mkdir -m 700 "$RT"
  cp "$BASE/cluster.token" "$RT/cluster.token"
  mkfifo "$RT/ready"
  "$THOTHD" --runtime-dir "$RT" --log-level info --ready-fd 3 --http-port off \
    --etcd "$URL" --host-id "host$n" 3>"$RT/ready" >"$LOGS/thothd-host$n.log" 2>&1 &
  PIDS+=($!)
  HOST_PIDS+=("host$n=$!")
  read -r _ <"$RT/ready" || { echo "thothd host$n did not start: $LOGS/thothd-host$n.log" >&2; exit 1; }
  "$ECHO" --runtime-dir "$RT" --tcp tcp:127.0.0.1:0 >"$LOGS/echo-host$n.log" 2>&1 &
  PIDS+=($!)
done

# Wait until host1 sees every other host's echo (remote instances).
want=$((HOSTS - 1))
for _ in $(seq 100); do
  have=$(THOTH_RUNTIME_DIR=$BASE/host1 "$THOTHCTL" services 2>/dev/null | grep -c 'tcp:' || true)
  [ "$have" -ge $((want + 1)) ] && break
  sleep 0.1
done

cat <<EOF
ThothOS cluster: etcd at $URL and $HOSTS thothd hosts (runtime dirs $BASE/host1..$HOSTS),
an echo service on each (channels for its own host, TCP for the others).

Every host lists its own instances and the other hosts' (tcp:..., remote):
  THOTH_RUNTIME_DIR=$BASE/host1 $THOTHCTL services
  THOTH_RUNTIME_DIR=$BASE/host2 $THOTHCTL resolve echo     # its own first: local before remote
What etcd holds (one lease per host, every registration attached), through its JSON gateway
(etcdctl is Debian's etcd-client, not installed with thoth: "etcdctl --endpoints URL get --prefix /thoth/v1/ --keys-only"):
  curl -s -X POST $URL/v3/kv/range -d '{"key":"L3Rob3RoL3YxLw==","range_end":"L3Rob3RoL3YxMA==","keys_only":true}' | python3 -c 'import json,sys,base64; [print(base64.b64decode(k["key"]).decode()) for k in json.load(sys.stdin)["kvs"]]'
Kill a host and watch its instances leave the others within the lease TTL (10 s) + 1 s:
  kill -9 <pid of a host's thothd>    (${HOST_PIDS[*]})
Logs: $LOGS.  Ctrl-C stops everything.
EOF
echo
THOTH_RUNTIME_DIR=$BASE/host1 "$THOTHCTL" services || true

# A waited-for background sleep, not a foreground one: bash runs the INT/TERM
# trap only once a foreground child ends, so a SIGTERM sent to this script
# alone (not to its process group, as Ctrl-C is) waited out the whole --for.
if [ -n "$FOR" ]; then
  sleep "$FOR" &
else
  sleep infinity &
fi
PIDS+=($!)
wait $! || true
