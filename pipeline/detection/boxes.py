"""Boxes: the one place that fixes the box convention, and the operations on boxes.

Convention (used everywhere in the project):

* A set of boxes is a float array ``boxes: (N, 4)`` of ``x1, y1, x2, y2``: x is the column,
  y the row, 0-based, in continuous pixel coordinates of the original image.
* Pixel (row r, col c) covers the unit square [c, c+1) x [r, r+1). A box covers
  [x1, x2) x [y1, y2), so ``width = x2 - x1`` and ``height = y2 - y1``. There is no +1
  anywhere: the MATLAB-style 1-based inclusive coordinates of the reference code are not used.
* Scores are a separate ``scores: (N,)`` array; nothing is packed into extra columns.
* A box with x2 <= x1 or y2 <= y1 is empty: its area is 0 and it overlaps nothing.

Every function returns a new array and never changes its inputs. Zero boxes are fine
everywhere: ``np.zeros((0, 4), np.float32)`` in, correctly shaped empty arrays out.
Float outputs keep the input's float dtype (float32 stays float32); integer boxes become
float64 by NumPy's usual promotion.
"""

from __future__ import annotations

import numpy as np

OVERLAP_MODES = ("union", "min")


# ---------------------------------------------------------------- validation helpers


def _as_boxes(boxes, name: str = "boxes") -> np.ndarray:
    """Return ``boxes`` as a finite float (N, 4) array, or raise ValueError."""
    boxes = np.asarray(boxes)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"{name} must have shape (N, 4) as x1, y1, x2, y2; got shape {boxes.shape}")
    if not (np.issubdtype(boxes.dtype, np.integer) or np.issubdtype(boxes.dtype, np.floating)):
        raise ValueError(f"{name} must be a real numeric array; got dtype {boxes.dtype}")
    boxes = boxes.astype(np.result_type(boxes.dtype, np.float32), copy=False)
    if not np.all(np.isfinite(boxes)):
        raise ValueError(f"{name} contains NaN or infinite coordinates")
    return boxes


def _as_scores(scores, n: int) -> np.ndarray:
    """Return ``scores`` as a finite float64 (n,) array, or raise ValueError."""
    scores = np.asarray(scores)
    if scores.shape != (n,):
        raise ValueError(f"scores must have shape ({n},) to match the boxes; got shape {scores.shape}")
    # float64 so that -scores is safe for unsigned dtypes and the order is exact for float32
    scores = scores.astype(np.float64)
    if not np.all(np.isfinite(scores)):
        raise ValueError("scores contain NaN or infinite values")
    return scores


def _check_mode(mode: str) -> None:
    if mode not in OVERLAP_MODES:
        raise ValueError(f"mode must be one of {OVERLAP_MODES}; got {mode!r}")


def _check_threshold(threshold: float) -> None:
    # `not (a <= t <= b)` is also True for NaN
    if not (0.0 <= threshold <= 1.0):
        raise ValueError(f"threshold must be in [0, 1]; got {threshold!r}")


# ---------------------------------------------------------------- areas and overlaps


def box_area(boxes) -> np.ndarray:
    """Area of each box.

    boxes: (N, 4) float, x1, y1, x2, y2 in pixels.
    Returns (N,) float (same float dtype), in square pixels. Empty boxes (x2 <= x1 or
    y2 <= y1) have area 0, never a negative one.
    """
    boxes = _as_boxes(boxes)
    return _area(boxes)


def _area(boxes: np.ndarray) -> np.ndarray:
    """Area of validated boxes of shape (..., 4); widths and heights clipped at 0."""
    width = np.maximum(boxes[..., 2] - boxes[..., 0], 0)
    height = np.maximum(boxes[..., 3] - boxes[..., 1], 0)
    return width * height


