#!/usr/bin/env bash
# tests/install/test_install_pkgconfig.sh SOURCE_DIR BUILD_DIR
#
# Installs the build into a temporary DESTDIR (its configured prefix), checks
# the installed thothctl's lock hints and the installed docs, and builds an
# out-of-tree service from its own .tidl using only the installed tree: the
# installed thothc generates the code, pkg-config gives the flags, the
# programs run against the installed libthoth.so.0 and the installed thothd.
set -euo pipefail
SRC=$1 BUILD=$2
# The python3 CMake found (THOTH_PYTHON3), not a version manager's shim.
PY=${THOTH_PYTHON3:-python3}
. "$SRC/tests/install/lib.sh"
D=$(mktemp -d "${TMPDIR:-/tmp}/thoth-install-XXXXXX")
# thothctl locks' runtime dir: its socket's path must fit (a short folder
# of the stage's when TMPDIR is long; tt_tempdir, from lib.sh).
RT=$(tt_tempdir install-locks-rt)
trap 'greeter_cleanup; rm -rf "$D" "$RT"' EXIT

# The prefix the build was configured with (thoth.pc names it), under DESTDIR.
PREFIX=$(sed -n 's/^CMAKE_INSTALL_PREFIX:PATH=//p' "$BUILD/CMakeCache.txt")
DESTDIR=$D cmake --install "$BUILD" >/dev/null
LIBDIR=$D$PREFIX/$(sed -n 's/^CMAKE_INSTALL_LIBDIR:PATH=//p' "$BUILD/CMakeCache.txt")
# thothlock preloads the libthothlock.so of its own installed tree: it
# looked only at the configured prefix, so a tree staged under DESTDIR or
# installed with `cmake --install --prefix P` (the tutorial's way) said
# "libthothlock.so not found" (or preloaded another install's library).
preload=$(env -u THOTHLOCK_LIB "$D$PREFIX/bin/thothlock" -- sh -c 'printf %s "$LD_PRELOAD"' 2>"$D/thothlock.err") ||
  { cat "$D/thothlock.err" >&2; echo "the installed thothlock did not run its program" >&2; exit 1; }
[ "$preload" = "$LIBDIR/thoth/libthothlock.so" ] ||
  { echo "the installed thothlock preloaded '$preload', not $LIBDIR/thoth/libthothlock.so" >&2; exit 1; }
# ... and the installed thothctl names first the installed thothlock
# launcher, by its full path: a program run under it is listed live by
# thothd and `thothctl locks` and reported at its exit (the bare
# LD_PRELOAD form is only the fallback where no launcher is found).
"$D$PREFIX/bin/thothctl" --runtime-dir "$RT" locks >/dev/null 2>"$D/locks.err" && { echo "thothctl locks found tables in an empty dir" >&2; exit 1; }
grep -qF "(to see one here, start it with $(realpath "$D$PREFIX/bin/thothlock") -- PROGRAM: listed here while it runs and reported at its exit," "$D/locks.err" ||
  { cat "$D/locks.err" >&2; echo "the installed thothctl does not name the installed thothlock first" >&2; exit 1; }
# The documentation the man pages send a reader to is installed: every
# docs/*.md (a new doc is not forgotten: the install globs them) and the
# images they show, in DOCDIR, which the installed man pages name (they
# said the docs were only in the source tree).
# (DOCDIR: where ARCHITECTURE.md went; CMake's cache leaves its default
# empty.)
arch=$(find "$D$PREFIX" -name ARCHITECTURE.md -path '*/doc/*' | head -1)
[ -n "$arch" ] || { echo "docs/ARCHITECTURE.md is not installed under $PREFIX/share/doc" >&2; exit 1; }
DOCDIR=$(dirname "${arch#"$D"}")
for doc in "$SRC"/docs/*.md; do
  cmp -s "$doc" "$D$DOCDIR/$(basename "$doc")" ||
    { echo "docs/$(basename "$doc") is not installed in $DOCDIR" >&2; exit 1; }
done
sed -n 's/.*!\[[^]]*\](\([^)]*\)).*/\1/p' "$SRC"/docs/*.md | while read -r img; do
  [ -f "$D$DOCDIR/$img" ] || { echo "docs' image $img is not installed in $DOCDIR" >&2; exit 1; }
