#!/bin/sh
# thothc_cli_test.sh THOTHC SCHEMA_DIR - the thothc command line end to end:
# exit status 0/1/2 of `check`, usage errors, --help and --version.
thothc=$1
dir=$2
failures=0
# The hang guard of the two big inputs below, seconds: 60, or what ctest
# sets (300 in the ASan+UBSan build, tests/thothc/CMakeLists.txt).
hang=${THOTHC_CLI_HANG_S:-60}

# expect STATUS PATTERN command...: exit status is STATUS and stderr+stdout
# match the grep pattern PATTERN.
expect() {
	want=$1 pattern=$2
	shift 2
	out=$("$@" 2>&1)
	got=$?
	if [ "$got" != "$want" ]; then
		echo "FAIL: '$*' exited $got, want $want"; echo "$out"; failures=$((failures + 1))
	elif ! printf '%s\n' "$out" | grep -q -- "$pattern"; then
		echo "FAIL: '$*' output lacks '$pattern'"; echo "$out"; failures=$((failures + 1))
	else
		echo "ok: $*"
	fi
}

c=$dir/compat
expect 0 '' "$thothc" check "$c/v1.tidl" "$c/v1_1_compatible.tidl"
expect 1 "v1_1_breaking.tidl:4:3: error: field 'x' of struct 'Point' changed type from i32 to i64" \
	"$thothc" check "$c/v1.tidl" "$c/v1_1_breaking.tidl"
expect 1 "v1.tidl:5:3: error: field 2 'y' of struct 'Point' removed" \
	"$thothc" check "$c/v1.tidl" "$c/v1_1_breaking.tidl"
expect 1 'thothc: 2 breaking changes' "$thothc" check "$c/v1.tidl" "$c/v1_1_breaking.tidl"
# retiring with `reserved` is compatible; removing without it is a breaking
# change of NEW (exit 1, located), never a syntax or semantic error (exit 2)
expect 0 "v1_2_retired.tidl:6:12: warning: field 3 'label' of struct 'Point' retired" \
	"$thothc" check "$c/v1_1_compatible.tidl" "$c/v1_2_retired.tidl"
expect 1 "v1_1_compatible.tidl:5:3: error: field 2 'y' of struct 'Point' removed: it is required" \
	"$thothc" check "$c/v1_1_compatible.tidl" "$c/v1_2_removed.tidl"
expect 1 "v1_1_compatible.tidl:10:3: error: method 2 'Plot.clear' removed without reserving its ordinal" \
	"$thothc" check "$c/v1_1_compatible.tidl" "$c/v1_2_removed.tidl"
expect 2 "missing_semicolon.tidl:5:17: error: expected ';' after field, found number '2' on line 6" \
	"$thothc" check "$c/v1.tidl" "$dir/bad/missing_semicolon.tidl"
expect 2 "cannot open '$dir/nope.tidl': No such file or directory" \
	"$thothc" check "$dir/nope.tidl" "$c/v1.tidl"
expect 2 'check needs exactly two files' "$thothc" check "$c/v1.tidl"
expect 2 "unknown command 'frobnicate' (thothc --help lists the commands and options)" "$thothc" frobnicate
# one line, not the whole usage after it (ops40)
if "$thothc" frobnicate 2>&1 | grep -q "usage: thothc"; then echo "FAIL: thothc frobnicate printed the usage"; failures=$((failures + 1)); fi
expect 2 'missing command' "$thothc"
expect 2 'gen needs -o OUTDIR' "$thothc" gen --lang c "$c/v1.tidl"
# fmt: --check lists what is not canonical (exit 1), rewrites in place,
# refuses a syntax error (exit 2); lint: exit 1 with findings
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf 'package demo;version 1.0;\nstruct Point{1:i32 x; // keep me\n}\n' > "$tmp/messy.tidl"
expect 1 "messy.tidl:1: not in canonical format" "$thothc" fmt --check "$tmp/messy.tidl"
expect 0 '' "$thothc" fmt --check "$c/v1.tidl"
expect 0 '^  1: i32 x; *// keep me$' "$thothc" fmt --stdout "$tmp/messy.tidl"
expect 0 '' "$thothc" fmt "$tmp/messy.tidl"
expect 0 '' "$thothc" fmt --check "$tmp/messy.tidl"
expect 2 "missing_semicolon.tidl:5:17: error: expected ';' after field, found number '2' on line 6" \
	"$thothc" fmt --check "$dir/bad/missing_semicolon.tidl"
