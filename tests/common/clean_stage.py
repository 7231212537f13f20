#!/usr/bin/env python3
"""clean_stage.py [--skips BUILD_DIR] -- COMMAND [ARG...]

Runs COMMAND (make test: one ctest stage) with TMPDIR at a fresh directory
of its own, and afterwards FAILS (exit 1, or COMMAND's status if that
failed) when the stage left anything behind:

- files: whatever is still in that TMPDIR when COMMAND has ended, each
  top-level entry named ("left in TMPDIR: thothd-test-AbC123/ (3 files)");
- processes: any process still alive that COMMAND started, found two ways:
  this process is a child subreaper (PR_SET_CHILD_SUBREAPER), so a test's
  daemonized or orphaned process stays below it rather than going to init,
  and any process whose environment names the stage (THOTH_TEST_STAGE,
  which a test's child that resets TMPDIR still inherits) or whose cwd is
  in the stage's TMPDIR.  Each is named (pid and command line), then
  killed (SIGKILL) so the next stage starts clean; except one found only
  by its cwd (neither below us nor marked), which may be anyone's (a
  shell cd'ed there to read a log): named, not killed.

- fallbacks: /tmp/MARK-* with MARK the base name of the stage's TMPDIR,
  the short folders tests make for unix sockets when TMPDIR is too long for
  one (tests/common/tmpdir.h, test_sock_template): checked as TMPDIR;
- /dev/shm: an entry that was not there when COMMAND started and that no
  live process has open or mapped (one in use by a process the stage did
  not start is another's: named, not failed, not removed).  Not by a guard
  run inside a stage (a test's: THOTH_TEST_STAGE already set), unless
  THOTH_STAGE_SHM=1 (=0: never): beside it the outer stage's other tests make and
  remove their own (thothlock's /dev/shm/thothlock.*), which a nested
  guard would take for its stage's; the outer guard checks them.

- runtime dirs: every default runtime dir a test could fall back to when
  it does not set its own (libthoth's rule, kernel/ipc/service.c
  thoth_runtime_dir: $THOTH_RUNTIME_DIR, else $XDG_RUNTIME_DIR/thoth, else
  /tmp/thoth-UID; each of the three that applies is looked at, since a
  test may unset either variable), listed before COMMAND starts, every
  POLL_S while it runs and after it: an entry that was not there before
  (or is another file under the same name) fails the stage, named with
  the test that wrote it where that can be told: a marker named PID.*
  whose PID still ran when it was seen, by its ancestry (the command of
  COMMAND's child it runs under: ctest's test); else the tests (COMMAND's
  children) that ran when it was first seen; one made after the last poll
  is "seen only after the stage".  A marker whose PID runs outside the
  stage (neither below COMMAND nor marked with it: the user's own
  profiled program, another stage beside this one) is named in a note,
  not counted.  Not removed: the dir is the user's (a
  thothd of theirs may run there); thothd prunes a dead process's lock
  marker itself (docs/LOCKS.md).  What was there before is not the
  stage's.  Not by a guard inside a stage unless THOTH_STAGE_RUNDIRS=1
  (=0: never), as /dev/shm; THOTH_STAGE_RUNDIR_TMP moves /tmp for the
  /tmp/thoth-UID rule (the guard's own test).

A folder /tmp/thoth-stage-PID-* whose guard (PID) no longer runs, left by
a guard that was SIGKILLed, is removed with its fallbacks when the next
guard starts, and named.

The leftovers are removed after they are named: the failure is the
report, and /tmp does not fill from one run to the next.  Why a test
leaves something (a setup that failed before its teardown, a crash, ctest's
TIMEOUT kill) is the test's to fix: docs/TESTING.md "Leftovers guard".

With --skips, the stage then ends with what it did not run: the test
cases and whole tests ctest's last run in BUILD_DIR skipped, each with the
reason it printed (tests/common/stage_skips.py; a skip for a reason not on
its allowed list is listed again, and fails the stage with
THOTH_STRICT_SKIPS=1).

THOTH_STAGE_TMP sets the folder the stage's TMPDIR is made in (default
/tmp: short, since tests make unix sockets below it, 108 bytes at most).
"""
import ctypes
import errno
import glob
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

