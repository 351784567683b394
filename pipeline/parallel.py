"""Run independent pieces of the detector (pyramid levels, batches of crops) on all cores.

The nets are limited by memory traffic more than by arithmetic, and their matrix multiplies
are small: BLAS threads mostly wait for each other, and the elementwise passes (PReLU,
pooling, im2col copies) use one core. So during a detection BLAS runs single-threaded and we
run independent pieces in Python threads instead; NumPy releases the GIL inside its loops and
BLAS calls, so two pieces really run at once. How much that gains depends on the machine: on
the 2-core VM this project is measured on, two matrix multiplies at once each run about 1.45x
slower than one alone, and the group photo's detection is 1.4-1.45x faster on two threads
(`benchmarks/bench_detect.py`).
"""

from __future__ import annotations

import os
import weakref
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import numpy as np

from layers.memory import settle_thresholds

from .crops import crop_and_resize
from .proposals import normalize

BATCH = 256  # crops per net forward pass at most, to bound memory


def available_cpus() -> int:
    """CPUs this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


class Parallel:
    """``map(fn, items)`` on ``workers`` threads inside a ``session()``; serial outside one.

    One session at a time: a detector that uses it is not meant to be shared between threads
    that detect at the same moment (give each thread its own detector). The threads are made
    at the first session and kept for the next ones (starting and joining two threads for
    every photo cost 3-6 ms of a 50 ms detection); they wait, using no CPU, between sessions,
    and end with the Parallel. A process forked after a session makes its own.
    """

    def __init__(self, workers: int | None = None):
        workers = available_cpus() if workers is None else workers
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.workers = workers
        self._pool = None
        self._controller = None
        self._threads = None  # (ThreadPoolExecutor, pid of the process that made it)

    def __getstate__(self):
        """Pickled (e.g. with a detector sent to another process) without its threads and
        BLAS handle; the copy makes its own at its first session."""
        return {**self.__dict__, "_pool": None, "_controller": None, "_threads": None}

    def _executor(self) -> ThreadPoolExecutor:
        """This process's thread pool (a forked child inherits the object, not the threads)."""
        if self._threads is None or self._threads[1] != os.getpid():
            pool = ThreadPoolExecutor(self.workers, thread_name_prefix="facecascade")
            weakref.finalize(self, pool.shutdown, wait=False)
            self._threads = (pool, os.getpid())
        return self._threads[0]

    @contextmanager
    def session(self):
        """Single-threaded BLAS, glibc's malloc thresholds settled (`layers.memory`) and, with
        several workers, the thread pool for ``map``."""
        from threadpoolctl import ThreadpoolController

        settle_thresholds()
        if self._controller is None:
            self._controller = ThreadpoolController()  # finds the BLAS that NumPy loaded, once
        with self._controller.limit(limits=1, user_api="blas"):
            if self.workers == 1:
                yield self
                return
            self._pool = self._executor()
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


# ---------------------------------------------------------------- batches of crops on the workers


def _chunk_size(count: int, parallel, batch: int) -> int:
    """Items per chunk: at most ``batch``, and few enough that every worker of ``parallel``
    (a `Parallel`, or None for one) gets a chunk."""
    workers = parallel.workers if parallel is not None else 1
    return max(1, min(batch, -(-count // workers)))


def _concatenate(outputs: list[dict]) -> dict[str, np.ndarray]:
    """The chunks' outputs (head name -> array, first axis the chunk's items), joined in order."""
    return {name: np.concatenate([out[name] for out in outputs]) for name in outputs[0]}


def run_in_batches(net, patches: np.ndarray, parallel=None, batch: int = BATCH) -> dict[str, np.ndarray]:
    """net.forward over patches (K, 3, S, S) in chunks (at most ``batch``, and one per worker
    of ``parallel``, a `Parallel`); outputs (head name -> (K, ...)) concatenated in order, {}
    for no patches."""
    if len(patches) == 0:
        return {}
    size = _chunk_size(len(patches), parallel, batch)
    chunks = [patches[i : i + size] for i in range(0, len(patches), size)]
    outputs = parallel.map(net.forward, chunks) if parallel is not None else [net.forward(c) for c in chunks]
    return _concatenate(outputs)


def crop_and_score(net, image_chw: np.ndarray, boxes: np.ndarray, size: int, parallel=None, batch: int = BATCH):
    """Cut the boxes (K, 4) (x1, y1, x2, y2 in pixels) out of image_chw (3, H, W) (0..255),
    resize them to size x size, normalize and run net.forward, in chunks of boxes (at most
    ``batch``, and one per worker of ``parallel``, so that the cropping runs on every core too).

    Returns kept (M,) int64, the boxes whose window holds a pixel (`crop_and_resize`), and the
    net's outputs (head name -> (M, ...)) for those crops in box order ({} when none was kept).
    """
    step = _chunk_size(len(boxes), parallel, batch)

    def score(start):
        patches, kept = crop_and_resize(image_chw, boxes[start : start + step], size)
        return kept + start, (net.forward(normalize(patches)) if len(kept) else None)

    starts = range(0, len(boxes), step)
    parts = parallel.map(score, starts) if parallel is not None else [score(start) for start in starts]
    kept = np.concatenate([k for k, _ in parts]) if parts else np.zeros(0, np.int64)
    outputs = [out for _, out in parts if out is not None]
    return kept, (_concatenate(outputs) if outputs else {})