expect 1 "v1_2_removed.tidl:3:8: warning: ordinal 2 of struct 'Point' is neither a field nor reserved" \
	"$thothc" lint "$c/v1_2_removed.tidl"
expect 0 '' "$thothc" lint "$c/v1.tidl" "$c/v1_2_retired.tidl"

# gen -o: a missing output directory is made (the tutorial's
# `thothc gen --lang c -o gen greeter.tidl` in a fresh folder said "output
# directory 'gen' does not exist"); a file there is named as such.
expect 0 '' "$thothc" gen --lang c -o "$tmp/newgen" "$c/v1.tidl"
[ -s "$tmp/newgen/v1.thoth.h" ] || { echo "FAIL: gen -o a missing dir wrote nothing"; failures=$((failures + 1)); }
: >"$tmp/afile"
expect 2 "output directory '$tmp/afile' is not a directory" "$thothc" gen --lang c -o "$tmp/afile" "$c/v1.tidl"
expect 2 "cannot create output directory '$tmp/no/such'" "$thothc" gen --lang c -o "$tmp/no/such" "$c/v1.tidl"

# gen on a long chain of structs each holding the next by value, declared
# outermost first: the C header must order them innermost first, which
# took cubic time (1,600 structs 8 s, 4,000 about two minutes: a hang).
# Bounded generously: a linear order takes well under a second.
chain=$tmp/chain.tidl
awk 'BEGIN { print "package t.chain;\nversion 1.0;";
             for (i = 0; i < 4000; i++) printf "struct S%d { 1: optional S%d next; }\n", i, i + 1;
             print "struct S4000 { 1: u8 x; }" }' >"$chain"
mkdir -p "$tmp/chain"
if timeout "$hang" "$thothc" gen --lang c -o "$tmp/chain" "$chain" >"$tmp/chain.out" 2>&1; then
	echo "ok: gen of 4,000 chained structs"
else
	echo "FAIL: gen of 4,000 chained structs: exit $? (124: more than $hang s)"; cat "$tmp/chain.out"
	failures=$((failures + 1))
fi

# Import chains: 64 files deep is the limit and compiles; 80 is refused by
# name.  The file table was grown before a file's imports had added their
# own: a chain of 10 wrote past it, and 80 aborted ("corrupted size").
mkdir -p "$tmp/imports"
i=0
while [ $i -lt 80 ]; do
	next=$((i + 1))
	{
		printf 'package t.f%d;\nversion 1.0;\n' $i
		[ $next -lt 64 ] && printf 'import "f%d.tidl";\n' $next
		printf 'struct S%d { 1: u8 x; }\n' $i
	} >"$tmp/imports/f$i.tidl"
	{
		printf 'package t.g%d;\nversion 1.0;\n' $i
		[ $next -lt 80 ] && printf 'import "g%d.tidl";\n' $next
		printf 'struct T%d { 1: u8 x; }\n' $i
	} >"$tmp/imports/g$i.tidl"
	i=$next
done
expect 0 '' "$thothc" gen --lang c -o "$tmp/imports" "$tmp/imports/f0.tidl"
expect 2 'imports nested deeper than 64' "$thothc" gen --lang c -o "$tmp/imports" "$tmp/imports/g0.tidl"

