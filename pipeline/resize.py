"""Area-averaging resize, with the exact semantics of PyTorch's ``interpolate(mode="area")``.

The reference MTCNN (facenet-pytorch) resizes every pyramid level and every crop this way,
so matching it exactly keeps our detections comparable with the reference's.

PyTorch's "area" mode is ``adaptive_avg_pool2d``: output row i of out_h averages the input
rows [floor(i*H/out_h), ceil((i+1)*H/out_h)), and likewise for columns; the output pixel is
the plain mean of the input pixels in that rectangle. The windows may overlap (5 -> 3 gives
[0, 2), [1, 4), [3, 5)) and the rule works for up-scaling too (each output pixel then
averages one or two input pixels).

`resize_area_naive` loops over output pixels and is the definition; `resize_area` is the
fast version that the pipeline uses. A test checks that they agree.
"""

from __future__ import annotations

import math
from fractions import Fraction
from functools import lru_cache

import numpy as np


def _window(i: int, in_size: int, out_size: int) -> tuple[int, int]:
    """Input range [start, end) averaged by output index i, with exact integer arithmetic."""
    start = (i * in_size) // out_size
    end = -((-(i + 1) * in_size) // out_size)  # ceil division without floats
    return start, end


def _check_size(name: str, value) -> None:
    if int(value) != value or value < 1:
        raise ValueError(f"{name} must be an integer >= 1; got {value!r}")


def area_weights(in_size: int, out_size: int, dtype=np.float64) -> np.ndarray:
    """Averaging matrix of one axis.

    in_size, out_size: lengths in pixels (>= 1); dtype: a float dtype.
    Returns A: (out_size, in_size) of ``dtype``, read-only (it is cached and shared):
    row i is 1/n on the n input pixels of output pixel i's window and 0 elsewhere, so
    ``A @ v`` resizes a vector v of length in_size. Each row sums to 1.
    """
    _check_size("in_size", in_size)
    _check_size("out_size", out_size)
    return _cached_area_weights(int(in_size), int(out_size), np.dtype(dtype).str)


@lru_cache(maxsize=512)
def _cached_area_weights(in_size: int, out_size: int, dtype_str: str) -> np.ndarray:
    weights = np.zeros((out_size, in_size), dtype=np.float64)
    for i in range(out_size):
        start, end = _window(i, in_size, out_size)
        weights[i, start:end] = 1.0 / (end - start)
    weights = weights.astype(np.dtype(dtype_str))
    weights.flags.writeable = False  # shared between callers through the cache
    return weights


def _check_input(x, out_h, out_w) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim < 2:
        raise ValueError(f"x must have shape (..., H, W) with at least 2 axes; got shape {x.shape}")
    if x.shape[-2] < 1 or x.shape[-1] < 1:
        raise ValueError(f"x must have H, W >= 1; got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"x must be a float array (float32 in the pipeline); got dtype {x.dtype}")
    _check_size("out_h", out_h)
    _check_size("out_w", out_w)
    return x


def resize_area(x, out_h: int, out_w: int) -> np.ndarray:
    """Resize the last two axes by area averaging (PyTorch ``interpolate(mode="area")``).

    x: (..., H, W) float32 or float64, any leading axes (e.g. (C, H, W) or (N, C, H, W));
    out_h, out_w: output size in pixels (>= 1), smaller or larger than H, W.
    Returns (..., out_h, out_w), same dtype as x.

    Why two matrix products are exact: the output pixel (i, j) is the mean over a rectangle
    rows(i) x cols(j). A mean over a rectangle is a mean over rows of means over columns:
    sum_r sum_c x[r, c] / (n_rows * n_cols) = sum_r (1/n_rows) sum_c (1/n_cols) x[r, c].
    So out = A_h @ x @ A_w.T with the one-axis averaging matrices of `area_weights`
    (np.matmul broadcasts over the leading axes). Only the rounding order differs from the
    naive loop; we multiply the cheaper way round first.
    """
    x = _check_input(x, out_h, out_w)
    height, width = x.shape[-2:]
    rows = area_weights(height, out_h, x.dtype)  # (out_h, H)
    cols = area_weights(width, out_w, x.dtype)  # (out_w, W)
    rows_first_cost = out_h * height * width + out_h * width * out_w
    cols_first_cost = height * width * out_w + out_h * height * out_w
    if rows_first_cost <= cols_first_cost:
        return (rows @ x) @ cols.T
    return rows @ (x @ cols.T)


def resize_area_naive(x, out_h: int, out_w: int) -> np.ndarray:
    """Reference version of `resize_area`: a loop over output pixels.

    x: (..., H, W) float; out_h, out_w >= 1. Returns (..., out_h, out_w), same dtype.
    Each output pixel is the mean of its input rectangle, straight from the definition, with
    the window ends written as floor and ceil of exact fractions (independent of the integer
    tricks in the fast version).
    """
    x = _check_input(x, out_h, out_w)
    height, width = x.shape[-2:]
    out = np.empty(x.shape[:-2] + (out_h, out_w), dtype=x.dtype)
    for i in range(out_h):
        row_start = math.floor(Fraction(i * height, out_h))
        row_end = math.ceil(Fraction((i + 1) * height, out_h))
        for j in range(out_w):
            col_start = math.floor(Fraction(j * width, out_w))
            col_end = math.ceil(Fraction((j + 1) * width, out_w))
            out[..., i, j] = x[..., row_start:row_end, col_start:col_end].mean(axis=(-2, -1))
    return out
