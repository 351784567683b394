"""Speed machinery, not part of any algorithm: run a kernel on slices of the batch, on threads.

The elementwise kernels (max pooling, PReLU, ReLU) make several NumPy passes over arrays of
tens of megabytes, so they are bound by memory traffic, and NumPy runs each pass on one core.
Two standard devices fix both, without changing a single number of the result:

1. **Cache blocking.** A kernel that makes k passes over an array reads main memory k times.
   Run on a slice of the batch small enough to stay in the L2 cache (``CHUNK_BYTES``), the
   same k passes read main memory once and hit the cache after that.
2. **Threads.** NumPy releases the GIL inside its loops, so slices given to two threads really
   run at once on two cores.

Every sample of the batch is independent in these kernels, so the result is the same for any
slicing. ``map_batch(fn, N, bytes_per_sample)`` calls ``fn(batch_slice)`` for consecutive slices
covering ``range(N)`` and returns their results in order; ``fn`` writes its slice of
preallocated outputs, or returns a partial result (a per-channel sum) for the caller to add up.

How many threads: as many as BLAS may use (``threadpoolctl.threadpool_limits(2)`` gives two),
or what ``set_threads`` says. Threads are used only from the main thread: a caller that
already runs layers on several threads (the detector, ``pipeline/fast/parallel.py``) gets plain
serial slices, so cores are never oversubscribed. ``set_threads(1)`` turns threading off.

Kernels whose slices call BLAS (the convolution's matrix multiplies) pass ``blas=True``: while
the threads run, BLAS is held to one thread each, so two slices multiply at once instead of
two BLAS threads meeting at a barrier after every (small) multiply of every slice.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext

CHUNK_BYTES = 1 << 20  # bytes of all arrays a kernel touches per slice: well inside a 2 MB L2
MIN_PARALLEL_BYTES = 1 << 23  # below this, thread hand-off costs more than it saves:
# P-Net's and the 12-net's steps ran about 15% faster with 8 MB here than with 0.5 MB, the
# others within the noise (benchmarks/README.md).

_threads: int | None = None  # None: as many as BLAS may use, at most the CPUs we may run on
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()
_blas_controller = None  # threadpoolctl's handle on the BLAS library NumPy uses (False: none)
_serial_blocks = 0  # > 0 inside `serial()`


def _blas():
    global _blas_controller
    if _blas_controller is None:
        try:
            from threadpoolctl import ThreadpoolController
            _blas_controller = ThreadpoolController().select(user_api="blas") or False
        except ImportError:
            _blas_controller = False
    return _blas_controller


def get_threads() -> int:
    """How many threads the batch slices run on (when called from the main thread)."""
    if _threads is not None:
        return _threads
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    blas = _blas()
    if blas:
        return max(1, min(cpus, max(lib.num_threads for lib in blas.lib_controllers)))
    return max(1, min(4, cpus))


def set_threads(n: int | None) -> None:
    """Use n threads for the batch slices (1: serial; None: the default, BLAS's thread count)."""
    global _threads, _pool
    if n is not None and n < 1:
        raise ValueError(f"threads must be >= 1, got {n}")
    with _pool_lock:
        _threads = n
        if _pool is not None:
            _pool.shutdown(wait=True)
            _pool = None


def forget_threads() -> None:
    """In a forked child process: drop the parent's thread pool, whose threads a fork does not
    copy (the next parallel slice makes a new one)."""
    global _pool
    _pool = None


def batch_slices(N: int, bytes_per_sample: int, parts: int = 1, chunk_bytes: int | None = None) -> list[slice]:
    """Consecutive slices covering range(N), each touching about ``chunk_bytes`` (default
    CHUNK_BYTES), and at least ``parts`` of them when N allows (so that every thread gets work)."""
    per_slice = max(1, (chunk_bytes or CHUNK_BYTES) // max(1, bytes_per_sample))
    count = max(-(-N // per_slice), min(parts, N))
    bounds = [round(i * N / count) for i in range(count + 1)]
    return [slice(bounds[i], bounds[i + 1]) for i in range(count) if bounds[i + 1] > bounds[i]]


def map_batch(fn, N: int, bytes_per_sample: int, chunk_bytes: int | None = None, blas: bool = False) -> list:
    """[fn(s) for s in batch_slices(N, bytes_per_sample, chunk_bytes=chunk_bytes)], shared out
    over the threads when the work is large enough and we are on the main thread. ``blas``:
    fn calls BLAS, which then runs one thread per slice while the threads work.

    Each thread gets one run of consecutive slices (the calling thread takes the first), so an
    op hands work to another thread once, not once per slice: on a busy machine every hand-off
    may wait for a free core.
    """
    global _pool
    threads = get_threads()
    parallel = (threads > 1 and N > 1 and N * bytes_per_sample >= MIN_PARALLEL_BYTES and not _serial_blocks
                and threading.current_thread() is threading.main_thread())
    if parallel and blas and not _blas():
        parallel = False  # no way to keep BLAS to one thread per slice: let BLAS thread instead
    slices = batch_slices(N, bytes_per_sample, threads if parallel else 1, chunk_bytes)
    if not parallel or len(slices) == 1:
        return [fn(s) for s in slices]
    groups = [slices[round(i * len(slices) / threads) : round((i + 1) * len(slices) / threads)]
              for i in range(threads)]
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=threads - 1, thread_name_prefix="batch_chunks")
        pool = _pool
    run = lambda group: [fn(s) for s in group]  # noqa: E731
    with (_blas().limit(limits=1) if blas else nullcontext()):
        others = [pool.submit(run, group) for group in groups[1:]]
        results = run(groups[0])
        for future in others:
            results += future.result()
    return results


@contextmanager
def serial():
    """Inside the block, everything runs as on one core: every kernel runs its slices on the
    calling thread, one after the other, and BLAS on one thread. `pipeline.fast.replicas` computes
    one part of a batch so, while a worker process computes the other on the second core."""
    global _serial_blocks
    blas = _blas()
    _serial_blocks += 1
    try:
        with (blas.limit(limits=1) if blas else nullcontext()):
            yield
    finally:
        _serial_blocks -= 1


@contextmanager
def slices_not_blas(threads: int | None = None):
    """Inside the block the layers' slices run on ``threads`` threads (default: `get_threads`,
    as many as BLAS would use) and BLAS itself on one thread, everywhere, not only inside the
    slices. The training loop runs in it.

    Why: a BLAS call on two threads leaves OpenBLAS's second thread spinning on a core for a
    while after it returns, where the next layer's slices want to run: P-Net's training step
    ran about 30% faster inside, O-Net's 10-15% (benchmarks/README.md). The numbers computed are the same: the slices
    are those of the same thread count, and a matrix product does not depend on BLAS's threads.
    """
    count = threads if threads is not None else get_threads()
    saved = _threads
    blas = _blas()
    with (blas.limit(limits=1) if blas else nullcontext()):
        set_threads(count)
        try:
            yield
        finally:
            set_threads(saved)


@contextmanager
def slicing(chunk_bytes: int | None = None, threads: int | None = None, min_parallel_bytes: int | None = None):
    """Temporarily change the slice size, the thread count and the threshold for threads.

    The tests use ``slicing(chunk_bytes=1, threads=2, min_parallel_bytes=0)`` to run even tiny
    batches one sample per slice on two threads; try ``slicing(threads=1)`` to see what the
    threads buy.
    """
    global CHUNK_BYTES, MIN_PARALLEL_BYTES
    saved = CHUNK_BYTES, MIN_PARALLEL_BYTES, _threads
    try:
        if chunk_bytes is not None:
            CHUNK_BYTES = chunk_bytes
        if min_parallel_bytes is not None:
            MIN_PARALLEL_BYTES = min_parallel_bytes
        if threads is not None:
            set_threads(threads)
        yield
    finally:
        CHUNK_BYTES, MIN_PARALLEL_BYTES = saved[0], saved[1]
        if threads is not None:
            set_threads(saved[2])