def _overlap(a: np.ndarray, b: np.ndarray, area_a, area_b, mode: str) -> np.ndarray:
    """Overlap of broadcastable box arrays a (..., 4) and b (..., 4) with their areas (...).

    "union": inter / (area_a + area_b - inter); "min": inter / min(area_a, area_b).
    Where the denominator is 0 (empty boxes) the overlap is 0.
    """
    inter_w = np.maximum(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0)
    inter_h = np.maximum(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0)
    inter = inter_w * inter_h
    if mode == "union":
        denominator = area_a + area_b - inter
    else:
        denominator = np.minimum(area_a, area_b)
    denominator = np.broadcast_to(denominator, inter.shape)
    overlap = np.zeros(inter.shape, dtype=inter.dtype)
    np.divide(inter, denominator, out=overlap, where=denominator > 0)
    return overlap


def iou(box, boxes, mode: str = "union") -> np.ndarray:
    """Overlap of one box with each of N boxes.

    box: (4,) float, x1, y1, x2, y2 in pixels; boxes: (N, 4) float, same convention.
    mode: "union" = intersection / (area1 + area2 - intersection) (intersection over union);
    "min" = intersection / min(area1, area2) (intersection over the smaller box).
    Returns (N,) float in [0, 1]; 0 wherever the denominator is 0 (empty boxes).
    """
    _check_mode(mode)
    box = np.asarray(box)
    if box.shape != (4,):
        raise ValueError(f"box must have shape (4,) as x1, y1, x2, y2; got shape {box.shape}")
    box = _as_boxes(box[None, :], name="box")
    boxes = _as_boxes(boxes)
    return _overlap(box, boxes, _area(box), _area(boxes), mode)


def pairwise_overlap(a, b, mode: str = "union") -> np.ndarray:
    """Overlap of every box in ``a`` with every box in ``b``.

    a: (Na, 4) float, b: (Nb, 4) float, both x1, y1, x2, y2 in pixels; mode as in `iou`.
    Returns (Na, Nb) float in [0, 1]: entry [i, j] is the overlap of a[i] and b[j].
    """
    _check_mode(mode)
    a = _as_boxes(a, name="a")
    b = _as_boxes(b, name="b")
    return _overlap(a[:, None, :], b[None, :, :], _area(a)[:, None], _area(b)[None, :], mode)


# ---------------------------------------------------------------- non-maximum suppression


NMS_BLOCK = 256  # boxes per block of the overlap matrix in `nms`: at most 256 x 256 numbers


def nms(boxes, scores, threshold: float, mode: str = "union") -> np.ndarray:
    """Greedy non-maximum suppression.

    boxes: (N, 4) float, x1, y1, x2, y2 in pixels; scores: (N,) float, higher is better;
    threshold: overlap in [0, 1]; mode: "union" (IoU) or "min" (see `iou`).

    Repeatedly keep the best-scored remaining box and drop every remaining box whose
    overlap with it is strictly greater than ``threshold``. Equal scores are taken in index
    order (stable sort), so the result does not depend on the sort algorithm.
    Returns (K,) int64 indices into ``boxes``, in descending score order. With threshold 1
    nothing is dropped.

    `nms_naive` does exactly that, one kept box at a time. Here the boxes, sorted by score,
    go in blocks of NMS_BLOCK: first every box of the block that a box kept in an earlier
    block overlaps is dropped (one matrix of overlaps); then the greedy rule runs inside the
    block on the block's own matrix of overlaps, where each step is one row of booleans.
    Same result, with far fewer NumPy calls when many boxes are kept.
    """
    _check_mode(mode)
    _check_threshold(threshold)
    boxes = _as_boxes(boxes)
    scores = _as_scores(scores, len(boxes))
    order = np.argsort(-scores, kind="stable")
    ranked = boxes[order]
    areas = _area(ranked)
    alive = np.ones(len(ranked), dtype=bool)  # not (yet) suppressed
    for start in range(0, len(ranked), NMS_BLOCK):
        block = slice(start, start + NMS_BLOCK)
        kept_before = np.flatnonzero(alive[:start])
        if kept_before.size:
            overlap = _overlap(ranked[kept_before, None], ranked[None, block], areas[kept_before, None],
                               areas[None, block], mode)
            alive[block] &= ~(overlap > threshold).any(axis=0)
        suppresses = _overlap(ranked[block, None], ranked[None, block], areas[block, None], areas[None, block],
                              mode) > threshold
        in_block = alive[block]  # a view: the greedy pass below updates alive
        for i in range(len(in_block)):
            if in_block[i]:  # box i is kept: it drops the later boxes of the block it overlaps
                in_block[i + 1 :] &= ~suppresses[i, i + 1 :]
    return order[alive].astype(np.int64)


