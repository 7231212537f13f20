#!/usr/bin/env python3
"""test_locks_thothlock_live: a program run under `thothlock` is seen live.

  check_thothlock_live.py THOTHD THOTHCTL THOTHLOCK LIVE_WORKLOAD

A real thothd (`--http-port 0`) in a private runtime dir (THOTH_RUNTIME_DIR
for the programs, `--runtime-dir` for thothd and thothctl).

1. `thothlock --json -- live_workload 10`: while the workload waits,
   `thothctl --json locks` (answered by thothd, not the direct read) lists
   it once, under its pid, with live_lock's exact 10 contentions and 20
   acquisitions and its contended site `waiter`; `--pid` too.  At exit:
   thothlock says nothing on stderr, its report has the same counts and
   sites as a thothlock run whose runtime dir does not exist (the report
   is unchanged by the live marker, symbolized from the memfd-DEV-INO.maps
   as before), and the live marker is gone.  A runtime dir whose locks/
   is a file: one line on stderr, the report the same.
2. `thothlock --all -- sh -c 'live_workload 3 & live_workload 7; wait'`: sh and
   both workloads listed live once each (no pid twice, one live_lock per
   workload: 6 and 14 acquisitions, all mode's exact counts); the exit
   report has the same; no marker left.
3. Killed with -9 (no exit path): thothlock's own child is reported
   killed with its counts and its marker is gone (thothlock removes it
   before reaping it); a workload sh forked keeps its marker, which thothd
   skips as a leftover (the pid has no thothlock memfd any more): not
   listed, nothing refused, `--pid` says it publishes nothing, thothd
   still serving.  (2.'s sh ends by _exit: its marker goes the same way.)

Fails on the preload before live43: step 1 finds nothing live (thothlock
kept the marker in its private THOTHLOCK_DIR only).
"""
import json
import os
import shutil
import signal
import subprocess
import sys

sys.dont_write_bytecode = True  # importing a helper leaves no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
from checklib import fail, wait_for  # noqa: E402  fail(), wait_for(): one copy for the checks
from sockdir import sock_mkdtemp  # noqa: E402  a short folder where TMPDIR is too long


def lock_summary(doc, pid):
    """PID's live_lock: (acquisitions, contentions, contended sites)."""
    found = [l for l in doc["locks"] if l["name"] == "live_lock" and l["pid"] == pid]
    if len(found) != 1:
        fail(f"{len(found)} live_lock entries of pid {pid}, want 1: "
             f"{[(l['pid'], l['name']) for l in doc['locks']]}")
    l = found[0]
    sites = sorted({s["function"] for s in l["call_sites"] if s["contentions"]})
    return l["acquisitions"], l["contentions"], sites


def one_each(doc, what):
    """The processes' pids, each listed once (no double counting)."""
    pids = [p["pid"] for p in doc["processes"]]
    if len(pids) != len(set(pids)):
        fail(f"{what}: a process listed twice: {pids}")
    return set(pids)


