#!/usr/bin/env bash
# Every C file the repository tracks is as clang-format (with the
# repository's .clang-format) would write it. Exit 77 (skipped) where
# clang-format or git is missing, or outside a git checkout.
set -u
cd "${JOBQ_TEST_SRCDIR:?}" || exit 1
command -v clang-format >/dev/null || { echo "skipped: clang-format is not installed"; exit 77; }
git rev-parse --git-dir >/dev/null 2>&1 || { echo "skipped: not a git checkout"; exit 77; }
bad=$(git ls-files -z '*.c' '*.h' | xargs -0 -r clang-format --dry-run 2>&1 |
	grep -oE '^[^ :]+\.[ch]:[0-9]+' | sort -u)
if [ -n "$bad" ]; then
	echo "not formatted (run: git ls-files '*.c' '*.h' | xargs clang-format -i):"
	echo "$bad"
	exit 1
fi
echo "all $(git ls-files '*.c' '*.h' | wc -l) C files formatted"
