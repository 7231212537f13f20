#!/bin/sh
# rpc_instructions.sh - instructions per call in the RPC layer of a two-CPU
# 64 B spin round trip (bench_channel's thoth-default cell), counted by
# callgrind: a stable figure on a loaded machine, where round-trip times
# swing by 10-20%.  docs/BENCHMARKS.md (SCHED-3/4, stop 25).
#
#   bench/channel/rpc_instructions.sh [path/to/bench_channel [--send-stamps]]
#
# Prints, per call of the 64 B cell (1,105 calls and 2 CPU-time queries):
# thoth_server_dispatch (the service), thoth_client_begin and
# thoth_client_commit without the transport (tr_call: the send and the
# wait), each with everything it calls; then the service's send of its
# response (chan_try_send: the same code the client's send runs, less the
# urgent flag; a channel whose consumer did not ask for send stamps) and
# the client's send of its request (thoth_chan_send_flags: the inline
# send with the urgent flag).  --send-stamps: the service asks for send
# stamps (docs/IPC.md "Send stamps"), so the client's send is the stamped
# one (its clock read included).  Counted with --toggle-collect, so
# inlined code is counted wherever callgrind files it.  The client's counts
# are read from the process forked for the 64 KiB cell: a forked child's
# profile starts with its parent's counts, here the client's after the 64 B
# cell and before any 64 KiB call.  Needs valgrind (bench group).
set -eu
BIN=${1:-build/default/bench/channel/bench_channel}
[ $# -gt 0 ] && shift
EXTRA="$*"
CALLS=1107
command -v valgrind >/dev/null || { echo "rpc_instructions: valgrind is not installed (scripts/bootstrap.sh bench)" >&2; exit 1; }
[ -x "$BIN" ] || { echo "rpc_instructions: no bench_channel at $BIN" >&2; exit 1; }
DIR=$(mktemp -d)
trap 'rm -rf "$DIR"' EXIT

# count NAME TOGGLE... : the instructions collected in each process, one a line
count() {
	name=$1
	shift
	mkdir "$DIR/$name"
	valgrind --tool=callgrind --callgrind-out-file="$DIR/$name/cg.%p" "$@" "$BIN" --matrix --quick \
		--runs 1 --placement two-cpus --only thoth-default $EXTRA >/dev/null 2>&1
	for f in "$DIR/$name"/cg.*; do
		sed -n 's/^totals: *\([0-9]*\).*/\1/p' "$f"
	done
}

# The service of the 64 B cell collects the most dispatch instructions.
d=$(count dispatch --toggle-collect=thoth_server_dispatch | sort -n | tail -1)
# The client's 64 B counts: the smaller of the two processes that have any.
b=$(count begin --toggle-collect=thoth_client_begin | awk '$1 > 0' | sort -n | head -1)
c=$(count commit --toggle-collect=thoth_client_commit --toggle-collect=tr_call | awk '$1 > 0' | sort -n | head -1)
t=$(count send --toggle-collect=chan_try_send | sort -n | tail -1)
# The client's send: the smaller of the processes that have any (as begin).
f=$(count csend --toggle-collect=thoth_chan_send_flags | awk '$1 > 0' | sort -n | head -1)
case "$EXTRA" in
*--send-stamps*) what="stamped";;
*) what="unstamped";;
esac
echo "per call, 64 B, two CPUs ($CALLS calls): thoth_server_dispatch $((d / CALLS)), thoth_client_begin $((b / CALLS)), thoth_client_commit without the transport $((c / CALLS)), the service's chan_try_send $((t / CALLS)), the client's $what send (thoth_chan_send_flags) $((f / CALLS)) instructions"