# docs/IDL.md's example, as written, next to the system's common.tidl it
# imports (it used a thoth.common.ServiceId that common.tidl never had).
root=$dir/../../..
mkdir -p "$tmp/idl-example"
cp "$root/idl/common.tidl" "$tmp/idl-example/"
awk '/^## An example/ { on = 1; next } on && /^```/ { if (inblock) exit; inblock = 1; next }
     inblock { print }' "$root/docs/IDL.md" >"$tmp/idl-example/registry.tidl"
expect 0 '' "$thothc" gen --lang c -o "$tmp/idl-example" "$tmp/idl-example/registry.tidl"

# A byte-order mark (Windows editors write one) and a name in another script
# were both "unexpected byte 0x..": say what the schema allows.
printf '\357\273\277package a;\nversion 1.0;\n' >"$tmp/bom.tidl"
expect 2 'bom.tidl:1:1: error: the file starts with a UTF-8 byte-order mark (EF BB BF): save it without one' \
	"$thothc" gen --lang c -o "$tmp" "$tmp/bom.tidl"
# A file saved as UTF-16 (Windows Notepad's "Unicode") was "unexpected byte
# 0xff", and a NUL byte "unexpected byte 0x00": say what the file is.
printf '\377\376p\000a\000' >"$tmp/utf16le.tidl"
expect 2 'utf16le.tidl:1:1: error: the file is UTF-16 (it starts with the byte-order mark FF FE): a schema is UTF-8' \
	"$thothc" gen --lang c -o "$tmp" "$tmp/utf16le.tidl"
printf '\376\377\000p\000a' >"$tmp/utf16be.tidl"
expect 2 'utf16be.tidl:1:1: error: the file is UTF-16 (it starts with the byte-order mark FE FF)' \
	"$thothc" lint "$tmp/utf16be.tidl"
printf 'package a;\nversion 1.0;\nstruct S {\n}\n\000struct T {\n}\n' >"$tmp/nul.tidl"
expect 2 'nul.tidl:5:1: error: unexpected byte 0x00 (NUL): a schema is text, UTF-8' \
	"$thothc" gen --lang c -o "$tmp" "$tmp/nul.tidl"
printf 'package a;\nversion 1.0;\n// caf\303\251 in a comment is fine\nstruct Caf\303\251 {\n}\n' >"$tmp/name.tidl"
expect 2 'name.tidl:4:11: error: unexpected byte 0xc3: outside comments and strings a schema is ASCII' \
	"$thothc" gen --lang c -o "$tmp" "$tmp/name.tidl"

# Line ends as editors have them: a CR-only file (old Mac) was one line to
# thothc, so every diagnostic named line 1 and a column past the end (and
# printed the whole file); a stray CR in a comment shifted every later line.
# Refused at the first lone CR, by the line and column both agree on;
# CRLF is fine (and its CR not shown in the quoted line).
printf 'package crlf;\rversion 1.0;\rstruct S {\r  1: strng b;\r}\r' >"$tmp/cr.tidl"
expect 2 'cr.tidl:1:14: error: a carriage return (CR) without a line feed after it: lines end in LF or CRLF' \
	"$thothc" gen --lang c -o "$tmp" "$tmp/cr.tidl"
printf 'package a;\nversion 1.0;\n// fine\r\n/* a\rb */\n' >"$tmp/cr2.tidl"
expect 2 'cr2.tidl:4:5: error: a carriage return (CR)' "$thothc" check "$tmp/cr2.tidl" "$tmp/cr2.tidl"
printf 'package crlf;\r\nversion 1.0;\r\nstruct S {\r\n  1: strng b;\r\n}\r\n' >"$tmp/crlf.tidl"
expect 2 'crlf.tidl:4:6: error: unknown type .strng.; did you mean .string.?$' "$thothc" gen --lang c -o "$tmp" "$tmp/crlf.tidl"
printf 'package a;\nversion 1.0;\nstruct S {\n\t1: u8 a\v;\n}\n' >"$tmp/vt.tidl"
expect 2 'vt.tidl:4:9: error: unexpected byte 0x0b (a vertical tab): spaces, tabs and line ends separate tokens' \
	"$thothc" gen --lang c -o "$tmp" "$tmp/vt.tidl"
