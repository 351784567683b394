"""The MTCNN detector: three stages, each a short function over boxes.

MTCNN: Zhang, Zhang, Li, Qiao, "Joint Face Detection and Alignment using Multi-task Cascaded
Convolutional Networks", IEEE Signal Processing Letters 23(10), 2016. The steps, thresholds and
NMS overlaps below are those of the released models' MATLAB demo (detect_face.m), as kept by
the reference Python port (facenet-pytorch 2.6.0), whose faces we reproduce exactly
(tests/test_mtcnn_parity.py):

    image -> pyramid -> P-Net per level -> candidate boxes -> NMS per level -> NMS across levels
          -> box regression -> square            (stage 1, `propose`)
          -> crop 24x24 -> R-Net -> threshold -> NMS -> regression -> square   (stage 2, `refine`)
          -> crop 48x48 -> O-Net -> threshold -> landmarks -> regression -> NMS (Min)  (stage 3, `output`)

Boxes follow `pipeline.detection.boxes` (0-based x1, y1, x2, y2 in pixels of the original image, width
x2 - x1). Every stage accepts zero boxes and returns zero boxes.

Defaults (the reference's): smallest face 20 px, pyramid factor 0.709, face-probability
thresholds 0.6 (P-Net, cells with p >= 0.6 kept), 0.7 (R-Net, p > 0.7) and 0.7 (O-Net, p > 0.7).
"""

from __future__ import annotations

import warnings

import numpy as np

from layers import softmax
from nets import ONET_SIZE, RNET_SIZE, load_mtcnn
from nets.mtcnn_weights import RELEASED_THRESHOLDS

from pipeline.detection.boxes import apply_regression, make_square, nms
from pipeline.data.images import load_image, to_chw_float
from pipeline.detection import arguments
from pipeline.detection.proposals import heatmap_to_boxes, pnet_maps
from pipeline.detection.pyramid import DEFAULT_FACTOR, DEFAULT_MIN_FACE, no_level_note, pyramid_scales, scaled_size
from pipeline.detection.runner import RunsOnARunner, make_runner
from pipeline.detection.trace import Boxes, Face, Trace

DEFAULT_THRESHOLDS = RELEASED_THRESHOLDS  # face probability to pass P-Net, R-Net, O-Net (0.6, 0.7, 0.7)
NMS_WITHIN_LEVEL = 0.5   # IoU, among one pyramid level's candidates
NMS_ACROSS_LEVELS = 0.7  # IoU, among all levels' survivors
NMS_RNET = 0.7           # IoU, after R-Net
NMS_ONET_MIN = 0.7       # intersection over the smaller box, after O-Net: also drops a box inside another


def union_nms(boxes: np.ndarray, scores: np.ndarray, threshold: float) -> np.ndarray:
    """IoU-based NMS as the reference MTCNN measures it; returns kept indices, best first.

    boxes: (K, 4) x1, y1, x2, y2 in pixels; scores: (K,). facenet-pytorch runs torchvision's
    NMS on MATLAB-style boxes whose left/top edge is one pixel larger than ours, so it sees
    every box one pixel narrower and shorter. On the small, pixel-aligned boxes of P-Net that
    decides which near-duplicates survive, so we measure the same way to find the same faces.
    (The original MATLAB code's +1 widths equal our plain `nms`; the final Min-NMS uses that.)
    """
    shrunk = boxes.copy()
    shrunk[:, :2] += 1
    return nms(shrunk, scores, threshold)


def iou_nms(boxes: np.ndarray, scores: np.ndarray, threshold: float, exact: bool) -> np.ndarray:
    """IoU NMS as the released weights' conventions measure it (`union_nms`), or plainly
    (`pipeline.detection.boxes.nms`) for nets trained here on exact windows; returns kept indices."""
    return nms(boxes, scores, threshold) if exact else union_nms(boxes, scores, threshold)


