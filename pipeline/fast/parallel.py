"""Run independent pieces of the detector (pyramid levels, batches of crops) on all cores.

The nets are limited by memory traffic more than by arithmetic, and their matrix multiplies
are small: BLAS threads mostly wait for each other, and the elementwise passes (PReLU,
pooling, im2col copies) use one core. So during a detection BLAS runs single-threaded and the
work is cut into independent pieces instead, in one of two ways:

* ``run(fn, owner, shares)``: one share per worker, each in its own *process* (`pipeline.fast.helpers`:
  forked helpers, and the image in memory they share). Both detectors split every stage this
  way. Processes do not take turns at Python's interpreter lock, which threads do at
  every small NumPy call: on 2 cores two worker processes nearly halve a detection's time,
  where threads saved far less (`benchmarks/bench_detect.py`, benchmarks/README.md).
* ``map(fn, items)``: items on a pool of *threads*; fn may be any function (a closure too).
  ``run`` falls back to it where fork is missing.
"""

from __future__ import annotations

import os
import threading
import warnings
import weakref
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import numpy as np

from pipeline.fast.memory import settle_thresholds

from pipeline.fast.helpers import Helpers, can_fork

# Workers when none are asked for: the CPUs, but at most this many. Each helper process costs
# memory of its own and a fork, and stage 1 has only about a dozen pyramid levels to share, the
# largest about half the work. (Measured on two cores only: beyond two, a guess.)
DEFAULT_MAX_WORKERS = 4


def available_cpus() -> int:
    """CPUs this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


class Parallel:
    """``workers`` threads for ``map`` or processes for ``run`` inside a ``session()``; serial
    outside one.

    One session at a time: a detector used from several threads at once has their detections
    run one after the other (`exclusive`; each thread's own detector runs them side by side).
    Threads and helper
    processes are made at the first session that needs them and kept for the next ones
    (starting and joining two threads for every photo cost up to a tenth of a detection); they
    wait, using no CPU, between sessions, and end with the Parallel. A process forked after a
    session makes its own.
    """

    def __init__(self, workers: int | None = None):
        workers = min(available_cpus(), DEFAULT_MAX_WORKERS) if workers is None else workers
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.workers = workers
        self._pool = None
        self._controller = None
        self._threads = None  # (ThreadPoolExecutor, pid of the process that made it)
        self._helpers = None  # pipeline.fast.helpers.Helpers, once a session asked for them
        self._owner = None  # the object the helpers are forks of, during a session that has them
        self._exclusive = threading.RLock()

    def __getstate__(self):
        """Pickled (e.g. with a detector sent to another process) without its threads, lock and
        BLAS handle; the copy makes its own at its first session."""
        return {**self.__dict__, "_pool": None, "_controller": None, "_threads": None, "_owner": None,
                "_exclusive": None}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._exclusive = threading.RLock()

    def exclusive(self):
        """A lock for the owner's whole session (a re-entrant one: the same thread may nest
        sessions). The detectors hold it from the first stage to the last: the helpers, the
        shared image and the session's nets belong to one detection at a time, so a second
        thread's detection waits for the first's instead of mixing with it."""
        return self._exclusive

    def close(self) -> None:
        """End the helper processes now (the next session that needs them starts new ones)."""
        if self._helpers is not None:
            self._helpers.close()

    def _executor(self) -> ThreadPoolExecutor:
        """This process's thread pool (a forked child inherits the object, not the threads)."""
        if self._threads is None or self._threads[1] != os.getpid():
            pool = ThreadPoolExecutor(self.workers, thread_name_prefix="facecascade")
            weakref.finalize(self, pool.shutdown, wait=False)
            self._threads = (pool, os.getpid())
        return self._threads[0]

    @contextmanager
    def session(self, owner=None, key=(), shared_bytes: int = 0):
        """Single-threaded BLAS, glibc's malloc thresholds settled (`pipeline.fast.memory`) and, with
        several workers, the thread pool for ``map``.

        With an ``owner`` (the detector) and several workers, also helper processes for
        ``run``: forks of this process with the owner as it is now, made again when ``key``
        (objects compared by identity) changes, with at least ``shared_bytes`` of shared
        memory for ``shared_array``.
        """
        from threadpoolctl import ThreadpoolController

        settle_thresholds()
        if self._controller is None:
            self._controller = ThreadpoolController()  # finds the BLAS that NumPy loaded, once
        with self._controller.limit(limits=1, user_api="blas"):
            if self.workers == 1:
                yield self
                return
            outer = (self._pool, self._owner)  # a session inside another gives them back at its end
            self._pool = self._executor()
            if owner is not None and self._start_helpers(owner, key, shared_bytes):
                self._owner = owner
            try:
                yield self
            finally:
                self._pool, self._owner = outer

    def _start_helpers(self, owner, key, shared_bytes) -> bool:
        """Whether helper processes are ready for ``owner`` (False where fork is missing or
        failed; ``run`` then uses the threads)."""
        if not can_fork():
            return False
        if self._helpers is None:
            self._helpers = Helpers(self.workers - 1)
        try:
            self._helpers.start(owner, key, shared_bytes)
        except OSError as error:  # e.g. no memory for the fork
            warnings.warn(f"no helper processes ({error}); the detector runs on threads", RuntimeWarning, stacklevel=3)
            self._helpers.close()
            return False
        return True

    def shared_array(self, shape, dtype) -> np.ndarray:
        """An empty array (shape, dtype) that the helper processes of this session see without a
        copy when it is passed to ``run`` (a plain array when there are none). It holds until the
        next call."""
        if self._owner is not None:
            return self._helpers.shared_array(shape, dtype)
        return np.empty(shape, dtype)

    def run(self, fn, owner, shares) -> list:
        """[fn(owner, *share) for share in shares], at most ``workers`` shares, concurrently
        inside a session: in the helper processes when the session has them for this owner
        (fn then must be a module-level function, sent by name, and the shares and results
        picklable), else on the threads."""
        shares = list(shares)
        if self._owner is not None and self._owner is owner:
            return self._helpers.run(fn, owner, shares)
        return self.map(lambda share: fn(owner, *share), shares)

    def map(self, fn, items) -> list:
        """[fn(item) for item in items], in order; concurrently inside a session."""
        items = list(items)
        if self._pool is None or len(items) <= 1:
            return [fn(item) for item in items]
        return list(self._pool.map(fn, items))


