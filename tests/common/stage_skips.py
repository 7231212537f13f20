#!/usr/bin/env python3
"""stage_skips.py -- what a ctest stage did not run, read from its log.

  stage_skips.py BUILD_DIR        the summary of BUILD_DIR's last ctest run
  stage_skips.py --lint DIR...    every cmocka skip() under DIR prints why

ctest prints "Passed" for a cmocka test one of whose cases called skip(),
and make test's "100% tests passed" said nothing of the cases that never
ran.  After a stage, the guard (clean_stage.py --skips BUILD_DIR) prints:

  N test cases skipped, M whole tests skipped
    test_numa_channel: test_on_two_nodes_...: one NUMA node online: ...
    test_foo (whole test): SKIP: no clang -target bpf

from the JUnit file ctest writes when asked (the Makefile's stages:
--output-junit Testing/Temporary/LastStage.xml, with
--test-output-size-passed/-failed large enough to keep every test's whole
output, which ctest otherwise cuts to 1 KiB for a test that passed).
Not LastTest.log: the tests that run `ctest -N` on the build folder
(test_tracker_tests, test_timeouts_by_rule) rewrite it while the stage
runs, and it says "Test Passed." for a test ctest skipped.  A case's
reason is what it printed between cmocka's "[ RUN      ] name" and
"[  SKIPPED ] name"; a skipped test's, its lines that say "skip" in any
case ("SKIP: ...", "qemu-numa: skipped: ...", "[  SKIPPED ] every case"
from tests/common/cmocka_skips.c).

A skip whose reason matches none of ALLOWED is listed again after the
summary, under a banner: a machine with everything the tests need (root,
BPF, tun, the C.UTF-8 locale, etcd) should not have it.  It fails the
stage only with THOTH_STRICT_SKIPS=1, not by itself in CI (CI=true): some
skips are the machine's load or sandbox and no loss of the tree's (a
loaded box's "too few undisturbed rounds", an etcd that did not start in
time, a container without /dev/cpu_dma_latency), and a CI failure on one
of those would be worse than the skip (docs/TESTING.md "Honest stages
(stop 43)").
"""
import os
import re
import sys
import xml.etree.ElementTree as ET

# ctest --output-junit's file, relative to the build folder (the Makefile).
JUNIT = "Testing/Temporary/LastStage.xml"

# Reasons a skip is expected on any CI machine: a regex on the reason.
ALLOWED = [
    # scripts/qemu-numa.sh runs these in a 2-node guest (make numa-vm)
    (r"one NUMA node online", "needs 2 NUMA nodes: make numa-vm"),
    # test_numa_vm itself: opt-in (THOTH_NUMA_VM=1), ~30 s of TCG
    (r"qemu-numa: skipped: needs THOTH_NUMA_VM=1", "opt-in: make numa-vm"),
    # an ASan-only case in the plain build, and the reverse
    (r"only under AddressSanitizer|not under AddressSanitizer", "the other build runs it"),
    # a file system or page cache that serves every read: nothing to see
    (r"served from the page cache", "the file system decides"),
    (r"is not on a block device", "the CI's TMPDIR decides"),
    # 9180 let go between the check and thothd's bind: a race, not a loss
    (r"9180 was let go", "a race the test cannot win every time"),
    # an installed libthothlock is what is found then
    (r"an install is there", "the machine has an install"),
    # test_locks_hold_sample: a loaded machine disturbed every round
    (r"too few undisturbed rounds", "the machine's load decides"),
]

RUN = re.compile(r"^\[ RUN      \] (\S+)")
SKIPPED = re.compile(r"^\[  SKIPPED \] (\S+)$")
MARKER = re.compile(r"^\[[ =A-Z]{10}\]")
# a skipped test's reason: its lines that say "skip" ("SKIP: ...",
# "qemu-numa: skipped: ...", cmocka_skips.c's "[  SKIPPED ] every case")
SAYS_WHOLE = re.compile(r"skip", re.I)
EVERY_CASE = "[  SKIPPED ] every case"


def skipped_cases(out):
    """[(case, reason)] of a cmocka test's output: a case's reason is what
    it printed between its "[ RUN      ]" and "[  SKIPPED ]" lines."""
    cases, running, said = [], None, []
    for line in out.splitlines():
        m = RUN.match(line)
        if m:
            running, said = m.group(1), []
            continue
        m = SKIPPED.match(line)
        if m and m.group(1) == running:
            cases.append((running, " / ".join(s.strip() for s in said if s.strip())
                          or "(no reason printed)"))
            running = None
        elif MARKER.match(line):
            running = None
        elif running:
            said.append(line)
    return cases


