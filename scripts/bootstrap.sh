#!/bin/sh
# Install every Debian package the build, tests, benchmarks and fuzzers need,
# but only those that are missing.  Idempotent and silent when nothing is
# missing.  Each package is listed (with the reason) in docs/DEPENDENCIES.md.
set -eu

PACKAGES="
build-essential
cmake
pkg-config
clang
libclang-rt-14-dev
libcmocka-dev
libprotobuf-c-dev
protobuf-c-compiler
systemtap-sdt-dev
liburing-dev
babeltrace2
python3
liblttng-ust-dev
lttng-tools
iceoryx
libiceoryx-binding-c-dev
"

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
