"""The direct API: objects on the wire, connections, queues, the store,
locks, jobs as futures, and workers.

How Python values travel (the type tag of the jobq object):

=========================  ==============  ===============================
value                      tag             payload
=========================  ==============  ===============================
None                       JOBQ_T_NONE 0   empty
bytes, bytearray,          JOBQ_T_BYTES 1  the bytes (come back as bytes)
memoryview
str                        JOBQ_T_TEXT 3   UTF-8
JSON-exact values          JOBQ_T_JSON 2   compact JSON text
anything else              T_PICKLE        pickle protocol 5
=========================  ==============  ===============================

JSON-exact values are those that JSON gives back equal and of the same
types: bool, int within int64, finite float, and lists and str-keyed dicts
made only of these, str and None (a tuple, a set or a non-str key would
come back changed, so those travel pickled). T_PICKLE is 20569 (0x5059,
"PY"), registered for Python objects. Job results of a Python handler that
raised travel as a failed job whose error text is the remote traceback,
followed by a last line ``jobq-pickle:`` and the exception pickled and
base64-encoded, so that the CLI shows the traceback and Python re-raises
the exception itself.
"""

import base64
import binascii
import concurrent.futures
import errno
import itertools
import json
import math
import os
import pickle
import queue as _stdqueue
import threading
import traceback
import weakref

from . import _instance, _jobq

T_NONE = _jobq.JOBQ_T_NONE
T_BYTES = _jobq.JOBQ_T_BYTES
T_JSON = _jobq.JOBQ_T_JSON
T_TEXT = _jobq.JOBQ_T_TEXT
T_PICKLE = 0x5059
assert T_PICKLE >= _jobq.JOBQ_T_USER

Error = _jobq.Error
EXC_MARK = "jobq-pickle:"
_INT64 = 1 << 63


class DeadlockError(RuntimeError):
    """The manager refused a lock request that would close a cycle of
    waiters (or a plain lock taken again by its holder)."""


class RemoteTraceback(Exception):
    """The traceback of an exception raised in another process: set as the
    __cause__ of the exception re-raised here, as multiprocessing does."""

    def __init__(self, tb):
        self.tb = tb

    def __str__(self):
        return self.tb


class JobFailed(Exception):
    """A job ended without a result (dead or cancelled) and no Python
    exception came back with it: the text is its error."""


def _json_exact(v, depth=0):
    t = type(v)
    if t is str or t is bool or v is None:
        return True
    if t is int:
        return -_INT64 <= v < _INT64
    if t is float:
        return math.isfinite(v)
    if depth > 32:
        return False
    if t is list:
        return all(_json_exact(x, depth + 1) for x in v)
    if t is dict:
        return all(type(k) is str and _json_exact(x, depth + 1)
                   for k, x in v.items())
    return False


def dumps(obj):
    """(type tag, bytes) for a Python value; see the module's table."""
    t = type(obj)
    if t is bytes:
        return T_BYTES, obj
    if t is str:
        return T_TEXT, obj.encode("utf-8", "surrogatepass")
    if obj is None:
        return T_NONE, b""
    if t is bytearray or t is memoryview:
        return T_BYTES, bytes(obj)
    if t is int:
        # The common scalars without json.dumps (3 us against 0.1 us):
        # int's and float's repr are the JSON text json.dumps writes.
        if -_INT64 <= obj < _INT64:
            return T_JSON, b"%d" % obj
    elif t is bool:
        return T_JSON, b"true" if obj else b"false"
    elif t is float:
        if math.isfinite(obj):
            return T_JSON, repr(obj).encode()
    elif t is list or t is dict:
        if _json_exact(obj):
            return T_JSON, json.dumps(obj, separators=(",", ":"),
                                      ensure_ascii=False).encode()
    return T_PICKLE, pickle.dumps(obj, protocol=5)


def loads(type, data):
    """The Python value of a jobq object of tag @type."""
    if type == T_PICKLE:
        return pickle.loads(data)
    if type == T_BYTES:
        return data
    if type == T_TEXT:
        return data.decode("utf-8", "surrogatepass")
    if type == T_JSON:
        # An integer without json.loads: only what the JSON grammar
        # calls an integer (-?(0|[1-9][0-9]*)), which int() reads alike.
        d = data[1:] if data[:1] == b"-" else data
        if d.isdigit() and (d[:1] != b"0" or len(d) == 1):
            return int(data)
        return json.loads(data)
    if type == T_NONE:
        return None
    return data  # another application's type: its bytes


