"""Start methods: fork (the default) and spawn, for Process, Pool and
ProcessPoolExecutor, and contexts, against the standard module's
documented behaviour."""

import os

import pytest

import jobq.multiprocessing as mp
from jobq.futures import ProcessPoolExecutor

from conftest import run_script

# Changed by the tests in this process after import: a forked child sees
# the change, a spawned one (a fresh interpreter importing this module)
# the value written here.
MARK = "as imported"


def _report(q):
    q.put((os.getpid(), os.getppid(), MARK, os.environ.get("JOBQ_DIR"),
           mp.get_start_method(), mp.current_process().name))


def _square(x):
    return x * x


def _where(x):
    return (x * x, os.getpid(), MARK)


@pytest.fixture
def marked():
    global MARK
    MARK = "changed after import"
    yield
    MARK = "as imported"


def test_start_method_defaults_and_contexts():
    assert mp.get_start_method() == "fork"
    assert mp.get_all_start_methods() == ["fork", "spawn"]
    assert mp.get_context().get_start_method() == "fork"
    ctx = mp.get_context("spawn")
    assert ctx.get_start_method() == "spawn"
    assert ctx.Process is mp.SpawnProcess
    assert mp.get_context("fork").Process is mp.ForkProcess
    assert ctx.Queue is mp.Queue and ctx.Lock is mp.Lock
    assert ctx.Array is mp.Array and ctx.Value is mp.Value
    with pytest.raises(ValueError, match="spawn"):
        mp.get_context("forkserver")
    with pytest.raises(ValueError):
        mp.get_context("vfork")
    with pytest.raises(ValueError):
        ctx.set_start_method("fork")
    with pytest.raises(RuntimeError):
        mp.set_start_method("spawn")  # already set: fork, by default


def test_spawn_process_is_a_fresh_interpreter(marked):
    q = mp.Queue()
    p = mp.get_context("spawn").Process(target=_report, args=(q,),
                                        name="spawned")
    p.start()
    pid, ppid, mark, jdir, method, name = q.get(timeout=60)
    p.join(60)
    assert p.exitcode == 0 and pid == p.pid and ppid == os.getpid()
    assert mark == "as imported"
    assert jdir == os.environ["JOBQ_DIR"]
    assert method == "fork" and name == "spawned"
    # The same through fork, for the difference.
    p = mp.get_context("fork").Process(target=_report, args=(q,))
    p.start()
    assert q.get(timeout=60)[2] == "changed after import"
    p.join(60)


def test_spawn_process_exitcode_terminate_daemon():
    ctx = mp.get_context("spawn")
    p = ctx.Process(target=os._exit, args=(3,))
    p.start()
    p.join(60)
    assert p.exitcode == 3
    p = ctx.Process(target=_square, args=("not a number",))
    p.start()
    p.join(60)
    assert p.exitcode == 1  # the exception is printed, as the standard's
    p = ctx.Process(target=_sleep_long, daemon=True)
    p.start()
    assert p.is_alive()
    p.terminate()
    p.join(60)
    assert p.exitcode == -15 and p not in mp.active_children()


def _sleep_long():
    import time
    time.sleep(60)


def test_spawn_pool_map(marked):
    with mp.get_context("spawn").Pool(2) as pool:
        got = pool.map(_where, range(10))
        assert [v for v, _, _ in got] == [x * x for x in range(10)]
        assert {m for _, _, m in got} == {"as imported"}
        assert os.getpid() not in {pid for _, pid, _ in got}
        assert pool.apply(_square, (7,)) == 49


def test_spawn_pool_maxtasksperchild():
    with mp.Pool(2, maxtasksperchild=1,
                 context=mp.get_context("spawn")) as pool:
        got = pool.map(_where, range(4), chunksize=1)
    assert [v for v, _, _ in got] == [0, 1, 4, 9]
    assert len({pid for _, pid, _ in got}) == 4


def test_executor_spawn_context_and_max_tasks_per_child(marked):
    with ProcessPoolExecutor(2, mp_context=mp.get_context("spawn"),
                             max_tasks_per_child=2) as ex:
        got = list(ex.map(_where, range(8)))
    assert [v for v, _, _ in got] == [x * x for x in range(8)]
    assert {m for _, _, m in got} == {"as imported"}
    assert len({pid for _, pid, _ in got}) >= 4
    with pytest.raises(ValueError):
        ProcessPoolExecutor(1, max_tasks_per_child=0)


def test_spawn_runs_functions_of_main(tmp_path):
    # A program of its own (its own private jobqd): set_start_method, then
    # a Process and a Pool whose functions live in __main__. The module
    # level runs again in each child as __mp_main__; the guarded part
    # only in the parent.
    r = run_script(tmp_path, '''
        import os
        import jobq.multiprocessing as multiprocessing

        # One write: the children start together, and print() writes its
        # pieces one by one when stdout is unbuffered (PYTHONUNBUFFERED).
        os.write(1, ("module level in %s\\n" % __name__).encode())

        def hello(q, who):
            q.put("hello %s from %d" % (who, os.getpid()))

        def cube(x):
            return x ** 3

        if __name__ == "__main__":
            multiprocessing.set_start_method("spawn")
            print("method", multiprocessing.get_start_method())
            q = multiprocessing.Queue()
            p = multiprocessing.Process(target=hello, args=(q, "main"))
            p.start()
            print(q.get(timeout=60).startswith("hello main from"))
            p.join(60)
            print("exitcode", p.exitcode)
            with multiprocessing.Pool(2) as pool:
                print(pool.map(cube, range(5)))
        ''')
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "module level in __main__"
    assert "method spawn" in lines and "True" in lines
    assert "exitcode 0" in lines and "[0, 1, 8, 27, 64]" in lines
    # Once in each spawned child that got to run: the Process and at
    # least one pool worker.
    assert lines.count("module level in __mp_main__") >= 2
