"""jobq.multiprocessing against the standard module's documented
behaviour."""

import ctypes
import os
import pickle
import queue
import signal
import subprocess
import sys
import threading
import time

import pytest

import jobq
import jobq.multiprocessing as mp


def _sleep_then(q, secs, v):
    time.sleep(secs)
    q.put(v)


def _exit_with(code):
    os._exit(code) if code else None


def test_process_start_join_exitcode():
    q = mp.Queue()
    p = mp.Process(target=_sleep_then, args=(q, 0.1, "hi"))
    assert p.exitcode is None and not p.is_alive()
    p.start()
    assert p.is_alive() and p.pid
    p.join(10)
    assert not p.is_alive() and p.exitcode == 0
    assert q.get(timeout=5) == "hi"
    p = mp.Process(target=_exit_with, args=(3,))
    p.start()
    p.join(10)
    assert p.exitcode == 3


def test_process_terminate_and_join_timeout():
    p = mp.Process(target=time.sleep, args=(30,), daemon=True)
    p.start()
    t = time.monotonic()
    p.join(0.2)
    assert p.is_alive() and time.monotonic() - t >= 0.15
    p.terminate()
    p.join(10)
    assert p.exitcode == -signal.SIGTERM
    assert p not in mp.active_children()


def test_cpu_count_current_process():
    assert mp.cpu_count() == os.cpu_count()
    assert mp.current_process().name == "MainProcess"


def _hold(lock, started, secs):
    with lock:
        started.set()
        time.sleep(secs)


def test_lock_between_processes_and_timeout():
    lock = mp.Lock()
    ev = mp.Event()
    p = mp.Process(target=_hold, args=(lock, ev, 0.6))
    p.start()
    assert ev.wait(10)
    t = time.monotonic()
    assert not lock.acquire(timeout=0.2)
    assert 0.15 <= time.monotonic() - t < 5
    assert not lock.acquire(False)
    assert lock.acquire(timeout=10)
    lock.release()
    p.join(10)


def test_lock_of_a_dead_holder_is_released():
    lock = mp.Lock()
    ev = mp.Event()
    p = mp.Process(target=_hold, args=(lock, ev, 30))
    p.start()
    assert ev.wait(10)
    p.kill()
    p.join(10)
    assert lock.acquire(timeout=10)
    lock.release()


def test_rlock_reentrant():
    r = mp.RLock()
    assert r.acquire() and r.acquire(timeout=1)
    r.release()
    r.release()
    with pytest.raises(ValueError):
        r.release()


def test_semaphores():
    s = mp.Semaphore(2)
    assert s.acquire() and s.acquire(timeout=0.1)
    t = time.monotonic()
    assert not s.acquire(timeout=0.2)
    assert time.monotonic() - t >= 0.15
    s.release()
    assert s.get_value() == 1
    b = mp.BoundedSemaphore(1)
    with pytest.raises(ValueError):
        b.release()
    with b:
        assert not b.acquire(False)


def _set_later(ev, secs):
    time.sleep(secs)
    ev.set()


def test_event():
    ev = mp.Event()
    assert not ev.is_set()
    assert not ev.wait(0.1)
    p = mp.Process(target=_set_later, args=(ev, 0.2))
    p.start()
    assert ev.wait(10) and ev.is_set()
    p.join(10)
    ev.clear()
    assert not ev.is_set()


def _notify_after(cond, box, secs):
    time.sleep(secs)
    with cond:
        box.append(1)
        cond.notify_all()


def test_condition():
    cond = mp.Condition()
    box = mp.Manager().list()
    with cond:
        assert not cond.wait(0.1)
    p = mp.Process(target=_notify_after, args=(cond, box, 0.2))
    p.start()
    with cond:
        assert cond.wait_for(lambda: len(box) == 1, timeout=10)
    p.join(10)
    with pytest.raises(RuntimeError):
        cond.wait(0)


def _producer(q, n):
    for i in range(n):
        q.put(("item", i))
    q.put(None)


def test_queue_between_processes():
    q = mp.Queue()
    p = mp.Process(target=_producer, args=(q, 200))
    p.start()
    got = []
    while True:
        v = q.get(timeout=10)
        if v is None:
            break
        got.append(v)
    p.join(10)
    assert got == [("item", i) for i in range(200)]
    assert q.empty() and q.qsize() == 0


def _put_join_thread_signal(q, n, w, r2):
    for i in range(n):
        q.put(i)
    q.join_thread()
    os.write(w, b"x")
    os.read(r2, 1)  # stay alive: the exit's own flush must not count


def test_queue_join_thread_waits_for_the_puts():
    # Told through a pipe, which jobqd does not see: the puts were applied
    # when join_thread() returned, not only when the process ended.
    q = mp.Queue()
    r, w = os.pipe()
    r2, w2 = os.pipe()
    p = mp.Process(target=_put_join_thread_signal, args=(q, 500, w, r2))
    p.start()
    try:
        assert os.read(r, 1) == b"x"
        assert q.qsize() == 500
    finally:
        os.write(w2, b"x")
        p.join(10)
    assert [q.get(timeout=5) for _ in range(500)] == list(range(500))
    for fd in (r, w, r2, w2):
        os.close(fd)


