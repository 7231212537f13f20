#!/usr/bin/env python3
"""test_locks_memcached: thothlock on a real multi-threaded program.

  check_memcached.py THOTHLOCK

Debian's memcached 1.6 (4 worker threads, libevent) runs under thothlock
--json on an ephemeral 127.0.0.1 port (memcached -p -1 writes the port to
$MEMCACHED_PORT_FILENAME) while memcaslap (libmemcached-tools) loads it
for a short while; then SIGTERM to thothlock, which passes it on, and
memcached exits through exit(), so its table and maps are saved.

Expected in the report (Debian strips memcached and ships no debug
symbols in the main archive, so its own frames are module+offset; libc's
and libevent's are named):
  * the process is memcached and exited; thousands of acquisitions;
  * item locks: memcached's striped item locks (calloc'd: heap) make
    hundreds of distinct locks;
  * static locks of memcached itself (its .bss/.data: stats_lock, the LRU
    locks, ...) appear by section ("memcached .bss+0x...");
  * contention was seen, and a contended call site runs on a worker
    thread: its stack goes through libevent's event_base_loop (the
    workers' dispatch) and start_thread.
"""
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # importing a helper leaves no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
from checklib import fail  # noqa: E402  fail(), wait_for(): one copy for the checks


def main():
    thothlock = sys.argv[1]
    with tempfile.TemporaryDirectory() as tmp:
        port_file = os.path.join(tmp, "port")
        report_path = os.path.join(tmp, "report.json")
        env = dict(os.environ, MEMCACHED_PORT_FILENAME=port_file)
        cmd = [thothlock, "--json", "--output", report_path, "--",
               "memcached", "-p", "-1", "-U", "0", "-l", "127.0.0.1", "-t", "4", "-m", "64"]
        if os.geteuid() == 0:
            cmd += ["-u", "root"]
        server = subprocess.Popen(cmd, env=env)
        try:
            deadline = time.monotonic() + 20
            port = None
            while port is None:
                if server.poll() is not None:
                    fail(f"memcached exited early ({server.returncode})")
                if time.monotonic() > deadline:
                    fail("memcached did not write its port")
                try:
                    with open(port_file) as f:
                        for line in f:
                            if line.startswith("TCP INET:"):
                                port = int(line.split(":")[1])
                except FileNotFoundError:
                    pass
                if port is None:
                    time.sleep(0.05)   # polling a file memcached writes; not a sync by sleep
            load = subprocess.run(["memcaslap", "-s", f"127.0.0.1:{port}", "-T", "2",
                                   "-c", "32", "-t", "2s"],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
            if load.returncode != 0:
                fail(f"memcaslap failed: {load.stdout.decode(errors='replace')[-500:]}")
            print(load.stdout.decode(errors="replace").strip().splitlines()[-1])
        finally:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
        with open(report_path) as f:
            report = json.load(f)

    procs = report["processes"]
    if len(procs) != 1 or "memcached" not in procs[0]["program"] or not procs[0]["exited"]:
        fail(f"processes: {procs}")
    locks = report["locks"]
    acquisitions = sum(l["acquisitions"] for l in locks)
    contentions = sum(l["contentions"] for l in locks)
    heap = [l for l in locks if l["storage"] == "heap or stack"]
    static = [l for l in locks if l["storage"].startswith("memcached ")]
    print(f"locks {report['locks_total']}, acquisitions {acquisitions}, "
          f"contentions {contentions}, heap locks {len(heap)}, memcached static locks "
          f"{sorted(l['storage'] for l in static)[:8]}")
    if acquisitions < 10000:
        fail(f"only {acquisitions} acquisitions")
    if len(heap) < 100:
        fail(f"only {len(heap)} heap locks: memcached's item locks are not seen")
    if not any(l["storage"].split()[1].startswith((".bss", ".data")) for l in static):
        fail("no static lock of memcached (.bss/.data) in the report")
    if contentions == 0:
        fail("no contention seen under load")
    worker_sites = []
    for l in locks:
        for s in l["call_sites"]:
            fns = [fr["function"] for fr in s["stack"]]
            if s["contentions"] and s["module"] == "memcached" and "event_base_loop" in fns \
                    and "start_thread" in fns:
                worker_sites.append((l["storage"], s["address"], s["contentions"]))
    if not worker_sites:
        fail("no contended call site in memcached on a worker (event_base_loop) stack")
    print(f"contended worker call sites: {worker_sites[:5]}")
    print("PASS")


if __name__ == "__main__":
    main()