PR_SET_CHILD_SUBREAPER = 36
MARK = "THOTH_TEST_STAGE"
STAGE_PREFIX = "thoth-stage-"
# Where tests/common/tmpdir.h's test_sock_template makes a short folder
# when TMPDIR is too long for a unix socket: SHORT_BASE/MARK-NAME-XXXXXX.
SHORT_BASE = "/tmp"
SHM = "/dev/shm"
# How long a process may take to go after COMMAND has ended: a service
# whose thothd was killed is itself killed by its parent-death signal, which
# is asynchronous.
GRACE_S = 3.0


def reap_orphans():
    """Reaps every child of ours that has ended (orphans handed to us)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def proc_state(pid):
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            s = f.read()
    except OSError:
        return None, None
    rest = s[s.rindex(b")") + 2:].split()
    return rest[0].decode(), int(rest[1])          # state, ppid


def cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip() or "?"
    except OSError:
        return "?"


def stage_processes(stage):
    """Live processes of the stage (not us): {pid: started by it}.  Below
    us or marked with the stage, it started them; one found only by its cwd
    in the stage's TMPDIR may be anyone's (a shell cd'ed there to read a
    log): named, not killed."""
    me = os.getpid()
    parent = {}
    marked = set()
    in_dir = set()
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        pid = int(name)
        if pid == me:
            continue
        state, ppid = proc_state(pid)
        if state is None or state in ("Z", "X"):
            continue
        parent[pid] = ppid
        try:
            with open("/proc/%d/environ" % pid, "rb") as f:
                env = f.read().split(b"\0")
            if (MARK + "=" + stage).encode() in env:
                marked.add(pid)
        except OSError:
            pass                                    # not ours to read: not ours
        try:
            cwd = os.readlink("/proc/%d/cwd" % pid)
            if cwd == stage or cwd.startswith(stage + "/"):
                in_dir.add(pid)
        except OSError:
            pass
    found = {pid: True for pid in marked}
    found.update({pid: False for pid in in_dir - marked})
    for pid in parent:
        p, seen = pid, 0
        while p in parent and seen < 4096:
            if parent[p] == me:
                found[pid] = True
                break
            p, seen = parent[p], seen + 1
    return dict(sorted(found.items()))


def shm_entries():
    """{name: inode} of /dev/shm's entries this guard's stage could have
    made: all of them as root, else its own uid's.  A non-root guard can
    see no other user's open files (/proc/PID/fd), so another user's file
    would read as left by the stage (and could not be removed)."""
    uid = os.getuid()
    found = {}
    try:
        names = os.listdir(SHM)
    except OSError:
        return found
    for n in names:
        try:
            st = os.lstat(os.path.join(SHM, n))
        except OSError:
            continue
        if uid == 0 or st.st_uid == uid:
            found[n] = st.st_ino
    return found


def shm_users():
    """{path under /dev/shm: pids that have it open or mapped}."""
    users = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        pid = int(name)
        paths = set()
        try:
            for fd in os.listdir("/proc/%d/fd" % pid):
                try:
                    t = os.readlink("/proc/%d/fd/%s" % (pid, fd))
                except OSError:
                    continue
                if t.startswith(SHM + "/"):
                    paths.add(t)
        except OSError:
            pass
        try:
            with open("/proc/%d/maps" % pid, "rb") as f:
                for line in f:
                    i = line.find(b" " + SHM.encode() + b"/")
                    if i >= 0:
                        paths.add(line[i + 1:].rstrip(b"\n").decode(errors="replace"))
        except OSError:
            pass
        for path in paths:
            users.setdefault(path.replace(" (deleted)", ""), []).append(pid)
    return users


def guard_alive(pid):
    """May PID be a clean_stage guard still running?  No when there is no
    such process or its command line is another's (a reused pid); yes when
    that cannot be read (hidepid): its folder is then left alone."""
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return b"clean_stage.py" in f.read()
    except FileNotFoundError:
        return False
    except OSError:
        return True


def remove_stale(base):
    """Removes the folders (and their /tmp fallbacks) of guards that were
    killed before they could: /tmp/thoth-stage-PID-*, PID no longer a
    guard.  A folder of the old name (no pid) is left as it is: whose it
    is cannot be told."""
    for path in sorted(glob.glob(os.path.join(base, STAGE_PREFIX + "*"))):
        if not os.path.lexists(path):
            continue            # a fallback folder of a folder removed above
        rest = os.path.basename(path)[len(STAGE_PREFIX):].split("-", 1)
        if len(rest) != 2 or not rest[0].isdigit() or guard_alive(int(rest[0])):
            continue
        gone = [path] + glob.glob(os.path.join(SHORT_BASE, os.path.basename(path) + "-*"))
        for p in gone:
            shutil.rmtree(p, ignore_errors=True)
        print("clean_stage: removed %s, left by a guard (pid %s) that no longer runs%s"
              % (path, rest[0], " (and %d fallback folder%s)" % (len(gone) - 1, "" if len(gone) == 2 else "s")
                 if len(gone) > 1 else ""), flush=True)


POLL_S = 0.5
# How much of a runtime dir is listed: a user's holds a handful of files
# (thothd.sock, thothd.pid, locks/, codex/...); a bound keeps a huge one
# from stalling the guard.
RUNDIR_MAX_ENTRIES = 20000
RUNDIR_MAX_DEPTH = 8


def runtime_dirs():
    """The runtime dirs a test of this stage could fall back to, in the
    order of libthoth's rule (thoth_runtime_dir); each once."""
    found = []
    env = os.environ.get("THOTH_RUNTIME_DIR")
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    base = os.environ.get("THOTH_STAGE_RUNDIR_TMP") or "/tmp"
    for d in (env if env else None,
              os.path.join(xdg, "thoth") if xdg else None,
              os.path.join(base, "thoth-%d" % os.getuid())):
        if d and os.path.normpath(d) not in found:
            found.append(os.path.normpath(d))
    return found


