"""Worker processes for Pool and ProcessPoolExecutor.

A pool is a private job type ("py.pool.PID.N.RANDOM") and N processes
that serve it through libjobq's worker runtime, forked from the caller or,
with the spawn start method, fresh interpreters (jobq._spawn), as
multiprocessing.Pool starts its workers. A call is one job whose args are
(kind, function, payload) pickled, and whose result is pickled too:
functions travel by reference, as the standard module sends them, so
functions of __main__ work (forked workers have __main__; spawned ones
import the main script again as __mp_main__). A chunk of map() is one
job.

jobqd does the rest: it hands jobs out, and a job whose worker dies goes
back and runs again (the default three retries, after a backoff), so a
killed worker loses no call; the pool forks a new worker in its place, from
the connection's pump thread, as multiprocessing.Pool's handler thread
does.

A Python exception in a call fails its job for good with the exception
pickled in the error text (see jobq._core); the caller raises it with the
remote traceback as its cause.
"""

import errno
import os
import pickle
import signal
import sys
import threading
import time
import traceback

from . import _core, _instance, _jobq

CALL, MAP, STARMAP = 0, 1, 2
# The lease of a pool job: a call may run as long as it likes (the
# standard pools have no time limit); a dead worker is noticed by jobqd at
# once, without waiting for the lease.
LEASE = 7 * 24 * 3600.0


def _run_call(jid, attempt, atype, data):
    try:
        kind, fn, payload = _core.loads(atype, data)
        if kind == CALL:
            r = fn(*payload[0], **payload[1])
        elif kind == MAP:
            r = [fn(x) for x in payload]
        else:
            r = [fn(*x) for x in payload]
        # Pickled, as the call came: a pool's jobs are the pool's own, and
        # for a chunk's list of results pickle costs a tenth of the JSON
        # check and text that _core.dumps() gives the direct API (8 us
        # against 59 us to write and read 100 ints).
        return (True, _core.T_PICKLE, pickle.dumps(r, protocol=5))
    except BaseException as e:
        return (False, True, _core.encode_exception(e))


def _child_main(jtype, initializer, initargs, maxtasks=None):
    """Serve pool type @jtype until stopped, or until @maxtasks jobs ran
    (multiprocessing's maxtasksperchild): then the worker takes no more
    and returns once the last one's result is reported, so the process
    exits holding no job and the pool starts another in its place."""
    h = _instance.handle()  # a new connection: a fresh fork or interpreter
    if initializer is not None:
        initializer(*initargs)
    w = _jobq.Worker(h, concurrency=1, daemon=True)
    if maxtasks:
        left = [maxtasks]

        def run(jid, attempt, atype, data):
            try:
                return _run_call(jid, attempt, atype, data)
            finally:
                left[0] -= 1
                if left[0] == 0:
                    w.stop()

        w.handle(jtype, run)
    else:
        w.handle(jtype, _run_call)
    w.run()
    _instance.flush()


class Workers:
    """@n processes serving one private job type: forks of this one, or
    fresh interpreters with @method "spawn" (see jobq._spawn). With
    @maxtasks, each one exits after that many jobs and is replaced."""

    def __init__(self, n, initializer=None, initargs=(), maxtasks=None,
                 method="fork"):
        if n is None:
            n = os.cpu_count() or 1
        if n < 1:
            raise ValueError("Number of processes must be at least 1")
        if method not in ("fork", "spawn"):
            raise ValueError("jobq: start method %r is not supported for "
                             "pool workers (fork or spawn)" % (method,))
        self.n = n
        self.method = method
        self._maxtasks = maxtasks
        self._count = 0
        self.type = _core.unique_name("pool")[:47]
        self.conn = _core.connect_default()
        self.h = self.conn._h
        self._init = (initializer, initargs, maxtasks)
        self._pids = set()
        self._lock = threading.Lock()
        self._state = "run"  # run, closing (no respawn), stopped
        for _ in range(n):
            self._spawn()
        self.conn.pump().every_tick(self._maintain)
        _instance.at_exit(self.kill)

    def _spawn(self):
        self._count += 1
        if self.method == "spawn":
            from . import _spawn
            name = "SpawnPoolWorker-%d" % self._count
            self._pids.add(_spawn.start_pool_worker(
                name, (self.type, *self._init)))
            return
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                _child_main(self.type, *self._init)
            except BaseException:
                traceback.print_exc()
                code = 1
            finally:
                try:
                    sys.stdout.flush()
                    sys.stderr.flush()
                finally:
                    os._exit(code)
        self._pids.add(pid)

    def pids(self):
        return sorted(self._pids)

    def _reap(self):
        for pid in list(self._pids):
            try:
                p, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                p = pid
            if p:
                self._pids.discard(pid)

    def _maintain(self):
        """Reap dead workers and fork new ones in their place (in the
        pump thread); False once the pool is stopped."""
        with self._lock:
            if self._state == "stopped":
                return False
            self._reap()
            if self._state == "run":
                while len(self._pids) < self.n:
                    self._spawn()
        return True

    def submit(self, kind, fn, payload):
        b = pickle.dumps((kind, fn, payload), protocol=5)
        return self.h.submit(self.type, _core.T_PICKLE, b, timeout=LEASE)

    def apply(self, fn, args, kwds):
        """Run fn(*args, **kwds) in a worker and wait: one call into
        libjobq (jobq_apply), the GIL released throughout."""
        b = pickle.dumps((CALL, fn, (args, kwds)), protocol=5)
        code, t, data = self.h.apply(self.type, _core.T_PICKLE, b, LEASE)
        if code == 0:
            return _core.loads(t, data)
        if code in (_jobq.JOBQ_EJOBFAILED, -errno.ECANCELED):
            raise _core.decode_failure(data.decode("utf-8", "replace"))
        raise _core.Error(code, _jobq.strerror(code))

    def submit_many(self, kind, fn, payloads):
        args = [(_core.T_PICKLE, pickle.dumps((kind, fn, p), protocol=5))
                for p in payloads]
        return self.h.submit_many(self.type, args, timeout=LEASE)

    def close(self):
        with self._lock:
            if self._state == "run":
                self._state = "closing"

    def stop(self, sig=signal.SIGTERM, timeout=10.0):
        """Signal every worker (SIGTERM: finish the running job, then exit)
        and reap them; one still there after @timeout seconds is killed."""
        with self._lock:
            self._state = "stopped"
            pids = list(self._pids)
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        end = time.monotonic() + timeout
        for pid in pids:
            while True:
                try:
                    p, _ = os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    break
                if p:
                    break
                if time.monotonic() >= end:
                    os.kill(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)
                    break
                time.sleep(0.005)
            self._pids.discard(pid)

    def kill(self):
        if self._state != "stopped":
            self.stop(signal.SIGKILL)


def wait_result(h, conn, jid, timeout=-1.0):
    """Wait for job @jid in the calling thread; its value, or raise its
    exception (TimeoutError when @timeout passed)."""
    res = h.job_wait(jid, timeout)
    if res in (-errno.ETIMEDOUT, -errno.EAGAIN):
        raise TimeoutError
    return conn.result(jid, res)
