"""jobq.futures: concurrent.futures.ProcessPoolExecutor over jobq.

    from jobq.futures import ProcessPoolExecutor

Each submit() is a jobq job of the executor's private type, served by
max_workers processes it forks, or spawns when mp_context's start method
is spawn (see jobq._pool); each exits after max_tasks_per_child calls
when that is given, and another takes its place. Its Future is a real
concurrent.futures.Future, so as_completed(), wait() and
add_done_callback() work unchanged, and callbacks run in this process.
"""

import concurrent.futures as _cf
import threading
import time

from concurrent.futures import (ALL_COMPLETED, FIRST_COMPLETED,  # noqa
                                FIRST_EXCEPTION, CancelledError, Future,
                                TimeoutError, as_completed, wait)

from . import _instance, _pool
from ._core import JobFuture

__all__ = ["ProcessPoolExecutor", "Future", "as_completed", "wait",
           "FIRST_COMPLETED", "FIRST_EXCEPTION", "ALL_COMPLETED",
           "CancelledError", "TimeoutError", "JobFuture"]


class ProcessPoolExecutor(_cf.Executor):
    def __init__(self, max_workers=None, mp_context=None, initializer=None,
                 initargs=(), *, max_tasks_per_child=None):
        if max_workers is not None and max_workers <= 0:
            raise ValueError("max_workers must be greater than 0")
        if max_tasks_per_child is not None:
            if not isinstance(max_tasks_per_child, int):
                raise TypeError("max_tasks_per_child must be an integer")
            if max_tasks_per_child <= 0:
                raise ValueError("max_tasks_per_child must be >= 1")
        method = "fork" if mp_context is None else \
            mp_context.get_start_method()
        self._w = _pool.Workers(max_workers, initializer, initargs,
                                max_tasks_per_child, method)
        self._max_workers = self._w.n
        self._futures = set()
        self._lock = threading.Lock()
        self._shutdown = False
        _instance.at_exit(lambda: self.shutdown(wait=True))

    def submit(self, fn, /, *args, **kwargs):
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot schedule new futures after "
                                   "shutdown")
            jid = self._w.submit(_pool.CALL, fn, (args, kwargs))
            f = JobFuture(self._w.h, jid)
            self._futures.add(f)
        f.add_done_callback(self._forget)
        conn = self._w.conn
        conn.pump().watch(jid, lambda res: conn._settle(f, jid, res))
        return f

    def _forget(self, f):
        with self._lock:
            self._futures.discard(f)

    def map(self, fn, *iterables, timeout=None, chunksize=1):
        """Results in order, as the standard map: chunks of @chunksize
        calls per job; the iterator raises TimeoutError when a result is
        not there @timeout seconds after this call."""
        if self._shutdown:
            raise RuntimeError("cannot schedule new futures after shutdown")
        end = None if timeout is None else time.monotonic() + timeout
        items = list(zip(*iterables))
        chunksize = max(int(chunksize), 1)
        chunks = [items[i:i + chunksize]
                  for i in range(0, len(items), chunksize)]
        jids = self._w.submit_many(_pool.STARMAP, fn, chunks) \
            if chunks else []
        h, conn = self._w.h, self._w.conn

        def results():
            for i, jid in enumerate(jids):
                left = -1.0
                if end is not None:
                    left = max(end - time.monotonic(), 0.0)
                try:
                    part = _pool.wait_result(h, conn, jid, left)
                except BaseException:
                    for j in jids[i + 1:]:
                        h.cancel(j)
                    raise
                yield from part

        return results()

    def shutdown(self, wait=True, *, cancel_futures=False):
        with self._lock:
            self._shutdown = True
            pending = list(self._futures)
        if cancel_futures:
            for f in pending:
                f.cancel()
        self._w.close()
        if wait:
            _cf.wait(pending)
            self._w.stop()
        else:
            threading.Thread(target=self._finish, args=(pending,),
                             daemon=True).start()

    def _finish(self, pending):
        _cf.wait(pending)
        self._w.stop()