def encode_exception(exc):
    """The error text for a job whose Python code raised @exc."""
    tb = "".join(traceback.format_exception(type(exc), exc,
                                            exc.__traceback__))
    try:
        p = pickle.dumps(exc, protocol=5)
        pickle.loads(p)
    except Exception:
        p = pickle.dumps(RuntimeError("%s: %s" % (type(exc).__name__, exc)),
                         protocol=5)
    return "%s\n%s%s" % (tb.rstrip("\n").replace("\0", "\\0"), EXC_MARK,
                         base64.b64encode(p).decode())


def decode_failure(text):
    """The exception to raise for a job that failed with error @text."""
    i = text.rfind("\n" + EXC_MARK)
    if i >= 0:
        try:
            exc = pickle.loads(base64.b64decode(text[i + 1 + len(EXC_MARK):]))
            if isinstance(exc, BaseException):
                exc.__cause__ = RemoteTraceback(
                    '\n"""\n%s\n"""' % text[:i])
                return exc
        except (binascii.Error, pickle.UnpicklingError, ValueError,
                EOFError, AttributeError, ImportError, TypeError):
            pass
    return JobFailed(text)


def _timeout(block, timeout):
    """jobq's timeout for Python's (block, timeout) pair."""
    if not block:
        return 0.0
    if timeout is None:
        return -1.0
    return max(float(timeout), 0.0)


_names = itertools.count()


def unique_name(kind):
    """A name no other object of this instance has: at most 63 bytes."""
    return "py.%s.%d.%d.%s" % (kind, os.getpid(), next(_names),
                               binascii.hexlify(os.urandom(4)).decode())


class Connection:
    """One connection to a jobqd manager (``jobq.connect(dir=None)``).

    The connection is for the process that made it; a forked child makes
    its own (``jobq.connect()`` again). Its queues, store, locks and jobs
    are named, so every process of the instance sees the same ones.
    """

    def __init__(self, dir=None, _handle=None):
        self._h = _handle if _handle is not None else \
            _instance.connect_handle(dir)
        self.kv = Store(self)
        self._pump = None
        self._pump_lock = threading.Lock()

    @property
    def dir(self):
        return self._h.dir

    def close(self):
        """Close the connection (after its pump thread ended)."""
        p = self._pump
        if p is not None:
            p.stop(join=True)
        self._h.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def ping(self):
        self._h.ping()

    def stats(self):
        return self._h.stats()

    # Queues.
    def put(self, queue, obj, timeout=None):
        """Put @obj on @queue; raise queue.Full when @timeout passes."""
        t, b = dumps(obj)
        if not self._h.put(queue, t, b, _timeout(True, timeout)):
            raise _stdqueue.Full
        return None

    def get(self, queue, timeout=None):
        """The oldest object of @queue; queue.Empty after @timeout."""
        r = self._h.get(queue, _timeout(True, timeout))
        if r is None:
            raise _stdqueue.Empty
        return loads(*r)

    def put_many(self, queue, objs, timeout=None):
        """Put every object of @objs (in batches); returns how many."""
        enc = [dumps(o) for o in objs]
        done = 0
        while done < len(enc):
            n = self._h.put_many(queue, enc[done:], _timeout(True, timeout))
            if n == 0:
                raise _stdqueue.Full
            done += n
        return done

    def get_many(self, queue, max, timeout=None):
        """Up to @max objects: waits for the first, takes what else is
        there. An empty list after @timeout."""
        return [loads(*r) for r in
                self._h.get_many(queue, max, _timeout(True, timeout))]

    def lock(self, name):
        """The named lock @name as a context manager."""
        return NamedLock(name, self)

    # Jobs.
    def submit(self, type, args=None, *, priority=0, delay=0.0,
               timeout=0.0, retries=0, queue=None):
        """Submit a job of @type with @args; returns a
        concurrent.futures.Future of its result (a failed job raises its
        exception or JobFailed)."""
        t, b = dumps(args)
        jid = self._h.submit(type, t, b, priority=priority, delay=delay,
                             timeout=timeout, retries=retries, queue=queue)
        return self.future(jid)

    def apply(self, type, args=None, timeout=None, **opts):
        return self.submit(type, args, **opts).result(timeout)

    def future(self, jid):
        """A JobFuture completed when job @jid is final; its callbacks run
        in this process, in the connection's pump thread."""
        f = JobFuture(self._h, jid)
        self.pump().watch(jid, lambda res: self._settle(f, jid, res))
        return f

    def result(self, jid, res):
        """The value of final job @jid whose wait returned @res, or raise
        its exception."""
        if res == 0:
            return loads(*self._h.job_result(jid))
        if res in (_jobq.JOBQ_EJOBFAILED, -errno.ECANCELED):
            try:
                _, text = self._h.job_result(jid)
            except Error:
                text = b"the job failed"
            raise decode_failure(text.decode("utf-8", "replace"))
        raise Error(res, _jobq.strerror(res))

    def _settle(self, f, jid, res):
        if res == -errno.ECANCELED:
            concurrent.futures.Future.cancel(f)
        if f.cancelled():
            f.set_running_or_notify_cancel()  # tells wait() and friends
            return
        if f.done() or not f.set_running_or_notify_cancel():
            return
        try:
            v = self.result(jid, res)
        except BaseException as e:
            f.set_exception(e)
        else:
            f.set_result(v)

    def pump(self):
        p = self._pump
        if p is None or not p.alive():
            with self._pump_lock:
                if self._pump is None or not self._pump.alive():
                    self._pump = Pump(self._h)
                p = self._pump
        return p


