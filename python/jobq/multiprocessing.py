"""jobq.multiprocessing: the standard multiprocessing names over jobq.

    import jobq.multiprocessing as multiprocessing

Locks, semaphores, events, conditions, queues and the manager's objects
live in jobqd, under names, and so do Value and Array; pickling one sends
its name, so they work between processes that did not fork from each
other too. Process is the standard Process (children reaped, daemon
children terminated at exit and, when started from the main thread,
killed if the parent dies). Pool runs calls as jobq jobs in worker
processes (see jobq._pool). Both start their processes by fork, the
default as on Linux, or by spawn (set_start_method, get_context; see
jobq._spawn); forkserver is not offered.

Differences from the standard module, all of them jobq's rules: a Lock or
RLock belongs to the thread that took it, so releasing it from another
thread raises; a lock request that would deadlock across processes raises
jobq.DeadlockError instead of hanging; a holder that dies releases its
locks.
"""

import collections.abc
import errno
import itertools
import multiprocessing as _mp
import multiprocessing.sharedctypes as _mpshared
import os
import queue as _stdqueue
import signal
import threading
import time

from . import _core, _instance, _jobq, _pool
from ._core import DeadlockError, RemoteTraceback, _timeout, dumps, loads

__all__ = [
    "Process", "current_process", "active_children", "parent_process",
    "cpu_count", "Lock", "RLock", "Semaphore", "BoundedSemaphore", "Event",
    "Condition", "Barrier", "Queue", "JoinableQueue", "SimpleQueue",
    "Manager", "Pool", "Value", "TimeoutError", "AuthenticationError",
    "ProcessError", "BufferTooShort", "DeadlockError", "RemoteTraceback",
    "freeze_support", "get_start_method", "set_start_method",
    "get_context", "get_all_start_methods", "Array", "RawArray",
    "RawValue",
]

TimeoutError = _mp.TimeoutError
ProcessError = _mp.ProcessError
AuthenticationError = _mp.AuthenticationError
BufferTooShort = _mp.BufferTooShort
current_process = _mp.current_process
parent_process = _mp.parent_process
active_children = _mp.active_children
freeze_support = _mp.freeze_support
Barrier = _mp.Barrier


def cpu_count():
    """The number of CPUs of this machine, as multiprocessing's."""
    return os.cpu_count() or 1


# ------------------------------------------------------------------------
# Start methods and contexts. fork is the default, as the standard
# module's on Linux; spawn starts a fresh interpreter (jobq._spawn).
# Locks, queues and the rest live in jobqd, so only Process and Pool
# depend on the method.

_METHODS = ("fork", "spawn")
_default_method = None  # None until set or first asked, as the standard


def _check_method(method):
    if method == "forkserver":
        raise ValueError("jobq.multiprocessing: the 'forkserver' start "
                         "method is not supported; use 'fork' or 'spawn'")
    if method not in _METHODS:
        raise ValueError("cannot find context for %r" % (method,))


def get_all_start_methods():
    return list(_METHODS)


def get_start_method(allow_none=False):
    """The default start method: None with @allow_none while none was set
    or used, else the one set (fork when none was)."""
    global _default_method
    if _default_method is None:
        if allow_none:
            return None
        _default_method = "fork"
    return _default_method


def set_start_method(method, force=False):
    """Set the default start method ("fork" or "spawn"), once, as the
    standard module: again raises RuntimeError unless @force."""
    global _default_method
    if _default_method is not None and not force:
        raise RuntimeError("context has already been set")
    if method is None and force:
        _default_method = None
        return
    _check_method(method)
    _default_method = method


def get_context(method=None):
    """A context whose Process and Pool start processes by @method (the
    default one when None); its other names are this module's."""
    if method is None:
        method = get_start_method()
    _check_method(method)
    return _contexts[method]


def _h():
    return _instance.handle()


# ------------------------------------------------------------------------
# Process


