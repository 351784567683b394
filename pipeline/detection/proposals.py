"""Stage 1 of MTCNN: P-Net's face map of one pyramid level, turned into candidate boxes.

P-Net is fully convolutional, so on a level of any size it returns a *map*: a face
probability and four box offsets per output cell. Cell (r, c) is P-Net's answer for one
12 x 12 window of the level, the one whose top-left pixel is (x, y) = (2c, 2r). Why 12 and 2:
the receptive field r and the jump j (distance between neighbouring cells' windows) grow
layer by layer as

    r_l = r_{l-1} + (k - 1) * j_{l-1}        j_l = j_{l-1} * s

for a layer with kernel k and stride s, starting from r = j = 1 at the image. P-Net's layers
(conv 3x3, pool 2x2/2, conv 3x3, conv 3x3) give r = 3, 4, 8, 12 and j = 1, 2, 2, 2:
receptive field 12, stride 2. Tutorial 3 works through the table and checks it with backprop.
(The recurrences are the standard receptive-field arithmetic; the SPPNet paper uses the same
centre relation: He, Zhang, Ren, Sun, "Spatial Pyramid Pooling in Deep Convolutional Networks
for Visual Recognition", ECCV 2014 / TPAMI 2015, Appendix A.)

Dividing a window by the level's scale maps it back to the original image
(`heatmap_to_boxes`). The detector runs P-Net on horizontal strips of each level, which is
only a speed device and gives the same maps; it lives in `pipeline.fast.strips`.
"""

from __future__ import annotations

import numpy as np

from layers import softmax
from layers.shapes import conv_output_size

# P-Net's geometry: each output cell is a CELL_SIZE window, cells are STRIDE pixels apart.
STRIDE = 2
CELL_SIZE = 12


def normalize(pixels: np.ndarray) -> np.ndarray:
    """Map RGB values 0..255 to about [-1, 1] as the MTCNN nets expect: (x - 127.5) / 128."""
    return (pixels - np.float32(127.5)) * np.float32(1.0 / 128.0)


def pnet_output_size(size: int) -> int:
    """Number of P-Net output cells along an axis of ``size`` level pixels (size >= 12).

    conv 3x3 -> max pool 2x2/2 in Caffe's ceil mode -> conv 3x3 -> conv 3x3; with the
    formulas of `layers.shapes.conv_output_size` that is ceil((size - 2) / 2) - 4.
    """
    size = conv_output_size(size, 3)                      # conv1
    size = conv_output_size(size, 2, stride=2, ceil=True)  # pool1
    size = conv_output_size(size, 3)                      # conv2
    return conv_output_size(size, 3)                      # conv3 (the 1x1 heads keep the size)


def pnet_maps(pnet, level: np.ndarray):
    """Run P-Net once over one normalized pyramid level.

    level: (3, h, w) float32, h, w >= 12, already normalized (`normalize`).
    Returns prob (OH, OW), the face probability of each cell (softmax of the two "face"
    logits, index 1 = face), and offsets (4, OH, OW), the box regression (dx1, dy1, dx2, dy2)
    of each cell; OH = pnet_output_size(h), OW = pnet_output_size(w).
    """
    out = pnet.forward(level[None])
    return softmax(out["face"])[0, 1], out["box"][0]


def heatmap_to_boxes(prob: np.ndarray, offsets: np.ndarray, scale: float, threshold: float, exact: bool = False):
    """Candidate boxes from one level's P-Net maps.

    prob: (OH, OW) face probability; offsets: (4, OH, OW); scale: level size / image size;
    threshold: keep cells with prob >= threshold. Returns boxes (K, 4) float32 in pixels of
    the original image, scores (K,) and regression offsets (K, 4), in row-major cell order.

    Cell (r, c) is the level window [2c, 2c + 12) x [2r, 2r + 12). Mapped back to the image
    it would be that window divided by the scale; the released model's decoder (MATLAB's
    generateBoundingBox, kept by every port) instead rounds the edges down to whole pixels,
    x1 = floor((2c + 1) / s) - 1 and x2 = floor((2c + 12) / s) in our 0-based convention.
    The box-regression offsets were learned against those rounded windows, so we keep the
    rounding: it moves a box by up to a pixel, and the final faces match the reference's.
    exact=True gives the windows themselves, [2c, 2c + 12) / s, for nets trained here on
    exact windows.
    """
    rows, cols = np.nonzero(prob >= threshold)
    corners = np.stack([cols, rows], axis=1).astype(np.float32) * STRIDE
    if exact:
        boxes = np.concatenate([corners, corners + CELL_SIZE], axis=1) / np.float32(scale)
        return boxes.astype(np.float32), prob[rows, cols], offsets[:, rows, cols].T.copy()
    # float32 division, as the reference: at scale 0.6, 3 / 0.6 is 4.9999998 and floors to 4
    scale32 = np.float32(scale)
    top_left = np.floor((corners + 1) / scale32) - 1
    bottom_right = np.floor((corners + CELL_SIZE) / scale32)
    boxes = np.concatenate([top_left, bottom_right], axis=1)
    return boxes, prob[rows, cols], offsets[:, rows, cols].T.copy()
