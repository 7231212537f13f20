#!/usr/bin/env python3
"""test_dashboard_machine_model: a governed service whose domain uses the
machine's own energy model (trace model id 0x8000 | CPU, kernel/pm/
trace_model.h) is priced on the dashboard and in /metrics, from the same
sysfs source the service read it from.

  test_dashboard_machine_model.py BUILD_DIR [PROMTOOL]

thothd, two echo instances and governed-echo run with THOTH_SYSFS_ROOT on
a copy of tests/fixtures/sysfs/arm64-juno (a copy: the governor writes
scaling_setspeed there).  governed-echo governs the domain of cpu0 (cpus
0 3 4 5, A53), whose energy model in the fixture gives, by hand (the EM's
power files are uW; one busy CPU, no cluster share):

    OPP   0     1     2     3     4
    MHz   450   575   700   775   850
    mW    33    46    61    76    93

Checks: the power panel is available and names model "sysfs-cpu0" with
the machine-model source; the OPP's busy power is the table's; energy per
request lies between 600 us (the handler's scripted CPU) at 33 mW and 5 ms
at 93 mW; power = energy per request x requests/s; power / CPU share is a
busy power inside 33..93 mW; /metrics carries the priced series labelled
model="sysfs-cpu0" and no unpriced series for it, and passes promtool.
On a thothd that does not know the machine's model (main before this
change: trace id 0, "not priced") the panel says "not known" and the
checks fail.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # importing a helper leaves no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import EventStream, System, fail  # noqa: E402

BUILD = sys.argv[1]
PROMTOOL = sys.argv[2] if len(sys.argv) > 2 else "promtool"
SRC = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
JUNO = os.path.join(SRC, "tests/fixtures/sysfs/arm64-juno")
LITTLE_MW = (33, 46, 61, 76, 93)


def main():
    tmp = tempfile.mkdtemp(prefix="thoth-juno-")
    try:
        root = os.path.join(tmp, "juno")
        shutil.copytree(JUNO, root, symlinks=True)
        with System(BUILD, env={"THOTH_SYSFS_ROOT": root}, governed=True) as s:
            es = EventStream(s)
            try:
                check(s, es)
            finally:
                es.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("PASS")


def check(s, es):
    deadline = time.monotonic() + 20
    tick, mine = {}, []
    while time.monotonic() < deadline:
        tick = es.next_tick()
        pp = tick.get("pm_power") or {}
        mine = [x for x in pp.get("services", []) if x["name"] == "governed-echo"]
        if mine and mine[0]["model"] and mine[0]["requests_per_s"] > 0 and \
                mine[0]["mj_per_request"] is not None:
            break
    else:
        fail("governed-echo not priced in 20 s: %s" % json.dumps(tick.get("pm_power")))
    if not pp["available"] or "this machine's own (sysfs)" not in pp["why"]:
        fail("the power panel does not say it prices the machine's model: %s" % pp)
    g = mine[0]
    if g["model"] != "sysfs-cpu0" or "this machine's energy model" not in (g["model_source"] or ""):
        fail("governed-echo is not priced with the machine's model of cpu0's domain: %s" % g)
    if g["unpriced_why"] is not None:
        fail("governed-echo priced yet unpriced_why says %r" % g["unpriced_why"])
    if g["opp_busy_mw"] != LITTLE_MW[g["opp"]]:
        fail("OPP %d's busy power %s is not the fixture's %d mW" %
             (g["opp"], g["opp_busy_mw"], LITTLE_MW[g["opp"]]))
    if not 0.6e-3 * 33 * 0.99 <= g["mj_per_request"] <= 5e-3 * 93:
        fail("implausible modelled energy per request %s mJ" % g["mj_per_request"])
    if abs(g["power_mw"] - g["mj_per_request"] * g["requests_per_s"]) > 0.01 * g["power_mw"] + 1e-3:
        fail("power %s mW is not energy per request x requests/s: %s" % (g["power_mw"], g))
    busy = g["power_mw"] / g["cpu_share"]
    if not LITTLE_MW[0] * 0.999 <= busy <= LITTLE_MW[4] * 1.001:
        fail("power / CPU share = %.1f mW, outside the fixture's 33..93 mW: %s" % (busy, g))
    code, _, body = s.get("/metrics")
    text = body.decode()
    labels = '{pid="%d",process="governed-echo",model="sysfs-cpu0"}' % g["pid"]
    for want in ("thoth_pm_power_modelled_milliwatts" + labels,
                 "thoth_pm_energy_modelled_joules_total" + labels,
                 "thoth_pm_energy_modelled_requests_total" + labels):
        if want not in text:
            fail("/metrics lacks %s" % want)
    if 'thoth_pm_energy_unpriced_requests_total{pid="%d"' % g["pid"] in text:
        fail("/metrics calls governed-echo unpriced:\n%s" %
             "\n".join(l for l in text.splitlines() if "unpriced" in l))
    r = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True, text=True)
    if r.returncode != 0:
        fail("promtool check metrics: %s%s" % (r.stdout, r.stderr))
    print("ok: governed-echo priced with sysfs-cpu0: %.3f mW, %.6f mJ/request at %.0f requests/s "
          "(OPP %d, %d mW busy; average busy power %.1f mW); /metrics passes promtool" %
          (g["power_mw"], g["mj_per_request"], g["requests_per_s"], g["opp"], g["opp_busy_mw"], busy))


if __name__ == "__main__":
    main()
