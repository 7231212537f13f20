#!/usr/bin/env python3
"""tests/cli/check_cli_docs.py [--only=cli,env,json] SOURCE_DIR NAME=PROGRAM...

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
    command);
  - every environment variable THOTH* the programs' sources read (getenv,
    or a wrapper of it called with the name) is documented in a man page
    or a docs/*.md other than TRACKER.md and BENCHMARKS.md (the evidence
    logs); each is printed with where;
  - where a doc says which keys a `thothctl ... --json` object has (a
    paragraph naming `thothctl CMD [SUB] --json` and "keys:", the keys
    in backquotes after it), they are every key that command's source
    writes (`\"key\":` in the file defining its function), no more and no
    fewer; a paragraph naming such a command and showing a `{"...` object
    or three snake_case names in backquotes without "keys:" fails (a
    partial schema the check would not hold);
  - a section whose heading names a `thothctl ... --json` document and
    whose text names the file that writes it ("written by `FILE.c`":
    LOCKS.md's lock report) names every key that file writes, and no key
    it does not; such a heading with no "written by" fails.  No key
    list or no such section found at all fails too (a rewording would
    otherwise turn these checks off).

Nothing here is a table kept by hand: the programs and their sources
come from CMake (every executable target outside tests/, fuzz/, bench/,
examples/, as NAME=$<TARGET_FILE> and NAME:sources=DIR@FILE,FILE...);
a program's parsing files are its sources and the quoted headers they
include from its own CMake folder; thothctl's commands and the files
that parse each come from its dispatch table (`commands[]`, in the
source that holds it): the file defining the command's function, and
the files defining any `thothctl_cmd_fn` it hands over to (pm -> pm sim).
A command --help lists that is not in the table, a function defined in
no source, thothd/thothc/thothctl/codex/thothlock or a man page's program
not given, or a given program not there: each a failure named as such
(a check skipped for a missing binary would pass).

The global options of thothctl (--runtime-dir, --json, --help, -h,
--version) are left out of the per-command sets: every command takes them.
Prints every difference, exits 1 if there is one.
"""
import functools
import hashlib
import os
import re
import subprocess
import sys
import tempfile

SRC = None          # the tree checked (check() sets it)
FLAG = re.compile(r"(?<![\w-])(--[a-z][a-z0-9-]*|-[a-zA-Z])(?![\w-])")
MAN_FLAG = re.compile(r"\*(--?[a-zA-Z][a-z0-9-]*)(?=[* ])")   # *--watch*, *--lang c*
GLOBAL = {"--runtime-dir", "--json", "--help", "-h", "--version"}
SECTIONS = ("cli", "env", "json")
errors = []
# No --help may reach a thothd; if one tried, it finds none here.
_RT = tempfile.TemporaryDirectory(prefix="thoth-cli-docs-rt-")
os.environ["THOTH_RUNTIME_DIR"] = _RT.name
EMPTY = os.path.join(_RT.name, "empty")   # the completions' folder: no file names to offer
os.mkdir(EMPTY)


def fail(msg):
    errors.append(msg)


# What a program or a completion answered, by its exact command line (a
# completion's includes its script's digest), when MEMO is a dict: the
# drifted copies (cli_docs_drifts.py) run against the same programs in one
# process and ask each question once.  None for the tree's own run.
MEMO = None
VERBOSE = True      # print where each environment variable is documented


def cached_run(argv, **kw):
    """subprocess.run(argv, capture_output=True, text=True, **kw), answered
    from MEMO when the same command line was run before."""
    if MEMO is None:
        return subprocess.run(argv, capture_output=True, text=True, **kw)
    key = (tuple(argv), kw.get("cwd") is not None)
    if key not in MEMO:
        MEMO[key] = subprocess.run(argv, capture_output=True, text=True, **kw)
    return MEMO[key]


def run(argv, expect_ok=True):
    p = cached_run(argv, timeout=30, stdin=subprocess.DEVNULL)
    if expect_ok and p.returncode != 0:
        fail(f"`{' '.join(os.path.basename(a) if i == 0 else a for i, a in enumerate(argv))}` "
             f"exited {p.returncode}: {(p.stderr or p.stdout).strip().splitlines()[:1]}")
    return p.stdout


def flags(text):
    return set(FLAG.findall(text))


TEXTS = {}          # path -> its text, for one check() (the sources are read by every command)


def read(path):
    if path not in TEXTS:
        with open(path, encoding="utf-8") as f:
            TEXTS[path] = f.read()
    return TEXTS[path]


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


