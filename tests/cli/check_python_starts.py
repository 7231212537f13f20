#!/usr/bin/env python3
"""check_python_starts.py SOURCE-DIR: no test starts python3 through PATH.

On a machine whose PATH finds a version manager's shim first (pyenv: a
shell script that runs pyenv, which runs python) every such start costs
1.5-3.5 s instead of ~0.05 s, and `make test` starts hundreds.  A test
starts the python3 CMake found (THOTH_PYTHON3_EXE; THOTH_PYTHON3 in a
test's environment, TT_PYTHON3 in tests/common/thoth_test.sh), and a
Python script that starts Python uses sys.executable (docs/TESTING.md
"Test stage (stop 46)").  Flags, outside comments:

  - in a shell script under tests/ or scripts/ (run-cluster.sh is
    test_run_cluster's): `python3 -c ...`, `python3 "$X"`,
    `python3 file.py` (python3 as a command, not a variable's fallback
    such as ${THOTH_PYTHON3:-python3}), and python3 reading its
    program from stdin (`python3 - <<EOF`, `python3 <<EOF`, `| python3`);
    also in a .bash file;
  - in a .py file under tests/ or scripts/: "python3" as a string (an
    argv's first word, `"python3 -c ..."` for a shell);
  - a .py file run as a command (its `#!/usr/bin/env python3` line looks
    python3 up on PATH): in a shell script, or as an add_test COMMAND;
  - `env python3` (also `env VAR=x python3`) or a bare `python3` in a
    CMake file under tests/ or in the Makefile (its stage guards).

Prints each as FILE:LINE: TEXT and exits 1 if there is any.
"""
import os
import re
import sys

# python3 as a command word: followed by an option, a quoted or $ argument
# or a .py path.  Not after a word character, $, {, -, / or . (a variable's
# fallback ${X:-python3}, /usr/bin/python3, a file name python3.x).
SH_BARE = re.compile(r"""(?<![\w${/.-])python3\s+(-[A-Za-z]|["'$]|[\w./{}-]+\.py\b)""")
# ... or reading its program from stdin: `python3 - <<EOF`, `python3 <<EOF`,
# `... | python3`, python3 last on the line or before ; & | ).  Not after
# `command -v`, `which` or `type` (a look-up, no start).
SH_STDIN = re.compile(r"""(?<![\w${/.-])python3(\s+-(\s|$)|\s*<|\s*$|\s*[;&|)])""")
LOOKUP = re.compile(r"""(\bcommand\s+-[vV]|\bwhich|\btype|\bhash)\s+$""")
# A .py file in command position: at the line's start, after ; & | ( `exec`,
# `--` (the command of a wrapper such as thothlock or timeout) or `$(`.
SH_DIRECT = re.compile(r"""(^|[;&|(]\s*|\bexec\s+|\s--\s+)["']?[\w${}/.-]*\.py["']?(\s|$)""")
CMAKE_BARE = re.compile(r"""(\benv\s+([\w]+=\S*\s+)*python3\b|COMMAND\s+python3\b|COMMAND\s+["']?[\w${}/.-]*\.py\b)""")
MAKE_BARE = re.compile(r"""(\benv\s+python3\b|(?<![\w${/.-])python3(\s+[\w./-]+\.py\b|\s*$))""")


def sh_start(line):
    if SH_BARE.search(line) or SH_DIRECT.search(line):
        return True
    return any(not LOOKUP.search(line[:m.start()]) for m in SH_STDIN.finditer(line))


# A Python script under tests/ or scripts/ that starts "python3" by name
# (a subprocess argv or a shell string) rather than sys.executable.
PY_BARE = re.compile(r"""["'](/usr/bin/env\s+)?python3(["']|\s+-[A-Za-z]|\s+[\w./{}-]+\.py\b)""")


def code_lines(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        for n, line in enumerate(f, 1):
            if line.lstrip().startswith("#"):
                continue
            yield n, line.rstrip("\n")


# Lines that name python3 but are no test's own start: the etcd listing
# run-cluster.sh prints for the user (test_run_cluster runs it as printed,
# as a user would paste it: two starts a stage, left as they are).
PRINTED = [("scripts/run-cluster.sh", "print(base64.b64decode(k[\"key\"])")]


def printed(rel, line):
    return any(rel == f and text in line for f, text in PRINTED)


def scan(top):
    found = []
    for root, dirs, files in [w for d in ("tests", "scripts") for w in os.walk(os.path.join(top, d))]:
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(root, name)
            rel = os.path.relpath(path, top)
            if name.endswith((".sh", ".bash")):
                for n, line in code_lines(path):
                    if sh_start(line) and not printed(rel, line):
                        found.append("%s:%d: %s" % (rel, n, line.strip()))
            elif name.endswith(".py") and name != "check_python_starts.py":
                for n, line in code_lines(path):
                    if PY_BARE.search(line):
                        found.append("%s:%d: %s" % (rel, n, line.strip()))
            elif name == "CMakeLists.txt" or name.endswith(".cmake"):
                for n, line in code_lines(path):
                    if CMAKE_BARE.search(line):
                        found.append("%s:%d: %s" % (rel, n, line.strip()))
    makefile = os.path.join(top, "Makefile")
    if os.path.exists(makefile):
        for n, line in code_lines(makefile):
            if MAKE_BARE.search(line):
                found.append("Makefile:%d: %s" % (n, line.strip()))
    return found


def main(argv):
    if len(argv) != 2:
        sys.exit("usage: check_python_starts.py SOURCE-DIR")
    found = scan(argv[1])
    for f in found:
        print("python3 through PATH (a shim there costs seconds a start): " + f)
    if found:
        print("check_python_starts.py: %d start%s of python3 through PATH; use THOTH_PYTHON3 / TT_PYTHON3 / "
              "sys.executable (docs/TESTING.md \"Test stage (stop 46)\")" % (len(found), "" if len(found) == 1 else "s"))
        return 1
    print("check_python_starts.py: no test starts python3 through PATH")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
