"""The WIDER FACE benchmark's evaluation: average precision in its easy, medium and hard settings.

This follows the official evaluation code (Yang et al., 2016) step by step, so that figures
here can be set beside published ones:

1. Scores are min-max normalised over the whole set of photos scored (`normalise_scores`):
   the thresholds below are shared by all photos.
2. In each photo, detections are visited best first; each takes the labelled box it overlaps
   most (IoU with areas counted MATLAB-style, ``(x2 - x1 + 1) * (y2 - y1 + 1)``,
   `overlaps_plus_one`). At IoU >= 0.5 with a box the setting scores, that face is found (a
   second detection on it counts as a false positive); at IoU >= 0.5 with a box outside the
   setting, the detection is *ignored*: neither right nor wrong (`match_photo`).
3. At 1,000 thresholds t = 0.999, 0.998, ..., 0, each photo reports how many not-ignored
   detections score >= t and how many of the setting's faces they found (`photo_counts`).
4. Summed over photos: precision = found / detections, recall = found / all the setting's
   faces, and AP is the area under the interpolated precision-recall curve (`voc_ap`).

Which faces each setting scores comes from the official files (`ground_truth/*.mat`, read
with SciPy, an optional extra: ``pip install -e ".[wider]"``): ``wider_face_val.mat`` holds
every photo's boxes (x, y, w, h) and ``wider_{easy,medium,hard}_val.mat`` the 1-based indices
of the boxes each setting scores. Easy is a subset of medium, medium of hard.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

SETTINGS = ("easy", "medium", "hard")
IOU_THRESHOLD = 0.5
THRESHOLDS = 1.0 - (np.arange(1000) + 1) / 1000.0  # 0.999 down to 0, as the official code
MAT_FILES = {"boxes": "wider_face_val.mat", **{s: f"wider_{s}_val.mat" for s in SETTINGS}}


@dataclass
class GroundTruth:
    """One photo's labelled boxes as the official files give them.

    boxes: (K, 4) float64 x1, y1, x2, y2 = x, y, x + w, y + h in pixels; scored: setting name
    -> (M,) int64 0-based indices of the boxes that setting scores.
    """

    boxes: np.ndarray
    scored: dict


def read_ground_truth(folder) -> dict[str, GroundTruth]:
    """The official ground truth: photo name ("<event>/<file>.jpg") -> GroundTruth.

    folder: the folder holding the four .mat files (`MAT_FILES`), e.g. ``wider/ground_truth``.
    Raises FileNotFoundError naming a missing file, ImportError with the install command
    when SciPy is absent.
    """
    try:
        from scipy.io import loadmat
    except ImportError:
        raise ImportError("reading the WIDER FACE evaluation files (.mat) needs SciPy: "
                          "python -m pip install -e \".[wider]\" (or pip install scipy)") from None
    folder = Path(folder)
    for name in MAT_FILES.values():
        if not (folder / name).is_file():
            raise FileNotFoundError(2, f"WIDER FACE evaluation file missing (the benchmark's "
                                    f"eval_tools/ground_truth/{name})", str(folder / name))
    boxes = loadmat(folder / MAT_FILES["boxes"])
    lists = {s: loadmat(folder / MAT_FILES[s])["gt_list"] for s in SETTINGS}
    truth = {}
    for e, event in enumerate(boxes["event_list"][:, 0]):
        files, event_boxes = boxes["file_list"][e, 0][:, 0], boxes["face_bbx_list"][e, 0][:, 0]
        for f, file in enumerate(files):
            xywh = np.asarray(event_boxes[f], dtype=np.float64).reshape(-1, 4)
            scored = {s: np.asarray(lists[s][e, 0][f, 0], dtype=np.int64).reshape(-1) - 1 for s in SETTINGS}
            truth[f"{event[0]}/{file[0]}.jpg"] = GroundTruth(
                np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1), scored)
    return truth


def overlaps_plus_one(detections, boxes) -> np.ndarray:
    """IoU of every detection with every box, areas counted with +1 pixel as the official code.

    detections: (D, 4), boxes: (K, 4) float x1, y1, x2, y2 in pixels. Returns (D, K) float64.
    """
    a = np.asarray(detections, dtype=np.float64).reshape(-1, 1, 4)
    b = np.asarray(boxes, dtype=np.float64).reshape(1, -1, 4)
    iw = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]) + 1, 0, None)
    ih = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]) + 1, 0, None)
    inter = iw * ih
    area_a = (a[..., 2] - a[..., 0] + 1) * (a[..., 3] - a[..., 1] + 1)
    area_b = (b[..., 2] - b[..., 0] + 1) * (b[..., 3] - b[..., 1] + 1)
    return inter / (area_a + area_b - inter)


def match_photo(detections, boxes, scored) -> tuple[np.ndarray, np.ndarray]:
    """Step 2 for one photo.

    detections: (D, 5) float x1, y1, x2, y2, score, sorted best first; boxes: (K, 4) the
    labelled boxes; scored: (M,) int indices of the boxes the setting scores.
    Returns (counted, found): counted (D,) bool, False for an ignored detection; found (D,)
    int64, the number of the setting's faces found by the detections up to and including each.
    """
    detections = np.asarray(detections, dtype=np.float64).reshape(-1, 5)
    counted = np.ones(len(detections), dtype=bool)
    found = np.zeros(len(detections), dtype=np.int64)
    if not len(detections) or not len(boxes):
        return counted, found
    in_setting = np.zeros(len(boxes), dtype=bool)
    in_setting[scored] = True
    state = np.zeros(len(boxes), dtype=np.int64)  # 0 not found yet, 1 found, -1 outside the setting
    best = overlaps_plus_one(detections[:, :4], boxes)
    nearest, overlap = best.argmax(axis=1), best.max(axis=1)
    for d in range(len(detections)):
        k = nearest[d]
        if overlap[d] >= IOU_THRESHOLD:
            if not in_setting[k]:
                state[k] = -1
                counted[d] = False
            elif state[k] == 0:
                state[k] = 1
        found[d] = np.count_nonzero(state == 1)
    return counted, found


def photo_counts(detections, boxes, scored, thresholds=THRESHOLDS) -> np.ndarray:
    """Step 3 for one photo: (T, 2) int64, per threshold t the number of counted detections
    with score >= t and the number of the setting's faces they found. detections: (D, 5) with
    normalised scores, in any order."""
    detections = np.asarray(detections, dtype=np.float64).reshape(-1, 5)
    detections = detections[np.argsort(-detections[:, 4], kind="stable")]
    counted, found = match_photo(detections, boxes, scored)
    # the number of detections scoring >= t, for every t (scores sorted from high to low)
    above = np.searchsorted(-detections[:, 4], -np.asarray(thresholds), side="right")
    kept = np.concatenate([[0], np.cumsum(counted)])[above]
    reached = np.concatenate([[0], found])[above]
    return np.stack([kept, reached], axis=1).astype(np.int64)


def normalise_scores(detections: dict) -> dict:
    """Step 1: every photo's (D, 5) detections with scores mapped to [0, 1] by the lowest and
    highest score over all photos (all equal: divided by 1e-12 as a guard, as in the official
    Python port). Returns a new dict name -> (D, 5) float64."""
    scores = np.concatenate([np.asarray(d, np.float64).reshape(-1, 5)[:, 4] for d in detections.values()]
                            + [np.zeros(0)])
    low, high = (scores.min(), scores.max()) if len(scores) else (0.0, 1.0)
    out = {}
    for name, found in detections.items():
        found = np.array(found, dtype=np.float64).reshape(-1, 5)
        found[:, 4] = (found[:, 4] - low) / max(high - low, 1e-12)
        out[name] = found
    return out


def voc_ap(recall, precision) -> float:
    """Area under the interpolated precision-recall curve (PASCAL VOC, all points).

    recall, precision: (T,) float, ordered by falling threshold (recall not decreasing)."""
    r = np.concatenate([[0.0], recall, [1.0]])
    p = np.concatenate([[0.0], precision, [0.0]])
    p = np.maximum.accumulate(p[::-1])[::-1]  # the best precision at this recall or more
    step = np.flatnonzero(r[1:] != r[:-1])
    return float(np.sum((r[step + 1] - r[step]) * p[step + 1]))


def wider_ap(detections: dict, truth: dict) -> dict:
    """AP of each setting over the photos of ``detections``.

    detections: photo name -> (D, 5) float x1, y1, x2, y2, score in pixels of that photo (an
    empty array for a photo with none); truth: `read_ground_truth`'s dict (must hold every
    name). Returns {"easy", "medium", "hard": AP, "faces": {setting: faces scored},
    "photos": number of photos}.
    """
    missing = [name for name in detections if name not in truth]
    if missing:
        raise KeyError(f"{len(missing)} photos are not in the WIDER ground truth, e.g. {missing[0]}")
    normalised = normalise_scores(detections)
    result, faces = {}, {}
    for setting in SETTINGS:
        counts = np.zeros((len(THRESHOLDS), 2), dtype=np.int64)
        faces[setting] = 0
        for name, found in normalised.items():
            gt = truth[name]
            faces[setting] += len(gt.scored[setting])
            if len(found):
                counts += photo_counts(found, gt.boxes, gt.scored[setting])
        precision = counts[:, 1] / np.maximum(counts[:, 0], 1)
        recall = counts[:, 1] / max(faces[setting], 1)
        result[setting] = voc_ap(recall, precision)
    result["faces"] = faces
    result["photos"] = len(detections)
    return result
