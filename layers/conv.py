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
  additions, never a loop over pixels). Both passes run a slice of the batch at a time, so
  that each slice's ``cols`` is still in the cache when the matrix multiply reads it.

On maps barely larger than the kernel (P-Net's 5 x 5 and 3 x 3 maps in training), the copies
of im2col cost more than the arithmetic, and ``conv_forward`` multiplies by the convolution's
own matrix instead (``layers/conv_matrix.py``, a speed device; same numbers up to rounding).
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from . import conv_matrix
from .batch_chunks import map_batch
from .checks import require_float, require_ndim, require_shape
from .shapes import conv_output_size

CONV_CHUNK_BYTES = 8 << 20  # im2col matrix + output per slice of the batch (see conv_forward)


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
    dxp = np.zeros((N, C, H + 2 * pad, W + 2 * pad), dtype=dcols.dtype)
    _col2im_add(dcols, dxp, KH, KW, stride)
    return dxp[:, :, pad : pad + H, pad : pad + W]


def _col2im_add(dcols, dxp, KH, KW, stride):
    """Add the columns dcols (C*KH*KW, N*OH*OW) into the padded gradient dxp (N, C, Hp, Wp)."""
    N, C, Hp, Wp = dxp.shape
    OH, OW = (Hp - KH) // stride + 1, (Wp - KW) // stride + 1
    dcols = dcols.reshape(C, KH, KW, N, OH, OW)
    for p in range(KH):
        for q in range(KW):
            dxp[:, :, p : p + stride * OH : stride, q : q + stride * OW : stride] += dcols[:, p, q].transpose(1, 0, 2, 3)


def conv_forward(x, w, b, stride: int = 1, pad: int = 0):
    """Fast convolution: im2col plus one matrix multiply, a slice of the batch at a time.

    x: (N, C, H, W) float; w: (F, C, KH, KW); b: (F,); stride >= 1; pad >= 0 zero pixels on
    each side. Returns out (N, F, OH, OW), C-contiguous, in x's dtype, and cache (x, w, stride,
    pad).

    For each slice of Ns samples (``batch_chunks.batch_slices``): cols = im2col(x[slice]) of
    shape (C*KH*KW, Ns*OH*OW); the whole convolution of the slice is ``w.reshape(F, -1) @ cols``
    of shape (F, Ns*OH*OW), copied into out[slice] as (Ns, F, OH, OW). The slice is small enough
    that cols is still in the cache when the matrix multiply reads it, and out comes out
    C-contiguous, so the next layer reads plain contiguous memory. Nothing as large as the
    whole batch's cols is ever built: the backward pass rebuilds cols slice by slice from x.
    """
    x, w, b, OH, OW = _check_conv_args(x, w, b, stride, pad)
    N, C, H, W = x.shape
    F, _, KH, KW = w.shape
    if conv_matrix.use_matrix(x.shape, w.shape, stride, pad):  # a tiny map: see layers/conv_matrix.py
        return conv_matrix.matrix_conv_forward(x, w, b, stride), (x, w, stride, pad)
    w_mat = w.reshape(F, -1)
    if N == 1:  # one image (the detector): (F, OH*OW) is already (1, F, OH, OW) in memory
        out = w_mat @ im2col(x, KH, KW, stride, pad)
        out += b[:, None]
        return out.reshape(1, F, OH, OW), (x, w, stride, pad)
    out = np.empty((N, F, OH, OW), dtype=x.dtype)

    def conv_slice(s):
        cols = im2col(x[s], KH, KW, stride, pad)  # (C*KH*KW, Ns*OH*OW)
        out_slice = w_mat @ cols  # (F, Ns*OH*OW): the convolution of the slice
        out_slice += b[:, None]
        out[s] = out_slice.reshape(F, -1, OH, OW).transpose(1, 0, 2, 3)

    map_batch(conv_slice, N, x.itemsize * (C * KH * KW + 2 * F) * OH * OW, CONV_CHUNK_BYTES, blas=True)
    return out, (x, w, stride, pad)


def conv_backward(dout, cache, input_grad: bool = True):
    """Backward of ``conv_forward``.

    dout: (N, F, OH, OW). Returns dx (N, C, H, W), dw (F, C, KH, KW), db (F,):
    db = sum of dout over N, OH, OW; per slice of the batch, with dout_mat (F, Ns*OH*OW) and
    cols rebuilt by im2col: dw += dout_mat @ cols.T and dx[slice] = col2im(w_mat.T @ dout_mat).
    input_grad=False skips dx (returned as None): the first layer of a net in training has
    no use for the gradient of the image, and dx is a third of this layer's work.
    """
    x, w, stride, pad = cache
    if conv_matrix.use_matrix(x.shape, w.shape, stride, pad):  # as the forward pass chose
        return conv_matrix.matrix_conv_backward(dout, x, w, stride, input_grad)
    F, C, KH, KW = w.shape
    N, _, H, W = x.shape
    OH, OW = dout.shape[2:]
    w_mat = w.reshape(F, -1)
    db = dout.sum(axis=(0, 2, 3))
    dx = np.empty(x.shape, dtype=dout.dtype) if input_grad else None

    def conv_back_slice(s):
        cols = im2col(x[s], KH, KW, stride, pad)  # (C*KH*KW, Ns*OH*OW)
        dout_mat = dout[s].transpose(1, 0, 2, 3).reshape(F, -1)  # (F, Ns*OH*OW)
        if dx is None:
            return dout_mat @ cols.T
        dcols = w_mat.T @ dout_mat  # (C*KH*KW, Ns*OH*OW)
        if pad == 0:
            dx_slice = dx[s]
            dx_slice[...] = 0
            _col2im_add(dcols, dx_slice, KH, KW, stride)
        else:
            dx[s] = col2im(dcols, x[s].shape, KH, KW, stride, pad)
        return dout_mat @ cols.T  # this slice's part of dw

    parts = map_batch(conv_back_slice, N, x.itemsize * (2 * C * KH * KW + 2 * F) * OH * OW, CONV_CHUNK_BYTES,
                      blas=True)
    dw = np.sum(parts, axis=0) if len(parts) > 1 else parts[0]
    return dx, dw.reshape(w.shape), db


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
