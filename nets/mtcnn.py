"""MTCNN's three nets as in the released Caffe models (Zhang et al., IEEE SPL 2016).

Every hidden layer is followed by a per-channel PReLU; convolutions are 'valid' with stride 1;
max pooling uses Caffe's ceil mode. Each net is a plain list of layers mirroring det1/det2/det3
.prototxt; the output heads are separate so that each task has its own loss:

* "face":      2 logits (index 1 = face; softmax gives the probability)
* "box":       4 box-regression offsets (dx1, dy1, dx2, dy2) as fractions of the window size
* "landmarks": 10 values, x1..x5 then y1..y5, as fractions of the window

The paper (Zhang et al., IEEE SPL 2016, Fig. 2) gives all three nets all three heads and trains
each with the multi-task loss; the released P-Net and R-Net weights have no landmark head. So
``landmarks`` is a constructor option: ``PNet()`` and ``RNet()`` build the released layout (no
landmark head, so the released weight files load), ``PNet(landmarks=True)`` and
``RNet(landmarks=True)`` the paper's, for training from scratch. O-Net has the head by default.
The landmark head is made last, after the others have drawn their initial weights, so a seed
gives the same face and box weights with or without it.

P-Net has no fully connected layer, so it runs on an image of any size and returns maps
(N, 2, OH, OW) and (N, 4, OH, OW) (and (N, 10, OH, OW) with the landmark head): one 12x12
window every 2 pixels.

Parameter counts (released layout): P-Net 6,632, R-Net 100,178, O-Net 389,040. The landmark
head adds 330 to P-Net (1x1 conv, 32 -> 10) and 1,290 to R-Net (FC 128 -> 10).
"""

from __future__ import annotations

import numpy as np

from layers import Conv2D, Dropout, Linear, MaxPool2D, PReLU, Sequential

from .heads import MultiHeadNet

PNET_SIZE, RNET_SIZE, ONET_SIZE = 12, 24, 48


def _conv_prelu(index, c_in, c_out, kernel, rng):
    return [(f"conv{index}", Conv2D(c_in, c_out, kernel, rng=rng)), (f"prelu{index}", PReLU(c_out))]


def _heads(features, rng, landmarks, layer):
    """The output heads on ``features`` channels: face (2), box (4) and, if ``landmarks``, 10
    landmark values; ``layer(c_in, c_out, rng)`` makes one head (a 1x1 conv or an FC layer)."""
    heads = [("face", layer(features, 2, rng)), ("box", layer(features, 4, rng))]
    if landmarks:
        heads.append(("landmarks", layer(features, 10, rng)))
    return heads


def _conv1x1(c_in, c_out, rng):
    return Conv2D(c_in, c_out, 1, rng=rng)


def _linear(c_in, c_out, rng):
    return Linear(c_in, c_out, rng=rng)


class PNet(MultiHeadNet):
    """Proposal net (det1): x (N, 3, H, W), H, W >= 12 -> face (N, 2, OH, OW), box (N, 4, OH, OW)
    with OH = ceil((H - 2) / 2) - 4 (likewise OW); with ``landmarks=True`` also landmarks
    (N, 10, OH, OW) from a 1x1 conv head like the box head (for training; the released weights
    have no landmark head)."""

    input_size = PNET_SIZE

    def __init__(self, rng=None, landmarks: bool = False):
        rng = rng if rng is not None else np.random.default_rng(0)
        trunk = Sequential(
            _conv_prelu(1, 3, 10, 3, rng)
            + [("pool1", MaxPool2D(2, 2, ceil_mode=True))]
            + _conv_prelu(2, 10, 16, 3, rng)
            + _conv_prelu(3, 16, 32, 3, rng))
        super().__init__(trunk, _heads(32, rng, landmarks, _conv1x1))


class RNet(MultiHeadNet):
    """Refinement net (det2): x (N, 3, 24, 24) -> face (N, 2), box (N, 4); with
    ``landmarks=True`` also landmarks (N, 10) (for training; the released weights have none)."""

    input_size = RNET_SIZE

    def __init__(self, rng=None, landmarks: bool = False):
        rng = rng if rng is not None else np.random.default_rng(0)
        trunk = Sequential(
            _conv_prelu(1, 3, 28, 3, rng)
            + [("pool1", MaxPool2D(3, 2, ceil_mode=True))]
            + _conv_prelu(2, 28, 48, 3, rng)
            + [("pool2", MaxPool2D(3, 2, ceil_mode=True))]
            + _conv_prelu(3, 48, 64, 2, rng)
            + [("fc4", Linear(64 * 3 * 3, 128, rng=rng)), ("prelu4", PReLU(128))])
        super().__init__(trunk, _heads(128, rng, landmarks, _linear))


class ONet(MultiHeadNet):
    """Output net (det3): x (N, 3, 48, 48) -> face (N, 2), box (N, 4), landmarks (N, 10).
    Dropout 0.25 before the last PReLU is active only in training mode. ``landmarks=False``
    leaves the landmark head out (the released O-Net has it)."""

    input_size = ONET_SIZE

    def __init__(self, rng=None, landmarks: bool = True):
        rng = rng if rng is not None else np.random.default_rng(0)
        trunk = Sequential(
            _conv_prelu(1, 3, 32, 3, rng)
            + [("pool1", MaxPool2D(3, 2, ceil_mode=True))]
            + _conv_prelu(2, 32, 64, 3, rng)
            + [("pool2", MaxPool2D(3, 2, ceil_mode=True))]
            + _conv_prelu(3, 64, 64, 3, rng)
            + [("pool3", MaxPool2D(2, 2, ceil_mode=True))]
            + _conv_prelu(4, 64, 128, 2, rng)
            + [("fc5", Linear(128 * 3 * 3, 256, rng=rng)), ("dropout5", Dropout(0.25, rng=rng)),
               ("prelu5", PReLU(256))])
        super().__init__(trunk, _heads(256, rng, landmarks, _linear))
