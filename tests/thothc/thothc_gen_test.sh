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

# 32-bit x86 too, where the compiler can build for it (gcc-multilib): GNU
# dialects predefine `i386` there, and pointers and size_t are 32 bits.
# Skipped, saying so, where it cannot.
printf '#include <stdint.h>\n#include <string.h>\nint m32_probe;\n' >"$tmp/m32.c"
if "$cc" -m32 -c "$tmp/m32.c" -o "$tmp/m32.o" 2>/dev/null; then
	m32=yes
else
	m32=
	echo "skip: 32-bit x86 compiles (-m32): $cc cannot build for it here (Debian: gcc-multilib)"
fi

# compiles NAME: NAME.tidl (in $tmp) generates and compiles.
compiles() {
	out=$("$thothc" gen --lang c -o "$tmp/gen-$1" "$tmp/$1.tidl" 2>&1)
	if [ $? != 0 ]; then
		echo "FAIL: thothc gen $1.tidl refused it"; echo "$out"; failures=$((failures + 1)); return
	fi
	# gnu11 too, the project's dialect: `linux`, `unix`, `i386` are macros there
	# (`i386` only on 32-bit x86: gnu11-m32, where the compiler can)
	for std in c11 gnu11 ${m32:+gnu11-m32}; do
		case $std in *-m32) arch=-m32;; *) arch=;; esac
		if ! out=$("$cc" $arch -std=${std%-m32} -Wall -Wextra -Werror -pedantic -c -I"$inc" -I"$tmp/gen-$1" \
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
for arch in "" ${m32:+-m32}; do
	if ! out=$("$cc" $arch -std=gnu11 -Wall -Wextra -Werror -c -I"$inc" -I"$tmp/gen-gnumacros" \
			"$tmp/use_gnumacros.c" -o "$tmp/use_gnumacros.o" 2>&1); then
		echo "FAIL: a program using gnumacros' members as linux_, unix_, i386_ does not compile ($arch)"
		echo "$out" | head -20; failures=$((failures + 1))
	fi
done
cat >"$tmp/gnuclash.tidl" <<'T'
package gen.gnuclash;
version 1.0;
struct S {
  1: u32 linux;
  2: u32 linux_;
}
T
refused gnuclash "gnuclash.tidl:5:3: error: 'linux_' of struct S makes the C member 'linux_', as does 'linux' of struct S"

# Members named like the C library's macros, included before the header by
# the program: `errno`, `stdin`, `EOF`, `NULL`, `SIZE_MAX`, glibc's
# `st_mtime` (st_mtim.tv_sec) were their expansions and did not compile;
# `__STDC__`, `__func__` are the compiler's; a member `uint32_t` changed
# what the next `uint32_t` meant in C++; a handler named `assert` or `log`
# (tgmath) was called as the macro.  Every object-like macro this machine's
# headers define is a field here (thothc's list is fixed: a new one fails
# this test), the function-like ones are fields and methods.
hdrs="assert complex ctype errno fenv float inttypes iso646 limits locale math setjmp signal
stdalign stdarg stdatomic stdbool stddef stdint stdio stdlib stdnoreturn string tgmath threads time
uchar wchar wctype unistd fcntl sys/types sys/stat pthread"
for h in $hdrs; do printf '#include <%s.h>\n' "$h"; done >"$tmp/libc_all.h"
"$cc" -std=gnu11 -dM -E "$tmp/libc_all.h" | awk '$1 == "#define" { print $2 }' | grep -v '^_' >"$tmp/libc_macros"
grep -v '(' "$tmp/libc_macros" | sort -u >"$tmp/libc_obj"
grep '(' "$tmp/libc_macros" | sed 's/(.*//' | grep '^[a-z]' | sort -u >"$tmp/libc_fn"
{
	printf 'package gen.libcnames;\nversion 1.0;\nstruct S {\n'
	n=1
	for name in $(cat "$tmp/libc_obj" "$tmp/libc_fn") __STDC__ __func__ __LINE__ __x86_64__ _Bool \
			uint32_t size_t int8_t thoth_str_t; do
		printf '  %d: u32 %s;\n' $n "$name"; n=$((n + 1))
	done
	printf '  %d: optional u32 errno_t;\n}\ninterface I {\n' $n
	n=1
	for name in assert offsetof log round floor setjmp va_arg isnan errno stdin EOF NULL; do
		printf '  %d: %s(S s, u32 uint32_t) -> (u32 or);\n' $n "$name"; n=$((n + 1))
	done
	printf '  %d: oneway and(u32 not);\n}\n' $n
} >"$tmp/libcnames.tidl"
compiles libcnames
# ... with every one of those headers included first, as C and C++ (the
# headers C++ has), and 32-bit below
{ cat "$tmp/libc_all.h"; printf '#include "libcnames.thoth.h"\nint libcnames_errno(const gen_libcnames_S_t *s);\n'
  printf 'int libcnames_errno(const gen_libcnames_S_t *s) { return (int)(s->errno_ + s->EOF_ + s->stdin_ + s->st_mtime_); }\n'; } >"$tmp/libcnames_use.c"
grep -vE 'complex|stdatomic|tgmath|threads|stdnoreturn|stdalign' "$tmp/libc_all.h" >"$tmp/libcnames_use.cpp"
printf '#include "libcnames.thoth.h"\nint libcnames_or(const gen_libcnames_I_assert_resp_t *r) { return (int)r->or_; }\n' \
	>>"$tmp/libcnames_use.cpp"
for std in c11 gnu11 c++17 c++20 ${m32:+gnu11-m32}; do
	case $std in c*+*) c=$cxx; src=$tmp/libcnames_use.cpp;; *) c=$cc; src=$tmp/libcnames_use.c;; esac
	case $std in *-m32) arch=-m32;; *) arch=;; esac
	if ! out=$("$c" $arch -std=${std%-m32} -Wall -Wextra -Werror -c -I"$inc" -I"$tmp/gen-libcnames" "$src" \
			-o "$tmp/libcnames_use.o" 2>&1); then
		echo "FAIL: libcnames' header after the C library's headers does not compile as $std"
		echo "$out" | head -20; failures=$((failures + 1))
	fi
