"""A speed device, not part of the algorithm: run P-Net on horizontal strips of a level.

`pipeline.detection.proposals.pnet_maps` runs P-Net once over a whole pyramid level. The detector gets
the same maps faster by cutting each level into strips of about TILE_PIXELS level pixels:

* small strips keep each layer's output in the CPU cache (P-Net is limited by memory
  traffic, not arithmetic; benchmarks/README.md);
* they bound the memory of a 6000 x 4000 photo.

With several workers, each worker scans its own share of whole levels (`pipeline.fast.helpers`),
strip after strip.

A strip has at least MIN_TILE_ROWS output rows, so the 10 rows of context that neighbouring
strips share stay a small overhead on wide images. `tests/test_detector.py` checks that the
stitched strips equal one pass over the whole level.
"""

from __future__ import annotations

import numpy as np

from pipeline.detection.proposals import CELL_SIZE, STRIDE, pnet_maps, pnet_output_size
from pipeline.detection.resize import row_band

TILE_PIXELS = 64_000
MIN_TILE_ROWS = 16
# What resizing and scanning a pyramid level costs besides its own pixels, in level pixels: the
# calls every level makes whatever its size, and its resize's row pass, which reads the whole
# image once for each output row of its bands (`pipeline.detection.resize.row_band`: 8 for the
# largest levels, 1 for the small ones). Chosen by timing stage 1 on two workers with five
# rules (benchmarks/README.md): the level's pixels alone under-weighed the many small levels.
LEVEL_CALLS_PIXELS = 1_600
IMAGE_PIXELS_PER_LEVEL_PIXEL = 100


def level_work(H: int, W: int, h: int, w: int) -> int:
    """The work of resizing an image of W x H px to a pyramid level of w x h px and scanning
    that with P-Net, in level pixels: to share the levels among workers in about equal parts
    (`pipeline.fast.parallel.split_by_weight`)."""
    return h * w + LEVEL_CALLS_PIXELS + row_band(H, h) * H * W // IMAGE_PIXELS_PER_LEVEL_PIXEL


def strip_rows(h: int, w: int, tile_pixels: int = TILE_PIXELS, min_rows: int = MIN_TILE_ROWS):
    """Split the P-Net output rows of a level of w x h px into strips: list of (r0, r1), r1
    exclusive. Each strip reads about ``tile_pixels`` level pixels and has at least
    ``min_rows`` rows."""
    out_h = pnet_output_size(h)
    rows_per_strip = max(min_rows, (tile_pixels // max(w, 1) - CELL_SIZE) // STRIDE + 1)
    return [(r0, min(out_h, r0 + rows_per_strip)) for r0 in range(0, out_h, rows_per_strip)]


class InStrips:
    """A fully convolutional net (P-Net) that runs over a pyramid level strip by strip.

    ``InStrips(net).forward(x)``, x (1, 3, h, w), returns what ``net.forward(x)`` returns (head
    name -> (1, C, OH, OW)), stitched from strips of about ``tile_pixels`` level pixels
    (`strip_rows`). Strip r0..r1 needs level rows [2*r0, 2*(r1-1) + 12): every layer is local
    and the 2x2 pooling stays aligned because strips start on even rows, so stitched strips
    equal one pass over the whole level. The last strip runs to the level's bottom edge, where
    Caffe's ceil-mode pooling sees a partial window, exactly as the whole level would.
    """

    def __init__(self, net, tile_pixels: int = TILE_PIXELS, min_rows: int = MIN_TILE_ROWS):
        self.net, self.tile_pixels, self.min_rows = net, tile_pixels, min_rows

    def forward(self, x: np.ndarray) -> dict[str, np.ndarray]:
        h, w = x.shape[2:]
        out_h = pnet_output_size(h)
        parts = []
        for r0, r1 in strip_rows(h, w, self.tile_pixels, self.min_rows):
            bottom = h if r1 == out_h else STRIDE * (r1 - 1) + CELL_SIZE
            parts.append(self.net.forward(x[:, :, STRIDE * r0 : bottom]))
        return {name: np.concatenate([part[name] for part in parts], axis=2) for name in parts[0]}


def pnet_maps_in_strips(pnet, level: np.ndarray, tile_pixels: int = TILE_PIXELS, min_rows: int = MIN_TILE_ROWS):
    """`proposals.pnet_maps` of one level (3, h, w), computed in strips (`InStrips`)."""
    return pnet_maps(InStrips(pnet, tile_pixels, min_rows), level)
