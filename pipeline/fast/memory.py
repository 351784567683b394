"""Speed machinery, not part of any algorithm: keep freed memory in the process while training
and detecting.

Every training step allocates and frees the same large arrays: layer outputs, im2col matrices,
gradients. glibc's malloc (Linux) hands a freed block above its *mmap threshold* straight back
to the operating system, and trims free memory at the top of its heap above its *trim
threshold*. The next step then gets fresh pages, and the first write to each fresh page is a
page fault that the kernel serves by zeroing the page: on R-Net's training step, over a
thousand faults and nearly a tenth of the step's time in the kernel (benchmarks/README.md).

Inside `reuse_freed_memory()`, the mmap threshold is at glibc's maximum (32 MB) and the trim
threshold at 2 GB, so freed blocks stay in the heap for the next step: a few dozen faults per
R-Net step. Arrays above 32 MB (O-Net's first layers at large batches) still come and go as
fresh pages.

glibc normally adapts both thresholds to the blocks a program frees (up to 32 MB and 64 MB),
but any setting switches that off for good. So after the block the thresholds stay where
glibc's own rule would take them on such work (32 MB and 64 MB), and the memory kept free is
returned to the system (``malloc_trim``). Elsewhere (macOS, musl) nothing changes.

Detection runs through `settle_thresholds()`: the same two final values, set before the first
photo. Left to adapt, glibc's thresholds depend on which block it happened to see freed first,
and so did a process's speed: the same detection took about 15% longer in some processes than
in others (benchmarks/README.md).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform
from contextlib import contextmanager

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt parameters, from glibc's malloc.h
MMAP_THRESHOLD_MAX = 32 << 20  # glibc's largest mmap threshold on 64-bit systems
KEEP_FREED = 2**31 - 1  # the largest trim threshold mallopt takes (an int): 2 GB of free heap
AFTER_TRIM_THRESHOLD = 2 * MMAP_THRESHOLD_MAX  # glibc's adaptive rule: twice the mmap threshold

_libc = None  # glibc, loaded on first use (False: not glibc)


def _glibc():
    global _libc
    if _libc is None:
        _libc = False
        if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
            try:
                lib = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
                lib.mallopt.argtypes, lib.malloc_trim.argtypes = [ctypes.c_int, ctypes.c_int], [ctypes.c_size_t]
                _libc = lib
            except (OSError, AttributeError):
                pass
    return _libc


@contextmanager
def reuse_freed_memory():
    """Inside the block, large freed arrays stay in the process for the next ones; after it,
    the thresholds glibc would adapt to on such work, and the kept memory returned (see the
    module doc)."""
    libc = _glibc()
    if not libc:
        yield
        return
    libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX)
    libc.mallopt(M_TRIM_THRESHOLD, KEEP_FREED)
    try:
        yield
    finally:
        libc.mallopt(M_TRIM_THRESHOLD, AFTER_TRIM_THRESHOLD)
        libc.malloc_trim(0)


def settle_thresholds() -> None:
    """Set glibc's mmap and trim thresholds to the values its adaptive rule reaches on large
    arrays (32 MB and 64 MB), so that every process runs with them from the start (see the
    module doc). Nothing is returned to the system and nothing changes off glibc."""
    libc = _glibc()
    if libc:
        libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX)
        libc.mallopt(M_TRIM_THRESHOLD, AFTER_TRIM_THRESHOLD)

