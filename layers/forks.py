"""Speed machinery, not part of any algorithm: how this project starts a worker process.

Training (`layers.replicas`) and detection (`pipeline.helpers`) both run part of their work in
worker processes that are *forks* of the current one: a fork starts as a copy of this process,
so nothing is pickled, the worker is ready in a few milliseconds, and the user's script is not
run again, which the other start methods ("spawn", "forkserver") do, and which breaks any
script that trains or detects at its top level without an ``if __name__ == "__main__":`` guard
(the tutorials do).
"""

from __future__ import annotations

import multiprocessing
import sys
import warnings


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