class _JobqProcess(_mp.process.BaseProcess):
    """multiprocessing's Process. A daemon child started from the main
    thread also gets SIGKILL when its parent dies (prctl
    PR_SET_PDEATHSIG), not only the standard SIGTERM at a normal exit."""

    def start(self):
        self._jobq_pdeath = (self.daemon and threading.current_thread()
                             is threading.main_thread())
        self._jobq_ppid = os.getpid()
        super().start()

    def _bootstrap(self, parent_sentinel=None):
        if getattr(self, "_jobq_pdeath", False):
            _jobq.set_pdeathsig(signal.SIGKILL)
            if os.getppid() != self._jobq_ppid:
                os._exit(1)  # the parent died before prctl
        try:
            return super()._bootstrap(parent_sentinel)
        finally:
            # A forked child ends with os._exit(): puts still in flight
            # must reach jobqd first, as the standard Queue joins its
            # feeder.
            _instance.flush()


class ForkProcess(_JobqProcess):
    """A Process started by fork."""
    _start_method = "fork"

    @staticmethod
    def _Popen(process_obj):
        from multiprocessing.popen_fork import Popen
        return Popen(process_obj)


class SpawnProcess(_JobqProcess):
    """A Process started as a fresh interpreter: its target and arguments
    travel pickled, the target by reference (see jobq._spawn)."""
    _start_method = "spawn"

    @staticmethod
    def _Popen(process_obj):
        from . import _spawn
        return _spawn.Popen(process_obj)


class Process(_JobqProcess):
    """A Process started by the default start method at start()."""
    _start_method = None

    @staticmethod
    def _Popen(process_obj):
        return get_context().Process._Popen(process_obj)


# ------------------------------------------------------------------------
# Locks. The named object lives in jobqd; the Python object holds its
# name (all that pickling sends) and, per thread, how deep this thread
# holds it, for Condition.


class _Named:
    def __getstate__(self):
        return self._state()

    def __setstate__(self, st):
        self._restore(st)

    def _state(self):
        return self._name

    def _restore(self, st):
        self._name = st


class Lock(_Named):
    _kind = _jobq.JOBQ_LOCK
    _prefix = "lock"

    def __init__(self, *, ctx=None, name=None):
        self._name = name or _core.unique_name(self._prefix)
        self._local = threading.local()
        _h().lock_create(self._name, self._kind, 1)

    def _restore(self, st):
        self._name = st
        self._local = threading.local()

    def _depth(self):
        return getattr(self._local, "depth", 0)

    def acquire(self, block=True, timeout=None):
        ok = _core._lock_acquire(_h(), self._name, _timeout(block, timeout))
        if ok:
            self._local.depth = self._depth() + 1
        return ok

    def release(self):
        try:
            _h().lock_release(self._name)
        except _core.Error as e:
            if e.errno == -errno.EPERM:
                raise ValueError("jobq: %s %r is not held by this thread" %
                                 (self._prefix, self._name)) from None
            raise
        self._local.depth = max(self._depth() - 1, 0)

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()

    def _is_owned(self):
        return self._depth() > 0

    def __repr__(self):
        return "<%s(%s)>" % (type(self).__name__, self._name)


class RLock(Lock):
    _kind = _jobq.JOBQ_RLOCK
    _prefix = "rlock"


class Semaphore(_Named):
    """A counting semaphore: a jobq queue of tokens (acquire takes one,
    release puts one back), so, as in the standard module, any process
    may release it."""

    def __init__(self, value=1, *, ctx=None):
        if value < 0:
            raise ValueError("semaphore initial value must be >= 0")
        self._name = _core.unique_name("sem")
        self._value0 = value
        h = _h()
        h.queue_open(self._name)
        if value:
            h.put_many(self._name, [(_core.T_NONE, b"")] * value)

    def _state(self):
        return (self._name, self._value0)

    def _restore(self, st):
        self._name, self._value0 = st

    def acquire(self, block=True, timeout=None):
        return _h().get(self._name, _timeout(block, timeout)) is not None

    def release(self):
        _h().put(self._name, _core.T_NONE, b"")

    def get_value(self):
        i = _h().queue_info(self._name)
        return i[0] if i else 0

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()

    def __repr__(self):
        return "<%s(value=%s)>" % (type(self).__name__, self.get_value())


class BoundedSemaphore(Semaphore):
    def release(self):
        if self.get_value() >= self._value0:
            raise ValueError("semaphore or lock released too many times")
        super().release()


class Event(_Named):
    def __init__(self, *, ctx=None):
        self._name = _core.unique_name("event")
        _h().event_set(self._name, True)  # created, clear

    def is_set(self):
        i = _h().lock_info(self._name)
        return bool(i and i[5])

    def set(self):
        _h().event_set(self._name)

    def clear(self):
        _h().event_set(self._name, True)

    def wait(self, timeout=None):
        return _h().event_wait(self._name, _timeout(True, timeout))


