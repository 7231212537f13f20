#!/usr/bin/env python3
"""tests/cli/check_cli_docs.py SOURCE_DIR NAME=PROGRAM...

The flags and commands a user reads about against the ones the programs
have, compared as sets so that neither side can drift from the other
(the man pages lacked options --help listed, the completions offered
neither thothc's fmt and lint nor `serve --pid`, and `thothctl pm --help`
was an error):

  - thothctl: per command, the flags of `thothctl --help`'s line and of
    `thothctl CMD --help` == the flags of thothctl(1)'s entry == the flags
    the bash completion offers after CMD (and its subcommands); the same
    three agree on the commands and each command's subcommands;
  - thothd, thothc, codex, thothlock: `--help`'s flags == the man page's (thothd's
    also == the synopsis in docs/THOTHD.md "Running it"); thothc's
    subcommands and their flags == its completion's;
  - every program, the services included: `--help` exits 0 (so does
    every `thothctl CMD SUB --help`), and every long flag it prints is
    parsed by its own sources: an option-table entry `{ "name",` or a
    literal "--name" in the files of that program (for thothctl, of that
    command: codex.c for codex, main.c for status, services and resolve).

The programs are given by CMake as NAME=$<TARGET_FILE:...>, every one of
PROGRAMS below: one not given, or not there, is a failure named as such
(a check skipped for a missing binary would pass).

The global options of thothctl (--runtime-dir, --json, --help, -h,
--version) are left out of the per-command sets: every command takes them.
Prints every difference, exits 1 if there is one.
"""
import os
import re
import subprocess
import sys
import tempfile

SRC = os.path.abspath(sys.argv[1])
# name -> (the sources that parse its options, relative to SRC)
PROGRAMS = {
    "thothctl": ["tools/thothctl/main.c"],          # the global options; commands: CTL_SOURCES
    "thothd": ["kernel/thothd/main.c"],
    "thothc": ["tools/thothc/main.c"],
    "codex": ["codex/main.c"],
    "thothlock": ["tools/thothlock/main.c"],
    "echo": ["services/echo/main.c"],
    "echo-client": ["services/echo-client/main.c"],
    "pm-sim-driver": ["services/pm-drivers/sim_driver.c"],
    "pm-runtime-driver": ["services/pm-drivers/runtime_driver.c"],
    "nic-moderator": ["services/nic-moderator/main.c", "services/moderator-common/moderator_cli.h"],
    "nvme-moderator": ["services/nvme-moderator/main.c", "services/moderator-common/moderator_cli.h"],
}
# thothctl COMMAND -> the files that parse its options
CTL_SOURCES = {c: [f"tools/thothctl/{c}.c"] for c in
               ("trace", "sched", "codex", "topology", "moderation", "probe", "locks", "serve")}
CTL_SOURCES.update({c: ["tools/thothctl/main.c"] for c in ("status", "services", "resolve")})
CTL_SOURCES["pm"] = ["tools/thothctl/pm.c", "tools/thothctl/pm_sim.c"]
FLAG = re.compile(r"(?<![\w-])(--[a-z][a-z0-9-]*|-[a-zA-Z])(?![\w-])")
MAN_FLAG = re.compile(r"\*(--?[a-zA-Z][a-z0-9-]*)(?=[* ])")   # *--watch*, *--lang c*
GLOBAL = {"--runtime-dir", "--json", "--help", "-h", "--version"}
errors = []
# No --help may reach a thothd; if one tried, it finds none here.
_RT = tempfile.TemporaryDirectory(prefix="thoth-cli-docs-rt-")
os.environ["THOTH_RUNTIME_DIR"] = _RT.name


def fail(msg):
    errors.append(msg)


def run(argv, expect_ok=True):
    p = subprocess.run(argv, capture_output=True, text=True, timeout=30,
                       stdin=subprocess.DEVNULL)
    if expect_ok and p.returncode != 0:
        fail(f"`{' '.join(os.path.basename(a) if i == 0 else a for i, a in enumerate(argv))}` "
             f"exited {p.returncode}: {(p.stderr or p.stdout).strip().splitlines()[:1]}")
    return p.stdout


