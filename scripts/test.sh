#!/usr/bin/env bash
# Build jobq with AddressSanitizer and UndefinedBehaviorSanitizer and run
# every test: cmocka unit tests and end-to-end tests against a real jobqd.
# Ends with one line: "N passed, N failed[, N skipped]".
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
. scripts/lib.sh

need_packages $JOBQ_TEST_PACKAGES
# The demo's release build first: the optimizer finds warnings (and so
# errors, with -Werror) that the sanitizer build does not.
configure build/release --buildtype=release -Dtests=false
build build/release

dir=build/test
configure "$dir" -Dtests=true -Db_sanitize=address,undefined \
	-Db_lundef=false --buildtype=debugoptimized
build "$dir"

status=0
# The install test installs the release build, as a user would.
export JOBQ_TEST_RELEASE_BUILD="$top/build/release"
meson test -C "$dir" --num-processes 2 --print-errorlogs "$@" || status=$?

# One line per test that did not pass, then "N passed, N failed, N
# skipped"; under CI a skip with a reason not in tests/ci-allowed-skips
# counts as a failure.
python3 scripts/summary.py "$dir/meson-logs/testlog.json" \
	tests/ci-allowed-skips || status=1
exit $status
