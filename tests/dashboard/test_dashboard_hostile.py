#!/usr/bin/env python3
"""test_dashboard_hostile.py BUILD_DIR: bad input to thothd's HTTP server is
answered with an error (or a close) while everything else keeps working:
bad or missing token, path traversal, methods other than GET/HEAD, oversized
headers, slow clients (slowloris, idle or trickling), a thousand connections, more connections
than the limit, window exports held on workers, hundreds of event streams that never
read (their memory bounded in all).  After each attack a well-formed request and thothd's
control socket (`thothctl status`) must still be answered.
"""
import json
import os
import resource
import select
import socket
import sys
import time

sys.dont_write_bytecode = True  # importing a helper leaves no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import EventStream, System, fail, wait_for  # noqa: E402

BUILD = sys.argv[1]
TOKEN = "s3cret-token-for-the-test"


def raw(s, request, timeout=10):
    """Send REQUEST bytes, return the whole answer (until the server closes)."""
    c = s.connect()
    c.settimeout(timeout)
    try:
        c.sendall(request)
    except (BrokenPipeError, ConnectionResetError):
        pass
    out = b""
    try:
        while True:
            chunk = c.recv(65536)
            if not chunk:
                break
            out += chunk
    except (ConnectionResetError, socket.timeout):
        pass
    c.close()
    return out


def status_line(answer):
    return answer.split(b"\r\n", 1)[0].decode(errors="replace")


def still_works(s, why):
    code, _, body = s.get("/metrics?token=" + TOKEN)
    if code != 200 or b"thothd_uptime_seconds" not in body:
        fail("after %s, /metrics answered %s" % (why, code))
    if not s.thothctl("status").stdout.startswith("{"):
        fail("after %s, thothd's control socket does not answer" % why)


def test_token_is_required(s):
    for path in ("/", "/metrics", "/events", "/trace.json?from_ns=1&to_ns=2"):
        code, _, _ = s.get(path)
        if code != 401:
            fail("%s without a token answered %d, not 401" % (path, code))
    code, _, _ = s.get("/metrics?token=wrong")
    if code != 401:
        fail("a wrong token answered %d" % code)
    code, _, _ = s.get("/metrics?token=" + TOKEN[:-1])
    if code != 401:
        fail("a token's prefix answered %d" % code)
    code, _, _ = s.get("/metrics", headers={"Authorization": "Bearer " + TOKEN})
    if code != 200:
        fail("the Bearer token answered %d" % code)
    still_works(s, "bad tokens")
    print("ok: missing, wrong and prefix tokens get 401; the right one 200")


def test_paths_outside_the_page_are_not_found(s):
    for path in (b"/../../../../etc/passwd", b"/%2e%2e/%2e%2e/etc/passwd", b"//etc/passwd",
                 b"/web/../index.html", b"/index.html/../../etc/passwd", b"/..%2f..%2fetc%2fpasswd",
                 b"/dashboard.js%00.html", b"/" + b"A" * 4000):
        ans = raw(s, b"GET " + path + b"?token=" + TOKEN.encode() +
                  b" HTTP/1.0\r\nHost: x\r\n\r\n")
        line = status_line(ans)
        if " 404 " not in line and " 400 " not in line and " 414 " not in line:
            fail("GET %r answered %r" % (path[:60], line))
        if b"root:" in ans:
            fail("GET %r leaked a file" % path[:60])
    still_works(s, "path traversal")
    print("ok: traversal paths get 404/400, nothing outside the page is served")


def test_other_methods_are_refused(s):
    for method in (b"POST", b"PUT", b"DELETE", b"TRACE"):
        ans = raw(s, method + b" /metrics?token=" + TOKEN.encode() +
                  b" HTTP/1.0\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc")
        if " 405 " not in status_line(ans):
            fail("%s answered %r" % (method, status_line(ans)))
        # RFC 9110 15.5.6: a 405 says which methods the resource takes
        # (it had no Allow header: a client could not tell what to use)
        if b"\r\nAllow: GET, HEAD\r\n" not in ans.split(b"\r\n\r\n")[0] + b"\r\n":
            fail("%s: the 405 has no 'Allow: GET, HEAD': %r" % (method, ans[:300]))
    still_works(s, "other methods")
    print("ok: POST/PUT/DELETE/TRACE get 405 with Allow: GET, HEAD")


