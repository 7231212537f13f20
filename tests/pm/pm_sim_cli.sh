#!/bin/sh
# test_pm_sim_cli: `thothctl pm sim` end to end: a recorded trace and a
# synthetic one replay with every policy, --json is one JSON object per
# run that python3 parses, --export-list round-trips, and bad input exits
# 1 or 2 with a one-line reason.
set -eu
thothctl=$1
traces=$2
python=${3:-python3}
dir=$(mktemp -d "${TMPDIR:-/tmp}/thoth-pmsim-XXXXXX")
trap 'rm -rf "$dir"' EXIT

# every device policy on a recorded trace; the engine is in the table
"$thothctl" pm sim "$traces/echo-50hz.txt" --device nic-sim >"$dir/out"
grep -q "^engine " "$dir/out"
grep -q "MODELLED" "$dir/out"

# JSON: one object, all 8 device policies, ratios to the oracle, 0 QoS
# violations for the engine
"$thothctl" pm sim "$traces/echo-50hz.txt" --device nic-sim --json >"$dir/json"
"$python" - "$dir/json" <<'PY'
import json, sys
o = json.load(open(sys.argv[1]))
assert o["energy"] == "modelled", o
r = {x["policy"]: x for x in o["results"]}
assert len(r) == 8, r.keys()
assert abs(r["oracle"]["ratio_to_oracle"] - 1) < 1e-9
assert r["engine"]["qos_violations"] == 0
# the oracle is the best on the same timeline; a policy that delays a
# request (within the QoS) shifts later idle periods, so it may come out
# a hair below the oracle (1e-5 here)
assert r["engine"]["ratio_to_oracle"] >= 1 - 1e-3
PY

# one governor, synthetic trace, JSON
"$thothctl" pm sim 'synthetic:poisson mean_gap_us=10000 work_us=2000 deadline_us=10000 duration_ms=2000' \
	--policy thoth --cpu juno-a57 --json >"$dir/cpu"
"$python" - "$dir/cpu" <<'PY'
import json, sys
o = json.load(open(sys.argv[1]))
(g,) = o["results"]
assert g["governor"] == "thoth" and g["inefficient_residency"] == 0, g
assert g["ratio_to_optimum"] >= 1 - 1e-9, g
PY

# the thoth governor's options: the default (ff+chain) and none on a chain
# trace from one sender per chain, compared in the same run; a bad name is
# refused by name
spec='synthetic:chain depth=3 mean_gap_us=50000 work_us=2000 deadline_us=10000 duration_ms=20000'
"$thothctl" pm sim "$spec" --policy thoth --cpu hikey-a53 --json >"$dir/def"
"$thothctl" pm sim "$spec" --policy thoth --cpu hikey-a53 --gov-options none --json >"$dir/none"
"$python" - "$dir/def" "$dir/none" <<'PY'
import json, sys
d, n = (json.load(open(f)) for f in sys.argv[1:3])
assert d["gov_options"] == "ff+chain" and n["gov_options"] == "none", (d, n)
(gd,), (gn,) = d["results"], n["results"]
assert gd["ramp_p95_ns"] <= 2000000 < gn["ramp_p95_ns"], (gd, gn)
PY
if "$thothctl" pm sim "$spec" --cpu hikey-a53 --gov-options fast 2>"$dir/err"; then exit 1; fi
grep -q "gov-options.*fast" "$dir/err"

# --export-list writes what the parser reads back: the same requests
"$thothctl" pm sim 'synthetic:bursty burst=4 gap_us=500 burst_gap_us=50000 work_us=100 duration_ms=500' \
	--device nic-sim --export-list "$dir/list.txt" >"$dir/a"
"$thothctl" pm sim "$dir/list.txt" --device nic-sim >"$dir/b"
n=$(grep -vc '^#' "$dir/list.txt")
test "$n" -gt 4
grep -q ", $n requests" "$dir/a"
grep -q ", $n requests" "$dir/b"

# bad input: exit status and a reason
if "$thothctl" pm sim "$dir/missing.json" 2>"$dir/err"; then exit 1; fi
grep -q "No such file" "$dir/err"
printf '0 100\n5 x\n' >"$dir/bad.txt"
if "$thothctl" pm sim "$dir/bad.txt" 2>"$dir/err"; then exit 1; fi
grep -q "line 2" "$dir/err"
set +e
"$thothctl" pm sim x --policy nonsense 2>"$dir/err"; rc=$?
set -e
test $rc = 2
grep -q "unknown policy nonsense" "$dir/err"
if "$thothctl" pm sim 'synthetic:poisson work_us=5' 2>"$dir/err"; then exit 1; fi
grep -q "poisson needs mean_gap_us > 0 (missing)" "$dir/err"
# a trace whose file name is UTF-8 keeps it in --json (each byte of "é"
# was escaped as a code point of its own: "\u00c3\u00a9")
cp "$traces/echo-50hz.txt" "$dir/é.txt"
"$thothctl" pm sim "$dir/é.txt" --policy oracle --json >"$dir/utf8"
"$python" - "$dir/utf8" <<'PY'
import json, sys
o = json.load(open(sys.argv[1], encoding="utf-8"))
assert o["trace"] == "\u00e9.txt", o["trace"]
PY
echo "thothctl pm sim: ok"
