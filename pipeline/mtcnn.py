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

Boxes follow `pipeline.boxes` (0-based x1, y1, x2, y2 in pixels of the original image, width
x2 - x1). Every stage accepts zero boxes and returns zero boxes.

Defaults (the reference's): smallest face 20 px, pyramid factor 0.709, face-probability
thresholds 0.6 (P-Net, cells with p >= 0.6 kept), 0.7 (R-Net, p > 0.7) and 0.7 (O-Net, p > 0.7).
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager

import numpy as np

from layers import softmax
from nets import ONET_SIZE, RNET_SIZE, load_mtcnn
from nets.batch_last import BatchLastCache
from nets.mtcnn_weights import RELEASED_THRESHOLDS

from .boxes import apply_regression, make_square, nms
from .images import load_image, to_chw_float
from .parallel import Parallel, crop_and_score, join_scores, join_shares, split_by_weight, split_evenly
from . import arguments
from .proposals import heatmap_to_boxes, normalize
from .pyramid import DEFAULT_FACTOR, DEFAULT_MIN_FACE, no_level_note, pyramid_scales, scaled_size
from .resize import resize_area_pyramid
from .strips import level_work, pnet_pyramid_maps
from .trace import Boxes, Face, Trace

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
    (`pipeline.boxes.nms`) for nets trained here on exact windows; returns kept indices."""
    return nms(boxes, scores, threshold) if exact else union_nms(boxes, scores, threshold)


class MTCNNDetector:
    """Face detector with MTCNN's three nets: the released weights (default) or those trained
    here from scratch.

    min_face_size: smallest face to find, in pixels (> 0); thresholds: face probability
    needed to pass P-Net, R-Net and O-Net (three numbers in [0, 1]; default: the weights' own,
    0.6, 0.7, 0.7 for the released ones); factor: pyramid shrink factor between levels
    (0 < factor < 1); weights: "released" (default), "scratch" (the nets trained here by
    ``facecascade train mtcnn``, with the thresholds chosen on validation data) or a folder
    of a training run's ``mtcnn_*.npz`` files (`nets.load_mtcnn`); nets: (pnet, rnet, onet) to
    use instead (they are used, not copied: each ``detect`` sees their current weights, through
    `nets.batch_last.BatchLastCache`, and never changes their modes or caches);
    workers: how many processes share each stage's work, pyramid levels and crops: this one
    and forked helpers (default: the CPUs available, at most four; threads where fork is
    missing; see `pipeline.parallel`); conventions: "released" keeps the three pixel
    conventions the released weights were trained with (see `union_nms`, `heatmap_to_boxes`
    and `propose`), "exact" drops them, for nets trained here on exact windows (default: the
    weights' own; "released" for ``nets``).
    One detector runs one ``detect`` at a time: give each thread of yours its own detector.

        det = MTCNNDetector()
        faces = det.detect("photo.jpg")            # list of Face, best first
        faces, trace = det.detect(image, trace=True)
        scratch = MTCNNDetector(weights="scratch")  # the nets trained in NumPy
    """

    def __init__(self, min_face_size: float = DEFAULT_MIN_FACE, thresholds=None,
                 factor: float = DEFAULT_FACTOR, nets=None, workers: int | None = None,
                 conventions: str | None = None, weights="released"):
        if conventions not in (None, "released", "exact"):
            raise ValueError(f"conventions must be 'released' or 'exact'; got {conventions!r}")
        self.min_face_size = arguments.positive("min_face_size", min_face_size, "pixels")
        self.factor = arguments.fraction("factor", factor)
        self.parallel = Parallel(arguments.positive_int_or_none("workers", workers))
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
        self._batch_last = BatchLastCache()  # each net in the faster inference layout
        self._session_nets = None  # during a session: its BatchLast of each net (see `session`)

    def _nms(self, boxes, scores, threshold):
        """IoU NMS: measured as the reference does (`union_nms`) or, with exact conventions, plainly."""
        return iou_nms(boxes, scores, threshold, self.exact)

    def __repr__(self) -> str:
        thresholds = tuple(round(t, 4) for t in self.thresholds)
        return (f"MTCNNDetector(min_face_size={self.min_face_size:g}, thresholds={thresholds}, "
                f"factor={self.factor:g}, workers={self.parallel.workers}, weights={self.weights})")

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
        # each worker resizes and scans a share of the levels, about equal in work
        shares = split_by_weight([level_work(H, W, h, w) for h, w in sizes], self.parallel.workers)
        parts = self.parallel.run(_scan_levels, self, [
            (image_chw, [trace.scales[i] for i in share], [sizes[i] for i in share], self.thresholds[0], self.exact)
            for share in shares])
        found = join_shares(shares, parts)  # each level's results, back in pyramid order
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
        trace.pnet_after_nms = Boxes(boxes, scores)
        # The released decoder measures P-Net windows one pixel short (MATLAB's x2 - x1 on
        # inclusive coordinates); its offsets were fitted that way, so we scale them the same.
        short = 0 if self.exact else 1
        width, height = boxes[:, 2] - boxes[:, 0] - short, boxes[:, 3] - boxes[:, 1] - short
        regressed = apply_regression(boxes, offsets, widths=width, heights=height)
        out = Boxes(make_square(regressed).astype(np.float32), scores)
        trace.pnet_output = out
        return out

    def _score_crops(self, net_name: str, image_chw, candidates: Boxes, size: int):
        """Crop, normalize and run a net ("rnet" or "onet"); returns (boxes, probs, outputs) for
        the crops made."""
        # each worker crops and scores a share of the boxes
        chunks = split_evenly(len(candidates), self.parallel.workers)
        shares = [(image_chw, net_name, candidates.boxes[chunk], size) for chunk in chunks]
        parts = self.parallel.run(_score_boxes, self, shares)
        kept, out = join_scores([chunk.start for chunk in chunks], parts)
        if not out:
            return candidates.boxes[:0], np.zeros(0, np.float32), {}
        return candidates.boxes[kept], softmax(out["face"])[:, 1], out

    def refine(self, image_chw: np.ndarray, candidates: Boxes, trace: Trace) -> Boxes:
        """Stage 2: R-Net on 24x24 crops. Returns square boxes for O-Net."""
        boxes, probs, out = self._score_crops("rnet", image_chw, candidates, RNET_SIZE)
        trace.rnet_input = Boxes(boxes, probs)
        passed = probs > self.thresholds[1]
        trace.rnet_passed_mask = passed
        boxes, probs = boxes[passed], probs[passed]
        offsets = out["box"][passed] if out else np.zeros((0, 4), np.float32)
        trace.rnet_passed = Boxes(boxes, probs)
        keep = self._nms(boxes, probs, NMS_RNET)
        boxes, probs, offsets = boxes[keep], probs[keep], offsets[keep]
        trace.rnet_after_nms = Boxes(boxes, probs)
        result = Boxes(make_square(apply_regression(boxes, offsets)).astype(np.float32), probs)
        trace.rnet_output = result
        return result

    def output(self, image_chw: np.ndarray, candidates: Boxes, trace: Trace):
        """Stage 3: O-Net on 48x48 crops. Returns final Boxes and landmarks (K, 5, 2)."""
        boxes, probs, out = self._score_crops("onet", image_chw, candidates, ONET_SIZE)
        trace.onet_input = Boxes(boxes, probs)
        passed = probs > self.thresholds[2]
        trace.onet_passed_mask = passed
        boxes, probs = boxes[passed], probs[passed]
        trace.onet_passed = Boxes(boxes, probs)
        if not len(boxes):
            return Boxes.empty(), np.zeros((0, 5, 2), np.float32)
        offsets, points = out["box"][passed], out["landmarks"][passed]
        landmarks = decode_landmarks(boxes, points)  # against the box O-Net saw, before regression
        boxes = apply_regression(boxes, offsets).astype(np.float32)
        keep = nms(boxes, probs, NMS_ONET_MIN, mode="min")
        result = Boxes(boxes[keep], probs[keep])
        trace.onet_output, trace.landmarks = result, landmarks[keep]
        return result, landmarks[keep]

    # ------------------------------------------------------------------ public API
    @contextmanager
    def session(self, rgb: np.ndarray):
        """The workers ready for one image: yields it as the (3, H, W) float32 array (0..255)
        that `propose`, `refine` and `output` take. rgb: (H, W, 3) uint8, e.g. from `load_image`.

        Inside, the stages share their work among the workers (`pipeline.parallel`): with
        several, each stage gives shares to helper processes that read the image from memory
        they share with this process. They have the nets as they were when the session began.
        Outside a session the stages run in this process alone.
        """
        # BatchLast: the same nets, run in a memory layout that is faster for inference. Made
        # (or checked against the weights) once per session; the helper processes, forked
        # again when these change, keep the ones of their fork.
        with self.parallel.exclusive():  # one detection at a time, whatever the threads
            outer = self._session_nets  # a session inside another (same thread) gives it back
            self._session_nets = {name: self._batch_last(getattr(self, name)) for name in ("pnet", "rnet", "onet")}
            try:
                with self.parallel.session(self, key=self._session_nets.values(),
                                           shared_bytes=4 * np.asarray(rgb).size):
                    yield to_chw_float(rgb, out=self.parallel.shared_array((3, *np.shape(rgb)[:2]), np.float32))
            finally:
                self._session_nets = outer

    def _fast(self, name: str):
        """The BatchLast of net ``name`` ("pnet", "rnet", "onet"): the session's, else checked now."""
        if self._session_nets is not None:
            return self._session_nets[name]
        return self._batch_last(getattr(self, name))

    def detect_many(self, images, progress: bool = False) -> list:
        """Faces in many images: paths, (H, W, 3) uint8 arrays or PIL images, of any sizes.
        Returns one `pipeline.batch.ImageResult` per image, in order (``.faces``, or ``.error``
        for an image that could not be read: the rest go on); progress: a progress bar on
        stderr (on a terminal). The workers stay up for the whole batch."""
        from .batch import detect_many

        return detect_many(self, images, progress=progress)

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


def _scan_levels(detector: MTCNNDetector, image_chw: np.ndarray, scales, sizes, threshold: float, exact: bool) -> list:
    """A worker's share of stage 1, for the pyramid levels of these scales and sizes [(h, w)]
    of image_chw (3, H, W) float32 0..255: per level, P-Net's face map (OH, OW), its
    candidates (boxes (K, 4) in image pixels, scores (K,), offsets (K, 4)) and which of them
    NMS within the level keeps. (The detector here may be a helper's copy from when it
    started: its nets are current, its other settings come as arguments.)"""
    # every level at once: the same numbers as resize_area, level by level (see its doc)
    levels = [normalize(level) for level in resize_area_pyramid(image_chw, sizes)]
    found = []
    for scale, (prob, offsets) in zip(scales, pnet_pyramid_maps(detector._fast("pnet"), levels)):
        boxes, scores, level_offsets = heatmap_to_boxes(prob, offsets, scale, threshold, exact=exact)
        keep = iou_nms(boxes, scores, NMS_WITHIN_LEVEL, exact)
        found.append((prob, boxes, scores, level_offsets, keep))
    return found


def _score_boxes(detector: MTCNNDetector, image_chw: np.ndarray, net_name: str, boxes: np.ndarray, size: int):
    """A worker's share of stages 2 and 3: `crop_and_score` of boxes (K, 4) in pixels of
    image_chw (3, H, W) with the detector's "rnet" or "onet"."""
    return crop_and_score(detector._fast(net_name), image_chw, boxes, size)


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
