"""Area-averaging resize, with the exact semantics of PyTorch's ``interpolate(mode="area")``.

The reference MTCNN (facenet-pytorch) resizes every pyramid level and every crop this way,
so matching it exactly keeps our detections comparable with the reference's.

PyTorch's "area" mode is ``adaptive_avg_pool2d``: output row i of out_h averages the input
rows [floor(i*H/out_h), ceil((i+1)*H/out_h)), and likewise for columns; the output pixel is
the plain mean of the input pixels in that rectangle. The windows may overlap (5 -> 3 gives
[0, 2), [1, 4), [3, 5)) and the rule works for up-scaling too (each output pixel then
averages one or two input pixels).

`resize_area_naive` loops over output pixels and is the definition; `resize_area` is the
fast version that the pipeline uses (one banded matrix multiply per axis). A test checks
that they agree. `resize_area_pyramid` makes all levels of a pyramid with the same
multiplies, ordered so that each image row is read from memory once (tested equal, bit for
bit, to `resize_area` level by level).
"""

from __future__ import annotations

import math
from fractions import Fraction
from functools import lru_cache

import numpy as np


def _window_bounds(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(start, end) arrays: output index i averages input [start[i], end[i]), exact integers."""
    i = np.arange(out_size)
    return (i * in_size) // out_size, -((-(i + 1) * in_size) // out_size)  # floor, ceil


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
    starts, ends = _window_bounds(in_size, out_size)
    columns = np.arange(in_size)
    inside = (columns >= starts[:, None]) & (columns < ends[:, None])  # output i's window, as a row
    weights = (inside / (ends - starts)[:, None]).astype(np.dtype(dtype_str))
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

    The output pixel (i, j) is the mean over a rectangle rows(i) x cols(j), and a mean over a
    rectangle is a mean over rows of means over columns. So we average the windows of one axis,
    then of the other (`_resize_axis`), each a matrix multiply by that axis's averaging matrix
    (`area_weights`), cut into bands so that the work grows with the image, not with
    image x output.
    """
    x = _check_input(x, out_h, out_w)
    height, width = x.shape[-2:]
    small = dense_area_weights(height, width, int(out_h), int(out_w), x.dtype.str)
    if small is not None:  # the crops of R-Net and O-Net: two multiplies by whole matrices
        rows, columns_t = small
        return (rows @ x) @ columns_t
    return _resize_axis(_resize_axis(x, out_h, axis=-2), out_w, axis=-1)


def dense_area_weights(height: int, width: int, out_h: int, out_w: int, dtype_str: str):
    """Both whole averaging matrices of a small resize, or None when either is large.

    height, width -> out_h, out_w: sizes in pixels (ints >= 1, not checked: this is the inner
    loop of `pipeline.detection.crops`); dtype_str: a float dtype's ``.str`` (e.g. ``'<f4'``).
    Returns (rows (out_h, height), columns_t (width, out_w)), read-only and cached, such that
    ``(rows @ x) @ columns_t`` is `resize_area` of x (..., height, width); None when either
    matrix has more than DENSE_MAX_ENTRIES entries (then the banded multiply is faster).
    """
    if out_h * height > DENSE_MAX_ENTRIES or out_w * width > DENSE_MAX_ENTRIES:
        return None
    return _cached_area_weights(height, out_h, dtype_str), _cached_area_weights(width, out_w, dtype_str).T


# Outputs per band of the averaging matrix (see `_resize_axis`). Small bands waste few
# multiplications on zeros. A row band reads whole image rows, so it holds as many outputs as
# fit in about ROW_SPAN input rows (at most ROW_BAND_MAX): at a small scale each output's
# window is tall, and a band of 4 outputs multiplied 4 times too many rows (the smallest
# levels took twice as long as the others). Bands beat gathering each window offset with
# np.take threefold; column bands of 32 were faster than 16 or 64 (benchmarks/README.md).
ROW_SPAN, ROW_BAND_MAX, COL_BAND = 16, 8, 32
# Up to this many entries, one multiply by the whole matrix (a single BLAS call) is fastest:
# the small crops of R-Net and O-Net. When both axes are that small, `resize_area` multiplies
# by the two whole matrices straight away, faster than through `_resize_axis` and with the same
# numbers. Beyond it, the whole matrix's multiplications by zero cost more than the calls of
# the bands save (a larger limit had the smallest pyramid levels read the whole image densely;
# benchmarks/README.md).
DENSE_MAX_ENTRIES = 4096


def _resize_axis(x: np.ndarray, out_size: int, axis: int) -> np.ndarray:
    """Area-resize one axis (-2 or -1) of x to out_size: a banded matrix multiply.

    The averaging matrix A (out_size, n) of `area_weights` is zero outside a diagonal band:
    output i reads only inputs [start_i, end_i), and the windows move steadily along the axis.
    So outputs [i0, i1) need only inputs [start_i0, end_(i1-1)), and we multiply band by band,
    A[i0:i1, start:end] @ x[start:end] (rows) or x[..., start:end] @ A[i0:i1, start:end].T
    (columns), each a small BLAS call on a view of x, writing straight into the output.
    """
    n = x.shape[axis]
    band = _band(n, out_size, axis)
    shape = list(x.shape)
    shape[axis] = out_size
    out = np.empty(shape, dtype=x.dtype)
    for i0, i1, lo, hi, a in _bands(n, out_size, band, x.dtype.str):
        if axis == -1:
            np.matmul(x[..., lo:hi], a.T, out=out[..., i0:i1])
        else:
            np.matmul(a, x[..., lo:hi, :], out=out[..., i0:i1, :])
    return out


def row_band(in_h: int, out_h: int) -> int:
    """Output rows per band of the row pass that resizes in_h rows to out_h (`_resize_axis`):
    the band's multiply reads its input rows once for each of them."""
    return _band(in_h, out_h, -2)


def _band(in_size: int, out_size: int, axis: int) -> int:
    """Outputs per band of `_resize_axis` along axis -2 (rows) or -1 (columns)."""
    if out_size * in_size <= DENSE_MAX_ENTRIES:
        return out_size  # one band: the whole matrix
    if axis == -1:
        return COL_BAND
    return max(1, min(ROW_BAND_MAX, ROW_SPAN * out_size // in_size))


def resize_area_pyramid(x, sizes) -> list[np.ndarray]:
    """`resize_area` of one image to many sizes (a pyramid): the same numbers, bit for bit.

    x: (C, H, W) float (any leading axes); sizes: [(h, w), ...] in pixels (>= 1).
    Returns [(C, h, w) array per size], in the order of sizes.

    Level by level, each level's row pass reads every row of the image from memory: 12 times
    for the 12 levels of a 1280 x 886 photo. Here the row bands of all levels run in the order
    of the image rows they read, so a stretch of rows comes from memory once and then from the
    cache for every level (the row passes take less than half the time; benchmarks/README.md).
    Each band is the very matrix multiply `resize_area` makes, so the numbers are
    the same. Then each level gets its column pass as usual.
    """
    x = _check_input(x, 1, 1)
    H, W = x.shape[-2:]
    for h, w in sizes:
        _check_size("h", h)
        _check_size("w", w)
    sizes = [(int(h), int(w)) for h, w in sizes]
    levels, rows, bands = [None] * len(sizes), {}, []
    for k, (h, w) in enumerate(sizes):
        if dense_area_weights(H, W, h, w, x.dtype.str) is not None:
            levels[k] = resize_area(x, h, w)  # tiny: two whole matrices, as resize_area does
            continue
        rows[k] = np.empty(x.shape[:-2] + (h, W), dtype=x.dtype)
        bands += [(lo, hi, a, k, i0, i1) for i0, i1, lo, hi, a in _bands(H, h, _band(H, h, -2), x.dtype.str)]
    bands.sort(key=lambda band: band[0])  # in the order of the image rows they read
    for lo, hi, a, k, i0, i1 in bands:
        np.matmul(a, x[..., lo:hi, :], out=rows[k][..., i0:i1, :])
    for k in rows:
        levels[k] = _resize_axis(rows[k], sizes[k][1], axis=-1)
    return levels


@lru_cache(maxsize=512)
def _bands(in_size: int, out_size: int, band: int, dtype_str: str) -> tuple:
    """The nonzero blocks of the averaging matrix, ``band`` outputs at a time: a tuple of
    (i0, i1, lo, hi, A[i0:i1, lo:hi]), read-only. Only the blocks are built (about band *
    in_size numbers), never the whole (out_size, in_size) matrix, which for a 6000-pixel side
    would take tens of megabytes.

    All blocks at once, as one array (blocks, band, widest block) padded with zeros, of which
    each block is a view: a new image size needs several hundred blocks for its pyramid, and
    built one at a time they took more than twice as long for each photo of a new size.
    """
    starts, ends = _window_bounds(in_size, out_size)
    first = np.arange(0, out_size, band)  # i0 of every block
    last = np.minimum(first + band, out_size)  # i1
    lo, hi = starts[first], ends[last - 1]
    # (blocks, band) output indices; the last block's extra rows repeat its last, and are cut below
    outputs = np.minimum(first[:, None] + np.arange(band), out_size - 1)
    columns = lo[:, None, None] + np.arange(int((hi - lo).max()))  # (blocks, 1, width)
    inside = (columns >= starts[outputs][..., None]) & (columns < ends[outputs][..., None])
    blocks = (inside / (ends - starts)[outputs][..., None]).astype(np.dtype(dtype_str))
    blocks.flags.writeable = False  # shared between callers through the cache (and so are its views)
    return tuple((i0, i1, l, h, blocks[k, : i1 - i0, : h - l])
                 for k, (i0, i1, l, h) in enumerate(zip(first.tolist(), last.tolist(), lo.tolist(), hi.tolist())))


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
