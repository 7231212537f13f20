#!/usr/bin/env python3
"""tests/cli/cli_docs_drifts.py SOURCE_DIR NAME=PROGRAM...

The tree passes check_cli_docs.py, and the check must catch a drift: on one copy of the tree, each
mutation below (a sed expression on a file, or a file added) is made,
the check run on the copy in this same process (only the sections the
mutation can affect), the file put back.  Each run has to fail naming
what went wrong (a checker that passes everything would pass the real
tree too), and each mutation has to change something (a mutation that
matches nothing would pass unseen).  The programs' answers are asked once
for all runs (check_cli_docs.MEMO).  Prints one line per drift caught;
exits 1 at the first one that is not.
"""
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import check_cli_docs as ccd  # noqa: E402

# (file, sed expression, the failure expected, the sections it can affect)
SED = [
    ("man/thothctl.1.scd", r"s/ \[\*--min-version\* _V_\]//",
     "thothctl resolve flags: in --help, not in thothctl(1): --min-version", "cli"),
    ("man/thothd.8.scd", r"/^\*--etcd-ttl\* _S_$/d",
     "in thothd --help, not in thothd(8) OPTIONS: --etcd-ttl", "cli"),
    ("man/codex.8.scd", "s/--group-window-us/--group-window/g",
     "codex options: in codex --help, not in codex(8): --group-window-us", "cli"),
    ("man/thothlock.1.scd", "s/--hold-sample/--hold-samples/g",
     "thothlock options: in thothlock --help, not in thothlock(1): --hold-sample", "cli"),
    ("completion/thothc.bash", "s/gen check fmt lint --help/gen check fmt --help/",
     "in thothc --help, not in the completion: lint", "cli"),
    ("completion/thothctl.bash", "s/--pid --json --runtime-dir --help/--json --runtime-dir --help/",
     "thothctl serve flags: in --help, not in the completion: --pid", "cli"),
    ("docs/THOTHD.md", r"s/ \[--ready-fd FD\]//",
     "not in docs/THOTHD.md \"Running it\": --ready-fd", "cli"),
    # An option-table entry gone from the command's own file: "sync" and
    # "watch" are still strings elsewhere in thothctl's sources (a journal's
    # flush reason, a call's name), which the check must not take for the parser.
    ("tools/thothctl/codex.c", '/{ "sync", no_argument/d',
     "thothctl codex: --help names --sync, which tools/thothctl/codex.c never parse", "cli"),
    ("tools/thothctl/main.c", '/{ "watch", no_argument/d',
     "thothctl status: --help names --watch, which tools/thothctl/main.c never parse", "cli"),
    # Nothing is kept by hand: thothctl's commands come from its dispatch
    # table, each command's parsing files from the function the table names
    # (and the thothctl_cmd_fn it hands over to), a program's from its CMake
    # sources and the headers they include from its folder.  A command the
    # table lacks, or whose function is defined nowhere, fails by name; so
    # does a flag parsed only in a file the derivation must find (pm sim's
    # pm_sim.c, the moderators' moderator_cli.h).
    ("tools/thothctl/main.c", '/{ "serve", thothctl_serve, false },/d',
     "thothctl serve: not in the command table of tools/thothctl/main.c", "cli"),
    ("tools/thothctl/serve.c", "s/^int thothctl_serve(/int thothctl_serve_moved(/",
     "thothctl serve: its function thothctl_serve is defined in none of", "cli"),
    ("tools/thothctl/pm_sim.c", '/{ "export-list", required_argument/d',
     "thothctl pm: --help names --export-list, which tools/thothctl/pm.c tools/thothctl/pm_sim.c never parse",
     "cli"),
    ("services/moderator-common/moderator_cli.h",
     's/{ "sample-ms", required_argument/{ "sample-msx", required_argument/',
     "nic-moderator: --help names --sample-ms, which services/moderator-common/moderator_cli.h "
     "services/nic-moderator/main.c never parse", "cli"),
    # Environment variables: one read and documented nowhere (a literal, or a
    # wrapper's argument: preload.c's sample_env), and a getenv of a name no
    # call says.
    ("codex/main.c", "0,/^#include/s//const char *codex_ghost(void);\\nconst char *codex_ghost(void) "
     "{ return getenv(\"THOTH_GHOST_VAR\"); }\\n#include/",
     "environment variable THOTH_GHOST_VAR (read in codex/main.c) is in no man page nor docs", "env"),
    (("docs/LOCKS.md", "man/thothlock.1.scd"), "s/THOTHLOCK_ACQ_SAMPLE/THOTHLOCK_ACQ_SAMPLING/g",
     "environment variable THOTHLOCK_ACQ_SAMPLE (read in kernel/observability/locks/preload.c)", "env"),
    ("codex/main.c", "0,/^#include/s//const char *codex_env(const char *n);\\nconst char *codex_env("
     "const char *n) { return getenv(n); }\\n#include/",
     "getenv(n): which variable? (no call of codex_env with a name in this file)", "env"),
    # thothctl pm --json's keys, which docs/PM.md lists: one left out, one
    # that is not written, and the list no longer marked as one; the list
    # still held when its sentence names the command and --json apart.
    ("docs/PM.md", "s/`share_refusals`, //",
     "thothctl pm --json keys: in tools/thothctl/pm.c, not in docs/PM.md: share_refusals", "json"),
    ("docs/PM.md", "s/`lease_limit`,/`lease_limit`, `lease_ceiling`,/",
     "thothctl pm --json keys: in docs/PM.md, not in tools/thothctl/pm.c: lease_ceiling", "json"),
    ("docs/PM.md", "s/); its keys:/); it has/",
     "docs/PM.md: `thothctl pm --json`'s keys shown without \"keys:\"", "json"),
    ("docs/PM.md", "s/^`thothctl pm --json` prints one object/`thothctl pm` with `--json` prints one object/; "
     "s/`share_refusals`, //",
     "thothctl pm --json keys: in tools/thothctl/pm.c, not in docs/PM.md: share_refusals", "json"),
    # The lock report's JSON tables in docs/LOCKS.md (`thothctl --json
    # locks`), held to the file the section names as writing it: a key left
    # out (the two sampling counts were), and one the file never writes.
    ("docs/LOCKS.md", "s/`acq_sampling_threads` and `miss_sampling_threads` (how many/(how many/",
     "in kernel/observability/locks/lockprof_report.c, not in docs/LOCKS.md: "
     "acq_sampling_threads miss_sampling_threads", "json"),
    ("docs/LOCKS.md", "s/`cond_waits`, /`cond_waits`, `cond_timeouts`, /",
     "in docs/LOCKS.md, not in kernel/observability/locks/lockprof_report.c: cond_timeouts", "json"),
    # Rewording must not turn these checks off: PM.md's paragraph no longer
    # naming `thothctl pm --json` leaves no key list checked, and LOCKS.md's
    # section no longer saying which file writes the report leaves its
    # heading's document unchecked.
    ("docs/PM.md", "s/^`thothctl pm --json` prints one object on one line/pm's JSON is one object on one line/",
     "no doc lists the keys of a `thothctl ... --json` object", "json"),
    ("docs/LOCKS.md", "s/^One object, written by `/One object, made by `/",
     "documents a `thothctl --json` document but names no file that writes it", "json"),
]