PROGS = {}          # name -> the program's path
PROG_SOURCES = {}   # name -> (its CMake folder, its sources), relative to SRC


def setup(args):
    """Reads NAME=PROGRAM and NAME:sources=DIR@FILE,... into PROGS and PROG_SOURCES."""
    PROGS.clear()
    PROG_SOURCES.clear()
    for arg in args:
        name, eq, path = arg.partition("=")
        if not eq or not re.fullmatch(r"[A-Za-z0-9_.-]+(:sources)?", name):
            raise ValueError(f"'{arg}' is not NAME=PROGRAM or NAME:sources=DIR@FILE,...")
        if name.endswith(":sources"):
            folder, at, files = path.partition("@")
            PROG_SOURCES[name[:-len(":sources")]] = (folder, [f for f in files.split(",") if f])
        else:
            PROGS[name] = path
    for name in sorted(set(PROG_SOURCES) - set(PROGS)):
        fail(f"{name}: no {name}=PATH argument (tests/cli/CMakeLists.txt passes every program)")
    for name in sorted(set(PROGS) - set(PROG_SOURCES)):
        fail(f"{name}: no {name}:sources= argument: which files parse its options?")


def check_man_pages():
    """A section 1 or 8 man page is a program's: one whose program is not
    given would not be checked."""
    for page in sorted(os.listdir(os.path.join(SRC, "man"))):
        m = re.fullmatch(r"(.+)\.[18]\.scd", page)        # programs; tidl.5 is a file format
        if m and m.group(1) not in PROGS:
            fail(f"man/{page}: no program {m.group(1)} among the targets given")


@functools.lru_cache(maxsize=None)
def folder_files(folder):
    """{file name: [its paths relative to SRC]} under FOLDER."""
    out = {}
    for dirpath, _, names in os.walk(os.path.join(SRC, folder)):
        for n in sorted(names):
            out.setdefault(n, []).append(os.path.relpath(os.path.join(dirpath, n), SRC))
    return out


@functools.lru_cache(maxsize=None)
def parse_files(name):
    """The files of program NAME that may parse its options: its sources
    (those in the tree) and the headers they include with quotes that lie
    in its own CMake folder (moderator_cli.h for the moderators)."""
    folder, files = PROG_SOURCES.get(name, ("", []))
    out = [f for f in files if not f.startswith("..") and f.endswith((".c", ".h"))]
    todo = list(out)
    while todo:
        f = todo.pop()
        try:
            text = read(os.path.join(SRC, f))
        except OSError:
            continue
        for inc in re.findall(r'^\s*#\s*include\s+"([^"]+)"', text, re.M):
            # the header beside the including file first (C's own rule for
            # "..."), else the one of that name under the folder nearest to
            # it (most leading folders in common); two equally near: which
            # one the compiler takes is not for this check to guess
            here = os.path.dirname(f)
            ok = [c for c in [os.path.normpath(os.path.join(here, inc))] +
                  folder_files(folder).get(os.path.basename(inc), [])
                  if c.startswith(folder.rstrip("/") + "/") and c.endswith(os.path.normpath(inc))
                  and os.path.isfile(os.path.join(SRC, c))]
            if not ok:
                continue
            if ok[0] != os.path.normpath(os.path.join(here, inc)):
                depth = {c: len(os.path.commonpath([here, os.path.dirname(c)]).split("/")) for c in ok}
                ok = [c for c in ok if depth[c] == max(depth.values())]
                if len(set(ok)) > 1:
                    fail(f"{name}: {f} includes \"{inc}\", which is {' and '.join(sorted(set(ok)))} "
                         "alike: which one parses its options?")
                    continue
            if ok[0] not in out:
                out.append(ok[0])
                todo.append(ok[0])
    return tuple(sorted(out))


def function_body(text, fn):
    """The text of C function FN's definition in TEXT (None: not defined)."""
    m = re.search(r"^(?:static\s+)?int\s+" + re.escape(fn) + r"\s*\([^;{]*\)\s*\{", text, re.M)
    if not m:
        return None
    end = re.compile(r"^\}", re.M).search(text, m.end())
    return text[m.start():end.end() if end else len(text)]


OWN_JSON = set()    # thothctl commands whose --json is their own (trace: --json FILE)


