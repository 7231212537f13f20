#!/usr/bin/env python3
"""test_dashboard_prometheus.py BUILD_DIR [PROMETHEUS]: a real Prometheus
server (Debian `prometheus`) scrapes thothd's /metrics every second while
the demo runs; its own HTTP API must then report the target up with no
scrape error, the registry's two echo instances, and a non-empty round-trip
histogram of the echo channel that PromQL's histogram_quantile can read.
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import urllib.parse
import urllib.request

sys.dont_write_bytecode = True  # importing a helper leaves no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import System, fail, wait_for  # noqa: E402

BUILD = sys.argv[1]
PROMETHEUS = sys.argv[2] if len(sys.argv) > 2 else "prometheus"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    if not shutil.which(PROMETHEUS):
        fail("%s not found: install the Debian package prometheus (scripts/bootstrap.sh test)"
             % PROMETHEUS)
    with System(BUILD) as s:
        work = tempfile.mkdtemp(prefix="thoth-prom-")
        port = free_port()
        cfg = os.path.join(work, "prometheus.yml")
        with open(cfg, "w") as f:
            f.write("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                    "scrape_configs:\n  - job_name: thoth\n    static_configs:\n"
                    "      - targets: ['127.0.0.1:%d']\n" % s.port)
        log = open(os.path.join(work, "prometheus.log"), "w+")
        prom = subprocess.Popen([PROMETHEUS, "--config.file=" + cfg,
                                 "--storage.tsdb.path=" + os.path.join(work, "data"),
                                 "--web.listen-address=127.0.0.1:%d" % port],
                                stdout=log, stderr=log)
        api = "http://127.0.0.1:%d" % port

        def query(q):
            url = api + "/api/v1/query?" + urllib.parse.urlencode({"query": q})
            try:
                with urllib.request.urlopen(url, timeout=5) as r:
                    return json.load(r)["data"]["result"]
            except OSError:
                if prom.poll() is not None:
                    log.seek(0)
                    fail("prometheus exited: " + log.read()[-2000:])
                return None

        try:
            up = wait_for("Prometheus to scrape thothd (up == 1)",
                          lambda: (query('up{job="thoth"}') or [None])[0], timeout=40,
                          step=0.2)
            if up["value"][1] != "1":
                fail("up = %s" % up)
            # The port was free a moment before Prometheus bound it, not
            # reserved: the one answering must be ours (its data dir), not
            # another run's Prometheus that took the port first (ours then
            # exited), whose job "thoth" scrapes another thothd.
            with urllib.request.urlopen(api + "/api/v1/status/flags", timeout=5) as r:
                tsdb = json.load(r)["data"].get("storage.tsdb.path")
            if tsdb != os.path.join(work, "data") or prom.poll() is not None:
                fail("the Prometheus on 127.0.0.1:%d is another's (data in %s), not the one "
                     "started here (%s): the port was taken meanwhile" % (port, tsdb, work))
            with urllib.request.urlopen(api + "/api/v1/targets", timeout=5) as r:
                targets = json.load(r)["data"]["activeTargets"]
            if not targets or targets[0]["lastError"]:
                fail("scrape error: %s" % targets)
            if targets[0]["scrapeUrl"] != "http://127.0.0.1:%d/metrics" % s.port:
                fail("Prometheus scrapes %s, not this thothd (port %d)" % (targets[0]["scrapeUrl"], s.port))
            regs = wait_for("thoth_registry_registrations",
                            lambda: query("thoth_registry_registrations"), timeout=20, step=0.2)
            if regs[0]["value"][1] != "2":
                fail("registrations %s, two echo instances run" % regs[0]["value"])
            q99 = ('histogram_quantile(0.99, sum by (le) '
                   '(rate(thoth_ipc_round_trip_seconds_bucket{service="echo"}[5s])))')
            p99 = wait_for("a p99 of the echo round trips from PromQL",
                           lambda: [r for r in (query(q99) or [])
                                    if r["value"][1] not in ("NaN", "0")],
                           timeout=30, step=0.5)
            seconds = float(p99[0]["value"][1])
            if not 0 < seconds < 1:
                fail("implausible p99 %s s" % seconds)
            wake = query('thoth_process_wakeups_total{process="echo-client",reason="all"}')
            if not wake or float(wake[0]["value"][1]) <= 0:
                fail("no echo-client wake-ups in Prometheus: %s" % wake)
            print("ok: Prometheus scraped thothd: up, 2 registrations, echo p99 %.1f us "
                  "(histogram_quantile over thoth_ipc_round_trip_seconds)" % (seconds * 1e6))
        finally:
            prom.terminate()
            try:
                prom.wait(timeout=10)
            except subprocess.TimeoutExpired:
                prom.kill()
                prom.wait()
            log.close()
            shutil.rmtree(work, ignore_errors=True)
    print("PASS")


if __name__ == "__main__":
    main()