def rundir_entries(dirs):
    """{path: inode} of every entry in DIRS, the dirs themselves included
    (one a test made is new); symlinks listed, never followed."""
    found = {}
    for top in dirs:
        try:
            st = os.lstat(top)
        except OSError:
            continue
        found[top] = st.st_ino
        if not stat_isdir(st):
            continue
        todo = [(top, 0)]
        while todo and len(found) < RUNDIR_MAX_ENTRIES:
            d, depth = todo.pop()
            try:
                names = os.listdir(d)
            except OSError:
                continue
            for n in names:
                p = os.path.join(d, n)
                try:
                    st = os.lstat(p)
                except OSError:
                    continue
                found[p] = st.st_ino
                if stat_isdir(st) and depth + 1 < RUNDIR_MAX_DEPTH:
                    todo.append((p, depth + 1))
    return found


def stat_isdir(st):
    return (st.st_mode & 0o170000) == 0o040000


def test_of(pid, command_pid):
    """The command of COMMAND's child that PID runs under (ctest's test),
    or None: PID gone, or not below COMMAND (an orphan handed to us)."""
    p, seen = pid, 0
    while p > 1 and seen < 4096:
        _, ppid = proc_state(p)
        if ppid is None:
            return None
        if ppid == command_pid:
            return short_cmd(p)
        p, seen = ppid, seen + 1
    return None


def short_cmd(pid):
    c = cmdline(pid)
    cwd = os.getcwd() + "/"
    c = " ".join(a[len(cwd):] if a.startswith(cwd) else a for a in c.split())   # one line
    return c if len(c) <= 160 else c[:157] + "..."


def running_tests(command_pid):
    """The commands of COMMAND's children now running (ctest's tests)."""
    kids = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            state, ppid = proc_state(int(name))
            if ppid == command_pid and state not in (None, "Z", "X"):
                kids.append(short_cmd(int(name)))
    return sorted(kids)


