"""The direct API: values on the wire, queues, the store, locks, jobs,
@jobq.task workers and the GIL."""

import os
import queue
import signal
import subprocess
import sys
import threading
import time

import pytest

import jobq
from jobq import _jobq


@pytest.fixture
def c():
    conn = jobq.connect()
    yield conn
    conn.close()


def test_values_travel_as_jobq_types(c):
    cases = [(None, jobq.T_NONE), (b"ab", jobq.T_BYTES), ("h\u00e9", jobq.T_TEXT),
             ({"a": [1, 2.5, True, None]}, jobq.T_JSON), (7, jobq.T_JSON),
             ((1, 2), jobq.T_PICKLE), ({1: "x"}, jobq.T_PICKLE),
             (2 ** 70, jobq.T_PICKLE), (float("nan"), jobq.T_PICKLE),
             ({"a": (1,)}, jobq.T_PICKLE), (bytearray(b"z"), jobq.T_BYTES)]
    for v, t in cases:
        assert jobq.dumps(v)[0] == t, v
        c.put("vals", v)
        got = c.get("vals", timeout=5)
        if isinstance(v, float):
            assert got != got
        elif isinstance(v, bytearray):
            assert got == bytes(v)
        else:
            assert got == v and type(got) is type(v)


def test_json_is_readable_by_the_cli(c):
    cli = os.environ.get("JOBQ_CLI")
    if not cli:
        pytest.skip("JOBQ_CLI not set")
    c.put("forcli", {"to": "a@b.c"})
    out = subprocess.run([cli, "get", "forcli"], capture_output=True,
                         text=True, timeout=10, check=True).stdout
    assert '"to"' in out and "a@b.c" in out
    subprocess.run([cli, "put", "fromcli", '{"x": 1}'], check=True,
                   timeout=10)
    assert c.get("fromcli", timeout=5) == b'{"x": 1}'  # the CLI puts bytes


def test_queue_timeouts(c):
    t = time.monotonic()
    with pytest.raises(queue.Empty):
        c.get("empty", timeout=0.3)
    assert 0.25 <= time.monotonic() - t < 5
    c._h.queue_open("bounded", 1)
    c.put("bounded", 1)
    t = time.monotonic()
    with pytest.raises(queue.Full):
        c.put("bounded", 2, timeout=0.3)
    assert 0.25 <= time.monotonic() - t < 5
    assert c.get("bounded", timeout=1) == 1


def test_put_many_get_many(c):
    assert c.put_many("many", list(range(100))) == 100
    got = []
    while len(got) < 100:
        got += c.get_many("many", 30, timeout=5)
    assert got == list(range(100))
    assert c.get_many("many", 5, timeout=0.05) == []


def test_store_mapping(c):
    kv = c.kv
    kv["py.k1"] = {"a": 1}
    kv["py.k2"] = (1, 2)
    assert kv["py.k1"] == {"a": 1} and kv["py.k2"] == (1, 2)
    assert "py.k1" in kv and "py.nope" not in kv
    assert sorted(kv.keys("py.k")) == ["py.k1", "py.k2"]
    del kv["py.k2"]
    with pytest.raises(KeyError):
        kv["py.k2"]
    with pytest.raises(KeyError):
        del kv["py.k2"]
    assert kv.incr("py.n") == 1 and kv.incr("py.n", 41) == 42
    assert kv.cas("py.c", None, "first", missing=True)
    assert not kv.cas("py.c", None, "again", missing=True)
    assert kv.cas("py.c", "first", "second")
    assert not kv.cas("py.c", "first", "third")
    assert kv["py.c"] == "second"


def test_named_lock_context_manager(c):
    with c.lock("py.L") as l:
        info = c._h.lock_info("py.L")
        assert info[4] == os.getpid()
        assert not jobq.connect().lock("py.L").acquire(timeout=0.1)
    assert c._h.lock_info("py.L")[4] == 0
    assert l.acquire(timeout=1)
    with pytest.raises(jobq.DeadlockError):
        l.acquire()  # a plain lock again by its holder
    l.release()


def test_gil_released_while_blocked(c):
    ticks = []
    stop = threading.Event()

    def counter():
        while not stop.is_set():
            ticks.append(1)
            time.sleep(0.001)

    got = []
    getters = [threading.Thread(target=lambda: got.append(
        c.get("gil", timeout=10))) for _ in range(2)]
    t = threading.Thread(target=counter)
    t.start()
    for g in getters:
        g.start()
    time.sleep(0.3)
    n = len(ticks)
    c.put("gil", 1)
    c.put("gil", 2)
    for g in getters:
        g.join(10)
    stop.set()
    t.join()
    assert sorted(got) == [1, 2]
    assert n > 10  # the counter ran while both getters were blocked


TASKS = '''
import jobq

@jobq.task(name="py.test.add")
def add(a, b):
    return a + b

@jobq.task(name="py.test.fail")
def fail(msg):
    raise KeyError(msg)
'''


def test_task_worker_submit_and_exception(c, tmp_path):
    (tmp_path / "pytasks.py").write_text(TASKS)
    env = dict(os.environ)
    env["PYTHONPATH"] = str(tmp_path) + ":" + env.get("PYTHONPATH", "")
    w = subprocess.Popen([sys.executable, "-m", "jobq", "worker",
                          "pytasks"], env=env, cwd=str(tmp_path))
    try:
        f = c.submit("py.test.add", [[2, 3], {}])
        assert f.result(timeout=30) == 5
        f = c.submit("py.test.fail", "boom")
        with pytest.raises(KeyError) as ei:
            f.result(timeout=30)
        assert isinstance(ei.value.__cause__, jobq.RemoteTraceback)
        assert "raise KeyError" in str(ei.value.__cause__)
        done = threading.Event()
        where = []
        f = c.submit("py.test.add", [["a", "b"], {}])
        f.add_done_callback(lambda f: (where.append(os.getpid()),
                                       done.set()))
        assert done.wait(30) and where == [os.getpid()]
        assert f.result() == "ab"
    finally:
        w.send_signal(signal.SIGTERM)
        assert w.wait(30) == 0


def test_errors_are_oserrors(c):
    with pytest.raises(jobq.Error) as ei:
        c._h.kv_set("", 1, b"x")
    assert isinstance(ei.value, OSError)
    assert _jobq.strerror(_jobq.JOBQ_ENOMANAGER)
