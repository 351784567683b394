"""Stage 1 of MTCNN: run P-Net over one pyramid level and turn its face map into boxes.

P-Net is fully convolutional. Its output cell (r, c) sees the 12 x 12 window of the level
whose top-left pixel is (2c, 2r): receptive field 12, stride 2 (SPEC C.3; tutorial 3 derives
it layer by layer). Dividing by the level's scale maps the window back to the original image.
"""

from __future__ import annotations

import numpy as np

from layers import softmax

# P-Net's geometry: each output cell is a CELL_SIZE window, cells are STRIDE pixels apart.
STRIDE = 2
CELL_SIZE = 12
# P-Net runs on horizontal strips of a level, about TILE_PIXELS level pixels each. Small
# strips keep each layer's output in the CPU cache (P-Net is limited by memory traffic, not
# arithmetic: 64k pixels ran 30% faster than whole levels here) and bound the memory of a
# 6000 x 4000 photo. A strip has at least MIN_TILE_ROWS output rows, so the 10 rows of
# context that neighbouring strips share stay a small overhead on wide images.
TILE_PIXELS = 64_000
MIN_TILE_ROWS = 16


def normalize(pixels: np.ndarray) -> np.ndarray:
    """Map RGB values 0..255 to about [-1, 1] as the MTCNN nets expect: (x - 127.5) / 128."""
    return (pixels - np.float32(127.5)) * np.float32(1.0 / 128.0)


def strip_rows(h: int, w: int, tile_pixels: int = TILE_PIXELS, min_rows: int = MIN_TILE_ROWS):
    """Split the P-Net output rows of an h x w level into strips: list of (r0, r1), r1 exclusive.

    Each strip reads about ``tile_pixels`` level pixels and has at least ``min_rows`` rows.
    """
    out_h = -(-(h - 2) // 2) - 4
    rows_per_strip = max(min_rows, (tile_pixels // max(w, 1) - CELL_SIZE) // STRIDE + 1)
    return [(r0, min(out_h, r0 + rows_per_strip)) for r0 in range(0, out_h, rows_per_strip)]


def pnet_strip(pnet, level: np.ndarray, r0: int, r1: int):
    """P-Net output rows [r0, r1) of a level (3, h, w): face probability (r1 - r0, OW) and box
    offsets (4, r1 - r0, OW).

    They need level rows [2*r0, 2*(r1-1) + 12): every layer is local and the 2x2 pooling stays
    aligned because strips start on even rows, so stitched strips equal one pass over the
    whole level. The last strip runs to the level's bottom edge, where Caffe's ceil-mode
    pooling sees a partial window, exactly as the whole level would.
    """
    out_h = -(-(level.shape[1] - 2) // 2) - 4
    bottom = level.shape[1] if r1 == out_h else STRIDE * (r1 - 1) + CELL_SIZE
    out = pnet.forward(level[None, :, STRIDE * r0 : bottom])
    return softmax(out["face"])[0, 1], out["box"][0]


def pnet_pyramid_maps(pnet, levels, tile_pixels: int = TILE_PIXELS, min_rows: int = MIN_TILE_ROWS, map_fn=None):
    """Run P-Net on every normalized pyramid level, strip by strip.

    levels: list of (3, h, w) float32 arrays, h, w >= 12; map_fn: a ``map`` to run the strips
    with (e.g. `Parallel.map`, to use every core; default: the built-in one, in order).
    Returns one (prob (OH, OW), offsets (4, OH, OW)) per level, OH = ceil((h - 2) / 2) - 4.
    """
    jobs = [(i, r0, r1) for i, level in enumerate(levels)
            for r0, r1 in strip_rows(*level.shape[1:], tile_pixels, min_rows)]
    map_fn = map_fn or (lambda fn, items: list(map(fn, items)))
    parts = map_fn(lambda job: pnet_strip(pnet, levels[job[0]], job[1], job[2]), jobs)
    maps = []
    for i in range(len(levels)):
        mine = [part for (level, _, _), part in zip(jobs, parts) if level == i]
        maps.append((np.concatenate([p for p, _ in mine], axis=0), np.concatenate([o for _, o in mine], axis=1)))
    return maps


def pnet_maps(pnet, level: np.ndarray, tile_pixels: int = TILE_PIXELS, min_rows: int = MIN_TILE_ROWS):
    """Run P-Net on one normalized pyramid level (3, h, w), h, w >= 12: face probability
    (OH, OW) and box offsets (4, OH, OW), computed in strips (see `pnet_strip`)."""
    return pnet_pyramid_maps(pnet, [level], tile_pixels, min_rows)[0]


def heatmap_to_boxes(prob: np.ndarray, offsets: np.ndarray, scale: float, threshold: float):
    """Candidate boxes from one level's P-Net maps.

    prob: (OH, OW) face probability; offsets: (4, OH, OW); scale: level size / image size;
    threshold: keep cells with prob >= threshold. Returns boxes (K, 4) float32 in pixels of
    the original image, scores (K,) and regression offsets (K, 4), in row-major cell order.

    Cell (r, c) is the level window [2c, 2c + 12) x [2r, 2r + 12). Mapped back to the image
    it would be that window divided by the scale; the released model's decoder (MATLAB's
    generateBoundingBox, kept by every port) instead rounds the edges down to whole pixels,
    x1 = floor((2c + 1) / s) - 1 and x2 = floor((2c + 12) / s) in our 0-based convention.
    The box-regression offsets were learned against those rounded windows, so we keep the
    rounding: it moves a box by up to a pixel, and the final faces match the reference's.
    """
    rows, cols = np.nonzero(prob >= threshold)
    corners = np.stack([cols, rows], axis=1).astype(np.float32) * STRIDE
    # float32 division, as the reference: at scale 0.6, 3 / 0.6 is 4.9999998 and floors to 4
    scale32 = np.float32(scale)
    top_left = np.floor((corners + 1) / scale32) - 1
    bottom_right = np.floor((corners + CELL_SIZE) / scale32)
    boxes = np.concatenate([top_left, bottom_right], axis=1)
    return boxes, prob[rows, cols], offsets[:, rows, cols].T.copy()