class RundirWatch:
    """The runtime dirs before the stage, and who wrote what appeared."""

    def __init__(self, dirs, stage):
        self.dirs = dirs
        self.stage = stage
        self.before = rundir_entries(dirs)
        self.who = {}                   # path: (inode, "written by ...")

    def poll(self, command_pid):
        now = rundir_entries(self.dirs)
        for p, ino in now.items():
            if self.before.get(p) == ino or (p in self.who and self.who[p][0] == ino):
                continue
            self.who[p] = (ino,) + self.attribute(p, command_pid)
        return now

    def attribute(self, path, command_pid):
        """(what to say, whether it is another's: a marker PID.* whose
        PID runs outside this stage, neither below COMMAND nor marked
        with the stage: another user of the dir, not a test of ours)."""
        head = os.path.basename(path).split(".", 1)[0]
        if head.isdigit():
            pid = int(head)
            t = test_of(pid, command_pid)
            if t:
                return "by pid %s of test: %s" % (head, t), False
            if proc_state(pid)[0] not in (None, "Z", "X") and not self.marked(pid):
                return "by pid %s (%s), which this stage did not start" % (head, short_cmd(pid)), True
        tests = running_tests(command_pid)
        if not tests:
            return "while no test ran", False
        return "while %s ran: %s" % ("this test" if len(tests) == 1 else "these %d tests" % len(tests),
                                      "; ".join(tests)), False

    def marked(self, pid):
        try:
            with open("/proc/%d/environ" % pid, "rb") as f:
                return (MARK + "=" + self.stage).encode() in f.read().split(b"\0")
        except OSError:
            return True             # not ours to read: cannot tell, counted

    def report(self, command_pid):
        """Prints what the stage left; True when it left anything."""
        now = rundir_entries(self.dirs)     # no attribution: the stage is over
        new = sorted(p for p, ino in now.items() if self.before.get(p) != ino)
        # Each new file by itself (each has its writer); a new directory
        # only when nothing new is in it.
        top = [p for p in new if not any(q.startswith(p + "/") for q in new)]
        for p in [p for p in top if p in self.who and self.who[p][0] == now[p] and self.who[p][2]]:
            print("clean_stage: note: %s appeared during the stage, written %s: not counted"
                  % (p, self.who[p][1]), flush=True)
            top.remove(p)
        if not top:
            return False
        print("clean_stage: FAILED: %d entr%s left in the user's runtime dir%s (%s) by this stage, "
              "not removed (the user's; a thothd of theirs may run there):"
              % (len(top), "y" if len(top) == 1 else "ies", "" if len(self.dirs) == 1 else "s",
                 ", ".join(self.dirs)), flush=True)
        for p in top:
            who = self.who.get(p)
            print("  left in %s: %s, written %s" % (os.path.dirname(p), describe(p),
                  who[1] if who and who[0] == now[p] else "(seen only after the stage ended)"), flush=True)
        print("clean_stage: a test that runs thothd, a service or a profiled program must give it a "
              "runtime dir of its own (THOTH_RUNTIME_DIR or --runtime-dir under its TMPDIR)", flush=True)
        return True


def describe(path):
    if os.path.islink(path) or not os.path.isdir(path):
        return os.path.basename(path)
    n = 0
    for _, dirs, files in os.walk(path):
        n += len(files) + len(dirs)
    return "%s/ (%d entr%s)" % (os.path.basename(path), n, "y" if n == 1 else "ies")


