"""python -m jobq worker [--concurrency N] MODULE [MODULE...]

Import each MODULE and serve every @jobq.task function it registered, as a
jobq worker of the program's instance ($JOBQ_DIR or the default one), until
SIGTERM, SIGINT or the manager's shutdown.
"""

import argparse
import importlib
import sys

from . import _core


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m jobq")
    sub = p.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("worker", help="serve the @jobq.task functions of "
                       "MODULE")
    w.add_argument("--concurrency", type=int, default=1)
    w.add_argument("modules", nargs="+", metavar="MODULE")
    a = p.parse_args(argv)
    sys.path.insert(0, "")
    for m in a.modules:
        importlib.import_module(m)
    if not _core._tasks:
        print("python -m jobq worker: %s registered no @jobq.task function"
              % ", ".join(a.modules), file=sys.stderr)
        return 2
    _core.serve(concurrency=a.concurrency)
    return 0


if __name__ == "__main__":
    sys.exit(main())
