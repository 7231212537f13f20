#!/usr/bin/env python3
"""tests/cli/check_tracker_tests.py SOURCE_DIR [BUILD_DIR] [DOC.md...]

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

SRC = os.path.abspath(sys.argv[1])
BUILD = sys.argv[2] if len(sys.argv) > 2 and sys.argv[2] else None
DOCS = sys.argv[3:] or [os.path.join(SRC, "README.md")] + sorted(
    os.path.join(SRC, "docs", f) for f in os.listdir(os.path.join(SRC, "docs")) if f.endswith(".md"))

known = set()
if BUILD:
    out = subprocess.run(["ctest", "--test-dir", BUILD, "-N"], capture_output=True, text=True,
                         timeout=60).stdout
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