# ---------------------------------------------------------------- batches of crops


def _concatenate(outputs: list[dict]) -> dict[str, np.ndarray]:
    """The chunks' outputs (head name -> array, first axis the chunk's items), joined in order."""
    return {name: np.concatenate([out[name] for out in outputs]) for name in outputs[0]}


def join_scores(starts, parts) -> tuple[np.ndarray, dict]:
    """The (kept, outputs) of `pipeline.detection.runner.crop_and_score` on consecutive chunks of boxes, the chunks
    starting at box indices ``starts``, as one (kept (M,) int64, outputs) for all the boxes."""
    parts = list(parts)
    kept = np.concatenate([k + start for start, (k, _) in zip(starts, parts)]) if parts else np.zeros(0, np.int64)
    outputs = [out for _, out in parts if out]
    return kept.astype(np.int64, copy=False), (_concatenate(outputs) if outputs else {})


# ---------------------------------------------------------------- shares for the workers


def split_evenly(count: int, parts: int) -> list[range]:
    """range(count) cut into at most ``parts`` consecutive ranges of sizes differing by at most
    one, the larger ones first (no empty ones): the first share is this process's, which
    starts before the helpers have read theirs."""
    parts = max(1, min(parts, count))
    size, extra = divmod(count, parts)
    bounds = [i * size + min(i, extra) for i in range(parts + 1)]
    return [range(a, b) for a, b in zip(bounds, bounds[1:]) if b > a]


def join_shares(shares, parts) -> list:
    """The results of ``run`` on shares of indices (e.g. `split_by_weight`'s), back in index
    order: part k holds one result per index of shares[k], in that share's order. Returns a list
    as long as all the shares together."""
    joined = [None] * sum(len(share) for share in shares)
    for share, part in zip(shares, parts):
        for i, result in zip(share, part):
            joined[i] = result
    return joined


def split_by_weight(weights, parts: int) -> list[list[int]]:
    """The indices of ``weights`` in at most ``parts`` groups of about equal total weight: the
    heaviest first, each into the lightest group so far. Each group in increasing order; no
    empty groups. (A pyramid's level areas shrink by half from level to level, so on two
    workers the largest level makes one share and all the others the second.)"""
    groups, totals = [[] for _ in range(max(1, parts))], [0.0] * max(1, parts)
    for index in sorted(range(len(weights)), key=lambda i: -weights[i]):
        lightest = totals.index(min(totals))
        groups[lightest].append(index)
        totals[lightest] += weights[index]
    return [sorted(group) for group in groups if group]
