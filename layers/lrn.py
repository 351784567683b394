"""Local response normalization, as Caffe's LRN layer: across channels and within a channel.

Across channels (Caffe's default norm_region ACROSS_CHANNELS), ``lrn_forward``:

x: (N, C, H, W). With half = (size - 1) // 2 and the sum over the channels c' of the window
max(0, c-half) .. min(C-1, c+half):

    scale[n, c, h, w] = k + (alpha / size) * sum_{c'} x[n, c', h, w] ** 2
    out = x * scale ** (-beta)

Backward (differentiate the product and the sum; channel c appears in the window of every
c' within half of it):

    dx[c] = dout[c] * scale[c] ** -beta
            - (2 * alpha * beta / size) * x[c] * sum_{c'} dout[c'] * x[c'] * scale[c'] ** (-beta - 1)

Within a channel (Caffe's norm_region WITHIN_CHANNEL), ``lrn_within_forward``: the sum runs
over a size x size *spatial* window of the same channel instead, with zero padding of
half = (size - 1) // 2 pixels on each side, and alpha is divided by the window's area:

    scale[n, c, h, w] = k + (alpha / size**2) * sum_{|p|, |q| <= half} x[n, c, h+p, w+q] ** 2
    out = x * scale ** (-beta)

(Caffe computes exactly this as square -> average pooling size x size, stride 1, pad half,
which divides by size**2 also at the borders -> power (1 + alpha * avg) ** -beta, so k = 1.)

Backward. out[h, w] depends on x[h', w'] directly when (h', w') = (h, w), and through
scale[h, w] whenever (h', w') lies in the window around (h, w):

    d out[h, w] / d x[h', w'] = [h', w' = h, w] * scale[h, w] ** -beta
        - beta * x[h, w] * scale[h, w] ** (-beta - 1) * (alpha / size**2) * 2 * x[h', w']

Summing dout[h, w] times this over every (h, w), and using that the window is symmetric
((h', w') is in the window of (h, w) exactly when (h, w) is in the window of (h', w')):

    dx = dout * scale ** -beta
         - (2 * alpha * beta / size**2) * x * boxsum(dout * x * scale ** (-beta - 1))

where boxsum is the same zero-padded size x size window sum as in the forward pass. It is the
across-channel formula with the channel window replaced by the spatial one.

Cascade-CNN's 48-net and 48-calibration net normalize within channels over a 9 x 9 region
(Li et al., "A Convolutional Neural Network Cascade for Face Detection", CVPR 2015).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from .checks import require_float, require_ndim


def _window_sum(a, size, axis):
    """Sum of a over the window of ``size`` entries centred on each index along ``axis``;
    entries beyond the ends count as 0. Returns an array shaped like a.

    A window sum along an axis of length L is a multiply by the (L, L) band of ones
    `ones_band`: out[i] = sum_j band[i, j] * a[j], band[i, j] = 1 where |i - j| <= half. One
    matrix multiply reads the array once, where adding ``size`` shifted slices went over it
    ``size`` times, in short rows: on the 48-net's maps about 8x faster (benchmarks/README.md).
    The sums run in another order than
    one after the other, so the result differs by float rounding; the naive LRN below is the
    definition the tests compare against.
    """
    band = ones_band(a.shape[axis], size, a.dtype)  # symmetric, so a @ band sums along the last axis
    if axis in (-1, a.ndim - 1):
        return a @ band
    return np.moveaxis(band @ np.moveaxis(a, axis, -2), -2, axis)


@lru_cache(maxsize=64)
def _cached_band(length: int, half: int, dtype_str: str) -> np.ndarray:
    index = np.arange(length)
    band = (np.abs(index[:, None] - index[None, :]) <= half).astype(np.dtype(dtype_str))
    band.flags.writeable = False  # shared between callers through the cache
    return band


def ones_band(length: int, size: int, dtype=np.float32) -> np.ndarray:
    """The (length, length) matrix of a centred window sum of ``size`` (odd) entries: 1 where
    |i - j| <= (size - 1) // 2, else 0; read-only (cached). ``v @ ones_band(len(v), size)``
    sums v over each index's window, the entries beyond the ends counting as 0."""
    return _cached_band(int(length), (int(size) - 1) // 2, np.dtype(dtype).str)


def _channel_window_sum(a, size):
    """For (N, C, H, W) a, sum over the channel window of ``size`` centred on each channel."""
    return _window_sum(a, size, axis=1)


def _spatial_window_sum(a, size):
    """For (N, C, H, W) a, sum over the size x size window centred on each pixel, zero padded.
    The box is separable: a window sum along H, then one along W."""
    return _window_sum(_window_sum(a, size, axis=2), size, axis=3)


def _check_lrn_args(x, size):
    x = require_float(x)
    require_ndim(x, (4,), "x", "(N, C, H, W)")
    if size < 1 or size % 2 == 0:
        raise ValueError(f"LRN size must be a positive odd number, got {size}")
    return x


def lrn_forward(x, size: int = 5, alpha: float = 1e-4, beta: float = 0.75, k: float = 1.0):
    """x: (N, C, H, W) float; size: odd channel window. Returns out (shape of x) and cache
    (x, scale, size, alpha, beta)."""
    x = _check_lrn_args(x, size)
    scale = k + (alpha / size) * _channel_window_sum(x * x, size)
    out = x * scale ** (-beta)
    return out.astype(x.dtype, copy=False), (x, scale, size, alpha, beta)


def lrn_backward(dout, cache):
    """dout: (N, C, H, W). Returns dx (N, C, H, W)."""
    x, scale, size, alpha, beta = cache
    spread = _channel_window_sum(dout * x * scale ** (-beta - 1), size)
    return dout * scale ** (-beta) - (2.0 * alpha * beta / size) * x * spread


def lrn_within_forward(x, size: int = 9, alpha: float = 1e-4, beta: float = 0.75, k: float = 1.0):
    """Within-channel LRN. x: (N, C, H, W) float; size: odd side of the square window (9, the
    9 x 9 region of Cascade-CNN, by default). Returns out (shape and dtype of x) and cache
    (x, scale, size, alpha, beta), scale (N, C, H, W) being the normalizer before ** -beta."""
    x = _check_lrn_args(x, size)
    scale = k + (alpha / size**2) * _spatial_window_sum(x * x, size)
    out = x * scale ** (-beta)
    return out.astype(x.dtype, copy=False), (x, scale, size, alpha, beta)


def lrn_within_backward(dout, cache):
    """dout: (N, C, H, W). Returns dx (N, C, H, W) by the box-sum formula in the module docstring."""
    x, scale, size, alpha, beta = cache
    spread = _spatial_window_sum(dout * x * scale ** (-beta - 1), size)
    return dout * scale ** (-beta) - (2.0 * alpha * beta / size**2) * x * spread


def lrn_within_forward_naive(x, size: int = 9, alpha: float = 1e-4, beta: float = 0.75, k: float = 1.0):
    """Reference within-channel LRN with plain loops over every pixel. Same result and same
    cache (x, scale, size, alpha, beta) as ``lrn_within_forward``."""
    x = _check_lrn_args(x, size)
    N, C, H, W = x.shape
    half = (size - 1) // 2
    scale = np.zeros(x.shape, dtype=x.dtype)
    out = np.zeros(x.shape, dtype=x.dtype)
    for n in range(N):
        for c in range(C):
            for h in range(H):
                for w in range(W):
                    # the window clipped to the image: the zero padding adds nothing to the sum
                    window = x[n, c, max(0, h - half) : h + half + 1, max(0, w - half) : w + half + 1]
                    scale[n, c, h, w] = k + (alpha / size**2) * np.sum(window**2)
                    out[n, c, h, w] = x[n, c, h, w] * scale[n, c, h, w] ** (-beta)
    return out, (x, scale, size, alpha, beta)


def lrn_within_backward_naive(dout, cache):
    """Reference backward with plain loops: the chain rule term by term, without the symmetry
    of the window that the fast version relies on. dout (N, C, H, W) -> dx (N, C, H, W)."""
    x, scale, size, alpha, beta = cache
    N, C, H, W = x.shape
    half = (size - 1) // 2
    dx = np.zeros(x.shape, dtype=dout.dtype)
    for n in range(N):
        for c in range(C):
            for h in range(H):
                for w in range(W):
                    g = dout[n, c, h, w]
                    dx[n, c, h, w] += g * scale[n, c, h, w] ** (-beta)  # the direct path
                    # the path through scale[h, w], which every pixel of the window feeds
                    through_scale = g * x[n, c, h, w] * (-beta) * scale[n, c, h, w] ** (-beta - 1) * (alpha / size**2)
                    rows = slice(max(0, h - half), h + half + 1)
                    cols = slice(max(0, w - half), w + half + 1)
                    dx[n, c, rows, cols] += through_scale * 2 * x[n, c, rows, cols]
    return dx
