"""What the detector returns: faces, and (with ``trace=True``) every stage's boxes.

Boxes follow `pipeline.detection.boxes`: x1, y1, x2, y2 in pixels of the original image, 0-based.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Face:
    """One detection. box: (4,) float x1, y1, x2, y2 in pixels; score: face probability;
    landmarks: (5, 2) float (x, y) of left eye, right eye, nose, left and right mouth corner
    ("left" = the left side of the image)."""

    box: np.ndarray
    score: float
    landmarks: np.ndarray

    def to_dict(self) -> dict:
        """Plain floats for JSON: {"box": [x1, y1, x2, y2], "score": s, "landmarks": [[x, y] x 5]}."""
        return {"box": [float(v) for v in self.box], "score": float(self.score),
                "landmarks": [[float(x), float(y)] for x, y in self.landmarks]}


@dataclass(repr=False)
class Boxes:
    """A set of boxes with their scores: boxes (K, 4) float32, scores (K,) float32."""

    boxes: np.ndarray
    scores: np.ndarray

    def __len__(self) -> int:
        return len(self.boxes)

    def __repr__(self) -> str:
        """A count and the score range, not the arrays: ``Boxes(3 boxes, scores 0.71..0.99)``."""
        if not len(self):
            return "Boxes(0 boxes)"
        scores = np.asarray(self.scores)
        word = "box" if len(self) == 1 else "boxes"
        return f"Boxes({len(self)} {word}, scores {scores.min():.2f}..{scores.max():.2f})"

    @classmethod
    def empty(cls) -> "Boxes":
        """No boxes: shapes (0, 4) and (0,)."""
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32))


@dataclass(repr=False)
class Trace:
    """Everything the detector computed, stage by stage, for plots and tutorials.

    image: (H, W, 3) uint8 as detected; scales and level_sizes ((h, w) each) of the pyramid;
    per level the P-Net face map ``prob_maps[i]`` (OH, OW), its candidates before NMS and
    after NMS within the level; then the candidates after NMS across levels, and for each
    stage the boxes entering it (``*_input``: boxes and the net's score for each), which of
    them passed its threshold (``*_passed_mask``, (N,) bool over ``*_input``) and those boxes
    (``*_passed``), after its NMS, and leaving it (regressed, and squared for the next stage).
    thresholds: the three face-probability thresholds the detector used; notes: sentences
    about the run worth telling the user (e.g. that no pyramid level fitted the image).
    ``print(trace)`` shows a short summary; ``counts()`` the number of boxes after each step.
    """

    image: np.ndarray
    scales: list = field(default_factory=list)
    level_sizes: list = field(default_factory=list)
    prob_maps: list = field(default_factory=list)
    level_candidates: list = field(default_factory=list)
    level_after_nms: list = field(default_factory=list)
    stage1_after_nms: Boxes = field(default_factory=Boxes.empty)
    stage1_output: Boxes = field(default_factory=Boxes.empty)
    stage2_input: Boxes = field(default_factory=Boxes.empty)
    stage2_passed: Boxes = field(default_factory=Boxes.empty)
    stage2_after_nms: Boxes = field(default_factory=Boxes.empty)
    stage2_output: Boxes = field(default_factory=Boxes.empty)
    stage3_input: Boxes = field(default_factory=Boxes.empty)
    stage3_passed: Boxes = field(default_factory=Boxes.empty)
    stage3_output: Boxes = field(default_factory=Boxes.empty)
    landmarks: np.ndarray = field(default_factory=lambda: np.zeros((0, 5, 2), np.float32))
    # Which cascade made the trace: the stage fields above are its stages 1, 2 and 3, under
    # these names (Cascade-CNN fills them with its 12-, 24- and 48-net stages), crop sizes in px.
    detector: str = "MTCNN"
    stage_names: tuple = ("P-Net", "R-Net", "O-Net")
    crop_sizes: tuple = (12, 24, 48)
    # The thresholds of stages 1, 2, 3 the detector used (empty if it did not say), and which
    # boxes entering stages 2 and 3 passed (None if the detector did not record it).
    thresholds: tuple = ()
    stage2_passed_mask: np.ndarray | None = None
    stage3_passed_mask: np.ndarray | None = None
    notes: list = field(default_factory=list)

    def __repr__(self) -> str:
        """A short summary: the image, the pyramid, the thresholds and the counts per step."""
        height, width = np.shape(self.image)[:2]
        lines = [f"Trace of {self.detector} on a {width} x {height} px image (W x H): "
                 f"{len(self.scales)} pyramid levels"
                 + (f", thresholds {tuple(float(t) for t in self.thresholds)}" if len(self.thresholds) else "")]
        lines += [f"  {step:40s} {count:6d}" for step, count in self.counts()]
        lines += [f"  note: {note}" for note in self.notes]
        return "\n".join(lines)

    def counts(self) -> list[tuple[str, int]]:
        """(step, number of boxes) after each step, in order: the table of tutorial 4."""
        first, second, third = self.stage_names
        last = "final faces (after Min-NMS)" if self.detector == "MTCNN" else "final faces (after NMS, calibrated)"
        return [
            (f"{first} candidates (all levels)", sum(len(b) for b in self.level_candidates)),
            ("after NMS within each level", sum(len(b) for b in self.level_after_nms)),
            ("after NMS across levels" if self.detector == "MTCNN" else "stage 1 output", len(self.stage1_after_nms)),
            (f"{second} input", len(self.stage2_input)),
            (f"{second} passed threshold", len(self.stage2_passed)),
            (f"after {second} NMS", len(self.stage2_after_nms)),
            (f"{third} input", len(self.stage3_input)),
            (f"{third} passed threshold", len(self.stage3_passed)),
            (last, len(self.stage3_output)),
        ]
