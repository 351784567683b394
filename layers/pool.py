"""Max pooling, in PyTorch's floor mode and Caffe's ceil mode, with hand-written backward.

Shapes: x (N, C, H, W) -> out (N, C, OH, OW), OH = conv_output_size(H, size, stride,
ceil=ceil_mode), likewise OW.

    out[n, c, i, j] = max over the window x[n, c, i*stride : i*stride+size, j*stride : j*stride+size]

In ceil mode the last window may hang over the bottom/right edge; it pools only the pixels
inside. Backward routes each dout to the position that
won its window (the first maximum in row-major window order when there is a tie), and
*adds* where overlapping windows (stride < size) pick the same pixel.

Two versions live side by side:

* ``maxpool_forward_naive`` / ``maxpool_backward_naive``: loops over windows, storing the
  (row, col) of each window's first maximum. The oracle for the tests.
* ``maxpool_forward`` / ``maxpool_backward``: the window offsets as contiguous slices of the
  stride x stride "phases" of x (see ``maxpool_forward``), storing each window's winning
  offset as one int8; run on cache-sized slices of the batch (``batch_chunks``).
"""

from __future__ import annotations

import numpy as np

from . import batch_chunks
from .batch_chunks import map_batch
from .checks import require_float, require_ndim
from .shapes import conv_output_size


# Pooling slices are this many times larger than the other elementwise kernels' (CHUNK_BYTES).
# A slice costs about 40 NumPy calls whatever its size; with one sample per slice, two threads
# spent their time queueing for the GIL; 4x larger slices cut O-Net's pool1 by about 30%
# (benchmarks/README.md).
POOL_SLICE_FACTOR = 4


def _slice_bytes() -> int:
    return POOL_SLICE_FACTOR * batch_chunks.CHUNK_BYTES


def _pool_geometry(x, size, stride, ceil_mode):
    x = require_float(x, "x")
    require_ndim(x, (4,), "x", "(N, C, H, W)")
    H, W = x.shape[2:]
    OH = conv_output_size(H, size, stride, ceil=ceil_mode)
    OW = conv_output_size(W, size, stride, ceil=ceil_mode)
    return x, OH, OW