def test_oversized_headers_are_refused(s):
    big = b"X-Big: " + b"a" * (64 << 10) + b"\r\n"
    ans = raw(s, b"GET /metrics?token=" + TOKEN.encode() + b" HTTP/1.1\r\nHost: x\r\n" + big +
              b"\r\n")
    line = status_line(ans)
    if ans and not any(c in line for c in (" 431 ", " 413 ", " 414 ", " 400 ")):
        fail("64 KiB of headers answered %r" % line)
    many = b"".join(b"X-H%d: v\r\n" % i for i in range(5000))
    ans = raw(s, b"GET /metrics?token=" + TOKEN.encode() + b" HTTP/1.1\r\nHost: x\r\n" + many +
              b"\r\n")
    line = status_line(ans)
    if ans and not any(c in line for c in (" 431 ", " 413 ", " 400 ")):
        fail("5000 headers answered %r" % line)
    still_works(s, "oversized headers")
    print("ok: 64 KiB headers and 5000 headers refused (%s)" % (line or "closed"))


def test_slow_clients_are_timed_out(s, timeout_s):
    # Slowloris: connections that never finish their headers.
    slow = []
    for _ in range(50):
        c = s.connect()
        c.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        slow.append(c)
    still_works(s, "50 slow clients holding connections")
    start = time.monotonic()
    for c in slow:
        c.settimeout(timeout_s + 20)
        try:
            while c.recv(4096):
                pass
        except ConnectionResetError:
            pass
        c.close()
    took = time.monotonic() - start
    if took > timeout_s + 15:
        fail("slow clients were closed after %.1f s (timeout %d s)" % (took, timeout_s))
    still_works(s, "slow clients")
    print("ok: 50 slow clients closed by thothd within %.1f s (timeout %d s), others served" %
          (took, timeout_s))


def test_trickling_clients_are_timed_out(s, timeout_s):
    # Slowloris that trickles: each client sends a header byte every 0.3 s.
    # The idle timeout never fires (every byte resets it); the request head
    # as a whole must still arrive within the timeout, or the connection
    # closes (it stayed open for as long as the client kept trickling).
    conns = []
    for _ in range(5):
        c = s.connect()
        c.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        conns.append(c)
    start = time.monotonic()
    open_ = list(conns)
    while open_ and time.monotonic() - start < timeout_s + 15:
        readable, _, _ = select.select(open_, [], [], 0.3)
        for c in readable:
            try:
                if c.recv(4096) == b"":
                    open_.remove(c)
            except ConnectionResetError:
                open_.remove(c)
        for c in list(open_):
            try:
                c.sendall(b"a")
            except (BrokenPipeError, ConnectionResetError):
                open_.remove(c)
    took = time.monotonic() - start
    for c in conns:
        c.close()
    if open_:
        fail("%d trickling clients were still connected after %.1f s (timeout %d s)" %
             (len(open_), took, timeout_s))
    still_works(s, "trickling clients")
    print("ok: 5 clients trickling a header byte every 0.3 s closed within %.1f s (timeout %d s)" %
          (took, timeout_s))


def test_a_thousand_connections(s):
    conns = []
    for _ in range(1000):
        conns.append(s.connect())
    still_works(s, "1000 idle connections")
    for c in conns:
        c.close()
    still_works(s, "1000 connections closed")
    print("ok: 1000 connections held; /metrics and the control socket still answered")


def accepted(pid, port):
    """The TCP connections to PORT that process PID has accepted: its socket
    descriptors that /proc/net/tcp* lists as established on that local port
    (one not yet accepted has no descriptor).  Counting all its sockets
    against a count taken before was a race: the control connections of the
    harness's `thothctl status` calls were in that count or not depending on
    when thothd closed them, and one in it and gone later kept the count at
    39 for good (failed so at ctest -j4, load 9)."""
    d = "/proc/%d/fd" % pid
    inodes = set()
    for f in os.listdir(d):
        try:
            link = os.readlink(os.path.join(d, f))
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    n = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = open(table).read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            # local_address rem_address st ... inode (field 9); st 01 = ESTABLISHED
            if f[3] == "01" and int(f[1].rsplit(":", 1)[1], 16) == port and f[9] in inodes:
                n += 1
    return n


