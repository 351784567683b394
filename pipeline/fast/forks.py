"""Speed machinery, not part of any algorithm: how this project starts a worker process.

Training (`pipeline.fast.replicas`) and detection (`pipeline.fast.helpers`) both run part of their work in
worker processes that are *forks* of the current one: a fork starts as a copy of this process,
so nothing is pickled, the worker is ready in a few milliseconds, and the user's script is not
run again, which the other start methods ("spawn", "forkserver") do, and which breaks any
script that trains or detects at its top level without an ``if __name__ == "__main__":`` guard
(the tutorials do).
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import warnings
import weakref

# This process's ends of every worker's pipe (the detector's helpers', training's replicas'). A
# fork copies them all, and a worker sees the end of its pipe (EOF: its parent has gone, however
# it went, kill -9 included) only when every copy of the other end is closed: so every process
# forked from this one closes its copies at once (a new worker, or any other fork), or a worker
# would wait for that fork to end before it does.
_PARENT_ENDS = weakref.WeakSet()


def parent_end(connection):
    """Register this process's end of a pipe to a worker, so that forks close their copies of
    it (see above). Returns the connection."""
    _PARENT_ENDS.add(connection)
    return connection


def _close_parent_ends() -> None:
    for connection in list(_PARENT_ENDS):
        connection.close()
    _PARENT_ENDS.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_close_parent_ends)


def fork_context():
    """multiprocessing's "fork" start method on Linux, else None (the caller then does the work
    in this process). On macOS a fork is unsafe with the system's BLAS; a daemonic process (a
    multiprocessing pool's worker) may not start processes of its own."""
    if multiprocessing.current_process().daemon:
        return None
    if sys.platform.startswith("linux") and "fork" in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("fork")
    return None


def start_forked(process) -> None:
    """Start a forked worker. Python 3.12+ warns about forking a process that has threads; ours
    (the layers' thread pool, BLAS's, a progress bar's) are idle and the child never uses them:
    it runs NumPy and BLAS on one thread, and OpenBLAS resets its own pool on a fork."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*use of fork\\(\\) may lead to deadlocks", category=DeprecationWarning)
        process.start()
