"""Measuring a face detector: which detections found a face, recall, ROC and average precision.

The rule for "found" (the one used everywhere in the project):

* a detection matches a face when their boxes overlap with IoU >= 0.5 (`pipeline.detection.boxes.iou`);
* detections are taken greedily, best score first; each takes the still unmatched face it
  overlaps most, so one face is found by at most one detection and one detection finds at
  most one face (`match_detections`). A detection that finds no face is a false positive.

Over a set of images, every detection becomes one (score, is_tp) pair. Keeping only the
detections with score >= t gives, for each threshold t, a count of true and false positives:
the discrete ROC of FDDB (x = false positives, y = recall = true positives / faces,
`roc_points`) and the precision/recall curve whose area is the average precision
(`average_precision`). Greedy matching by score makes this exact: the detections above t are
matched exactly as they would be if the others did not exist.

`evaluate` runs a detector over the data kit's evaluation images (see `pipeline.data.datasets`)
and writes evaluation.json and roc.png; `facecascade evaluate` is its command line.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipeline.detection.boxes import pairwise_overlap
from pipeline.data.datasets import face_split, labelled_photos, negative_split
from pipeline.data.wider import wider_folder_photos, wider_split, wild_landmark_split
from pipeline.evaluation.wider_eval import read_ground_truth, wider_ap

IOU_THRESHOLD = 0.5               # a detection finds a face at IoU >= this (FDDB, WIDER FACE, VOC)
MAX_FALSE_POSITIVES_PER_PHOTO = 0.1  # the operating point: false positives per face-free photo


# ---------------------------------------------------------------- one image


def match_detections(truth, boxes, scores, iou_threshold: float = IOU_THRESHOLD) -> np.ndarray:
    """Which detections found a face, matched greedily by score.

    truth: (K, 4) float, the faces' boxes x1, y1, x2, y2 in pixels; boxes: (D, 4) float, the
    detections' boxes; scores: (D,) float, higher is better; iou_threshold: in [0, 1].
    Detections are visited best score first (equal scores in the given order: a stable
    sort). Each takes the unmatched face it overlaps most (the first such face on a tie), if
    that IoU is >= iou_threshold; that face is then matched and no other detection can take it.
    Returns (D,) bool, True for a true positive, in the order of ``boxes``.
    The number of True entries is the number of faces found: at most min(K, D).
    """
    truth = np.asarray(truth, dtype=np.float64).reshape(-1, 4)
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    scores = np.asarray(scores, dtype=np.float64)
    if scores.shape != (len(boxes),):
        raise ValueError(f"scores must have shape ({len(boxes)},) to match the boxes; got {scores.shape}")
    is_tp = np.zeros(len(boxes), dtype=bool)
    if len(truth) == 0 or len(boxes) == 0:
        return is_tp
    overlap = pairwise_overlap(boxes, truth)  # (D, K) IoU, in float64
    free = np.ones(len(truth), dtype=bool)
    for d in np.argsort(-scores, kind="stable"):
        candidates = np.where(free, overlap[d], -1.0)  # matched faces cannot be taken again
        k = int(np.argmax(candidates))
        if candidates[k] >= iou_threshold:
            free[k] = False
            is_tp[d] = True
    return is_tp


# ---------------------------------------------------------------- a set of images


@dataclass
class Pooled:
    """Every detection of a set of images as one (score, is_tp) pair, and the faces.

    scores: (N,) float64; is_tp: (N,) bool; faces: number of faces in the images;
    images: number of images.
    """

    scores: np.ndarray = field(default_factory=lambda: np.zeros(0))
    is_tp: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    faces: int = 0
    images: int = 0


def pool(per_image) -> Pooled:
    """Pool the detections of many images.

    per_image: iterable of (truth (K, 4), boxes (D, 4), scores (D,)), one per image, boxes
    x1, y1, x2, y2 in pixels. Each image is matched with `match_detections`.
    Returns a Pooled: the scores and true-positive flags of all detections, in image order,
    and the total number of faces and images.
    """
    scores, flags, faces, images = [], [], 0, 0
    for truth, boxes, image_scores in per_image:
        truth = np.asarray(truth, dtype=np.float64).reshape(-1, 4)
        scores.append(np.asarray(image_scores, dtype=np.float64).reshape(-1))
        flags.append(match_detections(truth, boxes, image_scores))
        faces += len(truth)
        images += 1
    if not scores:
        return Pooled()
    return Pooled(np.concatenate(scores), np.concatenate(flags), faces, images)


@dataclass
class Roc:
    """A discrete ROC, one point per distinct score t (highest first): keeping the detections
    with score >= t gives true_positives and false_positives; recall = true_positives / faces
    (NaN when there are no faces). All arrays (T,); thresholds float64, counts int64."""

    thresholds: np.ndarray
    true_positives: np.ndarray
    false_positives: np.ndarray
    recall: np.ndarray

    def to_dict(self) -> dict:
        """Plain lists for JSON (recall None where undefined)."""
        return {
            "thresholds": [float(t) for t in self.thresholds],
            "true_positives": [int(n) for n in self.true_positives],
            "false_positives": [int(n) for n in self.false_positives],
            "recall": [None if np.isnan(r) else float(r) for r in self.recall],
        }


def roc_points(scores, is_tp, faces: int) -> Roc:
    """The discrete ROC (FDDB style) of pooled detections.

    scores: (N,) float, one per detection over all images; is_tp: (N,) bool, from
    `match_detections`; faces: number of faces in those images.
    For every distinct score t, from the highest down, count the detections with score >= t:
    true positives, false positives (the rest), recall = true positives / faces. Plot x =
    false positives, y = recall. Returns a Roc with arrays of length T = number of distinct
    scores (0 when there are no detections). The last point is the detector's own output.
    """
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    is_tp = np.asarray(is_tp, dtype=bool).reshape(-1)
    if scores.shape != is_tp.shape:
        raise ValueError(f"scores {scores.shape} and is_tp {is_tp.shape} must have the same shape")
    order = np.argsort(-scores, kind="stable")
    scores, is_tp = scores[order], is_tp[order]
    tp = np.cumsum(is_tp, dtype=np.int64)
    fp = np.cumsum(~is_tp, dtype=np.int64)
    # the last detection of each run of equal scores: all of the run enter together
    last = np.flatnonzero(np.append(scores[1:] != scores[:-1], True)) if len(scores) else np.zeros(0, int)
    recall = tp[last] / faces if faces > 0 else np.full(len(last), np.nan)
    return Roc(scores[last], tp[last], fp[last], recall)


def average_precision(scores, is_tp, faces: int) -> float:
    """Average precision: the area under the interpolated precision/recall curve.

    scores, is_tp, faces: as in `roc_points`.
    This is the all-points version of PASCAL VOC 2010-2012 (not VOC 2007's 11-point one):
    take the precision tp / (tp + fp) at every threshold of `roc_points`; replace each by
    the highest precision at that recall or higher (the interpolation, which makes the curve
    non-increasing); sum precision x recall step over the thresholds, with recall starting
    at 0. Detections with equal scores enter together (one point per distinct score), so
    the order of ties does not matter. Faces never found count as recall never reached.
    Returns a float in [0, 1]; 0 with no detections; NaN when there are no faces.
    """
    if faces <= 0:
        return float("nan")
    roc = roc_points(scores, is_tp, faces)
    if len(roc.thresholds) == 0:
        return 0.0
    precision = roc.true_positives / (roc.true_positives + roc.false_positives)
    interpolated = np.maximum.accumulate(precision[::-1])[::-1]
    steps = np.diff(np.concatenate([[0.0], roc.recall]))
    return float(np.sum(steps * interpolated))


def operating_point(negative_scores, negative_images: int,
                    max_per_image: float = MAX_FALSE_POSITIVES_PER_PHOTO) -> dict:
    """The loosest extra score threshold that keeps false positives on face-free photos
    within a budget.

    negative_scores: (N,) float, the scores of all detections on ``negative_images``
    face-free photos (every one a false positive); max_per_image: the budget per photo.
    The budget allows floor(max_per_image * negative_images) false positives. If the
    detector stays within it, no extra threshold is needed ("score_above" None). Otherwise
    keep only detections scoring above the (allowed + 1)-th highest negative score, which
    leaves at most ``allowed`` false positives and loses as few faces as possible.
    Returns {"max_false_positives_per_photo", "allowed", "score_above", "false_positives"};
    apply it to a face set with `recall_above`.
    """
    negative_scores = np.sort(np.asarray(negative_scores, dtype=np.float64).reshape(-1))[::-1]
    allowed = int(np.floor(max_per_image * negative_images + 1e-9))
    score_above = float(negative_scores[allowed]) if len(negative_scores) > allowed else None
    kept = negative_scores if score_above is None else negative_scores[negative_scores > score_above]
    return {"max_false_positives_per_photo": max_per_image, "allowed": allowed,
            "score_above": score_above, "false_positives": int(len(kept))}


def recall_above(pooled: Pooled, score_above) -> float | None:
    """Recall of a face set keeping only detections with score > score_above (None: all).
    Returns None when the set has no faces."""
    if pooled.faces == 0:
        return None
    keep = np.ones(len(pooled.scores), bool) if score_above is None else pooled.scores > score_above
    return int(np.sum(pooled.is_tp & keep)) / pooled.faces


def validation_operating_point(detector, data_dir, quick: bool = False) -> dict:
    """Where a trained detector should stop, measured on validation images only.

    detector: anything with ``detect(image) -> faces`` (``.box``, ``.score``), run with its
    final threshold as low as possible; data_dir: the data kit. It runs over the validation
    faces (cuhk80/val.txt) and the *validation* face-free photos (negatives/files.txt lines
    with index % 10 == 8, which training never uses), and applies `operating_point` (at most
    0.1 false positives per photo). quick: only the first 200 faces and 20 photos.
    Returns {"score_above": the score a detection must exceed (None: the budget holds
    anyway), "val_recall": the val faces' recall above it, "false_positives": how many of the
    photos' detections are left, "photos": how many photos, "pooled": the val faces' `Pooled`
    detections and "negative_scores": (K,) the scores of all detections on the photos}, so that
    a caller can also measure another threshold.
    """
    from pipeline.data.images import load_image

    from tqdm import tqdm

    faces = face_split(data_dir, "val")[: 200 if quick else None]
    photos = negative_split(data_dir, "val")[: 20 if quick else None]
    print(f"operating point: the detector over {len(faces):,} validation faces and {len(photos):,} validation "
          "face-free photos", file=sys.stderr, flush=True)
    bar = tqdm(total=len(faces) + len(photos), desc="operating point", unit="image", disable=None, file=sys.stderr)

    def run(path):
        boxes, scores, _ = _detections(detector, load_image(path))
        bar.update(1)
        return boxes, scores

    pooled = pool((face.box[None], *run(face.path)) for face in faces)
    negative_scores = np.concatenate([run(photo.path)[1] for photo in photos] or [np.zeros(0)])
    bar.close()
    point = operating_point(negative_scores, len(photos))
    return {"score_above": point["score_above"], "val_recall": recall_above(pooled, point["score_above"]),
            "false_positives": point["false_positives"], "photos": len(photos), "pooled": pooled,
            "negative_scores": negative_scores}


# ---------------------------------------------------------------- landmarks


def landmark_error(predicted, truth) -> float:
    """How far five predicted points are from the annotated ones, in inter-ocular distances.

    predicted, truth: (5, 2) (x, y) in pixels, in the order left eye, right eye, nose, left
    and right mouth corner. Returns the mean of the five point-to-point distances divided by
    the distance between the two annotated eyes (the normalization of the MTCNN paper's
    landmark results), so the error does not depend on the face's size.
    """
    predicted = np.asarray(predicted, dtype=np.float64).reshape(5, 2)
    truth = np.asarray(truth, dtype=np.float64).reshape(5, 2)
    inter_ocular = np.hypot(*(truth[0] - truth[1]))
    if inter_ocular <= 0:
        raise ValueError("the annotated eyes coincide: the inter-ocular distance is 0")
    return float(np.mean(np.hypot(*(predicted - truth).T)) / inter_ocular)


def _landmark_summary(errors: list[float]) -> dict:
    """Mean and median of the landmark errors of the found val faces (None if there are none)."""
    return {"faces": len(errors), "mean": float(np.mean(errors)) if errors else None,
            "median": float(np.median(errors)) if errors else None}


# ---------------------------------------------------------------- running a detector


def _detections(detector, image) -> tuple[np.ndarray, np.ndarray, list]:
    """detector.detect(image) as boxes (D, 4) float64, scores (D,) float64 and each face's
    landmarks ((5, 2) float64, or None for a detector that gives none)."""
    faces = detector.detect(image)
    boxes = np.array([np.asarray(f.box, dtype=np.float64) for f in faces]).reshape(-1, 4)
    scores = np.array([float(f.score) for f in faces], dtype=np.float64)
    points = [_points(f) for f in faces]
    return boxes, scores, points


def _points(face):
    points = getattr(face, "landmarks", None)
    points = None if points is None else np.asarray(points, dtype=np.float64)
    return points if points is not None and points.shape == (5, 2) and np.isfinite(points).all() else None


def _face_summary(pooled: Pooled, failed: list[str]) -> dict:
    """The results of a face set ("val" or "photos") as plain values for JSON."""
    detected = int(np.sum(pooled.is_tp))
    return {
        "images": pooled.images,
        "faces": pooled.faces,
        "detected": detected,
        "false_positives": int(len(pooled.scores) - detected),
        "recall": detected / pooled.faces if pooled.faces else None,
        "ap": average_precision(pooled.scores, pooled.is_tp, pooled.faces) if pooled.faces else None,
        "failed": failed,
        "roc": roc_points(pooled.scores, pooled.is_tp, pooled.faces).to_dict(),
    }


def _negative_summary(found, failed: list[str], root: Path) -> dict:
    """The results on face-free photos as plain values for JSON.

    found: list of (NegativeImage, scores (D,)), one per photo that loaded; every detection
    is a false positive. root: the folder the per-photo names are made relative to.
    """
    scores = np.concatenate([s for _, s in found]) if found else np.zeros(0)
    kinds = {kind: {"images": 0, "false_positives": 0} for kind in ("gray", "color")}
    per_photo = {}
    for image, image_scores in found:
        kind = kinds["gray" if image.gray else "color"]
        kind["images"] += 1
        kind["false_positives"] += len(image_scores)
        if len(image_scores):
            per_photo[image.path.relative_to(root).as_posix()] = len(image_scores)
    roc = roc_points(scores, np.zeros(len(scores), bool), 0).to_dict()
    return {
        "images": len(found),
        "faces": 0,
        "detected": 0,
        "false_positives": len(scores),
        "false_positives_per_photo": len(scores) / len(found) if found else None,
        "recall": None,
        "gray": kinds["gray"],
        "color": kinds["color"],
        "per_photo": per_photo,
        "failed": failed,
        "roc": {"thresholds": roc["thresholds"], "false_positives": roc["false_positives"]},
    }


def evaluate(detector, data_dir, out_dir, name: str = "detector", progress: bool = True, wider=None) -> dict:
    """Run a detector over the data kit's evaluation images and measure it.

    detector: any object with ``detect(image) -> list of faces``, image (H, W, 3) uint8 RGB,
    each face with ``.box`` (4,) x1, y1, x2, y2 in pixels and ``.score`` (e.g.
    `pipeline.detection.mtcnn.MTCNNDetector`); data_dir: the data kit folder; out_dir: folder for the
    results (created); name: the detector's name in the results; progress: show a progress
    bar (on stderr, only on a terminal).

    The images, each loaded with `pipeline.data.images.load_image`:
      * "val": the 1,000 face crops of cuhk80/val.txt, boxes converted to the MTCNN
        convention (`pipeline.data.datasets.cuhk_to_mtcnn`);
      * "photos": the 9 labelled group photos (43 faces);
      * "negatives": the 177 held-out face-free photos (`negative_split(data_dir, "heldout")`),
        where every detection is a false positive.
      * "wider": the WIDER FACE photos scored with the benchmark's protocol
        (`pipeline.evaluation.wider_eval`): the kit's validation split (wider/, position % 5 == 4, 219
        photos), or every photo of the WIDER-layout folder ``wider`` (e.g. a WIDER_val
        download with the benchmark's ground_truth/ folder copied into it);
      * "wild_landmarks": the validation faces of wild_landmarks/ (307 crops), for the
        landmark error on faces in the wild.
    A detection finds a face by `match_detections` (IoU >= 0.5), at the detector's own
    thresholds. An image that fails to load is reported by name on stderr, listed under
    "failed", and left out of the counts; the rest goes on.

    Writes out_dir/evaluation.json (the returned dict) and out_dir/roc.png (recall against
    false positives for "val" and "photos"); if that fails, the dict says why under
    "write_error" and is returned all the same. Returns a dict with "detector", "iou_threshold",
    "seconds", and per set "val", "photos": images, faces, detected (true positives),
    false_positives, recall, ap (`average_precision`), failed, roc (`roc_points` as lists);
    "negatives": images, faces 0, detected 0, false_positives, false_positives_per_photo,
    recall None, gray and color ({"images", "false_positives"} each), per_photo (path
    relative to negatives/ -> false positives, photos with none left out), failed, roc
    (thresholds and false positives); "operating_point": `operating_point` of the negatives
    plus the recall of "val" and "photos" under it. "val" also holds "landmark_error":
    {"faces", "mean", "median"}, the `landmark_error` of each found val face against its five
    annotated points (faces 0 and None for a detector without landmarks; a face whose two
    annotated eyes coincide has no inter-ocular distance and is left out). "wider": {"folder",
    "photos", "faces" (per setting), "easy", "medium", "hard" (AP), "failed"};
    "wild_landmarks": {"faces", "detected", "landmark_error", "failed"}.
    """
    from tqdm import tqdm

    from pipeline.data.images import ImageError, load_image

    data_dir, out_dir = Path(data_dir), Path(out_dir)
    # read every list first, so that a wrong folder fails before the long run
    val_faces = face_split(data_dir, "val")
    sets = {"val": [(r.path, r.box[None, :]) for r in val_faces],
            "photos": labelled_photos(data_dir)}
    val_points = {r.path: r.landmarks for r in val_faces}
    negatives = negative_split(data_dir, "heldout")
    wider_folder, wider_photos, wider_truth, wider_skipped = _wider_part(data_dir, wider)
    has_wild = (data_dir / "wild_landmarks" / "landmarks.txt").is_file()
    wild_faces = wild_landmark_split(data_dir, "val") if has_wild else []

    start = time.perf_counter()
    total = sum(map(len, sets.values())) + len(negatives) + len(wider_photos) + len(wild_faces)
    if progress:
        print(f"evaluate {name}: {len(sets['val']):,} val faces, {len(sets['photos'])} photos, {len(negatives)} "
              f"face-free photos, {len(wider_photos)} WIDER photos, {len(wild_faces)} wild faces", file=sys.stderr,
              flush=True)
    bar = tqdm(total=total, desc=f"evaluate {name}", unit="image", disable=None if progress else True,
               file=sys.stderr)

    def run(path):
        """(boxes, scores) of one image, or None (reported on stderr) if it does not load."""
        try:
            image = load_image(path)
        except ImageError as exc:
            tqdm.write(f"error: {exc}", file=sys.stderr)
            bar.update(1)
            return None
        found = _detections(detector, image)
        bar.update(1)
        return found

    results, pooled, errors = {"detector": name, "iou_threshold": IOU_THRESHOLD}, {}, []
    for key, images in sets.items():
        per_image, failed = [], []
        for path, truth in images:
            found = run(path)
            if found is None:
                failed.append(str(path))
                continue
            boxes, scores, points = found
            per_image.append((truth, boxes, scores))
            if key == "val":  # the landmarks of the detection that found the face, if any
                hit = np.flatnonzero(match_detections(truth, boxes, scores))
                truth_points = val_points[path]
                if len(hit) and points[hit[0]] is not None and np.any(truth_points[0] != truth_points[1]):
                    errors.append(landmark_error(points[hit[0]], truth_points))
        pooled[key] = pool(per_image)
        results[key] = _face_summary(pooled[key], failed)
    results["val"]["landmark_error"] = _landmark_summary(errors)

    found, failed = [], []
    for image in negatives:
        detections = run(image.path)
        if detections is None:
            failed.append(str(image.path))
        else:
            found.append((image, detections[1]))
    results["negatives"] = _negative_summary(found, failed, (data_dir / "negatives").absolute())

    detections, failed = {}, []
    for photo in wider_photos:
        found_here = run(photo.path)
        if found_here is None:
            failed.append(str(photo.path))
        else:
            detections[photo.name] = np.concatenate([found_here[0], found_here[1][:, None]], axis=1)
    results["wider"] = ({"folder": str(wider_folder), "skipped": wider_skipped} if wider_skipped else
                        {"folder": str(wider_folder), **wider_ap(detections, wider_truth), "failed": failed})

    wild_errors, wild_found, failed = [], 0, []
    for face in wild_faces:
        found_here = run(face.path)
        if found_here is None:
            failed.append(str(face.path))
            continue
        boxes, scores, points = found_here
        hit = np.flatnonzero(match_detections(face.box[None], boxes, scores))
        wild_found += len(hit)
        if len(hit) and points[hit[0]] is not None and np.any(face.landmarks[0] != face.landmarks[1]):
            wild_errors.append(landmark_error(points[hit[0]], face.landmarks))
    results["wild_landmarks"] = {"faces": len(wild_faces) - len(failed), "detected": wild_found,
                                 "landmark_error": _landmark_summary(wild_errors), "failed": failed}
    if not has_wild:
        results["wild_landmarks"]["skipped"] = f"{data_dir / 'wild_landmarks'}: not in the kit"
    bar.close()

    point = operating_point(np.concatenate([s for _, s in found]) if found else [], len(found))
    point["val_recall"] = recall_above(pooled["val"], point["score_above"])
    point["photos_recall"] = recall_above(pooled["photos"], point["score_above"])
    results["operating_point"] = point
    results["seconds"] = round(time.perf_counter() - start, 1)
    try:
        write_results(results, out_dir)
    except OSError as exc:  # the measurements are still returned (and printed by the CLI)
        results["write_error"] = f"cannot write the results in {out_dir} ({exc})"
    return results


def _wider_part(data_dir: Path, wider):
    """(folder, photos, ground truth, why skipped or None) of the WIDER part of `evaluate`.

    wider None: the kit's validation split, skipped (with the reason) when the kit has no
    wider/ folder; a folder: every photo of that WIDER-layout folder (errors are raised: the
    user asked for it). Skipped too when SciPy, which reads the benchmark's .mat files, is
    not installed: the rest of the evaluation still runs."""
    folder = (data_dir / "wider" if wider is None else Path(wider)).absolute()
    if wider is None and not (folder / "wider_face_bbx_gt.txt").is_file():
        return folder, [], {}, f"{folder}: not in the kit"
    photos = wider_split(data_dir, "val") if wider is None else wider_folder_photos(folder)
    try:
        truth = read_ground_truth(folder / "ground_truth")
    except ImportError as exc:
        return folder, [], {}, str(exc)
    return folder, photos, truth, None


def write_results(results: dict, out_dir) -> None:
    """Write out_dir/evaluation.json (`to_json`) and out_dir/roc.png (a panel per image set:
    recall against false positives per image, and false positives per face-free photo against
    the threshold, `pipeline.plots.training.plot_evaluation`); creates out_dir."""
    from pipeline.plots.training import plot_evaluation

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "evaluation.json").write_text(to_json(results))
    plot_evaluation(results, save=out_dir / "roc.png")


# ---------------------------------------------------------------- reporting


def to_json(results: dict) -> str:
    """The results as indented JSON, each list of plain values (numbers, names) on one line."""

    def dump(value, pad: str) -> str:
        inner = pad + "  "
        if isinstance(value, dict) and value:
            items = [f"{inner}{json.dumps(str(key))}: {dump(item, inner)}" for key, item in value.items()]
            return "{\n" + ",\n".join(items) + "\n" + pad + "}"
        if isinstance(value, list) and any(isinstance(item, (dict, list)) for item in value):
            return "[\n" + ",\n".join(inner + dump(item, inner) for item in value) + "\n" + pad + "]"
        return json.dumps(value)

    return dump(results, "") + "\n"


def _fraction(value, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def format_summary(results: dict) -> str:
    """A table of the results of `evaluate`, one row per image set, and the operating point."""
    rows = [("set", "images", "faces", "found", "recall", "false pos.", "AP")]
    for key in ("val", "photos"):
        r = results[key]
        rows.append((key, str(r["images"]), str(r["faces"]), str(r["detected"]), _fraction(r["recall"]),
                     str(r["false_positives"]), _fraction(r["ap"])))
    n = results["negatives"]
    rows.append(("negatives", str(n["images"]), "-", "-", "-", str(n["false_positives"]), "-"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [f"{results['detector']}: faces found at IoU >= {results['iou_threshold']}, "
             "at the detector's own thresholds"]
    for row in rows:
        lines.append("  ".join([row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:])]))
    marks = results["val"].get("landmark_error")
    if marks and marks["faces"]:
        lines.append(f"landmarks: mean error {marks['mean']:.4f} (median {marks['median']:.4f}) of the "
                     f"inter-ocular distance, over the {marks['faces']} val faces found")
    lines.append(f"negatives: {_fraction(n['false_positives_per_photo'])} false positives per held-out "
                 f"face-free photo (gray {n['gray']['false_positives']} on {n['gray']['images']}, "
                 f"colour {n['color']['false_positives']} on {n['color']['images']})")
    w = results.get("wider")
    if w and w.get("skipped"):
        lines.append(f"WIDER FACE AP not measured ({w['skipped']})")
    elif w:
        lines.append(f"WIDER FACE ({w['photos']} photos, the benchmark's protocol): AP easy {w['easy']:.3f}, "
                     f"medium {w['medium']:.3f}, hard {w['hard']:.3f} ({w['faces']['easy']} / "
                     f"{w['faces']['medium']} / {w['faces']['hard']} faces scored)")
    wild = results.get("wild_landmarks")
    if wild and not wild.get("skipped"):
        marks = wild["landmark_error"]
        error = "-" if not marks["faces"] else f"{marks['mean']:.4f} (median {marks['median']:.4f})"
        lines.append(f"wild landmarks: {wild['detected']} of {wild['faces']} faces found; mean landmark error "
                     f"{error} of the inter-ocular distance")
    p = results["operating_point"]
    limit = "the detector's own thresholds" if p["score_above"] is None else f"score > {p['score_above']:.4f}"
    lines.append(f"at <= {p['max_false_positives_per_photo']} false positives per face-free photo "
                 f"({p['false_positives']} of {p['allowed']} allowed, {limit}): "
                 f"val recall {_fraction(p['val_recall'])}, photos recall {_fraction(p['photos_recall'])}")
    for key in ("val", "photos", "negatives", "wider", "wild_landmarks"):
        if results.get(key, {}).get("failed"):
            lines.append(f"{key}: {len(results[key]['failed'])} images failed to load and were left out")
    return "\n".join(lines)
