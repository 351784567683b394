"""Inverted dropout: zero each unit with probability p while training, and scale the
survivors by 1/(1-p) so that the expected activation is the same at test time, where
dropout does nothing.
"""

from __future__ import annotations

import numpy as np

from .checks import require_float


def dropout_forward(x, p: float, training: bool, rng: np.random.Generator | None = None):
    """x: any shape, float; p in [0, 1): drop probability; rng: np.random.Generator
    (required when training and p > 0, so that runs are reproducible).

    Returns out (shape and dtype of x) and cache mask (None when nothing was dropped).
    """
    x = require_float(x)
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout probability p must be in [0, 1), got {p}")
    if not training or p == 0.0:
        return x, None
    if rng is None:
        raise ValueError("dropout needs an rng (np.random.default_rng(seed)) when training")
    mask = (rng.random(x.shape) >= p).astype(x.dtype) / x.dtype.type(1.0 - p)
    return x * mask, mask


def dropout_backward(dout, cache):
    """dout: shaped like x. Returns dx = dout * mask (the same units dropped and scaled)."""
    mask = cache
    return dout if mask is None else dout * mask