done
echo "ok: members named like the C library's macros compile after its headers"
# POSIX's lowercase macros outside those headers, in thothc's list by hand:
# <netdb.h>'s h_errno (a function call) and h_addr, <netinet/in.h>'s
# s6_addr* and <dirent.h>'s d_fileno (member paths).
cat >"$tmp/posixnames.tidl" <<'T'
package gen.posixnames;
version 1.0;
struct S {
  1: u32 h_errno;
  2: u32 h_addr;
  3: u32 s6_addr;
  4: u32 s6_addr16;
  5: u32 s6_addr32;
  6: u32 d_fileno;
}
T
compiles posixnames
printf '#include <netdb.h>\n#include <netinet/in.h>\n#include <dirent.h>\n#include "posixnames.thoth.h"
unsigned posixnames_sum(const gen_posixnames_S_t *s);
unsigned posixnames_sum(const gen_posixnames_S_t *s) { return s->h_errno_ + s->s6_addr_ + s->d_fileno_; }\n' \
	>"$tmp/posixnames_use.c"
if ! out=$("$cc" -std=gnu11 -Wall -Wextra -Werror -c -I"$inc" -I"$tmp/gen-posixnames" "$tmp/posixnames_use.c" \
		-o "$tmp/posixnames_use.o" 2>&1); then
	echo "FAIL: posixnames' header after <netdb.h>, <netinet/in.h>, <dirent.h> does not compile"
	echo "$out" | head -20; failures=$((failures + 1))
else
	echo "ok: h_errno, h_addr, s6_addr*, d_fileno as members"
fi

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
refused myregistry "myregistry.tidl:1:1: error: package 'thoth.registry' is the system's (idl/registry.tidl), but this file is not that schema"
"$thothc" gen --lang c --c-prefix mine_ -o "$tmp/gen-myregistry" "$tmp/myregistry.tidl" ||
	{ echo "FAIL: thoth.registry with --c-prefix refused"; failures=$((failures + 1)); }
