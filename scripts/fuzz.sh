#!/bin/sh
# Run every libFuzzer target in BUILD_DIR for SECONDS each, starting from its
# seed corpus (fuzz/corpus/<target>/, read-only) and a scratch corpus under
# build/.  Exits non-zero when a target finds a crash; the reproducer is left
# in build/fuzz-artifacts/.
set -eu
build=${1:?usage: fuzz.sh BUILD_DIR SECONDS}
seconds=${2:-20}
root=$(cd "$(dirname "$0")/.." && pwd)
artifacts=$root/build/fuzz-artifacts
mkdir -p "$artifacts"
status=0
# A fuzz target is a fuzz_* program with a seed corpus in fuzz/corpus/<name>/
# (helpers such as seed generators have none and are skipped).
for target in $(find "$build/fuzz" -type f -name 'fuzz_*' -perm -u+x | sort); do
	name=$(basename "$target")
	seeds=$root/fuzz/corpus/$name
	[ -d "$seeds" ] || continue
	work=$root/build/fuzz-corpus/$name
	mkdir -p "$work"
	echo "== $name: ${seconds}s"
	if ! "$target" -max_total_time="$seconds" -artifact_prefix="$artifacts/$name-" \
		-print_final_stats=1 "$work" $seeds 2>"$work.log"; then
		echo "$name: FOUND A CRASH (see $work.log and $artifacts/)" >&2
		tail -30 "$work.log" >&2
		status=1
	else
		grep -E 'stat::number_of_executed_units|stat::peak_rss_mb' "$work.log" | sed 's/^/   /'
	fi
done
exit $status