@functools.lru_cache(maxsize=None)
def ctl_commands():
    """thothctl's dispatch table: (the file holding it, {command: its
    function}).  Failures if there is none."""
    for f in parse_files("thothctl"):
        try:
            text = read(os.path.join(SRC, f))
        except OSError:
            continue
        m = re.search(r"\bcommands\[\]\s*=\s*\{(.*?)\n\};", text, re.S)
        if m:
            found = re.findall(r'\{\s*"([a-z][a-z-]*)"\s*,\s*(\w+)\s*,\s*(\w+)', m.group(1))
            rows = {c: fn for c, fn, _ in found}
            OWN_JSON.update(c for c, _, own in found if own == "true")
            if not rows:
                fail(f"thothctl: the command table in {f} has no rows this check can read")
            return f, rows
    fail("thothctl: no command table (`commands[] = {`) in any of its sources "
         f"({' '.join(parse_files('thothctl'))})")
    return None, {}


@functools.lru_cache(maxsize=None)
def ctl_handlers():
    """The thothctl_cmd_fn functions thothctl's sources declare."""
    handlers = set()
    for f in parse_files("thothctl"):
        try:
            handlers |= set(re.findall(r"^thothctl_cmd_fn\s+(\w+)\s*;", read(os.path.join(SRC, f)), re.M))
        except OSError:
            pass
    return frozenset(handlers)


def ctl_files(fn, seen=None):
    """The files that parse a thothctl command whose function is FN: the
    one defining FN, and those of any thothctl_cmd_fn FN hands over to.
    [] if FN is defined nowhere."""
    seen = set() if seen is None else seen
    seen.add(fn)
    srcs = parse_files("thothctl")
    handlers = ctl_handlers()
    for f in srcs:
        try:
            body = function_body(read(os.path.join(SRC, f)), fn)
        except OSError:
            continue
        if body is None:
            continue
        out = [f]
        for callee in sorted(handlers - seen):
            if re.search(r"\b" + callee + r"\s*\(", body):
                out += [g for g in ctl_files(callee, seen) if g not in out]
        return out
    return []


def man_section(text, name):
    """The lines of one top-level (`# NAME`) section of an scdoc page."""
    m = re.search(r"^# " + name + r"\n(.*?)(?=^# |\Z)", text, re.S | re.M)
    return m.group(1) if m else ""


# ---- completion: source the script, ask bash, COMPREPLY back ----
def completions(script, func, queries):
    """queries: list of word lists (the last word is the one completed).
    Returns one set per query.  Run in an empty folder: no file names."""
    lines = [f"# {hashlib.sha256(read(script).encode()).hexdigest()}", f". {script!r}"]
    for q in queries:
        words = " ".join("'" + w.replace("'", "'\\''") + "'" for w in q)
        lines.append(f"COMP_WORDS=({words}); COMP_CWORD={len(q) - 1}; COMPREPLY=(); {func}; "
                     "echo \"${COMPREPLY[*]}\"")
    out = cached_run(["bash", "-c", "\n".join(lines)], cwd=EMPTY, timeout=30).stdout.split("\n")
    return [set(out[i].split()) for i in range(len(queries))]


# ---- environment variables: each the programs read is documented ----
CODE_DIRS = ("kernel", "tools", "services", "codex", "web", "idl", "include")
ENV_NAME = r"THOTH[A-Z0-9]*_[A-Z0-9_]+"


def env_reads():
    """{variable: [files reading it]} over the programs' and libraries'
    sources: getenv("THOTH..."), and getenv(PARAM) inside a wrapper
    called with the name (preload.c's sample_env("THOTHLOCK_...")).  A
    getenv of something else that no call names is a failure."""
    found = {}
    for top in CODE_DIRS:
        for dirpath, _, names in os.walk(os.path.join(SRC, top)):
            for n in sorted(names):
                if not n.endswith((".c", ".h")):
                    continue
                path = os.path.join(dirpath, n)
                rel = os.path.relpath(path, SRC)
                text = read(path)
                for m in re.finditer(r"\b(?:secure_)?getenv\s*\(\s*([^)]*)\)", text):
                    arg = m.group(1).strip()
                    lit = re.fullmatch(r'"([^"]*)"', arg)
                    if lit:
                        names_read = [lit.group(1)]
                    else:
                        defs = [d for d in re.finditer(r"^[A-Za-z][^;\n]*?\b(\w+)\s*\([^;]*?\)\s*\{", text, re.M)
                                if d.start() < m.start()]
                        fn = defs[-1].group(1) if defs else None
                        names_read = (re.findall(r"\b" + fn + r'\s*\(\s*"([^"]*)"', text) if fn else [])
                        if not names_read:
                            line = text.count("\n", 0, m.start()) + 1
                            fail(f"{rel}:{line}: getenv({arg}): which variable? (no call of "
                                 f"{fn or 'its function'} with a name in this file)")
                    for v in names_read:
                        if re.fullmatch(ENV_NAME, v):
                            found.setdefault(v, []).append(rel)
    return found


