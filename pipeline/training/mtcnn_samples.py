"""The training samples of MTCNN's three nets, made from the face records and cached.

MTCNN (Zhang et al., IEEE SPL 2016) trains each net on four kinds of square windows, told
apart by their overlap (IoU) with the face box (the MTCNN-convention box of `face_split`):

    negative   IoU < 0.3            face label 0                       (kind 0)
    positive   IoU > 0.65           face label 1 and the box offsets   (kind 1)
    part       0.4 <= IoU <= 0.65   the box offsets only               (kind 2)
    landmark   IoU > 0.65           the five points only               (kind 3)

in the ratio 3 : 1 : 1 : 2 (`MTCNNSampleCounts`, per face). The loss that reads these labels
is `pipeline.training.multitask`.

* Positives and parts: squares drawn about each training face (`windows_around`: side from
  0.8 x its shorter to 1.25 x its longer edge, centre moved by up to 0.2 of its width and
  height) and put on whole pixels (`snap_to_pixels`, so that the crop is exactly the window),
  labelled by IoU (`label_windows`), each with its 4 regression offsets
  (`regression_targets`): the corner offsets of the released models, normalized by the
  window side, so that `pipeline.detection.boxes.apply_regression(window, offsets)` is the face box.
* Landmark samples: windows about the face with IoU > 0.65, cut from the photo turned by a
  small random angle about the face centre (`rotate_image`), with the points turned the same
  way (`rotate_points`) and given as fractions of the window (`landmark_targets`); a sample
  whose points do not all fall inside the window is dropped. Left-right mirroring is left to
  training time (`pipeline.training.multitask.mirror_landmarks`).
* Negatives: windows of the face photo away from the face (`windows_away_from`) and random
  windows of the face-free photos (`random_negatives`).
* Colour: everything cut from the face photos is turned gray as often as a face-free photo is
  gray, the rest colour-jittered (`match_colour`), exactly as for Cascade-CNN's samples.

Windows around a face must lie inside its photo: a window hanging over the border would be
clipped when cut, and the crop would no longer be the window the offsets are measured in.

Splits and photo lists are those of `pipeline.training.cascade_samples`; a set is cached as
``<out>/samples/<net>-<split>.npz`` (`pipeline.training.loop.load_or_build`).

Hard examples (the last section): R-Net's and O-Net's sets add the windows that the trained
earlier stages let through (`proposed_windows`) on the same face photos, labelled by IoU with
the face like the random ones (`mined_face_samples`), and on the face-free photos
(`mined_photo_negatives`); `build_mined_samples` puts the two together.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nets import ONET_SIZE, PNET_SIZE, RNET_SIZE

from pipeline.detection.boxes import pairwise_overlap
from pipeline.training.cascade_samples import _faces_and_photos, random_negatives
from pipeline.data.datasets import negative_split
from pipeline.data.images import load_image
from pipeline.training.multitask import KIND_NAMES, LANDMARK, NEGATIVE, PART, POSITIVE
from pipeline.training.photo_windows import (MIN_WINDOW, PhotoCounts, around_faces, inside, large_faces, max_overlap,
                            near_negative_windows, pick, random_negative_windows, snap_to_pixels)
from pipeline.training.samples import NEGATIVE_IOU, POSITIVE_IOU, cut, gray_share, match_colour, windows_away_from
from pipeline.training.loop import SampleSet, load_or_build

PART_IOU = 0.4  # parts overlap the face with PART_IOU <= IoU <= POSITIVE_IOU
SAMPLE_SIZES = {"pnet": PNET_SIZE, "rnet": RNET_SIZE, "onet": ONET_SIZE}
UNLABELLED = -1  # label_windows: a window with 0.3 <= IoU < 0.4, which MTCNN does not use


@dataclass
class MTCNNSampleCounts:
    """How many samples to make per face. The defaults give negatives : positives : parts :
    landmarks = (1 + 2) : 1 : 1 : 2, the paper's 3 : 1 : 1 : 2 (see `mix`).

    positives_per_face, parts_per_face, landmarks_per_face: windows of each kind per face
    (fewer when the candidates hold fewer); face_negatives_per_face: windows of the face photo
    with IoU < 0.3; photo_negatives_per_face: random windows of the face-free photos, per face
    (spread evenly over the photos); candidates_per_face: squares drawn about each face to find
    the positives, parts and landmark windows among (about a quarter are positives);
    max_rotation: landmark samples are turned by an angle uniform in +-max_rotation degrees;
    max_faces, max_photos: use only the first faces / face-free photos (quick runs).
    """

    positives_per_face: int = 1
    parts_per_face: int = 1
    landmarks_per_face: int = 2
    face_negatives_per_face: int = 1
    photo_negatives_per_face: int = 2
    candidates_per_face: int = 20
    max_rotation: float = 5.0
    max_faces: int | None = None
    max_photos: int | None = None

    def mix(self) -> tuple[int, int, int, int]:
        """(negatives, positives, parts, landmarks) asked for per face."""
        return (self.face_negatives_per_face + self.photo_negatives_per_face, self.positives_per_face,
                self.parts_per_face, self.landmarks_per_face)


# ---------------------------------------------------------------- windows and their labels

def windows_around(rng: np.random.Generator, box, count: int, min_scale: float = 0.8, max_scale: float = 1.25,
                   max_shift: float = 0.2) -> np.ndarray:
    """``count`` random squares about a face box.

    box: (4,) x1, y1, x2, y2 in pixels, w = x2 - x1, h = y2 - y1. Each side is uniform in
    [min_scale * min(w, h), max_scale * max(w, h)]; each centre is the box centre moved by
    uniform amounts in +-max_shift * w and +-max_shift * h. Returns (count, 4) float64 squares.
    """
    x1, y1, x2, y2 = np.asarray(box, dtype=np.float64)
    w, h = x2 - x1, y2 - y1
    side = rng.uniform(min_scale * min(w, h), max_scale * max(w, h), count)
    cx = (x1 + x2) / 2 + rng.uniform(-max_shift, max_shift, count) * w
    cy = (y1 + y2) / 2 + rng.uniform(-max_shift, max_shift, count) * h
    return np.stack([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2], axis=1)


def label_windows(windows, box) -> tuple[np.ndarray, np.ndarray]:
    """The kind of each window by its IoU with the face box.

    windows: (N, 4); box: (4,). Returns (kinds, iou): kinds (N,) int64 NEGATIVE if IoU < 0.3,
    PART if 0.4 <= IoU <= 0.65, POSITIVE if IoU > 0.65, UNLABELLED (-1) in between (0.3 to 0.4);
    iou (N,) float64.
    """
    windows = np.asarray(windows, dtype=np.float64).reshape(-1, 4)
    iou = pairwise_overlap(windows, np.asarray(box, np.float64).reshape(1, 4))[:, 0]
    kinds = np.full(len(windows), UNLABELLED, np.int64)
    kinds[iou < NEGATIVE_IOU] = NEGATIVE
    kinds[(iou >= PART_IOU) & (iou <= POSITIVE_IOU)] = PART
    kinds[iou > POSITIVE_IOU] = POSITIVE
    return kinds, iou


def regression_targets(windows, box) -> np.ndarray:
    """The box-regression offsets of a face box in each square window.

    windows: (N, 4) squares x1, y1, x2, y2 of side s = x2 - x1; box: (4,) the face box, or
    (N, 4) one face box per window. Returns (N, 4) float64 ((bx1 - x1) / s, (by1 - y1) / s,
    (bx2 - x2) / s, (by2 - y2) / s), so that ``apply_regression(windows, offsets)`` gives the
    face box back.
    """
    windows = np.asarray(windows, dtype=np.float64).reshape(-1, 4)
    side = (windows[:, 2] - windows[:, 0])[:, None]
    return (np.asarray(box, np.float64).reshape(-1, 4) - windows) / side


def landmark_targets(windows, points) -> np.ndarray:
    """The five points as fractions of each square window, in the released O-Net's layout.

    windows: (N, 4) squares of side s; points: (N, 5, 2) or (5, 2) (x, y) in pixels.
    Returns (N, 10) float64 (x_k - x1) / s for k = 1..5, then (y_k - y1) / s: the inverse of
    `pipeline.detection.mtcnn.decode_landmarks`.
    """
    windows = np.asarray(windows, dtype=np.float64).reshape(-1, 4)
    points = np.broadcast_to(np.asarray(points, dtype=np.float64), (len(windows), 5, 2))
    side = (windows[:, 2] - windows[:, 0])[:, None]
    xs = (points[:, :, 0] - windows[:, 0:1]) / side
    ys = (points[:, :, 1] - windows[:, 1:2]) / side
    return np.concatenate([xs, ys], axis=1)


# ---------------------------------------------------------------- small rotations

def rotate_points(points, angle: float, centre) -> np.ndarray:
    """Turn points by ``angle`` degrees about ``centre``, counter-clockwise as the image is
    shown (x to the right, y down): (dx, dy) -> (dx cos a + dy sin a, -dx sin a + dy cos a).

    points: (..., 2) (x, y) in pixels; centre: (2,). Returns a float64 array like points.
    """
    points = np.asarray(points, dtype=np.float64)
    centre = np.asarray(centre, dtype=np.float64)
    a = np.deg2rad(angle)
    d = points - centre
    return np.stack([d[..., 0] * np.cos(a) + d[..., 1] * np.sin(a),
                     -d[..., 0] * np.sin(a) + d[..., 1] * np.cos(a)], axis=-1) + centre


def rotate_image(image: np.ndarray, angle: float, centre) -> np.ndarray:
    """Turn an image by ``angle`` degrees about ``centre`` like `rotate_points` turns points.

    image: (H, W, C) uint8; centre: (2,) (x, y) in pixels. Each output pixel takes the
    bilinear interpolation of the input at its centre (x + 0.5, y + 0.5) turned back by -angle;
    places that come from outside the image repeat the nearest border pixel. Returns a new
    (H, W, C) uint8 array (angle 0 gives the image back).
    """
    H, W = image.shape[:2]
    ys, xs = np.mgrid[0:H, 0:W].astype(np.float64) + 0.5
    source = rotate_points(np.stack([xs, ys], axis=-1), -angle, centre) - 0.5  # in pixel-index units
    x0, y0 = np.floor(source[..., 0]), np.floor(source[..., 1])
    fx, fy = (source[..., 0] - x0)[..., None], (source[..., 1] - y0)[..., None]
    x0, y0 = x0.astype(np.int64), y0.astype(np.int64)

    def at(y, x):
        return image[np.clip(y, 0, H - 1), np.clip(x, 0, W - 1)].astype(np.float64)

    out = ((1 - fy) * ((1 - fx) * at(y0, x0) + fx * at(y0, x0 + 1))
           + fy * ((1 - fx) * at(y0 + 1, x0) + fx * at(y0 + 1, x0 + 1)))
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------- samples of one face

def _labels(kind: int, n: int, box=None, points=None) -> dict:
    """Label arrays for n samples of one kind; NaN where the kind has no such target."""
    return {"kind": np.full(n, kind, np.int64),
            "box": (np.full((n, 4), np.nan) if box is None else box).astype(np.float32),
            "landmarks": (np.full((n, 10), np.nan) if points is None else points).astype(np.float32)}


def _pick(rng, index: np.ndarray, count: int) -> np.ndarray:
    """Up to ``count`` of ``index``, chosen at random without repeats."""
    return index if len(index) <= count else np.sort(rng.choice(index, count, replace=False))


def face_samples(rng: np.random.Generator, photo: np.ndarray, box, points, size: int, counts: MTCNNSampleCounts,
                 share_gray: float) -> SampleSet:
    """Positives, parts, landmark samples and negatives of one face photo, at size x size.

    photo: (H, W, 3) uint8 RGB; box: (4,) the face box (MTCNN convention); points: (5, 2)
    (x, y) landmarks in pixels; counts: how many of each; share_gray: probability of turning
    a patch gray (the rest are colour-jittered).
    """
    height, width = photo.shape[:2]
    box = np.asarray(box, np.float64)
    windows = snap_to_pixels(windows_around(rng, box, counts.candidates_per_face))
    windows = windows[inside(windows, width, height)]
    kinds, _ = label_windows(windows, box)
    sets = []
    for kind, count in ((POSITIVE, counts.positives_per_face), (PART, counts.parts_per_face)):
        chosen = windows[_pick(rng, np.flatnonzero(kinds == kind), count)]
        sets.append((cut(photo, chosen, size)[0], _labels(kind, len(chosen), box=regression_targets(chosen, box))))

    centre = (box[:2] + box[2:]) / 2
    for window in windows[_pick(rng, np.flatnonzero(kinds == POSITIVE), counts.landmarks_per_face)]:
        angle = rng.uniform(-counts.max_rotation, counts.max_rotation)
        targets = landmark_targets(window[None], rotate_points(points, angle, centre))
        if np.all((targets > 0) & (targets < 1)):
            patch = cut(rotate_image(photo, angle, centre), window[None], size)[0]
            sets.append((patch, _labels(LANDMARK, 1, points=targets)))

    away = windows_away_from(rng, box, width, height, counts.face_negatives_per_face)
    sets.append((cut(photo, away, size)[0], _labels(NEGATIVE, len(away))))
    images = match_colour(rng, np.concatenate([patches for patches, _ in sets]), share_gray)
    return SampleSet(images, {name: np.concatenate([labels[name] for _, labels in sets])
                              for name in ("kind", "box", "landmarks")})


def photo_negatives(rng: np.random.Generator, photos, size: int, count: int) -> SampleSet:
    """``count`` random windows of the face-free photos (about as many from each), at
    size x size, in their own colour."""
    if count <= 0 or not photos:
        return SampleSet(np.zeros((0, size, size, 3), np.uint8), _labels(NEGATIVE, 0))
    per_photo = -(-count // len(photos))
    images = random_negatives(rng, photos, size, per_photo).images
    if len(images) > count:
        images = images[np.sort(rng.choice(len(images), count, replace=False))]
    return SampleSet(images, _labels(NEGATIVE, len(images)))


# ---------------------------------------------------------------- whole sets, cached

def build_mtcnn_samples(net: str, split: str, data_dir, counts: MTCNNSampleCounts, seed: int) -> SampleSet:
    """The samples of "pnet", "rnet" or "onet" for one split ("train" or "val"), from the
    faces of that split and its face-free photos. Deterministic for a given seed."""
    size = SAMPLE_SIZES[net]
    rng = np.random.default_rng([seed, size, 0 if split == "train" else 1, 2])
    faces, photos = _faces_and_photos(data_dir, split, counts)
    share = gray_share(negative_split(data_dir, "train"))
    parts = [face_samples(rng, load_image(face.path), face.box, face.landmarks, size, counts, share)
             for face in faces]
    parts.append(photo_negatives(rng, photos, size, counts.photo_negatives_per_face * len(faces)))
    return SampleSet.concat(parts)


def cached_mtcnn_samples(net: str, split: str, data_dir, out_dir, counts: MTCNNSampleCounts, seed: int,
                         log=print) -> SampleSet:
    """`build_mtcnn_samples`, read from ``<out_dir>/samples/<net>-<split>.npz`` when it exists
    (and written there otherwise)."""
    if net not in SAMPLE_SIZES:
        raise ValueError(f"net must be one of {sorted(SAMPLE_SIZES)}, got {net!r}")
    path = Path(out_dir) / "samples" / f"{net}-{split}.npz"
    return load_or_build(path, lambda: build_mtcnn_samples(net, split, data_dir, counts, seed),
                         what=f"{net} {split}", describe=describe_kinds, log=log)


def describe_kinds(samples: SampleSet) -> str:
    """"3,000 negatives, 1,000 positives, 1,000 parts, 2,000 landmarks"."""
    kind = samples.labels["kind"]
    return ", ".join(f"{int((kind == k).sum()):,} {name}s" for k, name in enumerate(KIND_NAMES))


# ---------------------------------------------------------------- hard examples for R-Net and O-Net

def proposed_windows(detector, photo: np.ndarray, stage: int) -> np.ndarray:
    """The square windows a partly trained MTCNN passes on: P-Net's output (stage 1) or
    R-Net's (stage 2). detector: an `MTCNNDetector` with those nets trained; photo: (H, W, 3)
    uint8. Returns (K, 4) float64 squares x1, y1, x2, y2 in pixels."""
    from pipeline.detection.trace import Trace

    trace = Trace(image=photo)
    with detector.session(photo) as chw:  # the stages shared among the detector's workers
        found = detector.propose(chw, trace)
        if stage >= 2 and len(found):
            found = detector.refine(chw, found, trace)
    return np.asarray(found.boxes, np.float64).reshape(-1, 4)


def mined_face_samples(rng: np.random.Generator, detector, photo: np.ndarray, box, size: int, stage: int,
                       counts: MTCNNSampleCounts, share_gray: float) -> SampleSet:
    """Hard examples of one face photo: the windows the earlier stage(s) propose, labelled by
    IoU with the face (positive, part, negative) with their box targets; at most as many of
    each kind as ``counts`` asks per face. Windows are put on whole pixels first (`snap_to_pixels`)
    and positives and parts must lie inside the photo, so that a crop is its window exactly."""
    height, width = photo.shape[:2]
    windows = snap_to_pixels(proposed_windows(detector, photo, stage))
    kinds, _ = label_windows(windows, box)
    whole = inside(windows, width, height)
    sets = []
    for kind, count in ((POSITIVE, counts.positives_per_face), (PART, counts.parts_per_face)):
        chosen = windows[_pick(rng, np.flatnonzero((kinds == kind) & whole), count)]
        sets.append((cut(photo, chosen, size)[0], _labels(kind, len(chosen), box=regression_targets(chosen, box))))
    chosen = windows[_pick(rng, np.flatnonzero(kinds == NEGATIVE), counts.face_negatives_per_face)]
    patches, kept = cut(photo, chosen, size)
    sets.append((patches, _labels(NEGATIVE, len(kept))))
    images = np.concatenate([patches for patches, _ in sets])
    return SampleSet(match_colour(rng, images, share_gray),
                     {name: np.concatenate([labels[name] for _, labels in sets]) for name in ("kind", "box", "landmarks")})


def mined_photo_negatives(rng: np.random.Generator, detector, photos, size: int, stage: int, per_photo: int) -> SampleSet:
    """Hard negatives: up to ``per_photo`` proposed windows of each face-free photo."""
    images = []
    for info in photos:
        photo = load_image(info.path)
        windows = proposed_windows(detector, photo, stage)
        windows = windows[_pick(rng, np.arange(len(windows)), per_photo)]
        images.append(cut(photo, windows, size)[0])
    images = np.concatenate(images) if images else np.zeros((0, size, size, 3), np.uint8)
    return SampleSet(images, _labels(NEGATIVE, len(images)))


def build_mined_samples(net: str, split: str, data_dir, counts: MTCNNSampleCounts, seed: int, detector,
                        mined: MTCNNSampleCounts, photo_windows: int) -> SampleSet:
    """R-Net's ("rnet", stage 1 mined) or O-Net's ("onet", stages 1-2 mined) samples: the random
    samples of `build_mtcnn_samples` (counts), plus the hard examples the earlier stages propose
    on the same face photos (mined: how many of each kind per face) and up to ``photo_windows``
    proposed windows per face-free photo."""
    size, stage = SAMPLE_SIZES[net], {"rnet": 1, "onet": 2}[net]
    base = build_mtcnn_samples(net, split, data_dir, counts, seed)
    rng = np.random.default_rng([seed, size, 0 if split == "train" else 1, 3])
    faces, photos = _faces_and_photos(data_dir, split, counts)
    share = gray_share(negative_split(data_dir, "train"))
    parts = [mined_face_samples(rng, detector, load_image(face.path), face.box, size, stage, mined, share)
             for face in faces]
    parts.append(mined_photo_negatives(rng, detector, photos, size, stage, photo_windows))
    return SampleSet.concat([base, *parts])


# ---------------------------------------------------------------- the recipe on whole photos (WIDER FACE)

@dataclass
class MTCNNRecipe:
    """What one MTCNN net trains on when the faces come from whole photos (`build_photo_samples`).

    photo: the windows drawn on each WIDER photo (`pipeline.training.photo_windows.PhotoCounts`);
    landmarks_per_face: landmark samples per face with five points (cuhk80 and wild_landmarks);
    free_negatives_per_photo: random windows per face-free photo; max_rotation: landmark
    samples are turned by up to this many degrees; max_landmark_faces, max_free_photos: use
    only the first ones (quick runs). Hard examples (R-Net, O-Net): mined_negatives and
    mined_faces, the most windows the earlier stages pass on per WIDER photo that are taken as
    negatives, and as positives and parts (each kind); mined_free_per_photo: per face-free photo.
    """

    photo: PhotoCounts
    landmarks_per_face: int = 4
    free_negatives_per_photo: int = 10
    max_rotation: float = 5.0
    max_landmark_faces: int | None = None
    max_free_photos: int | None = None
    mined_negatives: int = 0
    mined_faces: int = 0
    mined_free_per_photo: int = 0


def photo_samples(rng: np.random.Generator, image: np.ndarray, photo, size: int, counts: PhotoCounts,
                  share_gray: float) -> SampleSet:
    """Negatives, positives and parts of one WIDER photo, at size x size.

    image: (H, W, 3) uint8 RGB; photo: its `pipeline.data.wider.WiderPhoto` (boxes in pixels);
    counts: how many of each; share_gray: probability of turning a patch gray.
    Positives and parts carry the offsets of the face they overlap most.
    """
    height, width = image.shape[:2]
    faces = large_faces(photo.faces, counts.min_face)
    windows, overlap, target = around_faces(rng, width, height, faces, counts.candidates)
    sets = []
    for kind, chosen in ((POSITIVE, pick(rng, np.flatnonzero(overlap > POSITIVE_IOU), counts.positives * len(faces))),
                         (PART, pick(rng, np.flatnonzero((overlap >= PART_IOU) & (overlap <= POSITIVE_IOU)),
                                     counts.parts * len(faces)))):
        boxes = faces[target[chosen]]
        offsets = regression_targets(windows[chosen], boxes)
        sets.append((cut(image, windows[chosen], size)[0], _labels(kind, len(chosen), box=offsets)))
    negatives = np.concatenate([random_negative_windows(rng, width, height, photo.boxes, counts.random_negatives),
                                near_negative_windows(rng, width, height, faces, photo.boxes, counts.near_negatives)])
    patches, kept = cut(image, negatives, size)
    sets.append((patches, _labels(NEGATIVE, len(kept))))
    images = match_colour(rng, np.concatenate([patches for patches, _ in sets]), share_gray)
    return SampleSet(images, {name: np.concatenate([labels[name] for _, labels in sets])
                              for name in ("kind", "box", "landmarks")})


def landmark_samples(rng: np.random.Generator, image: np.ndarray, box, points, size: int, count: int,
                     max_rotation: float, share_gray: float, candidates: int = 20) -> SampleSet:
    """Up to ``count`` landmark samples of one face: windows about it with IoU > 0.65, cut from
    the photo turned by a random angle within +-max_rotation degrees about the face centre, the
    points turned alike (a sample whose points leave the window is dropped)."""
    height, width = image.shape[:2]
    box = np.asarray(box, np.float64)
    windows = snap_to_pixels(windows_around(rng, box, candidates))
    windows = windows[inside(windows, width, height)]
    kinds, _ = label_windows(windows, box)
    centre = (box[:2] + box[2:]) / 2
    sets = []
    for window in windows[_pick(rng, np.flatnonzero(kinds == POSITIVE), count)]:
        angle = rng.uniform(-max_rotation, max_rotation)
        targets = landmark_targets(window[None], rotate_points(points, angle, centre))
        if np.all((targets > 0) & (targets < 1)):
            sets.append((cut(rotate_image(image, angle, centre), window[None], size)[0],
                         _labels(LANDMARK, 1, points=targets)))
    if not sets:
        return SampleSet(np.zeros((0, size, size, 3), np.uint8), _labels(LANDMARK, 0))
    images = match_colour(rng, np.concatenate([patches for patches, _ in sets]), share_gray)
    return SampleSet(images, {name: np.concatenate([labels[name] for _, labels in sets])
                              for name in ("kind", "box", "landmarks")})


def mined_photo_samples(rng: np.random.Generator, detector, image: np.ndarray, photo, size: int, stage: int,
                        recipe: MTCNNRecipe, share_gray: float) -> SampleSet:
    """Hard examples of one WIDER photo: the windows the earlier stage(s) pass on, on whole
    pixels, labelled by IoU: negative below 0.3 with every box, positive above 0.65 and part
    from 0.4 with the valid face they overlap most (its offsets as the target; these must lie
    inside the photo). At most recipe.mined_negatives negatives and recipe.mined_faces of each
    other kind."""
    height, width = image.shape[:2]
    windows = snap_to_pixels(proposed_windows(detector, image, stage))
    windows = windows[(windows[:, 2] - windows[:, 0]) >= MIN_WINDOW]
    sets = []
    faces = photo.faces
    if len(faces) and len(windows):
        overlap = pairwise_overlap(windows, faces)
        target = overlap.argmax(axis=1)
        best = overlap[np.arange(len(windows)), target]
        whole = inside(windows, width, height)
        for kind, mask in ((POSITIVE, best > POSITIVE_IOU), (PART, (best >= PART_IOU) & (best <= POSITIVE_IOU))):
            chosen = pick(rng, np.flatnonzero(mask & whole), recipe.mined_faces)
            offsets = regression_targets(windows[chosen], faces[target[chosen]])
            sets.append((cut(image, windows[chosen], size)[0], _labels(kind, len(chosen), box=offsets)))
    negatives = windows[pick(rng, np.flatnonzero(max_overlap(windows, photo.boxes) < NEGATIVE_IOU),
                             recipe.mined_negatives)]
    patches, kept = cut(image, negatives, size)
    sets.append((patches, _labels(NEGATIVE, len(kept))))
    images = match_colour(rng, np.concatenate([patches for patches, _ in sets]), share_gray)
    return SampleSet(images, {name: np.concatenate([labels[name] for _, labels in sets])
                              for name in ("kind", "box", "landmarks")})


def build_photo_samples(net: str, split: str, data_dir, recipe: MTCNNRecipe, seed: int, detector=None,
                        progress: bool = False) -> SampleSet:
    """The samples of "pnet", "rnet" or "onet" for one split ("train" or "val") by MTCNN's
    recipe on whole photos: from each WIDER photo of the split its negatives, positives and
    parts (`photo_samples`); landmark samples from the split's cuhk80 and wild_landmarks faces;
    random windows of the split's face-free photos; and, for R-Net and O-Net (detector: an
    `MTCNNDetector` with the earlier nets trained), the hard examples those nets pass on, on the
    WIDER photos (`mined_photo_samples`) and the face-free photos. Deterministic for a seed."""
    from pipeline.data.wider import landmark_faces, wider_split

    size = SAMPLE_SIZES[net]
    rng = np.random.default_rng([seed, size, 0 if split == "train" else 1, 4])
    photos = wider_split(data_dir, split)[: recipe.photo.max_photos]
    free = negative_split(data_dir, split)[: recipe.max_free_photos]
    marked = landmark_faces(data_dir, split)[: recipe.max_landmark_faces]
    share = gray_share(negative_split(data_dir, "train"))
    stage = {"pnet": 0, "rnet": 1, "onet": 2}[net]
    if stage and detector is None:
        raise ValueError(f"{net}'s hard examples are mined: pass the detector of the earlier stages")
    parts = []
    for photo in _bar(photos, f"{net} {split}: photos", progress):
        image = load_image(photo.path)
        parts.append(photo_samples(rng, image, photo, size, recipe.photo, share))
        if stage:
            parts.append(mined_photo_samples(rng, detector, image, photo, size, stage, recipe, share))
    for face in _bar(marked, f"{net} {split}: landmark faces", progress):
        parts.append(landmark_samples(rng, load_image(face.path), face.box, face.landmarks, size,
                                      recipe.landmarks_per_face, recipe.max_rotation, share))
    parts.append(photo_negatives(rng, free, size, recipe.free_negatives_per_photo * len(free)))
    if stage:
        parts.append(mined_photo_negatives(rng, detector, free, size, stage, recipe.mined_free_per_photo))
    return SampleSet.concat(parts)


def _bar(items, desc: str, enabled: bool):
    if not enabled:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=desc, unit="image", leave=False, disable=None)
