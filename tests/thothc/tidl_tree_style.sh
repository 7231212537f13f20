#!/bin/sh
# tidl_tree_style.sh THOTHC SOURCE_DIR - every .tidl of the tree is in
# canonical format (thothc fmt --check) and has no lint finding.
#
# Left out, on purpose:
#   tests/thothc/schemas/bad/   invalid schemas that the parser tests need
#   fuzz/corpus/                fuzzer seeds, many invalid by design
#   tests/thothc/schemas/compat/v1_2_removed.tidl  (lint only): a field
#       removed without reserving it, the breaking change the CLI test needs
thothc=$1
src=$2
files=$(cd "$src" && find . -name '*.tidl' -not -path './build*' -not -path './.git/*' \
	-not -path './tests/thothc/schemas/bad/*' -not -path './fuzz/corpus/*' | sort)
[ -n "$files" ] || { echo "no .tidl files under $src"; exit 1; }
cd "$src" || exit 1
status=0
# shellcheck disable=SC2086
"$thothc" fmt --check $files || status=1
lintable=$(printf '%s\n' $files | grep -v '^./tests/thothc/schemas/compat/v1_2_removed.tidl$')
# shellcheck disable=SC2086
"$thothc" lint $lintable || status=1
echo "$(printf '%s\n' $files | wc -l) schemas checked"
exit $status
