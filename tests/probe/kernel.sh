#!/bin/bash
# test_probe_kernel: kernel hooks loaded into Linux by a real thothd, which
# holds them (docs/PROBES.md "Kernel hooks").  One object's tracepoint/
# programs (sched_switch, sched_wakeup, cpu_idle, cpu_frequency,
# irq_handler_entry) load with `thothctl probe kernel`, count, and their map
# prints like `probe maps` (JSON checked).  --keep leaves them with thothd:
# listed beside a user probe, maps read through thothd while they run, on
# the dashboard's /probes.json, detached by `probe detach`.  A thothctl
# SIGKILLed mid-run leaves no BPF link behind (thothd's fds counted).  A
# program the kernel verifier refuses exits 1 with the kernel's log; bad
# files get exit 2 / 1 with a reason.  Needs root (or CAP_BPF+CAP_PERFMON)
# and tracepoints: skipped (77) with what is missing.
#   kernel.sh THOTHD THOTHCTL OBJDIR CORPUSDIR PROBE_TARGET
set -u
THOTHD=$1 CTL=$2 OBJ=$3 CORPUS=$4 TARGET=$5
# The python3 CMake found (THOTH_PYTHON3_EXE, tests/CMakeLists.txt): not a
# version manager's shim, which costs ~0.7 s of CPU per start.
PYTHON3=${THOTH_PYTHON3:-python3}
fail() { echo "FAIL: $*"; [ -f "$RT/thothd.log" ] && tail -20 "$RT/thothd.log"; exit 1; }

if [ "$(id -u)" != 0 ]; then
	echo "SKIP: test_probe_kernel needs root (or CAP_BPF and CAP_PERFMON) to load BPF into the kernel"
	exit 77
fi
# tracefs unmounted (a VM or container with no systemd to mount it): the
# refusal must say so; then the test mounts it for its own run, in a mount
# namespace of its own (thothd's too), which goes with its last process.
# Mounted on the host's /sys/kernel/tracing and unmounted at the end, it
# was unmounted under any test that had found it mounted meanwhile:
# RESOURCE_LOCK tracefs keeps such tests apart within one ctest, not across
# two ctest runs at once (the other build stage, another checkout's).
MOUNT_TRACEFS=
if [ ! -d /sys/kernel/tracing/events/sched/sched_switch ] &&
   [ ! -d /sys/kernel/debug/tracing/events/sched/sched_switch ]; then
	if ! grep -qw tracefs /proc/filesystems || [ ! -d /sys/kernel/tracing ]; then
		echo "SKIP: test_probe_kernel needs tracefs (sched tracepoints under /sys/kernel/tracing)"
		exit 77
	fi
	if [ -z "${THOTH_KPROBE_OWN_NS:-}" ]; then
		command -v unshare >/dev/null ||
			{ echo "SKIP: tracefs is not mounted and unshare(1) (util-linux) is missing to mount it privately"; exit 77; }
		THOTH_KPROBE_OWN_NS=1 exec unshare --mount --propagation private bash "$0" "$@"
	fi
	MOUNT_TRACEFS=1
fi

