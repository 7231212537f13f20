#!/usr/bin/env python3
"""hold_default_ports.py [--port N]... -- COMMAND [ARG...]

Runs COMMAND (make test: each ctest stage) while this process holds
thothd's default dashboard port, 127.0.0.1:9180 (and each --port N), and
exits with COMMAND's status.

Why: a thothd started without --http-port takes 9180 when it is free and
runs without a dashboard when another process holds it.  A test whose
thothd did so had a listener, its epoll entry and a timer more or fewer
depending on which other test ran at that moment (test_chaos's exact
descriptor count failed so, once, in a clean-clone make test).  Held for
the whole run, the default is never free: a test that still leans on it
fails every time, not one run in fifty.  Tests give thothd --http-port 0
(a port of its own) or off.

A port another process holds already is held all the same (said).  This
process sleeps in poll() on the ports and COMMAND's pidfd: it wakes only
for a connection (accepted, closed and counted: a test that still talks to
the default shows in the count printed at the end), so the idle-system
tests see no wake-ups of it.
"""
import os
import select
import signal
import socket
import subprocess
import sys

DEFAULT_PORTS = [9180]


def main(argv):
    ports = []
    while argv and argv[0] == "--port":
        ports.append(int(argv[1]))
        argv = argv[2:]
    if not argv or argv[0] != "--" or len(argv) < 2:
        sys.stderr.write(__doc__.strip().splitlines()[0] + "\n")
        return 2
    cmd = argv[1:]
    held = []
    for port in ports or DEFAULT_PORTS:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)     # not inherited (PEP 446)
        try:
            s.bind(("127.0.0.1", port))
            s.listen(16)
            s.setblocking(False)
            held.append(s)
        except OSError as e:
            s.close()
            print("hold_default_ports: 127.0.0.1:%d is another process's already (%s): held all "
                  "the same" % (port, e.strerror), flush=True)
    # COMMAND gets the terminal's signals itself (same process group);
    # this process only waits for it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    child = subprocess.Popen(cmd)
    pidfd = os.pidfd_open(child.pid)
    p = select.poll()
    p.register(pidfd, select.POLLIN)
    by_fd = {}
    for s in held:
        p.register(s.fileno(), select.POLLIN)
        by_fd[s.fileno()] = s
    counts = {s.getsockname()[1]: 0 for s in held}
    done = False
    while not done:
        for fd, _ in p.poll():
            if fd == pidfd:
                done = True
                continue
            s = by_fd[fd]
            try:
                c, _ = s.accept()
                c.close()
                counts[s.getsockname()[1]] += 1
            except OSError:
                pass
    rc = child.wait()
    for port, n in sorted(counts.items()):
        if n:
            print("hold_default_ports: %d connection(s) came to 127.0.0.1:%d, held through the run: "
                  "a test still talks to the default port" % (n, port), flush=True)
    return rc if rc >= 0 else 128 - rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
