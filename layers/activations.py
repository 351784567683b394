"""Elementwise activations: ReLU and PReLU (one learned slope per channel).

    relu(x)  = max(x, 0)
    prelu(x) = x           where x > 0
               alpha[c] * x where x <= 0,   c = index on axis 1

PReLU works on (N, C) (after a fully connected layer) and (N, C, H, W) (after a conv);
alpha always has shape (C,).
"""

from __future__ import annotations

import numpy as np

from .batch_chunks import map_batch
from .checks import require_float, require_ndim, require_shape


def relu_forward(x):
    """x: any shape, float. Returns out = max(x, 0) (same shape and dtype) and cache x."""
    x = require_float(x)
    return np.maximum(x, 0), x


def relu_backward(dout, cache):
    """dout: shaped like x. Returns dx = dout where x > 0, else 0.

    Computed as dout * (x > 0) on cache-sized slices of the batch (``batch_chunks``): a
    comparison and a multiply, both fast contiguous passes (``np.where`` with a scalar 0 is
    several times slower).
    """
    x = cache
    dout = np.asarray(dout)
    if x.ndim == 0 or x.size == 0:
        return np.where(x > 0, dout, 0).astype(dout.dtype, copy=False)
    dx = np.empty(x.shape, dtype=dout.dtype)

    def relu_slice(s):
        np.multiply(dout[s], x[s] > 0, out=dx[s])

    map_batch(relu_slice, x.shape[0], 3 * dx[:1].nbytes)
    return dx


def _channel_shape(x):
    """Shape that broadcasts a (C,) vector along axis 1 of x: (1, C) or (1, C, 1, 1)."""
    return (1, x.shape[1]) + (1,) * (x.ndim - 2)


def _check_prelu_args(x, alpha):
    x = require_float(x)
    require_ndim(x, (2, 4), "x", "(N, C) or (N, C, H, W)")
    alpha = np.asarray(alpha)
    require_shape(alpha, (x.shape[1],), "alpha")
    return x, alpha


def prelu_forward(x, alpha):
    """x: (N, C) or (N, C, H, W) float; alpha: (C,) slopes for x <= 0.

    Returns out (shape and dtype of x, C-contiguous) and cache (x, alpha).

    prelu(x) = x + (alpha - 1) * min(x, 0): x where x > 0, alpha * x where x <= 0. Three
    in-place passes (several times faster than np.where with a broadcast alpha), run on
    cache-sized slices of the batch so that only the first reads x from main memory.
    """
    x, alpha = _check_prelu_args(x, alpha)
    a_minus_1 = alpha.astype(x.dtype, copy=False).reshape(_channel_shape(x)) - 1
    out = np.empty(x.shape, dtype=x.dtype)

    def prelu_slice(s):
        o = out[s]
        np.minimum(x[s], 0, out=o)
        o *= a_minus_1
        o += x[s]

    map_batch(prelu_slice, x.shape[0], 2 * out[:1].nbytes)
    return out, (x, alpha)


def prelu_backward(dout, cache):
    """Returns dx (shape of x) and dalpha (C,).

    d out / d x = 1 where x > 0, alpha[c] otherwise; d out / d alpha[c] = x where x <= 0,
    summed over every position of channel c. As in the forward pass, with no np.where: with
    masked = dout * (x <= 0), dx = dout + (alpha - 1) * masked, and dalpha = the sum of
    masked * x per channel (one einsum pass, no temporary), each slice of the batch adding its
    partial (C,) sum.
    """
    x, alpha = cache
    dout = np.asarray(dout)
    a_minus_1 = alpha.astype(dout.dtype, copy=False).reshape(_channel_shape(x)) - 1
    dx = np.empty(x.shape, dtype=dout.dtype)
    C = x.shape[1]

    def prelu_back_slice(s):
        d, xs, dxs = dout[s], x[s], dx[s]
        np.multiply(d, xs <= 0, out=dxs)  # masked: dout where x <= 0, else 0
        n = dxs.shape[0]
        dalpha_part = np.einsum("ncp,ncp->c", dxs.reshape(n, C, -1), xs.reshape(n, C, -1))
        dxs *= a_minus_1
        dxs += d
        return dalpha_part

    parts = map_batch(prelu_back_slice, x.shape[0], 4 * dx[:1].nbytes)
    dalpha = np.sum(parts, axis=0).astype(alpha.dtype, copy=False)
    return dx, dalpha


def prelu_forward_naive(x, alpha):
    """Reference PReLU: the formula as written, np.where on the whole array. Same result as
    ``prelu_forward`` (to rounding); cache (x, alpha)."""
    x, alpha = _check_prelu_args(x, alpha)
    a = alpha.astype(x.dtype, copy=False).reshape(_channel_shape(x))
    return np.where(x > 0, x, a * x), (x, alpha)


def prelu_backward_naive(dout, cache):
    """Reference backward: dx = where(x > 0, dout, alpha * dout), dalpha = sum of
    where(x > 0, 0, dout * x) over every axis but the channel's."""
    x, alpha = cache
    a = alpha.astype(dout.dtype, copy=False).reshape(_channel_shape(x))
    positive = x > 0
    dx = np.where(positive, dout, a * dout)
    other_axes = (0,) + tuple(range(2, x.ndim))
    dalpha = np.where(positive, 0, dout * x).sum(axis=other_axes).astype(alpha.dtype, copy=False)
    return dx, dalpha