class MTCNNDetector(RunsOnARunner):
    """Face detector with MTCNN's three nets: the released weights (default) or those trained
    here from scratch.

    min_face_size: smallest face to find, in pixels (> 0); thresholds: face probability
    needed to pass P-Net, R-Net and O-Net (three numbers in [0, 1]; default: the weights' own,
    0.6, 0.7, 0.7 for the released ones); factor: pyramid shrink factor between levels
    (0 < factor < 1); weights: "released" (default), "scratch" (the nets trained here by
    ``facecascade train mtcnn``, with the thresholds chosen on validation data) or a folder
    of a training run's ``mtcnn_*.npz`` files (`nets.load_mtcnn`); nets: (pnet, rnet, onet) to
    use instead (they are used, not copied: each ``detect`` sees their current weights);
    runner: where the heavy steps run (`pipeline.detection.runner`): "fast" (default: shared
    among ``workers`` processes, this one and forked helpers; default: the CPUs available, at
    most four) or "plain" (one step after the other in this process, to read or debug);
    conventions: "released" keeps the three pixel
    conventions the released weights were trained with (see `union_nms`, `heatmap_to_boxes`
    and `propose`), "exact" drops them, for nets trained here on exact windows (default: the
    weights' own; "released" for ``nets``).
    One detector runs one ``detect`` at a time: a second thread's call waits for the first
    (give each thread its own detector to run them side by side).

        det = MTCNNDetector()
        faces = det.detect("photo.jpg")            # list of Face, best first
        faces, trace = det.detect(image, trace=True)
        scratch = MTCNNDetector(weights="scratch")  # the nets trained in NumPy
    """

    def __init__(self, min_face_size: float = DEFAULT_MIN_FACE, thresholds=None,
                 factor: float = DEFAULT_FACTOR, nets=None, workers: int | None = None,
                 conventions: str | None = None, weights="released", runner: str = "fast"):
        if conventions not in (None, "released", "exact"):
            raise ValueError(f"conventions must be 'released' or 'exact'; got {conventions!r}")
        self.min_face_size = arguments.positive("min_face_size", min_face_size, "pixels")
        self.factor = arguments.fraction("factor", factor)
        self.runner = make_runner(runner, arguments.positive_int_or_none("workers", workers), batch_last=True)
        if nets is not None:
            if isinstance(nets, (str, bytes)) or not hasattr(nets, "__len__") or len(nets) != 3:
                raise ValueError(f"nets must be three nets (pnet, rnet, onet); got {nets!r}")
            if not (isinstance(weights, str) and weights == "released"):
                raise ValueError("give either nets or weights, not both")
            own_thresholds, own_conventions, self.weights = DEFAULT_THRESHOLDS, "released", "given"
        else:
            loaded = load_mtcnn(weights)
            nets, own_thresholds, own_conventions = loaded.nets, loaded.thresholds, loaded.conventions
            self.weights = str(weights)
        self.pnet, self.rnet, self.onet = nets
        self.thresholds = arguments.probabilities("thresholds", own_thresholds if thresholds is None else thresholds)
        self.exact = (conventions or own_conventions) == "exact"

    def _nms(self, boxes, scores, threshold):
        """IoU NMS: measured as the reference does (`union_nms`) or, with exact conventions, plainly."""
        return iou_nms(boxes, scores, threshold, self.exact)

    def __repr__(self) -> str:
        thresholds = tuple(round(t, 4) for t in self.thresholds)
        return (f"MTCNNDetector(min_face_size={self.min_face_size:g}, thresholds={thresholds}, "
                f"factor={self.factor:g}, workers={self.runner.workers}, weights={self.weights})")

    # ------------------------------------------------------------------ the three stages
    def propose(self, image_chw: np.ndarray, trace: Trace) -> Boxes:
        """Stage 1. image_chw: (3, H, W) float32 0..255. Returns square candidate boxes."""
        _, H, W = image_chw.shape
        trace.thresholds = self.thresholds
        trace.scales = pyramid_scales(H, W, self.min_face_size, self.factor)
        if not trace.scales:
            trace.notes.append(no_level_note(H, W, self.min_face_size))
        boxes, scores, offsets = [], [], []
        sizes = [scaled_size(H, W, scale) for scale in trace.scales]
        found = self.runner.scan_levels("pnet", self.pnet, image_chw, trace.scales, sizes, read_pnet_level,
                                        self.thresholds[0], self.exact)
        for size, (prob, b, s, o, keep) in zip(sizes, found):
            trace.level_sizes.append(size)
            trace.prob_maps.append(prob)
            trace.level_candidates.append(Boxes(b, s))
            trace.level_after_nms.append(Boxes(b[keep], s[keep]))
            boxes.append(b[keep])
            scores.append(s[keep])
            offsets.append(o[keep])
        if not boxes:
            return Boxes.empty()
        boxes, scores, offsets = (np.concatenate(a) for a in (boxes, scores, offsets))
        keep = self._nms(boxes, scores, NMS_ACROSS_LEVELS)
        boxes, scores, offsets = boxes[keep], scores[keep], offsets[keep]
        trace.stage1_after_nms = Boxes(boxes, scores)
        # The released decoder measures P-Net windows one pixel short (MATLAB's x2 - x1 on
        # inclusive coordinates); its offsets were fitted that way, so we scale them the same.
        short = 0 if self.exact else 1
        width, height = boxes[:, 2] - boxes[:, 0] - short, boxes[:, 3] - boxes[:, 1] - short
        regressed = apply_regression(boxes, offsets, widths=width, heights=height)
        out = Boxes(make_square(regressed).astype(np.float32), scores)
        trace.stage1_output = out
        return out

    def _score_crops(self, net_name: str, image_chw, candidates: Boxes, size: int):
        """Crop, normalize and run a net ("rnet" or "onet"); returns (boxes, probs, outputs) for
        the crops made."""
        kept, out = self.runner.score_crops(net_name, getattr(self, net_name), image_chw, candidates.boxes, size)
        if not out:
            return candidates.boxes[:0], np.zeros(0, np.float32), {}
        return candidates.boxes[kept], softmax(out["face"])[:, 1], out

    def refine(self, image_chw: np.ndarray, candidates: Boxes, trace: Trace) -> Boxes:
        """Stage 2: R-Net on 24x24 crops. Returns square boxes for O-Net."""
        boxes, probs, out = self._score_crops("rnet", image_chw, candidates, RNET_SIZE)
        trace.stage2_input = Boxes(boxes, probs)
        passed = probs > self.thresholds[1]
        trace.stage2_passed_mask = passed
        boxes, probs = boxes[passed], probs[passed]
        offsets = out["box"][passed] if out else np.zeros((0, 4), np.float32)
        trace.stage2_passed = Boxes(boxes, probs)
        keep = self._nms(boxes, probs, NMS_RNET)
        boxes, probs, offsets = boxes[keep], probs[keep], offsets[keep]
        trace.stage2_after_nms = Boxes(boxes, probs)
        result = Boxes(make_square(apply_regression(boxes, offsets)).astype(np.float32), probs)
        trace.stage2_output = result
        return result

    def output(self, image_chw: np.ndarray, candidates: Boxes, trace: Trace):
        """Stage 3: O-Net on 48x48 crops. Returns final Boxes and landmarks (K, 5, 2)."""
        boxes, probs, out = self._score_crops("onet", image_chw, candidates, ONET_SIZE)
        trace.stage3_input = Boxes(boxes, probs)
        passed = probs > self.thresholds[2]
        trace.stage3_passed_mask = passed
        boxes, probs = boxes[passed], probs[passed]
        trace.stage3_passed = Boxes(boxes, probs)
        if not len(boxes):
            return Boxes.empty(), np.zeros((0, 5, 2), np.float32)
        offsets, points = out["box"][passed], out["landmarks"][passed]
        landmarks = decode_landmarks(boxes, points)  # against the box O-Net saw, before regression
        boxes = apply_regression(boxes, offsets).astype(np.float32)
        keep = nms(boxes, probs, NMS_ONET_MIN, mode="min")
        result = Boxes(boxes[keep], probs[keep])
        trace.stage3_output, trace.landmarks = result, landmarks[keep]
        return result, landmarks[keep]

    # ------------------------------------------------------------------ public API
    def session(self, rgb: np.ndarray):
        """The runner ready for one image: a context that yields it as the (3, H, W) float32
        array (0..255) that `propose`, `refine` and `output` take. rgb: (H, W, 3) uint8, e.g.
        from `load_image`. The fast runner's helper processes have the nets as they were when
        the session began."""
        return self.runner.session({"pnet": self.pnet, "rnet": self.rnet, "onet": self.onet}, rgb)

    def detect(self, image, trace: bool = False):
        """Find faces.

        image: RGB uint8 array (H, W, 3) (grayscale and RGBA arrays are converted), a PIL
        image, or a path (EXIF orientation applied). Returns a list of Face, best score first;
        with trace=True, (faces, Trace).

        An image whose shorter side is under ``min_face_size`` has no pyramid level (no face
        of the size asked for fits): it gives no faces, with a `UserWarning` saying so, and
        the same sentence in ``trace.notes``.
        """
        rgb = load_image(image)
        record = Trace(image=rgb)
        with self.session(rgb) as image_chw:
            candidates = self.propose(image_chw, record)
            if len(candidates):
                candidates = self.refine(image_chw, candidates, record)
            if len(candidates):
                final, landmarks = self.output(image_chw, candidates, record)
            else:
                final, landmarks = Boxes.empty(), np.zeros((0, 5, 2), np.float32)
        for note in record.notes:
            warnings.warn(note, UserWarning, stacklevel=2)
        order = np.argsort(-final.scores, kind="stable")
        faces = [Face(final.boxes[i].astype(np.float64), float(final.scores[i]),
                      landmarks[i].astype(np.float64)) for i in order]
        return (faces, record) if trace else faces


