#!/usr/bin/env bash
# tests/install/test_symbols.sh BUILD_DIR CC
#
# libthoth's symbol hygiene:
#  - libthoth.so.0 has SONAME libthoth.so.<major> and exports thoth_* only
#    (nm -D: every defined dynamic symbol, the version nodes aside);
#  - what thothc's generated dispatchers call (thoth__server_dispatch_table,
#    thoth__server_fail) is in version node THOTH_0.2, not THOTH_0: a
#    program built against it is refused by an older libthoth.so.0 at load;
#    module internals (chan_*, timerq_*) are not among them;
#    thoth_pool_instance_state (stop 37) is in THOTH_0.3;
#  - libthoth.a defines no global symbol but thoth_*;
#  - the peertext writer thothctl and echo-client link (a static library
#    of their own, tools/peertext) defines none in libthoth's thoth_
#    namespace: peertext_* only, so that no libthoth symbol, present or
#    future, can take a name of it (hist46: thoth_text* before);
#  - a program that defines its own chan_try_send and timerq_init (names
#    libthoth uses inside) links with libthoth.a and with libthoth.so and
#    calls both its own functions and libthoth's.
set -euo pipefail
BUILD=$1 CC=$2
SO=$BUILD/libthoth.so.0 A=$BUILD/libthoth.a
T=$(mktemp -d "${TMPDIR:-/tmp}/thoth-symbols-XXXXXX")
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

readelf -d "$SO" | grep 'Library soname: \[libthoth.so.0\]' >/dev/null || fail "SONAME is not libthoth.so.0"
nm -D --defined-only "$SO" | awk '{print $NF}' | grep -v -e '^thoth_' -e '^THOTH_0$' -e '^THOTH_0\.2$' -e '^THOTH_0\.3$' >"$T/bad" || true
[ ! -s "$T/bad" ] || fail "libthoth.so exports non-thoth symbols: $(tr '\n' ' ' <"$T/bad")"
for s in thoth__server_dispatch_table thoth__server_fail; do
	nm -D --defined-only --with-symbol-versions "$SO" | grep -E " $s@@THOTH_0\.2\$" >/dev/null ||
		fail "$s is not in version node THOTH_0.2"
done
nm -D --defined-only --with-symbol-versions "$SO" | grep -E ' thoth_pool_instance_state@@THOTH_0\.3$' >/dev/null ||
	fail "thoth_pool_instance_state is not in version node THOTH_0.3"
nm -D --defined-only --with-symbol-versions "$SO" | grep ' thoth_server_dispatch@@THOTH_0$' >/dev/null ||
	fail "thoth_server_dispatch left version node THOTH_0"
n=$(nm -D --defined-only "$SO" | awk '{print $NF}' | grep -c '^thoth_')
[ "$n" -gt 100 ] || fail "only $n thoth_* symbols exported (libthoth incomplete?)"
nm "$A" | grep ' [tT] chan_try_send$' >/dev/null || fail "libthoth.a lacks chan_try_send (test out of date?)"
nm -g --defined-only "$A" | awk 'NF==3{print $3}' | grep -v '^thoth_' >"$T/bad" || true
[ ! -s "$T/bad" ] || fail "libthoth.a has global non-thoth symbols: $(tr '\n' ' ' <"$T/bad")"
PT=$BUILD/tools/peertext/libthoth_peertext.a
[ -f "$PT" ] || fail "no $PT (test out of date?)"
nm -g --defined-only "$PT" | awk 'NF==3{print $3}' >"$T/pt"
[ -s "$T/pt" ] || fail "$PT defines no global symbol (test out of date?)"
grep -v '^peertext_' "$T/pt" >"$T/bad" || true
[ ! -s "$T/bad" ] || fail "$PT defines symbols outside peertext_*: $(tr '\n' ' ' <"$T/bad")"

cat >"$T/user.c" <<'C'
#include <stdio.h>
#include <string.h>
#include <thoth/error.h>
/* The user's own functions, named like libthoth's internals. */
int chan_try_send(void);
int timerq_init(void);
int chan_try_send(void) { return 42; }
int timerq_init(void) { return 7; }
int main(void)
{
	const char *s = thoth_strerror(THOTH_E_INVAL);
	if (chan_try_send() != 42 || timerq_init() != 7 || !s || !*s)
		return 1;
	puts("ok");
	return 0;
}
C
INC="-I$(dirname "$0")/../../include -I$BUILD/include"
# What libthoth.a needs besides libc (-lm, -luring, ...), from the build's thoth.pc.
PRIVATE=$(PKG_CONFIG_PATH=$BUILD pkg-config --static --libs-only-l thoth | sed 's/-lthoth//')
$CC -std=c11 $INC -o "$T/user_static" "$T/user.c" "$A" -pthread $PRIVATE
[ "$("$T/user_static")" = ok ] || fail "static user program"
$CC -std=c11 $INC -o "$T/user_shared" "$T/user.c" -L"$BUILD" -lthoth -Wl,-rpath,"$BUILD"
[ "$("$T/user_shared")" = ok ] || fail "shared user program"
echo "libthoth.so.0: $n thoth_* symbols exported, nothing else; libthoth.a: thoth_* only"