. "$(dirname "$0")/../common/thoth_test.sh"
# thothd's sockets go in it: a short folder of the stage's if TMPDIR is long.
RT=$(tt_tempdir kprobe) || { echo "FAIL: no temp dir"; exit 1; }
pids=()
MOUNTED=
cleanup() {
	for ((i=${#pids[@]}-1; i>=0; i--)); do kill -TERM "${pids[$i]}" 2>/dev/null || true; wait "${pids[$i]}" 2>/dev/null || true; done
	[ -z "$MOUNTED" ] || umount /sys/kernel/tracing || true
	rm -rf "$RT"
}
trap cleanup EXIT
ctl() { "$CTL" --runtime-dir "$RT" "$@"; }
# Conditions with deadlines (no sleeps as synchronisation): up to 5 s.
wait_for() { for _ in $(seq 1 250); do eval "$1" && return 0; sleep 0.02; done; return 1; }

mkfifo "$RT/ready"
"$THOTHD" --runtime-dir "$RT" --http-port 0 --ready-fd 3 3>"$RT/ready" 2>"$RT/thothd.log" &
DPID=$!
pids+=($DPID)
read -r -t 30 ready <"$RT/ready" || true
[ "${ready:-}" = READY=1 ] || fail "thothd not ready"
# BPF links thothd holds: fds whose link is anon_inode:bpf_link.
links() { local n=0 f; for f in /proc/$DPID/fd/*; do [ "$(readlink "$f" 2>/dev/null)" = "anon_inode:bpf_link" ] && n=$((n+1)); done; echo $n; }
[ "$(links)" = 0 ] || fail "thothd holds links before any probe"

if [ -n "$MOUNT_TRACEFS" ]; then
	ctl probe kernel "$OBJ/k01_sched_power.o" --duration 1 >"$RT/out" 2>"$RT/err"
	rc=$?
	[ $rc = 1 ] || fail "probe kernel without tracefs: exit $rc, want 1: $(cat "$RT/err")"
	grep -q "tracefs is not mounted" "$RT/err" || fail "no tracefs, not said: $(cat "$RT/err")"
	[ "$(links)" = 0 ] || fail "a failed attach left links with thothd"
	mount -t tracefs nodev /sys/kernel/tracing || { echo "SKIP: cannot mount tracefs"; exit 77; }
	MOUNTED=1
	[ -d /sys/kernel/tracing/events/sched/sched_switch ] ||
		{ echo "SKIP: tracefs has no sched tracepoints"; exit 77; }
fi

# the thoth/ program of the same source verifies with ours; kernel ones are listed
ctl probe check "$OBJ/k01_sched_power.o" >"$RT/check" 2>&1 || fail "probe check: $(cat "$RT/check")"
grep -q "thoth/msg_send (on_msg_send): accepted" "$RT/check" || fail "thoth/ program: $(cat "$RT/check")"
grep -q "tracepoint/sched/sched_switch (on_sched_switch): kernel program" "$RT/check" ||
	fail "kernel program not listed: $(cat "$RT/check")"

# load through thothd, run 1 s, print the map as JSON, detach
ctl --json probe kernel "$OBJ/k01_sched_power.o" --duration 1 >"$RT/out" 2>"$RT/err"
rc=$?
if [ $rc != 0 ] && grep -q "was not permitted" "$RT/err"; then
	echo "SKIP: test_probe_kernel: the kernel did not permit BPF here (needs root or CAP_BPF+CAP_PERFMON):"
	cat "$RT/err"
	exit 77
fi
[ $rc = 0 ] || fail "probe kernel exited $rc: $(cat "$RT/err")"
"$PYTHON3" - "$RT/out" <<'PY' || fail "map contents: $(cat "$RT/out")"
import json, sys
doc = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
assert doc["kernel"] is True, doc
maps = {m["name"]: m for m in doc["maps"]}
ev = {e["key"]: e["value"] for e in maps["events"]["entries"]}
assert maps["events"]["kernel"] is True and maps["events"]["type"] == "hash", maps
# a second of a running system switches and wakes tasks; idle, frequency
# (no cpufreq in this VM) and interrupts may legitimately stay 0
assert ev.get(1, 0) > 0, ("no sched_switch counted", ev)
assert ev.get(2, 0) > 0, ("no sched_wakeup counted", ev)
assert 0 not in ev, ("the thoth/ program must not run in the kernel", ev)
print("kernel counts:", ev)
PY
[ "$(links)" = 0 ] || fail "links left after the run ended: $(links)"

# --keep: held by thothd after thothctl exits; listed beside a user probe.
out=$(ctl probe kernel "$OBJ/k01_sched_power.o" --keep 2>&1) || fail "--keep: $out"
KID=$(echo "$out" | sed -n 's/^kernel probe \([0-9]*\): held by thothd.*/\1/p')
[ -n "$KID" ] || fail "--keep printed no id: $out"
[ "$(links)" -ge 2 ] || fail "thothd holds $(links) links after --keep"
"$TARGET" "$RT" >"$RT/target.out" 2>"$RT/target.err" &
TPID=$!
pids+=($TPID)
wait_for 'grep -q ready "$RT/target.out"' || fail "target not ready"
# (the target's buffer reaches thothd asynchronously: retry while unknown)
for _ in $(seq 1 250); do
	out=$(ctl probe attach "$CORPUS/a01_count.o" --pid "$TPID" 2>&1) && break
	case $out in *"no traced process"*) sleep 0.02 ;; *) fail "user probe: $out" ;; esac
done
case $out in *"running"*) ;; *) fail "user probe: $out" ;; esac
list=$(ctl probe list)
echo "$list"
echo "$list" | grep -q "^$KID .*kernel .*k01_sched_power.o .*running (held by thothd): tracepoint/sched/sched_switch" ||
	fail "kernel probe not listed: $list"
