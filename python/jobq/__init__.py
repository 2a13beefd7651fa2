"""jobq for Python: the direct API over libjobq.

    import jobq
    c = jobq.connect()              # $JOBQ_DIR, the default instance, or a
                                    # private jobqd started for this program
    c.put("work", {"n": 1}); c.get("work", timeout=1.5)
    c.kv["motd"] = "hello"; c.kv.incr("visits"); c.kv.cas("k", old, new)
    with c.lock("deploy"): ...
    fut = c.submit("resize", {"w": 640})    # a concurrent.futures.Future

    @jobq.task
    def resize(w): ...              # served by: python -m jobq worker MODULE

jobq.multiprocessing and jobq.futures keep the standard modules' names.
See jobq._core for how values travel (pickle under type tag T_PICKLE).
"""

from pkgutil import extend_path

# The package may be split between the source folder (the .py files) and
# the build folder (the extension and _config.py): join both.
__path__ = extend_path(__path__, __name__)

from ._core import (T_BYTES, T_JSON, T_NONE, T_PICKLE, T_TEXT,  # noqa: E402
                    Connection, DeadlockError, Error, JobFailed, JobFuture,
                    NamedLock, RemoteTraceback, Store, connect, dumps, loads,
                    serve, task)

__all__ = ["connect", "Connection", "Store", "NamedLock", "JobFuture",
           "task", "serve", "dumps", "loads", "Error", "DeadlockError",
           "JobFailed", "RemoteTraceback", "T_NONE", "T_BYTES", "T_JSON",
           "T_TEXT", "T_PICKLE"]