class Condition(_Named):
    """multiprocessing's Condition algorithm, with its three semaphores as
    queues of tokens: sleepers count themselves, notify wakes as many as
    it may and waits until they took their token."""

    def __init__(self, lock=None, *, ctx=None):
        self._lock = lock if lock is not None else RLock()
        self._name = _core.unique_name("cond")
        for s in ("s", "w", "k"):
            _h().queue_open(self._name + s)
        self._bind()

    def _bind(self):
        self.acquire = self._lock.acquire
        self.release = self._lock.release

    def _state(self):
        return (self._name, self._lock)

    def _restore(self, st):
        self._name, self._lock = st
        self._bind()

    def __enter__(self):
        return self._lock.__enter__()

    def __exit__(self, *exc):
        return self._lock.__exit__(*exc)

    def _up(self, s):
        _h().put(self._name + s, _core.T_NONE, b"")

    def _down(self, s, timeout):
        return _h().get(self._name + s, timeout) is not None

    def wait(self, timeout=None):
        if not self._lock._is_owned():
            raise RuntimeError("cannot wait on un-acquired lock")
        self._up("s")  # one more sleeper
        count = self._lock._depth()
        for _ in range(count):
            self._lock.release()
        try:
            return self._down("w", _timeout(True, timeout))
        finally:
            self._up("k")  # one more woken
            for _ in range(count):
                self._lock.acquire()

    def notify(self, n=1):
        if not self._lock._is_owned():
            raise RuntimeError("cannot notify on un-acquired lock")
        # Count out the sleepers that woke by timeout since last time.
        while self._down("k", 0):
            self._down("s", 0)
        sleepers = 0
        while sleepers < n and self._down("s", 0):
            self._up("w")
            sleepers += 1
        if sleepers:
            for _ in range(sleepers):
                self._down("k", -1)
            while self._down("w", 0):
                pass

    def notify_all(self):
        self.notify(n=1 << 30)

    def wait_for(self, predicate, timeout=None):
        result = predicate()
        if result:
            return result
        end = None if timeout is None else time.monotonic() + timeout
        while not result:
            if end is not None:
                left = end - time.monotonic()
                if left <= 0:
                    break
                self.wait(left)
            else:
                self.wait()
            result = predicate()
        return result


# ------------------------------------------------------------------------
# Queues


class Queue(_Named):
    """A named jobq queue of any picklable objects; maxsize bounds it."""

    def __init__(self, maxsize=0, *, ctx=None):
        self._name = _core.unique_name("q")
        self._maxsize = maxsize if maxsize > 0 else 0
        _h().queue_open(self._name, self._maxsize)

    def _state(self):
        return (self._name, self._maxsize)

    def _restore(self, st):
        self._name, self._maxsize = st

    def put(self, obj, block=True, timeout=None):
        """Put @obj.

        On an unbounded queue with block=True and no timeout, put() returns
        once @obj is pickled and its request is in this process's ring to
        jobqd, before jobqd has applied it (the standard Queue.put returns
        once a feeder thread has the object, before it is in the pipe).
        What still holds: the puts of one process are applied in the order
        they were made, and before any later request of the same process
        (its own get() sees them, and so does a process it signals through
        a jobq Lock, Event, Queue or job), unless jobqd's store is out of
        room and the put waits for some; join_thread(), qsize(), empty(),
        full() and the end of the process (also a Process child's) wait
        until every put of this process was applied. A put that failed
        (a store out of memory) raises from the next put() of the process.
        A process killed with SIGKILL can lose its puts not yet applied,
        as a standard Queue loses what its feeder had not written.

        On a bounded queue, or with block=False or a timeout, put()
        returns once jobqd has the object, or raises queue.Full."""
        t, b = dumps(obj)
        if not self._maxsize and block and timeout is None:
            _h().put_async(self._name, t, b)
        elif not _h().put(self._name, t, b, _timeout(block, timeout)):
            raise _stdqueue.Full

    def get(self, block=True, timeout=None):
        r = _h().get(self._name, _timeout(block, timeout))
        if r is None:
            raise _stdqueue.Empty
        return loads(*r)

    def put_nowait(self, obj):
        return self.put(obj, False)

    def get_nowait(self):
        return self.get(False)

    def put_many(self, objs, timeout=None):
        c = _core.connect_default()
        return c.put_many(self._name, objs, timeout)

    def get_many(self, max, timeout=None):
        return _core.connect_default().get_many(self._name, max, timeout)

    def qsize(self):
        h = _h()
        h.flush(10.0)  # this process's own puts count
        i = h.queue_info(self._name)
        return i[0] if i else 0

    def empty(self):
        return self.qsize() == 0

    def full(self):
        return self._maxsize > 0 and self.qsize() >= self._maxsize

    def close(self):
        pass

    def join_thread(self):
        """Wait until every put of this process was applied (the standard
        Queue joins its feeder thread)."""
        _instance.flush(None)

    def cancel_join_thread(self):
        pass


