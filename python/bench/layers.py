"""The layers of a Manager().dict() operation, each timed alone.

    PYTHONPATH=build/release/python:python \\
    JOBQ_JOBQD=build/release/manager/jobqd \\
        /usr/bin/python3 python/bench/layers.py

Wall and CPU time (this process only; jobqd is not counted) per call of:
the key's encoding, dumps() and loads() of an int, the extension's
kv_set and kv_get, an empty round trip (ping), and d[k] = i and d[k] as a
program writes them. Not a test: run it on demand and note the load.
"""

import os
import resource
import time

import jobq.multiprocessing as mp
from jobq import _core, _instance
from jobq.multiprocessing import _enc_key

N = 20000


def timed(name, fn):
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    w = time.perf_counter()
    fn()
    w = time.perf_counter() - w
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime
    print("%-16s %7.2f us wall %7.2f us cpu" %
          (name, w / N * 1e6, cpu / N * 1e6), flush=True)


def main():
    print("load average: %.2f %.2f %.2f" % os.getloadavg())
    m = mp.Manager()
    d = m.dict()
    h = _instance.handle()
    keys = ["k%d" % (i % 100) for i in range(N)]
    pre = d._name + "s"

    def sets():
        for i, k in enumerate(keys):
            d[k] = i

    def gets():
        for k in keys:
            d[k]

    timed("enc_key", lambda: [_enc_key(k) for k in keys])
    timed("dumps(int)", lambda: [_core.dumps(i) for i in range(N)])
    timed("loads(int)", lambda: [_core.loads(_core.T_JSON, b"1")
                                 for _ in keys])
    timed("h.kv_set", lambda: [h.kv_set(pre + k, _core.T_JSON, b"1")
                               for k in keys])
    timed("h.kv_get", lambda: [h.kv_get(pre + k) for k in keys])
    timed("h.ping", lambda: [h.ping() for _ in keys])
    timed("d[k] = i", sets)
    timed("d[k]", gets)
    m.shutdown()


if __name__ == "__main__":
    main()
