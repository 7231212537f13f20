#!/usr/bin/env python3
"""check_chrome_json.py TRACE.json EXPECTED_SLICES - validate a Chrome Trace
Event file written by thoth_trace_export_chrome_json:

  * it parses as JSON and has a traceEvents list
  * every pid with events has a process_name and every (pid, tid) a
    thread_name metadata event, with the names given on the command line
  * there are EXPECTED_SLICES "X" events
  * every flow id has one "s" and one "f" per message, in different
    processes, the "s" not later than the "f", each on a thread with a slice
    at the same timestamp (so the viewer can bind it)

Exit 0 if all hold; otherwise print what failed and exit 1.
"""
import json
import sys


def main():
    path, expected = sys.argv[1], int(sys.argv[2])
    names = dict(arg.split("=", 1) for arg in sys.argv[3:])  # pid=name
    with open(path) as f:
        doc = json.load(f)
    events = doc["traceEvents"]
    errors = []
    procs = {e["pid"]: e["args"]["name"] for e in events
             if e["ph"] == "M" and e["name"] == "process_name"}
    threads = {(e["pid"], e["tid"]) for e in events
               if e["ph"] == "M" and e["name"] == "thread_name"}
    slices = [e for e in events if e["ph"] == "X"]
    if len(slices) != expected:
        errors.append(f"{len(slices)} slices, expected {expected}")
    for e in slices:
        if e["pid"] not in procs:
            errors.append(f"pid {e['pid']} has no process_name")
        if (e["pid"], e["tid"]) not in threads:
            errors.append(f"thread {e['pid']}/{e['tid']} has no thread_name")
    for pid, name in names.items():
        if procs.get(int(pid)) != name:
            errors.append(f"pid {pid} named {procs.get(int(pid))!r}, expected {name!r}")
    slice_at = {(e["pid"], e["tid"], e["ts"]) for e in slices}
    flows = {}
    for e in events:
        if e["ph"] in ("s", "f"):
            flows.setdefault(e["id"], []).append(e)
            if (e["pid"], e["tid"], e["ts"]) not in slice_at:
                errors.append(f"flow {e['id']} {e['ph']} has no slice to bind to")
    if not flows:
        errors.append("no flows")
    for fid, evs in flows.items():
        starts = [e for e in evs if e["ph"] == "s"]
        ends = [e for e in evs if e["ph"] == "f"]
        if not starts or len(starts) != len(ends):
            errors.append(f"flow {fid}: {len(starts)} starts, {len(ends)} ends")
            continue
        for s, f in zip(starts, ends):
            if s["pid"] == f["pid"]:
                errors.append(f"flow {fid} does not cross processes")
            if s["ts"] > f["ts"]:
                errors.append(f"flow {fid} ends before it starts")
    for err in errors:
        print("check_chrome_json:", err)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
