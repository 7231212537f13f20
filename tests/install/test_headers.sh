#!/usr/bin/env bash
# tests/install/test_headers.sh SOURCE_DIR BUILD_DIR CC CXX
#
# Every public header (include/thoth/*.h, the generated thoth/version.h and
# thoth/idl/*.thoth.h) compiles on its own, first in its translation unit,
# as strict ISO C11 (-std=c11 -pedantic, not gnu11) and as C++17.
set -euo pipefail
SRC=$1 BUILD=$2 CC=$3 CXX=$4
T=$(mktemp -d "${TMPDIR:-/tmp}/thoth-headers-XXXXXX")
trap 'rm -rf "$T"' EXIT
INC=(-I"$SRC/include" -I"$BUILD/include")
W=(-Wall -Wextra -Werror -pedantic -fsyntax-only)
failed=0 n=0
cd "$SRC/include"
hdrs=$(ls thoth/*.h)
cd "$BUILD/include"
hdrs="$hdrs $(ls thoth/version.h thoth/idl/*.thoth.h)"
for h in $hdrs; do
  n=$((n + 1))
  printf '#include <%s>\nint thoth_header_test_tu;\n' "$h" >"$T/tu.c"
  cp "$T/tu.c" "$T/tu.cpp"
  if ! $CC -std=c11 "${W[@]}" "${INC[@]}" "$T/tu.c" 2>"$T/err"; then
    echo "FAIL: $h as C11:"; cat "$T/err"; failed=1
  fi
  if ! $CXX -std=c++17 "${W[@]}" "${INC[@]}" "$T/tu.cpp" 2>"$T/err"; then
    echo "FAIL: $h as C++17:"; cat "$T/err"; failed=1
  fi
done
[ $failed = 0 ] || exit 1
echo "$n headers compile alone as C11 and C++17"
