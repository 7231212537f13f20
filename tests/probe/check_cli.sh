#!/bin/sh
# thothctl probe check: 0 every program accepted, 1 one rejected (reason on
# stderr naming the instruction, the source line and the register state),
# 2 unreadable or not a BPF ELF object.
set -u
THOTHCTL=$1
CORPUS=$2
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

"$THOTHCTL" probe check "$CORPUS/a02_hash_sum.o" >"$TMP/out" 2>"$TMP/err"
[ $? -eq 0 ] || fail "accepted object: exit $? ($(cat "$TMP/err"))"
grep -q "thoth/msg_send (sum_bytes): accepted" "$TMP/out" || fail "no accepted line: $(cat "$TMP/out")"

"$THOTHCTL" probe check "$CORPUS/r01_null_deref.o" >"$TMP/out" 2>"$TMP/err"
rc=$?
[ $rc -eq 1 ] || fail "rejected object: exit $rc"
grep -q "insn 7 at r01_null_deref.c:17" "$TMP/err" || fail "no insn/line in: $(cat "$TMP/err")"
grep -q "dereference without a NULL check" "$TMP/err" || fail "no reason in: $(cat "$TMP/err")"
grep -q "state: R0=map_value_or_null(m)" "$TMP/err" || fail "no state in: $(cat "$TMP/err")"

"$THOTHCTL" --json probe check "$CORPUS/r06_unknown_helper.o" >"$TMP/out" 2>"$TMP/err"
[ $? -eq 1 ] || fail "json rejected: exit"
grep -q '"result":"rejected"' "$TMP/out" || fail "json: $(cat "$TMP/out")"

echo "not an object" >"$TMP/text.o"
"$THOTHCTL" probe check "$TMP/text.o" >/dev/null 2>"$TMP/err"
rc=$?
[ $rc -eq 2 ] || fail "text file: exit $rc"
grep -q "not an ELF object" "$TMP/err" || fail "text file reason: $(cat "$TMP/err")"

"$THOTHCTL" probe check "$TMP/missing.o" >/dev/null 2>"$TMP/err"
rc=$?
[ $rc -eq 2 ] || fail "missing file: exit $rc"
grep -q "No such file" "$TMP/err" || fail "missing file reason: $(cat "$TMP/err")"

# A host ELF object is an ELF but not BPF: 2, and says so.  A small one
# (/bin/true): the sanitizer build's thothctl is over the 16 MiB limit.
cp /bin/true "$TMP/host.o"
"$THOTHCTL" probe check "$TMP/host.o" >/dev/null 2>"$TMP/err"
rc=$?
[ $rc -eq 2 ] || fail "host ELF: exit $rc"
grep -q "is not BPF" "$TMP/err" || fail "host ELF reason: $(cat "$TMP/err")"

"$THOTHCTL" probe check >/dev/null 2>&1
[ $? -eq 2 ] || fail "usage: exit"
echo "ok"
