"""Run independent pieces of the detector (pyramid levels, batches of crops) on all cores.

The nets are limited by memory traffic more than by arithmetic, and their matrix multiplies
are small: BLAS threads mostly wait for each other, and the elementwise passes (PReLU,
pooling, im2col copies) use one core. So during a detection BLAS runs single-threaded and we
run independent pieces in Python threads instead; NumPy releases the GIL inside its loops and
BLAS calls, so two pieces really run at once.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager


def available_cpus() -> int:
    """CPUs this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


class Parallel:
    """``map(fn, items)`` on ``workers`` threads inside a ``session()``; serial outside one.

    One session at a time: a detector that uses it is not meant to be shared between threads
    that detect at the same moment (give each thread its own detector).
    """

    def __init__(self, workers: int | None = None):
        workers = available_cpus() if workers is None else workers
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.workers = workers
        self._pool = None
        self._controller = None

    @contextmanager
    def session(self):
        """Single-threaded BLAS and, with several workers, a thread pool for ``map``."""
        from threadpoolctl import ThreadpoolController

        if self._controller is None:
            self._controller = ThreadpoolController()  # finds the BLAS that NumPy loaded, once
        with self._controller.limit(limits=1, user_api="blas"):
            if self.workers == 1:
                yield self
                return
            with ThreadPoolExecutor(self.workers) as pool:
                self._pool = pool
                try:
                    yield self
                finally:
                    self._pool = None

    def map(self, fn, items) -> list:
        """[fn(item) for item in items], in order; concurrently inside a session."""
        items = list(items)
        if self._pool is None or len(items) <= 1:
            return [fn(item) for item in items]
        return list(self._pool.map(fn, items))
