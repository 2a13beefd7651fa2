#!/bin/sh
# run.sh JOBQD EXAMPLE [ARG...] - run one example against a manager of its
# own: start JOBQD in a fresh temporary directory, run EXAMPLE with
# --dir pointing there, stop the manager and remove the directory. Exits
# with the example's status (1 if the manager would not start), so meson
# can run the examples as tests.
set -u
jobqd=$1
shift
top=$(mktemp -d "${TMPDIR:-/tmp}/jobq-example.XXXXXX") || exit 1
dir=$top/jobq

# JOBQD_ARGS: more options for the manager, for examples that need them.
# shellcheck disable=SC2086
if ! "$jobqd" --dir "$dir" --daemon ${JOBQD_ARGS:-} >"$top/jobqd.log" 2>&1; then
	echo "run.sh: jobqd did not start:" >&2
	cat "$top/jobqd.log" >&2
	rm -rf "$top"
	exit 1
fi
pid=$(cat "$dir/jobqd.pid")

"$@" --dir "$dir"
rc=$?

# Graceful first; a manager that does not stop in 5 s is killed.
kill -TERM "$pid" 2>/dev/null
i=0
while kill -0 "$pid" 2>/dev/null && [ $i -lt 50 ]; do
	sleep 0.1
	i=$((i + 1))
done
kill -KILL "$pid" 2>/dev/null
rm -rf "$top"
exit $rc