def test_scalars_keep_their_types():
    with mp.Manager() as m:
        d = m.dict()
        for v in (0, -5, 2**63 - 1, -2**63, 2**63, True, False, 1.5,
                  -0.0, 1e16, float("inf"), None, "7", b"7"):
            d["v"] = v
            got = d["v"]
            assert got == v and type(got) is type(v), (v, got)


def test_queue_full_empty_timeouts():
    q = mp.Queue(2)
    q.put(1)
    q.put_nowait(2)
    assert q.full() and q.qsize() == 2
    with pytest.raises(queue.Full):
        q.put(3, timeout=0.1)
    with pytest.raises(queue.Full):
        q.put_nowait(3)
    assert q.get() == 1 and q.get_nowait() == 2
    with pytest.raises(queue.Empty):
        q.get(timeout=0.1)
    with pytest.raises(queue.Empty):
        q.get(False)


def _consume(q):
    while True:
        v = q.get()
        q.task_done()
        if v is None:
            return


def test_joinable_and_simple_queue():
    q = mp.JoinableQueue()
    for i in range(20):
        q.put(i)
    q.put(None)
    p = mp.Process(target=_consume, args=(q,))
    p.start()
    q.join()
    p.join(10)
    with pytest.raises(ValueError):
        q.task_done()
    s = mp.SimpleQueue()
    assert s.empty()
    s.put([1, "x"])
    assert not s.empty() and s.get() == [1, "x"]


def _bump(d, l, v, ns, n):
    for _ in range(n):
        l.append(1)
    with v.get_lock():
        v.value += 1
    d[os.getpid()] = "seen"
    ns.count = 5


def test_manager_objects():
    with mp.Manager() as m:
        d, l = m.dict(a=1), m.list([0])
        v, ns = m.Value("i", 0), m.Namespace(x=1)
        ps = [mp.Process(target=_bump, args=(d, l, v, ns, 25))
              for _ in range(4)]
        for p in ps:
            p.start()
        for p in ps:
            p.join(30)
        assert len(l) == 101 and v.value == 4
        assert d["a"] == 1 and len(d) == 5
        assert sorted(k for k in d if k != "a") == sorted(p.pid for p in ps)
        assert ns.x == 1 and ns.count == 5
        d[(1, 2)] = {"t": 1}
        assert d[(1, 2)] == {"t": 1} and (1, 2) in d
        del d[(1, 2)]
        assert d.get((1, 2)) is None
        with pytest.raises(KeyError):
            d["nope"]
        l[0] = 9
        assert l[0] == 9 and l.pop() == 1 and len(l) == 100
        with pytest.raises(AttributeError):
            ns.nope


def sq(x):
    return x * x


def slow_sq(x):
    time.sleep(0.05)
    return x * x


def boom(x):
    raise ValueError("bad %s" % x)


def test_pool_methods():
    with mp.Pool(2) as p:
        assert p.apply(sq, (7,)) == 49
        assert p.map(sq, range(20)) == [x * x for x in range(20)]
        assert p.map(sq, range(20), chunksize=3) == [x * x for x in range(20)]
        assert p.map_async(sq, range(5)).get(10) == [0, 1, 4, 9, 16]
        assert list(p.imap(sq, range(7), chunksize=2)) == \
            [x * x for x in range(7)]
        assert sorted(p.imap_unordered(sq, range(7))) == \
            [x * x for x in range(7)]
        assert p.starmap(pow, [(2, 3), (3, 2)]) == [8, 9]
        assert p.starmap_async(pow, [(2, 2)]).get(10) == [4]
        assert p.map(sq, []) == []


def test_pool_callbacks_run_in_the_caller():
    where, errs = [], []
    done = threading.Event()
    with mp.Pool(2) as p:
        r = p.apply_async(sq, (3,), callback=lambda v: where.append(
            (v, os.getpid())))
        e = p.apply_async(boom, (1,), error_callback=lambda ex: (
            errs.append((type(ex), os.getpid())), done.set()))
        assert r.get(10) == 9
        assert done.wait(10)
        with pytest.raises(ValueError):
            e.get(10)
        assert r.ready() and r.successful() and not e.successful()
        m = p.map_async(sq, range(4), callback=lambda v: where.append(
            (v, os.getpid())))
        m.wait(10)
    assert where == [(9, os.getpid()), ([0, 1, 4, 9], os.getpid())]
    assert errs == [(ValueError, os.getpid())]


def test_pool_exception_has_remote_traceback():
    with mp.Pool(1) as p:
        with pytest.raises(ValueError) as ei:
            p.apply(boom, (5,))
        assert str(ei.value) == "bad 5"
        assert isinstance(ei.value.__cause__, mp.RemoteTraceback)
        assert "boom" in str(ei.value.__cause__)
        with pytest.raises(ValueError):
            p.map(boom, [1, 2])


