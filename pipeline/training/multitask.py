"""MTCNN's multi-task loss, as a task for the shared training loop (`pipeline.training.loop`).

Each of MTCNN's nets (Zhang et al., IEEE SPL 2016) learns three things at once from one trunk:
is this window a face (2 logits), where is the face's box (4 offsets), where are its five
landmarks (10 values). Not every sample has every answer, so every sample has a *kind*, and the
kind switches each loss term on or off for it (the paper's sample-type indicator beta):

    kind          face label   box offsets   landmarks     a window that ...
    0 negative    0 (no face)  -             -             overlaps the face with IoU < 0.3
    1 positive    1 (face)     yes           -             overlaps it with IoU > 0.65
    2 part        -            yes           -             overlaps it with 0.4 <= IoU <= 0.65
    3 landmark    -            -             yes           holds a face with annotated points

    loss = alpha_face * L_face + alpha_box * L_box + alpha_landmarks * L_landmarks

* L_face: softmax cross-entropy over the negatives and positives of the batch, with *online
  hard example mining*: only the hardest 70% of those per-sample losses count (`ohem_weights`),
  so the easy negatives that make up most of the data stop dominating the gradient.
* L_box: squared L2 distance of the 4 offsets, averaged over the positives and parts.
* L_landmarks: squared L2 distance of the 10 values, averaged over the landmark samples.
* alpha = (1, 0.5, 0.5) for P-Net and R-Net, (1, 0.5, 1) for O-Net (`LOSS_WEIGHTS`).

The OHEM selection is made in the forward pass and then held fixed, so the loss is piecewise
smooth and its gradient is the gradient of the weighted mean over the selected samples; a
gradient check at a point where no two candidate losses tie sees exactly that function.

Labels of a `SampleSet` for this task: ``kind`` (N,) int64; ``box`` (N, 4) float32 offsets
(dx1, dy1, dx2, dy2) as fractions of the window side (NaN where the kind has none);
``landmarks`` (N, 10) float32 x1..x5 then y1..y5 as fractions of the window (NaN where the
kind has none), points in the order left eye, right eye, nose, left mouth corner, right mouth
corner, the layout of the released O-Net.
"""

from __future__ import annotations

import numpy as np

from layers import euclidean_loss, ohem_weights, softmax, softmax_cross_entropy, softmax_cross_entropy_per_sample

from pipeline.training.loop import SampleSet, predict, stage_threshold

NEGATIVE, POSITIVE, PART, LANDMARK = 0, 1, 2, 3
KIND_NAMES = ("negative", "positive", "part", "landmark")
FACE = 1            # index of the face logit
OHEM_KEEP = 0.7     # share of the classification losses kept per batch
HEADS = ("face", "box", "landmarks")
# alpha_face, alpha_box, alpha_landmarks per net (the paper's task weights).
LOSS_WEIGHTS = {"pnet": (1.0, 0.5, 0.5), "rnet": (1.0, 0.5, 0.5), "onet": (1.0, 0.5, 1.0)}
# Mirroring the image left-right makes the left eye the right eye and swaps the mouth corners.
MIRRORED_POINTS = np.array([1, 0, 2, 4, 3])
STAT_NAMES = {"face": "face loss", "box": "box loss", "landmarks": "landmark loss"}


# ---------------------------------------------------------------- mirroring the labels

def mirror_boxes(offsets: np.ndarray) -> np.ndarray:
    """Box offsets of a window after mirroring it left-right.

    offsets: (N, 4) dx1, dy1, dx2, dy2 as fractions of the window side. Mirroring maps x to
    x1_win + x2_win - x, so the face's new left edge is its old right edge:
    dx1' = -dx2 and dx2' = -dx1; dy1, dy2 stay. Returns a new (N, 4) array.
    """
    offsets = np.asarray(offsets)
    return np.stack([-offsets[:, 2], offsets[:, 1], -offsets[:, 0], offsets[:, 3]], axis=1)


