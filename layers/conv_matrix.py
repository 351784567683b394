"""A speed device for convolutions on tiny maps: the whole convolution as one matrix multiply.

A convolution is linear in its input, so for a fixed input size it *is* a matrix:

    out_flat (N, F*OH*OW) = x_flat (N, C*H*W) @ M  + b repeated OH*OW times

where M (C*H*W, F*OH*OW) holds w[f, c, p, q] in row (c, i*stride + p, j*stride + q) and column
(f, i, j), for every output position (i, j), and zeros elsewhere (tutorial 9 writes it out for
a small case). `conv_forward` copies every window into ``cols`` (im2col) instead, one strided
block per kernel offset; on a 5 x 5 map those blocks are rows of 3 numbers, and the copies cost
more than the arithmetic. When the map is not much larger than the kernel, M is small and mostly
nonzero, and one matrix multiply by it is faster. P-Net in training is the case: conv2 sees
5 x 5 maps (M is 250 x 144, 36% nonzero), conv3 3 x 3 maps (M is the kernel itself, reshaped).

Backward, with dout_flat (N, F*OH*OW):

    dx_flat = dout_flat @ M.T
    dM = x_flat.T @ dout_flat            (C*H*W, F*OH*OW)
    dw[f, c, p, q] = sum over (i, j) of dM at the places where M holds w[f, c, p, q]

the last step reading dM through the same positions that built M.

`use_matrix` decides: no padding, the map at most `MAX_MAP_PER_KERNEL` times the kernel's area
(so that M wastes at most that factor on zeros) and M at most `MAX_ENTRIES` numbers (built
afresh from w at each pass). On P-Net's training step it halves conv2's forward and cuts its
backward by more than two thirds (benchmarks/README.md).
Same numbers as im2col up to float32 rounding (the sums run in another order);
tests/test_conv.py checks both paths against the naive loops.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

MAX_MAP_PER_KERNEL = 3  # H*W <= 3 * KH*KW: M is at least a third nonzero
MAX_ENTRIES = 1 << 16  # numbers in M: P-Net's conv2 has 36,000


def use_matrix(x_shape, w_shape, stride: int, pad: int) -> bool:
    """Whether `conv_forward` should multiply by the convolution's matrix for an input of
    x_shape (N, C, H, W) and weights of w_shape (F, C, KH, KW)."""
    _, C, H, W = x_shape
    F, _, KH, KW = w_shape
    if pad or H * W > MAX_MAP_PER_KERNEL * KH * KW:
        return False
    OH, OW = (H - KH) // stride + 1, (W - KW) // stride + 1
    return C * H * W * F * OH * OW <= MAX_ENTRIES


@lru_cache(maxsize=64)
def _positions(C: int, H: int, W: int, F: int, KH: int, KW: int, stride: int) -> np.ndarray:
    """Flat index into M (C*H*W, F*OH*OW) of every copy of every weight: (F, C, KH, KW, OH*OW)
    int64; entry [f, c, p, q, i*OW + j] is where w[f, c, p, q] meets output (i, j)."""
    OH, OW = (H - KH) // stride + 1, (W - KW) // stride + 1
    f, c, p, q, i, j = np.ix_(*(np.arange(n) for n in (F, C, KH, KW, OH, OW)))
    row = (c * H + i * stride + p) * W + j * stride + q
    col = (f * OH + i) * OW + j
    index = (row * (F * OH * OW) + col).reshape(F, C, KH, KW, OH * OW)
    index.flags.writeable = False  # shared between callers through the cache
    return index


def conv_matrix(w: np.ndarray, H: int, W: int, stride: int = 1) -> np.ndarray:
    """The matrix M (C*H*W, F*OH*OW) of the convolution by w (F, C, KH, KW) on H x W maps
    (no padding): x_flat @ M is the convolution of x without its bias."""
    F, C, KH, KW = w.shape
    index = _positions(C, H, W, F, KH, KW, stride)
    M = np.zeros(C * H * W * F * index.shape[-1], dtype=w.dtype)
    M[index] = w[..., None]  # each weight at its OH*OW places
    return M.reshape(C * H * W, -1)


def matrix_conv_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray, stride: int) -> np.ndarray:
    """x (N, C, H, W), w (F, C, KH, KW), b (F,), no padding. Returns out (N, F, OH, OW)."""
    N, _, H, W = x.shape
    F, _, KH, KW = w.shape
    OH, OW = (H - KH) // stride + 1, (W - KW) // stride + 1
    out = x.reshape(N, -1) @ conv_matrix(w, H, W, stride)
    out += np.repeat(b, OH * OW)
    return out.reshape(N, F, OH, OW)


def matrix_conv_backward(dout: np.ndarray, x: np.ndarray, w: np.ndarray, stride: int, input_grad: bool = True):
    """Backward of `matrix_conv_forward`. dout: (N, F, OH, OW). Returns dx (N, C, H, W), or
    None when not input_grad, dw (F, C, KH, KW) and db (F,)."""
    N, C, H, W = x.shape
    F, _, KH, KW = w.shape
    dout_flat = dout.reshape(N, -1)
    dx = (dout_flat @ conv_matrix(w, H, W, stride).T).reshape(x.shape) if input_grad else None
    dM = x.reshape(N, -1).T @ dout_flat  # (C*H*W, F*OH*OW)
    dw = dM.ravel()[_positions(C, H, W, F, KH, KW, stride)].sum(axis=-1)
    return dx, dw, dout.sum(axis=(0, 2, 3))
