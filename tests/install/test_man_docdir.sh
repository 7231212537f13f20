#!/usr/bin/env bash
# tests/install/test_man_docdir.sh SOURCE_DIR
#
# The man pages name the installed docs folder (@THOTH_DOCDIR@ in man/*.scd),
# in the build tree (target thoth_man, for the configured prefix) and at
# install (for the prefix installed to), both by cmake/ThothInstallMan.cmake.
# The build's pages were made with `sed "s|@THOTH_DOCDIR@|DOCDIR|g"`: a prefix
# with a `|` failed the build ("unknown option to `s'"), one with a `&` named
# "...@THOTH_DOCDIR@..." in the page.  A prefix with scdoc's markup (`*`, `_`)
# must come out as written too.  Configures the source tree once more
# (library and tools only) and builds the man pages alone.
set -euo pipefail
SRC=$1
command -v scdoc >/dev/null || { echo "SKIP: scdoc is not installed (Debian: scdoc): no man pages to check"; exit 77; }
D=$(mktemp -d "${TMPDIR:-/tmp}/thoth-mandocdir-XXXXXX")
trap 'rm -rf "$D"' EXIT

# The page's text as a reader sees it: scdoc's roff, its escapes undone.
page_text() {
  sed -e 's/\\&//g' -e 's/\\f[IRBP]//g' -e 's/\\-/-/g' -e 's/\\e/\\/g' -e 's/\\\\/\\/g' "$1"
}
check_page() {  # PAGE DOCDIR WHAT
  [ -s "$1" ] || { echo "$3: $1 was not made" >&2; exit 1; }
  grep -qF "$2/IDL.md" <(page_text "$1") || {
    echo "$3: $(basename "$1") does not name the docs folder $2; it says:" >&2
    page_text "$1" | grep -F 'IDL.md' >&2 || true
    exit 1
  }
  ! grep -q '@THOTH_DOCDIR@' "$1" || { echo "$3: $(basename "$1") kept @THOTH_DOCDIR@" >&2; exit 1; }
}

# 1. The build tree's pages, for a configured prefix with every such character
#    (not `\`: CMake takes it for a `/` in an install path).
PREFIX="$D/pre|fix&and*star_under"
cmake -S "$SRC" -B "$D/build" -DTHOTH_TESTS=OFF -DTHOTH_BENCH=OFF -DTHOTH_MAN=ON \
      "-DCMAKE_INSTALL_PREFIX=$PREFIX" -DCMAKE_INSTALL_DOCDIR=share/doc/thoth >"$D/configure.log" 2>&1 ||
  { cat "$D/configure.log" >&2; echo "configuring with the prefix $PREFIX failed" >&2; exit 1; }
cmake --build "$D/build" --target thoth_man >"$D/build.log" 2>&1 ||
  { cat "$D/build.log" >&2; echo "the man pages did not build for the prefix $PREFIX" >&2; exit 1; }
for scd in "$SRC"/man/*.scd; do
  grep -q '@THOTH_DOCDIR@' "$scd" || continue
  page=$(basename "$scd" .scd)
  check_page "$D/build/man/$page" "$PREFIX/share/doc/thoth" "build tree"
done

# 2. At install, for another such prefix (what `cmake --install --prefix`
#    runs for each page: install(CODE) in cmake/ThothDist.cmake).
IPREFIX="$D/inst|all&*_x"
cmake "-DCMAKE_INSTALL_PREFIX=$IPREFIX" "-DTHOTH_MAN_SRC=$SRC/man/thothctl.1.scd" \
      -DTHOTH_MAN_NAME=thothctl.1 -DTHOTH_MAN_DIR=share/man/man1 -DTHOTH_MAN_DOCDIR=share/doc/thoth \
      "-DTHOTH_MAN_SCDOC=$(command -v scdoc)" "-DTHOTH_MAN_TMPDIR=$D" \
      -P "$SRC/cmake/ThothInstallMan.cmake" >"$D/install.log" 2>&1 ||
  { cat "$D/install.log" >&2; echo "installing thothctl.1 to the prefix $IPREFIX failed" >&2; exit 1; }
check_page "$IPREFIX/share/man/man1/thothctl.1" "$IPREFIX/share/doc/thoth" "install"

# 3. A docs folder given absolute with a `\` (scdoc's escape; CMake cannot
#    take one in a prefix, but CMAKE_INSTALL_DOCDIR may be absolute).
BDOCDIR="$D/back\slash_*x"
cmake "-DTHOTH_MAN_SRC=$SRC/man/thothctl.1.scd" -DTHOTH_MAN_NAME=thothctl.1 "-DTHOTH_MAN_DOCDIR=$BDOCDIR" \
      "-DTHOTH_MAN_SCDOC=$(command -v scdoc)" "-DTHOTH_MAN_TMPDIR=$D" "-DTHOTH_MAN_OUT=$D/thothctl.1" \
      -P "$SRC/cmake/ThothInstallMan.cmake" >"$D/backslash.log" 2>&1 ||
  { cat "$D/backslash.log" >&2; echo "the man page did not build for the docs folder $BDOCDIR" >&2; exit 1; }
check_page "$D/thothctl.1" "$BDOCDIR" "absolute docdir"
echo "man pages name the docs folder for any prefix: ok"