def mirror_landmarks(points: np.ndarray) -> np.ndarray:
    """Landmarks of a window after mirroring it left-right.

    points: (N, 10) x1..x5, y1..y5 as fractions of the window. Each x becomes 1 - x, and the
    points swap names (left eye <-> right eye, left <-> right mouth corner), so that point 0
    is again the eye on the left of the image. Returns a new (N, 10) array.
    """
    points = np.asarray(points)
    xs, ys = points[:, :5], points[:, 5:]
    return np.concatenate([1 - xs[:, MIRRORED_POINTS], ys[:, MIRRORED_POINTS]], axis=1)


# ---------------------------------------------------------------- the loss

def flatten_heads(outputs: dict) -> dict:
    """Head outputs as (N, K): a net on its nominal input gives (N, K), P-Net on a 12x12 crop
    gives maps (N, K, 1, 1), which are reshaped. Raises ValueError for larger maps."""
    flat = {}
    for name, out in outputs.items():
        if out.ndim == 4:
            if out.shape[2:] != (1, 1):
                raise ValueError(f"head {name!r} gave a {out.shape[2]}x{out.shape[3]} map; train P-Net on "
                                 "12x12 crops, where every head gives one value per sample")
            out = out.reshape(out.shape[:2])
        flat[name] = out
    return flat


def _check_labels(kind, box, landmarks, N):
    if kind.shape != (N,) or not np.issubdtype(kind.dtype, np.integer):
        raise ValueError(f"kind must be (N,) = ({N},) integers, got {kind.dtype} {kind.shape}")
    if np.any((kind < NEGATIVE) | (kind > LANDMARK)):
        raise ValueError(f"kind must be 0 (negative), 1 (positive), 2 (part) or 3 (landmark), "
                         f"got {np.unique(kind)}")
    if box.shape != (N, 4) or landmarks.shape != (N, 10):
        raise ValueError(f"box must be (N, 4) and landmarks (N, 10), got {box.shape} and {landmarks.shape}")


def multitask_loss(outputs: dict, kind, box, landmarks, alpha=LOSS_WEIGHTS["pnet"], ohem_keep: float = OHEM_KEEP):
    """MTCNN's loss on one batch, with its gradient.

    outputs: head name -> (N, K) raw outputs: "face" (N, 2) logits, "box" (N, 4), "landmarks"
    (N, 10); a head whose alpha is 0 may be missing. kind: (N,) int 0..3 (module docstring);
    box: (N, 4) offset targets, read only for positives and parts; landmarks: (N, 10) targets,
    read only for landmark samples (NaN elsewhere is fine). alpha: (alpha_face, alpha_box,
    alpha_landmarks); ohem_keep: share of the negatives' and positives' classification losses
    kept (1.0 switches hard example mining off).

    Returns (loss, douts, terms):
      loss: float, alpha-weighted sum of the three terms, L_face over the selected samples;
      douts: head name -> (N, K) gradient of loss w.r.t. that head's output;
      terms: head name -> float, each unweighted term (L_face over the selected samples), plus
      "face_all": the cross-entropy over all negatives and positives (what validation
      measures) and "selected": (N,) float 0/1, the samples OHEM kept.
    """
    kind = np.asarray(kind)
    N = len(kind)
    box = np.asarray(box)
    landmarks = np.asarray(landmarks)
    _check_labels(kind, box, landmarks, N)
    weights = dict(zip(HEADS, alpha))
    missing = [name for name in HEADS if weights[name] != 0 and name not in outputs]
    if missing:
        raise ValueError(f"the net has no {missing} head(s): build P-Net / R-Net with landmarks=True, "
                         "or set that head's alpha to 0")
    loss, douts, terms = 0.0, {}, {}

    if "face" in outputs:
        logits = outputs["face"]
        classified = (kind == NEGATIVE) | (kind == POSITIVE)
        labels = (kind == POSITIVE).astype(np.int64)
        per_sample, _ = softmax_cross_entropy_per_sample(logits, labels)
        selected = ohem_weights(per_sample, ohem_keep, valid=classified)
        term, dlogits = softmax_cross_entropy(logits, labels, weights=selected)
        terms["face"], terms["selected"] = term, selected
        terms["face_all"] = float(per_sample[classified].mean()) if classified.any() else 0.0
        loss += weights["face"] * term
        douts["face"] = weights["face"] * dlogits
    for name, target, wanted in (("box", box, (kind == POSITIVE) | (kind == PART)),
                                 ("landmarks", landmarks, kind == LANDMARK)):
        if name not in outputs:
            continue
        term, dpred = euclidean_loss(outputs[name], target, weights=wanted.astype(outputs[name].dtype))
        terms[name] = term
        loss += weights[name] * term
        douts[name] = weights[name] * dpred
    return float(loss), douts, terms