class JobFuture(concurrent.futures.Future):
    """A concurrent.futures.Future of job .job_id. It stays pending until
    the job is final (jobq does not tell a client when a worker takes a
    job); cancel() succeeds while the job has not been handed out."""

    def __init__(self, h, jid):
        super().__init__()
        self.job_id = jid
        self._jh = h

    def cancel(self):
        with self._condition:
            if self._state != "PENDING":
                return super().cancel()
        info = self._jh.job_info(self.job_id)
        if info is None or info[0] not in (_jobq.JOBQ_JOB_WAITING,
                                           _jobq.JOBQ_JOB_DELAYED,
                                           _jobq.JOBQ_JOB_READY):
            return False
        if self._jh.cancel(self.job_id) != 0:
            return False
        # The pump may have cancelled it already, on the job's news.
        return concurrent.futures.Future.cancel(self)


_pumps = weakref.WeakSet()


def stop_pumps():
    """End every pump thread of this process (at exit, before the
    manager stops, so that none is inside a call when it goes)."""
    for p in list(_pumps):
        if p._pid == os.getpid():
            p.stop(join=True)


class Pump:
    """A thread that runs the done callbacks of jobs (the result handler
    thread of multiprocessing.Pool): libjobq runs them in the thread that
    waits in jobq_wait_idle(), which is this one."""

    def __init__(self, h):
        self._h = h
        self._efd = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
        self._stop = False
        self._pid = os.getpid()
        self._ticks = []
        self._t = threading.Thread(target=self._run, name="jobq-pump",
                                   daemon=True)
        self._t.start()
        _pumps.add(self)

    def alive(self):
        return self._pid == os.getpid() and not self._stop

    def watch(self, jid, fn):
        """Call fn(res) in this thread once job @jid is final."""
        self._h.on_done(jid, lambda _, res: fn(res))
        os.eventfd_write(self._efd, 1)

    def every_tick(self, fn):
        """Call fn() at least every 100 ms in this thread, until it returns
        False."""
        self._ticks.append(fn)

    def stop(self, join=False):
        self._stop = True
        try:
            os.eventfd_write(self._efd, 1)
        except OSError:
            pass
        if join and self._t is not threading.current_thread():
            self._t.join(5)

    def _run(self):
        while not self._stop:
            try:
                self._h.pump(self._efd, 0.1)
            except Exception:
                if self._stop:
                    break
                raise
            for fn in list(self._ticks):
                try:
                    if fn() is False:
                        self._ticks.remove(fn)
                except Exception:
                    traceback.print_exc()


