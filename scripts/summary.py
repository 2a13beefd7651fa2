"""Summarize a meson test log: summary.py TESTLOG.json ALLOWED_SKIPS.

Prints one line per test that did not pass, then the closing line
"N passed, N failed, N skipped". Exit 1 when any test failed.

Under CI (CI=true) a skipped test is a failure unless the reason it
printed matches a line of ALLOWED_SKIPS (regular expressions for what a CI
machine may lack): a run whose tests all skip must not end green. Outside
CI skips are counted and shown with their reasons.
"""
import json
import os
import re
import sys

log, allowed_file = sys.argv[1:3]
ci = os.environ.get("CI", "").lower() in ("true", "1", "yes")
allowed = []
with open(allowed_file) as f:
    for line in f:
        line = line.strip()
        if line and not line.startswith("#"):
            allowed.append(re.compile(line))


def skip_reason(out):
    """The last line of a test's output that says why it skipped."""
    for line in reversed((out or "").splitlines()):
        if "skip" in line.lower():
            return line.strip()
    return "(no reason printed)"


passed = failed = skipped = 0
for line in open(log):
    r = json.loads(line)
    name, result = r["name"], r["result"]
    if result in ("OK", "EXPECTEDFAIL"):
        passed += 1
    elif result == "SKIP":
        reason = skip_reason(r.get("stdout"))
        if ci and not any(a.search(reason) for a in allowed):
            failed += 1
            print(f"{name}: skipped under CI, which must not lack this: {reason}")
        else:
            skipped += 1
            print(f"{name}: {reason}")
    else:
        failed += 1
        print(f"{name}: {result}")
print(f"{passed} passed, {failed} failed, {skipped} skipped")
sys.exit(1 if failed else 0)
