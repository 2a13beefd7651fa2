"""The Python binding beside the standard modules, in one run.

    PYTHONPATH=build/release/python:python \\
    JOBQ_JOBQD=build/release/manager/jobqd \\
        /usr/bin/python3 python/bench/bench.py [--quick]

Four measurements, each for jobq and for the standard module in the same
run: Pool.apply of a no-op one at a time (round trip), ProcessPoolExecutor
.map over 100,000 small items with the same chunksize, Queue put/get of
small objects between two processes, and Manager().dict() set and get.
Beside each wall time it prints the CPU time of every process involved:
this one, its children (workers, the standard manager's server; counted
once they are reaped), and jobqd (read from /proc). Not a test: run it on
demand, on a quiet machine if you can, and note the load it prints.
"""

import concurrent.futures
import multiprocessing
import os
import resource
import sys
import time

import jobq
import jobq.futures
import jobq.multiprocessing
from jobq import _instance

QUICK = "--quick" in sys.argv
N_APPLY = 500 if QUICK else 3000
N_MAP = 10000 if QUICK else 100000
MAP_CHUNK = 100
N_QUEUE = 5000 if QUICK else 50000
N_DICT = 2000 if QUICK else 20000


def noop():
    return None


def small(x):
    return x + 1


def jobqd_cpu():
    """CPU seconds of the jobqd this program uses."""
    pid = _instance.handle().stats()["manager_pid"]
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / tick


class Meter:
    def __enter__(self):
        self.s = resource.getrusage(resource.RUSAGE_SELF)
        self.c = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.m = jobqd_cpu()
        self.t = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.t
        s = resource.getrusage(resource.RUSAGE_SELF)
        c = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.cpu_self = s.ru_utime + s.ru_stime - \
            self.s.ru_utime - self.s.ru_stime
        self.cpu_children = c.ru_utime + c.ru_stime - \
            self.c.ru_utime - self.c.ru_stime
        self.cpu_jobqd = jobqd_cpu() - self.m


def row(name, n, m, unit):
    per = m.wall / n
    print("%-34s %8.1f %-5s wall %6.2f s  cpu: self %6.2f children %6.2f "
          "jobqd %6.2f" % (name, per * 1e6 if unit == "us" else n / m.wall,
                           unit, m.wall, m.cpu_self, m.cpu_children,
                           m.cpu_jobqd), flush=True)
    return per


def bench_apply(mod, name):
    with Meter() as m:
        p = mod.Pool(1)
        p.apply(noop)
        t = time.perf_counter()
        for _ in range(N_APPLY):
            p.apply(noop)
        dt = time.perf_counter() - t
        p.close()
        p.join()
    m.wall = dt  # the round trips only, not the pool's start and stop
    return row("%s Pool.apply no-op" % name, N_APPLY, m, "us")


def bench_map(ex_cls, name):
    with Meter() as m:
        with ex_cls(2) as ex:
            r = list(ex.map(small, range(N_MAP), chunksize=MAP_CHUNK))
    assert r[-1] == N_MAP
    return row("%s Executor.map %d/%d" % (name, N_MAP, MAP_CHUNK), N_MAP,
               m, "it/s")


def producer(q, n):
    for i in range(n):
        q.put(("x", i))
    q.put(None)


def bench_queue(mod, name):
    q = mod.Queue()
    with Meter() as m:
        p = mod.Process(target=producer, args=(q, N_QUEUE))
        p.start()
        n = 0
        while q.get() is not None:
            n += 1
        p.join()
    assert n == N_QUEUE
    return row("%s Queue put/get 2 procs" % name, N_QUEUE, m, "it/s")


def bench_dict(mod, name):
    with Meter() as m:
        mgr = mod.Manager()
        d = mgr.dict()
        t = time.perf_counter()
        for i in range(N_DICT):
            d["k%d" % (i % 100)] = i
        for i in range(N_DICT):
            d["k%d" % (i % 100)]
        dt = time.perf_counter() - t
        mgr.shutdown()
    m.wall = dt
    return row("%s Manager().dict set+get" % name, 2 * N_DICT, m, "us")


def main():
    print("load average before: %.2f %.2f %.2f; %d CPUs; python %s" %
          (*os.getloadavg(), os.cpu_count(), sys.version.split()[0]))
    jobq.multiprocessing.Lock()  # connect (and start jobqd) first
    res = {}
    a = bench_apply(jobq.multiprocessing, "jobq")
    b = bench_apply(multiprocessing, "std ")
    res["apply"] = b / a
    a = bench_map(jobq.futures.ProcessPoolExecutor, "jobq")
    b = bench_map(concurrent.futures.ProcessPoolExecutor, "std ")
    res["map"] = b / a
    a = bench_queue(jobq.multiprocessing, "jobq")
    b = bench_queue(multiprocessing, "std ")
    res["queue"] = b / a
    a = bench_dict(jobq.multiprocessing, "jobq")
    b = bench_dict(multiprocessing, "std ")
    res["dict"] = b / a
    print("jobq vs std (x faster): apply round trip %.1f (target 3), "
          "map %.1f (2), queue %.1f (3), dict %.1f (20)" %
          (res["apply"], res["map"], res["queue"], res["dict"]))
    print("load average after: %.2f %.2f %.2f" % os.getloadavg())


if __name__ == "__main__":
    main()
