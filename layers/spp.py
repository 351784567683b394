"""Spatial pyramid pooling (He et al., SPPNet): a map of any size to a fixed-length vector.

x: (N, C, H, W) with any H, W >= 1. For each level n in ``levels`` the map is cut into
n x n bins and each bin is max-pooled; the results are concatenated:
out (N, C * sum(n*n for n in levels)), ordered level by level, and within a level in C order
of (c, row bin, column bin).

Bin boundaries follow SPPNet's appendix (SPEC C.1): bin i of n along an axis of length L covers
[floor(i*L/n), ceil((i+1)*L/n)). Every bin is non-empty and adjacent bins may share a cell, so in
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


def spp_forward(x, levels=(4, 2, 1)):
    """Returns out (N, C * sum(n*n)) and cache (x_shape, winners, levels), where winners lists,
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


def spp_backward(dout, cache):
    """dout: (N, C * sum(n*n)). Returns dx (N, C, H, W): each bin's gradient goes to its
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
