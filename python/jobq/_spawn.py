"""The spawn start method: a child is a fresh interpreter.

As multiprocessing's spawn: the child runs sys.executable with the
interpreter's flags, reads from a pipe what multiprocessing.spawn's
get_preparation_data() gives (sys.path, sys.argv, the working directory,
how to import __main__), prepares itself with multiprocessing.spawn's
prepare() (the main script runs again as __mp_main__, so functions of
__main__ unpickle by reference as long as the script guards its main code
with ``if __name__ == "__main__"``), and then reads what it is to run:
a Process object, pickled with its target by reference, or a pool
worker's arguments.

jobq adds two things: the instance, so the child talks to the parent's
jobqd whether or not $JOBQ_DIR named it (a private manager of the parent
is named by its directory), and jobq.multiprocessing's start method. No
resource tracker is started: jobq's objects live in jobqd, not in POSIX
semaphores or shared memory segments of their own.
"""

import io
import os
import pickle
import sys

import multiprocessing.context as _mpctx
import multiprocessing.popen_fork as _popen_fork
import multiprocessing.process as _mpprocess
import multiprocessing.reduction as _reduction
import multiprocessing.spawn as _mpspawn
import multiprocessing.util as _mputil

from . import _instance

PROCESS, POOL_WORKER = 0, 1


def _command(fd, kind):
    """The child's command line: this interpreter and its flags, the
    folders jobq is imported from (the child may not have them on its
    path before prepare() sets the parent's), and main(fd, kind)."""
    pkg = sys.modules[__package__]
    paths = [os.path.dirname(os.path.abspath(p)) for p in pkg.__path__]
    prog = ("import sys; sys.path[:0] = %r; "
            "from jobq._spawn import main; main(%d, %d)" % (paths, fd, kind))
    return [sys.executable, *_mputil._args_from_interpreter_flags(),
            "-c", prog]


def _preparation(name, popen):
    """What the child needs before it can unpickle its payload, pickled
    (the payload is pickled after it, by the caller)."""
    from . import multiprocessing as jmp
    prep = _mpspawn.get_preparation_data(name)
    # The instance is fixed now: a child must not start a private one.
    mine = {"dir": _instance.handle().dir,
            "start_method": jmp.get_start_method()}
    buf = io.BytesIO()
    # A Process carries its authkey, which pickles only while a process
    # is being spawned, as with the standard Popen.
    _mpctx.set_spawning_popen(popen)
    try:
        _reduction.dump((prep, mine), buf)
    finally:
        _mpctx.set_spawning_popen(None)
    return buf


def _dump(buf, obj, popen):
    _mpctx.set_spawning_popen(popen)
    try:
        _reduction.dump(obj, buf)
    finally:
        _mpctx.set_spawning_popen(None)


def _write_all(fd, data):
    with open(fd, "wb", closefd=False) as f:
        f.write(data)


class _DupFd:
    def __init__(self, fd):
        self.fd = fd

    def detach(self):
        return self.fd


class Popen(_popen_fork.Popen):
    """The Popen of a spawned Process: poll, wait, terminate and kill are
    the fork Popen's (the child is ours, reaped by pid); only the launch
    differs. Its sentinel is the read end of a pipe whose write end only
    the child holds, readable once the child is gone."""

    method = "spawn"
    DupFd = _DupFd

    def __init__(self, process_obj):
        self._fds = []
        super().__init__(process_obj)

    def duplicate_for_child(self, fd):
        """A descriptor pickled in the Process (a Connection) reaches the
        child under the same number."""
        self._fds.append(fd)
        return fd

    def _launch(self, process_obj):
        buf = _preparation(process_obj._name, self)
        _dump(buf, process_obj, self)
        parent_r = child_w = child_r = parent_w = None
        try:
            parent_r, child_w = os.pipe()
            child_r, parent_w = os.pipe()
            self.pid = _mputil.spawnv_passfds(
                os.fsencode(sys.executable), _command(child_r, PROCESS),
                self._fds + [child_r, child_w])
            self.sentinel = parent_r
            # parent_w stays open while this Popen lives: the child's
            # parent_process().is_alive() watches its other end.
            _write_all(parent_w, buf.getbuffer())
        finally:
            self.finalizer = _mputil.Finalize(
                self, _mputil.close_fds,
                [fd for fd in (parent_r, parent_w) if fd is not None])
            for fd in (child_r, child_w):
                if fd is not None:
                    os.close(fd)


def start_pool_worker(name, args):
    """Start a fresh interpreter that runs jobq._pool._child_main(*args);
    its pid (the caller reaps it)."""
    buf = _preparation(name, True)
    _dump(buf, args, True)
    r, w = os.pipe()
    try:
        pid = _mputil.spawnv_passfds(os.fsencode(sys.executable),
                                     _command(r, POOL_WORKER), [r])
        _write_all(w, buf.getbuffer())
    finally:
        os.close(r)
        os.close(w)
    return pid


def main(fd, kind):
    """The child's side: prepare as the parent said, then run the
    payload; exits the interpreter with the exit code."""
    parent_sentinel = os.dup(fd) if kind == PROCESS else None
    me = _mpprocess.current_process()
    with os.fdopen(fd, "rb", closefd=True) as f:
        # While set, starting a process raises (multiprocessing's guard
        # against a main module that does not check __name__).
        me._inheriting = True
        try:
            prep, mine = pickle.load(f)
            os.environ["JOBQ_DIR"] = mine["dir"]
            from . import multiprocessing as jmp
            jmp.set_start_method(mine["start_method"], force=True)
            _mpspawn.prepare(prep)
            payload = pickle.load(f)
        finally:
            del me._inheriting
    if kind == PROCESS:
        sys.exit(payload._bootstrap(parent_sentinel))
    from . import _pool
    code = 0
    try:
        _pool._child_main(*payload)
    except BaseException:
        import traceback
        traceback.print_exc()
        code = 1
    sys.exit(code)
