"""2-D convolution (cross-correlation, as in Caffe and PyTorch) with hand-written backward.

Shapes: x (N, C, H, W), w (F, C, KH, KW), b (F,), out (N, F, OH, OW) with
OH = (H + 2*pad - KH) // stride + 1 and OW likewise (see ``conv_output_size``).

    out[n, f, i, j] = b[f] + sum_{c, p, q} w[f, c, p, q] * xpad[n, c, i*stride + p, j*stride + q]

Two versions live side by side:

* ``conv_forward_naive`` / ``conv_backward_naive``: the formula above as plain loops. Slow,
  obviously right, the oracle for the tests and the first thing the tutorial shows.
* ``conv_forward`` / ``conv_backward``: im2col. A read-only strided *view* lists every
  KH x KW window without copying; one reshape copies them into a matrix ``cols`` of shape
  (C*KH*KW, N*OH*OW); the whole convolution is then one matrix multiply
  ``w.reshape(F, -1) @ cols``. The backward pass is two more matrix multiplies plus
  "col2im", which adds each kernel offset's strided slice back into dx (KH*KW slice
  additions, never a loop over pixels).
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .checks import require_float, require_ndim, require_shape
from .shapes import conv_output_size


def _check_conv_args(x, w, b, stride, pad):
    x = require_float(x, "x")
    require_ndim(x, (4,), "x", "(N, C, H, W)")
    w = np.asarray(w)
    require_ndim(w, (4,), "w", "(F, C, KH, KW)")
    F, C, KH, KW = w.shape
    if x.shape[1] != C:
        raise ValueError(f"channel mismatch: x has shape {x.shape} (C={x.shape[1]}) but w has shape {w.shape} (C={C})")
    b = np.asarray(b)
    require_shape(b, (F,), "b")
    OH = conv_output_size(x.shape[2], KH, stride, pad)
    OW = conv_output_size(x.shape[3], KW, stride, pad)
    return x, w.astype(x.dtype, copy=False), b.astype(x.dtype, copy=False), OH, OW


def _pad(x: np.ndarray, pad: int) -> np.ndarray:
    """Zero-pad the two spatial axes of (N, C, H, W) by ``pad`` on each side."""
    if pad == 0:
        return x
    return np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))


def window_view(xp: np.ndarray, KH: int, KW: int, stride: int, OH: int, OW: int) -> np.ndarray:
    """Read-only view (N, C, OH, OW, KH, KW) of every window of the padded input xp (N, C, Hp, Wp).

    No data is copied: element [n, c, i, j, p, q] is xp[n, c, i*stride + p, j*stride + q].
    """
    windows = sliding_window_view(xp, (KH, KW), axis=(2, 3))  # (N, C, Hp-KH+1, Wp-KW+1, KH, KW)
    return windows[:, :, : (OH - 1) * stride + 1 : stride, : (OW - 1) * stride + 1 : stride]


def im2col(x: np.ndarray, KH: int, KW: int, stride: int = 1, pad: int = 0) -> np.ndarray:
    """Copy every KH x KW window of x (N, C, H, W) into a column: returns (C*KH*KW, N*OH*OW).

    Row index is c*KH*KW + p*KW + q (the order of ``w.reshape(F, -1)``), column index is
    n*OH*OW + i*OW + j. The copy reads along OW, the contiguous axis of x, which keeps it fast.
    """
    N, C, H, W = x.shape
    OH = conv_output_size(H, KH, stride, pad)
    OW = conv_output_size(W, KW, stride, pad)
    windows = window_view(_pad(x, pad), KH, KW, stride, OH, OW)
    return windows.transpose(1, 4, 5, 0, 2, 3).reshape(C * KH * KW, N * OH * OW)


def col2im(dcols: np.ndarray, x_shape, KH: int, KW: int, stride: int = 1, pad: int = 0) -> np.ndarray:
    """Adjoint of ``im2col``: add the columns (C*KH*KW, N*OH*OW) back into an array of x_shape.

    Windows overlap when stride < kernel, so values are *added*, one strided slice per kernel
    offset (KH*KW numpy additions in all).
    """
    N, C, H, W = x_shape
    OH = conv_output_size(H, KH, stride, pad)
    OW = conv_output_size(W, KW, stride, pad)
    dcols = dcols.reshape(C, KH, KW, N, OH, OW)
    dxp = np.zeros((N, C, H + 2 * pad, W + 2 * pad), dtype=dcols.dtype)
    for p in range(KH):
        for q in range(KW):
            dxp[:, :, p : p + stride * OH : stride, q : q + stride * OW : stride] += dcols[:, p, q].transpose(1, 0, 2, 3)
    return dxp[:, :, pad : pad + H, pad : pad + W]


def conv_forward(x, w, b, stride: int = 1, pad: int = 0):
    """Fast convolution: im2col plus one matrix multiply.

    x: (N, C, H, W) float; w: (F, C, KH, KW); b: (F,); stride >= 1; pad >= 0 zero pixels on
    each side. Returns out (N, F, OH, OW) in x's dtype and cache (x, w, cols, stride, pad),
    where cols is the (C*KH*KW, N*OH*OW) im2col matrix reused by the backward pass.
    For N > 1, out is a transposed view of the (F, N, OH, OW) product, not a C-contiguous
    array: copying it would cost one more pass over memory, and NumPy reads it either way.
    """
    x, w, b, OH, OW = _check_conv_args(x, w, b, stride, pad)
    N = x.shape[0]
    F, _, KH, KW = w.shape
    cols = im2col(x, KH, KW, stride, pad)
    out = w.reshape(F, -1) @ cols  # (F, N*OH*OW): the whole convolution
    out += b[:, None]
    out = out.reshape(F, N, OH, OW).transpose(1, 0, 2, 3)  # a view: (N, F, OH, OW) without a copy
    return out, (x, w, cols, stride, pad)


def conv_backward(dout, cache):
    """Backward of ``conv_forward``.

    dout: (N, F, OH, OW). Returns dx (N, C, H, W), dw (F, C, KH, KW), db (F,):
    db = sum of dout over N, OH, OW; dw = dout_mat @ cols.T; dx = col2im(w_mat.T @ dout_mat).
    """
    x, w, cols, stride, pad = cache
    F, C, KH, KW = w.shape
    dout_mat = dout.transpose(1, 0, 2, 3).reshape(F, -1)  # (F, N*OH*OW)
    db = dout.sum(axis=(0, 2, 3))
    dw = (dout_mat @ cols.T).reshape(w.shape)
    dcols = w.reshape(F, -1).T @ dout_mat  # (C*KH*KW, N*OH*OW)
    dx = col2im(dcols, x.shape, KH, KW, stride, pad)
    return dx, dw, db


def conv_forward_naive(x, w, b, stride: int = 1, pad: int = 0):
    """Reference convolution with plain loops (slow; for teaching and testing).

    Same arguments, shapes and result as ``conv_forward``; cache is (x, w, stride, pad).
    """
    x, w, b, OH, OW = _check_conv_args(x, w, b, stride, pad)
    N = x.shape[0]
    F, C, KH, KW = w.shape
    xp = _pad(x, pad)
    out = np.zeros((N, F, OH, OW), dtype=x.dtype)
    for n in range(N):
        for f in range(F):
            for i in range(OH):
                for j in range(OW):
                    window = xp[n, :, i * stride : i * stride + KH, j * stride : j * stride + KW]
                    out[n, f, i, j] = np.sum(window * w[f]) + b[f]
    return out, (x, w, stride, pad)


def conv_backward_naive(dout, cache):
    """Reference backward with plain loops: returns dx (N, C, H, W), dw (F, C, KH, KW), db (F,).

    Each output pixel sent its window times w[f] forward; backward sends dout[n, f, i, j]
    back to the same window (dx) and to the same weights (dw). Overlapping windows add up.
    """
    x, w, stride, pad = cache
    N, F, OH, OW = dout.shape
    _, C, KH, KW = w.shape
    xp = _pad(x, pad)
    dxp = np.zeros_like(xp)
    dw = np.zeros_like(w)
    db = np.zeros(F, dtype=dout.dtype)
    for n in range(N):
        for f in range(F):
            for i in range(OH):
                for j in range(OW):
                    rows = slice(i * stride, i * stride + KH)
                    cols = slice(j * stride, j * stride + KW)
                    dxp[n, :, rows, cols] += dout[n, f, i, j] * w[f]
                    dw[f] += dout[n, f, i, j] * xp[n, :, rows, cols]
                    db[f] += dout[n, f, i, j]
    H, W = x.shape[2:]
    return dxp[:, :, pad : pad + H, pad : pad + W], dw, db
