"""Training windows drawn on whole photos with many labelled faces (WIDER FACE), for both cascades.

This is the geometry of MTCNN's recipe (Zhang et al., 2016, as its public reimplementations
build it), with no pixels: each function returns square windows x1, y1, x2, y2 in pixels of
the photo; `pipeline.training.mtcnn_samples` and `pipeline.training.cascade_samples` cut them at their nets'
sizes and give them their labels.

* Negatives (`random_negative_windows`): random squares of every size (log-uniform from 12 px to the
  photo's shorter side, as a pyramid scan sees them) whose IoU with *every* labelled box, the
  small and the invalid ones too, is below 0.3.
* Near negatives (`near_negative_windows`): squares placed next to each face (moved from its corner by
  up to a side), again below 0.3 with every box: the hard background beside faces (hair,
  shoulders, the next person's collar).
* Positives and parts (`around_faces`): squares about each face of at least ``min_face``
  pixels (side from 0.8 x its shorter to 1.25 x its longer edge, centre moved by up to 0.2 of
  its size), put on whole pixels, kept inside the photo, labelled by their IoU with the face
  they overlap most: positive above 0.65, part from 0.4 to 0.65, with that face's box as the
  regression target.

A window on a crowd without a box is not always free of faces (the annotators left out faces
they could not recognise); the IoU rule against every box, the small ones included, is the
recipe's guard, and the face-free photos add negatives that are certainly clean.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.detection.boxes import pairwise_overlap

NEGATIVE_IOU = 0.3   # below this with every box: a negative
PART_IOU = 0.4       # parts overlap their face with PART_IOU <= IoU <= POSITIVE_IOU
POSITIVE_IOU = 0.65  # above this: a positive
MIN_WINDOW = 12.0    # the smallest window a detector scans (P-Net's and the 12-net's input)


@dataclass
class PhotoCounts:
    """How many windows to draw on each training photo.

    random_negatives: per photo; near_negatives: per face of at least min_face px;
    candidates: squares drawn about each such face, among which the positives and parts are
    found (about 28% are positives, the rest parts: measured on a 40 x 50 face); positives, parts: at most this many of
    each kind per face; min_face: the shorter side, in pixels, of a face that gets positives;
    max_photos: use only the first photos (quick runs).
    """

    random_negatives: int = 40
    near_negatives: int = 3
    candidates: int = 20
    positives: int = 4
    parts: int = 4
    min_face: float = 20.0
    max_photos: int | None = None


def large_faces(faces, min_face: float) -> np.ndarray:
    """(F, 4) faces -> those whose shorter side is at least min_face pixels."""
    faces = np.asarray(faces, dtype=np.float64).reshape(-1, 4)
    return faces[np.minimum(faces[:, 2] - faces[:, 0], faces[:, 3] - faces[:, 1]) >= min_face]


def max_overlap(windows, boxes) -> np.ndarray:
    """(N,) the largest IoU of each window (N, 4) with any box (K, 4); 0 when K = 0."""
    windows = np.asarray(windows, dtype=np.float64).reshape(-1, 4)
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if not len(boxes) or not len(windows):
        return np.zeros(len(windows))
    return pairwise_overlap(windows, boxes).max(axis=1)


def snap_to_pixels(windows) -> np.ndarray:
    """Squares on whole pixels: x1, y1 rounded down, the side rounded (at least 1).
    windows: (N, 4). Returns (N, 4) float64; the crop of such a window is the window exactly."""
    windows = np.asarray(windows, dtype=np.float64).reshape(-1, 4)
    side = np.maximum(np.rint(windows[:, 2] - windows[:, 0]), 1)
    x1, y1 = np.floor(windows[:, 0]), np.floor(windows[:, 1])
    return np.stack([x1, y1, x1 + side, y1 + side], axis=1)


def inside(windows, width: int, height: int) -> np.ndarray:
    """(N,) bool: which windows (N, 4) lie wholly inside a width x height photo."""
    w = np.asarray(windows, dtype=np.float64).reshape(-1, 4)
    return (w[:, 0] >= 0) & (w[:, 1] >= 0) & (w[:, 2] <= width) & (w[:, 3] <= height)


def random_negative_windows(rng: np.random.Generator, width: int, height: int, boxes, count: int,
                     tries: int = 3) -> np.ndarray:
    """Up to ``count`` random squares of a photo with IoU < 0.3 with every box.

    width, height: the photo's size in pixels; boxes: (K, 4) every labelled box. Draws
    count * tries squares (sides log-uniform in [12, min(width, height)]) and keeps the first
    ``count`` that qualify. Returns (M, 4) float64 on whole pixels, M <= count.
    """
    largest = min(width, height)
    if largest < MIN_WINDOW or count <= 0:
        return np.zeros((0, 4))
    n = count * tries
    side = np.floor(np.exp(rng.uniform(np.log(MIN_WINDOW), np.log(largest), n)))
    x1 = np.floor(rng.uniform(0, 1, n) * (width - side + 1))
    y1 = np.floor(rng.uniform(0, 1, n) * (height - side + 1))
    windows = np.stack([x1, y1, x1 + side, y1 + side], axis=1)
    return windows[max_overlap(windows, boxes) < NEGATIVE_IOU][:count]


def near_negative_windows(rng: np.random.Generator, width: int, height: int, faces, boxes,
                   per_face: int, tries: int = 3) -> np.ndarray:
    """Squares beside each face with IoU < 0.3 with every box.

    faces: (F, 4) the faces to draw beside; boxes: (K, 4) every labelled box. For each face
    of width w and height h: sides uniform in [12, min(width, height) / 2), the top-left corner
    at the face's moved by uniform amounts in [-side, w) and [-side, h) (so the square touches
    or overlaps the face's region), kept inside the photo. Returns (M, 4) float64 on whole
    pixels, at most per_face per face.
    """
    faces = np.asarray(faces, dtype=np.float64).reshape(-1, 4)
    largest = min(width, height) / 2
    if largest <= MIN_WINDOW or per_face <= 0 or not len(faces):
        return np.zeros((0, 4))
    out = []
    for x1, y1, x2, y2 in faces:
        n = per_face * tries
        side = np.floor(rng.uniform(MIN_WINDOW, largest, n))
        nx = np.floor(x1 + rng.uniform(-1, 0, n) * side + rng.uniform(0, 1, n) * (x2 - x1))
        ny = np.floor(y1 + rng.uniform(-1, 0, n) * side + rng.uniform(0, 1, n) * (y2 - y1))
        windows = np.stack([nx, ny, nx + side, ny + side], axis=1)
        windows = windows[inside(windows, width, height)]
        out.append(windows[max_overlap(windows, boxes) < NEGATIVE_IOU][:per_face])
    return np.concatenate(out)


def around_faces(rng: np.random.Generator, width: int, height: int, faces, count: int,
                 min_scale: float = 0.8, max_scale: float = 1.25, max_shift: float = 0.2):
    """``count`` squares about each face, labelled by IoU with the face they overlap most.

    faces: (F, 4) the faces to draw about (each also the candidate for every window's
    target). Side uniform in [min_scale * min(w, h), max_scale * max(w, h)], centre moved by
    uniform amounts in +-max_shift * w and +-max_shift * h; squares on whole pixels, wholly
    inside the photo (a clipped crop would not be the window its targets are measured in).
    Returns (windows (N, 4) float64, iou (N,) float64 with the best face, target (N,) int64 the
    index of that face); N <= F * count.
    """
    faces = np.asarray(faces, dtype=np.float64).reshape(-1, 4)
    if not len(faces) or count <= 0:
        return np.zeros((0, 4)), np.zeros(0), np.zeros(0, np.int64)
    w = np.repeat(faces[:, 2] - faces[:, 0], count)
    h = np.repeat(faces[:, 3] - faces[:, 1], count)
    cx = np.repeat((faces[:, 0] + faces[:, 2]) / 2, count) + rng.uniform(-max_shift, max_shift, len(w)) * w
    cy = np.repeat((faces[:, 1] + faces[:, 3]) / 2, count) + rng.uniform(-max_shift, max_shift, len(w)) * h
    side = rng.uniform(min_scale * np.minimum(w, h), max_scale * np.maximum(w, h))
    windows = snap_to_pixels(np.stack([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2], axis=1))
    windows = windows[inside(windows, width, height)]
    if not len(windows):
        return windows, np.zeros(0), np.zeros(0, np.int64)
    overlap = pairwise_overlap(windows, faces)
    target = overlap.argmax(axis=1)
    return windows, overlap[np.arange(len(windows)), target], target


def pick(rng: np.random.Generator, index: np.ndarray, count: int) -> np.ndarray:
    """Up to ``count`` of ``index``, chosen at random without repeats, in their order."""
    index = np.asarray(index)
    return index if len(index) <= count else np.sort(rng.choice(index, count, replace=False))
