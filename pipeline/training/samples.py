"""Training samples for the cascade nets: face windows, non-face windows and calibration crops.

Everything a net trains on is a small square crop, cut from a photo with `crop_and_resize` (the
same cut and area resize the detectors use, so that training and detection see windows made the
same way) and stored as uint8 (N, S, S, 3) RGB, S = 12, 24 or 48.

* A face's window is the square about its box (`face_window`): the nets look at square windows.
* Positives: face windows moved and rescaled a little (`jitter_windows`), kept only while they
  overlap the face window with IoU >= 0.65, because the detector's windows never sit exactly on
  a face. Mirroring is done at training time (`pipeline.training.loop`).
* Negatives: random windows of many sizes from face-free photos (`random_windows`), and windows
  of the face photos that overlap the face with IoU < 0.3 (`windows_away_from`).
* Calibration crops: a face window perturbed by one of the 45 patterns, labelled with it
  (`pipeline.detection.calibration.perturb_boxes`).

Colour: most of the face-free photos are grayscale while all the faces are in colour. A net fed
that would learn "colour means face". So faces and the face photos' negatives are turned gray
with the same probability as a face-free photo is gray (`gray_share`), and the rest get a small
random colour jitter (`color_jitter`).

All randomness comes from one `numpy.random.Generator`, so a seed fixes the sample set.
"""

from __future__ import annotations

import numpy as np

from pipeline.detection.boxes import make_square, pairwise_overlap
from pipeline.detection.crops import crop_and_resize

POSITIVE_IOU = 0.65  # a jittered face window still counts as the face above this IoU
NEGATIVE_IOU = 0.3   # a window counts as "not the face" below this IoU
GRAY_WEIGHTS = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R 601 luma, as PIL's "L"