def flags(text):
    return set(FLAG.findall(text))


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def sources(files):
    text = ""
    for f in files:
        try:
            text += read(os.path.join(SRC, f))
        except OSError as e:
            fail(f"cannot read {f}, which parses options: {e.strerror}")
    return text


def in_code(prog, fl, files):
    """Each long flag of fl is parsed in files: `{ "name",` (a getopt_long
    table) or "--name" / "--name=..." (compared by hand)."""
    code = sources(files)
    for f in sorted(fl):
        if not f.startswith("--"):
            continue
        if not (re.search(r'\{\s*"' + re.escape(f[2:]) + r'"\s*,', code)
                or f'"{f}"' in code or f'"{f}=' in code):
            fail(f"{prog}: --help names {f}, which {' '.join(files)} never parse")


def compare(what, a_name, a, b_name, b):
    if a - b:
        fail(f"{what}: in {a_name}, not in {b_name}: {' '.join(sorted(a - b))}")
    if b - a:
        fail(f"{what}: in {b_name}, not in {a_name}: {' '.join(sorted(b - a))}")


def program(name):
    """The path CMake gave for name; None (and a failure) without one."""
    path = PROGS.get(name)
    if path is None:
        fail(f"{name}: no {name}=PATH argument (tests/cli/CMakeLists.txt passes every program)")
    elif not os.access(path, os.X_OK):
        fail(f"{name}: no program at {path}")
    else:
        return path
    return None


PROGS = {}
for arg in sys.argv[2:]:
    name, eq, path = arg.partition("=")
    if not eq or name not in PROGRAMS:
        sys.exit(f"check_cli_docs.py: '{arg}' is not NAME=PROGRAM for a NAME of {' '.join(PROGRAMS)}")
    PROGS[name] = path


def man_section(text, name):
    """The lines of one top-level (`# NAME`) section of an scdoc page."""
    m = re.search(r"^# " + name + r"\n(.*?)(?=^# |\Z)", text, re.S | re.M)
    return m.group(1) if m else ""


# ---- completion: source the script, ask bash, COMPREPLY back ----
def completions(script, func, queries):
    """queries: list of word lists (the last word is the one completed).
    Returns one set per query.  Run in an empty folder: no file names."""
    lines = [f". {script!r}"]
    for q in queries:
        words = " ".join("'" + w.replace("'", "'\\''") + "'" for w in q)
        lines.append(f"COMP_WORDS=({words}); COMP_CWORD={len(q) - 1}; COMPREPLY=(); {func}; "
                     "echo \"${COMPREPLY[*]}\"")
    with tempfile.TemporaryDirectory() as empty:
        out = subprocess.run(["bash", "-c", "\n".join(lines)], capture_output=True, text=True,
                             cwd=empty, timeout=30).stdout.split("\n")
    return [set(out[i].split()) for i in range(len(queries))]


