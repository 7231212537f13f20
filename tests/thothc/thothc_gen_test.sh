#!/bin/sh
# thothc_gen_test.sh THOTHC CC INCLUDE_DIR CXX - thothc gen on the schema's
# edges: every schema either generates C that compiles warning-free
# (-std=c11 and -std=gnu11, -Wall -Wextra -Werror -pedantic) or is refused by thothc (exit
# 2) with a message that names the schema members at fault; and its header
# compiles as C++17 and C++20 (extern "C", like every public header).  Before, an
# i64 enum's minimum and every collision of generated names (below) passed
# thothc and failed later, in the C compiler, inside the generated files.
thothc=$1
cc=$2
inc=$3
cxx=$4
failures=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# compiles NAME: NAME.tidl (in $tmp) generates and compiles.
compiles() {
	out=$("$thothc" gen --lang c -o "$tmp/gen-$1" "$tmp/$1.tidl" 2>&1)
	if [ $? != 0 ]; then
		echo "FAIL: thothc gen $1.tidl refused it"; echo "$out"; failures=$((failures + 1)); return
	fi
	# gnu11 too, the project's dialect: `linux`, `unix`, `i386` are macros there
	for std in c11 gnu11; do
		if ! out=$("$cc" -std=$std -Wall -Wextra -Werror -pedantic -c -I"$inc" -I"$tmp/gen-$1" \
				"$tmp/gen-$1/$1.thoth.c" -o "$tmp/$1.o" 2>&1); then
			echo "FAIL: the C generated from $1.tidl does not compile as $std"
			echo "$out" | head -20; failures=$((failures + 1)); return
		fi
	done
	# beside every header of libthoth: a generated name that libthoth
	# declares too breaks here (gen refuses those: "libthoth declares")
	{
		for h in "$inc"/thoth/*.h; do printf '#include "thoth/%s"\n' "${h##*/}"; done
		printf '#include "%s.thoth.h"\nint thoth_gen_test_all;\n' "$1"
	} >"$tmp/$1.all.c"
	for std in c11 gnu11; do
		if ! out=$("$cc" -std=$std -Wall -Wextra -Werror -c -I"$inc" -I"$tmp/gen-$1" \
				"$tmp/$1.all.c" -o "$tmp/$1.all.o" 2>&1); then
			echo "FAIL: the header generated from $1.tidl does not compile beside libthoth's ($std)"
			echo "$out" | head -20; failures=$((failures + 1)); return
		fi
	done
	printf '#include "%s.thoth.h"\nint thoth_gen_test_tu;\n' "$1" >"$tmp/$1.cpp"
	for std in c++17 c++20; do
		if ! out=$("$cxx" -std=$std -Wall -Wextra -Werror -c -I"$inc" -I"$tmp/gen-$1" \
				"$tmp/$1.cpp" -o "$tmp/$1.cpp.o" 2>&1); then
			echo "FAIL: the header generated from $1.tidl does not compile as $std"
			echo "$out" | head -20; failures=$((failures + 1)); return
		fi
	done
	echo "ok: $1.tidl generates C that compiles (and a header that C++ includes)"
}

# refused NAME PATTERN...: thothc gen exits 2, writes nothing, and says
# each PATTERN.
refused() {
	name=$1
	shift
	out=$("$thothc" gen --lang c -o "$tmp/gen-$name" "$tmp/$name.tidl" 2>&1)
	got=$?
	if [ "$got" != 2 ]; then
		echo "FAIL: thothc gen $name.tidl exited $got, want 2"; echo "$out"
		failures=$((failures + 1)); return
	fi
	if [ -e "$tmp/gen-$name/$name.thoth.h" ]; then
		echo "FAIL: thothc gen $name.tidl wrote a header it refused"; failures=$((failures + 1)); return
	fi
	for p in "$@"; do
		if ! printf '%s\n' "$out" | grep -qF -- "$p"; then
			echo "FAIL: thothc gen $name.tidl does not say '$p'"; echo "$out"
			failures=$((failures + 1)); return
		fi
	done
	echo "ok: $name.tidl refused"
}

