"""The Cascade-CNN detector (Li et al., CVPR 2015): three detection nets, each followed by a
calibration net that moves and rescales the windows it keeps.

    image -> pyramid -> 12-net scan of every level (a window every 4 px) -> threshold
          -> 12-cal -> NMS within each level                                 (stage 1, `scan`)
          -> crop 24x24 -> 24-net -> threshold -> 24-cal -> NMS within each level  (stage 2, `refine`)
          -> crop 48x48 -> 48-net -> threshold -> NMS over all levels -> 48-cal    (stage 3, `output`)

The nets look at square windows: a face's window is the square of the face box's area about its
centre (`pipeline.training.samples.face_window`). The last step turns each square back into a face box of
the shape the training boxes had (``aspect`` = height / width, measured on the training faces
and stored with the weights), so that the boxes follow the same convention as the MTCNN
detector's. Boxes follow `pipeline.detection.boxes` (0-based x1, y1, x2, y2 in pixels of the original
image). Every stage accepts zero boxes.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from layers import softmax

from pipeline.detection import arguments
from pipeline.detection.boxes import batched_nms, nms
from pipeline.detection.calibration import CALIBRATION_THRESHOLD, calibrate
from pipeline.data.images import load_image
from pipeline.detection.pyramid import DEFAULT_FACTOR, DEFAULT_MIN_FACE, no_level_note, pyramid_scales, scaled_size
from pipeline.detection.runner import RunsOnARunner, make_runner
from pipeline.detection.trace import Boxes, Face, Trace

WINDOW = 12         # the 12-net's window, in pixels of a pyramid level
SCAN_STRIDE = 4     # pixels between neighbouring windows of the scan (the paper's spacing)
NMS_WITHIN_LEVEL = 0.5  # IoU, after the 12- and 24-stages, among one pyramid level's windows
NMS_GLOBAL = 0.3        # IoU, over all levels, after the 48-net
NET_NAMES = ("net12", "cal12", "net24", "cal24", "net48", "cal48")  # the nets' names in `CascadeNets`


def heatmap_windows(prob: np.ndarray, scale: float, threshold: float):
    """Windows of the 12-net scan whose face probability is at least ``threshold``.

    prob: (OH, OW) face probabilities of one pyramid level, cell (i, j) being the 12 x 12 window
    with top-left pixel (4 j, 4 i) of the level; scale: level size / image size.
    Returns (boxes (K, 4) float32 in pixels of the original image, scores (K,) float32).
    """
    rows, cols = np.nonzero(prob >= threshold)
    x1 = cols * SCAN_STRIDE / scale
    y1 = rows * SCAN_STRIDE / scale
    side = WINDOW / scale
    boxes = np.stack([x1, y1, x1 + side, y1 + side], axis=1).astype(np.float32)
    return boxes.reshape(-1, 4), prob[rows, cols].astype(np.float32)


def window_to_box(windows: np.ndarray, aspect: float) -> np.ndarray:
    """Square windows -> face boxes of height / width = aspect, same centre and same area.

    windows: (K, 4) float squares x1, y1, x2, y2 in pixels. Returns (K, 4) float32.
    """
    side = windows[:, 2] - windows[:, 0]
    cx, cy = (windows[:, 0] + windows[:, 2]) / 2, (windows[:, 1] + windows[:, 3]) / 2
    w, h = side / np.sqrt(aspect), side * np.sqrt(aspect)
    return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1).astype(np.float32)


class CascadeDetector(RunsOnARunner):
    """Face detector with the Cascade-CNN nets trained in this project.

    min_face_size: smallest face to find, in pixels; thresholds: face probability needed to
    pass the 12-, 24- and 48-net (default: the ones chosen on the validation faces during
    training, stored with the weights); final_threshold: the score (24-net probability times
    48-net probability) a face needs in the end (default: the one chosen on validation photos
    for at most 0.1 false positives per face-free photo, stored with the weights); factor:
    pyramid shrink factor; nets: a `CascadeNets` to use instead of the shipped weights (used,
    not copied: each ``detect`` sees their current weights); runner, workers: where the heavy
    steps run, as in `MTCNNDetector` (`pipeline.detection.runner`); weights: the weights
    folder of a `facecascade train cascade` run (its ``cascade_*.npz``), instead of the shipped
    set ("shipped" or None: the shipped set; give nets or weights, not both).

        det = CascadeDetector()
        faces = det.detect("photo.jpg")            # list of Face (no landmarks), best first
        faces, trace = det.detect(image, trace=True)
    """

    def __init__(self, min_face_size: float = DEFAULT_MIN_FACE, thresholds=None, factor: float = DEFAULT_FACTOR,
                 nets=None, workers: int | None = None, calibration_threshold: float = CALIBRATION_THRESHOLD,
                 final_threshold: float | None = None, weights=None, runner: str = "fast"):
        from nets.cascade_weights import load_cascade, shipped_cascade

        if weights is not None and weights != "shipped":
            if nets is not None:
                raise ValueError("give nets or weights, not both")
            folder = Path(weights)
            if not folder.is_dir():
                raise ValueError(f"weights must be 'shipped' or the weights folder of a training run; "
                                 f"{folder} is not a folder")
            nets = load_cascade(folder)

        self.min_face_size = arguments.positive("min_face_size", min_face_size, "pixels")
        self.factor = arguments.fraction("factor", factor)
        self.calibration_threshold = arguments.number("calibration_threshold", calibration_threshold)
        self.runner = make_runner(runner, arguments.positive_int_or_none("workers", workers), batch_last=False)
        self.shipped = nets is None
        self.nets = shipped_cascade() if nets is None else nets
        self.thresholds = arguments.probabilities(
            "thresholds", self.nets.thresholds if thresholds is None else thresholds)
        self.final_threshold = arguments.probabilities(
            "final_threshold", [self.nets.final_threshold if final_threshold is None else final_threshold], 1)[0]

    def __repr__(self) -> str:
        nets = "shipped" if self.shipped else "given"
        return (f"CascadeDetector(min_face_size={self.min_face_size:g}, thresholds="
                f"({', '.join(f'{t:.4g}' for t in self.thresholds)}), final_threshold={self.final_threshold:.4g}, "
                f"factor={self.factor:g}, "
                f"workers={self.runner.workers}, nets={nets})")

    # ------------------------------------------------------------------ the three stages
    def scan(self, image_chw: np.ndarray, trace: Trace):
        """Stage 1. image_chw: (3, H, W) float32 0..255. Returns (Boxes, level (K,) int) of the
        calibrated windows left after NMS within each level."""
        _, H, W = image_chw.shape
        trace.thresholds = self.thresholds
        trace.scales = pyramid_scales(H, W, self.min_face_size, self.factor, window=WINDOW)
        if not trace.scales:
            trace.notes.append(no_level_note(H, W, self.min_face_size, window=WINDOW))
        sizes = [scaled_size(H, W, scale) for scale in trace.scales]
        found = self.runner.scan_levels("net12", self.nets.net12, image_chw, trace.scales, sizes, read_net12_level,
                                        self.thresholds[0])
        boxes, scores, levels = [], [], []
        for k, (size, (prob, b, s)) in enumerate(zip(sizes, found)):
            trace.level_sizes.append(size)
            trace.prob_maps.append(prob)
            trace.level_candidates.append(Boxes(b, s))
            boxes.append(b), scores.append(s), levels.append(np.full(len(b), k))
        if not boxes or not sum(len(b) for b in boxes):
            return Boxes.empty(), np.zeros(0, np.int64)
        boxes, scores, levels = np.concatenate(boxes), np.concatenate(scores), np.concatenate(levels)
        boxes, scores, levels = self._calibrate("cal12", image_chw, boxes, scores, levels)
        keep = batched_nms(boxes, scores, levels, NMS_WITHIN_LEVEL)
        for k in range(len(trace.scales)):
            mine = keep[levels[keep] == k]
            trace.level_after_nms.append(Boxes(boxes[mine], scores[mine]))
        out = Boxes(boxes[keep], scores[keep])
        trace.stage1_after_nms = trace.stage1_output = out
        return out, levels[keep]

    def _logits(self, net_name: str, image_chw, boxes):
        """Crop the boxes (K, 4) at net ``net_name``'s input size and run it. Returns (kept (M,)
        int64, the boxes that gave a crop; logits (M, classes))."""
        net = getattr(self.nets, net_name)
        kept, out = self.runner.score_crops(net_name, net, image_chw, boxes, net.input_size)
        return kept, out.get("logits", np.zeros((0, net.num_classes), np.float32))

    def _calibrate(self, cal_name: str, image_chw, boxes, scores, levels):
        """Crop the windows at the calibration net's size, run it and correct the windows."""
        kept, logits = self._logits(cal_name, image_chw, boxes)
        if not len(kept):
            return boxes[:0], scores[:0], levels[:0]
        corrected = calibrate(boxes[kept], softmax(logits), self.calibration_threshold).astype(np.float32)
        return corrected, scores[kept], levels[kept]

    def _score(self, net_name: str, image_chw, candidates: Boxes, levels):
        """Crop at the net's size and run it: (boxes, face probabilities, levels, the previous
        stage's scores) of the crops made."""
        kept, logits = self._logits(net_name, image_chw, candidates.boxes)
        probs = softmax(logits)[:, 1] if len(kept) else np.zeros(0, np.float32)
        return candidates.boxes[kept], probs.astype(np.float32), levels[kept], candidates.scores[kept]

    def refine(self, image_chw: np.ndarray, candidates: Boxes, levels, trace: Trace):
        """Stage 2: 24-net on 24x24 crops, 24-cal, NMS within each level."""
        boxes, probs, levels, _ = self._score("net24", image_chw, candidates, levels)
        trace.stage2_input = Boxes(boxes, probs)
        passed = probs >= self.thresholds[1]
        trace.stage2_passed_mask = passed
        boxes, probs, levels = boxes[passed], probs[passed], levels[passed]
        trace.stage2_passed = Boxes(boxes, probs)
        boxes, probs, levels = self._calibrate("cal24", image_chw, boxes, probs, levels)
        keep = batched_nms(boxes, probs, levels, NMS_WITHIN_LEVEL)
        out = Boxes(boxes[keep], probs[keep])
        trace.stage2_after_nms = trace.stage2_output = out
        return out, levels[keep]

    def output(self, image_chw: np.ndarray, candidates: Boxes, levels, trace: Trace) -> Boxes:
        """Stage 3: 48-net on 48x48 crops, NMS over all levels, 48-cal; face boxes.

        A window passes when the 48-net's face probability reaches its threshold and the final
        score, the product of the 24-net's and the 48-net's probabilities (what both nets
        believe), reaches ``final_threshold``. On the validation images the product kept more
        faces at 0.1 false positives per face-free photo than the 48-net's probability alone
        (95.4% against 94.1%)."""
        boxes, probs, levels, before = self._score("net48", image_chw, candidates, levels)
        trace.stage3_input = Boxes(boxes, probs)
        score = (probs * before).astype(np.float32)
        passed = (probs >= self.thresholds[2]) & (score >= self.final_threshold)
        trace.stage3_passed_mask = passed
        boxes, score, levels = boxes[passed], score[passed], levels[passed]
        trace.stage3_passed = Boxes(boxes, score)
        keep = nms(boxes, score, NMS_GLOBAL)
        boxes, score, levels = self._calibrate("cal48", image_chw, boxes[keep], score[keep], levels[keep])
        out = Boxes(window_to_box(boxes, self.nets.aspect), score)
        trace.stage3_output = out
        return out

    # ------------------------------------------------------------------ public API
    def session(self, rgb: np.ndarray):
        """The runner ready for one image: a context that yields it as the (3, H, W) float32
        array (0..255) that `scan`, `refine` and `output` take. rgb: (H, W, 3) uint8, e.g. from
        `load_image`. The nets run in inference mode inside; the fast runner's helper processes
        have them as they were when the session began (a change to the weights starts new ones).
        """
        # a cascade being trained may lack its later nets
        present = {name: getattr(self.nets, name) for name in NET_NAMES if getattr(self.nets, name) is not None}
        return self.runner.session(present, rgb)

    def detect(self, image, trace: bool = False):
        """Find faces.

        image: RGB uint8 array (H, W, 3) (grayscale and RGBA arrays are converted), a PIL
        image, or a path (EXIF orientation applied). Returns a list of Face (landmarks: an empty
        (0, 2) array; Cascade-CNN finds none), best score first; with trace=True, (faces, Trace).
        """
        rgb = load_image(image)
        record = Trace(image=rgb, detector="Cascade-CNN", stage_names=("12-net", "24-net", "48-net"))
        final = Boxes.empty()
        with self.session(rgb) as image_chw:
            candidates, levels = self.scan(image_chw, record)
            if len(candidates):
                candidates, levels = self.refine(image_chw, candidates, levels, record)
            if len(candidates):
                final = self.output(image_chw, candidates, levels, record)
        for note in record.notes:
            warnings.warn(note, UserWarning, stacklevel=2)
        order = np.argsort(-final.scores, kind="stable")
        faces = [Face(final.boxes[i].astype(np.float64), float(final.scores[i]), np.zeros((0, 2)))
                 for i in order]
        return (faces, record) if trace else faces


def read_net12_level(net12, level: np.ndarray, scale: float, threshold: float):
    """Stage 1 on one pyramid level (the runner calls it for each): the 12-net's face map and its
    windows at or above ``threshold``.

    level: (3, h, w) float32, normalized; scale: level size / image size. Returns prob (OH, OW),
    boxes (K, 4) in pixels of the image and scores (K,) (`heatmap_windows`).
    """
    prob = softmax(net12.scan(level[None]))[0, 1]
    return (prob, *heatmap_windows(prob, scale, threshold))
