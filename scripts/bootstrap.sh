#!/bin/sh
# scripts/bootstrap.sh [run|test|bench|all] [--list]
#
# Install the Debian packages a make target needs, but only those that are
# missing.  Idempotent and silent when nothing is missing.
#
# The list is not kept here: it is debian/control's Build-Depends, the
# project's one list of build dependencies, read by profile:
#   run    entries without a profile: building and `make run`, `make install`
#   test   run + the <!nocheck> entries (and debhelper for `make deb`)
#   bench  run + the <pkg.thoth.bench> entries (benchmarks, fuzzers)
#   all    everything
# docs/DEPENDENCIES.md says why each package is there.  --list prints the
# group's packages, one a line, and installs nothing.
set -eu

WHAT=${1:-test}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CONTROL=$ROOT/debian/control
[ -r "$CONTROL" ] || { echo "bootstrap: $CONTROL is missing" >&2; exit 1; }

LIST=0
[ "${2:-}" = --list ] && LIST=1
case $WHAT in
run|test|bench|all) ;;
*) echo "usage: $0 [run|test|bench|all] [--list]" >&2; exit 2 ;;
esac

ARCH=$(dpkg --print-architecture 2>/dev/null || echo unknown)
# Build-Depends as one entry a line: "name profile" (profile: - when none).
# The field runs from its name to the next field; '#' lines are comments.
entries=$(awk '
	/^#/ { next }
	/^[A-Za-z-]+:/ { infield = ($1 == "Build-Depends:"); sub(/^Build-Depends:/, "") }
	infield { print }
' "$CONTROL" | tr ',' '\n' | sed 's/([^)]*)//g' | awk -v arch="$ARCH" 'NF {
	name = $1; prof = "-"
	if (match($0, /<[^>]*>/)) prof = substr($0, RSTART + 1, RLENGTH - 2)
	# An architecture list ("[amd64]", "[!arm64]") as dpkg reads it:
	# a plain list names the only architectures, a negated one those left out.
	if (match($0, /\[[^]]*\]/)) {
		n = split(substr($0, RSTART + 1, RLENGTH - 2), a, " ")
		neg = (a[1] ~ /^!/); hit = 0
		for (i = 1; i <= n; i++) { x = a[i]; sub(/^!/, "", x); if (x == arch) hit = 1 }
		if (neg ? hit : !hit) next
	}
	print name, prof
}')
[ -n "$entries" ] || { echo "bootstrap: no Build-Depends in $CONTROL" >&2; exit 1; }

PACKAGES=$(echo "$entries" | while read -r name prof; do
	group=run
	case $prof in
	!nocheck) group=test ;;
	pkg.thoth.bench) group=bench ;;
	-) ;;
	*) echo "bootstrap: unknown build profile <$prof> of $name" >&2; exit 1 ;;
	esac
	# debhelper-compat is provided by debhelper, which only `make deb`
	# (run by the tests) needs.
	if [ "$name" = debhelper-compat ]; then name=debhelper; group=test; fi
	case $WHAT:$group in
	all:*|run:run|test:run|test:test|bench:run|bench:bench) echo "$name" ;;
	esac
done)
# The compiler itself (build-essential is implied by Debian, not listed).
PACKAGES="build-essential $PACKAGES"
[ "$WHAT" = run ] || PACKAGES="$PACKAGES dpkg-dev"
if [ $LIST = 1 ]; then
	for p in $PACKAGES; do echo "$p"; done
	exit 0
fi

missing=""
for p in $PACKAGES; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing="$missing $p"
	fi
done
[ -z "$missing" ] && exit 0

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
	if command -v sudo >/dev/null 2>&1; then
		SUDO="sudo"
	else
		echo "bootstrap: missing packages:$missing; run as root or install sudo" >&2
		exit 1
	fi
fi
echo "bootstrap: installing$missing"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq
# shellcheck disable=SC2086
$SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends $missing >/dev/null
