#!/bin/sh
# tests/thothc/tidl_imports_test.sh SOURCE_DIR THOTHC
#
# thoth_tidl_compile reads a schema's imports at configure time, to make
# them dependencies of its generated code (cmake/ThothTidl.cmake).  On what
# thothc refuses (a FIFO, a device, imports nested past thothc's 64) the
# configure must finish and leave the refusal to thothc: an import of a
# FIFO or /dev/zero hung it, and a chain of imports past CMake's recursion
# limit (1000) failed it.  A cycle configures; an import in another folder,
# both with blanks in their names, is a dependency (the code is made again
# when it changes).  The 120 s guard only catches a hang.
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
echo "thoth_tidl_compile imports: ok"