def face_window(boxes) -> np.ndarray:
    """The square window the nets should see for each face.

    boxes: (N, 4) float face boxes x1, y1, x2, y2 in pixels. Returns (N, 4) float64 squares of
    side sqrt(w * h) about each box's centre (the square of the same area, which overlaps a
    box of any aspect ratio best among squares of comparable size).
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    side = np.sqrt(np.maximum(w, 0) * np.maximum(h, 0))
    cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    return np.stack([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2], axis=1)


def jitter_windows(rng: np.random.Generator, windows, count: int, max_shift: float = 0.1,
                   max_scale: float = 0.15, min_iou: float = POSITIVE_IOU) -> np.ndarray:
    """Up to ``count`` randomly moved copies of each square window that still overlap it.

    windows: (N, 4) float squares x1, y1, x2, y2 in pixels; max_shift: largest move of the
    centre, as a fraction of the side; max_scale: the side is multiplied by exp(u),
    |u| <= log(1 + max_scale). Copies with IoU < min_iou with their window are dropped.
    Returns (M, 4) float64 squares and (M,) int64 index of the window each came from.
    """
    windows = np.asarray(windows, dtype=np.float64).reshape(-1, 4)
    n = len(windows)
    index = np.repeat(np.arange(n), count)
    side = (windows[index, 2] - windows[index, 0])
    cx = (windows[index, 0] + windows[index, 2]) / 2 + rng.uniform(-max_shift, max_shift, n * count) * side
    cy = (windows[index, 1] + windows[index, 3]) / 2 + rng.uniform(-max_shift, max_shift, n * count) * side
    side = side * np.exp(rng.uniform(-1, 1, n * count) * np.log1p(max_scale))
    moved = np.stack([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2], axis=1)
    overlap = pairwise_overlap(moved, windows)[np.arange(len(moved)), index] if n else np.zeros(0)
    keep = overlap >= min_iou
    return moved[keep], index[keep]


def random_windows(rng: np.random.Generator, width: int, height: int, count: int, min_size: float = 12.0,
                   max_size: float | None = None) -> np.ndarray:
    """``count`` random square windows inside a width x height image.

    Sides are log-uniform in [min_size, max_size] (default: the shorter image side), so small
    and large windows are equally common, as in a pyramid scan. Returns (K, 4) float64 squares
    x1, y1, x2, y2 in pixels, K = count (0 when the image is smaller than min_size).
    """
    largest = min(width, height) if max_size is None else min(max_size, width, height)
    if largest < min_size or count <= 0:
        return np.zeros((0, 4))
    side = np.exp(rng.uniform(np.log(min_size), np.log(largest), count))
    x1 = rng.uniform(0, 1, count) * (width - side)
    y1 = rng.uniform(0, 1, count) * (height - side)
    return np.stack([x1, y1, x1 + side, y1 + side], axis=1)


def windows_away_from(rng: np.random.Generator, face, width: int, height: int, count: int,
                      min_size: float = 12.0, max_iou: float = NEGATIVE_IOU, tries: int = 8) -> np.ndarray:
    """Random square windows of a face photo that overlap its face window with IoU < max_iou.

    face: (4,) the face window; width, height: the photo's size. Draws count * tries random
    windows (sizes log-uniform from min_size to the photo's shorter side) and keeps the first
    ``count`` far enough from the face. Returns (K, 4) float64, K <= count.
    """
    candidates = random_windows(rng, width, height, count * tries, min_size)
    if not len(candidates):
        return candidates
    far = pairwise_overlap(candidates, np.asarray(face, np.float64).reshape(1, 4))[:, 0] < max_iou
    return candidates[far][:count]


def cut(image: np.ndarray, boxes, size: int) -> np.ndarray:
    """Crop boxes from an RGB photo and resize them as the detectors do.

    image: (H, W, 3) uint8; boxes: (K, 4) float x1, y1, x2, y2 in pixels (clipped to the photo,
    as `crop_and_resize` does); size: output side in pixels. Returns (K', size, size, 3) uint8
    patches and (K',) int64 indices of the boxes that gave a crop
    (boxes entirely outside the photo give none).
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if not len(boxes):
        return np.zeros((0, size, size, 3), np.uint8), np.zeros(0, np.int64)
    chw = np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32)
    patches, kept = crop_and_resize(chw, boxes.astype(np.float32), size)
    patches = np.clip(np.rint(patches), 0, 255).astype(np.uint8).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(patches), kept


def to_gray(patches: np.ndarray) -> np.ndarray:
    """(K, S, S, 3) uint8 RGB -> the same shape in gray (three equal channels), as a grayscale
    photo loads."""
    luma = np.rint(patches.astype(np.float32) @ GRAY_WEIGHTS)
    return np.repeat(np.clip(luma, 0, 255).astype(np.uint8)[..., None], 3, axis=-1)


def color_jitter(rng: np.random.Generator, patches: np.ndarray, strength: float = 0.2) -> np.ndarray:
    """Random brightness, contrast and saturation changes of up to +-strength per patch.

    patches: (K, S, S, 3) uint8. Returns a new uint8 array of the same shape.
    """
    k = len(patches)
    x = patches.astype(np.float32)
    gray = (x @ GRAY_WEIGHTS)[..., None]
    saturation = rng.uniform(1 - strength, 1 + strength, (k, 1, 1, 1)).astype(np.float32)
    x = gray + saturation * (x - gray)
    mean = gray.mean(axis=(1, 2, 3), keepdims=True)
    contrast = rng.uniform(1 - strength, 1 + strength, (k, 1, 1, 1)).astype(np.float32)
    brightness = rng.uniform(1 - strength, 1 + strength, (k, 1, 1, 1)).astype(np.float32)
    x = (mean + contrast * (x - mean)) * brightness
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def match_colour(rng: np.random.Generator, patches: np.ndarray, gray_share: float) -> np.ndarray:
    """Turn each patch gray with probability ``gray_share``; colour-jitter the others.

    patches: (K, S, S, 3) uint8. Returns a new (K, S, S, 3) uint8 array.
    """
    out = color_jitter(rng, patches)
    gray = rng.random(len(patches)) < gray_share
    if gray.any():
        out[gray] = to_gray(patches[gray])
    return out


def gray_share(negative_images) -> float:
    """Share of grayscale photos among face-free photos (objects with a ``gray`` attribute)."""
    images = list(negative_images)
    return sum(bool(image.gray) for image in images) / len(images) if images else 0.0
