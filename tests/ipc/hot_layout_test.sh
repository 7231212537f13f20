#!/bin/sh
# hot_layout_test.sh LIB ARCHIVE... - the round trip's code stays grouped.
#
# THOTH_HOT_CLIENT / THOTH_HOT / THOTH_HOT_SERVE (include/thoth/hot.h) put
# the functions every round trip runs in .text.sorted.thoth_1/2/3, which
# GNU ld lays out together, group after group; two empty anchors
# (chan_shm.c: .text.sorted.thoth_0 and thoth_1z) start the client and the
# shared group on page boundaries.  A one-CPU round trip touches a code page
# per 4 KiB of that path (docs/SCHED.md, stop 34 and 35).  Nothing else
# notices when the grouping is lost: the marks removed, or a link that
# keeps input order (lld, old binutils) builds and runs the same, slower.
#
# ARCHIVEs (the module libraries the marks are in) say which functions are
# hot and in which group; LIB (libthoth.so) is checked for
#   - at least MIN_HOT marked functions, in all three groups;
#   - each group's functions together, the groups in order 1, 2, 3, and
#     nothing but marked functions between the first and the last;
#   - the whole span within the groups' sizes plus the anchors' padding;
#   - the anchors on page boundaries;
#   - with HOT_MAX_PAGES="C S" set (optimised builds: tests/ipc/CMakeLists.txt),
#     the client's part (groups 1 and 2 from its anchor) within C pages and
#     the service's (groups 2 and 3 from theirs) within S, the pages
#     docs/SCHED.md quotes (stop 35).
#
# Exit 77 (skipped) where LLD linked LIB: it keeps input order (no
# .text.sorted.* grouping), a valid build that only loses the layout.
lib=$1
shift
MIN_HOT=30

# Without the tools every check below would read nothing and report the
# marks as gone.
for t in objdump nm readelf; do
	if ! command -v "$t" >/dev/null 2>&1; then
		echo "FAIL: $t (binutils) is not installed: the test cannot read the symbol tables"
		exit 1
	fi
done
# (LLD writes "Linker: LLD 17.0.6", Debian's "Linker: Debian LLD 14.0.6".)
linker=$(readelf -p .comment "$lib" 2>/dev/null | grep -o 'Linker: .*LLD.*' | head -1)
if [ -n "$linker" ]; then
	echo "SKIP: $lib was linked by LLD ($linker),"
	echo "      which keeps input order (no .text.sorted.* grouping): the hot layout is GNU ld's (docs/SCHED.md, stop 35)"
	exit 77
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# The marked functions: "GROUP NAME SIZE" from the objects' symbol tables
# (objdump -t: "ADDR FLAGS F SECTION SIZE NAME", with a visibility token
# before NAME for a hidden, protected or internal symbol: dropped first,
# or the fields counted from the end are off by one).
for a in "$@"; do
	if ! objdump -t "$a" >"$tmp/objdump.out" 2>"$tmp/objdump.err"; then
		echo "FAIL: objdump -t $a failed:"; cat "$tmp/objdump.err"
		exit 1
	fi
	sed -E 's/[[:space:]]+\.(hidden|protected|internal)[[:space:]]+/ /' "$tmp/objdump.out"
done | awk 'NF >= 6 && $(NF-2) ~ /^\.text\.sorted\.thoth_/ && $(NF-3) == "F" {
	g = $(NF-2); sub(/^\.text\.sorted\.thoth_/, "", g); print g, $NF, $(NF-1) }' |
	sort -u >"$tmp/hot"

n=$(wc -l <"$tmp/hot")
groups=$(awk '$1 ~ /^[123]$/ { print $1 }' "$tmp/hot" | sort -u | tr -d '\n')
if [ "$n" -lt "$MIN_HOT" ] || [ "$groups" != 123 ]; then
	echo "FAIL: $n functions in .text.sorted.thoth_* sections (groups '$groups'), want >= $MIN_HOT in 1, 2 and 3:"
	echo "      the THOTH_HOT* marks (include/thoth/hot.h) are gone"
	exit 1
fi

# Every function symbol of LIB: "ADDR SIZE NAME", by address.
nm -n -S --defined-only "$lib" | awk 'NF == 4 && $3 ~ /^[tTwW]$/ { print $1, $2, $4 }' >"$tmp/syms"
if [ ! -s "$tmp/syms" ]; then
	echo "FAIL: no symbols in $lib (stripped?)"
	exit 1
fi