# What makes a system package the system's is its schema, not its file's
# name: a user's own registry.tidl declaring thoth.registry passed (its
# C names are libthoth's, with other meanings), and the system's own
# schema copied under another name was refused.
mkdir -p "$tmp/mine" "$tmp/copy"
cp "$tmp/myregistry.tidl" "$tmp/mine/registry.tidl"
out=$("$thothc" gen --lang c -o "$tmp/mine/gen" "$tmp/mine/registry.tidl" 2>&1)
got=$?
if [ $got != 2 ] || [ -e "$tmp/mine/gen/registry.thoth.h" ] ||
   ! printf '%s\n' "$out" | grep -qF "mine/registry.tidl:1:1: error: package 'thoth.registry' is the system's (idl/registry.tidl), but this file is not that schema"; then
	echo "FAIL: a user's registry.tidl declaring thoth.registry: exit $got, want 2 and the reason"
	echo "$out"; failures=$((failures + 1))
else
	echo "ok: a user's registry.tidl declaring thoth.registry refused"
fi
idl=$(dirname "$inc")/idl
cp "$idl/registry.tidl" "$tmp/copy/my_registry.tidl"
cp "$idl/common.tidl" "$tmp/copy/common.tidl"
if ! out=$("$thothc" gen --lang c -o "$tmp/copy/gen" "$tmp/copy/my_registry.tidl" "$tmp/copy/common.tidl" 2>&1); then
	echo "FAIL: the system's registry.tidl under another name refused"; echo "$out"
	failures=$((failures + 1))
elif ! out=$("$cc" -std=gnu11 -Wall -Wextra -Werror -c -I"$inc" -I"$tmp/copy/gen" \
		"$tmp/copy/gen/my_registry.thoth.c" -o "$tmp/copy/r.o" 2>&1); then
	echo "FAIL: the system's registry.tidl under another name does not compile"; echo "$out" | head
	failures=$((failures + 1))
else
	echo "ok: the system's registry.tidl under another name generates"
fi

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

# An import's path is quoted in a comment of the importer's header: a folder
# called x* made it '/* import "x*/y.tidl" */', the comment ended early and
# the rest of the #include line was C.
mkdir -p "$tmp/star/x*"
printf 'package y;\nversion 1.0;\nstruct Y {\n  1: u8 v;\n}\n' >"$tmp/star/x*/y.tidl"
printf 'package star;\nversion 1.0;\nimport "x*/y.tidl";\nstruct S {\n  1: y.Y v;\n}\n' >"$tmp/star/star.tidl"
if ! out=$("$thothc" gen --lang c -o "$tmp/star/gen" "$tmp/star/star.tidl" "$tmp/star/x*/y.tidl" 2>&1) ||
   ! out=$("$cc" -std=c11 -Wall -Wextra -Werror -pedantic -c -I"$inc" -I"$tmp/star/gen" \
		"$tmp/star/gen/star.thoth.c" -o "$tmp/star/star.o" 2>&1); then
	echo "FAIL: an import from a folder called x* does not compile"; echo "$out" | head; failures=$((failures + 1))
else
	echo "ok: an import path with */ in it compiles"
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

# A member named like a type the header uses (the struct's own type, the
# arena, a list's type): in a C++ struct the member hides the typedef for
# the members after it, so every NAME ending in _t gets the C++ variant.
cat >"$tmp/cxxtypes.tidl" <<'T'
package gen.cxxtypes;
version 1.0;
struct T {
  1: u32 x;
}
struct S {
  1: T gen_cxxtypes_T_t;
  2: T y;
  3: list<u32> thoth_list_u32_t;
  4: list<u32> z;
  5: string thoth_str_t;
  6: string s;
}
interface I {
  1: thoth_arena_t(u32 a) -> (u32 b);
  2: f(u32 a) -> (u32 b);
}
T
compiles cxxtypes

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

