#!/usr/bin/env bash
# test_tutorial.sh SOURCE_DIR BUILD_DIR - docs/TUTORIAL.md, followed to the
# letter: the files it shows are the files of examples/tutorial/, and every
# ```sh block of it runs, in order, in one shell, out of tree against an
# installed ThothOS.  The one stand-in: step 1's `make install
# PREFIX=$HOME/thoth` (an optimised rebuild) is `cmake --install` of this
# build into the same prefix, the same install rules.  HOME is a fresh temp
# dir; the commands' background jobs (thothd, the service) are stopped by
# their shell whatever happens, and the whole run is bounded.
set -euo pipefail
SRC=$1 BUILD=$2
T=$(mktemp -d /tmp/thoth-tutorial-XXXXXX)
THOTHD2= SERVICE2=
# The checks below start their own thothd and service: killed whatever happens.
tutorial_cleanup() {
  for p in $SERVICE2 $THOTHD2; do kill -KILL "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -rf "$T"
}
trap tutorial_cleanup EXIT
export HOME=$T TMPDIR=$T
unset THOTH_RUNTIME_DIR XDG_RUNTIME_DIR
# The checks' python3: Debian's where there is one (a version manager's shim
# first on PATH costs seconds per start on a loaded machine).
PY=$(command -v /usr/bin/python3 || command -v python3)

# The text's files and commands.
"$PY" - "$SRC/docs/TUTORIAL.md" "$SRC/examples/tutorial" "$HOME/greeter" "$T/steps.sh" "$T/pkgconfig.sh" <<'PY'
import os, re, sys
doc, srcdir, work, steps, pcsteps = sys.argv[1:]
blocks = re.findall(r"^```(\S*)([^\n]*)\n(.*?)^```$", open(doc).read(), re.S | re.M)
os.makedirs(work)
shown, sh = set(), []
for lang, info, body in blocks:
    m = re.search(r"\bfile=(\S+)", info)
    if m:
        name = m.group(1)
        if open(os.path.join(srcdir, name)).read() != body:
            sys.exit(f"TUTORIAL.md shows {name} unlike examples/tutorial/{name}")
        with open(os.path.join(work, name), "w") as f:   # as the reader writes it
            f.write(body)
        shown.add(name)
    elif lang == "sh":
        sh.append(body)
    elif "pkg-config --cflags thoth" in body:
        pc = body                       # "Without CMake": run as well, below
missing = set(os.listdir(srcdir)) - shown - {"test_tutorial.sh"}
if missing:
    sys.exit(f"examples/tutorial has files the tutorial does not show: {sorted(missing)}")
if len(sh) < 4:
    sys.exit("TUTORIAL.md lost its sh blocks")
if "pc" not in dir():
    sys.exit("TUTORIAL.md lost its pkg-config block")
with open(pcsteps, "w") as f:
    # in the session section 1 set up: its PATH
    f.write("set -euo pipefail\nexport PATH=$HOME/thoth/bin:$HOME/thoth/sbin:$PATH\n" + pc)
with open(steps, "w") as f:
    f.write("set -euo pipefail\n"
            "trap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n" + "\n".join(sh))
PY

# Step 1, "make install PREFIX=$HOME/thoth".
cmake --install "$BUILD" --prefix "$HOME/thoth" >/dev/null

# Every sh block, in order, from the project folder (as section 2 says).
cd "$HOME/greeter"
if ! timeout 150 bash "$T/steps.sh" >"$T/out" 2>&1; then
  echo "the tutorial's commands failed:"; cat "$T/out"
  [ -f thothd.log ] && { echo "thothd.log:"; cat thothd.log; }
  exit 1
fi
cat "$T/out"
# The tutorial's C compiles clean under the -Wall -Wextra it sets (its
# service had five unused parameters, unseen: nothing turned them on).
if grep -q "warning:" "$T/out"; then echo "the tutorial's C has warnings under -Wall -Wextra"; exit 1; fi
grep -qx "hello, world" "$T/out" || { echo "no 'hello, world'"; exit 1; }
grep -q "greeter-[0-9]*\.sock" "$T/out" || { echo "thothctl services did not list greeter"; exit 1; }
"$PY" - greeter-trace.json <<'PY'
import json, sys
events = json.load(open(sys.argv[1]))["traceEvents"]
procs = {e["pid"]: e["args"]["name"] for e in events if e["ph"] == "M" and e["name"] == "process_name"}
names = {(procs.get(e["pid"]), e["name"]) for e in events if e["ph"] in ("X", "i")}
flows = [e for e in events if e["ph"] in ("s", "f")]
problems = []
if ("greeter", "greeted") not in names:
    problems.append("no 'greeted' trace point from the greeter process")