def _phase_geometry(size, stride, OH, OW):
    """Sizes of the phase layout used by the fast kernels (see ``maxpool_forward``).

    Returns (phases, Hs, Ws, shifts): ``phases`` = min(stride, size) phases per axis; each phase
    holds Hs x Ws = (OH + e) x (OW + e) pixels with e = (size - 1) // stride (enough for every
    window offset); ``shifts[k]`` for window offset k = p*size + q (row-major) is
    (phase row p % stride, phase col q % stride, flat shift (p // stride) * Ws + q // stride).
    """
    e = (size - 1) // stride
    Hs, Ws = OH + e, OW + e
    shifts = [(p % stride, q % stride, (p // stride) * Ws + q // stride) for p in range(size) for q in range(size)]
    return min(stride, size), Hs, Ws, shifts


def _phase_views(a, stride, phases, Hs, Ws):
    """For each phase (a, b): the strided view a[:, :, a::stride, b::stride] cut to Hs x Ws."""
    return {(pa, pb): a[:, :, pa : pa + stride * Hs : stride, pb : pb + stride * Ws : stride]
            for pa in range(phases) for pb in range(phases)}


def maxpool_forward(x, size: int = 2, stride: int = 2, ceil_mode: bool = False, record_argmax: bool = True):
    """Fast max pooling: phase split, then one contiguous running maximum per window offset.

    x: (N, C, H, W) float. Returns out (N, C, OH, OW) (C-contiguous, x's dtype) and cache
    (x.shape, argmax, size, stride, OH, OW), where argmax (N, C, OH + e, OW + e) int8 holds, for
    each window, the row-major offset p*size + q of its first maximum (e = (size-1)//stride;
    the extra row and column are scratch). record_argmax=False (inference: no backward will
    follow) skips that bookkeeping, three of the four passes per offset, and caches None.

    The trick. Window (i, j) at offset (p, q) reads x[i*stride + p, j*stride + q]. Split x into
    stride x stride *phases*, phase (a, b)[i, j] = x[i*stride + a, j*stride + b], each of
    shape (Hs, Ws) = (OH + e, OW + e) and padded with -inf where the last (ceil-mode) windows
    hang over the edge. Offset (p, q) is then phase (p % stride, q % stride) shifted by
    (p // stride, q // stride) -- and in the *flattened* phase (N*C*Hs*Ws,) that shift is one
    number, (p // stride) * Ws + q // stride. So each offset is a contiguous slice of a flat
    array, and the running maximum over the size*size offsets is size*size contiguous, SIMD
    ``np.maximum`` calls instead of strided ones. Positions with i >= OH or j >= OW wrap into
    the next row or plane: they are garbage and cropped at the end.

    The first maximum. A strict ``>`` lets an earlier offset keep a tie, so the running maximum
    only changes where a later offset is strictly larger; the last such offset (the largest k,
    kept with ``np.maximum(argmax, k * greater)``) is where the final maximum first appears in
    row-major window order.

    The work runs on slices of the batch (``batch_chunks.map_batch``) that fit in the cache.
    """
    x, OH, OW = _pool_geometry(x, size, stride, ceil_mode)
    N, C = x.shape[:2]
    phases, Hs, Ws, shifts = _phase_geometry(size, stride, OH, OW)
    out = np.empty((N, C, OH, OW), dtype=x.dtype)
    argmax = np.empty((N, C, Hs, Ws), dtype=np.int8 if size * size <= 127 else np.int16) if record_argmax else None
    # -inf under a ceil-mode window's part beyond the edge. Without one (floor mode, or sizes
    # that fit), only the cropped positions read the cells no phase copy fills: skip the fill.
    overhang = (OH - 1) * stride + size > x.shape[2] or (OW - 1) * stride + size > x.shape[3]

    def pool_slice(s):
        Ns = len(range(*s.indices(N)))
        shape = (phases, phases, Ns, C, Hs, Ws)
        ph = np.full(shape, -np.inf, dtype=x.dtype) if overhang else np.empty(shape, dtype=x.dtype)
        for (pa, pb), src in _phase_views(x[s], stride, phases, Hs, Ws).items():
            ph[pa, pb, :, :, : src.shape[2], : src.shape[3]] = src
        flat = ph.reshape(phases, phases, -1)
        L = flat.shape[2] - shifts[-1][2]  # flat positions for which every shifted slice fits
        best = flat[0, 0, :L].copy()
        if argmax is None:
            for pa, pb, shift in shifts[1:]:
                np.maximum(best, flat[pa, pb, shift : shift + L], out=best)
        else:
            _running_max_and_argmax(flat, shifts, L, best, argmax[s].reshape(-1))
        full = ph[0, 0].reshape(-1)  # reuse phase (0, 0) as the (Ns, C, Hs, Ws) result buffer
        full[:L] = best
        out[s] = ph[0, 0, :, :, :OH, :OW]

    map_batch(pool_slice, N, 2 * x[:1].nbytes + 4 * out[:1].nbytes, _slice_bytes())
    return out, (x.shape, argmax, size, stride, OH, OW)


def _running_max_and_argmax(flat, shifts, L, best, arg):
    """The running maximum over the window offsets (into best, (L,)) and, in arg, the offset k
    of each window's first maximum (see `maxpool_forward`)."""
    arg[L:] = 0
    arg = arg[:L]
    arg[...] = 0
    greater = np.empty(L, dtype=bool)
    k_where_greater = np.empty(L, dtype=arg.dtype)
    for k, (pa, pb, shift) in enumerate(shifts[1:], start=1):
        view = flat[pa, pb, shift : shift + L]
        np.greater(view, best, out=greater)
        np.maximum(best, view, out=best)
        np.multiply(greater, arg.dtype.type(k), out=k_where_greater)
        np.maximum(arg, k_where_greater, out=arg)


def maxpool_backward(dout, cache):
    """Backward of ``maxpool_forward``: dout (N, C, OH, OW) -> dx (N, C, H, W).

    Each window sends its dout to the offset stored in argmax. In the phase layout of the
    forward pass that is, for each offset k, one contiguous multiply-add:
    dphase[flat slice shifted for k] += dout_full * (argmax == k), where dout_full is dout
    spread to the (Hs, Ws) layout with zeros in the scratch positions. Windows that overlap
    (stride < size) and pick the same pixel add up, as they must. Last, each phase is written
    back to its strided positions in dx (one pass over dx).
    """
    x_shape, argmax, size, stride, OH, OW = cache
    if argmax is None:
        raise ValueError("maxpool_backward: this cache comes from maxpool_forward(record_argmax=False), "
                         "which keeps no winners to send the gradient to")
    N, C = x_shape[:2]
    phases, Hs, Ws, shifts = _phase_geometry(size, stride, OH, OW)
    dx = np.zeros(x_shape, dtype=dout.dtype)

    def unpool_slice(s):
        Ns = len(range(*s.indices(N)))
        dout_full = np.zeros((Ns, C, Hs, Ws), dtype=dout.dtype)
        dout_full[:, :, :OH, :OW] = dout[s]
        dphase = np.zeros((phases, phases, Ns * C * Hs * Ws), dtype=dout.dtype)
        L = dphase.shape[2] - shifts[-1][2]
        d, arg = dout_full.reshape(-1)[:L], argmax[s].reshape(-1)[:L]
        wins = np.empty(L, dtype=bool)
        share = np.empty(L, dtype=dout.dtype)
        for k, (pa, pb, shift) in enumerate(shifts):
            np.equal(arg, k, out=wins)
            np.multiply(d, wins, out=share)
            target = dphase[pa, pb, shift : shift + L]
            target += share
        dphase = dphase.reshape(phases, phases, Ns, C, Hs, Ws)
        for (pa, pb), dst in _phase_views(dx[s], stride, phases, Hs, Ws).items():
            dst[...] = dphase[pa, pb, :, :, : dst.shape[2], : dst.shape[3]]

    map_batch(unpool_slice, N, 2 * dx[:1].nbytes + 4 * dout[:1].nbytes, _slice_bytes())
    return dx


def maxpool_forward_naive(x, size: int = 2, stride: int = 2, ceil_mode: bool = False):
    """Reference max pooling with plain loops. Same result as ``maxpool_forward``.

    Returns out (N, C, OH, OW) and cache (x, argmax, size, stride), where argmax (N, C, OH, OW, 2)
    holds the (row, col) in x of each window's first maximum.
    """
    x, OH, OW = _pool_geometry(x, size, stride, ceil_mode)
    N, C, H, W = x.shape
    out = np.zeros((N, C, OH, OW), dtype=x.dtype)
    argmax = np.zeros((N, C, OH, OW, 2), dtype=np.int64)
    for n in range(N):
        for c in range(C):
            for i in range(OH):
                for j in range(OW):
                    r0, c0 = i * stride, j * stride
                    window = x[n, c, r0 : min(r0 + size, H), c0 : min(c0 + size, W)]  # clipped at the edge
                    k = np.argmax(window)
                    dr, dc = divmod(k, window.shape[1])
                    out[n, c, i, j] = window[dr, dc]
                    argmax[n, c, i, j] = (r0 + dr, c0 + dc)
    return out, (x, argmax, size, stride)


def maxpool_backward_naive(dout, cache):
    """Reference backward with plain loops: dout (N, C, OH, OW) -> dx (N, C, H, W)."""
    x, argmax, size, stride = cache
    dx = np.zeros(x.shape, dtype=dout.dtype)
    N, C, OH, OW = dout.shape
    for n in range(N):
        for c in range(C):
            for i in range(OH):
                for j in range(OW):
                    r, col = argmax[n, c, i, j]
                    dx[n, c, r, col] += dout[n, c, i, j]
    return dx
