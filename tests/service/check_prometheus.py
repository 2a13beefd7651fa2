"""Read Prometheus text (format 0.0.4) on stdin and check it strictly.

Exit 0 when it parses with prometheus_client's parser and every line has
the shape the format allows (HELP and TYPE once per family, before its
samples; samples named after a declared family; label values escaped);
exit 1 with the reason otherwise. Then prints "name{labels} value" per
sample, for the caller to look values up.
"""
import re
import sys

from prometheus_client.parser import text_string_to_metric_families

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABELS = r'\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"(?:,|(?=\})))*\}'
SAMPLE = re.compile(rf"^({NAME})({LABELS})? (-?[0-9.eE+]+|NaN|[+-]Inf)$")


def fail(msg):
    print(msg, file=sys.stderr)
    sys.exit(1)


def main():
    text = sys.stdin.buffer.read().decode("utf-8")  # must be UTF-8
    if not text.endswith("\n"):
        fail("the text does not end with a newline")
    seen_help, seen_type = set(), set()
    for n, line in enumerate(text.splitlines(), 1):
        if line.startswith("# HELP "):
            name = line.split(" ", 3)[2]
            if name in seen_help:
                fail(f"line {n}: a second HELP for {name}")
            seen_help.add(name)
        elif line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            if kind not in ("counter", "gauge", "histogram", "summary",
                            "untyped"):
                fail(f"line {n}: type {kind!r}")
            if name in seen_type:
                fail(f"line {n}: a second TYPE for {name}")
            seen_type.add(name)
        elif line.startswith("#") or not line:
            fail(f"line {n}: unexpected {line!r}")
        else:
            m = SAMPLE.match(line)
            if not m:
                fail(f"line {n}: not a sample: {line!r}")
            if m.group(1) not in seen_type:
                fail(f"line {n}: sample of an undeclared family")
    count = 0
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
            print(f"{s.name}{{{labels}}} {s.value:g}")
            count += 1
    if not count:
        fail("no samples")


main()
