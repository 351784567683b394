"""Fully connected (affine) layer: out = x_flat @ w + b.

x: (N, D) or (N, d1, d2, ...) flattened in C order to (N, D) with D = d1*d2*...;
w: (D, M); b: (M,); out: (N, M).
"""

from __future__ import annotations

import numpy as np

from .batch_chunks import map_batch
from .checks import require_float, require_shape

WHOLE_SLICES = 1 << 62  # slices only to share the batch out over threads, not to fit a cache


def linear_forward(x, w, b):
    """Returns out (N, M) in x's dtype and cache (x, w).

    With two or more threads (``batch_chunks``) each takes a part of the batch and multiplies
    it with BLAS held to one thread: out[part] = x_flat[part] @ w.
    """
    x = require_float(x)
    if x.ndim < 2:
        raise ValueError(f"x must have shape (N, D) or (N, ...), got shape {x.shape}")
    w = np.asarray(w)
    if w.ndim != 2:
        raise ValueError(f"w must have shape (D, M), got shape {w.shape}")
    D = int(np.prod(x.shape[1:]))
    if w.shape[0] != D:
        raise ValueError(f"x of shape {x.shape} flattens to D={D} features but w has shape {w.shape}")
    require_shape(np.asarray(b), (w.shape[1],), "b")
    w = w.astype(x.dtype, copy=False)
    b = np.asarray(b, dtype=x.dtype)
    x_flat = x.reshape(x.shape[0], D)
    out = np.empty((x.shape[0], w.shape[1]), dtype=x.dtype)

    def linear_slice(s):
        np.matmul(x_flat[s], w, out=out[s])
        out[s] += b

    map_batch(linear_slice, x.shape[0], x.itemsize * D, WHOLE_SLICES, blas=True)
    return out, (x, w)


def linear_backward(dout, cache):
    """dout: (N, M). Returns dx (shaped like x), dw (D, M) = x_flat.T @ dout, db (M,).

    On threads, each part of the batch computes dx[part] = dout[part] @ w.T and its share
    x_flat[part].T @ dout[part] of dw; the shares are added up.
    """
    x, w = cache
    x_flat = x.reshape(x.shape[0], -1)
    dx = np.empty(x_flat.shape, dtype=dout.dtype)

    def linear_back_slice(s):
        np.matmul(dout[s], w.T, out=dx[s])
        return x_flat[s].T @ dout[s]

    parts = map_batch(linear_back_slice, x.shape[0], x.itemsize * x_flat.shape[1], WHOLE_SLICES, blas=True)
    dw = np.sum(parts, axis=0) if len(parts) > 1 else parts[0]
    db = dout.sum(axis=0)
    return dx.reshape(x.shape), dw, db
