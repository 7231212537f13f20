#!/usr/bin/env bash
# tests/systemd/test_units.sh SOURCE_DIR BUILD_DIR
#
# The shipped user units, as installed (DESTDIR), pass `systemd-analyze
# verify` in both system and user mode with no diagnostic at all (verify
# exits 0 on a mistyped setting; its warnings are failures here), and the
# service unit starts the installed thothd.
set -euo pipefail
SRC=$1 BUILD=$2
. "$SRC/tests/common/thoth_test.sh"
# XDG_RUNTIME_DIR is in it, and the user units' sockets below that (gpg-agent's
# .../gnupg/S.gpg-agent.browser): a short folder of the stage's if TMPDIR is long.
D=$(tt_tempdir units)
trap 'rm -rf "$D"' EXIT
PREFIX=$(sed -n 's/^CMAKE_INSTALL_PREFIX:PATH=//p' "$BUILD/CMakeCache.txt")
UNITDIR=$(sed -n 's/^THOTH_SYSTEMD_USER_UNITDIR:[A-Z]*=//p' "$BUILD/CMakeCache.txt")
UNITDIR_REL=$UNITDIR
case $UNITDIR in /*) ;; *) UNITDIR=$PREFIX/$UNITDIR ;; esac
DESTDIR=$D/root cmake --install "$BUILD" >/dev/null
U=$D/root$UNITDIR
[ -f "$U/thothd.socket" ] && [ -f "$U/thothd.service" ] || { echo "FAIL: units not installed in $UNITDIR"; exit 1; }
grep -q "^ExecStart=$PREFIX/sbin/thothd " "$U/thothd.service" || { echo "FAIL: ExecStart does not run $PREFIX/sbin/thothd"; exit 1; }
# Installed under another prefix (`cmake --install --prefix P`, docs/INSTALL.md)
# the unit runs P's thothd: it named the configured prefix's, which is not
# there (systemd: "Failed to locate executable").
touch "$D/stamp"
DESTDIR=$D/other cmake --install "$BUILD" --prefix /opt/thoth-elsewhere >/dev/null
# ... writing the unit (and thoth.pc) for its prefix in no fixed file of the
# build dir: one there was rewritten by the other installs ctest runs at the
# same time, each for its prefix, and an install got another's ExecStart or
# prefix= line, or found the file gone (ThothInstallText.cmake).  Only the
# manifest, and an install's own *.tmp files for a moment.
left=$(find "$BUILD" "$BUILD/systemd" -maxdepth 1 -type f -newer "$D/stamp" \
         ! -name 'install_manifest*.txt' ! -name '*.tmp')
[ -z "$left" ] || { echo "FAIL: cmake --install wrote in the build dir, shared by installs: $left"; exit 1; }
case $UNITDIR_REL in /*) OU=$D/other$UNITDIR_REL ;; *) OU=$D/other/opt/thoth-elsewhere/$UNITDIR_REL ;; esac
grep -q "^ExecStart=/opt/thoth-elsewhere/sbin/thothd " "$OU/thothd.service" ||
  { grep ExecStart "$OU/thothd.service";
    echo "FAIL: installed with --prefix /opt/thoth-elsewhere, ExecStart does not run its thothd"; exit 1; }
# ... and its man pages send the reader to P's docs folder: made once at
# build time they named the configured prefix's, not there.
if [ -f "$D/root$PREFIX/share/man/man1/thothctl.1" ]; then
  OM=$D/other/opt/thoth-elsewhere/share/man/man1/thothctl.1
  grep -q '/opt/thoth-elsewhere/share/doc/' "$OM" && ! grep -qF "$PREFIX/share/doc/" "$OM" ||
    { grep -n 'share/doc' "$OM"; echo "FAIL: installed with --prefix /opt/thoth-elsewhere, thothctl(1) does not name its docs folder"; exit 1; }
  grep -qF "$PREFIX/share/doc/" "$D/root$PREFIX/share/man/man1/thothctl.1" ||
    { echo "FAIL: thothctl(1) installed to $PREFIX does not name $PREFIX/share/doc/"; exit 1; }
else
  echo "skip: no man pages built (no scdoc): their docs folder is not checked"
fi
grep -q '^Type=notify$' "$U/thothd.service"
grep -q '^RuntimeDirectory=thoth$' "$U/thothd.service"
grep -q '^ListenStream=%t/thoth/thothd.sock$' "$U/thothd.socket"
# verify checks that ExecStart exists: point it at the staged thothd.
mkdir "$D/units"
sed "s|^ExecStart=$PREFIX|ExecStart=$D/root$PREFIX|" "$U/thothd.service" >"$D/units/thothd.service"
cp "$U/thothd.socket" "$D/units/"
mkdir -m 0700 "$D/xdg"
cd "$D/units"
for mode in system user; do
  flag=""; [ $mode = user ] && flag=--user
  if ! out=$(XDG_RUNTIME_DIR=$D/xdg systemd-analyze $flag verify --man=no ./thothd.socket ./thothd.service 2>&1) ||
     [ -n "$out" ]; then
    echo "FAIL: systemd-analyze $flag verify:"; echo "$out"; exit 1
  fi
done
echo "units verify cleanly (system and user mode)"