# Two schema files of one package, generated apart (thoth_tidl_compile runs
# thothc once per file) and included by one program: the header guard is
# the package's, so the second header vanished in silence and its types
# were "unknown" in the user's code.  Now the second stops the compile,
# naming itself; the same schema included twice is still fine.
mkdir -p "$tmp/onepkg"
printf 'package p;\nversion 1.0;\nstruct A {\n  1: u8 x;\n}\n' >"$tmp/onepkg/p1.tidl"
printf 'package p;\nversion 1.0;\nstruct B {\n  1: u8 y;\n}\n' >"$tmp/onepkg/p2.tidl"
printf '#include "p1.thoth.h"\n#include "p2.thoth.h"\np_B_t b;\n' >"$tmp/onepkg/both.c"
printf '#include "p1.thoth.h"\n#include "p1.thoth.h"\np_A_t a;\n' >"$tmp/onepkg/twice.c"
if ! out=$("$thothc" gen --lang c -o "$tmp/onepkg/g" "$tmp/onepkg/p1.tidl" 2>&1) ||
   ! out=$("$thothc" gen --lang c -o "$tmp/onepkg/g" "$tmp/onepkg/p2.tidl" 2>&1); then
	echo "FAIL: one package in two files: gen refused a file"; echo "$out"; failures=$((failures + 1))
elif out=$("$cc" -std=c11 -c -I"$inc" -I"$tmp/onepkg/g" "$tmp/onepkg/both.c" -o "$tmp/onepkg/both.o" 2>&1) ||
     ! printf '%s\n' "$out" | grep -q 'error.*p2.thoth.h: a header of another schema of package p'; then
	echo "FAIL: two headers of package p in one program: want the compile stopped by p2.thoth.h's #error"
	echo "$out" | head; failures=$((failures + 1))
elif ! out=$("$cc" -std=c11 -Wall -Wextra -Werror -pedantic -c -I"$inc" -I"$tmp/onepkg/g" \
		"$tmp/onepkg/twice.c" -o "$tmp/onepkg/twice.o" 2>&1); then
	echo "FAIL: one header included twice does not compile"; echo "$out" | head; failures=$((failures + 1))
else
	echo "ok: two schema files of one package in one program stop the compile, by name"
fi

# The stubs and handlers as docs/IDL.md ("Generated C") writes them: a
# two-way stub (client, &req, &resp, arena), a oneway stub (client, &req)
# returning int, handlers int (self, req, resp, arena) and void (self, req).
# The page gave no oneway stub or handler signature; a user read them from
# the generated header.
mkdir -p "$tmp/docapi"
cat >"$tmp/docapi/reg.tidl" <<'T'
package doc.reg;
version 1.0;
interface Registry {
  1: resolve(string name) -> (u64 lease);
  2: oneway heartbeat(u64 lease);
}
T
cat >"$tmp/docapi/use.c" <<'T'
#include "reg.thoth.h"
static int on_resolve(void *self, const doc_reg_Registry_resolve_req_t *req,
		      doc_reg_Registry_resolve_resp_t *resp, thoth_arena_t *arena)
{
	(void)self; (void)arena;
	resp->lease = req->name.len;
	return 0;
}
static void on_heartbeat(void *self, const doc_reg_Registry_heartbeat_req_t *req)
{
	(void)self; (void)req;
}
const doc_reg_Registry_handlers_t doc_handlers = { .resolve = on_resolve, .heartbeat = on_heartbeat };
int doc_calls(thoth_client_t *client, thoth_arena_t *arena);
int doc_calls(thoth_client_t *client, thoth_arena_t *arena)
{
	doc_reg_Registry_resolve_req_t req = { .name = { "x", 1 } };
	doc_reg_Registry_resolve_resp_t resp;
	int r = doc_reg_Registry_resolve(client, &req, &resp, arena);
	doc_reg_Registry_heartbeat_req_t hb = { .lease = 1 };
	int s = doc_reg_Registry_heartbeat(client, &hb);
	return r ? r : s;
}
T
if ! out=$("$thothc" gen --lang c -o "$tmp/docapi/g" "$tmp/docapi/reg.tidl" 2>&1) ||
   ! out=$("$cc" -std=c11 -Wall -Wextra -Werror -pedantic -c -I"$inc" -I"$tmp/docapi/g" \
		"$tmp/docapi/use.c" -o "$tmp/docapi/use.o" 2>&1); then
	echo "FAIL: stubs and handlers as docs/IDL.md writes them do not compile"; echo "$out" | head -20
	failures=$((failures + 1))