# A file name a C #include cannot hold: a"b.tidl made '#include "a"b.thoth.h"'
# (extra tokens, missing terminating "), a\b.tidl and a??=b.tidl undefined or
# a trigraph (-std=c11 -Wall: an error with -Werror).  Refused by name.
for n in 'q"b:a .".' 'q\b:a .[\].' 'q??=b:"??", a trigraph'; do
	why=${n#*:} n=${n%%:*}
	printf 'package q;\nversion 1.0;\nstruct S {\n  1: u8 v;\n}\n' >"$tmp/$n.tidl"
	expect 2 ".thoth.h', cannot be written in a C #include (it has $why" "$thothc" gen --lang c -o "$tmp" "$tmp/$n.tidl"
	rm -f "$tmp/$n.tidl"
done

# fmt whose write fails (here a file size limit; a full disk alike) leaves
# the schema as it was: it truncated the file first, then failed, and the
# user's schema was empty.  Through a symlink the link stays a link.
printf 'package a;\nversion 1.0;\nstruct S {\n1: u32 x;\n}\n' >"$tmp/full.tidl"
before=$(cat "$tmp/full.tidl")
out=$( (ulimit -f 0; trap '' XFSZ; "$thothc" fmt "$tmp/full.tidl"; echo "exit $?") 2>&1 | cat)
if [ "$(cat "$tmp/full.tidl")" != "$before" ]; then
	echo "FAIL: fmt with a failed write changed the file:"; cat "$tmp/full.tidl"; failures=$((failures + 1))
elif ! printf '%s\n' "$out" | grep -q "cannot write '$tmp/full.tidl' (left as it was)"; then
	echo "FAIL: fmt with a failed write said: $out"; failures=$((failures + 1))
else
	echo "ok: fmt with a failed write leaves the file whole"
fi
ln -s full.tidl "$tmp/link.tidl"
expect 0 '' "$thothc" fmt "$tmp/link.tidl"
if [ ! -L "$tmp/link.tidl" ] || ! grep -q '^  1: u32 x;' "$tmp/full.tidl"; then
	echo "FAIL: fmt through a symlink did not format its target in place"; failures=$((failures + 1))
fi

# An unknown type is compared with every struct and enum of its file for a
# "did you mean": 20 x 4000 unknown 30-letter types beside 4000 structs took
# minutes (the full edit-distance table, for hints past the 200 shown); now
# a fraction of a second.  The bound is a hang guard, far above either.
awk 'BEGIN { printf "package p;\nversion 1.0;\n";
	for (i = 0; i < 4000; i++) printf "struct A%029d { 1: u8 a; }\n", i;
	for (s = 0; s < 20; s++) { printf "struct T%d {\n", s;
		for (i = 0; i < 4000; i++) printf "%d: B%029d f;\n", i + 1, i; printf "}\n" } }' \
	>"$tmp/near.tidl"
expect 2 "near.tidl:4004:4: error: unknown type 'B00000000000000000000000000000'; did you mean 'A00000000000000000000000000000'?" \
	timeout "$hang" "$thothc" lint "$tmp/near.tidl"

# gen --depfile: a make rule of every file read; one that cannot be
# written (no such folder, a folder, a path with a line break, which no
# depfile can hold) is one line naming it, exit 2, and no code is written.
dt=$(mktemp -d "${TMPDIR:-/tmp}/thothc-depfile-XXXXXX")
mkdir -p "$dt/my dir" "$dt/gen"
printf 'package e;\nversion 1.0;\nstruct P {\n  1: u32 x;\n}\n' >"$dt/my dir/e.tidl"
printf 'package w;\nversion 1.0;\nimport "my dir/e.tidl";\nstruct W {\n  1: e.P p;\n}\n' >"$dt/w.tidl"
expect 0 '' "$thothc" gen --lang c -o "$dt/gen" --depfile "$dt/gen/w.d" "$dt/w.tidl"
printf '%s/gen/w.thoth.h %s/gen/w.thoth.c: \\\n  %s/w.tidl \\\n  %s/my\\ dir/e.tidl\n' "$dt" "$dt" "$dt" "$dt" >"$dt/want.d"
cmp -s "$dt/want.d" "$dt/gen/w.d" || { echo "FAIL: gen --depfile wrote:"; cat "$dt/gen/w.d"; failures=$((failures + 1)); }
expect 2 "^thothc: cannot write depfile '$dt/none/w.d' (create a temporary file beside it): No such file or directory$" \
	"$thothc" gen --lang c -o "$dt/gen2" --depfile "$dt/none/w.d" "$dt/w.tidl"