class JoinableQueue(Queue):
    def task_done(self):
        try:
            _h().task_done(self._name)
        except _core.Error as e:
            if e.errno == -errno.EINVAL:
                raise ValueError("task_done() called too many times") \
                    from None
            raise

    def join(self):
        _h().join(self._name, -1)


class SimpleQueue(Queue):
    def __init__(self, *, ctx=None):
        super().__init__()

    def put(self, obj):
        """Put @obj and return once jobqd has it, as the standard
        SimpleQueue writes its pipe before returning."""
        t, b = dumps(obj)
        _h().put(self._name, t, b, -1.0)


# ------------------------------------------------------------------------
# Manager: its objects are keys of jobq's store.


def _enc_key(k):
    if type(k) is str and len(k.encode()) <= 200 and "\0" not in k:
        return "s" + k
    import base64
    import pickle
    return "p" + base64.urlsafe_b64encode(pickle.dumps(k, protocol=5)) \
        .decode()


def _dec_key(s):
    if s[0] == "s":
        return s[1:]
    import base64
    import pickle
    return pickle.loads(base64.urlsafe_b64decode(s[1:]))


class DictProxy(_Named, collections.abc.MutableMapping):
    """A dict in jobq's store: one key per entry under a private prefix.
    Reads go straight to the store (no round trip); each write is one."""

    def __init__(self, *args, **kw):
        self._name = _core.unique_name("d") + "/"
        if args or kw:
            self.update(*args, **kw)

    def __getitem__(self, k):
        r = _h().kv_get(self._name + _enc_key(k))
        if r is None:
            raise KeyError(k)
        return loads(*r)

    def __setitem__(self, k, v):
        _h().kv_set(self._name + _enc_key(k), *dumps(v))

    def __delitem__(self, k):
        if not _h().kv_del(self._name + _enc_key(k)):
            raise KeyError(k)

    def __contains__(self, k):
        return _h().kv_get(self._name + _enc_key(k)) is not None

    def get(self, k, default=None):
        r = _h().kv_get(self._name + _enc_key(k))
        return default if r is None else loads(*r)

    def _items(self):
        return [(_dec_key(k), loads(t, b))
                for k, t, b in _h().kv_list(self._name)]

    def __iter__(self):
        return iter([k for k, _ in self._items()])

    def __len__(self):
        return len(_h().kv_list(self._name))

    def copy(self):
        return dict(self._items())

    _getvalue = copy

    def __eq__(self, other):
        return self.copy() == (other.copy() if isinstance(other, DictProxy)
                               else other)

    def __repr__(self):
        return repr(self.copy())


class ListProxy(_Named, collections.abc.MutableSequence):
    """A list in one key of jobq's store; every change is a
    compare-and-swap of the whole list, so concurrent changes from many
    processes are never lost."""

    def __init__(self, seq=()):
        self._name = _core.unique_name("l")
        _h().kv_set(self._name, *dumps(list(seq)))

    def _get(self):
        r = _h().kv_get(self._name)
        return [] if r is None else loads(*r)

    def _update(self, fn):
        h = _h()
        while True:
            r = h.kv_get(self._name)
            lst = loads(*r)
            res = fn(lst)
            if h.kv_cas(self._name, r[1], *dumps(lst)):
                return res

    def __getitem__(self, i):
        return self._get()[i]

    def __setitem__(self, i, v):
        self._update(lambda l: l.__setitem__(i, v))

    def __delitem__(self, i):
        self._update(lambda l: l.__delitem__(i))

    def __len__(self):
        return len(self._get())

    def insert(self, i, v):
        self._update(lambda l: l.insert(i, v))

    def append(self, v):
        self._update(lambda l: l.append(v))

    def extend(self, vs):
        vs = list(vs)
        self._update(lambda l: l.extend(vs))

    def pop(self, i=-1):
        return self._update(lambda l: l.pop(i))

    def remove(self, v):
        self._update(lambda l: l.remove(v))

    def reverse(self):
        self._update(lambda l: l.reverse())

    def sort(self, **kw):
        self._update(lambda l: l.sort(**kw))

    def __iadd__(self, vs):
        self.extend(vs)
        return self

    def __iter__(self):
        return iter(self._get())

    def _getvalue(self):
        return self._get()

    def __eq__(self, other):
        return self._get() == (other._get() if isinstance(other, ListProxy)
                               else other)

    def __repr__(self):
        return repr(self._get())


