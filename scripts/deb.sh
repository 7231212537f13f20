#!/usr/bin/env bash
# scripts/deb.sh OUTDIR [--no-lintian]
#
# `make deb`: build the Debian packages libthoth0, libthoth-dev and
# thoth-tools from this tree with `dpkg-buildpackage -b -us -uc`, in a copy
# under OUTDIR (dpkg-buildpackage writes beside its source tree, and the
# working tree stays clean), then run lintian on the result: any error
# fails.  The .deb files are left in OUTDIR.
set -euo pipefail
OUT=$1; shift
LINTIAN=1
[ "${1:-}" = --no-lintian ] && LINTIAN=0
ROOT=$(cd "$(dirname "$0")/.." && pwd)
V=$(sed -n 's/^project(thoth VERSION \([0-9.]*\).*/\1/p' "$ROOT/CMakeLists.txt")
CV=$(dpkg-parsechangelog -l "$ROOT/debian/changelog" -S Version)
if [ "${CV%%-*}" != "$V" ]; then
  echo "deb.sh: debian/changelog says $CV, CMakeLists.txt project(VERSION) says $V" >&2
  exit 1
fi
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
SRC=$OUT/thoth-$V
rm -rf "$SRC" "$OUT"/*.deb "$OUT"/*.changes "$OUT"/*.buildinfo
mkdir -p "$SRC"
# The tracked files (what a release would contain); a tree without git is
# copied whole, less build output.
if git -C "$ROOT" rev-parse --git-dir >/dev/null 2>&1; then
  (cd "$ROOT" && git ls-files -z --cached --others --exclude-standard) |
    (cd "$ROOT" && xargs -0 cp --parents -t "$SRC" 2>/dev/null || true)
else
  (cd "$ROOT" && tar --exclude=./build -cf - .) | (cd "$SRC" && tar -xf -)
fi
# dpkg-buildpackage's and lintian's temporary files in a folder of ours,
# removed however this ends: lintian (Perl MLDBM) left a Berkeley DB file
# /tmp/mldbm-elf-* behind on every run.
export TMPDIR="$OUT/tmp"
rm -rf "$TMPDIR"
mkdir -p "$TMPDIR"
trap 'rm -rf "$TMPDIR"' EXIT
cd "$SRC"
start=$(date +%s)
DEB_BUILD_OPTIONS="parallel=$(nproc) nocheck" dpkg-buildpackage -b -us -uc >"$OUT/build.log" 2>&1 ||
  { tail -60 "$OUT/build.log"; echo "deb.sh: dpkg-buildpackage failed (log: $OUT/build.log)" >&2; exit 1; }
echo "dpkg-buildpackage: $(( $(date +%s) - start )) s"
ls "$OUT"/*.deb
if [ $LINTIAN = 1 ]; then
  # Errors fail; warnings are shown.  The .changes covers the three packages.
  lintian --fail-on error --tag-display-limit 0 "$OUT"/thoth_*_"$(dpkg --print-architecture)".changes
fi