def main():
    thothd, thothctl, thothlock, workload = sys.argv[1:5]
    env = dict(os.environ)
    for k in ("LD_PRELOAD", "THOTHLOCK_DIR", "THOTHLOCK_MODE", "THOTHLOCK_ACQ_SAMPLE"):
        env.pop(k, None)
    rt = sock_mkdtemp("thoth-locks-tl-")
    os.chmod(rt, 0o700)
    locks_dir = os.path.join(rt, "locks")
    wenv = dict(env, THOTH_RUNTIME_DIR=rt)
    procs = []

    def spawn(argv, **kw):
        p = subprocess.Popen(argv, **kw)
        procs.append(p)
        return p

    def ctl(*args):
        return subprocess.run([thothctl, "--runtime-dir", rt, *args], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              timeout=150)

    def live(*args):
        r = ctl("--json", "locks", *args)
        if r.returncode != 0 or "not running" in r.stderr:
            fail(f"thothctl --json locks {' '.join(args)} through thothd: exit {r.returncode}, "
                 f"{r.stderr.strip()}, listing {sorted(os.listdir(locks_dir)) if os.path.isdir(locks_dir) else 'no locks/'}")
        return json.loads(r.stdout)

    def under_thothlock(args, cmd, out):
        return spawn([thothlock, *args, "--json", "-o", out, "--", *cmd], env=wenv,
                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                     text=True)

    def ready_pid(p):
        line = p.stdout.readline()
        if not line.startswith("ready "):
            fail(f"the workload said {line!r}")
        return int(line.split()[1])

    def finish(p, what):
        out, err = p.communicate(timeout=60)     # closes its stdin: the workloads end
        if p.returncode != 0:
            fail(f"{what}: thothlock exited {p.returncode}: {err}")
        if err:
            fail(f"{what}: thothlock said on stderr: {err}")

    try:
        log = open(os.path.join(rt, "thothd.log"), "w+")
        d = spawn([thothd, "--runtime-dir", rt, "--http-port", "0"], env=env,
                  stdout=subprocess.DEVNULL, stderr=log)
        wait_for("thothd", lambda: d.poll() is None and ctl("status").returncode == 0)

        # 1. one workload under thothlock, live through thothd
        exit1 = os.path.join(rt, "exit1.json")
        t = under_thothlock([], [workload, "10"], exit1)
        pid = ready_pid(t)
        doc = live()
        if one_each(doc, "live view") != {pid}:
            fail(f"live view lists {[p['pid'] for p in doc['processes']]}, want the workload {pid} "
                 f"(thothlock is {t.pid})")
        if doc["processes"][0]["exited"]:
            fail(f"the running workload is listed as exited: {doc['processes'][0]}")
        got = lock_summary(doc, pid)
        if got != (20, 10, ["waiter"]):
            fail(f"live_lock live (acquisitions, contentions, sites) {got}, want (20, 10, ['waiter'])")
        by_pid = live("--pid", str(pid))
        if lock_summary(by_pid, pid) != got:
            fail(f"--pid {pid}: {lock_summary(by_pid, pid)}, the whole view {got}")
        print(f"ok live under thothlock: pid {pid} listed once, live_lock {got}")
        finish(t, "thothlock -- live_workload")
        rep = json.load(open(exit1))
        if one_each(rep, "exit report") != {pid} or lock_summary(rep, pid) != got:
            fail(f"exit report: {[p['pid'] for p in rep['processes']]}, {lock_summary(rep, pid)}, "
                 f"want {pid} and {got}")
        if os.listdir(locks_dir):
            fail(f"markers left after the exit: {os.listdir(locks_dir)}")

        # the same program under thothlock where no runtime dir exists
        # (nothing published live): the report's shape and counts the same
        exit0 = os.path.join(rt, "exit0.json")
        gone = os.path.join(rt, "absent")
        r = subprocess.run([thothlock, "--json", "-o", exit0, "--", workload, "10"],
                           env=dict(env, THOTH_RUNTIME_DIR=gone), stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60)
        if r.returncode != 0 or r.stderr:
            fail(f"thothlock without a runtime dir: exit {r.returncode}, {r.stderr}")
        if os.path.exists(gone):
            fail(f"thothlock made the runtime dir {gone}: it should publish only into one that exists")
        rep0 = json.load(open(exit0))
        pid0 = rep0["processes"][0]["pid"]
        if lock_summary(rep0, pid0) != got:
            fail(f"report without the live view: {lock_summary(rep0, pid0)}, with it {got}")
        keys = lambda doc: (sorted(doc), sorted(doc["processes"][0]), sorted(doc["locks"][0]))
        if keys(rep0) != keys(rep):
            fail(f"the report's keys differ: {keys(rep0)} without the live view, {keys(rep)} with it")
        print(f"ok exit report unchanged: {got}, no marker left, the same as with nothing published")

        # a runtime dir whose locks/ cannot hold the marker (a file there):
        # one line says so, the program runs and is reported as before
        bad = os.path.join(rt, "bad")
        os.mkdir(bad, 0o700)
        open(os.path.join(bad, "locks"), "w").close()
        exitb = os.path.join(rt, "exitb.json")
        r = subprocess.run([thothlock, "--json", "-o", exitb, "--", workload, "10"],
                           env=dict(env, THOTH_RUNTIME_DIR=bad), stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60)
        lines = r.stderr.splitlines()
        if r.returncode != 0 or len(lines) != 1 or "/bad/locks is not a directory" not in lines[0] or \
                "not affected" not in lines[0]:
            fail(f"thothlock with an unusable locks/: exit {r.returncode}, stderr {r.stderr!r}")
        repb = json.load(open(exitb))
        if lock_summary(repb, repb["processes"][0]["pid"]) != got:
            fail(f"report with an unusable locks/: {lock_summary(repb, repb['processes'][0]['pid'])}")
        print(f"ok an unusable locks/: one line ({lines[0]}), the report as before")

        # a runtime dir another local user could have made or reached
        # (/tmp/thoth-UID is anybody's to make first): checked as thothd
        # checks its own (a directory, not a symlink, ours, mode 700), else
        # no marker there and one line; a bare LD_PRELOAD run the same.
        # Before: the marker was renamed into (and unlinked from) whatever
        # the path led to.
        elsewhere = os.path.join(rt, "elsewhere")
        os.mkdir(elsewhere, 0o700)
        hostile = []
        hd = os.path.join(rt, "open"); os.mkdir(hd); os.chmod(hd, 0o755)
        hostile.append((hd, "has mode 755"))
        # a path longer than the 128 bytes the preload's warnings kept of
        # each part: the line ended mid-path, the problem unsaid
        hd = os.path.join(rt, "deep-" + "d" * 150); os.mkdir(hd); os.chmod(hd, 0o755)
        hostile.append((hd, "has mode 755"))
        hd = os.path.join(rt, "linked"); os.mkdir(hd, 0o700)
        os.symlink(elsewhere, os.path.join(hd, "locks"))
        hostile.append((hd, "/linked/locks is a symlink"))
        hd = os.path.join(rt, "alink")
        os.symlink(elsewhere, hd)
        hostile.append((hd, "/alink is a symlink"))
        if os.geteuid() == 0:
            hd = os.path.join(rt, "theirs"); os.mkdir(hd, 0o700); os.chown(hd, 65534, 65534)
            hostile.append((hd, "is owned by uid 65534, not by us (uid 0)"))
        else:
            print("skip: another uid's runtime dir (not root: cannot chown one)")
        lib = os.path.join(os.path.dirname(os.path.realpath(thothlock)), "libthothlock.so")
        for hd, want in hostile:
            exith = os.path.join(rt, "exith.json")
            for how, cmd, e in (("thothlock", [thothlock, "--json", "-o", exith, "--", workload, "3"], {}),
                                ("bare LD_PRELOAD", [workload, "3"], {"LD_PRELOAD": lib})):
                r = subprocess.run(cmd, env=dict(env, THOTH_RUNTIME_DIR=hd, **e), stdin=subprocess.DEVNULL,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60)
                lines = [l for l in r.stderr.splitlines() if "libthothlock" in l]
                if r.returncode != 0 or len(lines) != 1 or want not in lines[0] or \
                        "no live marker" not in lines[0]:
                    fail(f"{how} with runtime dir {hd}: exit {r.returncode}, stderr {r.stderr!r}, "
                         f"want one line saying {want!r}")
                if os.listdir(elsewhere):
                    fail(f"{how} with runtime dir {hd}: a marker made where it leads: {os.listdir(elsewhere)}")
            reph = json.load(open(exith))
            if lock_summary(reph, reph["processes"][0]["pid"]) != (6, 3, ["waiter"]):
                fail(f"report with runtime dir {hd}: {lock_summary(reph, reph['processes'][0]['pid'])}")
            print(f"ok runtime dir {os.path.basename(hd)}: one line ({lines[0]}), no marker, the report as before")

        # thothlock started with SIGCHLD ignored (exec keeps SIG_IGN): the
        # kernel reaped PROGRAM itself, thothlock said "waitpid: No child
        # processes", reported exit 0 for PROGRAM's 3 and left the marker
        # of sh (which ends by _exit).  PROGRAM still gets SIGCHLD ignored.
        ignored = dict(env=wenv, preexec_fn=lambda: signal.signal(signal.SIGCHLD, signal.SIG_IGN),
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, timeout=60)
        r = subprocess.run([thothlock, "-o", os.devnull, "--", "sh", "-c", "exit 3"], **ignored)
        if r.returncode != 3 or r.stderr or os.listdir(locks_dir):
            fail(f"thothlock with SIGCHLD ignored: exit {r.returncode} (want 3), stderr {r.stderr!r}, "
                 f"markers {os.listdir(locks_dir)}")
        r = subprocess.run([thothlock, "-o", os.devnull, "--", "grep", "SigIgn", "/proc/self/status"], **ignored)
        ign = int(r.stdout.split()[-1], 16) if r.stdout.startswith("SigIgn:") else 0
        if r.returncode != 0 or not ign & (1 << (signal.SIGCHLD - 1)):
            fail(f"PROGRAM under thothlock with SIGCHLD ignored: {r.stdout!r} {r.stderr!r}, SIGCHLD not ignored")
        print("ok SIGCHLD ignored by thothlock's parent: PROGRAM's exit 3, no marker left, PROGRAM's SIGCHLD as given")

        # a shell script's pipeline, subshell and $(...): dash's forked
        # children end by _exit, past their exit path; thothlock removes
        # the markers of the processes that handed it a table and are gone
        # (they stayed in locks/ for good, one per fork)
        r = subprocess.run([thothlock, "-o", os.devnull, "--", "sh", "-c",
                            'echo a | cat; (true); x=$(echo b); echo "$x"'], env=wenv,
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, timeout=60)
        if r.returncode != 0 or r.stdout != "a\nb\n" or r.stderr or os.listdir(locks_dir):
            fail(f"a script's forks under thothlock: exit {r.returncode}, {r.stdout!r}, {r.stderr!r}, "
                 f"markers left {os.listdir(locks_dir)}")
        print("ok a script's pipeline, subshell and $(...): no marker left")

        # 2. thothlock --all: a shell and its two children, each listed once
        exit2 = os.path.join(rt, "exit2.json")
        # (an asynchronous command's stdin is /dev/null before its own
        # redirections: the first workload gets the pipe through fd 9)
        t = under_thothlock(["--all"], ["sh", "-c", f'exec 9<&0; "{workload}" 3 <&9 9<&- & '
                                        f'"{workload}" 7 9<&-; wait'], exit2)
        kids = {ready_pid(t), ready_pid(t)}
        # the shell's table is made at its start: the workloads came after
        doc = live()
        pids = one_each(doc, "live view (--all)")
        shells = pids - kids
        if not kids <= pids or len(shells) != 1:
            fail(f"live view (--all) lists {sorted(pids)}, want the workloads {sorted(kids)} and sh")
        counts = sorted(lock_summary(doc, k)[:2] for k in kids)
        if counts != [(6, 3), (14, 7)]:
            fail(f"live (--all) live_lock (acquisitions, contentions) {counts}, want (6, 3), (14, 7)")
        if any(p["mode"] != "all" for p in doc["processes"]):
            fail(f"not all mode: {[p['mode'] for p in doc['processes']]}")
        print(f"ok live under thothlock --all: sh and two workloads once each, live_lock {counts}")
        finish(t, "thothlock --all -- sh")
        rep = json.load(open(exit2))
        if one_each(rep, "exit report (--all)") != pids or \
                sorted(lock_summary(rep, k)[:2] for k in kids) != counts:
            fail(f"exit report (--all): {[p['pid'] for p in rep['processes']]}, want {sorted(pids)} "
                 f"with {counts}")
        if os.listdir(locks_dir):
            fail(f"markers left after --all's exit: {os.listdir(locks_dir)}")
        print("ok exit report (--all) the same; no marker left")

        # 3. killed by -9.  thothlock's own child: its marker removed by
        # thothlock before it reaps it.  A process it forked: its parent
        # reaps it, its marker stays while thothlock runs, and thothd skips
        # it (the pid holds no thothlock memfd any more); thothlock removes
        # it at its end (the pid handed a table over and is gone).
        exit3 = os.path.join(rt, "exit3.json")
        t = under_thothlock([], [workload, "4"], exit3)
        pid = ready_pid(t)
        os.kill(pid, signal.SIGKILL)
        _, err = t.communicate(timeout=60)
        if t.returncode != 128 + signal.SIGKILL:
            fail(f"thothlock of a killed workload exited {t.returncode}: {err}")
        rep = json.load(open(exit3))
        if rep["processes"][0]["state"] != "killed" or lock_summary(rep, pid)[:2] != (8, 4):
            fail(f"killed workload's report: {rep['processes'][0]}, {lock_summary(rep, pid)}")
        if os.listdir(locks_dir):
            fail(f"after thothlock's child was killed -9 locks/ holds {os.listdir(locks_dir)}")
        print("ok thothlock's child killed -9: reported killed (8, 4), its marker removed")

        exit4 = os.path.join(rt, "exit4.json")
        t = under_thothlock([], ["sh", "-c", f'"{workload}" 4; echo after; read x; exit 0'], exit4)
        pid = ready_pid(t)
        os.kill(pid, signal.SIGKILL)
        if t.stdout.readline() != "after\n":
            fail("sh did not go on after its workload was killed")
        if f"{pid}.table" not in os.listdir(locks_dir):
            fail(f"after a forked workload was killed -9 locks/ holds {os.listdir(locks_dir)}, "
                 f"want its marker {pid}.table")
        r = ctl("--json", "locks")
        listed = [p["pid"] for p in json.loads(r.stdout)["processes"]] if r.returncode == 0 else []
        if r.returncode != 0 or pid in listed or "refus" in r.stderr + r.stdout:
            fail(f"the killed process's marker: exit {r.returncode}, listed {listed}, {r.stderr}")
        r = ctl("--json", "locks", "--pid", str(pid))
        if r.returncode == 0 or str(pid) not in r.stderr:
            fail(f"--pid {pid} of the killed process: exit {r.returncode}, {r.stdout[:300]} {r.stderr}")
        if ctl("status").returncode != 0 or d.poll() is not None:
            fail("thothd stopped serving after the leftover marker")
        print(f"ok forked workload killed -9: its marker left and skipped by thothd "
              f"(thothctl exit {r.returncode}: {r.stderr.strip()})")
        out, err = t.communicate(timeout=60)
        said = [l for l in err.splitlines() if l.strip() != "Killed"]     # sh's word for it
        if t.returncode != 0 or out or said:
            fail(f"thothlock -- sh (its workload killed): exit {t.returncode}, {out!r}, {err}")
        if os.listdir(locks_dir):
            fail(f"thothlock's end left markers: {os.listdir(locks_dir)} (the killed workload's {pid})")
        print("ok ... and removed at thothlock's end")
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                if p.stdin:
                    p.stdin.close()
                p.terminate()
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        shutil.rmtree(rt, ignore_errors=True)
    print("PASS")


if __name__ == "__main__":
    main()