class ValueProxy(_Named):
    """Manager().Value and Value: one key of the store; get_lock() gives
    an RLock for read-modify-write sequences."""

    def __init__(self, typecode, value, lock=True):
        self._name = _core.unique_name("v")
        self._typecode = typecode
        self._lock = None if lock is False else _make_lock(lock)
        self.set(value)

    def _state(self):
        return (self._name, self._typecode, self._lock)

    def _restore(self, st):
        self._name, self._typecode, self._lock = st

    def get(self):
        return loads(*_h().kv_get(self._name))

    def set(self, v):
        _h().kv_set(self._name, *dumps(v))

    value = property(get, set)

    def get_lock(self):
        if self._lock is None:
            self._lock = RLock()
        return self._lock

    def get_obj(self):
        return self

    def __repr__(self):
        return "%s(%r, %r)" % (type(self).__name__, self._typecode,
                               self.get())


def _make_lock(lock):
    """The lock of a synchronized Value or Array, as the standard module
    chooses it: a new RLock for True or None, else the object given."""
    if lock is True or lock is None:
        return RLock()
    if not hasattr(lock, "acquire"):
        raise AttributeError("%r has no method 'acquire'" % (lock,))
    return lock


def _ctype_of(typecode_or_type):
    types = _mpshared.typecode_to_type
    return types.get(typecode_or_type, typecode_or_type)


def Value(typecode_or_type, *args, lock=True, ctx=None):
    """A shared value (in jobq's store) with get_lock(); with no value,
    the type's zero, as the standard module's."""
    if args:
        v = args[0]
    else:
        try:
            v = _ctype_of(typecode_or_type)().value
        except Exception:
            v = 0
    return ValueProxy(typecode_or_type, v,
                      False if lock is False else _make_lock(lock))


def RawValue(typecode_or_type, *args):
    """Value without a lock."""
    return Value(typecode_or_type, *args, lock=False)


class RawArrayProxy(_Named):
    """RawArray, and Array's contents: a ctypes array of fixed length kept
    in one key of jobq's store as its bytes (T_BYTES, so a C program reads
    it as the C array). A read is one read of the store, a slice or
    iteration a copy of the whole array at one moment; each change is a
    compare-and-swap of the whole array, so changes of different elements
    by many processes at once are never lost. A read-modify-write of an
    element (a[i] += 1) takes get_lock(), as with the standard Array."""

    def __init__(self, typecode_or_type, size_or_initializer):
        ctype = _ctype_of(typecode_or_type)
        if isinstance(size_or_initializer, int):
            arr = (ctype * size_or_initializer)()
        else:
            arr = (ctype * len(size_or_initializer))(*size_or_initializer)
        self._name = _core.unique_name("a")
        self._ctype = ctype
        self._len = len(arr)
        _h().kv_set(self._name, _core.T_BYTES, bytes(arr))

    def _state(self):
        return (self._name, self._ctype, self._len)

    def _restore(self, st):
        self._name, self._ctype, self._len = st

    def _get(self):
        r = _h().kv_get(self._name)
        return (self._ctype * self._len).from_buffer_copy(r[1])

    def _update(self, fn):
        h = _h()
        while True:
            r = h.kv_get(self._name)
            a = (self._ctype * self._len).from_buffer_copy(r[1])
            res = fn(a)
            if h.kv_cas(self._name, r[1], _core.T_BYTES, bytes(a)):
                return res

    def __len__(self):
        return self._len

    def __getitem__(self, i):
        return self._get()[i]

    def __setitem__(self, i, v):
        self._update(lambda a: a.__setitem__(i, v))

    def __iter__(self):
        return iter(self._get()[:])

    @property
    def value(self):
        """A char array's contents up to its first NUL."""
        return self._get().value

    @value.setter
    def value(self, v):
        self._update(lambda a: setattr(a, "value", v))

    @property
    def raw(self):
        """A c_char array's bytes, all of them."""
        return self._get().raw

    @raw.setter
    def raw(self, v):
        self._update(lambda a: setattr(a, "raw", v))

    def __repr__(self):
        return "<%s(%s, %r)>" % (type(self).__name__, self._ctype.__name__,
                                 self._get()[:])