done
# No installed doc has a dead relative link: the docs are read installed,
# flat in DOCDIR, where a link out of docs/ (`../README.md`, `../examples/`)
# names nothing, though it works in the source tree (checked here too).
"$PY" "$SRC/tests/install/check_doc_links.py" "$SRC/docs" ||
  { echo "docs/ has a dead relative link (above)" >&2; exit 1; }
"$PY" "$SRC/tests/install/check_doc_links.py" "$D$DOCDIR" ||
  { echo "an installed doc in $DOCDIR has a dead relative link (above): link within docs/ only" >&2; exit 1; }
if [ -d "$D$PREFIX/share/man/man1" ]; then
  grep -qF "$DOCDIR" "$D$PREFIX/share/man/man1/thothctl.1" ||
    { echo "the installed thothctl(1) does not name $DOCDIR" >&2; exit 1; }
  ! grep -q "not installed" "$D$PREFIX/share/man/man1/thothctl.1" ||
    { echo "the installed thothctl(1) still says the docs are not installed" >&2; exit 1; }
fi
# The installed tree only: nothing from the source or build tree below.
export PKG_CONFIG_LIBDIR=$LIBDIR/pkgconfig PKG_CONFIG_PATH= PKG_CONFIG_SYSROOT_DIR=$D
pkg-config --exists thoth
[ "$(pkg-config --modversion thoth)" = "$(sed -n 's/^project(thoth VERSION \([0-9.]*\).*/\1/p' "$SRC/CMakeLists.txt")" ]
THOTHC=$(pkg-config --variable=thothc thoth)
case $THOTHC in "$D"/*) ;; *) THOTHC=$D$THOTHC ;; esac   # pkgconf applies the sysroot itself
W=$D/work
mkdir -p "$W/gen"
cp "$SRC"/tests/install/greeter/* "$W/"
cd "$W"
"$THOTHC" gen --lang c -o gen greeter.tidl
CC=${CC:-cc}
CFLAGS="-std=c11 -Wall -Wextra -Wno-unused-parameter -Werror $(pkg-config --cflags thoth) -Igen"
LIBS=$(pkg-config --libs thoth)
case "$CFLAGS $LIBS" in *"$SRC"*|*"$BUILD"*) echo "pkg-config points into the source/build tree" >&2; exit 1 ;; esac
$CC $CFLAGS -o greeter-service greeter_service.c gen/greeter.thoth.c $LIBS
$CC $CFLAGS -o greeter-call greeter_call.c gen/greeter.thoth.c $LIBS
# A schema of the user's that imports an installed system interface
# (share/thoth/idl, "for your schemas to import"), built with the same
# flags: its generated header includes "common.thoth.h", which is
# installed as include/thoth/idl/common.thoth.h, and `pkg-config --cflags`
# named only include/ ("common.thoth.h: No such file or directory").
TIDLDIR=$(pkg-config --variable=tidldir thoth)
case $TIDLDIR in "$D"/*) ;; *) TIDLDIR=$D$TIDLDIR ;; esac
sed "s|@TIDLDIR@|$TIDLDIR|" "$SRC/tests/install/import/where.tidl.in" >where.tidl
"$THOTHC" gen --lang c -o gen where.tidl
$CC $CFLAGS -o where-roundtrip "$SRC/tests/install/import/where_roundtrip.c" gen/where.thoth.c $LIBS
# A schema of the user's named like a system interface (echo.tidl), built
# with the same flags, -Igen after pkg-config's (docs/TUTORIAL.md's order):
# include/thoth/idl as -I gave the program the system's echo.thoth.h.
cp "$SRC/tests/install/samename/echo.tidl" .
"$THOTHC" gen --lang c -o gen echo.tidl
$CC $CFLAGS -o echo-user "$SRC/tests/install/samename/echo_user.c" gen/echo.thoth.c $LIBS
export LD_LIBRARY_PATH=$LIBDIR
./where-roundtrip >/dev/null
./echo-user >/dev/null
# Linked against the installed libthoth.so.0, not a copy in the build tree.
ldd ./greeter-call | grep "libthoth.so.0 => $LIBDIR/libthoth.so.0" >/dev/null
run_greeter "$D$PREFIX/sbin/thothd" "$D$PREFIX/bin/thothctl" ./greeter-service ./greeter-call
echo "install + pkg-config: ok"
