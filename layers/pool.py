"""Max pooling, in PyTorch's floor mode and Caffe's ceil mode, with hand-written backward.

Shapes: x (N, C, H, W) -> out (N, C, OH, OW), OH = conv_output_size(H, size, stride,
ceil=ceil_mode), likewise OW.

    out[n, c, i, j] = max over the window x[n, c, i*stride : i*stride+size, j*stride : j*stride+size]

In ceil mode the last window may hang over the bottom/right edge; it pools only the pixels
inside. Backward routes each dout to the position that
won its window (the first maximum in row-major window order when there is a tie), and
*adds* where overlapping windows (stride < size) pick the same pixel.
"""

from __future__ import annotations

import numpy as np

from .checks import require_float, require_ndim
from .shapes import conv_output_size


def _pool_geometry(x, size, stride, ceil_mode):
    x = require_float(x, "x")
    require_ndim(x, (4,), "x", "(N, C, H, W)")
    H, W = x.shape[2:]
    OH = conv_output_size(H, size, stride, ceil=ceil_mode)
    OW = conv_output_size(W, size, stride, ceil=ceil_mode)
    return x, OH, OW


def _offset_windows(x, p, q, stride, OH, OW):
    """For window offset (p, q): how many windows (rows, cols) have that offset inside x, and
    the view of x holding it for each of them.

    In ceil mode the last window may hang over the edge, so an offset near the window's end
    can be missing from it; windows are never missing an offset at the start, so offset
    (0, 0) always covers all OH x OW windows.
    """
    H, W = x.shape[2:]
    rows = min(OH, -(-(H - p) // stride))  # windows i with i*stride + p < H
    cols = min(OW, -(-(W - q) // stride))
    view = x[:, :, p : p + stride * (rows - 1) + 1 : stride, q : q + stride * (cols - 1) + 1 : stride]
    return rows, cols, view


def maxpool_forward(x, size: int = 2, stride: int = 2, ceil_mode: bool = False):
    """Fast max pooling: the running maximum over the size*size strided slices of x.

    x: (N, C, H, W) float. Returns out (N, C, OH, OW) in x's dtype and cache
    (x, out, size, stride).
    """
    x, OH, OW = _pool_geometry(x, size, stride, ceil_mode)
    # order='K' keeps x's memory layout (a conv output may be laid out as (C, N, H, W)),
    # so the running maximum below reads and writes memory in the same order
    out = _offset_windows(x, 0, 0, stride, OH, OW)[2].copy(order="K")
    for p in range(size):
        for q in range(size):
            rows, cols, view = _offset_windows(x, p, q, stride, OH, OW)
            if rows > 0 and cols > 0:
                part = out[:, :, :rows, :cols]
                np.maximum(part, view, out=part)
    return out, (x, out, size, stride)


def maxpool_backward(dout, cache):
    """Backward of ``maxpool_forward``: dout (N, C, OH, OW) -> dx (N, C, H, W).

    Scans the window offsets in row-major order; the first offset holding a window's maximum
    takes that window's gradient (``unclaimed`` stops a tie from taking it twice). Overlapping
    windows that pick the same pixel add up.
    """
    x, out, size, stride = cache
    OH, OW = out.shape[2:]
    dx = np.zeros(x.shape, dtype=dout.dtype)
    unclaimed = np.ones(out.shape, dtype=bool)
    for p in range(size):
        for q in range(size):
            rows, cols, view = _offset_windows(x, p, q, stride, OH, OW)
            if rows <= 0 or cols <= 0:
                continue
            free = unclaimed[:, :, :rows, :cols]
            wins = free & (view == out[:, :, :rows, :cols])
            _offset_windows(dx, p, q, stride, OH, OW)[2][...] += np.where(wins, dout[:, :, :rows, :cols], 0)
            free &= ~wins
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
