"""Image pyramid for P-Net: which scales to scan, and the resized image at each scale.

P-Net sees a fixed 12 x 12 window. To find faces of at least ``min_face_size`` pixels, the
first level shrinks the image by 12 / min_face_size, so that such a face becomes 12 pixels;
each further level shrinks by ``factor`` again, until the shorter side drops below 12.

This follows the released MTCNN (Zhang, Zhang, Li, Qiao, "Joint Face Detection and Alignment
using Multi-task Cascaded Convolutional Networks", IEEE SPL 2016) as its reference Python port
(facenet-pytorch) runs it: smallest face 20 px, factor 0.709, scales m * factor**k with
m = 12 / min_face_size, kept while the scaled shorter side is at least 12 px (a 640 x 480 px
photo gets 10 levels), each level int(size * scale + 1) px and resized by area averaging.
Sizes in this project are written W x H (width first) in prose and figures; functions take
and return (height, width), the order of NumPy's array shapes.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterator, Sequence

import numpy as np

from pipeline.detection import arguments
from pipeline.detection.resize import resize_area

PNET_WINDOW = 12  # P-Net's input size and receptive field, in pixels
DEFAULT_FACTOR = 0.709  # ~ 1/sqrt(2): each level has about half the pixels of the previous one
DEFAULT_MIN_FACE = 20  # smallest face searched for, in pixels of the original image


def pyramid_scales(
    height: int,
    width: int,
    min_face_size: float = DEFAULT_MIN_FACE,
    factor: float = DEFAULT_FACTOR,
    window: int = PNET_WINDOW,
) -> list[float]:
    """Scales of the pyramid levels, largest first.

    height, width: image size in pixels (>= 1); min_face_size: smallest face to find, in
    pixels (> 0); factor: shrink factor between levels, 0 < factor < 1; window: the net's
    input size in pixels (12 for P-Net).
    Returns a list of floats m * factor**k, k = 0, 1, ..., with m = window / min_face_size,
    kept while min(height, width) * m * factor**k >= window. An image whose scaled shorter
    side is under one window gives an empty list; e.g. 640 x 480 with the defaults gives
    10 scales.
    """
    for name, value in (("height", height), ("width", width), ("window", window)):
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or int(value) != value or value < 1:
            raise ValueError(f"{name} must be an integer >= 1; got {value!r}")
    min_face_size = arguments.positive("min_face_size", min_face_size, "pixels")
    factor = arguments.fraction("factor", factor)
    # The same float operations, in the same order, as the reference: the number of levels
    # depends on the rounding when min side * scale lands near the window size.
    scale = float(window) / float(min_face_size)
    min_side = min(height, width) * scale
    scales = []
    while min_side >= window:
        scales.append(scale)
        scale *= factor
        min_side *= factor
    return scales


def no_level_note(height: int, width: int, min_face_size: float, window: int = PNET_WINDOW) -> str:
    """The sentence a detector records when `pyramid_scales` gives no level."""
    shorter = min(height, width)
    return (f"no pyramid level fits: the image is {width} x {height} px (W x H), its shorter side "
            f"{shorter} px is under min_face_size = {min_face_size:g} px, so no face that large fits "
            f"and there is nothing to scan; use a min_face_size of at most {shorter} px")


def scaled_size(height: int, width: int, scale: float) -> tuple[int, int]:
    """Size of the pyramid level for ``scale``.

    height, width: image size in pixels (>= 1); scale: > 0.
    Returns (h, w) ints: int(height * scale + 1), int(width * scale + 1).
    This is the reference's rounding (facenet-pytorch): int() truncates, so it is
    floor(size * scale) + 1, which equals ceil(size * scale) (the MATLAB choice) except when
    size * scale is a whole number, where it is one pixel more.
    """
    for name, value in (("height", height), ("width", width)):
        if int(value) != value or value < 1:
            raise ValueError(f"{name} must be an integer >= 1; got {value!r}")
    if not scale > 0:
        raise ValueError(f"scale must be > 0; got {scale!r}")
    return int(height * scale + 1), int(width * scale + 1)


def image_pyramid(image_chw, scales: Sequence[float]) -> Iterator[tuple[float, np.ndarray]]:
    """Resized copies of an image, one per scale.

    image_chw: (C, H, W) float array, pixel values (float32 in the pipeline, e.g. from
    `pipeline.data.images.to_chw_float`); scales: floats from `pyramid_scales`.
    Returns an iterator of (scale, level) with level: (C, h, w), same dtype as the image,
    (h, w) = scaled_size(H, W, scale), resized by area averaging (`resize_area`).
    Levels are made one at a time, so only one is in memory unless the caller keeps them.
    """
    # validated here, not inside the generator, so bad input fails at the call
    image_chw = np.asarray(image_chw)
    if image_chw.ndim != 3:
        raise ValueError(f"image_chw must have shape (C, H, W); got shape {image_chw.shape}")
    if not np.issubdtype(image_chw.dtype, np.floating):
        raise ValueError(
            "image_chw must be a float array (use pipeline.data.images.to_chw_float); "
            f"got dtype {image_chw.dtype}"
        )
    if min(image_chw.shape) < 1:
        raise ValueError(f"image_chw must not be empty; got shape {image_chw.shape}")
    scales = [float(scale) for scale in scales]
    height, width = image_chw.shape[1:]
    for scale in scales:
        scaled_size(height, width, scale)  # raises on a bad scale
    return _levels(image_chw, scales)


def _levels(image_chw: np.ndarray, scales: list[float]) -> Iterator[tuple[float, np.ndarray]]:
    height, width = image_chw.shape[1:]
    for scale in scales:
        yield scale, resize_area(image_chw, *scaled_size(height, width, scale))
