#!/bin/sh
# test_probe_kernel: kernel hooks through libbpf (docs/PROBES.md "Kernel
# hooks").  One object's tracepoint/ programs (sched_switch, sched_wakeup,
# cpu_idle, cpu_frequency, irq_handler_entry) load into Linux with
# `thothctl probe kernel`, count, and their map prints like `probe maps`
# (JSON checked); a program the kernel verifier refuses exits 1 with the
# kernel's log; bad files get exit 2 / 1 with a reason.  Needs root (or
# CAP_BPF+CAP_PERFMON) and tracepoints: skipped (77) with what is missing.
#   kernel.sh THOTHCTL OBJDIR CORPUSDIR
set -u
CTL=$1 OBJ=$2 CORPUS=$3
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

if [ "$(id -u)" != 0 ]; then
	echo "SKIP: test_probe_kernel needs root (or CAP_BPF and CAP_PERFMON) to load BPF into the kernel"
	exit 77
fi
if [ ! -d /sys/kernel/tracing/events/sched/sched_switch ] &&
   [ ! -d /sys/kernel/debug/tracing/events/sched/sched_switch ]; then
	echo "SKIP: test_probe_kernel needs tracefs (sched tracepoints under /sys/kernel/tracing)"
	exit 77
fi

# the thoth/ program of the same source verifies with ours; kernel ones are listed
"$CTL" probe check "$OBJ/k01_sched_power.o" >"$TMP/check" 2>&1 || fail "probe check: $(cat "$TMP/check")"
grep -q "thoth/msg_send (on_msg_send): accepted" "$TMP/check" || fail "thoth/ program: $(cat "$TMP/check")"
grep -q "tracepoint/sched/sched_switch (on_sched_switch): kernel program" "$TMP/check" ||
	fail "kernel program not listed: $(cat "$TMP/check")"

# load, run 1 s, print the map as JSON
"$CTL" --json probe kernel "$OBJ/k01_sched_power.o" --duration 1 >"$TMP/out" 2>"$TMP/err"
rc=$?
if [ $rc != 0 ] && grep -q "was not permitted" "$TMP/err"; then
	echo "SKIP: test_probe_kernel: the kernel did not permit BPF here (needs root or CAP_BPF+CAP_PERFMON):"
	cat "$TMP/err"
	exit 77
fi
[ $rc = 0 ] || fail "probe kernel exited $rc: $(cat "$TMP/err")"
python3 - "$TMP/out" <<'PY' || fail "map contents: $(cat "$TMP/out")"
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

# the kernel verifier refuses an unchecked map value: exit 1, its log shown
"$CTL" probe kernel "$OBJ/k02_kernel_rejects.o" --duration 0 >"$TMP/out" 2>"$TMP/err"
rc=$?
[ $rc = 1 ] || fail "rejected program: exit $rc, want 1"
grep -q "the kernel refused it" "$TMP/err" || fail "no reason: $(cat "$TMP/err")"
grep -qi "invalid mem access\|map_value_or_null" "$TMP/err" ||
	fail "the kernel verifier's log is missing: $(cat "$TMP/err")"

# bad input: not a BPF object (2), no kernel section (1), missing file (2), bad option (2)
echo "not elf" >"$TMP/junk.o"
"$CTL" probe kernel "$TMP/junk.o" >/dev/null 2>"$TMP/err"; rc=$?
[ $rc = 2 ] || fail "junk file: exit $rc, want 2"
"$CTL" probe kernel "$CORPUS/a01_count.o" >/dev/null 2>"$TMP/err"; rc=$?
[ $rc = 1 ] && grep -q "has no kernel program" "$TMP/err" || fail "no kernel sections: exit $rc $(cat "$TMP/err")"
"$CTL" probe kernel "$TMP/missing.o" >/dev/null 2>&1; rc=$?
[ $rc = 2 ] || fail "missing file: exit $rc, want 2"
"$CTL" probe kernel "$OBJ/k01_sched_power.o" --duration -3 >/dev/null 2>&1; rc=$?
[ $rc = 2 ] || fail "negative duration: exit $rc, want 2"
echo "PASS: test_probe_kernel"
