"""`facecascade demo`: MTCNN on a photo that ships with matplotlib, one figure per stage.

Grace Hopper's portrait (matplotlib's sample data) is on every machine that installed the
project, so the demo needs no download and no argument.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def sample_photo() -> np.ndarray:
    """matplotlib's grace_hopper.jpg as (H, W, 3) uint8 RGB (600 x 512)."""
    import matplotlib.cbook

    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
        return np.array(Image.open(f).convert("RGB"))


def write_demo(out_dir: Path, image: np.ndarray | None = None, detector=None) -> list[Path]:
    """Detect faces in ``image`` (default: the sample photo) with ``detector`` (default: the
    released MTCNN; a `CascadeDetector` works too) and write the annotated photo and the stage
    figures into ``out_dir``. Returns the paths written, in pipeline order."""
    from pipeline import plots
    from pipeline.cli.annotate import annotate
    from pipeline.detection.mtcnn import MTCNNDetector

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    image = sample_photo() if image is None else image
    detector = MTCNNDetector() if detector is None else detector
    faces, trace = detector.detect(image, trace=True)
    figures = [
        ("1_pyramid.png", lambda p: plots.plot_pyramid(trace, save=p)),
        ("2_stage1_heatmaps.png", lambda p: plots.plot_heatmaps(trace, save=p)),
        ("3_stage1_nms.png", lambda p: plots.plot_nms(trace, save=p)),
        ("4_stage2.png", lambda p: plots.plot_stage(trace, "rnet", save=p)),
        ("5_stage3.png", lambda p: plots.plot_stage(trace, "onet", save=p)),
        ("6_stages.png", lambda p: plots.plot_stages(trace, save=p)),
        ("7_counts.png", lambda p: plots.plot_counts(trace, save=p)),
    ]
    written = []
    annotated = out_dir / "0_faces.png"
    annotate(image, faces).save(annotated)
    written.append(annotated)
    for name, draw in figures:
        draw(out_dir / name)
        written.append(out_dir / name)
    return written