def doc_text():
    """The user docs: {path: text}."""

    USER_DOCS = sorted(["man/" + f for f in os.listdir(os.path.join(SRC, "man")) if f.endswith(".scd")] +
                       ["docs/" + f for f in os.listdir(os.path.join(SRC, "docs"))
                        if f.endswith(".md") and f not in ("TRACKER.md", "BENCHMARKS.md")] + ["README.md"])
    DOC_TEXT = {}
    for d in USER_DOCS:
        try:
            DOC_TEXT[d] = read(os.path.join(SRC, d))
        except OSError:
            pass
    return DOC_TEXT


def check_env(DOC_TEXT):
    """Every environment variable the programs read is documented."""
    ENV = env_reads()
    if not ENV:
        fail(f"no getenv(\"THOTH...\") in {' '.join(CODE_DIRS)}: is this the source tree?")
    # (scdoc's _$THOTH_RUNTIME_DIR_ italics: the trailing _ is markup)
    DOC_NAMES = {d: {n.rstrip("_") for n in re.findall(r"\bTHOTH[A-Z0-9_]*\b", t)} for d, t in DOC_TEXT.items()}
    for v in sorted(ENV):
        where = [d for d, names in DOC_NAMES.items() if v in names]
        if where:
            if VERBOSE:
                print(f"env {v}: documented in {' '.join(where)}")
        else:
            fail(f"environment variable {v} (read in {' '.join(sorted(set(ENV[v])))}) is in no man page "
                 "nor docs/*.md (TRACKER.md and BENCHMARKS.md do not count)")



def check_cli():
    """Commands, flags, --help, man pages, completions, parsing sources."""
    check_man_pages()
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

        table_file, table = ctl_commands()
        if table_file:
            compare("thothctl commands", "thothctl --help", set(help_cmds), f"the command table of {table_file}",
                    set(table))
        in_code("thothctl", flags(top[top.find("\noptions:"):]), [table_file] if table_file else [])
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
            if table_file and c not in table:
                fail(f"thothctl {c}: not in the command table of {table_file}")
                continue
            files = ctl_files(table[c]) if c in table else []
            if c in table and not files:
                fail(f"thothctl {c}: its function {table[c]} is defined in none of "
                     f"{' '.join(parse_files('thothctl'))}")
                continue
            in_code(f"thothctl {c}", hfl - GLOBAL, files)

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
        in_code("thothd", flags(h), parse_files("thothd"))

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
        in_code("thothc", flags(h), parse_files("thothc"))

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
    for name in sorted(PROGS):
        if name in ("thothctl", "thothd", "thothc"):
            continue
        path = program(name) if name not in ("codex", "thothlock") else PROGS.get(name)
        if not path or not os.access(path, os.X_OK):
            continue                              # said above, or just now
        h = run([path, "--help"])
        if "usage" not in h:
            fail(f"{name} --help: no usage on stdout")
        in_code(name, flags(h), parse_files(name))



