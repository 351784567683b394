"""The sample sets of the six Cascade-CNN nets, built from the data kit and cached.

    net12:  face windows (jittered)  vs  random windows of face-free photos + face-photo windows
    net24:  face windows             vs  windows the trained 12-net, 12-cal and NMS let through on
                                         the training face-free photos (hard negatives) + face-photo windows
    net48:  face windows             vs  windows that the 12- and 24-stages let through (hard negatives)
                                         + face-photo windows
    cal12, cal24, cal48:  face windows perturbed by one of the 45 patterns, labelled with it

Splits: training samples come from the training faces and the training face-free photos;
validation samples from the validation faces and a tenth of the face-free photos kept apart for
it (0-based line index % 10 == 8 of negatives/files.txt). The held-out face-free photos
(index % 10 == 9) are never touched here: they measure false positives at the end.

A set is generated once from a seed and cached as ``<out>/samples/<net>-<split>.npz`` (uint8
images and int labels), so an epoch never decodes a JPEG again and a resumed run trains on
exactly the same samples.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.detection.calibration import NUM_PATTERNS, perturb_boxes
from pipeline.data.datasets import face_split, negative_split
from pipeline.data.images import load_image
from pipeline.training.photo_windows import (NEGATIVE_IOU, PhotoCounts, large_faces, max_overlap, near_negative_windows, pick,
                            random_negative_windows)
from pipeline.training.samples import (cut, face_window, gray_share, jitter_windows, match_colour, random_windows,
                      windows_away_from)
from pipeline.training.loop import SampleSet, load_or_build

FACE, NON_FACE = 1, 0


@dataclass
class SampleCounts:
    """How many samples to make, per face or per face-free photo."""

    positives_per_face: int = 3        # jittered face windows (before the IoU filter)
    face_negatives_per_face: int = 2   # windows of a face photo away from its face
    negatives_per_photo: int = 40      # random windows (net12) or mined windows (net24/48) per photo
    patterns_per_face: int = 8         # calibration crops per face (of the 45 patterns)
    max_faces: int | None = None       # use only the first faces / photos (quick runs)
    max_photos: int | None = None


def _faces_and_photos(data_dir, split: str, counts: SampleCounts):
    faces = face_split(data_dir, "val" if split == "val" else "train")[: counts.max_faces]
    photos = negative_split(data_dir, split)[: counts.max_photos]
    return faces, photos


def face_samples(rng, faces, size: int, counts: SampleCounts, share_gray: float) -> SampleSet:
    """Positives (jittered face windows) and negatives of the face photos, at size x size."""
    images, labels = [], []
    for face in faces:
        photo = load_image(face.path)
        height, width = photo.shape[:2]
        window = face_window(face.box[None])
        moved, _ = jitter_windows(rng, window, counts.positives_per_face)
        away = windows_away_from(rng, window[0], width, height, counts.face_negatives_per_face)
        for boxes, label in ((moved, FACE), (away, NON_FACE)):
            patches, _ = cut(photo, boxes, size)
            images.append(match_colour(rng, patches, share_gray))
            labels.append(np.full(len(patches), label, np.int64))
    return SampleSet(np.concatenate(images), {"label": np.concatenate(labels)})


def random_negatives(rng, photos, size: int, per_photo: int) -> SampleSet:
    """Random windows of many sizes from face-free photos, at size x size (their own colour)."""
    images = []
    for photo_info in photos:
        photo = load_image(photo_info.path)
        boxes = random_windows(rng, photo.shape[1], photo.shape[0], per_photo)
        images.append(cut(photo, boxes, size)[0])
    images = np.concatenate(images) if images else np.zeros((0, size, size, 3), np.uint8)
    return SampleSet(images, {"label": np.full(len(images), NON_FACE, np.int64)})


def mined_negatives(rng, detector, photos, size: int, per_photo: int, stage: int) -> SampleSet:
    """Hard negatives: the windows of face-free photos that a partly trained cascade lets
    through. detector: a `CascadeDetector` whose nets up to ``stage`` (1 = 12-net and 12-cal,
    2 = also 24-net and 24-cal) are trained. At most ``per_photo`` windows per photo (a random
    choice), cut at size x size."""
    images = []
    for photo_info in photos:
        photo = load_image(photo_info.path)
        boxes = mined_windows(detector, photo, stage)
        if len(boxes) > per_photo:
            boxes = boxes[np.sort(rng.choice(len(boxes), per_photo, replace=False))]
        images.append(cut(photo, boxes, size)[0])
    images = np.concatenate(images) if images else np.zeros((0, size, size, 3), np.uint8)
    return SampleSet(images, {"label": np.full(len(images), NON_FACE, np.int64)})


def calibration_samples(rng, faces, size: int, per_face: int, share_gray: float) -> SampleSet:
    """Face windows perturbed by ``per_face`` different random patterns each, labelled with the
    pattern index (0..44), at size x size."""
    images, labels = [], []
    for face in faces:
        photo = load_image(face.path)
        patterns = rng.choice(NUM_PATTERNS, per_face, replace=False)
        window = np.repeat(face_window(face.box[None]), per_face, axis=0)
        patches, kept = cut(photo, perturb_boxes(window, patterns), size)
        images.append(match_colour(rng, patches, share_gray))
        labels.append(patterns[kept].astype(np.int64))
    return SampleSet(np.concatenate(images), {"label": np.concatenate(labels)})


def build_samples(net: str, split: str, data_dir, counts: SampleCounts, seed: int, detector=None) -> SampleSet:
    """The samples of one net ("net12", "cal24", ...) for one split ("train" or "val").

    detector: for net24 / net48, a `CascadeDetector` with the earlier stages trained (its
    surviving windows are the hard negatives). Deterministic for a given seed.
    """
    size = int(net[-2:])
    rng = np.random.default_rng([seed, size, 0 if split == "train" else 1, net.startswith("cal")])
    faces, photos = _faces_and_photos(data_dir, split, counts)
    share = gray_share(negative_split(data_dir, "train"))
    if net.startswith("cal"):
        per_face = counts.patterns_per_face if split == "train" else max(1, counts.patterns_per_face // 2)
        return calibration_samples(rng, faces, size, per_face, share)
    parts = [face_samples(rng, faces, size, counts, share)]
    if net == "net12":
        parts.append(random_negatives(rng, photos, size, counts.negatives_per_photo))
    else:
        if detector is None:
            raise ValueError(f"{net}'s negatives are mined: pass the detector of the earlier stages")
        stage = {"net24": 1, "net48": 2}[net]
        parts.append(mined_negatives(rng, detector, photos, size, counts.negatives_per_photo, stage))
    return SampleSet.concat(parts)


def cached_samples(net: str, split: str, data_dir, out_dir, counts: SampleCounts, seed: int,
                   detector=None, log=print) -> SampleSet:
    """`build_samples`, read from ``<out_dir>/samples/<net>-<split>.npz`` when it exists (and
    written there otherwise)."""
    path = Path(out_dir) / "samples" / f"{net}-{split}.npz"
    return load_or_build(path, lambda: build_samples(net, split, data_dir, counts, seed, detector),
                         what=f"{net} {split}", describe=describe, log=log)


def describe(samples: SampleSet) -> str:
    """"12,345 faces, 67,890 non-faces" for a detection set, "45 classes" for a calibration set."""
    labels = samples.labels["label"]
    if labels.max(initial=0) > 1:
        return f"{len(np.unique(labels))} patterns"
    return f"{int((labels == FACE).sum()):,} faces, {int((labels == NON_FACE).sum()):,} non-faces"


# ---------------------------------------------------------------- the recipe on whole photos (WIDER FACE)

@dataclass
class CascadeRecipe:
    """What one Cascade-CNN net trains on when the faces come from whole photos
    (`build_photo_samples`), the windows drawn as in MTCNN's recipe (`pipeline.training.photo_windows`).

    photo: the negatives drawn on each WIDER photo (random and beside faces) and min_face, the
    smallest face (shorter side, px) that gives positives; positives_per_face: jittered face
    windows per such face; free_negatives_per_photo: random windows (12-net) or mined windows
    (24-, 48-net) per face-free photo; mined_per_photo: windows the earlier stages pass on per
    WIDER photo taken as negatives (IoU < 0.3 with every box); patterns_per_face: calibration
    crops per face (WIDER faces and cuhk80 faces); max_faces: cuhk80 faces used (quick runs).
    """

    photo: PhotoCounts
    positives_per_face: int = 3
    free_negatives_per_photo: int = 20
    mined_per_photo: int = 0
    patterns_per_face: int = 8
    max_faces: int | None = None


def photo_face_windows(rng, photo, min_face: float, per_face: int) -> np.ndarray:
    """Jittered square face windows (IoU >= 0.65 with the face's window, `jitter_windows`)
    of the valid faces of at least min_face px in a WIDER photo. Returns (M, 4) float64."""
    faces = large_faces(photo.faces, min_face)
    if not len(faces):
        return np.zeros((0, 4))
    return jitter_windows(rng, face_window(faces), per_face)[0]


def wider_detection_samples(rng, image, photo, size: int, recipe: CascadeRecipe, share_gray: float,
                            mined=None) -> SampleSet:
    """Faces and non-faces of one WIDER photo at size x size: jittered face windows, random
    windows and windows beside the faces with IoU < 0.3 with every box, and ``mined`` ((K, 4)
    windows the earlier stages passed on; those below 0.3 with every box are negatives)."""
    height, width = image.shape[:2]
    counts = recipe.photo
    faces = large_faces(photo.faces, counts.min_face)
    negatives = [random_negative_windows(rng, width, height, photo.boxes, counts.random_negatives),
                 near_negative_windows(rng, width, height, faces, photo.boxes, counts.near_negatives)]
    if mined is not None and len(mined):
        far = np.flatnonzero(max_overlap(mined, photo.boxes) < NEGATIVE_IOU)
        negatives.append(mined[pick(rng, far, recipe.mined_per_photo)])
    images, labels = [], []
    for boxes, label in ((photo_face_windows(rng, photo, counts.min_face, recipe.positives_per_face), FACE),
                         (np.concatenate(negatives), NON_FACE)):
        patches, _ = cut(image, boxes, size)
        images.append(match_colour(rng, patches, share_gray))
        labels.append(np.full(len(patches), label, np.int64))
    return SampleSet(np.concatenate(images), {"label": np.concatenate(labels)})


def wider_calibration_samples(rng, image, photo, size: int, min_face: float, per_face: int,
                              share_gray: float) -> SampleSet:
    """Calibration crops of the valid faces of at least min_face px in a WIDER photo: each
    face window perturbed by ``per_face`` different random patterns, labelled with them."""
    faces = large_faces(photo.faces, min_face)
    if not len(faces):
        return SampleSet(np.zeros((0, size, size, 3), np.uint8), {"label": np.zeros(0, np.int64)})
    patterns = np.concatenate([rng.choice(NUM_PATTERNS, per_face, replace=False) for _ in faces])
    windows = np.repeat(face_window(faces), per_face, axis=0)
    patches, kept = cut(image, perturb_boxes(windows, patterns), size)
    return SampleSet(match_colour(rng, patches, share_gray), {"label": patterns[kept].astype(np.int64)})


def build_photo_samples(net: str, split: str, data_dir, recipe: CascadeRecipe, seed: int, detector=None,
                        progress: bool = False) -> SampleSet:
    """The samples of one Cascade-CNN net ("net12", "cal24", ...) for one split ("train" or
    "val") from whole photos: the split's WIDER photos (faces, and non-faces drawn by MTCNN's
    recipe; for the 24- and 48-net also the windows the earlier stages pass on, detector: a
    `CascadeDetector` with those trained) and its face-free photos (random or mined windows);
    a calibration net's crops come from the WIDER faces and the split's cuhk80 faces.
    Deterministic for a given seed."""
    from pipeline.training.mtcnn_samples import _bar
    from pipeline.data.wider import wider_split

    size = int(net[-2:])
    rng = np.random.default_rng([seed, size, 0 if split == "train" else 1, net.startswith("cal"), 5])
    photos = wider_split(data_dir, split)[: recipe.photo.max_photos]
    share = gray_share(negative_split(data_dir, "train"))
    stage = {"net24": 1, "net48": 2}.get(net, 0)
    if stage and detector is None:
        raise ValueError(f"{net}'s negatives are mined: pass the detector of the earlier stages")
    parts = []
    if net.startswith("cal"):
        per_face = recipe.patterns_per_face if split == "train" else max(1, recipe.patterns_per_face // 2)
        for photo in _bar(photos, f"{net} {split}: photos", progress):
            parts.append(wider_calibration_samples(rng, load_image(photo.path), photo, size, recipe.photo.min_face,
                                                   per_face, share))
        faces = face_split(data_dir, "val" if split == "val" else "train")[: recipe.max_faces]
        parts.append(calibration_samples(rng, faces, size, per_face, share))
        return SampleSet.concat(parts)
    for photo in _bar(photos, f"{net} {split}: photos", progress):
        image = load_image(photo.path)
        mined = mined_windows(detector, image, stage) if stage else None
        parts.append(wider_detection_samples(rng, image, photo, size, recipe, share, mined))
    free = negative_split(data_dir, split)[: recipe.photo.max_photos]
    if stage:
        parts.append(mined_negatives(rng, detector, free, size, recipe.free_negatives_per_photo, stage))
    else:
        parts.append(random_negatives(rng, free, size, recipe.free_negatives_per_photo))
    return SampleSet.concat(parts)


def mined_windows(detector, image, stage: int) -> np.ndarray:
    """The windows a partly trained cascade passes on in one photo (stage 1: 12-net, 12-cal
    and NMS; stage 2: also the 24-net and 24-cal). Returns (K, 4) float64 in pixels."""
    from pipeline.detection.trace import Trace

    trace = Trace(image=image)
    with detector.session(image) as chw:
        found, levels = detector.scan(chw, trace)
        if stage >= 2 and len(found):
            found, levels = detector.refine(chw, found, levels, trace)
    return np.asarray(found.boxes, np.float64).reshape(-1, 4)