class Store:
    """The key/value store as a mutable mapping of str keys to values (any
    value dumps() takes), with incr() and cas()."""

    def __init__(self, conn):
        self._c = conn

    def __getitem__(self, key):
        r = self._c._h.kv_get(key)
        if r is None:
            raise KeyError(key)
        return loads(*r)

    def __setitem__(self, key, value):
        self._c._h.kv_set(key, *dumps(value))

    def __delitem__(self, key):
        if not self._c._h.kv_del(key):
            raise KeyError(key)

    def __contains__(self, key):
        return self._c._h.kv_get(key) is not None

    def get(self, key, default=None):
        r = self._c._h.kv_get(key)
        return default if r is None else loads(*r)

    def keys(self, prefix=""):
        """The keys that start with @prefix (all: "")."""
        return [prefix + k for k, _, _ in self._c._h.kv_list(prefix)]

    def items(self, prefix=""):
        return [(prefix + k, loads(t, b))
                for k, t, b in self._c._h.kv_list(prefix)]

    def values(self, prefix=""):
        return [loads(t, b) for _, t, b in self._c._h.kv_list(prefix)]

    def __iter__(self):
        return iter(self.keys())

    def __len__(self):
        return len(self._c._h.kv_list(""))

    def incr(self, key, by=1):
        """Add @by to the decimal integer at @key (missing: 0) atomically;
        returns the new value."""
        return self._c._h.kv_incr(key, by)

    def cas(self, key, expect, new, missing=False):
        """Set @key to @new only if its value is @expect (or, with
        missing=True, only if there is no such key), atomically; True when
        it did."""
        et = None if missing else dumps(expect)[1]
        return self._c._h.kv_cas(key, et, *dumps(new))


class NamedLock:
    """A named lock of the instance, as a context manager."""

    def __init__(self, name, conn):
        self.name = name
        self._c = conn

    def acquire(self, block=True, timeout=None):
        return _lock_acquire(self._c._h, self.name, _timeout(block, timeout))

    def release(self):
        self._c._h.lock_release(self.name)

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc):
        self.release()


def _lock_acquire(h, name, timeout):
    try:
        return h.lock_acquire(name, timeout)
    except Error as e:
        if e.errno == -errno.EDEADLK:
            if timeout == 0:
                return False
            raise DeadlockError("jobq: lock %r: %s" % (name, e.strerror))
        raise


# ------------------------------------------------------------------------
# Workers: @jobq.task functions served by `python -m jobq worker MODULE`.

_tasks = {}


def task(fn=None, *, name=None):
    """Register @fn as the handler of job type @name (default: the
    function's module and name). Calling the function runs it here;
    fn.submit(*args, **kw) submits it as a job and returns a Future."""

    def deco(f):
        tname = name or "%s.%s" % (f.__module__, f.__qualname__)
        tname = tname[-47:]
        _tasks[tname] = f

        def submit(*args, **kw):
            return connect_default().submit(tname, [list(args), kw])

        f.jobq_type = tname
        f.submit = submit
        return f

    return deco(fn) if fn is not None else deco


def call_handler(fn, attempt_args):
    """Run @fn for a job: the (True, type, bytes) or (False, final, text)
    that _jobq.Worker wants."""
    try:
        r = fn()
        return (True,) + dumps(r)
    except BaseException as e:
        return (False, True, encode_exception(e))


def _task_handler(tname):
    f = _tasks[tname]

    def handle(jid, attempt, atype, data):
        def run():
            a = loads(atype, data)
            if isinstance(a, (list, tuple)) and len(a) == 2 and \
                    isinstance(a[1], dict):
                return f(*a[0], **a[1])
            return f(a)
        return call_handler(run, None)

    return handle


def serve(types=None, concurrency=1):
    """Serve the registered @jobq.task types (or those named) until SIGTERM,
    SIGINT or the manager's shutdown."""
    h = _instance.connect_handle()
    w = _jobq.Worker(h, concurrency=concurrency)
    for t in (types or sorted(_tasks)):
        w.handle(t, _task_handler(t))
    w.run()


_default = None


def connect_default():
    """The process's default Connection (see jobq._instance)."""
    global _default
    c = _default
    if c is None or c._h is not _instance.handle():
        c = _default = Connection(_handle=_instance.handle())
    return c


def connect(dir=None):
    """A new Connection to the manager of instance directory @dir, or the
    program's instance: $JOBQ_DIR, the default directory's manager, or a
    private jobqd started for this program and stopped at its exit."""
    return Connection(dir)