# GNU dialects predefine `linux`, `unix` and (32-bit x86) `i386` as 1: a
# member so named was `1` to gcc -std=gnu11 (the project's dialect) and the
# generated C did not compile.  They get an underscore, as keywords do; a
# program that uses the member writes `linux_` in any dialect.
cat >"$tmp/gnumacros.tidl" <<'T'
package gen.gnumacros;
version 1.0;
feature linux = 0;
error unix = 1;
enum i386 : u8 {
  linux = 0;
  unix = 1;
  i386 = 2;
}
struct S {
  1: u32 linux;
  2: optional string unix;
  3: i386 i386;
}
interface I {
  1: linux(u32 unix, S i386) -> (u32 linux) error unix;
  2: oneway i386(bool linux) @requires(linux);
  3: unix();
}
T
compiles gnumacros
cat >"$tmp/use_gnumacros.c" <<'T'
#include "gnumacros.thoth.h"
int use(void);
int use(void)
{
	gen_gnumacros_S_t s = { .linux_ = 1, .has_unix = false, .i386_ = GEN_GNUMACROS_I386_i386 };
	gen_gnumacros_I_linux_req_t r = { .unix_ = 2, .i386_ = s };
	gen_gnumacros_I_handlers_t h = { .linux_ = 0, .i386_ = 0, .unix_ = 0 };
	return (int)(r.unix_ + r.i386_.linux_) + (h.linux_ != 0);
}
T
if ! out=$("$cc" -std=gnu11 -Wall -Wextra -Werror -c -I"$inc" -I"$tmp/gen-gnumacros" \
		"$tmp/use_gnumacros.c" -o "$tmp/use_gnumacros.o" 2>&1); then
	echo "FAIL: a program using gnumacros' members as linux_, unix_, i386_ does not compile"
	echo "$out" | head -20; failures=$((failures + 1))
fi
cat >"$tmp/gnuclash.tidl" <<'T'
package gen.gnuclash;
version 1.0;
struct S {
  1: u32 linux;
  2: u32 linux_;
}
T
refused gnuclash "gnuclash.tidl:5:3: error: 'linux_' of struct S makes the C member 'linux_', as does 'linux' of struct S"

# libthoth's own names.  A package `thoth` makes THOTH_VERSION_MAJOR, which
# thoth/version.h defines; `thoth.chan` with a struct `limits` makes
# thoth_chan_limits_t of thoth/channel.h; a struct `loop` in `thoth` the
# loop's thoth_loop_t.  Each compiled alone and clashed only in a program
# that included both: refused by name now.  A package of the system (idl/)
# in another file (its C is in libthoth already) too, unless --c-prefix
# gives it other names.
cat >"$tmp/thothpkg.tidl" <<'T'
package thoth;
version 1.0;
struct Frame {
  1: u8 v;
}
T
refused thothpkg "thothpkg.tidl:2:1: error: the constants of package 'thoth' makes the C name 'THOTH_VERSION_MAJOR', which libthoth declares (<thoth/version.h>)"
cat >"$tmp/thothchan.tidl" <<'T'
package thoth.chan;
version 1.0;
struct limits {
  1: u8 v;
}
struct Frame {
  1: u8 v;
}
T
refused thothchan "thothchan.tidl:3:8: error: struct 'limits' makes the C name 'thoth_chan_limits_t', which libthoth declares (<thoth/channel.h>)"
sed -i 's/^struct limits {/struct Limits {/' "$tmp/thothchan.tidl"
compiles thothchan
cat >"$tmp/thothloop.tidl" <<'T'
package thoth;
version 1.0;
struct loop {
  1: u8 v;
}
T
refused thothloop "struct 'loop' makes the C name 'thoth_loop_t', which libthoth declares (<thoth/loop.h>)"
cat >"$tmp/myregistry.tidl" <<'T'
package thoth.registry;
version 1.0;
struct Mine {
  1: u8 v;
}
T
refused myregistry "myregistry.tidl: error: package 'thoth.registry' is the system's (idl/registry.tidl)"
"$thothc" gen --lang c --c-prefix mine_ -o "$tmp/gen-myregistry" "$tmp/myregistry.tidl" ||
	{ echo "FAIL: thoth.registry with --c-prefix refused"; failures=$((failures + 1)); }

