"""Which jobqd a program talks to, and the private one started for it.

The instance is, in order: $JOBQ_DIR; else a manager already serving the
default directory ($XDG_RUNTIME_DIR/jobq, /tmp/jobq-$UID); else a private
jobqd that this module starts (``jobqd --dir TMP --daemon``) the first time
a connection is needed, as multiprocessing.Manager() starts its server
process. The private manager's directory goes into $JOBQ_DIR, so children
(forked or spawned) find the same one; the process that started it stops it
by pid at exit, after the program's pools and children are finished.

jobqd is found through $JOBQ_JOBQD, else the path meson installed it to,
else the build tree's, else $PATH.
"""

import atexit
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time

from . import _jobq

try:
    from . import _config
except ImportError:  # pragma: no cover - a package without meson's file
    _config = None

_lock = threading.RLock()
_handle = None  # the process's shared connection
_handle_pid = None
_private = None  # (pid of jobqd, its directory, pid of the starter)
_exit_hooks = []  # run at exit before the private manager stops


def jobqd_path():
    """The jobqd program to start, or None."""
    env = os.environ.get("JOBQ_JOBQD")
    if env:
        return env
    if _config is not None:
        for p in (_config.JOBQD_INSTALLED, _config.JOBQD_BUILD):
            if os.access(p, os.X_OK):
                return p
    return shutil.which("jobqd")


def _start_private():
    global _private
    exe = jobqd_path()
    if exe is None:
        raise ConnectionError(
            "jobq: no manager is running and jobqd was not found "
            "(set JOBQ_JOBQD, or start one: jobqd --daemon)")
    d = tempfile.mkdtemp(prefix="jobq-py-")
    r = subprocess.run([exe, "--dir", d, "--daemon"], stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        shutil.rmtree(d, ignore_errors=True)
        raise ConnectionError("jobq: starting %s --dir %s failed: %s" %
                              (exe, d, r.stderr.strip() or r.returncode))
    with open(os.path.join(d, "jobqd.pid")) as f:
        pid = int(f.read().strip())
    _private = (pid, d, os.getpid())
    os.environ["JOBQ_DIR"] = d
    return d


def _stop_private():
    global _private
    p = _private
    if p is None or p[2] != os.getpid():
        return
    _private = None
    pid, d, _ = p
    try:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            os.kill(pid, 0)
            time.sleep(0.005)
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    shutil.rmtree(d, ignore_errors=True)
    if os.environ.get("JOBQ_DIR") == d:
        del os.environ["JOBQ_DIR"]


def connect_handle(dir=None):
    """A new _jobq.Handle on @dir, else on the program's instance (see the
    module's text), starting the private manager when there is none."""
    if dir is not None:
        return _jobq.Handle(dir)
    with _lock:
        env = os.environ.get("JOBQ_DIR")
        try:
            return _jobq.Handle(env)
        except _jobq.Error as e:
            if e.errno != _jobq.JOBQ_ENOMANAGER or env:
                raise
        return _jobq.Handle(_start_private())


def handle():
    """The process's shared handle, opened on first use (and again in a
    forked child: a handle does not survive fork)."""
    global _handle, _handle_pid
    # Every call of the binding comes here: no getpid() (a system call)
    # on this path, since _after_fork_child() clears the handle in a child.
    h = _handle
    if h is not None:
        return h
    with _lock:
        if _handle is None or _handle_pid != os.getpid():
            _handle = connect_handle()
            _handle_pid = os.getpid()
        return _handle


def flush(timeout=10.0):
    """Wait until this process's unanswered puts (Queue.put) reached
    jobqd, at most @timeout seconds (None: as long as it takes)."""
    h = _handle
    if h is not None and _handle_pid == os.getpid():
        try:
            h.flush(-1.0 if timeout is None else timeout)
        except _jobq.Error:
            pass


def at_exit(fn):
    """Run fn() at exit, before the private manager stops (last first)."""
    _exit_hooks.append(fn)


def _after_fork_child():
    global _handle, _handle_pid, _lock
    # The parent's handle is left alone (its dealloc skips a foreign
    # process's connection); the child opens its own on first use.
    _handle = None
    _handle_pid = None
    _lock = threading.RLock()
    _exit_hooks.clear()


os.register_at_fork(after_in_child=_after_fork_child)


def _exit():
    from . import _core
    flush()
    while _exit_hooks:
        fn = _exit_hooks.pop()
        try:
            fn()
        except Exception:  # pragma: no cover - best effort at exit
            pass
    if _private is None or _private[2] != os.getpid():
        _core.stop_pumps()
        return
    # multiprocessing's own exit handler (terminate daemonic children, join
    # the others) would run after this one, since its module registered it
    # first: run it now, while the children's manager still serves them.
    # It marks itself done, so its later call does nothing.
    try:
        import multiprocessing.util as mpu
        mpu._exit_function()
    except Exception:  # pragma: no cover
        pass
    _core.stop_pumps()
    _stop_private()


# Imported before this registration, so that ours runs first (atexit runs
# the last registered first).
import multiprocessing.util  # noqa: E402,F401

atexit.register(_exit)