else
	echo "ok: stubs and handlers as docs/IDL.md writes them"
fi

# The files of one run are one program: C names two of them make, where
# neither imports the other, were written and clashed only in the user's
# compile ("redefinition of struct a_b_S", or a header dropped behind the
# other's guard).  Refused now, naming both members, nothing written; files
# that share an import are fine.
mkdir -p "$tmp/oneprog/sub"
printf 'package a;\nversion 1.0;\nstruct b_S {\n  1: u8 x;\n}\n' >"$tmp/oneprog/a.tidl"
printf 'package a.b;\nversion 1.0;\nstruct S {\n  1: u16 y;\n}\n' >"$tmp/oneprog/ab.tidl"
printf 'package c;\nversion 1.0;\nstruct C {\n  1: u8 z;\n}\n' >"$tmp/oneprog/c.tidl"
printf 'package u;\nversion 1.0;\nimport "c.tidl";\nstruct U {\n  1: c.C c;\n}\n' >"$tmp/oneprog/u.tidl"
printf 'package v;\nversion 1.0;\nimport "../c.tidl";\nstruct V {\n  1: c.C c;\n}\n' >"$tmp/oneprog/sub/v.tidl"
out=$(cd "$tmp/oneprog" && "$thothc" gen --lang c -o g a.tidl ab.tidl 2>&1)
got=$?
if [ $got != 2 ] || [ -e "$tmp/oneprog/g/a.thoth.h" ] ||
   ! printf '%s\n' "$out" | grep -qF "ab.tidl:3:8: error: struct 'S' makes the C name 'a_b_S_t', as does struct 'b_S' (a.tidl:3:8)"; then
	echo "FAIL: one run of a.tidl (a.b_S) and ab.tidl (a.b.S): exit $got, want 2, both named, nothing written"
	echo "$out"; failures=$((failures + 1))
elif out=$(cd "$tmp/onepkg" && "$thothc" gen --lang c -o g2 p1.tidl p2.tidl 2>&1) ||
     ! printf '%s\n' "$out" | grep -qF "p2.tidl:2:1: error: package 'p' is declared by p1.tidl too (line 2)"; then
	echo "FAIL: one run of two files of package p: want exit 2 naming both"; echo "$out"; failures=$((failures + 1))
elif ! out=$(cd "$tmp/oneprog" && "$thothc" gen --lang c -o g3 u.tidl sub/v.tidl c.tidl 2>&1); then
	echo "FAIL: one run of files sharing an import refused"; echo "$out"; failures=$((failures + 1))
else
	echo "ok: C names two files of one run make are refused, by name, before writing"
fi

# One file given twice under two names (a symlink, a hard link): listed
# once by its device and inode, so no pair clashed, and a.thoth.c and
# b.thoth.c were both written with the same C names (duplicate symbols at
# the user's link).  The same name twice makes one pair of files: fine.
ln -s c.tidl "$tmp/oneprog/c_link.tidl"
out=$(cd "$tmp/oneprog" && "$thothc" gen --lang c -o g4 c.tidl c_link.tidl 2>&1)
got=$?
if [ $got != 2 ] || [ -e "$tmp/oneprog/g4/c.thoth.h" ] ||
   ! printf '%s\n' "$out" | grep -qF "thothc: 'c_link.tidl' is 'c.tidl' (the same file)"; then
	echo "FAIL: one run of c.tidl and its symlink c_link.tidl: exit $got, want 2 naming both, nothing written"
	echo "$out"; failures=$((failures + 1))
elif ! out=$(cd "$tmp/oneprog" && "$thothc" gen --lang c -o g5 c.tidl ./c.tidl 2>&1); then
	echo "FAIL: one run of c.tidl and ./c.tidl refused"; echo "$out"; failures=$((failures + 1))
else
	echo "ok: one file given twice under two names is refused, by name"
fi

[ "$failures" = 0 ] || { echo "$failures failure(s)"; exit 1; }