def nms_naive(boxes, scores, threshold: float, mode: str = "union") -> np.ndarray:
    """Reference version of `nms` (same arguments and result): the greedy rule as written,
    one kept box at a time against all remaining boxes."""
    _check_mode(mode)
    _check_threshold(threshold)
    boxes = _as_boxes(boxes)
    scores = _as_scores(scores, len(boxes))
    areas = _area(boxes)
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size > 0:
        best, rest = order[0], order[1:]
        keep.append(best)
        overlap = _overlap(boxes[best], boxes[rest], areas[best], areas[rest], mode)
        order = rest[overlap <= threshold]
    return np.array(keep, dtype=np.int64)


def batched_nms(boxes, scores, groups, threshold: float, mode: str = "union") -> np.ndarray:
    """Non-maximum suppression run independently within each group.

    boxes: (N, 4) float, x1, y1, x2, y2 in pixels; scores: (N,) float; groups: (N,) group
    ids (e.g. the pyramid level of each box; any values np.unique can sort); threshold and
    mode as in `nms`. Boxes in different groups never suppress each other.
    Returns (K,) int64 indices into ``boxes``, in descending score order over all groups
    (equal scores: lower index first).
    """
    _check_mode(mode)
    _check_threshold(threshold)
    boxes = _as_boxes(boxes)
    scores = _as_scores(scores, len(boxes))
    groups = np.asarray(groups)
    if groups.shape != (len(boxes),):
        raise ValueError(
            f"groups must have shape ({len(boxes)},) to match the boxes; got shape {groups.shape}"
        )
    if len(boxes) == 0:
        return np.zeros(0, dtype=np.int64)
    _, group_of_box = np.unique(groups, return_inverse=True)
    kept = []
    for group in range(group_of_box.max() + 1):
        members = np.flatnonzero(group_of_box == group)
        kept.append(members[nms(boxes[members], scores[members], threshold, mode)])
    kept = np.sort(np.concatenate(kept))  # index order first, so the stable sort breaks ties by index
    return kept[np.argsort(-scores[kept], kind="stable")].astype(np.int64)


# ---------------------------------------------------------------- box arithmetic


def apply_regression(boxes, offsets, widths=None, heights=None) -> np.ndarray:
    """Move box corners by offsets given as fractions of the box size.

    boxes: (N, 4) float, x1, y1, x2, y2 in pixels; offsets: (N, 4) float, dx1, dy1, dx2, dy2
    as fractions of the box width/height (what the nets' box-regression outputs mean).
    widths, heights: optional (N,) float sizes in pixels to scale the offsets by; default
    w = x2 - x1 and h = y2 - y1. (Pass e.g. ``widths=w + 1`` to mimic a reference that
    measures sizes MATLAB-style.)
    Returns a new (N, 4) float array: x1 + dx1*w, y1 + dy1*h, x2 + dx2*w, y2 + dy2*h.
    """
    boxes = _as_boxes(boxes)
    offsets = _as_boxes(offsets, name="offsets")
    if offsets.shape != boxes.shape:
        raise ValueError(
            f"offsets must have the same shape as boxes {boxes.shape}; got shape {offsets.shape}"
        )
    dtype = np.result_type(boxes, offsets)
    sizes = []
    for name, given, default in (
        ("widths", widths, boxes[:, 2] - boxes[:, 0]),
        ("heights", heights, boxes[:, 3] - boxes[:, 1]),
    ):
        if given is None:
            sizes.append(default)
            continue
        given = np.asarray(given)
        if given.shape != (len(boxes),):
            raise ValueError(f"{name} must have shape ({len(boxes)},); got shape {given.shape}")
        sizes.append(given)
    width, height = sizes
    # columns scale as x, y, x, y
    scale = np.stack([width, height, width, height], axis=1).astype(dtype, copy=False)
    return (boxes + offsets * scale).astype(dtype, copy=False)


