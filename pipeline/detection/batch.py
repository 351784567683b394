"""Many images in one call: `detect_many` (and `iter_detect`, its one-at-a-time form).

    results = detector.detect_many(["a.jpg", "b.png", array, pil_image], progress=True)
    for result in results:
        print(result.source, len(result.faces) if result.ok else result.error)

Images may be paths, (H, W, 3) uint8 arrays or PIL images, of any sizes. One result per image,
in order. An image that cannot be read (or is too large to decode) is reported in its result
and the rest go on. The detector's workers are started once and kept for the whole batch.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field

import numpy as np

from pipeline.data.images import ImageError, load_image


@dataclass
class ImageResult:
    """What detection gave for one image of a batch.

    source: the path as given, or "image K" (0-based position) for an array or PIL image;
    faces: list of `pipeline.detection.trace.Face`, best first, or None when the image failed; error:
    why it failed (None when it did not); notes: the detector's notes on this image (e.g. "no
    pyramid level": smaller than the smallest face); image: the (H, W, 3) uint8 RGB image,
    only from `iter_detect(..., with_images=True)`.
    """

    source: str
    faces: list | None
    error: str | None = None
    notes: list = field(default_factory=list)
    image: np.ndarray | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def _source(item, index: int) -> str:
    return os.fspath(item) if isinstance(item, (str, os.PathLike)) else f"image {index}"


def iter_detect(detector, images, progress: bool = False, with_images: bool = False):
    """Detect faces in each image, one `ImageResult` at a time, in order.

    detector: an `MTCNNDetector` or `CascadeDetector` (anything with ``detect(image,
    trace=True)``); images: an iterable of paths, arrays or PIL images;
    progress: a progress bar on stderr (shown only on a terminal); with_images: keep each
    decoded image in its result (for drawing it; a batch's images are not kept otherwise).
    The workers' processes start with the first image and stay for the batch (they are the
    detector's, and stay after it too, until the detector ends).
    """
    from tqdm import tqdm

    images = list(images) if not hasattr(images, "__len__") else images
    bar = tqdm(total=len(images), desc="detect", unit="image", disable=None if progress else True)
    try:
        for index, item in enumerate(images):
            source = _source(item, index)
            try:
                rgb = load_image(item)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # the notes are in the result
                    faces, trace = detector.detect(rgb, trace=True)
            except (ImageError, MemoryError) as exc:
                message = str(exc) if isinstance(exc, ImageError) else f"{source}: not enough memory ({exc})"
                yield ImageResult(source, None, message)
            else:
                yield ImageResult(source, faces, None, list(trace.notes), rgb if with_images else None)
            bar.update(1)
    finally:
        bar.close()


def detect_many(detector, images, progress: bool = False) -> list[ImageResult]:
    """`iter_detect` gathered into a list: one `ImageResult` per image, in order."""
    return list(iter_detect(detector, images, progress=progress))