class ArrayProxy(RawArrayProxy):
    """Array: RawArrayProxy with the lock that get_lock() returns (also
    taken by the object as a context manager, as the standard one)."""

    def __init__(self, typecode_or_type, size_or_initializer, lock=True):
        self._lock = _make_lock(lock)
        super().__init__(typecode_or_type, size_or_initializer)

    def _state(self):
        return (super()._state(), self._lock)

    def _restore(self, st):
        super()._restore(st[0])
        self._lock = st[1]

    def get_lock(self):
        return self._lock

    def get_obj(self):
        return self

    def acquire(self, *args, **kw):
        return self._lock.acquire(*args, **kw)

    def release(self):
        return self._lock.release()

    def __enter__(self):
        return self._lock.__enter__()

    def __exit__(self, *exc):
        return self._lock.__exit__(*exc)


def Array(typecode_or_type, size_or_initializer, *, lock=True, ctx=None):
    """A shared array (in jobq's store) of a ctypes type or an array
    typecode, of a length or made of an initializer; with get_lock()
    unless @lock is False."""
    if lock is False:
        return RawArrayProxy(typecode_or_type, size_or_initializer)
    return ArrayProxy(typecode_or_type, size_or_initializer, lock)


def RawArray(typecode_or_type, size_or_initializer):
    """Array without a lock."""
    return RawArrayProxy(typecode_or_type, size_or_initializer)


class NamespaceProxy:
    """Manager().Namespace(): each public attribute is a key of the
    store."""

    def __init__(self, **kw):
        object.__setattr__(self, "_name", _core.unique_name("n") + "/")
        for k, v in kw.items():
            setattr(self, k, v)

    def __getstate__(self):
        return self._name

    def __setstate__(self, st):
        object.__setattr__(self, "_name", st)

    def __getattr__(self, k):
        if k.startswith("_"):
            raise AttributeError(k)
        r = _h().kv_get(self._name + k)
        if r is None:
            raise AttributeError(k)
        return loads(*r)

    def __setattr__(self, k, v):
        if k.startswith("_"):
            return object.__setattr__(self, k, v)
        _h().kv_set(self._name + k, *dumps(v))

    def __delattr__(self, k):
        if not _h().kv_del(self._name + k):
            raise AttributeError(k)

    def __repr__(self):
        items = ["%s=%r" % (k, loads(t, b))
                 for k, t, b in sorted(_h().kv_list(self._name))]
        return "Namespace(%s)" % ", ".join(items)


class SyncManager:
    """Manager(): jobqd is the server process, so there is nothing to
    start; its objects live in jobqd's store and locks."""

    def __init__(self, *args, **kw):
        _h()

    def start(self, initializer=None, initargs=()):
        if initializer is not None:
            initializer(*initargs)

    def connect(self):
        pass

    def shutdown(self):
        pass

    def join(self, timeout=None):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.shutdown()

    def dict(self, *args, **kw):
        return DictProxy(*args, **kw)

    def list(self, seq=()):
        return ListProxy(seq)

    def Value(self, typecode, value, lock=True):
        return ValueProxy(typecode, value, lock)

    def Namespace(self, **kw):
        return NamespaceProxy(**kw)

    Lock = staticmethod(Lock)
    RLock = staticmethod(RLock)
    Semaphore = staticmethod(Semaphore)
    BoundedSemaphore = staticmethod(BoundedSemaphore)
    Event = staticmethod(Event)
    Condition = staticmethod(Condition)
    Queue = staticmethod(Queue)
    JoinableQueue = staticmethod(JoinableQueue)

    def Pool(self, *args, **kw):
        return Pool(*args, **kw)


