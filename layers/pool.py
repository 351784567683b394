"""Max pooling, in PyTorch's floor mode and Caffe's ceil mode, with hand-written backward.

Shapes: x (N, C, H, W) -> out (N, C, OH, OW), OH = conv_output_size(H, size, stride,
ceil=ceil_mode), likewise OW.

    out[n, c, i, j] = max over the window x[n, c, i*stride : i*stride+size, j*stride : j*stride+size]

In ceil mode the last window may hang over the bottom/right edge; it pools only the pixels
inside (we pad with -inf, which never wins). Backward routes each dout to the position that
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


def _pad_to_windows(x, size, stride, OH, OW):
    """Pad bottom/right with -inf so the (possibly overhanging) last windows are complete."""
    H, W = x.shape[2:]
    extra_h = max(0, (OH - 1) * stride + size - H)
    extra_w = max(0, (OW - 1) * stride + size - W)
    if extra_h == 0 and extra_w == 0:
        return x
    N, C = x.shape[:2]
    xp = np.full((N, C, H + extra_h, W + extra_w), -np.inf, dtype=x.dtype)
    xp[:, :, :H, :W] = x
    return xp


def _offset_slice(xp, p, q, stride, OH, OW):
    """View of xp holding, for every window (i, j), the element at window offset (p, q)."""
    return xp[:, :, p : p + stride * (OH - 1) + 1 : stride, q : q + stride * (OW - 1) + 1 : stride]


def maxpool_forward(x, size: int = 2, stride: int = 2, ceil_mode: bool = False):
    """Fast max pooling: the running maximum over the size*size strided slices of x.

    x: (N, C, H, W) float. Returns out (N, C, OH, OW) in x's dtype and cache
    (xp, x_shape, out, size, stride), xp being x padded with -inf in ceil mode.
    """
    x, OH, OW = _pool_geometry(x, size, stride, ceil_mode)
    xp = _pad_to_windows(x, size, stride, OH, OW)
    out = _offset_slice(xp, 0, 0, stride, OH, OW).copy()
    for p in range(size):
        for q in range(size):
            np.maximum(out, _offset_slice(xp, p, q, stride, OH, OW), out=out)
    return out, (xp, x.shape, out, size, stride)


def maxpool_backward(dout, cache):
    """Backward of ``maxpool_forward``: dout (N, C, OH, OW) -> dx (N, C, H, W).

    Scans the window offsets in row-major order; the first offset holding a window's maximum
    takes that window's gradient (``unclaimed`` stops a tie from taking it twice).
    """
    xp, x_shape, out, size, stride = cache
    OH, OW = out.shape[2:]
    dxp = np.zeros(xp.shape, dtype=dout.dtype)
    unclaimed = np.ones(out.shape, dtype=bool)
    for p in range(size):
        for q in range(size):
            wins = unclaimed & (_offset_slice(xp, p, q, stride, OH, OW) == out)
            _offset_slice(dxp, p, q, stride, OH, OW)[...] += np.where(wins, dout, 0)
            unclaimed &= ~wins
    H, W = x_shape[2:]
    return dxp[:, :, :H, :W]


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