def fail(msg):
    print("FAIL:", msg)
    sys.exit(1)


def expect_fail(what, expected, src, args, only):
    errs = ccd.check(src, args, only)
    if not errs:
        fail(f"checker passed {what}")
    hit = [e for e in errs if expected in e]
    if not hit:
        fail(f"checker on {what} did not name '{expected}': " + "; ".join(errs))
    print(f"ok: {what} caught: {hit[0]}")


def main(argv):
    src, args = os.path.abspath(argv[1]), argv[2:]
    # The tree itself first (the programs' answers asked afresh: MEMO starts
    # empty), then the copies, which the same answers serve.
    ccd.MEMO = {}
    errs = ccd.check(src, args)
    for e in errs:
        print("FAIL:", e)
    if errs:
        fail(f"the tree's docs and programs disagree: {len(errs)} difference(s) (above)")
    print("the tree: PASS")
    ccd.VERBOSE = False
    tmp = tempfile.mkdtemp(prefix="thoth-cli-docs-")
    try:
        # A copy of what the checker reads: the docs, the man pages, the
        # completions and every source the programs are built from.
        copy = os.path.join(tmp, "src")
        os.mkdir(copy)
        for d in ("man", "completion", "docs") + ccd.CODE_DIRS:
            shutil.copytree(os.path.join(src, d), os.path.join(copy, d))
        shutil.copy(os.path.join(src, "README.md"), copy)
        if ccd.check(copy, args):
            fail("the copy of the tree does not pass as the tree did: " + "; ".join(ccd.errors))
        for files, expr, expected, only in SED:
            files = (files,) if isinstance(files, str) else files
            paths = [os.path.join(copy, f) for f in files]
            before = []
            for p in paths:
                with open(p, "rb") as f:
                    before.append(f.read())
            subprocess.run(["sed", "-i", expr] + paths, check=True)
            for p, b in zip(paths, before):
                with open(p, "rb") as f:
                    if f.read() == b:
                        fail(f"mutation '{expr}' changed nothing in {os.path.relpath(p, copy)}: update this test")
            expect_fail(f"drift in {' '.join(files)} ('{expr}')", expected, copy, args, (only,))
            for p, b in zip(paths, before):
                with open(p, "wb") as f:
                    f.write(b)

        # A man page whose program no target builds.
        ghost = os.path.join(copy, "man/ghost.1.scd")
        shutil.copy(os.path.join(copy, "man/thothlock.1.scd"), ghost)
        expect_fail("a man page of no program", "man/ghost.1.scd: no program ghost among the targets given",
                    copy, args, ("cli",))
        os.unlink(ghost)

        # A header of the same name as the one a program includes, as near to
        # it as the real one: not taken at random (os.walk's order was).
        decoy = os.path.join(copy, "services/aa-decoy/moderator_cli.h")
        os.mkdir(os.path.dirname(decoy))
        with open(decoy, "w", encoding="utf-8") as f:
            f.write("/* not the moderators' */\n")
        expect_fail("two headers named moderator_cli.h", "services/nic-moderator/main.c includes \"moderator_cli.h\", "
                    "which is services/aa-decoy/moderator_cli.h and services/moderator-common/moderator_cli.h alike",
                    copy, args, ("cli",))
        shutil.rmtree(os.path.dirname(decoy))

        # A program not built, or not given: named, not skipped.
        no_codex = os.path.join(tmp, "no-such-codex")
        missing = [f"codex={no_codex}" if a.startswith("codex=") else a
                   for a in args if not a.startswith("thothlock=")]
        expect_fail("a missing codex", f"codex: no program at {no_codex}", src, missing, ("cli",))
        expect_fail("no thothlock given", "thothlock: no thothlock=PATH argument", src, missing, ("cli",))

        # A `thothctl CMD SUB --help` that fails: a thothctl answering probe
        # detach's --help with exit 2 (as it did) must fail the check.
        wrapped = []
        for a in args:
            if a.startswith("thothctl="):
                w = os.path.join(tmp, "thothctl")
                with open(w, "w", encoding="utf-8") as f:
                    f.write('#!/bin/sh\n[ "$*" = "probe detach --help" ] && '
                            '{ echo "usage: thothctl probe detach ID"; exit 2; }\n'
                            f"exec '{a[len('thothctl='):]}' \"$@\"\n")
                os.chmod(w, 0o755)
                a = f"thothctl={w}"
            wrapped.append(a)
        expect_fail("a failing probe detach --help", "`thothctl probe detach --help` exited 2",
                    src, wrapped, ("cli",))
    finally:
        shutil.rmtree(tmp)
    print("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