def test_connections_beyond_the_limit_wait_then_are_served(build):
    # Beyond --http-max-connections thothd stops accepting: the surplus waits
    # in the kernel's listen backlog (the control socket keeps working) and
    # is served as soon as held connections end.
    with System(build, demo=False, thothd_args=("--http-max-connections", "40")) as s:
        held = [s.connect() for _ in range(40)]
        wait_for("40 connections accepted", lambda: accepted(s.thothd.pid, s.port) >= 40)
        surplus = [s.connect() for _ in range(10)]
        for c in surplus:
            c.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
        if not s.thothctl("status").stdout.startswith("{"):
            fail("the control socket stopped answering at the HTTP connection limit")
        for c in held:
            c.close()
        served = 0
        for c in surplus:
            c.settimeout(15)
            if raw_recv(c).startswith(b"HTTP/1.1 200"):
                served += 1
            c.close()
        if served != 10:
            fail("%d of 10 connections that waited beyond the limit were served" % served)
        if s.get("/metrics")[0] != 200:
            fail("no answer after the flood")
    print("ok: at --http-max-connections 40 the 10 extra connections waited, then were served")


def test_window_exports_are_made_off_the_loop_and_bounded(build):
    # A full window is ~22 MB of JSON and ~0.3 s of CPU.  Made on thothd's
    # loop thread and kept until sent, 30 clients that asked for one and
    # did not read held thothd's control socket 10 s and grew it by 400 MB
    # in 8 s.  Now each is made on a worker while its connection waits, at
    # most EXPORTS_MAX (4, http.c) are made or sent at once, and the rest
    # are told 503 with Retry-After.  THOTHD_TEST_EXPORT_GATE (a FIFO) holds
    # every export on its worker until a byte comes: no timing.
    gate = os.path.join(os.environ.get("TMPDIR", "/tmp"), "thoth-export-gate-%d" % os.getpid())
    os.mkfifo(gate)
    try:
        with System(build, env={"THOTHD_TEST_EXPORT_GATE": gate}) as s:
            if s.get("/metrics")[0] != 200:      # collection on: events are kept
                fail("no /metrics")
            now = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
            req = ("GET /trace.json?from_ns=%d&to_ns=%d HTTP/1.0\r\n\r\n"
                   % (now - 60 * 10**9, now + 60 * 10**9)).encode()
            held = []
            for _ in range(4):
                c = s.connect()
                c.sendall(req)
                held.append(c)

            def fifth_refused():
                c = s.connect()
                c.settimeout(10)
                c.sendall(req)
                answer = raw_recv(c)
                c.close()
                if answer.startswith(b"HTTP/1.1 200"):
                    fail("a fifth window export was made while four waited at the gate "
                         "(exports are not made on a worker, or not bounded)")
                return answer.startswith(b"HTTP/1.1 503") and b"Retry-After: 1" in answer
            wait_for("a fifth export refused with 503", fifth_refused)
            # Held on the workers: nothing answered, and thothd serves on.
            ready, _, _ = select.select(held, [], [], 0)
            if ready:
                fail("%d exports answered while the gate was closed" % len(ready))
            still_works_plain(s, "four exports held on workers")

            # Open the gate until all four are answered, each a JSON trace.
            answers = [b""] * 4
            done = [False] * 4
            deadline = time.time() + 30
            while not all(done) and time.time() < deadline:
                try:
                    fd = os.open(gate, os.O_WRONLY | os.O_NONBLOCK)
                    os.write(fd, b"x")
                    os.close(fd)
                except OSError:
                    pass            # no export at the gate now (ENXIO)
                ready, _, _ = select.select([c for c, d in zip(held, done) if not d], [], [], 0.05)
                for c in ready:
                    i = held.index(c)
                    chunk = c.recv(1 << 20)
                    if chunk:
                        answers[i] += chunk
                    else:
                        done[i] = True
            for i, a in enumerate(answers):
                if not a.startswith(b"HTTP/1.1 200"):
                    fail("export %d answered %r" % (i, a[:80]))
                json.loads(a.split(b"\r\n\r\n", 1)[1])
            for c in held:
                c.close()
            # Sent: room for the next ones.
            wait_for("an export made again", lambda: export_after_gate(s, req, gate))
    finally:
        os.unlink(gate)
    print("ok: window exports made on workers (4 held at a gate, thothd served on), "
          "a fifth told 503 Retry-After, all four answered once let go")


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    fail("no VmRSS for %d" % pid)