if not any(p == "greeter-client" for p, _ in names):
    problems.append("no events from greeter-client")
if not flows:
    problems.append("no flow between client and service")
if problems:
    sys.exit("greeter-trace.json: " + "; ".join(problems) + f" (events: {sorted(names)})")
PY
# Section 5's other way, "Without CMake", as written, in a copy of the
# project folder: pkg-config's flags must lead to the installed tree.  They
# led to /usr/local, the prefix the build was configured with, whatever
# `cmake --install --prefix` installed to ("thoth/channel.h: No such file
# or directory"); step 1's stand-in installs that way.
mkdir "$HOME/greeter-pc"
cp greeter.tidl greeter_service.c greeter_client.c "$HOME/greeter-pc/"
( cd "$HOME/greeter-pc" && bash "$T/pkgconfig.sh" ) >"$T/pc.out" 2>&1 ||
  { cat "$T/pc.out"; echo "the tutorial's pkg-config commands failed"; exit 1; }
if grep -q "warning:" "$T/pc.out"; then cat "$T/pc.out"; echo "pkg-config build: warnings under -Wall -Wextra"; exit 1; fi
"$HOME/greeter-pc/build/greeter-client" 2>"$T/pc.err" && { echo "greeter-client without NAME exited 0"; exit 1; }
grep -q "usage: greeter-client NAME" "$T/pc.err" || { cat "$T/pc.err"; echo "the pkg-config greeter-client does not start"; exit 1; }
# What a newcomer meets when a step is skipped or done twice: each says
# what is wrong.  The client said "no greeter: not running (nothing listens
# at its socket)" without thothd and "no greeter: peer returned an
# application error" without the service; a second greeter-service built
# elsewhere was refused the name and served on, unregistered, in silence.
export THOTH_RUNTIME_DIR=$(mktemp -d "$T/run-XXXXXX")     # under $T: removed with it
tutorial_fail() { echo "$1:"; cat "$2"; exit 1; }
# wait_for WHAT LOG CMD...: CMD succeeds within 30 s, or the test fails.
wait_for() {
  local what=$1 log=$2 deadline=$((SECONDS + 30))
  shift 2
  until "$@"; do
    [ $SECONDS -lt $deadline ] || tutorial_fail "$what within 30 s" "$log"
    sleep 0.05
  done
}
if build/greeter-client world 2>"$T/c1.err"; then tutorial_fail "greeter-client answered without thothd" "$T/c1.err"; fi
grep -qF "thothd is not running in $THOTH_RUNTIME_DIR (start it first" "$T/c1.err" ||
  tutorial_fail "greeter-client without thothd does not say so, and where it looked" "$T/c1.err"
"$HOME/thoth/sbin/thothd" --http-port 0 2>"$T/thothd2.log" &
THOTHD2=$!
thothd2_answers() { "$HOME/thoth/bin/thothctl" status >/dev/null 2>&1; }
wait_for "thothd did not answer" "$T/thothd2.log" thothd2_answers
if build/greeter-client world 2>"$T/c2.err"; then tutorial_fail "greeter-client answered without the service" "$T/c2.err"; fi
grep -q "no greeter registered with thothd (is greeter-service running?)" "$T/c2.err" ||
  tutorial_fail "greeter-client without the service does not say so" "$T/c2.err"
build/greeter-service 2>"$T/s1.err" &
SERVICE2=$!
wait_for "greeter-service did not register" "$T/s1.err" grep -q "greeter-service: registered" "$T/s1.err"
cp build/greeter-service build/greeter-copy       # another executable: the name is not its
rc=0
timeout 20 build/greeter-copy 2>"$T/s2.err" || rc=$?
[ "$rc" = 1 ] || tutorial_fail "a second greeter-service refused the name exited $rc, not 1" "$T/s2.err"
grep -q "refused by thothd: name \"greeter\" is held by another executable" "$T/s2.err" ||
  tutorial_fail "a refused greeter-service does not say why" "$T/s2.err"
kill "$SERVICE2" "$THOTHD2"
wait "$SERVICE2" "$THOTHD2" 2>/dev/null || true
THOTHD2= SERVICE2=
unset THOTH_RUNTIME_DIR
# The service says why it cannot start (it exited 1 without a word when the
# runtime dir was too long for a socket path).
long=$T/$(printf 'd%.0s' $(seq 100))
mkdir -m 700 "$long"
if THOTH_RUNTIME_DIR=$long build/greeter-service 2>"$T/long.err"; then
  echo "greeter-service started with a socket path over 108 bytes"; exit 1
fi
grep -q "runtime dir path too long" "$T/long.err" || { echo "greeter-service exited without saying why:"; cat "$T/long.err"; exit 1; }
echo "tutorial: ok"