def read_pnet_level(pnet, level: np.ndarray, scale: float, threshold: float, exact: bool):
    """Stage 1 on one pyramid level (the runner calls it for each): P-Net's face map, its
    candidates and which of them NMS within the level keeps.

    level: (3, h, w) float32, normalized; scale: level size / image size; threshold: P-Net's.
    Returns prob (OH, OW), boxes (K, 4) in pixels of the image, scores (K,), offsets (K, 4) and
    keep (indices into the K candidates).
    """
    prob, offsets = pnet_maps(pnet, level)
    boxes, scores, level_offsets = heatmap_to_boxes(prob, offsets, scale, threshold, exact=exact)
    keep = iou_nms(boxes, scores, NMS_WITHIN_LEVEL, exact)
    return prob, boxes, scores, level_offsets, keep


def decode_landmarks(boxes: np.ndarray, points: np.ndarray) -> np.ndarray:
    """O-Net's landmark output to image pixels.

    boxes: (K, 4) the boxes O-Net was shown; points: (K, 10) as x1..x5, y1..y5, each a
    fraction of the box width or height from its top-left corner. Returns (K, 5, 2) (x, y).
    """
    width = (boxes[:, 2] - boxes[:, 0])[:, None]
    height = (boxes[:, 3] - boxes[:, 1])[:, None]
    xs = boxes[:, 0:1] + points[:, :5] * width
    ys = boxes[:, 1:2] + points[:, 5:] * height
    return np.stack([xs, ys], axis=2).astype(np.float32)