# Two files whose headers have one name (a.tidl, sub/a.tidl: a.thoth.h):
# the importer's header included one of them twice and did not compile,
# and generated into one folder the second replaced the first.
mkdir -p "$tmp/samebase/sub"
printf 'package x;\nversion 1.0;\nstruct A {\n  1: u8 v;\n}\n' >"$tmp/samebase/a.tidl"
printf 'package y;\nversion 1.0;\nstruct B {\n  1: u8 v;\n}\n' >"$tmp/samebase/sub/a.tidl"
printf 'package m;\nversion 1.0;\nimport "a.tidl";\nimport "sub/a.tidl";\n' >"$tmp/samebase/samebase.tidl"
out=$("$thothc" gen --lang c -o "$tmp/gen-samebase" "$tmp/samebase/samebase.tidl" 2>&1)
got=$?
if [ $got != 2 ] || ! printf '%s\n' "$out" | grep -qF "sub/a.tidl: error: its header, 'a.thoth.h', has the name of $tmp/samebase/a.tidl's"; then
	echo "FAIL: imports a.tidl and sub/a.tidl: exit $got, want 2 and the reason"; echo "$out"
	failures=$((failures + 1))
else
	echo "ok: two imports with one header name refused"
fi

# Two roots of one run with one header name: the second's a.thoth.h and
# a.thoth.c replaced the first's in silence.  Refused before writing,
# naming both; one file given twice (by two paths) is fine.
out=$(cd "$tmp/samebase" && "$thothc" gen --lang c -o roots a.tidl sub/a.tidl 2>&1)
got=$?
if [ $got != 2 ] || [ -e "$tmp/samebase/roots/a.thoth.h" ] ||
   ! printf '%s\n' "$out" | grep -qF "thothc: 'a.tidl' and 'sub/a.tidl' both make roots/a.thoth.h"; then
	echo "FAIL: roots a.tidl and sub/a.tidl: exit $got, want 2, the reason and nothing written"
	echo "$out"; ls "$tmp/samebase/roots" 2>&1; failures=$((failures + 1))
elif ! out=$(cd "$tmp/samebase" && "$thothc" gen --lang c -o twice a.tidl ./a.tidl 2>&1); then
	echo "FAIL: one root given twice refused"; echo "$out"; failures=$((failures + 1))
else
	echo "ok: two roots with one header name refused"
fi

# A lattice of imports (each file imports the next two) reaches the last
# file by fib(40) paths, and the schema hash read each path's files: gen
# never finished.  Refused at once, by name.
mkdir -p "$tmp/lattice"
i=0
while [ $i -le 41 ]; do
	{
		printf 'package l%d;\nversion 1.0;\n' $i
		[ $i -lt 40 ] && printf 'import "l%d.tidl";\nimport "l%d.tidl";\n' $((i + 1)) $((i + 2))
		[ $i = 40 ] && printf 'import "l41.tidl";\n'
		printf 'struct S {\n  1: u8 v;\n}\n'
	} >"$tmp/lattice/l$i.tidl"
	i=$((i + 1))
done
out=$(timeout 60 "$thothc" gen --lang c -o "$tmp/gen-lattice" "$tmp/lattice/l0.tidl" 2>&1)
got=$?
if [ $got != 2 ] || ! printf '%s\n' "$out" | grep -qF "l0.tidl: error: its imports reach the same files"; then
	echo "FAIL: a lattice of 42 imports: exit $got (124: it did not finish), want 2 and the reason"
	echo "$out" | head -5; failures=$((failures + 1))
else
	echo "ok: a lattice of imports refused"
fi
"$thothc" gen --lang c -o "$tmp/gen-lattice" "$tmp/lattice/l30.tidl" ||
	{ echo "FAIL: a lattice of 12 imports refused"; failures=$((failures + 1)); }

cat >"$tmp/keywords.tidl" <<'T'
package gen.keywords;
version 1.0;
error int = 1;
enum switch : u8 {
  case = 0;
  default = 1;
}
struct struct_ {
  1: u32 int;
  2: string char;
  3: switch while;
  4: optional u64 register;
}
struct if {
}
interface for {
  1: do(u32 return, struct_ goto) -> (u32 break, if continue) error int;
  2: oneway sizeof(bool static);
}
T
compiles keywords

