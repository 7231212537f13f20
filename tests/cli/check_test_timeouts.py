#!/usr/bin/env python3
"""check_test_timeouts.py SOURCE-DIR: every test's TIMEOUT goes through
thoth_test_timeout() (CMakeLists.txt), which gives the ASan+UBSan build three
times the plain bound.  A TIMEOUT set with set_tests_properties() or
set_property(TEST ...) elsewhere kept the plain bound under ASan (stop 41's
weak point, docs/TESTING.md "Test stage (stop 42)"); allowed only inside an
if(THOTH_SANITIZE) block, where a test measured past 3x there gets more.
Prints each offender as FILE:LINE and exits 1; exits 0 when there is none.

check_test_timeouts.py SOURCE-DIR BUILD-DIR CTEST: also every test the build
folder's CTest knows has a TIMEOUT (ctest --show-only=json-v1): without one
a hung test has no guard at all (no DartConfiguration.tcl here: ctest's
10^7 s) and holds the stage until CI's job limit, naming no test."""
import json
import os
import re
import subprocess
import sys

SETTER = re.compile(r'\b(set_tests_properties|set_property)\s*\(', re.I)
OPEN = re.compile(r'^\s*(if|function|macro|foreach|while)\s*\((.*)', re.I)
CLOSE = re.compile(r'^\s*(endif|endfunction|endmacro|endforeach|endwhile)\s*\(', re.I)
ELSE = re.compile(r'^\s*(else|elseif)\s*\((.*)', re.I)


def statement(text, start):
    """The text of the call whose '(' is at or after start, to its ')'."""
    depth, i = 0, text.index("(", start)
    for j in range(i, len(text)):
        if text[j] == "(":
            depth += 1
        elif text[j] == ")":
            depth -= 1
            if depth == 0:
                return text[start:j + 1]
    return text[start:]


def sets_timeout(call):
    """Whether the set_tests_properties()/set_property() call CALL sets the
    property TIMEOUT of a test: as a property name, not a word in a quoted
    value (ENVIRONMENT "TIMEOUT=5", a PASS_REGULAR_EXPRESSION) or comment."""
    body = re.sub(r'"(?:[^"\\]|\\.)*"', ' "" ', call[call.index("(") + 1:])
    words = re.sub(r'#[^\n]*', ' ', body).replace(")", " ").split()
    if call.lower().startswith("set_tests_properties"):
        if "PROPERTIES" not in words:
            return False
        return "TIMEOUT" in words[words.index("PROPERTIES") + 1::2]
    if not words or words[0] != "TEST" or "PROPERTY" not in words:
        return False
    return words[words.index("PROPERTY") + 1:][:1] == ["TIMEOUT"]


def offenders(path):
    text = open(path, encoding="utf-8").read()
    stack, found, pos = [], [], 0
    for lineno, line in enumerate(text.splitlines(keepends=True), 1):
        code = line.split("#", 1)[0]
        m = OPEN.match(code)
        if m:
            stack.append((m.group(1).lower(), m.group(2)))
        elif CLOSE.match(code):
            if stack:
                stack.pop()
        elif ELSE.match(code) and stack and stack[-1][0] == "if":
            # else() is no longer under if(THOTH_SANITIZE); elseif() has its own test
            e = ELSE.match(code)
            stack[-1] = ("if", e.group(2) if e.group(1).lower() == "elseif" else "else)")
        s = SETTER.search(code)
        if s:
            call = statement(text, pos + s.start())
            if sets_timeout(call):
                in_rule = any(k == "function" and a.split()[0].rstrip(")") == "thoth_test_timeout"
                              for k, a in stack)
                sanitize_only = any(k == "if" and re.match(r'\s*THOTH_SANITIZE\s*\)', a)
                                    for k, a in stack)
                if not (in_rule or sanitize_only):
                    found.append(lineno)
        pos += len(line)
    return found


def without_timeout(build_dir, ctest):
    """The tests of build_dir's CTest that have no TIMEOUT."""
    out = subprocess.run([ctest, "--test-dir", build_dir, "--show-only=json-v1"],
                         capture_output=True, text=True, check=True).stdout
    tests = json.loads(out)["tests"]
    if not tests:
        sys.exit("check_test_timeouts.py: ctest lists no test in %s" % build_dir)
    return [t["name"] for t in tests
            if not any(p["name"] == "TIMEOUT" for p in t.get("properties", []))]


def main():
    if len(sys.argv) not in (2, 4):
        sys.exit("usage: check_test_timeouts.py SOURCE-DIR [BUILD-DIR CTEST]")
    root, bad = sys.argv[1], 0
    # A wrong SOURCE-DIR would scan nothing and pass.
    top = os.path.join(root, "CMakeLists.txt")
    if not os.path.isfile(top) or "function(thoth_test_timeout" not in open(top, encoding="utf-8").read():
        sys.exit("check_test_timeouts.py: %s defines no thoth_test_timeout()" % top)
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in (".git", "build") and not d.startswith("build")]
        for name in sorted(filenames):
            if name == "CMakeLists.txt" or name.endswith(".cmake"):
                path = os.path.join(dirpath, name)
                for lineno in offenders(path):
                    print("%s:%d: a TIMEOUT not set through thoth_test_timeout() "
                          "(it would keep the plain build's bound under ASan+UBSan)"
                          % (os.path.relpath(path, root), lineno))
                    bad += 1
    if len(sys.argv) == 4:
        for name in without_timeout(sys.argv[2], sys.argv[3]):
            print("%s: no TIMEOUT (thoth_test_timeout() after its add_test)" % name)
            bad += 1
    if bad:
        sys.exit(1)
    print("every test TIMEOUT goes through thoth_test_timeout()")


if __name__ == "__main__":
    main()
