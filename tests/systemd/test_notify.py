#!/usr/bin/env python3
"""tests/systemd/test_notify.py THOTHD

thothd under a service manager, without one: this script plays systemd's
part of two protocols.
  - readiness: NOTIFY_SOCKET names our datagram socket; thothd must send
    READY=1 once it serves its socket (a client can connect right then) and
    STOPPING=1 on SIGTERM; the abstract-namespace form (@name) works too.
  - socket activation with a bad socket: a datagram socket passed as fd 3
    with LISTEN_PID/LISTEN_FDS=1 is refused with a message, exit 1.
Every wait has a deadline; no sleeps.
"""
import os, signal, socket, subprocess, sys, shutil

sys.dont_write_bytecode = True  # importing a helper leaves no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
from sockdir import sock_mkdtemp  # noqa: E402  a short folder where TMPDIR is too long

THOTHD = sys.argv[1]
DEADLINE = 30.0


def notify_case(abstract):
    rt = sock_mkdtemp("thoth-notify-")
    try:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if abstract:
            name = "\0thoth-notify-%d" % os.getpid()
            env_addr = "@" + name[1:]
        else:
            name = os.path.join(rt, "notify.sock")
            env_addr = name
        s.bind(name)
        s.settimeout(DEADLINE)
        env = dict(os.environ, NOTIFY_SOCKET=env_addr)
        # --http-port 0: not the default 9180, which another test's thothd
        # may hold at that moment (then this one ran without a dashboard).
        p = subprocess.Popen([THOTHD, "--runtime-dir", rt, "--http-port", "0"], env=env,
                             stderr=subprocess.PIPE)
        try:
            msg = s.recv(4096).decode()
            assert "READY=1" in msg.split("\n"), "expected READY=1, got %r" % msg
            # Ready means served: a client connects at once.
            c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            c.connect(os.path.join(rt, "thothd.sock"))
            c.close()
            p.send_signal(signal.SIGTERM)
            msg = s.recv(4096).decode()
            assert "STOPPING=1" in msg.split("\n"), "expected STOPPING=1, got %r" % msg
            rc = p.wait(DEADLINE)
            assert rc == 0, "thothd exited %d" % rc
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        print("notify (%s): READY=1, STOPPING=1" % ("abstract" if abstract else "path"))
    finally:
        shutil.rmtree(rt, ignore_errors=True)


def bad_socket_case():
    rt = sock_mkdtemp("thoth-sockbad-")
    try:
        d = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        d.bind(os.path.join(rt, "dgram.sock"))
        fd = d.fileno()

        def child():
            if fd != 3:
                os.dup2(fd, 3)
            os.set_inheritable(3, True)
            os.environ["LISTEN_PID"] = str(os.getpid())
            os.environ["LISTEN_FDS"] = "1"

        p = subprocess.run([THOTHD, "--runtime-dir", rt], preexec_fn=child, close_fds=False,
                           stderr=subprocess.PIPE, timeout=DEADLINE)
        err = p.stderr.decode()
        assert p.returncode == 1, "thothd exited %d with a datagram socket: %s" % (p.returncode, err)
        assert "not a stream socket" in err, "no clear error: %r" % err
        print("bad passed socket refused: " + err.strip().splitlines()[-1])
    finally:
        shutil.rmtree(rt, ignore_errors=True)


notify_case(abstract=False)
notify_case(abstract=True)
bad_socket_case()
print("PASS")
