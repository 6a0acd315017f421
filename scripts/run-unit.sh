#!/bin/sh
# Runs every cmocka unit-test binary given, from the repository root (tests
# read ../shared/testdata relative to it), and prints one summary line.
build="$1"; shift
# third-party leaks we cannot fix (see the file); harmless without ASan
LSAN_OPTIONS="suppressions=$(pwd)/tests/unit/support/lsan.supp${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
export LSAN_OPTIONS
pass=0; fail=0; failed=""
for t in "$@"; do
	if "$t" >"$t.log" 2>&1; then
		pass=$((pass + 1))
	else
		fail=$((fail + 1)); failed="$failed $t"
		cat "$t.log"
	fi
	grep -E '^\[  (PASSED|FAILED)  \]' "$t.log" | sed "s|^|$(basename "$t"): |"
done
echo "unit test binaries ($build): $pass passed, $fail failed"
[ "$fail" -eq 0 ] || { echo "failed:$failed"; exit 1; }
