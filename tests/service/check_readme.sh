#!/usr/bin/env bash
# The README's commands work as written: every ```sh block of README.md is
# run in order, in one bash with `set -e`, in a fresh directory, with the
# release build's jobqd and jobq first on PATH (as the README says to put
# them); every ```c block that is a whole program (has main) is compiled
# against the build's libjobq and run against a manager of its own. Any
# jobqd the blocks started is stopped by the pid in its instance directory.
set -u
src=${JOBQ_TEST_SRCDIR:?}
build=${JOBQ_TEST_RELEASE_BUILD:-}
if [ -z "$build" ] || [ ! -x "$build/manager/jobqd" ]; then
	[ -n "${CI:-}" ] && { echo "JOBQ_TEST_RELEASE_BUILD is not set: run scripts/test.sh"; exit 1; }
	echo "skipped: JOBQ_TEST_RELEASE_BUILD names no build (scripts/test.sh sets it)"
	exit 77
fi
top=$(mktemp -d) || exit 1
cleanup() {
	for p in "$top"/*/jobq/jobqd.pid "$top"/jobq-c/jobqd.pid; do
		[ -f "$p" ] && kill -KILL "$(cat "$p")" 2>/dev/null
	done
	rm -rf "$top"
}
trap cleanup EXIT

# The blocks, in order: shell ones into one script, C programs apart.
python3 - "$src/README.md" "$top" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
top = sys.argv[2]
sh, cs = [], []
for lang, body in re.findall(r"^```(\w+)\n(.*?)^```$", text, flags=re.S | re.M):
    if lang == "sh":
        sh.append(body)
    elif lang == "c" and "int main" in body:
        cs.append(body)
open(top + "/tour.sh", "w").write("set -e\n" + "\n".join(sh))
for i, c in enumerate(cs):
    open("%s/prog%d.c" % (top, i), "w").write(c)
print("%d shell blocks, %d C programs" % (len(sh), len(cs)))
PY

status=0
mkdir "$top/tour" && cd "$top/tour" || exit 1
# The tour makes its own instance (mktemp -d) under TMPDIR = here, so that
# cleanup finds its pid file.
if ! PATH="$build/manager:$build/cli:$PATH" TMPDIR="$top/tour" \
	bash "$top/tour.sh" >"$top/tour.log" 2>&1; then
	echo "FAIL: the README's shell tour:"
	cat "$top/tour.log"
	status=1
else
	echo "ok: the shell tour ($(wc -l <"$top/tour.log") lines of output)"
fi
for p in "$top"/tour/tmp.*/jobq/jobqd.pid; do
	[ -f "$p" ] && kill -KILL "$(cat "$p")" 2>/dev/null
done

for c in "$top"/prog*.c; do
	[ -f "$c" ] || continue
	exe=${c%.c}
	if ! cc -o "$exe" "$c" -I"$src/include" -L"$build/src" -ljobq \
		-Wl,-rpath,"$build/src"; then
		echo "FAIL: $(basename "$c") does not compile"
		status=1
		continue
	fi
	dir=$top/jobq-c
	"$build/manager/jobqd" --dir "$dir" --workers 1 --daemon || { status=1; continue; }
	if JOBQ_DIR=$dir "$exe" >"$top/c.log" 2>&1; then
		echo "ok: the README's C program: $(tr '\n' ' ' <"$top/c.log")"
	else
		echo "FAIL: the README's C program:"
		cat "$top/c.log"
		status=1
	fi
	"$build/cli/jobq" --dir "$dir" shutdown >/dev/null 2>&1 || kill -KILL "$(cat "$dir/jobqd.pid")" 2>/dev/null
done
exit $status
