#!/usr/bin/env python3
"""tests/cli/check_tracker_tests.py [--ctest=CTEST] SOURCE_DIR [BUILD_DIR] [DOC.md...]

Every `test_*` name docs/TRACKER.md gives as evidence (and README.md and
every other docs/*.md: by default all of them) exists in the tree:
a CTest test (of BUILD_DIR's `ctest -N`, or named by an add_test /
thoth_add_test in a CMakeLists.txt or .cmake file), a test function
defined in C, shell or Python under tests/, bench/, fuzz/ or examples/,
or a test file of that name.  `test_chan_*` stands for every name with
that prefix.  A row citing a test that was renamed or never written is a
status nobody can check.  Prints each missing name, exits 1 if any.
"""
import os
import re
import subprocess
import sys

# The ctest of the CMake that configured BUILD_DIR (${CMAKE_CTEST_COMMAND}):
# whichever ctest is first on PATH may be another version, or none.
CTEST = next((a[len("--ctest="):] for a in sys.argv[1:] if a.startswith("--ctest=")), None)
ARGS = [a for a in sys.argv[1:] if not a.startswith("--ctest=")]
SRC = os.path.abspath(ARGS[0])
BUILD = ARGS[1] if len(ARGS) > 1 and ARGS[1] else None
if BUILD and not CTEST:
    sys.exit("check_tracker_tests.py: BUILD_DIR needs --ctest=CTEST (CMake's ${CMAKE_CTEST_COMMAND})")
DOCS = ARGS[2:] or [os.path.join(SRC, "README.md")] + sorted(
    os.path.join(SRC, "docs", f) for f in os.listdir(os.path.join(SRC, "docs")) if f.endswith(".md"))

known = set()
if BUILD:
    try:
        p = subprocess.run([CTEST, "--test-dir", BUILD, "-N"], capture_output=True, text=True,
                           timeout=60)
    except OSError as e:
        sys.exit(f"check_tracker_tests.py: cannot run {CTEST}: {e.strerror}")
    if p.returncode != 0:
        sys.exit(f"check_tracker_tests.py: `{CTEST} --test-dir {BUILD} -N` exited {p.returncode}")
    out = p.stdout
    known |= set(re.findall(r"Test +#\d+: (\S+)", out))
FUNC = re.compile(r"^[A-Za-z_].*[\s*](test_\w+)\s*\(|^(test_\w+)\s*\(\)|^\s*def (test_\w+)\(", re.M)
for top in ("tests", "bench", "fuzz", "examples", "cmake", "."):
    base = os.path.join(SRC, top)
    for root, dirs, files in os.walk(base):
        if top == ".":
            dirs[:] = []                      # the top-level CMakeLists.txt only
        dirs[:] = [d for d in dirs if not d.startswith(("build", "."))]
        for f in files:
            path = os.path.join(root, f)
            stem, ext = os.path.splitext(f)
            if stem.startswith("test_"):
                known.add(stem)
            if f == "CMakeLists.txt" or ext == ".cmake":
                text = open(path, encoding="utf-8", errors="replace").read()
                known |= set(re.findall(r"add_test\(\s*NAME\s+(\w+)", text))
                known |= set(re.findall(r"thoth_add_test\(\s*(\w+)", text))
            elif ext in (".c", ".h", ".sh", ".py") and top != "cmake":
                text = open(path, encoding="utf-8", errors="replace").read()
                for m in FUNC.finditer(text):
                    known.add(next(g for g in m.groups() if g))

missing = []
for doc in DOCS:
    text = open(doc, encoding="utf-8").read()
    for name, star in sorted(set(re.findall(r"(?<!\w)(test_\w+)(\*?)", text))):
        if star:
            ok = any(k.startswith(name) for k in known)
        else:
            ok = name in known
        if not ok:
            missing.append(f"{os.path.relpath(doc, SRC)} names {name}{star}")
for m in missing:
    print(f"FAIL: {m}: no such test, test function or file")
print("PASS" if not missing else f"{len(missing)} missing")
sys.exit(1 if missing else 0)
