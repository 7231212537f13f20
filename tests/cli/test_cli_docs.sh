#!/usr/bin/env bash
# tests/cli/test_cli_docs.sh SOURCE_DIR PYTHON3 NAME=PROGRAM...
#
# Man pages, bash completions, docs/THOTHD.md's synopsis and every
# program's --help agree on the commands and flags, and every flag --help
# lists is parsed by that program's (command's) own source
# (check_cli_docs.py; the programs are CMake's $<TARGET_FILE>s).
# Then the checker must catch a drift: on one copy of the tree with one
# flag dropped from a man page, one command from a completion, one option
# from the doc, one option-table entry from a source, a command from
# thothctl's dispatch table, an environment variable from the docs, a
# JSON key from docs/PM.md or docs/LOCKS.md, and with a program missing or
# a subcommand's --help failing, each run has to fail naming what went
# wrong (cli_docs_drifts.py: all in one process, each mutation undone
# before the next).
set -euo pipefail
SRC=$1 PY=$2
shift 2
# The tree's own check and the drifted copies' run in one process
# (cli_docs_drifts.py), the programs asked once.
exec "$PY" "$SRC/tests/cli/cli_docs_drifts.py" "$SRC" "$@"
