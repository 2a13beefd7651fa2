#!/usr/bin/env bash
# Build the libFuzzer targets with clang in their own build directory and
# run each one for a bounded time over its seed corpus. It is the meson
# test "fuzz" of the test build, so scripts/test.sh runs it.
#
#   tests/fuzz/run.sh [SECONDS]     seconds per target (default 15, or
#                                   $JOBQ_FUZZ_SECONDS); longer on demand
#
# New inputs go to a temporary corpus, not into the tree; a crash leaves
# its input in build/fuzz/ and fails the run.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
if ! command -v clang >/dev/null; then
	echo "SKIP: clang is not installed (apt-get install clang libclang-rt-dev)"
	exit 77
fi
dir=${JOBQ_FUZZ_BUILD:-$top/build/fuzz}
secs=${1:-${JOBQ_FUZZ_SECONDS:-15}}
targets="fuzz_ring fuzz_store fuzz_json fuzz_parse fuzz_journal fuzz_config fuzz_chunk"

if [ ! -f "$dir/build.ninja" ]; then
	CC=clang meson setup "$dir" "$top" -Dfuzz=true -Dtests=false \
		-Db_sanitize=address,undefined -Db_lundef=false \
		--buildtype=debugoptimized >/dev/null
fi
log=$(mktemp)
if ! ninja -C "$dir" -j2 $(for t in $targets; do echo "tests/fuzz/$t"; done) >"$log" 2>&1; then
	cat "$log"
	rm -f "$log"
	echo "fuzz: the targets did not build"
	exit 1
fi
rm -f "$log"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
status=0
for t in $targets; do
	mkdir -p "$work/$t"
	# jobqd keeps its option words for the life of the process, so the
	# config target leaves them behind on every run, by design.
	leaks=1
	[ "$t" = fuzz_config ] && leaks=0
	if (cd "$work" &&
		ASAN_OPTIONS=abort_on_error=1:detect_leaks=$leaks \
		UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
		"$dir/tests/fuzz/$t" -max_total_time="$secs" -timeout=10 \
		-detect_leaks=$leaks \
		-rss_limit_mb=2048 -artifact_prefix="$dir/$t-" \
		"$work/$t" "$top/tests/fuzz/corpus/$t") >"$work/$t.log" 2>&1; then
		echo "fuzz: $t: $(grep -Eo '#[0-9]+' "$work/$t.log" | tail -1 | tr -d '#') runs in ${secs}s, no crash"
	else
		echo "fuzz: $t FAILED (input kept in $dir as $t-*):"
		tail -n 40 "$work/$t.log"
		status=1
	fi
done
exit $status