awk -v page=4096 -v maxpages="${HOT_MAX_PAGES:-}" '
function hex(s,   i, c, v) {
	v = 0
	for (i = 1; i <= length(s); i++) {
		c = index("0123456789abcdef", tolower(substr(s, i, 1))) - 1
		v = v * 16 + c
	}
	return v
}
FNR == NR { grp[$2] = $1; fsz[$2] = hex($3); sz[$1] += fsz[$2]; next }
{ a = hex($1); cnt[$3]++; addr[$3] = a; name[FNR] = $3; at[FNR] = a; rows = FNR }
END {
	bad = 0
	# A name defined twice in LIB (two static functions) cannot be told
	# apart: left out of the order checks, still inside the span.
	lo = -1; hi = -1
	for (f in grp) {
		if (!(f in cnt)) { printf "FAIL: marked function %s is not in the library\n", f; bad = 1; continue }
		if (cnt[f] > 1 || grp[f] !~ /^[123]$/) continue
		if (lo < 0 || addr[f] < lo) lo = addr[f]
		if (addr[f] > hi) hi = addr[f]
		if (!(grp[f] in gmin) || addr[f] < gmin[grp[f]]) gmin[grp[f]] = addr[f]
		if (addr[f] > gmax[grp[f]]) gmax[grp[f]] = addr[f]
		if (addr[f] + fsz[f] > gend[grp[f]]) gend[grp[f]] = addr[f] + fsz[f]
	}
	if (bad) exit 1
	for (g = 1; g <= 2; g++)
		if (gmax[g] > gmin[g + 1]) {
			printf "FAIL: group %d (up to %x) reaches into group %d (from %x): the groups are not laid out in order\n",
			       g, gmax[g], g + 1, gmin[g + 1]
			bad = 1
		}
	# Nothing unmarked among them.
	stray = 0
	for (i = 1; i <= rows; i++)
		if (at[i] > lo && at[i] < hi && !(name[i] in grp)) {
			if (stray < 5) printf "FAIL: %s (unmarked) at %x lies among the hot functions (%x-%x)\n", name[i], at[i], lo, hi
			stray++
		}
	if (stray) bad = 1
	span = hi - lo
	limit = sz["1"] + sz["1z"] + sz["2"] + sz["3"] + 2 * page
	if (span > limit) {
		printf "FAIL: the hot functions span %d bytes, more than their %d bytes and the anchors\x27 padding\n", span, limit - 2 * page
		bad = 1
	}
	if (!("hot_anchor_client" in addr) || !("hot_anchor_shared" in addr)) {
		print "FAIL: the hot anchors (chan_shm.c) are not in the library"
		bad = 1
	} else if (addr["hot_anchor_client"] % page || addr["hot_anchor_shared"] % page ||
		   addr["hot_anchor_client"] > gmin["1"] || addr["hot_anchor_shared"] > gmin["2"] ||
		   addr["hot_anchor_shared"] < gmax["1"]) {
		printf "FAIL: the anchors at %x and %x are not page-aligned just before groups 1 (%x) and 2 (%x)\n",
		       addr["hot_anchor_client"], addr["hot_anchor_shared"], gmin["1"], gmin["2"]
		bad = 1
	}
	# The pages each side executes its groups in, against the docs.
	if (!bad && maxpages != "") {
		split(maxpages, mp, " ")
		cpages = int((gend["2"] - addr["hot_anchor_client"] + page - 1) / page)
		spages = int((gend["3"] - addr["hot_anchor_shared"] + page - 1) / page)
		if (cpages > mp[1] || spages > mp[2]) {
			printf "FAIL: the client\x27s groups (1-2) span %d pages, the service\x27s (2-3) %d: docs/SCHED.md (stop 35) quotes %d and %d\n",
			       cpages, spages, mp[1], mp[2]
			bad = 1
		}
	}
	if (bad) exit 1
	printf "ok: %d hot functions in %d bytes (groups %d + %d + %d bytes), in order, nothing else between\n",
	       length(grp), span, sz["1"], sz["2"], sz["3"]
	printf "ok: client groups on %d pages, service groups on %d%s\n",
	       int((gend["2"] - addr["hot_anchor_client"] + page - 1) / page),
	       int((gend["3"] - addr["hot_anchor_shared"] + page - 1) / page),
	       maxpages == "" ? " (not checked: HOT_MAX_PAGES unset)" : " (at most " maxpages ")"
}' "$tmp/hot" "$tmp/syms"
