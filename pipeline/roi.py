"""Regions of interest: which feature-map cells belong to a box of the image (SPPNet, SPEC C.2).

A net whose layers have total stride S puts the receptive-field centre of feature cell i at
image coordinate ``offset + S * i``. A box keeps the cells whose centres lie strictly inside
it: left = floor((x1 - offset) / S) + 1 and right = ceil((x2 - offset) / S) - 1 (likewise top
and bottom). Computing the conv features once per image and pooling each box's cells (with
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
