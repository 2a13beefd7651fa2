"""jobq.futures.ProcessPoolExecutor against concurrent.futures."""

import concurrent.futures as cf
import os
import signal
import threading
import time

import pytest

import jobq.multiprocessing as mp
from jobq.futures import ProcessPoolExecutor


def sq(x):
    return x * x


def add(a, b=0):
    return a + b


def boom(x):
    raise KeyError(x)


def test_submit_result_exception_callbacks():
    where = []
    done = threading.Event()
    with ProcessPoolExecutor(2) as ex:
        f = ex.submit(add, 2, b=3)
        assert isinstance(f, cf.Future)
        # Added before or after the future is done (then it runs at once,
        # in this thread, as the standard Future does), it runs here.
        f.add_done_callback(lambda f: (where.append(
            (f.result(), os.getpid())), done.set()))
        assert f.result(timeout=10) == 5
        assert done.wait(10)
        e = ex.submit(boom, "k")
        with pytest.raises(KeyError) as ei:
            e.result(10)
        assert "boom" in str(ei.value.__cause__)
        assert isinstance(e.exception(10), KeyError)
    assert where == [(5, os.getpid())]


def test_as_completed_and_wait():
    with ProcessPoolExecutor(2) as ex:
        fs = [ex.submit(sq, i) for i in range(10)]
        assert sorted(f.result() for f in cf.as_completed(fs, timeout=30)) \
            == [i * i for i in range(10)]
        fs = [ex.submit(time.sleep, 0.05), ex.submit(time.sleep, 1)]
        done, pending = cf.wait(fs, timeout=10,
                                return_when=cf.FIRST_COMPLETED)
        assert fs[0] in done
        t = time.monotonic()
        with pytest.raises(cf.TimeoutError):
            fs[1].result(timeout=0.1)
        assert time.monotonic() - t < 5
        ex.shutdown(wait=False, cancel_futures=True)


def test_map_chunksize_and_timeout():
    with ProcessPoolExecutor(2) as ex:
        assert list(ex.map(sq, range(50), chunksize=7)) == \
            [i * i for i in range(50)]
        assert list(ex.map(add, [1, 2], [10, 20])) == [11, 22]
        it = ex.map(time.sleep, [2, 2], timeout=0.2)
        with pytest.raises(cf.TimeoutError):
            list(it)
        with pytest.raises(KeyError):
            list(ex.map(boom, [1]))


def _report_pid_then_sleep(q, secs):
    q.put(os.getpid())
    time.sleep(secs)
    return "survived"


def test_shutdown_cancel_futures():
    q = mp.Queue()
    ex = ProcessPoolExecutor(1)
    first = ex.submit(_report_pid_then_sleep, q, 0.5)
    q.get(timeout=30)  # taken by the only worker, and running
    rest = [ex.submit(sq, i) for i in range(5)]
    ex.shutdown(wait=True, cancel_futures=True)
    assert first.result() == "survived"
    assert all(f.cancelled() for f in rest)
    with pytest.raises(RuntimeError):
        ex.submit(sq, 1)


def test_cancel_pending_future():
    q = mp.Queue()
    with ProcessPoolExecutor(1) as ex:
        a = ex.submit(_report_pid_then_sleep, q, 0.5)
        q.get(timeout=30)  # running in the only worker
        b = ex.submit(sq, 2)
        assert b.cancel() and b.cancelled()
        assert not a.cancel()
        done, _ = cf.wait([a, b], timeout=10)
        assert done == {a, b}


def test_worker_killed_mid_job_future_still_completes():
    q = mp.Queue()
    with ProcessPoolExecutor(1) as ex:
        f = ex.submit(_report_pid_then_sleep, q, 0.5)
        pid = q.get(timeout=20)
        os.kill(pid, signal.SIGKILL)
        assert f.result(timeout=30) == "survived"


def _pid(x):
    return os.getpid()


def test_max_tasks_per_child_replaces_workers():
    with ProcessPoolExecutor(2, max_tasks_per_child=1) as ex:
        pids = list(ex.map(_pid, range(6)))
    assert len(set(pids)) == 6 and os.getpid() not in pids
    with pytest.raises(ValueError):
        ProcessPoolExecutor(1, max_tasks_per_child=0)
    with pytest.raises(TypeError):
        ProcessPoolExecutor(1, max_tasks_per_child="2")