def main(argv):
    skips_of = None
    if len(argv) > 2 and argv[0] == "--skips":
        skips_of, argv = argv[1], argv[2:]
    if len(argv) < 2 or argv[0] != "--":
        sys.stderr.write(__doc__.strip().splitlines()[0] + "\n")
        return 2
    if skips_of is not None:
        # A JUnit file of an earlier run would be read as this stage's
        # skips where ctest wrote none (it stopped early, or ran without
        # --output-junit): the summary then says there is none.
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import stage_skips
        try:
            os.unlink(os.path.join(skips_of, stage_skips.JUNIT))
        except FileNotFoundError:
            pass
    shm = os.environ.get("THOTH_STAGE_SHM", "")
    check_shm = shm == "1" or (shm != "0" and not os.environ.get(MARK))
    base = os.environ.get("THOTH_STAGE_TMP") or "/tmp"
    remove_stale(base)
    # The guard's pid in the name: the next guard can tell a folder whose
    # guard was SIGKILLed (remove_stale) from a running stage's.
    stage = tempfile.mkdtemp(prefix="%s%d-" % (STAGE_PREFIX, os.getpid()), dir=base)
    shm_before = shm_entries() if check_shm else None
    rd = os.environ.get("THOTH_STAGE_RUNDIRS", "")
    rundirs = RundirWatch(runtime_dirs(), stage) \
        if rd == "1" or (rd != "0" and not os.environ.get(MARK)) else None
    # As /tmp is (sticky, anyone's): tests that reach a socket as another
    # uid (test_chan_socket_policy) must pass through it; mkdtemp made 0700.
    os.chmod(stage, 0o1777)
    os.environ["TMPDIR"] = stage
    os.environ[MARK] = stage
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        print("clean_stage: PR_SET_CHILD_SUBREAPER: %s: only processes marked with the stage "
              "are checked" % os.strerror(ctypes.get_errno()), flush=True)
    # COMMAND gets the terminal's signals itself (same process group); a
    # SIGTERM to us is passed on, and the check below still runs.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    child = subprocess.Popen(argv[1:])
    signal.signal(signal.SIGTERM, lambda s, f: child.send_signal(signal.SIGTERM))
    # Wait for COMMAND, reaping the orphans handed to us as they end (as
    # init would: a zombie left standing would still answer kill(pid, 0)).
    # With runtime dirs to watch, polled between waits (WNOHANG): what
    # appears there is attributed while its writer still runs.
    rc = None
    next_poll = time.monotonic() + POLL_S
    while rc is None:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG if rundirs else 0)
        except InterruptedError:
            continue
        except ChildProcessError:
            break
        if pid == 0:
            if time.monotonic() >= next_poll:
                rundirs.poll(child.pid)
                next_poll = time.monotonic() + POLL_S
            time.sleep(0.1)
            continue
        if pid == child.pid:
            rc = os.waitstatus_to_exitcode(status)
            child.returncode = rc
    if rc is None:
        rc = 1
    if rc < 0:
        rc = 128 - rc

    failed = False
    deadline = time.monotonic() + GRACE_S
    procs = stage_processes(stage)
    while procs and time.monotonic() < deadline:
        time.sleep(0.1)
        reap_orphans()
        procs = stage_processes(stage)
    if procs:
        failed = True
        print("clean_stage: FAILED: %d process%s of this stage still ran after it:"
              % (len(procs), "" if len(procs) == 1 else "es"), flush=True)
        for pid, ours in procs.items():
            if not ours:
                print("  pid %d: %s (its cwd is in this stage's TMPDIR, but the stage did not "
                      "start it: not killed)" % (pid, cmdline(pid)), flush=True)
                continue
            print("  pid %d: %s" % (pid, cmdline(pid)), flush=True)
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError as e:
                if e.errno != errno.ESRCH:
                    print("  pid %d: kill: %s" % (pid, e.strerror), flush=True)
        time.sleep(0.2)
        reap_orphans()

    shorts = sorted(glob.glob(os.path.join(SHORT_BASE, os.path.basename(stage) + "-*")))
    if shorts:
        failed = True
        print("clean_stage: FAILED: %d short socket folder%s of this stage left in %s, removed now:"
              % (len(shorts), "" if len(shorts) == 1 else "s", SHORT_BASE), flush=True)
        for path in shorts:
            print("  left in %s: %s" % (SHORT_BASE, describe(path)), flush=True)
            shutil.rmtree(path, ignore_errors=True)

    new_shm = [] if shm_before is None else \
        sorted(n for n, ino in shm_entries().items() if shm_before.get(n) != ino)
    if new_shm:
        users = shm_users()
        left_shm = [n for n in new_shm if not users.get(os.path.join(SHM, n))]
        for n in new_shm:
            if users.get(os.path.join(SHM, n)):
                print("clean_stage: note: %s/%s appeared during the stage and is in use by pid %s "
                      "(not this stage's process): not removed"
                      % (SHM, n, ", ".join(map(str, users[os.path.join(SHM, n)]))), flush=True)
        if left_shm:
            failed = True
            print("clean_stage: FAILED: %d entr%s left in %s by this stage, removed now:"
                  % (len(left_shm), "y" if len(left_shm) == 1 else "ies", SHM), flush=True)
            for n in left_shm:
                print("  left in %s: %s" % (SHM, describe(os.path.join(SHM, n))), flush=True)
                path = os.path.join(SHM, n)
                try:
                    if os.path.isdir(path) and not os.path.islink(path):
                        shutil.rmtree(path)
                    else:
                        os.unlink(path)
                except OSError as e:
                    print("  %s/%s: %s" % (SHM, n, e.strerror), flush=True)

    if rundirs is not None and rundirs.report(child.pid):
        failed = True

    left = sorted(os.listdir(stage))
    if left:
        failed = True
        print("clean_stage: FAILED: %d entr%s left in this stage's TMPDIR (%s), removed now:"
              % (len(left), "y" if len(left) == 1 else "ies", stage), flush=True)
        for name in left:
            print("  left in TMPDIR: %s" % describe(os.path.join(stage, name)), flush=True)
    shutil.rmtree(stage, ignore_errors=True)
    if os.path.exists(stage):
        print("clean_stage: could not remove %s" % stage, flush=True)
        failed = True
    if skips_of is not None:
        if stage_skips.report(skips_of, stage_skips.strict()) != 0 and rc == 0:
            rc = 1
    if failed:
        print("clean_stage: a test must remove what it makes and stop what it starts on every "
              "path it can end on (docs/TESTING.md, \"Leftovers guard\")", flush=True)
    return rc if rc != 0 else (1 if failed else 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