# ---- thothctl ----
THOTHCTL = program("thothctl")
if THOTHCTL:
    top = run([THOTHCTL, "--help"])
    help_cmds = {}          # command -> (flags, subcommands) from the global usage
    block = re.search(r"^commands:\n(.*?)^options:", top, re.S | re.M)
    cur = None
    for line in (block.group(1) if block else "").splitlines():
        m = re.match(r"^  ([a-z]+)\b(.*)$", line)
        if m:
            cur = m.group(1)
            syn = re.split(r"\s{2,}", m.group(2).strip())[0]      # before the description
            fl, subs = help_cmds.setdefault(cur, (set(), set()))
            fl |= flags(syn)
            s = re.match(r"^\[?([a-z][a-z-]*)\b", syn)
            if s:
                subs.add(s.group(1))
            subs.update(re.findall(r"\| ([a-z][a-z-]*)\b", syn))
        elif cur and re.match(r"^ {3,11}\S", line):                # a wrapped synopsis
            help_cmds[cur][0].update(flags(line))
    if not help_cmds:
        fail("thothctl --help: no commands: list")

    man = read(os.path.join(SRC, "man/thothctl.1.scd"))
    man_cmds = {}
    cur = None
    for line in man_section(man, "COMMANDS").splitlines():
        if not line.strip():
            continue
        if line.startswith("\t"):
            if cur:
                man_cmds[cur][0].update(MAN_FLAG.findall(line))
            continue
        m = re.match(r"^\*([a-z]+)( ([a-z]+))?\*", line)
        if not m or m.group(1) == "thothctl":
            cur = None
            continue
        cur = m.group(1)
        fl, subs = man_cmds.setdefault(cur, (set(), set()))
        fl |= set(MAN_FLAG.findall(line))
        if m.group(3):
            subs.add(m.group(3))
        subs.update(w for w in re.findall(r"\*([a-z][a-z-]*)\*", line) if w != cur)
    compare("thothctl commands", "thothctl --help", set(help_cmds), "thothctl(1)", set(man_cmds))
    compare("thothctl global options", "thothctl --help",
            flags(top[top.find("\noptions:"):]), "thothctl(1) OPTIONS",
            set(MAN_FLAG.findall(man_section(man, "OPTIONS"))))

    comp = os.path.join(SRC, "completion/thothctl.bash")
    cmds = sorted(set(help_cmds) | set(man_cmds))
    [top_words] = completions(comp, "_thothctl", [["thothctl", ""]])
    compare("thothctl commands", "thothctl --help", set(help_cmds), "the completion",
            {w for w in top_words if not w.startswith("-")})
    subs_q = completions(comp, "_thothctl", [["thothctl", c, ""] for c in cmds])
    comp_subs = {c: {w for w in s if not w.startswith("-")} for c, s in zip(cmds, subs_q)}

    in_code("thothctl", flags(top[top.find("\noptions:"):]), PROGRAMS["thothctl"])
    for c in cmds:
        own = run([THOTHCTL, c, "--help"])
        hfl, hsubs = help_cmds.get(c, (set(), set()))
        hfl = set(hfl)
        if not own.startswith("usage: thothctl [--runtime-dir DIR] [--json] COMMAND"):
            hfl |= flags(own)                     # its own usage, not the global one
            for line in own.splitlines():
                m = re.match(r"^(?:usage:)?\s*thothctl (?:\[[^]]*\] )*" + c + r" \[?([a-z][a-z-]*)\b", line)
                if m:
                    hsubs = hsubs | {m.group(1)}
        hsubs = set(hsubs)
        for s in sorted(hsubs):                    # a subcommand's own usage (pm sim)
            sub = run([THOTHCTL, c, s, "--help"])
            if sub.startswith("usage") and sub != own:
                hfl |= flags(sub)
        mfl, msubs = man_cmds.get(c, (set(), set()))
        queries = [["thothctl", c, "-"]] + [["thothctl", c, s, "-"] for s in sorted(hsubs | msubs)]
        cfl = set().union(*completions(comp, "_thothctl", queries))
        compare(f"thothctl {c} flags", "--help", hfl - GLOBAL, "thothctl(1)", set(mfl) - GLOBAL)
        compare(f"thothctl {c} flags", "--help", hfl - GLOBAL, "the completion", cfl - GLOBAL)
        compare(f"thothctl {c} subcommands", "--help", hsubs, "thothctl(1)", set(msubs))
        compare(f"thothctl {c} subcommands", "--help", hsubs, "the completion", comp_subs[c])
        if c not in CTL_SOURCES:
            fail(f"thothctl {c}: which file parses its options? (CTL_SOURCES in {sys.argv[0]})")
        in_code(f"thothctl {c}", hfl - GLOBAL, CTL_SOURCES.get(c, []))