def check_json(DOC_TEXT):
    """The --json keys docs name are those the code writes."""
    THOTHCTL = PROGS.get("thothctl")
    table_file, table = ctl_commands()
    # ---- thothctl --json keys where a doc says what they are ----
    lists = 0               # key lists held to their code: none means rewording turned this off
    if THOTHCTL:
        for d, t in sorted(DOC_TEXT.items()):
            for para in re.split(r"\n\s*\n", t):
                m = re.search(r"`thothctl ([a-z]+)(?: ([a-z]+))? --json`", para)
                if not m and "--json" in para and ("keys:" in para or '`{"' in para):
                    # "`thothctl pm` prints ... `--json` prints one object: `{"now_ns", ...}`"
                    m = re.search(r"`thothctl ([a-z]+)(?: ([a-z]+))?[^`]*`", para)
                if not m:
                    continue
                c, sub = m.group(1), m.group(2)
                if c in OWN_JSON:
                    continue                # --json FILE: a trace file, not an object on stdout
                if "keys:" not in para:
                    if '{"' in para or len(set(re.findall(r"`([a-z]+_[a-z0-9_]+)`", para))) >= 3:
                        fail(f"{d}: `thothctl {c}{' ' + sub if sub else ''} --json`'s keys shown without "
                             "\"keys:\" before them (then every key, checked here)")
                    continue
                fn = table.get(c)
                if sub:
                    fn = f"thothctl_{c}_{sub}" if fn else None
                files = ctl_files(fn)[:1] if fn else []
                if not files:
                    fail(f"{d}: keys of `thothctl {c}{' ' + sub if sub else ''} --json`: no such command in "
                         f"{table_file}")
                    continue
                code = sources(files)
                have = set(re.findall(r'\\"([a-z_][a-z0-9_]*)\\":', code))
                said = set(re.findall(r"`([a-z_][a-z0-9_]*)`", para[para.index("keys:"):]))
                compare(f"thothctl {c}{' ' + sub if sub else ''} --json keys", files[0], have, d, said)
                lists += 1
        if not lists:
            fail("no doc lists the keys of a `thothctl ... --json` object as this check reads one (a paragraph "
                 "naming `thothctl CMD --json` and \"keys:\", as docs/PM.md's did): none checked")

    # ---- a section documenting a `thothctl --json` document as tables (LOCKS.md:
    # the lock report) and naming the file that writes it: every key that file
    # writes is named in the section, and every name the section gives as a key
    # is one.  Keys are read from backquoted spans: "name": and bare names
    # (`processes[]`, `{count, stack}`), not quoted values ("inline") or commands.
    sections = 0
    for d, t in sorted(DOC_TEXT.items()):
        for sec in re.split(r"\n(?=#+ )", t):
            head, _, body = sec.partition("\n")
            if not (head.startswith("#") and "thothctl" in head and "--json" in head):
                continue
            w = re.search(r"written by `([^`]+\.c)`", body)
            if not w:
                fail(f"{d}: \"{head.strip('# ')}\" documents a `thothctl --json` document but names no file "
                     "that writes it (\"written by `FILE.c`\"): its keys would go unchecked")
                continue
            sections += 1
            try:
                have = set(re.findall(r'\\"([a-z_][a-z0-9_]*)\\":', read(os.path.join(SRC, w.group(1)))))
            except OSError as e:
                fail(f"{d}: \"{head.strip('# ')}\" names {w.group(1)}, which cannot be read: {e.strerror}")
                continue
            said = set()
            for span in re.findall(r"`([^`]+)`", body):
                if span.startswith(("thothctl", "thothlock", "--")) or span == w.group(1):
                    continue
                said |= set(re.findall(r'"([a-z][a-z0-9_]*)"\s*:', span))
                said |= set(re.findall(r"(?<![\w.+-])([a-z][a-z0-9_]+)(?:\[\])?(?![\w(])",
                                       re.sub(r'"[^"]*"', "", span))) - {"true", "false", "null"}
            compare(f"JSON keys of \"{head.strip('# ')}\"", w.group(1), have, d, said)
    if not sections:
        fail("no doc section whose heading names a `thothctl ... --json` document (as docs/LOCKS.md's lock "
             "report's did): none checked")



def check(src, args, only=SECTIONS):
    """The checks of ONLY (a subset of SECTIONS) on the tree at SRC with
    the programs of ARGS (NAME=PROGRAM, NAME:sources=DIR@FILE,...):
    the list of differences, [] if none."""
    global SRC
    SRC = os.path.abspath(src)
    errors.clear()
    TEXTS.clear()
    OWN_JSON.clear()
    for memo in (folder_files, parse_files, ctl_commands, ctl_handlers):
        memo.cache_clear()
    setup(args)
    if "cli" in only:
        check_cli()
    if "env" in only or "json" in only:
        docs = doc_text()
        if "env" in only:
            check_env(docs)
        if "json" in only:
            check_json(docs)
    return list(errors)


def main(argv):
    only = SECTIONS
    if len(argv) > 1 and argv[1].startswith("--only="):
        only = tuple(argv[1][len("--only="):].split(","))
        if not set(only) <= set(SECTIONS):
            sys.exit(f"check_cli_docs.py: --only= takes {','.join(SECTIONS)}")
        argv = argv[:1] + argv[2:]
    if len(argv) < 2:
        sys.exit(__doc__)
    try:
        errs = check(argv[1], argv[2:], only)
    except ValueError as e:
        sys.exit(f"check_cli_docs.py: {e}")
    for e in errs:
        print("FAIL:", e)
    print("PASS" if not errs else f"{len(errs)} difference(s)")
    return 1 if errs else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