def metric(body, name):
    for line in body.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    fail("/metrics has no %s" % name)


def test_event_streams_that_do_not_read_are_bounded_in_all(build):
    # Each page on /events that does not read is closed at 256 KiB of its
    # own backlog, but 1,024 of them held up to 256 MiB (each tick copied
    # to each stream).  The objects are now shared by the streams, and what
    # they hold is bounded in all (--http-events-memory-kib, here at least
    # 64 KiB and three ticks, less than one stream's own limit so that the
    # test reaches it): when an object would take them beyond it, the
    # streams more than a tick behind with the largest backlog are closed,
    # the largest first, until it fits.  The newest tick and the one a
    # page that reads may still hold are left out of the bound, so what is
    # held may pass it by two ticks and the references.  300 real pages
    # that never read (a small receive buffer each, so the kernel takes
    # little for them) and one that reads, against thothd with the demo's
    # services (a tick of ~2.6 KiB here, ~69 KiB on a 192-CPU host with 5
    # C-states, hence the bound from the tick measured; an event stream's
    # socket takes ~32 KiB).  Ticks smaller than 8 KiB are padded to it
    # (THOTHD_TEST_TICK_PAD, spaces: the same ticks, larger): at ~3 KiB the
    # 64 KiB bound took some 20 ticks (20 s) to reach, at 8 KiB about 8, and
    # the streams are closed by the same rule (some 230 of the 300; padded
    # to 16 KiB or more every one was, the largest-first choice unseen).
    with System(build) as s0:
        probe = EventStream(s0)
        tick_bytes = max(len(json.dumps(probe.next_tick(timeout=15), separators=(",", ":")))
                         for _ in range(2)) + 64
        probe.close()
    pad = max(0, 8 * 1024 - tick_bytes)
    tick_bytes += pad
    limit_kib = max(64, -(-3 * tick_bytes // 1024))
    if limit_kib >= 256:
        print("skip: a tick of %d bytes; three of them reach a stream's own 256 KiB" % tick_bytes)
        return
    idle_n = 300
    over = 2 * tick_bytes + (idle_n + 1) * 32 + 4096   # two ticks, the refs, the hellos
    # A long idle timeout: a page whose socket takes nothing for 10 s (the
    # default) is closed by libmicrohttpd before its backlog grows.
    with System(build, thothd_args=("--http-events-memory-kib", str(limit_kib),
                                    "--http-timeout-s", "3600"),
                env={"THOTHD_TEST_TICK_PAD": str(pad)} if pad else None) as s:
        reader = EventStream(s)
        reader.next_tick(timeout=15)
        rss0 = rss_kib(s.thothd.pid)
        req = b"GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        idle = []
        for _ in range(idle_n):
            c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
            c.connect(("127.0.0.1", s.port))
            c.sendall(req)
            idle.append(c)
        reader.sock.setblocking(False)
        seen = {"max_bytes": 0, "ticks": 0}

        def read_page():
            try:
                while True:
                    chunk = reader.sock.recv(1 << 20)
                    if not chunk:
                        fail("thothd closed the page that reads")
                    seen["ticks"] += chunk.count(b"event: tick")
            except BlockingIOError:
                pass

        def closed_for_memory():
            read_page()
            code, _, body = s.get("/metrics")
            if code != 200:
                fail("/metrics answered %d beside %d pages that do not read" % (code, idle_n))
            held = metric(body, "thoth_dashboard_event_stream_bytes")
            seen["max_bytes"] = max(seen["max_bytes"], held)
            if held > limit_kib * 1024 + over:
                fail("the event streams hold %d bytes, beyond their bound of %d KiB and "
                     "two ticks of %d bytes" % (held, limit_kib, tick_bytes))
            if metric(body, "thoth_dashboard_event_stream_bytes_limit") != limit_kib * 1024:
                fail("/metrics shows another bound")
            return metric(body, 'thoth_dashboard_event_streams_closed_total{reason="memory"}') >= 20
        wait_for("pages that do not read closed at the memory bound", closed_for_memory,
                 timeout=150, step=0.5)
        # The page that reads is served on: more ticks, never closed.
        ticks = seen["ticks"]
        wait_for("two more ticks on the page that reads",
                 lambda: (read_page(), seen["ticks"] >= ticks + 2)[1], timeout=15, step=0.1)
        closed_for_memory()
        still_works_plain(s, "%d event streams that do not read" % idle_n)
        rss1 = rss_kib(s.thothd.pid)
        code, _, body = s.get("/metrics")
        closed = metric(body, 'thoth_dashboard_event_streams_closed_total{reason="memory"}')
        for c in idle:
            c.close()
        reader.close()
    print("ok: %d pages that do not read: %d closed at the %d KiB bound (ticks of %d bytes, "
          "%d of them padding; largest backlog first), at most %d bytes held; thothd's RSS "
          "%d -> %d KiB; the page that reads, /metrics and the control socket served"
          % (idle_n, closed, limit_kib, tick_bytes, pad, seen["max_bytes"], rss0, rss1))


def test_a_page_that_reads_survives_ticks_larger_than_the_bound(build):
    # A 192-CPU host with 5 C-states makes ~69 KiB ticks, more than a
    # 64 KiB bound: every stream was closed every tick, the page that reads
    # too (nothing for it to close but itself).  Ticks padded to ~100 KiB
    # (THOTHD_TEST_TICK_PAD) at the 64 KiB bound: the page that reads takes
    # 5 ticks on one stream, a page that does not read is closed for
    # memory once more than a tick behind, and the tick is logged.
    with System(build, thothd_args=("--http-events-memory-kib", "64"),
                env={"THOTHD_TEST_TICK_PAD": "100000"}) as s:
        idle = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        idle.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
        idle.connect(("127.0.0.1", s.port))
        idle.sendall(b"GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        reader = EventStream(s)
        for i in range(5):
            reader.next_tick(timeout=15)
        code, _, body = s.get("/metrics")
        if code != 200:
            fail("/metrics answered %d" % code)
        closed = metric(body, 'thoth_dashboard_event_streams_closed_total{reason="memory"}')
        if closed < 1:
            fail("the page that does not read was not closed for memory")
        if closed > 1:
            fail("%d streams closed for memory: the page that reads was among them" % closed)
        idle.close()
        reader.close()
    print("ok: ticks of ~100 KiB at a 64 KiB bound: the page that reads took 5 on one stream, "
          "the one that does not read closed for memory")


def test_a_stream_closed_for_malloc_is_not_counted_as_backlog(build):
    # A tick's reference to its object cannot be allocated for a stream
    # that reads (THOTHD_TEST_SSE_REF_ALLOCS=2: the hello and the first
    # tick, then malloc "fails"): the stream is closed, and /metrics said
    # reason="backlog", blaming a page that reads for thothd's memory.  Now
    # it is reason="alloc", and backlog stays 0.
    with System(build, env={"THOTHD_TEST_SSE_REF_ALLOCS": "2"}) as s:
        reader = EventStream(s)
        reader.next_tick(timeout=15)
        deadline = time.monotonic() + 15
        while True:             # to the close: the next tick's reference fails
            left = deadline - time.monotonic()
            if left <= 0:
                fail("the stream was not closed when malloc failed at a tick")
            reader.sock.settimeout(left)
            try:
                if not reader.sock.recv(65536):
                    break
            except socket.timeout:
                pass
        reader.close()
        code, _, body = s.get("/metrics")
        if code != 200:
            fail("/metrics answered %d" % code)
        backlog = metric(body, 'thoth_dashboard_event_streams_closed_total{reason="backlog"}')
        alloc = metric(body, 'thoth_dashboard_event_streams_closed_total{reason="alloc"}')
        if backlog != 0 or alloc != 1:
            fail("a stream closed for malloc counted as backlog %d, alloc %d (want 0, 1)"
                 % (backlog, alloc))
    print("ok: a stream closed when malloc failed at a tick is counted as alloc, not backlog")


def test_a_malformed_alloc_seam_is_refused_not_taken_for_zero(build):
    # THOTHD_TEST_SSE_REF_ALLOCS was read with atoi: "yes" was 0, and every
    # event stream closed at its first reference.  Now anything but a whole
    # count is refused with a warning and the seam stays off.
    with System(build, env={"THOTHD_TEST_SSE_REF_ALLOCS": "yes"}) as s:
        reader = EventStream(s)
        reader.next_tick(timeout=15)
        reader.next_tick(timeout=15)
        reader.close()
        s.log.flush()
        s.log.seek(0)
        log = s.log.read()
        if "THOTHD_TEST_SSE_REF_ALLOCS=yes is not a count of references: ignored" not in log:
            fail("no warning for THOTHD_TEST_SSE_REF_ALLOCS=yes:\n" + log[-2000:])
        if "references fail after" in log:
            fail("THOTHD_TEST_SSE_REF_ALLOCS=yes was taken for a count")
    print("ok: THOTHD_TEST_SSE_REF_ALLOCS=yes refused with a warning, the streams unharmed")


def export_after_gate(s, req, gate):
    c = s.connect()
    c.settimeout(0.2)
    c.sendall(req)
    answer = b""
    for _ in range(50):
        try:
            fd = os.open(gate, os.O_WRONLY | os.O_NONBLOCK)
            os.write(fd, b"x")
            os.close(fd)
        except OSError:
            pass
        try:
            chunk = c.recv(1 << 20)
        except socket.timeout:
            continue
        if not chunk:
            break
        answer += chunk
    c.close()
    return answer.startswith(b"HTTP/1.1 200")


def still_works_plain(s, why):
    code, _, body = s.get("/metrics")
    if code != 200 or b"thothd_uptime_seconds" not in body:
        fail("after %s, /metrics answered %s" % (why, code))
    if not s.thothctl("status").stdout.startswith("{"):
        fail("after %s, thothd's control socket does not answer" % why)


def raw_recv(c):
    out = b""
    try:
        while True:
            chunk = c.recv(65536)
            if not chunk:
                break
            out += chunk
    except (ConnectionResetError, socket.timeout):
        pass
    return out


def main():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 1200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
    timeout_s = 2
    tokdir = os.path.join(os.environ.get("TMPDIR", "/tmp"), "thoth-dash-token-%d" % os.getpid())
    with open(tokdir, "w") as f:
        f.write(TOKEN + "\n")
    os.chmod(tokdir, 0o600)   # thothd refuses a token other users can read
    try:
        with System(BUILD, demo=False, thothd_args=("--http-token-file", tokdir,
                                                    "--http-timeout-s", str(timeout_s))) as s:
            test_token_is_required(s)
            test_paths_outside_the_page_are_not_found(s)
            test_other_methods_are_refused(s)
            test_oversized_headers_are_refused(s)
            test_slow_clients_are_timed_out(s, timeout_s)
            test_trickling_clients_are_timed_out(s, timeout_s)
            test_a_thousand_connections(s)
    finally:
        os.unlink(tokdir)
    test_connections_beyond_the_limit_wait_then_are_served(BUILD)
    test_window_exports_are_made_off_the_loop_and_bounded(BUILD)
    test_event_streams_that_do_not_read_are_bounded_in_all(BUILD)
    test_a_page_that_reads_survives_ticks_larger_than_the_bound(BUILD)
    test_a_stream_closed_for_malloc_is_not_counted_as_backlog(BUILD)
    test_a_malformed_alloc_seam_is_refused_not_taken_for_zero(BUILD)
    print("PASS")


if __name__ == "__main__":
    main()
