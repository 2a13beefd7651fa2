"""The tutorials' classics, each with only its import changed, run as
programs of their own: each starts a private jobqd and must stop it."""

import os
import re
import time

from conftest import alive, run_script

HEAD = '''
import os, sys, time
import jobq.multiprocessing as multiprocessing
from jobq.multiprocessing import Process, Lock, Pool, Value
from jobq.futures import ProcessPoolExecutor
import concurrent.futures
def private_dir():
    return os.environ.get("JOBQ_DIR")
'''


def check(r):
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def private_dir_gone(out):
    m = re.search(r"DIR (\S+)", out)
    assert m, out
    assert not os.path.exists(m.group(1))


def test_daemon_and_non_daemon_child(tmp_path):
    out = check(run_script(tmp_path, HEAD + '''
def daemon(path):
    with open(path, "w") as f:
        f.write(str(os.getpid()))
    time.sleep(60)

def non_daemon():
    time.sleep(0.5)
    print("non-daemon done", flush=True)

if __name__ == "__main__":
    d = Process(name="daemon", target=daemon, args=(sys.argv[1],))
    d.daemon = True
    n = Process(name="non-daemon", target=non_daemon)
    d.start(); n.start()
    while not os.path.exists(sys.argv[1]) or not open(sys.argv[1]).read():
        time.sleep(0.01)
    print("DIR", private_dir(), flush=True)
    n.join()
    print("main done", flush=True)
''', args=[str(tmp_path / "daemon.pid")]))
    assert out.index("non-daemon done") < out.index("main done")
    pid = int((tmp_path / "daemon.pid").read_text())
    end = time.monotonic() + 10
    while alive(pid) and time.monotonic() < end:
        time.sleep(0.05)
    assert not alive(pid), "the daemon child outlived its parent"
    private_dir_gone(out)


def test_exit_while_daemon_children_run(tmp_path):
    out = check(run_script(tmp_path, HEAD + '''
def forever(q):
    q.put(os.getpid())
    while True:
        time.sleep(1)

if __name__ == "__main__":
    q = multiprocessing.Queue()
    ps = [Process(target=forever, args=(q,), daemon=True) for _ in range(3)]
    for p in ps:
        p.start()
    print("PIDS", *[q.get(timeout=20) for _ in ps])
    print("DIR", private_dir(), flush=True)
'''))
    pids = [int(x) for x in re.search(r"PIDS (.*)", out).group(1).split()]
    end = time.monotonic() + 10
    while any(alive(p) for p in pids) and time.monotonic() < end:
        time.sleep(0.05)
    assert not any(alive(p) for p in pids)
    private_dir_gone(out)


def test_ticket_seller(tmp_path):
    out = check(run_script(tmp_path, HEAD + '''
def buy(lock, tickets, sold):
    with lock:
        left = tickets.value
        time.sleep(0.01)
        if left > 0:
            tickets.value = left - 1
            sold.put(os.getpid())

if __name__ == "__main__":
    lock = Lock()
    tickets = Value("i", 3)
    sold = multiprocessing.Queue()
    ps = [Process(target=buy, args=(lock, tickets, sold)) for _ in range(10)]
    for p in ps:
        p.start()
    for p in ps:
        p.join()
    print("LEFT", tickets.value, "SOLD", sold.qsize())
    print("DIR", private_dir(), flush=True)
'''))
    assert "LEFT 0 SOLD 3" in out
    private_dir_gone(out)


def test_pool_of_three(tmp_path):
    out = check(run_script(tmp_path, HEAD + '''
def f(x):
    return x * x

results = []

def collect(r):
    results.append(r)

if __name__ == "__main__":
    pool = Pool(3)
    print("apply", pool.apply(f, (10,)))
    rs = [pool.apply_async(f, (i,), callback=collect) for i in range(10)]
    pool.close()
    pool.join()
    print("async", sorted(results), [r.get() for r in rs] == [i * i for i in range(10)])
    print("DIR", private_dir(), flush=True)
'''))
    assert "apply 100" in out
    assert "async [0, 1, 4, 9, 16, 25, 36, 49, 64, 81] True" in out
    private_dir_gone(out)


def test_process_pool_executor_of_five(tmp_path):
    out = check(run_script(tmp_path, HEAD + '''
def cube(x):
    return x ** 3

if __name__ == "__main__":
    done = []
    with ProcessPoolExecutor(5) as ex:
        futs = [ex.submit(cube, i) for i in range(10)]
        for fu in futs:
            fu.add_done_callback(lambda fu: done.append(fu.result()))
        print("submit", [fu.result() for fu in futs])
        print("map", list(ex.map(cube, range(5))))
    print("callbacks", sorted(done))
    print("DIR", private_dir(), flush=True)
'''))
    assert "submit [0, 1, 8, 27, 64, 125, 216, 343, 512, 729]" in out
    assert "map [0, 1, 8, 27, 64]" in out
    assert "callbacks [0, 1, 8, 27, 64, 125, 216, 343, 512, 729]" in out
    private_dir_gone(out)