[ ! -e "$dt/gen2/w.thoth.h" ] || { echo "FAIL: code written though its depfile was not"; failures=$((failures + 1)); }
expect 2 "^thothc: cannot write depfile '$dt/gen' (rename): Is a directory$" \
	"$thothc" gen --lang c -o "$dt/gen" --depfile "$dt/gen" "$dt/w.tidl"
mkdir "$dt/a
b"
cp "$dt/w.tidl" "$dt/a
b/"
cp -r "$dt/my dir" "$dt/a
b/"
expect 2 "has a line break, which a depfile cannot hold$" \
	"$thothc" gen --lang c -o "$dt/gen" --depfile "$dt/gen/nl.d" "$dt/a
b/w.tidl"
out=$("$thothc" gen --lang c -o "$dt/gen" --depfile "$dt/gen/nl.d" "$dt/a
b/w.tidl" 2>&1)
[ "$(printf '%s\n' "$out" | wc -l)" = 1 ] || { echo "FAIL: not one line: $out"; failures=$((failures + 1)); }
expect 2 'option --depfile needs a value' "$thothc" gen --lang c -o "$dt/gen" --depfile
# A hand-written Makefile's rule (relative names, as make has them): the
# outputs named as the rule names them (gen/w.thoth.h, not made absolute,
# which make never matched with the rule: an edit of the import left the
# old header), the files read by absolute path; an edit of the import
# makes the code again.
if command -v make >/dev/null; then
	mkdir -p "$dt/rel/gen" "$dt/rel/inc"
	cp "$dt/my dir/e.tidl" "$dt/rel/inc/e.tidl"
	printf 'package w;\nversion 1.0;\nimport "inc/e.tidl";\nstruct W {\n  1: e.P p;\n}\n' >"$dt/rel/w.tidl"
	printf 'gen/w.thoth.h: w.tidl\n\t"%s" gen --lang c -o gen/ --depfile gen/w.d w.tidl\n-include gen/w.d\n' \
		"$thothc" >"$dt/rel/Makefile"
	make -C "$dt/rel" >"$dt/make1.log" 2>&1 || { cat "$dt/make1.log"; echo "FAIL: make"; failures=$((failures + 1)); }
	head -1 "$dt/rel/gen/w.d" | grep -qx 'gen/w.thoth.h gen/w.thoth.c: \\' ||
		{ echo "FAIL: the depfile's outputs are not as gen -o gen/ names them:"; cat "$dt/rel/gen/w.d"; failures=$((failures + 1)); }
	touch -d "@$(($(stat -c %Y "$dt/rel/gen/w.thoth.h") + 5))" "$dt/rel/inc/e.tidl"
	make -C "$dt/rel" >"$dt/make2.log" 2>&1
	grep -q -- '--depfile' "$dt/make2.log" ||
		{ cat "$dt/make2.log"; echo "FAIL: make did not make w.thoth.h again after its import changed"; failures=$((failures + 1)); }
else
	echo "skip: no make: a hand-written Makefile's use of --depfile"
fi
rm -rf "$dt"

expect 0 'usage: thothc' "$thothc" --help
expect 0 '^thothc ' "$thothc" --version

[ "$failures" = 0 ] || { echo "$failures failure(s)"; exit 1; }