def make_square(boxes) -> np.ndarray:
    """Grow each box to a square about the same centre.

    boxes: (N, 4) float, x1, y1, x2, y2 in pixels.
    Returns a new (N, 4) float array whose boxes have side max(w, h) (w = x2 - x1,
    h = y2 - y1) and the same centre: x1 + (w - side)/2, y1 + (h - side)/2, then
    x2 = x1 + side, y2 = y1 + side. This is MTCNN's ``rerec``, without its truncation.
    """
    boxes = _as_boxes(boxes)
    width = boxes[:, 2] - boxes[:, 0]
    height = boxes[:, 3] - boxes[:, 1]
    side = np.maximum(width, height)
    square = np.empty_like(boxes)
    square[:, 0] = boxes[:, 0] + (width - side) / 2
    square[:, 1] = boxes[:, 1] + (height - side) / 2
    square[:, 2] = square[:, 0] + side
    square[:, 3] = square[:, 1] + side
    return square


def crop_windows(boxes, width: int, height: int) -> np.ndarray:
    """Integer pixel ranges to cut for each box from an image of ``width`` x ``height``.

    boxes: (N, 4) float, x1, y1, x2, y2 in pixels; width, height: image size in pixels (>= 1).
    Returns (N, 4) int64 windows x1, y1, x2, y2 meaning the slice
    ``image[y1:y2, x1:x2]`` (rows [y1, y2), columns [x1, x2)), with
    x1 = max(trunc(box x1), 0), y1 = max(trunc(box y1), 0), x2 = min(trunc(box x2), width),
    y2 = min(trunc(box y2), height); trunc rounds toward zero.

    This clips the box to the image instead of zero-padding the part outside it, as the
    reference MTCNN port (facenet-pytorch, models/utils/detect_face.py) does: the crop of a
    box hanging over the border is smaller, and possibly not square. The released MATLAB code
    (Zhang et al., IEEE SPL 2016, detect_face.m and pad.m) zero-pads instead: it copies the
    part inside the image into a zero-filled buffer of the box's size, then resizes that.

    A window is empty when x2 <= x1 or y2 <= y1 (the box lies outside the image, or is
    thinner than a pixel after truncation); find those with `nonempty_windows`. All
    coordinates are also clipped into [0, width] x [0, height], so that every window is a
    valid slice; this changes nothing for nonempty windows.
    """
    boxes = _as_boxes(boxes)
    for name, value in (("width", width), ("height", height)):
        if int(value) != value or value < 1:
            raise ValueError(f"image {name} must be an integer >= 1; got {value!r}")
    # clip before the integer cast so that huge coordinates cannot overflow int64
    upper = np.array([width, height, width, height], dtype=boxes.dtype)
    return np.clip(np.trunc(boxes), 0, upper).astype(np.int64)


def nonempty_windows(windows) -> np.ndarray:
    """Which integer windows contain at least one pixel.

    windows: (N, 4) int, x1, y1, x2, y2 from `crop_windows`.
    Returns (N,) bool: (x2 > x1) & (y2 > y1).
    """
    windows = np.asarray(windows)
    if windows.ndim != 2 or windows.shape[1] != 4:
        raise ValueError(f"windows must have shape (N, 4) as x1, y1, x2, y2; got shape {windows.shape}")
    return (windows[:, 2] > windows[:, 0]) & (windows[:, 3] > windows[:, 1])