def Manager(*args, **kw):
    return SyncManager()


# ------------------------------------------------------------------------
# Pool


class AsyncResult:
    """The result of apply_async and map_async: one job, or the chunks of
    a map. Callbacks run in this process, in the pump thread."""

    def __init__(self, pool, jids, callback, error_callback, chunked):
        self._pool = pool
        self._jids = jids
        self._cb = callback
        self._ecb = error_callback
        self._chunked = chunked
        self._event = threading.Event()
        self._value = None
        self._exc = None
        self._left = len(jids)
        self._parts = [None] * len(jids)
        self._lock = threading.Lock()
        if not jids:
            self._finish()
        pump = pool._w.conn.pump()
        for i, jid in enumerate(jids):
            pump.watch(jid, lambda res, i=i, jid=jid: self._one(i, jid, res))

    def _one(self, i, jid, res):
        try:
            self._parts[i] = self._pool._w.conn.result(jid, res)
        except BaseException as e:
            with self._lock:
                if self._exc is None:
                    self._exc = e
        self._pool._done(jid)
        with self._lock:
            self._left -= 1
            last = self._left == 0
        if last:
            self._finish()

    def _finish(self):
        if self._exc is None:
            if self._chunked:
                self._value = list(itertools.chain.from_iterable(
                    self._parts))
            else:
                self._value = self._parts[0]
        try:
            if self._exc is None and self._cb is not None:
                self._cb(self._value)
            elif self._exc is not None and self._ecb is not None:
                self._ecb(self._exc)
        finally:
            self._event.set()

    def ready(self):
        return self._event.is_set()

    def successful(self):
        if not self.ready():
            raise ValueError("%r not ready" % self)
        return self._exc is None

    def wait(self, timeout=None):
        self._event.wait(timeout)

    def get(self, timeout=None):
        if not self._event.wait(timeout):
            raise TimeoutError
        if self._exc is not None:
            raise self._exc
        return self._value


ApplyResult = MapResult = AsyncResult


class Pool:
    """multiprocessing.Pool over jobq: calls are jobs of a private type,
    served by @processes workers (jobq._pool), forked or spawned as
    @context (else the default start method) says. A worker killed in a
    call loses nothing: jobqd runs the call again on another one. With
    @maxtasksperchild, a worker exits after that many calls or map chunks
    and the pool starts another in its place."""

    def __init__(self, processes=None, initializer=None, initargs=(),
                 maxtasksperchild=None, context=None):
        if maxtasksperchild is not None and (
                type(maxtasksperchild) is not int or maxtasksperchild <= 0):
            raise ValueError("maxtasksperchild must be a positive int or "
                             "None")
        method = (context or get_context()).get_start_method()
        self._w = _pool.Workers(processes, initializer, initargs,
                                maxtasksperchild, method)
        self._processes = self._w.n
        self._state = "RUN"
        self._jobs = set()
        self._jobs_lock = threading.Lock()

    def _check(self):
        if self._state != "RUN":
            raise ValueError("Pool not running")

    def _track(self, jids):
        with self._jobs_lock:
            self._jobs.update(jids)
        return jids

    def _done(self, jid):
        with self._jobs_lock:
            self._jobs.discard(jid)

    def apply(self, func, args=(), kwds={}):
        self._check()
        return self._w.apply(func, tuple(args), dict(kwds))

    def apply_async(self, func, args=(), kwds={}, callback=None,
                    error_callback=None):
        self._check()
        jid = self._w.submit(_pool.CALL, func, (tuple(args), dict(kwds)))
        return AsyncResult(self, self._track([jid]), callback,
                           error_callback, False)

    def _chunks(self, iterable, chunksize, n_hint=None):
        items = list(iterable)
        if chunksize is None:
            chunksize, extra = divmod(len(items), self._processes * 4)
            if extra:
                chunksize += 1
        chunksize = max(int(chunksize), 1)
        return [items[i:i + chunksize]
                for i in range(0, len(items), chunksize)]

    def map_async(self, func, iterable, chunksize=None, callback=None,
                  error_callback=None, _kind=_pool.MAP):
        self._check()
        chunks = self._chunks(iterable, chunksize)
        jids = self._w.submit_many(_kind, func, chunks) if chunks else []
        return AsyncResult(self, self._track(jids), callback,
                           error_callback, True)

    def map(self, func, iterable, chunksize=None):
        return self.map_async(func, iterable, chunksize).get()

    def starmap_async(self, func, iterable, chunksize=None, callback=None,
                      error_callback=None):
        return self.map_async(func, iterable, chunksize, callback,
                              error_callback, _kind=_pool.STARMAP)

    def starmap(self, func, iterable, chunksize=None):
        return self.starmap_async(func, iterable, chunksize).get()

    def imap(self, func, iterable, chunksize=1):
        self._check()
        chunks = self._chunks(iterable, chunksize)
        jids = self._w.submit_many(_pool.MAP, func, chunks) if chunks else []
        return _IMap(self, jids)

    def imap_unordered(self, func, iterable, chunksize=1):
        self._check()
        chunks = self._chunks(iterable, chunksize)
        jids = self._w.submit_many(_pool.MAP, func, chunks) if chunks else []
        return _IMapUnordered(self, jids)

    def close(self):
        if self._state == "RUN":
            self._state = "CLOSE"
            self._w.close()

    def terminate(self):
        self._state = "TERMINATE"
        with self._jobs_lock:
            jobs = list(self._jobs)
        for jid in jobs:
            self._w.h.cancel(jid)
        self._w.kill()

    def join(self):
        if self._state == "RUN":
            raise ValueError("Pool is still running")
        if self._state == "CLOSE":
            with self._jobs_lock:
                jobs = list(self._jobs)
            for jid in jobs:
                self._w.h.job_wait(jid, -1)
            self._w.stop()
        else:
            self._w.kill()

    def __enter__(self):
        self._check()
        return self

    def __exit__(self, *exc):
        self.terminate()

    def __repr__(self):
        return "<jobq.multiprocessing.Pool state=%s pool_size=%d>" % (
            self._state, self._processes)


