"""Cascade-CNN's box calibration: 45 patterns of scale and shift, and how their scores move a box.

Li et al. (CVPR 2015, section 3.2) train a calibration net to tell which of 45 small changes of
scale and position separates a window from the face it almost covers. Each pattern n is a triple
(s_n, x_n, y_n) from

    s in (0.83, 0.91, 1.0, 1.10, 1.21),  x in (-0.17, 0, +0.17),  y in (-0.17, 0, +0.17)

with class index n = 9 * i_s + 3 * i_x + i_y (0-based indices, s varying slowest).

A training crop labelled n is cut from the face box (x, y, w, h) (top-left corner and size) at

    top-left (x + x_n * w, y + y_n * h),  size (s_n * w, s_n * h)         (``perturb_boxes``)

and the correction for pattern n moves a window (x, y, w, h) to

    top-left (x - x_n * w / s_n, y - y_n * h / s_n),  size (w / s_n, h / s_n)   (``correct_boxes``)

so correcting a crop made with pattern n gives the face box back exactly. At test time the
patterns whose probability exceeds t (0.1, as every public implementation uses) are averaged,
separately in s, x and y, and the average pattern is applied; with no pattern above t the window
stays as it is (``calibrate``).

Boxes are (x1, y1, x2, y2) in pixels (`pipeline.detection.boxes`), converted to (x, y, w, h) here.
"""

from __future__ import annotations

import numpy as np

SCALES = (0.83, 0.91, 1.0, 1.10, 1.21)
SHIFTS = (-0.17, 0.0, 0.17)
NUM_PATTERNS = len(SCALES) * len(SHIFTS) * len(SHIFTS)  # 45
CALIBRATION_THRESHOLD = 0.1  # a pattern counts when its probability is above this

# (45, 3): row n is (s_n, x_n, y_n), n = 9 * i_s + 3 * i_x + i_y
PATTERNS = np.array([(s, x, y) for s in SCALES for x in SHIFTS for y in SHIFTS], dtype=np.float64)


def _as_xywh(boxes):
    boxes = np.asarray(boxes, dtype=np.float64)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"boxes must have shape (N, 4) as x1, y1, x2, y2; got shape {boxes.shape}")
    return boxes[:, 0], boxes[:, 1], boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]


def _patterns(patterns, n):
    patterns = np.asarray(patterns, dtype=np.float64)
    if patterns.ndim == 1:  # class indices
        if not np.issubdtype(patterns.dtype, np.integer) and not np.all(patterns == np.round(patterns)):
            raise ValueError("pattern indices must be integers in [0, 45)")
        index = patterns.astype(np.int64)
        if np.any((index < 0) | (index >= NUM_PATTERNS)):
            raise ValueError(f"pattern indices must lie in [0, {NUM_PATTERNS}); got {np.unique(index)}")
        patterns = PATTERNS[index]
    if patterns.shape != (n, 3):
        raise ValueError(f"patterns must be ({n},) indices or ({n}, 3) (s, x, y) triples; got shape {patterns.shape}")
    if np.any(patterns[:, 0] <= 0):
        raise ValueError("pattern scales must be > 0")
    return patterns[:, 0], patterns[:, 1], patterns[:, 2]


def perturb_boxes(boxes, patterns) -> np.ndarray:
    """The training crop of each face box for a calibration pattern.

    boxes: (N, 4) float, face boxes x1, y1, x2, y2 in pixels; patterns: (N,) int class indices
    in [0, 45), or (N, 3) (s, x, y) triples. Returns (N, 4) float64 boxes: top-left moved by
    (x * w, y * h), size scaled by s.
    """
    x, y, w, h = _as_xywh(boxes)
    s, dx, dy = _patterns(patterns, len(x))
    x1, y1 = x + dx * w, y + dy * h
    return np.stack([x1, y1, x1 + s * w, y1 + s * h], axis=1)


def correct_boxes(boxes, patterns) -> np.ndarray:
    """Undo a calibration pattern: the inverse of `perturb_boxes`.

    boxes: (N, 4) float windows x1, y1, x2, y2 in pixels; patterns: (N,) int class indices or
    (N, 3) (s, x, y) triples (e.g. averaged ones). Returns (N, 4) float64 boxes: top-left
    (x - x_n w / s_n, y - y_n h / s_n), size (w / s_n, h / s_n).
    """
    x, y, w, h = _as_xywh(boxes)
    s, dx, dy = _patterns(patterns, len(x))
    x1, y1 = x - dx * w / s, y - dy * h / s
    return np.stack([x1, y1, x1 + w / s, y1 + h / s], axis=1)


def mean_patterns(probs, threshold: float = CALIBRATION_THRESHOLD):
    """Average of the patterns each window's calibration net believes in.

    probs: (N, 45) float, softmax outputs of a calibration net. Returns (patterns, any_passed):
    patterns (N, 3) float64, the mean (s, x, y) of the patterns with probability > threshold
    (the identity (1, 0, 0) where none passes), and any_passed (N,) bool.
    """
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or probs.shape[1] != NUM_PATTERNS:
        raise ValueError(f"probs must have shape (N, {NUM_PATTERNS}); got shape {probs.shape}")
    passed = probs > threshold  # (N, 45)
    count = passed.sum(axis=1)
    mean = passed @ PATTERNS / np.maximum(count, 1)[:, None]
    mean[count == 0] = (1.0, 0.0, 0.0)
    return mean, count > 0


def calibrate(boxes, probs, threshold: float = CALIBRATION_THRESHOLD) -> np.ndarray:
    """Correct each window with the average of its calibration patterns above ``threshold``.

    boxes: (N, 4) float windows x1, y1, x2, y2 in pixels; probs: (N, 45) calibration net
    probabilities. Returns (N, 4) float64 corrected boxes (a window with no pattern above the
    threshold is returned unchanged).
    """
    mean, _ = mean_patterns(probs, threshold)
    return correct_boxes(boxes, mean)


def mirrored_patterns() -> np.ndarray:
    """(45,) int: the pattern of a mirrored crop. Mirroring left-right negates the x shift and
    keeps s and y: n = 9 i_s + 3 i_x + i_y becomes 9 i_s + 3 (2 - i_x) + i_y."""
    n = np.arange(NUM_PATTERNS)
    i_s, i_x, i_y = n // 9, (n // 3) % 3, n % 3
    return 9 * i_s + 3 * (2 - i_x) + i_y
