#!/usr/bin/env python3
"""check_chrome_json.py TRACE.json SLICES INSTANTS [PID=NAME...] - validate a
Chrome Trace Event file written by thoth_trace_export_chrome_json:

  * it parses as JSON and has a traceEvents list
  * every pid with events has a process_name and every (pid, tid) a
    thread_name metadata event, with the names given on the command line
  * there are SLICES "X" events (messages) and INSTANTS "i" events (trace
    points, thread-scoped, no duration)
  * no argument is a number a double cannot hold exactly (above 2^53): such
    values are decimal strings
  * every flow id has one "s" and one "f" per message, in different
    processes, the "s" not later than the "f", each on a thread with a slice
    at the same timestamp (so the viewer can bind it)

Exit 0 if all hold; otherwise print what failed and exit 1.
"""
import json
import sys


def main():
    path, expected, expected_instants = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    names = dict(arg.split("=", 1) for arg in sys.argv[4:])  # pid=name
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
    instants = [e for e in events if e["ph"] == "i"]
    if len(instants) != expected_instants:
        errors.append(f"{len(instants)} instant events, expected {expected_instants}")
    for e in instants:
        if e.get("s") != "t" or "dur" in e:
            errors.append(f"instant {e['name']} is not a thread-scoped instant: {e}")
    for e in events:
        for key, value in e.get("args", {}).items():
            if isinstance(value, int) and not isinstance(value, bool) and value > 2 ** 53:
                errors.append(f"{e['name']}: {key} = {value} is rounded by viewers")
            if key.startswith("arg") and isinstance(value, str) and not value.isdigit():
                errors.append(f"{e['name']}: {key} = {value!r} is not a decimal u64")
    for e in slices + instants:
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
