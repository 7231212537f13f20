#!/bin/sh
# bench_channel refuses what it cannot run with a reason (exit 2), before
# any run: --iters of 0, negative or junk (atoi's -1 was ~4e9 round trips),
# --iters without --matrix (it sizes the matrix only), and a --matrix
# --sizes list naming neither of its sizes (every cell skipped, silently),
# a --placement-long of junk or out of 1..600 s, or given with --matrix.
b="$1"
fail=0
want() {                # want PATTERN ARGS...: exit 2, PATTERN on stderr
	pat="$1"; shift
	err=$(timeout 20 "$b" "$@" 2>&1 >/dev/null); rc=$?
	if [ $rc -eq 2 ] && printf '%s\n' "$err" | grep -q -- "$pat"; then
		echo "ok: $*: $err"
	else
		echo "FAIL: $* exited $rc, want 2 and '$pat'; got: $err"; fail=1
	fi
}
want "--iters N" --matrix --iters 0
want "--iters N" --matrix --iters -1
want "--iters N" --matrix --iters 12x
want "--iters N" --matrix --iters ""
want "for --matrix only" --iters 100
want "names neither" --matrix --sizes 4096,1048576
want "--placement-long SECONDS" --placement-long 0
want "--placement-long SECONDS" --placement-long 5s
want "--placement-long SECONDS" --placement-long 1e9
want "one at a time" --matrix --placement-long 5
want usage --bogus
exit $fail
