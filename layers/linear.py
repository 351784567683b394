"""Fully connected (affine) layer: out = x_flat @ w + b.

x: (N, D) or (N, d1, d2, ...) flattened in C order to (N, D) with D = d1*d2*...;
w: (D, M); b: (M,); out: (N, M).
"""

from __future__ import annotations

import numpy as np

from .checks import require_float, require_shape


def linear_forward(x, w, b):
    """Returns out (N, M) in x's dtype and cache (x, w)."""
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
    out = x.reshape(x.shape[0], D) @ w + np.asarray(b, dtype=x.dtype)
    return out, (x, w)


def linear_backward(dout, cache):
    """dout: (N, M). Returns dx (shaped like x), dw (D, M) = x_flat.T @ dout, db (M,)."""
    x, w = cache
    x_flat = x.reshape(x.shape[0], -1)
    dx = (dout @ w.T).reshape(x.shape)
    dw = x_flat.T @ dout
    db = dout.sum(axis=0)
    return dx, dw, db