def skips(build):
    """([(test, case, reason)], [(test, reason)]): the cases and the whole
    tests the last ctest run in BUILD skipped, from its JUnit file."""
    root = ET.parse(os.path.join(build, JUNIT)).getroot()
    cases, whole = [], []
    for tc in root.iter("testcase"):
        name = tc.get("name")
        out = tc.findtext("system-out") or ""
        cases += [(name, c, why) for c, why in skipped_cases(out)]
        if tc.find("skipped") is not None:
            lines = [ln.strip() for ln in out.splitlines()]
            # cmocka_skips.c's line, the cases being listed above; else
            # what the test said of skipping outside cmocka's own lines
            why = [ln for ln in lines if ln.startswith(EVERY_CASE)] or \
                [ln for ln in lines if SAYS_WHOLE.search(ln) and not MARKER.match(ln)]
            whole.append((name, " / ".join(why) or "(no reason printed)"))
    return cases, whole


def allowed(reason):
    return any(re.search(rx, reason) for rx, _ in ALLOWED)


def strict():
    """THOTH_STRICT_SKIPS=1: a skip not on the allowed list fails the stage."""
    return os.environ.get("THOTH_STRICT_SKIPS") == "1"


def report(build, strict):
    """Prints the summary; 1 when STRICT (THOTH_STRICT_SKIPS=1) and a skip
    or the summary itself is not as it should be, else 0."""
    try:
        cases, whole = skips(build)
    except OSError as e:
        print("stage_skips: %s: %s: no skip summary (ctest ran without --output-junit %s?)"
              % (e.filename, e.strerror, JUNIT), flush=True)
        return 1 if strict else 0
    except ET.ParseError as e:
        print("stage_skips: %s: %s: no skip summary" % (os.path.join(build, JUNIT), e), flush=True)
        return 1 if strict else 0
    print("== %d test case%s skipped, %d whole test%s skipped (%s) =="
          % (len(cases), "" if len(cases) == 1 else "s", len(whole), "" if len(whole) == 1 else "s",
             build), flush=True)
    for test, case, why in cases:
        print("  %s: %s: %s" % (test, case, why))
    for test, why in whole:
        print("  %s (whole test): %s" % (test, why))
    bad = [(t, c, w) for t, c, w in cases if not allowed(w)] + \
          [(t, "(whole test)", w) for t, w in whole if not allowed(w)]
    if bad:
        print("stage_skips: %s%d skip%s for a reason not on the allowed list (tests/common/stage_skips.py "
              "ALLOWED): a machine with all that the tests need should run %s:"
              % ("FAILED (THOTH_STRICT_SKIPS=1): " if strict else "!! ", len(bad),
                 "" if len(bad) == 1 else "s", "it" if len(bad) == 1 else "them"))
        for t, c, w in bad:
            print("  !! %s: %s: %s" % (t, c, w))
        if strict:
            sys.stdout.flush()
            return 1
    sys.stdout.flush()
    return 0


# A skip() is told its reason within this many lines before it.
LINT_WINDOW = 4
SAYS = re.compile(r"print_message\(|fprintf\(stderr|skip_because\(")
BARE = re.compile(r"(?<![\w.])skip\(\)")


def lint(dirs):
    """Every skip() in C under DIRS has a print_message or fprintf(stderr
    in the LINT_WINDOW lines before it: the summary's reason."""
    bad = []
    for top in dirs:
        for root, _, files in os.walk(top):
            for fn in sorted(files):
                if not fn.endswith((".c", ".h")):
                    continue
                path = os.path.join(root, fn)
                with open(path, errors="replace") as f:
                    lines = f.read().splitlines()
                for i, line in enumerate(lines):
                    code = line.split("//")[0]
                    if code.strip().startswith(("*", "/*")):
                        continue
                    if not BARE.search(code) or "define" in code:
                        continue
                    before = lines[max(0, i - LINT_WINDOW):i + 1]
                    if not any(SAYS.search(b) for b in before):
                        bad.append("%s:%d: skip() with no reason printed before it" % (path, i + 1))
    for b in bad:
        print(b)
    return 1 if bad else 0


def main(argv):
    if argv[:1] == ["--lint"] and len(argv) > 1:
        return lint(argv[1:])
    if len(argv) == 1:
        return report(argv[0], strict())
    sys.stderr.write(__doc__.strip().splitlines()[0] + "\n")
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
