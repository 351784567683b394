"""Softmax over axis 1 (the class axis), numerically stable.

x: (N, K) or (N, K, H, W) (a per-pixel softmax, as P-Net's face map).
out[n, k] = exp(x[n, k] - max_k x[n, :]) / sum_j exp(x[n, j] - max_k x[n, :])
Subtracting the row maximum changes nothing mathematically and keeps exp() from overflowing.
"""

from __future__ import annotations

import numpy as np

from .checks import require_float


def softmax(x):
    """Plain function: softmax of x over axis 1, same shape and dtype."""
    x = require_float(x)
    if x.ndim < 2:
        raise ValueError(f"x must have shape (N, K) or (N, K, H, W), got shape {x.shape}")
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def softmax_forward(x):
    """Returns out = softmax(x) (shape of x) and cache out."""
    out = softmax(x)
    return out, out


def softmax_backward(dout, cache):
    """Vector form of the softmax Jacobian: dx = y * (dout - sum_k dout * y)."""
    y = cache
    return y * (dout - (dout * y).sum(axis=1, keepdims=True))
