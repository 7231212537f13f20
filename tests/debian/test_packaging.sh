#!/usr/bin/env bash
# tests/debian/test_packaging.sh SOURCE_DIR BUILD_DIR
#
# The Debian packaging agrees with the build, without building packages
# (test_debian_package_build does that):
#  - debian/changelog's version is project(VERSION);
#  - debian/control's Build-Depends are installed (dpkg-checkbuilddeps) and
#    scripts/bootstrap.sh reads them by group: `make run`'s group has what
#    building needs and no test-only package, `make test`'s is a superset;
#  - the *.install files place every file `cmake --install` produces in
#    exactly one package, and each of their lines matches something.
set -euo pipefail
SRC=$1 BUILD=$2
fail() { echo "FAIL: $*"; exit 1; }
V=$(sed -n 's/^project(thoth VERSION \([0-9.]*\).*/\1/p' "$SRC/CMakeLists.txt")
CV=$(dpkg-parsechangelog -l "$SRC/debian/changelog" -S Version)
[ "${CV%%-*}" = "$V" ] || fail "debian/changelog $CV, project(VERSION) $V"
(cd "$SRC" && dpkg-checkbuilddeps) || fail "Build-Depends not satisfied (bootstrap out of step with debian/control?)"

run=$("$SRC/scripts/bootstrap.sh" run --list)
test=$("$SRC/scripts/bootstrap.sh" test --list)
bench=$("$SRC/scripts/bootstrap.sh" bench --list)
# ninja-build: debian/rules builds with cmake+ninja, and the Makefile's build
# folders are Ninja's when it is installed (docs/TESTING.md "Build time").
for p in cmake ninja-build pkg-config scdoc systemtap-sdt-dev; do
  grep -qx "$p" <<<"$run" || fail "$p missing from the run group"
done
for p in libcmocka-dev python3 babeltrace2 lintian debhelper; do
  grep -qx "$p" <<<"$run" && fail "$p (test only) is in the run group"
  grep -qx "$p" <<<"$test" || fail "$p missing from the test group"
done
grep -qx clang <<<"$bench" || fail "clang missing from the bench group"
# tests/probe compiles its eBPF corpus with clang -target bpf: a test package too (OBS-2).
grep -qx clang <<<"$test" || fail "clang missing from the test group (tests/probe needs it)"
while read -r p; do grep -qx "$p" <<<"$test" || fail "run package $p not in the test group"; done <<<"$run"

# What cmake --install produces, with Debian's layout, against the .install files.
D=$(mktemp -d "${TMPDIR:-/tmp}/thoth-debian-XXXXXX")
L=$(mktemp -d "${TMPDIR:-/tmp}/thoth-debian-lists-XXXXXX")   # the file lists, beside (not in) the staged tree
trap 'rm -rf "$D" "$L"' EXIT
DESTDIR=$D cmake --install "$BUILD" --prefix /usr >/dev/null
# This build's libdir is not multiarch; Debian's is usr/lib/<triplet>.
if [ -d "$D/usr/lib" ] && [ ! -d "$D/usr/lib/$(dpkg-architecture -qDEB_HOST_MULTIARCH)" ]; then
  ma=$D/usr/lib/$(dpkg-architecture -qDEB_HOST_MULTIARCH)
  mkdir -p "$ma"
  for f in "$D"/usr/lib/*; do
    case $(basename "$f") in systemd|"$(basename "$ma")") ;; *) mv "$f" "$ma/" ;; esac
  done
fi
(cd "$D" && find . -type f -o -type l | sed 's|^\./||' | sort) >"$L/files"
: >"$L/claimed"
for inst in "$SRC"/debian/*.install; do
  while read -r pat; do
    [ -n "$pat" ] || continue
    # shellcheck disable=SC2086
    matches=$(cd "$D" && for m in $pat; do [ -e "$m" ] || [ -L "$m" ] && find "$m" -type f -o -type l; done)
    [ -n "$matches" ] || fail "$(basename "$inst"): '$pat' matches nothing cmake --install produces"
    echo "$matches" >>"$L/claimed"
  done <"$inst"
done
dups=$(sort "$L/claimed" | uniq -d)
[ -z "$dups" ] || fail "in two packages: $dups"
missing=$(comm -23 "$L/files" <(sort -u "$L/claimed"))
[ -z "$missing" ] || fail "installed but in no package: $missing"
echo "packaging consistent: version $V, bootstrap groups, .install files"
