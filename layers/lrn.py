"""Local response normalization across channels, as Caffe's LRN layer (ACROSS_CHANNELS).

x: (N, C, H, W). With half = (size - 1) // 2 and the sum over the channels c' of the window
max(0, c-half) .. min(C-1, c+half):

    scale[n, c, h, w] = k + (alpha / size) * sum_{c'} x[n, c', h, w] ** 2
    out = x * scale ** (-beta)

Backward (differentiate the product and the sum; channel c appears in the window of every
c' within half of it):

    dx[c] = dout[c] * scale[c] ** -beta
            - (2 * alpha * beta / size) * x[c] * sum_{c'} dout[c'] * x[c'] * scale[c'] ** (-beta - 1)

Cascade-CNN's 48-net and 48-calibration net normalize after their pooling layers.
"""

from __future__ import annotations

import numpy as np

from .checks import require_float, require_ndim


def _channel_window_sum(a, size):
    """For (N, C, H, W) a, sum over the channel window of ``size`` centred on each channel."""
    half = (size - 1) // 2
    C = a.shape[1]
    total = np.zeros_like(a)
    reach = min(half, C - 1)  # channels further away than C - 1 do not exist
    for shift in range(-reach, reach + 1):  # at most size iterations, each a whole-array slice add
        lo, hi = max(0, -shift), min(C, C - shift)
        total[:, lo:hi] += a[:, lo + shift : hi + shift]
    return total


def lrn_forward(x, size: int = 5, alpha: float = 1e-4, beta: float = 0.75, k: float = 1.0):
    """x: (N, C, H, W) float; size: odd channel window. Returns out (shape of x) and cache
    (x, scale, size, alpha, beta)."""
    x = require_float(x)
    require_ndim(x, (4,), "x", "(N, C, H, W)")
    if size < 1 or size % 2 == 0:
        raise ValueError(f"LRN size must be a positive odd number, got {size}")
    scale = k + (alpha / size) * _channel_window_sum(x * x, size)
    out = x * scale ** (-beta)
    return out.astype(x.dtype, copy=False), (x, scale, size, alpha, beta)


def lrn_backward(dout, cache):
    """dout: (N, C, H, W). Returns dx (N, C, H, W)."""
    x, scale, size, alpha, beta = cache
    spread = _channel_window_sum(dout * x * scale ** (-beta - 1), size)
    return dout * scale ** (-beta) - (2.0 * alpha * beta / size) * x * spread