class _IMap:
    """imap's iterator: waits for each chunk in order, in the caller."""

    def __init__(self, pool, jids):
        self._pool = pool
        self._jids = list(jids)
        self._pool._track(self._jids)
        self._buf = []
        self._i = 0

    def __iter__(self):
        return self

    def next(self, timeout=None):
        while not self._buf:
            if self._i >= len(self._jids):
                raise StopIteration
            jid = self._jids[self._i]
            try:
                self._buf = list(_pool.wait_result(
                    self._pool._w.h, self._pool._w.conn, jid,
                    -1.0 if timeout is None else timeout))
            except TimeoutError:
                raise TimeoutError from None
            finally:
                pass
            self._pool._done(jid)
            self._i += 1
        return self._buf.pop(0)

    __next__ = next


class _IMapUnordered(_IMap):
    """imap_unordered's iterator: chunks as they finish (the pump thread
    hands them over)."""

    def __init__(self, pool, jids):
        super().__init__(pool, jids)
        self._news = _stdqueue.SimpleQueue()
        pump = pool._w.conn.pump()
        for jid in self._jids:
            pump.watch(jid, lambda res, jid=jid: self._news.put((jid, res)))

    def next(self, timeout=None):
        while not self._buf:
            if self._i >= len(self._jids):
                raise StopIteration
            try:
                jid, res = self._news.get(timeout=timeout)
            except _stdqueue.Empty:
                raise TimeoutError from None
            self._i += 1
            self._pool._done(jid)
            self._buf = list(self._pool._w.conn.result(jid, res))
        return self._buf.pop(0)

    __next__ = next


# ------------------------------------------------------------------------
# Contexts


class _Context:
    """What get_context(method) returns: this module's names, with
    Process and Pool starting processes by @method; names this module
    does not have (Pipe, get_logger, ...) are the standard module's."""

    def __init__(self, method):
        self._method = method
        self.Process = SpawnProcess if method == "spawn" else ForkProcess

    def get_start_method(self, allow_none=False):
        return self._method

    def set_start_method(self, method, force=False):
        raise ValueError("cannot set start method of concrete context")

    def get_context(self, method=None):
        return self if method is None else get_context(method)

    def Pool(self, processes=None, initializer=None, initargs=(),
             maxtasksperchild=None):
        return Pool(processes, initializer, initargs, maxtasksperchild,
                    context=self)

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        g = globals()
        return g[name] if name in g else getattr(_mp, name)

    def __repr__(self):
        return "<jobq.multiprocessing context %r>" % self._method


_contexts = {m: _Context(m) for m in _METHODS}
