#!/usr/bin/env python3
"""check_trace_e2e.py TRACE.json PID=NAME... - the Chrome Trace Event JSON that
`thothctl trace --duration` wrote for a running system (test_trace_e2e.c):

  * it parses (json.load) and has a traceEvents list
  * every PID given has a process_name track named NAME holding events
  * flows link a send to its receipt by trace id across processes: for each
    pair below there is a flow id whose "s" is in the first process and
    whose "f" is in the second (echo-client -> echo, echo-client -> thothd)
  * the trace points of the integration are there: msg_send, msg_recv,
    registry_register, registry_resolve, loop_wakeup, timer_fire
  * chan_recv events carry echo's pid and a queueing delay; socket events
    (msg_send, msg_recv) in thothd and echo-client carry thothd's pid

Exit 0 if all hold; otherwise print what failed and exit 1.
"""
import json
import sys


def main():
    path = sys.argv[1]
    names = {int(p): n for p, n in (a.split("=", 1) for a in sys.argv[2:])}
    with open(path) as f:
        doc = json.load(f)
    events = doc["traceEvents"]
    errors = []
    procs = {e["pid"]: e["args"]["name"] for e in events
             if e["ph"] == "M" and e["name"] == "process_name"}
    # messages with a trace id are "X" slices, other trace points instants
    slices = [e for e in events if e["ph"] in ("X", "i")]
    for pid, name in names.items():
        if procs.get(pid) != name:
            errors.append(f"pid {pid}: track named {procs.get(pid)!r}, expected {name!r}")
        if not any(e["pid"] == pid for e in slices):
            errors.append(f"pid {pid} ({name}): no events on its track")
    starts, ends = {}, {}
    for e in events:
        if e["ph"] == "s":
            starts.setdefault(e["id"], set()).add(e["pid"])
        elif e["ph"] == "f":
            ends.setdefault(e["id"], set()).add(e["pid"])
    pid_of = {n: p for p, n in names.items()}
    for a, b in (("echo-client", "echo"), ("echo-client", "thothd")):
        if a not in pid_of or b not in pid_of:
            continue
        pa, pb = pid_of[a], pid_of[b]
        if not any(pa in starts[i] and pb in ends.get(i, ()) for i in starts):
            errors.append(f"no flow from {a} (pid {pa}) to {b} (pid {pb})")
    seen = {e["name"] for e in slices}
    for want in ("msg_send", "msg_recv", "registry_register", "registry_resolve",
                 "loop_wakeup", "timer_fire"):
        if want not in seen:
            errors.append(f"no {want} event")
    # The demo's calls go over shared-memory channels: their receive events
    # carry the service instance (echo's pid) and a queueing delay.
    chan = [e for e in slices if e["name"] == "chan_recv"]
    if "echo" in pid_of:
        if not chan:
            errors.append("no chan_recv event (echo is served on channels)")
        elif not any(e["args"]["service_id"] == pid_of["echo"] and e["args"]["arg0"] > 0
                     for e in chan):
            errors.append("no chan_recv with echo's pid as service_id and a queueing delay")
    # Socket-transport events (every process talks to thothd) name the
    # serving process, thothd, as service_id: on thothd's side and on the
    # client's (SO_PEERCRED).
    if "thothd" in pid_of:
        sock = [e for e in slices if e["name"] in ("msg_send", "msg_recv")]
        for who in ("thothd", "echo-client"):
            if who not in pid_of:
                continue
            mine = [e for e in sock if e["pid"] == pid_of[who]]
            if not mine:
                errors.append(f"no msg_send/msg_recv events in {who}")
            elif not all(e["args"]["service_id"] == pid_of["thothd"] for e in mine):
                bad = sorted({e["args"]["service_id"] for e in mine} - {pid_of["thothd"]})
                errors.append(f"{who}'s socket events: service_id {bad}, expected thothd's pid")
    for e in errors:
        print("check_trace_e2e:", e)
    print(f"check_trace_e2e: {len(slices)} events, {len(procs)} processes, "
          f"{len(starts)} flows")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
