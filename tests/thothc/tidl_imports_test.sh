#!/bin/sh
# tests/thothc/tidl_imports_test.sh SOURCE_DIR THOTHC
#
# thoth_tidl_compile makes a schema's imports dependencies of its generated
# code (cmake/ThothTidl.cmake: thothc's depfile; with an old CMake and
# Makefiles, a read at configure time).  On what thothc refuses (a FIFO, a device, imports nested past thothc's 64) the
# configure must finish and leave the refusal to thothc: an import of a
# FIFO or /dev/zero hung it, and a chain of imports past CMake's recursion
# limit (1000) failed it.  A cycle configures; an import in another folder,
# both with blanks in their names, is a dependency (the code is made again
# when it changes).  An import added after the configure is a dependency
# at the next build (thothc gen --depfile, add_custom_command(DEPFILE)):
# read only at configure time, it was not, and an edit of the imported
# file left the old header until the user ran cmake again.  The 120 s
# guard only catches a hang.
set -eu
SRC=$1 THOTHC=$2
T=$(mktemp -d "${TMPDIR:-/tmp}/thoth-tidl-imports-XXXXXX")
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
configure() {   # configure NAME SCHEMA: the project, built in $T/b-NAME
	rc=0
	timeout 120 cmake -S "$SRC/tests/thothc/tidl_imports" -B "$T/b-$1" -DTHOTH_SOURCE="$SRC" \
		-DTHOTHC="$THOTHC" -DSCHEMA="$2" >"$T/$1.log" 2>&1 || rc=$?
	[ $rc -eq 0 ] || { cat "$T/$1.log"; fail "configure on $1 failed (rc $rc; 124: hung, killed)"; }
}
hdr() { printf 'package %s;\nversion 1.0;\n' "$1"; }

mkdir "$T/fifo" "$T/dev" "$T/chain" "$T/cycle"
mkfifo "$T/fifo/p.tidl"
{ hdr a; echo 'import "p.tidl";'; } >"$T/fifo/a.tidl"
configure fifo "$T/fifo/a.tidl"
{ hdr a; echo 'import "/dev/zero";'; } >"$T/dev/a.tidl"
configure dev "$T/dev/a.tidl"
i=0
while [ $i -le 1100 ]; do
	{ hdr "c$i"; echo "import \"c$((i + 1)).tidl\";"; } >"$T/chain/c$i.tidl"
	i=$((i + 1))
done
configure chain "$T/chain/c0.tidl"
# ... and the build says what thothc says.
if cmake --build "$T/b-chain" >"$T/chain-build.log" 2>&1; then fail "thothc took a chain of 1100 imports"; fi
grep -q "imports nested deeper than 64" "$T/chain-build.log" ||
	{ cat "$T/chain-build.log"; fail "the chain's build did not give thothc's message"; }
{ hdr a; echo 'import "b.tidl";'; } >"$T/cycle/a.tidl"
{ hdr b; echo 'import "a.tidl";'; } >"$T/cycle/b.tidl"
configure cycle "$T/cycle/a.tidl"

mkdir -p "$T/my schemas" "$T/other dir"
{ hdr w; echo 'import "../other dir/e p.tidl";'; echo 'struct W {'; echo '  1: e.P p;'; echo '}'; } \
	>"$T/my schemas/w x.tidl"
{ hdr e; echo 'struct P {'; echo '  1: u32 x;'; echo '}'; } >"$T/other dir/e p.tidl"
configure spaces "$T/my schemas/w x.tidl"
cmake --build "$T/b-spaces" >"$T/spaces-build.log" 2>&1 || { cat "$T/spaces-build.log"; fail "build"; }
[ -f "$T/b-spaces/gen/w x.thoth.h" ] || fail "no gen/w x.thoth.h"
touch -d "@$(($(stat -c %Y "$T/b-spaces/gen/w x.thoth.h") + 5))" "$T/other dir/e p.tidl"
cmake --build "$T/b-spaces" >"$T/spaces-rebuild.log" 2>&1 || { cat "$T/spaces-rebuild.log"; fail "rebuild"; }
grep -q "thothc w x.tidl" "$T/spaces-rebuild.log" ||
	{ cat "$T/spaces-rebuild.log"; fail "'w x.thoth.h' not made again after '../other dir/e p.tidl' changed"; }