# ---- thothd ----
THOTHD = program("thothd")
if THOTHD:
    h = run([THOTHD, "--help"])
    man = read(os.path.join(SRC, "man/thothd.8.scd"))
    mfl = set(MAN_FLAG.findall(man_section(man, "OPTIONS")))
    compare("thothd options", "thothd --help", flags(h), "thothd(8) OPTIONS", mfl)
    extra = set(MAN_FLAG.findall(man_section(man, "SYNOPSIS"))) - flags(h)
    if extra:
        fail(f"thothd options: in thothd(8) SYNOPSIS, not in thothd --help: {' '.join(sorted(extra))}")
    doc = read(os.path.join(SRC, "docs/THOTHD.md"))
    m = re.search(r"## Running it\n+```\n(.*?)```", doc, re.S)
    compare("thothd options", "thothd --help", flags(h) - {"-h", "--version"},
            "docs/THOTHD.md \"Running it\"", flags(m.group(1) if m else "") - {"-h", "--version"})
    in_code("thothd", flags(h), PROGRAMS["thothd"])

# ---- thothc ----
THOTHC = program("thothc")
if THOTHC:
    h = run([THOTHC, "--help"])
    man = read(os.path.join(SRC, "man/thothc.1.scd"))
    compare("thothc options", "thothc --help", flags(h),
            "thothc(1)", set(MAN_FLAG.findall(man_section(man, "SYNOPSIS") + man_section(man, "OPTIONS"))))
    hsubs = {}
    for line in h.splitlines():
        m = re.match(r"^(?:usage:)?\s*thothc ([a-z]+)\b(.*)$", line)
        if m:
            hsubs[m.group(1)] = flags(m.group(2))
    msubs = set(re.findall(r"^\*thothc ([a-z]+)\*", man_section(man, "SYNOPSIS"), re.M))
    compare("thothc commands", "thothc --help", set(hsubs), "thothc(1) SYNOPSIS", msubs)
    comp = os.path.join(SRC, "completion/thothc.bash")
    names = sorted(hsubs)
    res = completions(comp, "_thothc", [["thothc", ""]] + [["thothc", s, "-"] for s in names])
    compare("thothc commands", "thothc --help", set(hsubs) | {"--help", "--version"},
            "the completion", res[0])
    for s, got in zip(names, res[1:]):
        run([THOTHC, s, "--help"])
        compare(f"thothc {s} flags", "--help", hsubs[s], "the completion", {w for w in got if w.startswith("-")})
    in_code("thothc", flags(h), PROGRAMS["thothc"])

# ---- codex ----
CODEX = program("codex")
if CODEX:
    h = run([CODEX, "--help"])
    man = read(os.path.join(SRC, "man/codex.8.scd"))
    compare("codex options", "codex --help", flags(h) | {"--help", "--version"}, "codex(8)",
            set(MAN_FLAG.findall(man_section(man, "SYNOPSIS") + man_section(man, "OPTIONS"))))

# ---- thothlock ----
LOCK = program("thothlock")
if LOCK:
    h = run([LOCK, "--help"])
    man = read(os.path.join(SRC, "man/thothlock.1.scd"))
    compare("thothlock options", "thothlock --help", flags(h) | {"--help", "--version"},
            "thothlock(1)", set(MAN_FLAG.findall(man_section(man, "SYNOPSIS") +
                                                 man_section(man, "OPTIONS"))) - {"--"})

# ---- every program but thothctl, thothd, thothc (above): --help answers, and
# what it lists is parsed ----
for name in PROGRAMS:
    if name in ("thothctl", "thothd", "thothc"):
        continue
    path = program(name) if name not in ("codex", "thothlock") else PROGS.get(name)
    if not path or not os.access(path, os.X_OK):
        continue                              # said above, or just now
    h = run([path, "--help"])
    if "usage" not in h:
        fail(f"{name} --help: no usage on stdout")
    in_code(name, flags(h), PROGRAMS[name])

for e in errors:
    print("FAIL:", e)
print("PASS" if not errors else f"{len(errors)} difference(s)")
sys.exit(1 if errors else 0)
