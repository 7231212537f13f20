#!/usr/bin/env bash
# tests/install/test_consumer.sh SOURCE_DIR BUILD_DIR find_package|add_subdirectory
#
# A user's CMake project (tests/install/consumer) builds the greeter service:
#   find_package     against the build installed into a temporary DESTDIR
#                    (Thoth::thoth, thoth_tidl_compile, Thoth::thoth_static);
#   add_subdirectory with this source tree as its subproject (no tests,
#                    benchmarks or cmocka pulled in): the subproject builds
#                    what the greeter needs (libthoth, thothc), not thothd
#                    and thothctl - the same sources as BUILD_DIR's, whose
#                    programs run here.
# Then the service runs against thothd and is called.
set -euo pipefail
SRC=$1 BUILD=$2 MODE=$3
. "$SRC/tests/install/lib.sh"
D=$(mktemp -d "${TMPDIR:-/tmp}/thoth-consumer-XXXXXX")
trap 'greeter_cleanup; rm -rf "$D"' EXIT
JOBS=${JOBS:-2}

case $MODE in
find_package)
  DESTDIR=$D/root cmake --install "$BUILD" --prefix /usr >/dev/null   # the package is relocatable
  cmake -S "$SRC/tests/install/consumer" -B "$D/b" -DCMAKE_PREFIX_PATH="$D/root/usr" \
        -DCMAKE_FIND_USE_SYSTEM_PACKAGE_REGISTRY=OFF >"$D/configure.log" 2>&1 ||
    { cat "$D/configure.log"; exit 1; }
  cmake --build "$D/b" -j"$JOBS" >"$D/build.log" 2>&1 || { cat "$D/build.log"; exit 1; }
  # An imported schema outside the importer's folder (the installed
  # common.tidl) is a dependency: changed, the importer's code is made
  # again (only the importer's own folder was: the old code stayed).
  touch -d "@$(($(stat -c %Y "$D/b/gen/where.thoth.h") + 5))" "$D/root/usr/share/thoth/idl/common.tidl"
  cmake --build "$D/b" -j"$JOBS" --target where-roundtrip >"$D/rebuild.log" 2>&1 || { cat "$D/rebuild.log"; exit 1; }
  grep -q "thothc where" "$D/rebuild.log" ||
    { cat "$D/rebuild.log"; echo "where.thoth.h not made again after the common.tidl it imports changed" >&2; exit 1; }
  export LD_LIBRARY_PATH=$D/root/usr/lib
  ldd "$D/b/greeter-call" | grep "libthoth.so.0 => $D/root/usr/lib/libthoth.so.0" >/dev/null
  THOTHD=$D/root/usr/sbin/thothd THOTHCTL=$D/root/usr/bin/thothctl
  ;;
add_subdirectory)
  # Ninja where bootstrap installed it (ninja-build, group run): this build
  # compiles libthoth and thothc a second time (~100 files), and CMake's
  # Makefiles spend ~40% more CPU on it (recursive makes, a dependency
  # scan per target: 47 s against 30 s of user+sys).  The point - the tree
  # works as a subproject - is the generator's either way.
  GEN=()
  if command -v ninja >/dev/null; then GEN=(-G Ninja); fi
  cmake "${GEN[@]}" -S "$SRC/tests/install/consumer" -B "$D/b" -DTHOTH_SOURCE_DIR="$SRC" \
        >"$D/configure.log" 2>&1 || { cat "$D/configure.log"; exit 1; }
  # Embedded, the tree builds no tests and does not look for cmocka.
  if grep -q "^CMOCKA_" "$D/b/CMakeCache.txt"; then echo "embedded build looked for cmocka" >&2; exit 1; fi
  cmake --build "$D/b" -j"$JOBS" --target greeter-service greeter-call greeter-call-static where-roundtrip echo-user \
        >"$D/build.log" 2>&1 || { cat "$D/build.log"; exit 1; }
  [ ! -e "$D/b/thoth/tests" ] || { echo "embedded build configured the tests" >&2; exit 1; }
  # The embedded tree still defines the programs (a parent may build them).
  for t in thothd thothctl; do
    # Makefiles list "... thothd", Ninja "thothd: phony".
    cmake --build "$D/b" --target help | grep -Ex "(\.\.\. )?$t(: phony)?" >/dev/null ||
      { echo "embedded build has no $t target" >&2; exit 1; }
  done
  THOTHD=$BUILD/kernel/thothd/thothd THOTHCTL=$BUILD/tools/thothctl/thothctl
  ;;
*) echo "usage: $0 SRC BUILD find_package|add_subdirectory" >&2; exit 2 ;;
esac
run_greeter "$THOTHD" "$THOTHCTL" "$D/b/greeter-service" "$D/b/greeter-call"
# The same client linked statically: no libthoth.so needed at run time.
if ldd "$D/b/greeter-call-static" | grep libthoth >/dev/null; then echo "static client needs libthoth.so" >&2; exit 1; fi
run_greeter "$THOTHD" "$THOTHCTL" "$D/b/greeter-service" "$D/b/greeter-call-static"
# A schema importing a system interface from THOTH_TIDL_DIR built and runs.
"$D/b/where-roundtrip" >/dev/null
# A schema named like a system interface got its own header, not the system's.
"$D/b/echo-user" >/dev/null
echo "$MODE consumer: ok"