def test_pool_timeout_close_join_terminate():
    p = mp.Pool(1)
    r = p.apply_async(time.sleep, (0.5,))
    with pytest.raises(mp.TimeoutError):
        r.get(0.05)
    with pytest.raises(ValueError):
        p.join()  # still running
    p.close()
    with pytest.raises(ValueError):
        p.apply(sq, (1,))
    p.join()
    assert r.ready()
    p = mp.Pool(2)
    pids = p._w.pids()
    p.apply_async(time.sleep, (30,))
    t = time.monotonic()
    p.terminate()
    p.join()
    assert time.monotonic() - t < 10
    assert not any(os.path.exists("/proc/%d" % pid) for pid in pids)


def _report_pid_then_sleep(q, secs):
    q.put(os.getpid())
    time.sleep(secs)
    return "survived"


def test_pool_worker_killed_mid_job_is_retried():
    q = mp.Queue()
    with mp.Pool(1) as p:
        r = p.apply_async(_report_pid_then_sleep, (q, 0.5))
        pid = q.get(timeout=20)
        os.kill(pid, signal.SIGKILL)
        assert r.get(30) == "survived"
        again = q.get(timeout=5)
        assert again != pid
        info = p._w.h.job_info(r._jids[0])
        assert info[1] == 2  # attempts


def _pid_of(x):
    return (x, os.getpid())


def test_pool_maxtasksperchild_replaces_workers():
    # Each worker serves at most two calls (a chunk of one item is one
    # call), then exits; the pool starts others and no call is lost.
    with mp.Pool(2, maxtasksperchild=2) as pool:
        got = pool.map(_pid_of, range(12), chunksize=1)
        assert [x for x, _ in got] == list(range(12))
        per_pid = {}
        for _, pid in got:
            per_pid[pid] = per_pid.get(pid, 0) + 1
        assert max(per_pid.values()) <= 2
        assert len(per_pid) >= 6
        assert os.getpid() not in per_pid
        pids = {pool.apply(os.getpid) for _ in range(6)}
        assert len(pids) >= 3
    for bad in (0, -1, 1.5):
        with pytest.raises(ValueError):
            mp.Pool(1, maxtasksperchild=bad)


def _add_under_lock(arr, rounds):
    for _ in range(rounds):
        with arr.get_lock():
            for i in range(len(arr)):
                arr[i] += 1


def test_array_indexing_slicing_and_kinds():
    a = mp.Array("i", 4)
    assert len(a) == 4 and a[:] == [0, 0, 0, 0] and list(a) == a[:]
    a[1] = 7
    a[2:4] = [8, 9]
    assert a[1] == 7 and a[-1] == 9 and a[1:3] == [7, 8]
    assert list(a) == [0, 7, 8, 9] and a[::2] == [0, 8]
    with pytest.raises(IndexError):
        a[4]
    with pytest.raises(ValueError):
        a[0:2] = [1, 2, 3]  # an array keeps its length
    d = mp.Array(ctypes.c_double, [1.5, 2.5])
    assert d[:] == [1.5, 2.5] and d.get_obj()[0] == 1.5
    c = mp.Array("c", b"hi\0\0")
    assert c.value == b"hi" and c.raw == b"hi\0\0"
    c.value = b"hey"
    assert c[:] == b"hey\0"
    r = mp.Array("i", [1, 2], lock=False)
    assert not hasattr(r, "get_lock") and r[:] == [1, 2]
    raw = mp.RawArray("b", 3)
    raw[0] = -1
    assert raw[:] == [-1, 0, 0]
    assert mp.Value("d").value == 0.0 and mp.RawValue("i", 5).value == 5
    lock = mp.Lock()
    assert mp.Array("i", 1, lock=lock).get_lock() is lock
    with pytest.raises(AttributeError):
        mp.Array("i", 1, lock="no lock")


def test_array_shared_between_processes_under_its_lock():
    a = mp.Array("i", 3)
    procs = [mp.Process(target=_add_under_lock, args=(a, 25))
             for _ in range(3)]
    # One more that did not fork from this process: a fresh interpreter.
    procs.append(mp.get_context("spawn").Process(target=_add_under_lock,
                                                 args=(a, 25)))
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert a[:] == [100, 100, 100]


def test_array_in_an_unrelated_program(tmp_path):
    # Only the pickled array travels; the other program finds it in the
    # same jobqd through $JOBQ_DIR.
    a = mp.Array("i", [1, 2, 3])
    src = ("import pickle, sys\n"
           "import jobq.multiprocessing\n"
           "a = pickle.loads(bytes.fromhex(sys.argv[1]))\n"
           "with a.get_lock():\n"
           "    a[0:3] = [x * 10 for x in a]\n")
    r = subprocess.run([sys.executable, "-c", src,
                        pickle.dumps(a).hex()], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert a[:] == [10, 20, 30]
