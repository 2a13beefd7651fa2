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
ninja -C build/release -j "$(nproc)"

dir=build/test
configure "$dir" -Dtests=true -Db_sanitize=address,undefined \
	-Db_lundef=false --buildtype=debugoptimized
ninja -C "$dir" -j "$(nproc)"

status=0
meson test -C "$dir" --num-processes 2 --print-errorlogs "$@" || status=$?

# meson writes one JSON line per test it ran.
python3 - "$dir/meson-logs/testlog.json" <<'PY'
import json, sys
passed = failed = skipped = 0
for line in open(sys.argv[1]):
    r = json.loads(line)["result"]
    if r in ("OK", "EXPECTEDFAIL"):
        passed += 1
    elif r == "SKIP":
        skipped += 1
    else:
        failed += 1
print(f"{passed} passed, {failed} failed, {skipped} skipped")
PY
exit $status
