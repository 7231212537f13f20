"""harness.py - a real ThothOS system for the dashboard tests (OBS-3).

thothd in a fresh runtime dir with its dashboard on 127.0.0.1, port 0 (the
chosen port is read back from `thothctl status --json`), optionally two echo
services and an echo client making calls.  Every process started here is
killed by pid on exit; the runtime dir is removed.  Waits are on conditions
with deadlines, never sleeps used as synchronisation.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request

sys.dont_write_bytecode = True  # importing a helper leaves no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
from sockdir import sock_mkdtemp  # noqa: E402  a short folder where TMPDIR is too long
import checklib  # noqa: E402  fail(), wait_for(): one copy for the checks


# The dashboard tests' failure line reads "FAIL: ..." and their waits give
# up after 15 s.
def fail(msg):
    checklib.fail(msg, label="FAIL: ")


def wait_for(what, cond, timeout=15.0, step=0.02):
    return checklib.wait_for(what, cond, timeout, step, label="FAIL: ")


class System:
    def __init__(self, build, demo=True, thothd_args=(), env=None, rate=200, no_client=False,
                 governed=False, pm_driver=False):
        self.build = build
        self.rt = sock_mkdtemp("thoth-dash-")
        os.chmod(self.rt, 0o700)
        self.procs = []
        self.env = dict(os.environ, **(env or {}))
        self.log = open(os.path.join(self.rt, "thothd.log"), "w+")
        thothd = os.path.join(build, "kernel/thothd/thothd")
        self.thothd = self.spawn([thothd, "--runtime-dir", self.rt, "--http-port", "0",
                                  *thothd_args], stderr=self.log)
        wait_for("thothd's status", self.status_or_none)
        url = self.status()["dashboard_url"]
        if not url:
            fail("thothctl status --json has no dashboard_url: " + json.dumps(self.status()))
        self.url = url
        self.port = int(url.rsplit(":", 1)[1].strip("/"))
        if demo:
            echo = os.path.join(build, "services/echo")
            client = os.path.join(build, "services/echo-client")
            self.echo = [self.spawn([echo, "--runtime-dir", self.rt]) for _ in range(2)]
            wait_for("two echo instances", lambda: self.services("echo") >= 2)
            if governed:
                # A SCHED-1 governed service with its own caller: the
                # modelled P-state panel's source (tests/dashboard/governed_echo.c).
                self.spawn([os.path.join(build, "tests/dashboard/governed_echo"),
                            "--runtime-dir", self.rt, "--rate", "50"])
                wait_for("governed-echo", lambda: self.services("governed-echo") >= 1)
            if pm_driver:
                # A simulated NIC declares a power element: the PM panel's
                # levels and the modelled energy per request.
                self.spawn([os.path.join(build, "services/pm-sim-driver"), "nic",
                            "--runtime-dir", self.rt])
            if no_client:
                return
            self.client = self.spawn([client, "--runtime-dir", self.rt, "--rate", str(rate),
                                      "--report", "3600"])

    def spawn(self, argv, stderr=subprocess.DEVNULL):
        p = subprocess.Popen(argv, env=self.env, stdout=subprocess.DEVNULL, stderr=stderr)
        self.procs.append(p)
        return p

    def thothctl(self, *args):
        exe = os.path.join(self.build, "tools/thothctl/thothctl")
        return subprocess.run([exe, "--runtime-dir", self.rt, "--json", *args],
                              capture_output=True, text=True, env=self.env, timeout=20)

    def status_or_none(self):
        if self.thothd.poll() is not None:
            self.log.seek(0)
            fail("thothd exited %s: %s" % (self.thothd.returncode, self.log.read()))
        r = self.thothctl("status")
        return json.loads(r.stdout) if r.returncode == 0 else None

    def status(self):
        return wait_for("status", self.status_or_none)

    def services(self, name):
        r = self.thothctl("services", name)
        return len([l for l in r.stdout.splitlines() if l.strip()]) if r.returncode == 0 else 0

    def get(self, path, headers=None, timeout=10):
        """(status, headers, body bytes) of GET path."""
        req = urllib.request.Request(self.url.rstrip("/") + path, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read()

    def connect(self):
        return socket.create_connection(("127.0.0.1", self.port), timeout=10)

    def ctxt_switches(self, pid=None):
        """Voluntary context switches of thothd (or PID): its sleeps."""
        with open("/proc/%d/status" % (pid or self.thothd.pid)) as f:
            for line in f:
                if line.startswith("voluntary_ctxt_switches:"):
                    return int(line.split()[1])
        fail("no voluntary_ctxt_switches in /proc/%d/status" % (pid or self.thothd.pid))

    def thothd_log(self):
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

    def close(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in reversed(self.procs):
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        # thothd exits 0 on SIGTERM; anything else (a sanitizer's report,
        # a crash) fails the test with its log.
        code = self.thothd.returncode
        log = self.thothd_log()
        self.log.close()
        shutil.rmtree(self.rt, ignore_errors=True)
        if code != 0:
            fail("thothd exited %s on SIGTERM:\n%s" % (code, log[-4000:]))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class EventStream:
    """A minimal Server-Sent Events client on a raw socket (no library)."""

    def __init__(self, system, path="/events"):
        self.sock = system.connect()
        self.sock.sendall(("GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\nAccept: text/event-stream"
                           "\r\n\r\n" % path).encode())
        self.buf = b""
        head = self._until(b"\r\n\r\n")
        if b" 200 " not in head.split(b"\r\n")[0]:
            fail("event stream answered " + head.decode(errors="replace"))

    def _until(self, sep, timeout=10.0):
        deadline = time.monotonic() + timeout
        while sep not in self.buf:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                fail("event stream: nothing within %.0f s" % timeout)
            if not chunk:
                fail("event stream closed by thothd")
            self.buf += chunk
        out, self.buf = self.buf.split(sep, 1)
        return out

    def next_tick(self, timeout=10.0):
        """The next `tick` event's object (HTTP/1.0: no chunked framing)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            block = self._until(b"\n\n", timeout=deadline - time.monotonic())
            for line in block.split(b"\n"):
                if line.startswith(b"data: "):
                    return json.loads(line[6:])
        fail("no tick within %.0f s" % timeout)

    def ticks_after(self, since_ns, n):
        """The next N ticks stamped at or after SINCE_NS (CLOCK_MONOTONIC, as
        time.monotonic_ns() and thothd's t_ns), skipping older ones: ticks
        sent while the test was busy wait in the socket, and counting them
        gave a condition fewer real ticks than it was allowed (on a loaded
        machine, none)."""
        while n > 0:
            tick = self.next_tick()
            if tick["t_ns"] >= since_ns:
                n -= 1
                yield tick

    def close(self):
        self.sock.close()