# ---------------------------------------------------------------- the task

class MultiTaskTask:
    """MTCNN's multi-task loss for `pipeline.training.loop.Trainer`.

    alpha: (alpha_face, alpha_box, alpha_landmarks), see `LOSS_WEIGHTS` and `task_for_net`;
    ohem_keep: share of the classification losses kept per batch; mirror: mirror half of the
    samples each epoch (the box and landmark labels follow, `mirror_labels`); target_recall,
    max_negatives_passed: how validation chooses the stage's face-score threshold
    (`pipeline.training.loop.stage_threshold`: keep target_recall of the positives, or, when
    max_negatives_passed is given, let at most that share of the negatives through).
    """

    positive_class = FACE

    def __init__(self, alpha=LOSS_WEIGHTS["pnet"], ohem_keep: float = OHEM_KEEP, mirror: bool = True,
                 target_recall: float = 0.99, max_negatives_passed: float | None = None):
        if len(alpha) != 3 or any(a < 0 for a in alpha):
            raise ValueError(f"alpha must be three weights >= 0 (face, box, landmarks), got {alpha!r}")
        self.alpha = tuple(float(a) for a in alpha)
        self.ohem_keep = ohem_keep
        self.mirror = mirror
        self.target_recall = target_recall
        self.max_negatives_passed = max_negatives_passed

    @property
    def mirrors(self) -> bool:
        return self.mirror

    def mirror_labels(self, labels: dict, flip: np.ndarray) -> dict:
        """labels after mirroring the samples where flip (N,) is True: box offsets and
        landmarks change (`mirror_boxes`, `mirror_landmarks`), the kind stays."""
        out = dict(labels)
        out["box"] = np.where(flip[:, None], mirror_boxes(labels["box"]), labels["box"])
        out["landmarks"] = np.where(flip[:, None], mirror_landmarks(labels["landmarks"]), labels["landmarks"])
        return out

    def loss(self, outputs: dict, labels: dict):
        """outputs: head name -> raw output ((N, K), or (N, K, 1, 1) from P-Net on 12x12 crops).

        Returns (loss, douts, stats): the OHEM loss that training descends, the gradient per
        head (shaped like that head's output) and batch sums for the running averages:
        "loss" (the alpha-weighted total with the face term over *all* negatives and
        positives, so that it is the same quantity as the validation loss), "correct" and
        "classified" (negatives and positives predicted right, and their number), and each
        unweighted term ("face loss" over all negatives and positives, "box loss",
        "landmark loss"), every one times the batch size.
        """
        shapes = {name: out.shape for name, out in outputs.items()}
        flat = flatten_heads(outputs)
        kind = labels["kind"]
        loss, douts, terms = multitask_loss(flat, kind, labels["box"], labels["landmarks"], self.alpha,
                                            self.ohem_keep)
        douts = {name: d.reshape(shapes[name]) for name, d in douts.items()}
        N = len(kind)
        classified = (kind == NEGATIVE) | (kind == POSITIVE)
        stats = {"classified": int(classified.sum()), "correct": 0}
        if "face" in flat:
            predicted = flat["face"].argmax(axis=1) == FACE
            stats["correct"] = int((predicted == (kind == POSITIVE))[classified].sum())
        unmined = dict(terms, face=terms.get("face_all", 0.0))
        stats["loss"] = N * sum(a * unmined[name] for name, a in zip(HEADS, self.alpha) if name in unmined)
        for name in HEADS:
            if name in terms:
                stats[STAT_NAMES[name]] = N * unmined[name]
        return loss, douts, stats

    def validate(self, net, samples: SampleSet) -> dict:
        """Measures on the validation samples, without hard example mining:

        loss: alpha-weighted total; face loss, box loss, landmark loss: each term;
        accuracy: share of negatives and positives classified right (face if p >= 0.5);
        recall: share of positives with p >= 0.5; threshold: the largest face probability
        that keeps ``target_recall`` of the positives; negatives_passed: share of negatives
        at or above it; box error: mean |offset error| over positives and parts (a fraction
        of the window side); landmark error: mean distance between predicted and true points
        over the landmark samples (a fraction of the window side).
        """
        outputs = flatten_heads(predict(net, samples.images))
        labels = samples.labels
        kind = labels["kind"]
        _, _, terms = multitask_loss(outputs, kind, labels["box"], labels["landmarks"], self.alpha, ohem_keep=1.0)
        metrics = {"loss": sum(a * terms[name] for name, a in zip(HEADS, self.alpha) if name in terms)}
        metrics.update({STAT_NAMES[name]: terms[name] for name in HEADS if name in terms})
        if "face" in outputs:
            score = softmax(outputs["face"])[:, FACE]
            faces, non_faces = kind == POSITIVE, kind == NEGATIVE
            classified = faces | non_faces
            threshold = stage_threshold(score[faces], score[non_faces], self.target_recall,
                                        self.max_negatives_passed)
            right = (score >= 0.5) == faces
            metrics.update(
                accuracy=float(np.mean(right[classified])) if classified.any() else float("nan"),
                recall=float(np.mean(score[faces] >= 0.5)) if faces.any() else float("nan"),
                threshold=threshold,
                threshold_recall=float(np.mean(score[faces] >= threshold)) if faces.any() else float("nan"),
                negatives_passed=float(np.mean(score[non_faces] >= threshold)) if non_faces.any() else 0.0)
        boxed = (kind == POSITIVE) | (kind == PART)
        if "box" in outputs:
            metrics["box error"] = (float(np.mean(np.abs(outputs["box"][boxed] - labels["box"][boxed])))
                                    if boxed.any() else float("nan"))
        marked = kind == LANDMARK
        if "landmarks" in outputs:
            metrics["landmark error"] = (float(np.mean(_point_distances(outputs["landmarks"][marked],
                                                                        labels["landmarks"][marked])))
                                         if marked.any() else float("nan"))
        return metrics

    def roc(self, net, samples: SampleSet):
        """(false positive rate, recall) over all thresholds, on the validation negatives and
        positives."""
        score = softmax(flatten_heads(predict(net, samples.images))["face"])[:, FACE]
        kind = samples.labels["kind"]
        keep = (kind == POSITIVE) | (kind == NEGATIVE)
        score, faces = score[keep], kind[keep] == POSITIVE
        order = np.argsort(-score, kind="stable")
        tp = np.cumsum(faces[order]) / max(1, faces.sum())
        fp = np.cumsum(~faces[order]) / max(1, (~faces).sum())
        return fp, tp


def task_for_net(net: str, **options) -> MultiTaskTask:
    """The task of "pnet", "rnet" or "onet" with that net's task weights (`LOSS_WEIGHTS`);
    further keyword options go to `MultiTaskTask`."""
    if net not in LOSS_WEIGHTS:
        raise ValueError(f"net must be one of {sorted(LOSS_WEIGHTS)}, got {net!r}")
    return MultiTaskTask(LOSS_WEIGHTS[net], **options)


def _point_distances(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """(N, 10) x1..x5, y1..y5 twice -> (N, 5) Euclidean distances between the points."""
    return np.hypot(pred[:, :5] - target[:, :5], pred[:, 5:] - target[:, 5:])


