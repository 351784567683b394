"""Regions of interest: which feature-map cells belong to a box of the image.

The rule is SPPNet's (He, Zhang, Ren, Sun, "Spatial Pyramid Pooling in Deep Convolutional
Networks for Visual Recognition", ECCV 2014 / TPAMI 2015, Appendix A, "Mapping a window to
feature maps"). The paper pads every conv or pool layer of filter size p by floor(p/2); then
feature cell x' (0-based) has its receptive field centred at image coordinate S * x', where S
is the product of all strides before that layer (S = 16 for its ZF-5 net). An image window
[x_left, x_right] maps to the cells whose centres lie strictly inside it:

    left/top:      x' = floor(x_left / S) + 1
    right/bottom:  x' = ceil(x_right / S) - 1

(likewise y). With other padding, the appendix says to add an offset: here cell i is centred
at ``offset + S * i`` and both formulas use x - offset. P-Net's layers are unpadded, so its
cell 0 sees pixels [0, 12) and is centred at offset 6 (tutorial 5 derives it). Two guards of
our own: a window smaller than S can map to right < left (no centre inside), and then gets
the one cell nearest its centre; and results are clamped to the map, since boxes may hang
over the image border. (Fast R-CNN's RoI pooling instead rounds x / S; this module does not.)

Computing the conv features once per image and pooling each box's cells (with
`layers.spp_forward`) replaces one forward pass per box.
"""

from __future__ import annotations

import numpy as np


def box_to_cells(boxes, stride, offset, map_height, map_width):
    """Feature-map cells whose receptive-field centres lie inside each box.

    boxes: (K, 4) float x1, y1, x2, y2 in image pixels; stride: S, the net's total stride;
    offset: image coordinate of cell 0's centre (cell i is centred at offset + S * i);
    map_height, map_width: the feature map's size. Returns (K, 4) int: left, top, right,
    bottom cell indices, *inclusive*, so the region is fmap[..., top:bottom+1, left:right+1].
    A box too small to hold any centre gets the one cell nearest its centre; results are
    clamped to the map.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    first = np.floor((boxes[:, :2] - offset) / stride) + 1      # left, top
    last = np.ceil((boxes[:, 2:] - offset) / stride) - 1        # right, bottom
    centre = np.rint(((boxes[:, :2] + boxes[:, 2:]) / 2 - offset) / stride)
    too_small = last < first                                    # no centre inside: one cell
    first = np.where(too_small, centre, first)
    last = np.where(too_small, centre, last)
    upper = np.array([map_width - 1, map_height - 1])
    first = np.clip(first, 0, upper)
    last = np.clip(last, 0, upper)
    return np.concatenate([first, last], axis=1).astype(np.int64)