echo "$list" | grep -q " $TPID .*thoth/msg_send .*running" || fail "user probe not listed: $list"
# its maps through thothd, growing while it runs
count() { ctl --json probe maps "$KID" | "$PYTHON3" -c 'import json,sys; d=json.load(sys.stdin); print({e["key"]: e["value"] for e in d["maps"][0]["entries"]}.get(1, 0))'; }
c1=$(count) || fail "maps $KID"
wait_for '[ "$(count)" -gt "$c1" ]' || fail "sched_switch count stuck at $c1"
ctl probe maps "$KID" | grep -q "^events (kernel hash" || fail "text maps: $(ctl probe maps "$KID")"
# the dashboard's JSON shows it with its map
URL=$(ctl --json status | "$PYTHON3" -c 'import json,sys; print(json.load(sys.stdin)["dashboard_url"] or "")')
if [ -n "$URL" ]; then
	"$PYTHON3" - "${URL%/}/probes.json" "$KID" "$TPID" <<'PY' || fail "probes.json"
import json, sys, urllib.request
doc = json.load(urllib.request.urlopen(sys.argv[1], timeout=10))
byid = {p["id"]: p for p in doc["probes"]}
k = byid[int(sys.argv[2])]
assert k["kernel"] is True and k["state"].startswith("running"), k
ev = {e["key"]: e["value"] for e in k["maps"][0]["entries"]}
assert k["maps"][0]["name"] == "events" and ev.get(1, 0) > 0, k
assert any(not p["kernel"] and p["pid"] == int(sys.argv[3]) for p in doc["probes"]), doc
print("probes.json: kernel probe", k["id"], "sched_switch", ev.get(1))
PY
fi
ctl probe detach "$KID" >/dev/null || fail "detach $KID"
ctl probe list | grep -q "^$KID .*detached (thothctl probe detach)" || fail "not detached: $(ctl probe list)"
[ "$(links)" = 0 ] || fail "links left after detach: $(links)"
out=$(ctl probe maps "$KID" 2>&1) && fail "maps of a detached kernel probe: $out"

# A thothctl killed mid-run: thothd detaches what that connection held.
"$CTL" --runtime-dir "$RT" probe kernel "$OBJ/k01_sched_power.o" --duration 60 >"$RT/run.out" 2>&1 &
CPID=$!    # thothctl itself (not a subshell): its connection is what holds the probe
wait_for 'grep -q attached "$RT/run.out"' || fail "held run: $(cat "$RT/run.out")"
ctl probe list | grep -q "kernel .*running (held by thothctl pid $CPID)" || fail "held: $(ctl probe list)"
[ "$(links)" -ge 2 ] || fail "thothd holds $(links) links during the run"
kill -KILL $CPID; wait $CPID 2>/dev/null
wait_for '[ "$(links)" = 0 ]' || fail "a killed thothctl left $(links) links attached"
ctl probe list | grep -q "kernel .*detached (the thothctl that held it closed its connection)" ||
	fail "not reported detached: $(ctl probe list)"

# the kernel verifier refuses an unchecked map value: exit 1, its log shown
ctl probe kernel "$OBJ/k02_kernel_rejects.o" --duration 0 >"$RT/out" 2>"$RT/err"
rc=$?
[ $rc = 1 ] || fail "rejected program: exit $rc, want 1"
grep -q "the kernel refused it" "$RT/err" || fail "no reason: $(cat "$RT/err")"
grep -qi "invalid mem access\|map_value_or_null" "$RT/err" ||
	fail "the kernel verifier's log is missing: $(cat "$RT/err")"
[ "$(links)" = 0 ] || fail "links left after a refusal"

# bad input: not a BPF object (2), no kernel section (1), missing file (2), bad option (2)
echo "not elf" >"$RT/junk.o"
ctl probe kernel "$RT/junk.o" >/dev/null 2>"$RT/err"; rc=$?
[ $rc = 2 ] || fail "junk file: exit $rc, want 2"
ctl probe kernel "$CORPUS/a01_count.o" >/dev/null 2>"$RT/err"; rc=$?
[ $rc = 1 ] && grep -q "has no kernel program" "$RT/err" || fail "no kernel sections: exit $rc $(cat "$RT/err")"
ctl probe kernel "$RT/missing.o" >/dev/null 2>&1; rc=$?
[ $rc = 2 ] || fail "missing file: exit $rc, want 2"
ctl probe kernel "$OBJ/k01_sched_power.o" --duration -3 >/dev/null 2>&1; rc=$?
[ $rc = 2 ] || fail "negative duration: exit $rc, want 2"
kill -0 $DPID || fail "thothd died"
echo "PASS: test_probe_kernel"