# An import added after the configure: built, then the imported file
# edited, the header is made again with the edit, with no configure between
# (Makefiles, and Ninja where it is installed).
late() {        # late NAME [GENERATOR...]
	d="$T/late-$1"
	name=$1
	shift
	mkdir -p "$d/s" "$d/other"
	{ hdr w; echo 'struct W {'; echo '  1: u32 n;'; echo '}'; } >"$d/s/w.tidl"
	{ hdr e; echo 'struct P {'; echo '  1: u32 x;'; echo '}'; } >"$d/other/e.tidl"
	timeout 120 cmake "$@" -S "$SRC/tests/thothc/tidl_imports" -B "$d/b" -DTHOTH_SOURCE="$SRC" \
		-DTHOTHC="$THOTHC" -DSCHEMA="$d/s/w.tidl" >"$d/configure.log" 2>&1 ||
		{ cat "$d/configure.log"; fail "late-$name: configure"; }
	cmake --build "$d/b" >"$d/build1.log" 2>&1 || { cat "$d/build1.log"; fail "late-$name: first build"; }
	# the schema now imports other/e.tidl (a rebuild: the schema changed)
	{ hdr w; echo 'import "../other/e.tidl";'; echo 'struct W {'; echo '  1: u32 n;'
	  echo '  2: e.P p;'; echo '}'; } >"$d/s/w.tidl"
	touch -d "@$(($(stat -c %Y "$d/b/gen/w.thoth.h") + 5))" "$d/s/w.tidl"
	cmake --build "$d/b" >"$d/build2.log" 2>&1 || { cat "$d/build2.log"; fail "late-$name: build with the import"; }
	grep -q "e.thoth.h" "$d/b/gen/w.thoth.h" || fail "late-$name: w.thoth.h does not include the import's header"
	# the schema back in the past (its stamp above was ahead of the
	# header just made), so that only the import's edit below is news
	old=$(($(stat -c %Y "$d/b/gen/w.thoth.h") - 100))
	touch -d "@$old" "$d/s/w.tidl" "$d/other/e.tidl"
	cmake --build "$d/b" >"$d/build-noop.log" 2>&1 || { cat "$d/build-noop.log"; fail "late-$name: no-op build"; }
	if grep -q "thothc w.tidl" "$d/build-noop.log"; then
		cat "$d/build-noop.log"; fail "late-$name: w.thoth.h made again with nothing changed"
	fi
	# ... then the imported file is edited: a field added (the schema's
	# hash in w.thoth.h covers its imports)
	cp "$d/b/gen/w.thoth.h" "$d/w-before.h"
	{ hdr e; echo 'struct P {'; echo '  1: u32 x;'; echo '  2: u32 late_field;'; echo '}'; } >"$d/other/e.tidl"
	touch -d "@$(($(stat -c %Y "$d/b/gen/w.thoth.h") + 10))" "$d/other/e.tidl"
	cmake --build "$d/b" >"$d/build3.log" 2>&1 || { cat "$d/build3.log"; fail "late-$name: build after the edit"; }
	grep -q "thothc w.tidl" "$d/build3.log" ||
		{ cat "$d/build3.log"; fail "late-$name: w.thoth.h not made again after other/e.tidl, imported after the configure, changed"; }
	if cmp -s "$d/w-before.h" "$d/b/gen/w.thoth.h"; then fail "late-$name: w.thoth.h is the old one"; fi
	if grep -q "Re-running CMake\|re-running CMake" "$d/build2.log" "$d/build3.log"; then
		fail "late-$name: the build re-ran the configure (the point is that it need not)"
	fi
}
late make
if command -v ninja >/dev/null; then late ninja -G Ninja; else echo "skip: no ninja: the Ninja case"; fi
echo "thoth_tidl_compile imports: ok"
