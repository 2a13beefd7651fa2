"""One jobqd for the whole run, in a fresh directory ($JOBQ_DIR), started
and stopped by pid; scripts run as their own programs get their own."""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time

import pytest

JOBQD = os.environ.get("JOBQ_JOBQD", "jobqd")


def start_jobqd(d):
    subprocess.run([JOBQD, "--dir", d, "--daemon", "--memory", "64M"],
                   check=True, timeout=30)
    with open(os.path.join(d, "jobqd.pid")) as f:
        return int(f.read())


def stop_pid(pid, timeout=10):
    try:
        os.kill(pid, signal.SIGTERM)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            os.kill(pid, 0)
            time.sleep(0.01)
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purposes.
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


@pytest.fixture(scope="session", autouse=True)
def instance():
    d = tempfile.mkdtemp(prefix="jobq-pytest-")
    pid = start_jobqd(d)
    os.environ["JOBQ_DIR"] = d
    yield d
    stop_pid(pid)
    shutil.rmtree(d, ignore_errors=True)


def run_script(tmp_path, src, own_instance=True, timeout=60, args=()):
    """Run @src as a program of its own; with own_instance, no instance
    is named, so it starts (and must stop) a private jobqd."""
    p = tmp_path / "prog.py"
    p.write_text(textwrap.dedent(src))
    env = dict(os.environ)
    if own_instance:
        env.pop("JOBQ_DIR", None)
        rt = tmp_path / "runtime"
        rt.mkdir(exist_ok=True)
        env["XDG_RUNTIME_DIR"] = str(rt)
    return subprocess.run([sys.executable, str(p), *args], env=env,
                          capture_output=True, text=True, timeout=timeout,
                          cwd=str(tmp_path))