# C++ keywords (and alternative tokens) as names: the header did not
# compile as C++ (a member called class, new, this, or ...).
cat >"$tmp/cxxwords.tidl" <<'T'
package gen.cxxwords;
version 1.0;
struct S {
  1: u32 class;
  2: string new;
  3: optional u32 this;
  4: u32 template;
  5: u32 private;
  6: bool or;
  7: u32 requires;
}
interface I {
  1: delete(u32 operator) -> (u32 namespace);
  2: oneway throw(u32 x);
}
T
compiles cxxwords
# ... while C code keeps the schema's names (renaming them for C too broke
# every C service that set .delete = on_delete), and C++ code gets NAME_.
cat >"$tmp/cxxwords_use.c" <<'T'
#include "cxxwords.thoth.h"
static int on_delete(void *self, const gen_cxxwords_I_delete_req_t *req, gen_cxxwords_I_delete_resp_t *resp,
		     thoth_arena_t *arena)
{
	(void)self; (void)arena;
	resp->namespace = req->operator;
	return 0;
}
const gen_cxxwords_I_handlers_t cxxwords_handlers = { .delete = on_delete };
unsigned cxxwords_class(const gen_cxxwords_S_t *s) { return s->class + s->this + s->or; }
T
cat >"$tmp/cxxwords_use.cpp" <<'T'
#include "cxxwords.thoth.h"
unsigned cxxwords_class(const gen_cxxwords_S_t *s) { return s->class_ + s->this_ + s->or_ + s->new_.len; }
T
if ! out=$("$cc" -std=c11 -Wall -Wextra -Werror -pedantic -c -I"$inc" -I"$tmp/gen-cxxwords" \
		"$tmp/cxxwords_use.c" -o "$tmp/cxxwords_use.o" 2>&1); then
	echo "FAIL: C code using cxxwords' names as the schema gives them does not compile"; echo "$out" | head -20
	failures=$((failures + 1))
elif ! out=$("$cxx" -std=c++17 -Wall -Wextra -Werror -c -I"$inc" -I"$tmp/gen-cxxwords" \
		"$tmp/cxxwords_use.cpp" -o "$tmp/cxxwords_use.cpp.o" 2>&1); then
	echo "FAIL: C++ code using cxxwords' NAME_ members does not compile"; echo "$out" | head -20
	failures=$((failures + 1))
else
	echo "ok: C keeps the schema's names, C++ gets NAME_"
fi
cat >"$tmp/cxxclash.tidl" <<'T'
package gen.cxxclash;
version 1.0;
struct S {
  1: u32 new;
  2: u32 new_;
}
T
refused cxxclash "makes the C member 'new_'"

cat >"$tmp/edges.tidl" <<'T'
package gen.edges;
version 1.0;
struct Empty {
}
enum Min64 : i64 {
  MIN = -9223372036854775808;
  MAX = 9223372036854775807;
}
enum Min32 : i32 {
  MIN = -2147483648;
  MAX = 2147483647;
}
enum Max64 : u64 {
  ZERO = 0;
  MAX = 18446744073709551615;
}
strict enum Min8 : i8 {
  MIN = -128;
  ZERO = 0;
}
struct Node {
  1: Min64 a;
  2: Min32 b;
  3: Max64 c;
  4: Min8 d;
  5: list<Node> kids;
  6: optional list<list<list<Empty>>> deep;
}
interface Edges {
  1: nothing() -> ();
  2: empty(Empty e) -> (Empty f);
  3: tree(Node n) -> (optional Node m);
}
T
compiles edges

# The generated C marks its call path with THOTH__HOT_CLIENT and
# THOTH__HOT_SERVE (libthoth's hot groups); a program opts out by
# predefining either empty.  One #ifndef guarded both: predefining one alone
# left the other undefined and the .c did not compile.
for m in THOTH__HOT_CLIENT THOTH__HOT_SERVE; do
	if ! out=$("$cc" -std=c11 -Wall -Wextra -Werror -pedantic -c -I"$inc" -I"$tmp/gen-edges" "-D$m=" \
			"$tmp/gen-edges/edges.thoth.c" -o "$tmp/edges.$m.o" 2>&1); then
		echo "FAIL: the C generated from edges.tidl does not compile with -D$m= alone"
		echo "$out" | head -10; failures=$((failures + 1))
	else
		echo "ok: the generated C compiles with -D$m= alone"
	fi
done

# A failed write (a file size limit here, a full disk alike) leaves the
# generated files as they were: a header cut at the limit was taken as up to
# date by the next build.
cp "$tmp/gen-edges/edges.thoth.h" "$tmp/edges.h.before"
echo '// changed' >>"$tmp/edges.tidl"
out=$( (ulimit -f 1; trap '' XFSZ; "$thothc" gen --lang c -o "$tmp/gen-edges" "$tmp/edges.tidl"; echo "exit $?") 2>&1 | cat)
if ! printf '%s\n' "$out" | grep -q "exit 2"; then
	echo "FAIL: gen with a failed write: $out"; failures=$((failures + 1))
