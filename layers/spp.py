"""Spatial pyramid pooling (He et al., SPPNet): a map of any size to a fixed-length vector.

x: (N, C, H, W) with any H, W >= 1. For each level n in ``levels`` the map is cut into
n x n bins and each bin is max-pooled; the results are concatenated:
out (N, C * sum(n*n for n in levels)), ordered level by level, and within a level in C order
of (c, row bin, column bin).

``spp_forward`` gathers each level's bins at once; ``spp_forward_naive`` loops over the bins and
is the test oracle (and the easier one to read first).

Bin boundaries follow SPPNet's appendix (He, Zhang, Ren, Sun, "Spatial Pyramid Pooling in Deep
Convolutional Networks for Visual Recognition", ECCV 2014 / TPAMI 2015, Appendix A, as in its
released code): bin i of n along an axis of length L covers [floor(i*L/n), ceil((i+1)*L/n)),
the left/top edge rounded down and the right/bottom edge rounded up. (The paper's sliding-window
form, window ceil(L/n) and stride floor(L/n), does not always give n bins: L = 10, n = 6 gives 9.) Every bin is non-empty and adjacent bins may share a cell, so in
the backward pass a cell can win several bins (or levels): gradients are accumulated.
"""

from __future__ import annotations

import numpy as np

from .checks import require_float, require_ndim


def spp_bins(length: int, n: int) -> list[tuple[int, int]]:
    """The n bins [start, end) along an axis of ``length`` cells (integer arithmetic only)."""
    if length < 1 or n < 1:
        raise ValueError(f"spp needs length >= 1 and n >= 1, got length={length}, n={n}")
    return [((i * length) // n, -((-(i + 1) * length) // n)) for i in range(n)]


def _bin_index_table(length: int, n: int) -> np.ndarray:
    """(n, longest bin) indices of every bin's cells; short bins repeat their last cell.

    Repeating a cell changes no maximum (max is idempotent), and the repeats come after the
    real cells, so the first maximum found is the same one the loop version finds.
    """
    bins = spp_bins(length, n)
    longest = max(end - start for start, end in bins)
    return np.array([[min(start + t, end - 1) for t in range(longest)] for start, end in bins])


def spp_forward(x, levels=(4, 2, 1)):
    """Fast SPP: per level, one gather of every bin's cells and one max.

    x: (N, C, H, W) float, H, W >= 1. Returns out (N, C * sum(n*n)) in x's dtype and cache
    (x_shape, winners, levels), where winners[k] (N, C, n, n) holds each bin's winning cell
    as a flat index row * W + col, for level k.
    """
    x = require_float(x)
    require_ndim(x, (4,), "x", "(N, C, H, W)")
    N, C, H, W = x.shape
    pooled, winners = [], []
    for n in levels:
        rows, cols = _bin_index_table(H, n), _bin_index_table(W, n)  # (n, bh), (n, bw)
        # cells[..., i, j, t, u] = x[..., rows[i, t], cols[j, u]]: bin (i, j), its cell (t, u)
        cells = x[:, :, rows[:, None, :, None], cols[None, :, None, :]]  # (N, C, n, n, bh, bw)
        cells = cells.reshape(N, C, n, n, -1)
        best = cells.argmax(axis=4)  # first maximum in row-major order within each bin
        pooled.append(np.take_along_axis(cells, best[..., None], axis=4)[..., 0].reshape(N, -1))
        t, u = np.divmod(best, cols.shape[1])
        i, j = np.arange(n)[:, None], np.arange(n)[None, :]
        winners.append(rows[i, t] * W + cols[j, u])
    return np.concatenate(pooled, axis=1), ((N, C, H, W), winners, tuple(levels))


def spp_backward(dout, cache):
    """Backward of ``spp_forward``: dout (N, C * sum(n*n)) -> dx (N, C, H, W).

    Each bin's gradient goes to its winning cell; a cell that wins several bins or levels
    collects the sum, which ``np.bincount`` adds up in one call.
    """
    (N, C, H, W), winners, levels = cache
    plane = np.arange(N * C).reshape(N, C, 1, 1) * (H * W)  # offset of each (n, c) map
    cells, grads, offset = [], [], 0
    for n, win in zip(levels, winners):
        cells.append((plane + win).ravel())
        grads.append(dout[:, offset : offset + C * n * n].reshape(-1))
        offset += C * n * n
    dx = np.bincount(np.concatenate(cells), weights=np.concatenate(grads), minlength=N * C * H * W)
    return dx.astype(dout.dtype, copy=False).reshape(N, C, H, W)


def spp_forward_naive(x, levels=(4, 2, 1)):
    """Reference SPP with a loop over the bins (obvious; the test oracle). Returns out (N, C * sum(n*n)) and cache (x_shape, winners, levels), where winners lists,
    per bin, the flat index (row * W + col) of the maximum for every (n, c)."""
    x = require_float(x)
    require_ndim(x, (4,), "x", "(N, C, H, W)")
    N, C, H, W = x.shape
    pooled, winners = [], []
    for n in levels:
        level = np.empty((N, C, n, n), dtype=x.dtype)
        for i, (r0, r1) in enumerate(spp_bins(H, n)):
            for j, (c0, c1) in enumerate(spp_bins(W, n)):
                region = x[:, :, r0:r1, c0:c1].reshape(N, C, -1)
                best = region.argmax(axis=2)  # (N, C), first maximum in the bin
                level[:, :, i, j] = np.take_along_axis(region, best[..., None], axis=2)[..., 0]
                winners.append((r0 + best // (c1 - c0)) * W + (c0 + best % (c1 - c0)))
        pooled.append(level.reshape(N, -1))
    return np.concatenate(pooled, axis=1), (x.shape, winners, tuple(levels))


def spp_backward_naive(dout, cache):
    """Backward of ``spp_forward_naive``, a loop over the bins. dout: (N, C * sum(n*n)). Returns dx (N, C, H, W): each bin's gradient goes to its
    winning cell, summed over bins and levels."""
    (N, C, H, W), winners, levels = cache
    dx = np.zeros((N, C, H * W), dtype=dout.dtype)
    n_idx, c_idx = np.meshgrid(np.arange(N), np.arange(C), indexing="ij")
    offset, b = 0, 0
    for n in levels:
        grads = dout[:, offset : offset + C * n * n].reshape(N, C, n * n)
        for k in range(n * n):
            # one bin: each (n, c) has exactly one winner, so this fancy-index add is safe
            dx[n_idx, c_idx, winners[b]] += grads[:, :, k]
            b += 1
        offset += C * n * n
    return dx.reshape(N, C, H, W)
