"""Cut boxes out of an image and resize them to a net's input size (24 for R-Net, 48 for O-Net).

Boxes follow the convention of `pipeline.detection.boxes`. Like the reference MTCNN (facenet-pytorch),
a box hanging over the image border is clipped to the image, not zero-padded (see
`pipeline.detection.boxes.crop_windows`), and the clipped crop is resized by area averaging.
"""

from __future__ import annotations

import numpy as np

from pipeline.detection.boxes import crop_windows, nonempty_windows
from pipeline.detection.resize import dense_area_weights, resize_area


def crop_and_resize(image_chw, boxes, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Crop each box from the image and resize it to size x size.

    image_chw: (C, H, W) float array of pixel values (float32 in the pipeline);
    boxes: (N, 4) float, x1, y1, x2, y2 in pixels of that image; size: output side in
    pixels (>= 1).
    Returns (patches, kept):
      patches: (K, C, size, size), same dtype as the image; patches[k] is box kept[k];
      kept: (K,) int64 indices into ``boxes`` of the boxes whose window (after truncation and
      clipping to the image) holds at least one pixel. Boxes lying outside the image are
      dropped this way, so callers must index their scores and offsets with ``kept``.
    """
    image_chw = np.asarray(image_chw)
    if image_chw.ndim != 3 or min(image_chw.shape) < 1:
        raise ValueError(
            f"image_chw must have shape (C, H, W) with C, H, W >= 1; got shape {image_chw.shape}"
        )
    if not np.issubdtype(image_chw.dtype, np.floating):
        raise ValueError(
            "image_chw must be a float array (use pipeline.data.images.to_chw_float); "
            f"got dtype {image_chw.dtype}"
        )
    if int(size) != size or size < 1:
        raise ValueError(f"size must be an integer >= 1; got {size!r}")
    channels, height, width = image_chw.shape
    windows = crop_windows(boxes, width, height)
    kept = np.flatnonzero(nonempty_windows(windows)).astype(np.int64)
    size, dtype = int(size), image_chw.dtype.str
    patches = np.empty((len(kept), channels, size, size), dtype=image_chw.dtype)
    # one crop at a time: every crop has its own size, so they cannot be stacked
    for out_index, (x1, y1, x2, y2) in enumerate(windows[kept].tolist()):
        crop = image_chw[:, y1:y2, x1:x2]
        small = dense_area_weights(y2 - y1, x2 - x1, size, size, dtype)
        if small is None:  # a large crop: the banded multiply
            patches[out_index] = resize_area(crop, size, size)
        else:  # resize_area of a small crop, the same two multiplies without its checks
            rows, columns_t = small
            np.matmul(rows @ crop, columns_t, out=patches[out_index])
    return patches, kept