elif ! cmp -s "$tmp/gen-edges/edges.thoth.h" "$tmp/edges.h.before"; then
	echo "FAIL: gen with a failed write left a changed header ($(wc -c <"$tmp/gen-edges/edges.thoth.h") bytes)"
	failures=$((failures + 1))
elif ls "$tmp/gen-edges" | grep -qv '^edges\.thoth\.[ch]$'; then
	echo "FAIL: gen with a failed write left a temporary file"; failures=$((failures + 1))
else
	echo "ok: gen with a failed write leaves the generated files whole"
fi

# Every name at its limit (package 128 characters, names 64 (a letter and 63), lists nested
# 16 deep): the generator's 256-byte name buffers made thothc abort (core
# dump) on this legal schema.
p31=ppppppppppppppppppppppppppppppp
n63=nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn
l16="list<list<list<list<list<list<list<list<list<list<list<list<list<list<list<list<S$n63"
cat >"$tmp/limits.tidl" <<T
package $p31.$p31.$p31.${p31}q;
version 1.0;
struct S$n63 {
  1: u32 x;
}
struct T$n63 {
  1: $l16>>>>>>>>>>>>>>>> f$n63;
}
interface I$n63 {
  1: m$n63(T$n63 a$n63) -> (S$n63 r$n63);
}
T
compiles limits

# Two interfaces whose methods join to one name: I.m_req and I_m.req both
# made c_I_m_req_req_t (and I.m's info is I_m's interface info).
cat >"$tmp/joined.tidl" <<'T'
package c;
version 1.0;
interface I {
  1: m() -> ();
  2: m_req() -> ();
}
interface I_m {
  1: req() -> ();
}
T
refused joined "joined.tidl:8:3: error: method 'I_m.req' makes the C name 'c_I_m_req', as does method 'I.m_req' (" \
	"joined.tidl:7:11: error: interface 'I_m' makes the C name 'c_I_m_info', as does method 'I.m' ("

# Methods called info and id: the stub c_Dev_info was the interface's
# info, and the ordinal macro C_DEV_ID replaced the interface id (without
# -Werror, silently: C_DEV_ID was 2).
cat >"$tmp/methods.tidl" <<'T'
package c;
version 1.0;
interface Dev {
  1: info() -> (u32 x);
  2: id() -> (u32 y);
  3: do() -> ();
  4: do_() -> ();
}
T
refused methods "methods.tidl:4:3: error: method 'Dev.info' makes the C name 'c_Dev_info', as does interface 'Dev'" \
	"methods.tidl:5:3: error: method 'Dev.id' makes the C name 'C_DEV_ID', as does interface 'Dev'" \
	"methods.tidl:7:3: error: method 'Dev.do_' makes the C member 'do_', as does method 'Dev.do'"

# A struct named like a list's type, enum values that join, a field named
# like another's presence flag or C-keyword escape.
cat >"$tmp/types.tidl" <<'T'
package c;
version 1.0;
struct S {
  1: u32 x;
}
struct S_list {
  1: list<S> y;
}
enum E : u8 {
  A_B = 0;
}
enum E_A : u8 {
  B = 1;
}
struct T {
  1: u32 has_x;
  2: optional u32 x;
  3: u32 int;
  4: u32 int_;
}
T
refused types "types.tidl:13:3: error: enum value 'E_A.B' makes the C name 'C_E_A_B', as does enum value 'E.A_B'" \
	"error: type list<S> makes the C name 'c_S_list_t', as does struct 'S_list'" \
	"types.tidl:17:3: error: optional 'x' of struct T makes the C member 'has_x', as does 'has_x' of struct T" \
	"types.tidl:19:3: error: 'int_' of struct T makes the C member 'int_', as does 'int' of struct T"

# Across files: an import whose package joins with a name of this one.
cat >"$tmp/a_b.tidl" <<'T'
package a.b;
version 1.0;
struct S {
  1: u32 x;
}
T
cat >"$tmp/across.tidl" <<'T'
package a;
version 1.0;
import "a_b.tidl";
struct b_S {
  1: a.b.S s;
}
T
refused across "across.tidl:4:8: error: struct 'b_S' makes the C name 'a_b_S_t', as does struct 'S' ("

[ "$failures" = 0 ] || { echo "$failures failure(s)"; exit 1; }
