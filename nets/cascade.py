"""Cascade-CNN's six nets: three face / non-face classifiers and three calibration nets
(Li et al., "A Convolutional Neural Network Cascade for Face Detection", CVPR 2015).

Conventions, the same for all six nets:

* x: (N, 3, S, S) float32, S = 12, 24 or 48, normalized by the caller as (x - 127.5) / 128.
* Convolutions are 'valid' with stride 1. Every max pooling is 3 x 3 with stride 2 in *floor*
  mode (PyTorch's default, ceil_mode=False), not Caffe's ceil mode. The reason is the 12-net's
  fully convolutional scan (``Net12.scan``): on the 12-net's 10 x 10 conv map, ceil mode adds a
  fifth, clipped window (conv rows 8..9); run over a whole image that window is no longer
  clipped and also reads conv row 10, i.e. pixels below the 12 x 12 window, so the scan would
  no longer equal the net on each crop. Floor mode keeps the two equal. We use floor mode in
  all six nets, for one convention. A consequence worth knowing: floor pooling of 10 conv rows
  uses rows 0..8 only, so the 12-net never reads the last row and column of its 12 x 12 input
  (likewise the 24-net's own layers skip the last row and column of their 24 x 24 input).
* Layer order as in the paper's Caffe models: conv -> max pool -> ReLU, and a ReLU after every
  hidden fully connected layer. The last layer gives raw scores (logits): 2 for the detection
  nets (index 1 = face), 45 for the calibration nets (apply softmax for probabilities).
* "norm" is within-channel local response normalization over a 9 x 9 region
  (``layers.WithinChannelLRN``: alpha 1e-4, beta 0.75, k 1).
* Weights start with the library's He initialization, biases at 0. No dropout.

The layers, with output sizes (C, H, W) or (D,):

    12-net   12x12x3 -> conv 3x3, 16 (16,10,10) -> pool (16,4,4) -> ReLU -> fc 16 -> ReLU
             -> fc 2
    24-net   24x24x3 -> conv 5x5, 64 (64,20,20) -> pool (64,9,9) -> ReLU -> fc 128 -> ReLU
             -> concat with the 12-net's 16 features of the input averaged down to 12x12 (144)
             -> fc 2
    48-net   48x48x3 -> conv 5x5, 64 (64,44,44) -> pool (64,21,21) -> ReLU -> norm
             -> conv 5x5, 64 (64,17,17) -> ReLU -> pool (64,8,8) -> norm -> fc 256 -> ReLU
             -> concat with the 24-net's 144 features of the input averaged down to 24x24 (400)
             -> fc 2
    12-cal   12x12x3 -> conv 3x3, 16 -> pool -> ReLU -> fc 128 -> ReLU -> fc 45
    24-cal   24x24x3 -> conv 5x5, 32 -> pool -> ReLU -> fc 64 -> ReLU -> fc 45
    48-cal   48x48x3 -> conv 5x5, 64 -> pool -> ReLU -> norm -> conv 5x5, 64 -> ReLU -> pool
             -> norm -> fc 256 -> ReLU -> fc 45

Descriptions of the 48-calibration net differ on whether a pooling layer follows its second
convolution; we take the variant with it (the same layers as the 48-net's own). Without it the
fully connected layer would take the 17 x 17 x 64 map: 18,496 x 256 = 4.7 million weights
(about 19 MB in float32); with it, 4,096 x 256 = 1 million (about 4 MB).

Multi-resolution nets. The 24-net holds a child ``branch12``, the 12-net's layers up to its
16 features; the 48-net holds ``branch24``, the 24-net's layers up to its 144 features (which
include that net's own ``branch12``). A branch sees the net's input averaged down to half size
(2 x 2 block means: an exact area resize by 1/2). The branch is the already trained smaller
net: ``load_branch_from(trained)`` copies its weights in, and with ``frozen_branch=True`` (the
default) ``trainable_parameters()`` leaves the branch out, so an optimizer built on them trains
only the new layers while the smaller net's features stay fixed. That is cheaper, it is what the
cascade was trained for (public TensorFlow reimplementations feed the trained 12-net's features
into the 24-net the same way), and the smaller net keeps working as its own stage. Backward
still runs through the branch, so the gradient w.r.t. the input (and an end-to-end gradient
check of every parameter) is complete; freezing only decides what the optimizer updates.

Parameter names read like the table above: ``conv1.w``, ``fc1.b``, ``fc2.w``, ``norm`` layers
have none, and a branch's names carry its prefix: ``branch12.conv1.w``,
``branch24.branch12.fc1.b``.

Parameter counts: 12-net 4,594; 24-net 673,394 (4,560 of them in branch12); 48-net 1,830,066
(673,104 in branch24); 12-cal 39,149; 24-cal 171,309; 48-cal 1,167,725.
"""

from __future__ import annotations

import numpy as np

from layers import (Conv2D, Linear, MaxPool2D, Module, ReLU, Sequential, WithinChannelLRN, conv_forward,
                    maxpool_forward, relu_forward)
from layers.checks import require_float, require_ndim
from layers.modules import format_summary, without_input_gradient

NET12_SIZE, NET24_SIZE, NET48_SIZE = 12, 24, 48
NUM_FACE_CLASSES = 2  # logits for (non-face, face)
NUM_CALIBRATION_CLASSES = 45  # 5 scales x 3 horizontal shifts x 3 vertical shifts
SCAN_STRIDE = 4  # the paper's spacing of 12 x 12 windows in the 12-net's scan, in pixels
POOL_SIZE, POOL_STRIDE = 3, 2  # every max pooling: 3 x 3, stride 2, floor mode
LRN_SIZE = 9  # the paper's 9 x 9 normalization region


# ------------------------------------------------------------------ half-size input of a branch

def half_size_forward(x):
    """2 x 2 average pooling with stride 2: x (N, C, H, W), H and W even -> out (N, C, H/2, W/2),

        out[n, c, i, j] = mean of x[n, c, 2i : 2i+2, 2j : 2j+2].

    Returns out (x's dtype) and cache x.shape."""
    x = require_float(x, "x")
    require_ndim(x, (4,), "x", "(N, C, H, W)")
    if x.shape[2] % 2 or x.shape[3] % 2:
        raise ValueError(f"half_size_forward needs an even height and width, got shape {x.shape}")
    out = 0.25 * (x[:, :, 0::2, 0::2] + x[:, :, 0::2, 1::2] + x[:, :, 1::2, 0::2] + x[:, :, 1::2, 1::2])
    return out.astype(x.dtype, copy=False), x.shape


def half_size_backward(dout, cache):
    """dout (N, C, H/2, W/2) -> dx (N, C, H, W): every pixel of a 2 x 2 block gets a quarter
    of that block's dout."""
    shape = cache
    dx = np.empty(shape, dtype=dout.dtype)
    for p in (0, 1):
        for q in (0, 1):
            dx[:, :, p::2, q::2] = 0.25 * dout
    return dx


class HalfSize(Module):
    """The module around ``half_size_forward``: (N, C, H, W) -> (N, C, H/2, W/2), no parameters."""

    def forward(self, x):
        out, cache = half_size_forward(x)
        self._remember(cache)
        return out

    def backward(self, dout):
        return half_size_backward(dout, self._take_cache())

    def extra_repr(self):
        return "2x2 average"


# ------------------------------------------------------------------ the layer lists

def _pool():
    return MaxPool2D(POOL_SIZE, POOL_STRIDE, ceil_mode=False)


def _layers12(rng, fc_width):
    """12 x 12 input: conv 3x3, 16 (10 x 10) -> pool (4 x 4) -> ReLU -> fc -> ReLU."""
    return [("conv1", Conv2D(3, 16, 3, rng=rng)), ("pool1", _pool()), ("relu1", ReLU()),
            ("fc1", Linear(16 * 4 * 4, fc_width, rng=rng)), ("relu2", ReLU())]


def _layers24(rng, channels, fc_width):
    """24 x 24 input: conv 5x5 (20 x 20) -> pool (9 x 9) -> ReLU -> fc -> ReLU."""
    return [("conv1", Conv2D(3, channels, 5, rng=rng)), ("pool1", _pool()), ("relu1", ReLU()),
            ("fc1", Linear(channels * 9 * 9, fc_width, rng=rng)), ("relu2", ReLU())]


def _layers48(rng, fc_width=256):
    """48 x 48 input: conv 5x5, 64 (44) -> pool (21) -> ReLU -> norm -> conv 5x5, 64 (17) -> ReLU
    -> pool (8) -> norm -> fc -> ReLU."""
    return [("conv1", Conv2D(3, 64, 5, rng=rng)), ("pool1", _pool()), ("relu1", ReLU()),
            ("norm1", WithinChannelLRN(LRN_SIZE)),
            ("conv2", Conv2D(64, 64, 5, rng=rng)), ("relu2", ReLU()), ("pool2", _pool()),
            ("norm2", WithinChannelLRN(LRN_SIZE)),
            ("fc1", Linear(64 * 8 * 8, fc_width, rng=rng)), ("relu3", ReLU())]


# ------------------------------------------------------------------ the two building blocks

def _trunk_backward(trunk: Sequential, dout, input_grad: bool):
    if input_grad:
        return trunk.backward(dout)
    with without_input_gradient(trunk):
        return trunk.backward(dout)


class CascadeFeatures(Module):
    """A net's layers before its last fully connected layer: x (N, 3, S, S) -> (N, D).

    layers: (name, Module) pairs run in order (kept as the child "trunk"), ending in a vector
    (N, D_own). branch (optional): the CascadeFeatures of the next smaller net, run on the
    input averaged down to half size (child "half"); its vector (N, D_branch) is appended, so
    D = D_own + D_branch. Parameter names are the trunk's own (``conv1.w``) and the branch's
    under ``branch_name`` (``branch12.conv1.w``).
    """

    def __init__(self, input_size: int, layers, branch: "CascadeFeatures | None" = None,
                 branch_name: str | None = None):
        super().__init__()
        self.input_size = input_size
        self.children["trunk"] = Sequential(layers)
        self.branch_name = branch_name if branch is not None else None
        if branch is not None:
            if not branch_name:
                raise ValueError("a branch needs a name, e.g. 'branch12'")
            if branch.input_size * 2 != input_size:
                raise ValueError(f"a branch must take half the input size: {branch.input_size} vs {input_size}")
            self.children["half"] = HalfSize()
            self.children[branch_name] = branch

    @property
    def trunk(self) -> Sequential:
        """The net's own layers, as a Sequential."""
        return self.children["trunk"]

    @property
    def branch(self) -> "CascadeFeatures | None":
        """The smaller net's features part, or None."""
        return self.children[self.branch_name] if self.branch_name else None

    def forward(self, x):
        """x: (N, 3, S, S). Returns (N, D): the trunk's vector, then the branch's (if any)."""
        own = self.trunk.forward(x)
        if self.branch is None:
            return own
        sub = self.branch.forward(self.children["half"].forward(x))
        self._remember(own.shape[1])
        return np.concatenate([own, sub], axis=1)

    def backward(self, dout, input_grad: bool = True, branch_grad: bool = True):
        """dout: (N, D). Returns dx (N, 3, S, S): the trunk's part plus, where there is a branch,
        the branch's part passed back through the half-size averaging (the input feeds both).

        For training: input_grad=False computes no dx (returns None); branch_grad=False then
        also skips the branch's backward altogether, so a frozen branch costs no backward work.
        """
        if self.branch is None:
            return _trunk_backward(self.trunk, dout, input_grad)
        d_own = self._take_cache()
        dx = _trunk_backward(self.trunk, dout[:, :d_own], input_grad)
        if not input_grad and not branch_grad:
            return None
        d_small = self.branch.backward(dout[:, d_own:], input_grad=input_grad)
        return dx + self.children["half"].backward(d_small) if input_grad else None

    def named_parameters(self, prefix: str = ""):
        # the trunk's names without a "trunk." prefix: conv1.w, fc1.b, ...; then the branch's
        found = self.trunk.named_parameters(prefix)
        if self.branch is not None:
            found += self.branch.named_parameters(prefix + self.branch_name + ".")
        return found

    def summary_rows(self, x, prefix: str = ""):
        """Run x through every layer, branch included; returns ([(name, layer, output shape,
        parameters)], output), names carrying ``prefix`` (e.g. "branch24.")."""
        rows, own = self.trunk.summary_rows(x)
        rows = [(prefix + name, *rest) for name, *rest in rows]
        if self.branch is None:
            return rows, own
        half = self.children["half"]
        small = half.forward(x)
        rows.append((prefix + "half", repr(half), str(small.shape[1:]), "0"))
        sub_rows, sub = self.branch.summary_rows(small, prefix + self.branch_name + ".")
        rows += sub_rows
        out = np.concatenate([own, sub], axis=1)
        rows.append((prefix + "concat", f"{own.shape[1]} + {self.branch_name} {sub.shape[1]}", str(out.shape[1:]), "0"))
        return rows, out


class CascadeNet(Module):
    """A Cascade-CNN net: x (N, 3, S, S) -> logits (N, K). The features part (child "body", a
    CascadeFeatures) then one fully connected layer "fc2". Subclasses fix the layers."""

    input_size: int = 0
    num_classes: int = 0
    branch_source: type | None = None  # the trained net whose features the branch holds

    def __init__(self, body: CascadeFeatures, classifier: Linear, frozen_branch: bool = True):
        super().__init__()
        self.children["body"] = body
        self.children["fc2"] = classifier
        self.frozen_branch = frozen_branch
        self.input_grad = True  # False (training, `without_input_gradient`): backward returns None

    @property
    def body(self) -> CascadeFeatures:
        """The layers before the last fully connected one."""
        return self.children["body"]

    @property
    def branch(self) -> CascadeFeatures | None:
        """The smaller net's features part (``branch12`` or ``branch24``), or None."""
        return self.body.branch

    def _check_input(self, x):
        x = require_float(x, "x")
        S = self.input_size
        if x.ndim != 4 or x.shape[1:] != (3, S, S):
            raise ValueError(f"{type(self).__name__} takes x of shape (N, 3, {S}, {S}), got shape {x.shape}")
        return x

    def features(self, x):
        """x: (N, 3, S, S). Returns the vector before the last layer, (N, D): 16 for the 12-net,
        144 for the 24-net, 400 for the 48-net (128, 64, 256 for the calibration nets)."""
        return self.body.forward(self._check_input(x))

    def forward(self, x):
        """x: (N, 3, S, S) float32, normalized. Returns logits (N, num_classes)."""
        return self.children["fc2"].forward(self.features(x))

    def backward(self, dlogits):
        """dlogits: (N, num_classes). Stores every parameter's gradient (the branch's too) and
        returns dx (N, 3, S, S). With ``input_grad`` False it returns None, and a frozen
        branch, whose gradients nothing reads then, is not run backward at all."""
        d = self.children["fc2"].backward(dlogits)
        skip_branch = not self.input_grad and self.frozen_branch
        return self.body.backward(d, input_grad=self.input_grad, branch_grad=not skip_branch)

    def input_layers(self) -> list:
        return [self]

    def named_parameters(self, prefix: str = ""):
        # conv1.w, ..., branch12.conv1.w, ..., fc2.w, fc2.b: no "body." prefix
        return self.body.named_parameters(prefix) + self.children["fc2"].named_parameters(prefix + "fc2.")

    def named_trainable_parameters(self):
        """(name, Parameter) pairs the optimizer should update: all of them, except the
        branch's when the net was built with frozen_branch=True."""
        frozen = set()
        if self.frozen_branch and self.branch is not None:
            frozen = {id(p) for p in self.branch.parameters()}
        return [(name, p) for name, p in self.named_parameters() if id(p) not in frozen]

    def trainable_parameters(self):
        """The Parameters to give the optimizer, e.g. ``SGD(net.trainable_parameters(), lr=...)``."""
        return [p for _, p in self.named_trainable_parameters()]

    def load_branch_from(self, trained: "CascadeNet") -> None:
        """Copy a trained smaller net's features part (everything but its fc2) into the branch:
        a Net12 into a Net24's branch12, a Net24 into a Net48's branch24."""
        if self.branch_source is None:
            raise ValueError(f"{type(self).__name__} has no branch")
        if type(trained) is not self.branch_source:
            raise ValueError(f"{type(self).__name__}'s branch holds a {self.branch_source.__name__}, "
                             f"got a {type(trained).__name__}")
        self.branch.load_state_dict(trained.body.state_dict())

    def summary(self) -> str:
        """Each layer's output shape and parameter count (the branch's layers too, by their
        dotted names) for one input of shape (3, S, S); runs one forward pass on zeros."""
        S = self.input_size
        dtype = self.parameters()[0].value.dtype
        rows, features = self.body.summary_rows(np.zeros((1, 3, S, S), dtype=dtype))
        fc = self.children["fc2"]
        out = fc.forward(features)
        rows.append(("fc2", repr(fc), str(out.shape[1:]), f"{fc.num_parameters():,}"))
        total = self.num_parameters()
        table = format_summary([("input", "", str((3, S, S)), "")] + rows, total)
        title = type(self).__name__
        if self.branch is not None:
            trainable = sum(p.value.size for p in self.trainable_parameters())
            state = "frozen" if self.frozen_branch else "trained too"
            title += f" ({self.body.branch_name} {state}: {trainable:,} of {total:,} parameters trainable)"
        return f"{title}\n{table}"


# ------------------------------------------------------------------ the six nets

def _features12(rng):
    return CascadeFeatures(NET12_SIZE, _layers12(rng, 16))


def _features24(rng):
    return CascadeFeatures(NET24_SIZE, _layers24(rng, 64, 128), branch=_features12(rng), branch_name="branch12")


def _features48(rng):
    return CascadeFeatures(NET48_SIZE, _layers48(rng), branch=_features24(rng), branch_name="branch24")


def _rng(rng):
    return rng if rng is not None else np.random.default_rng(0)


class Net12(CascadeNet):
    """12-net: x (N, 3, 12, 12) -> face logits (N, 2). ``scan`` runs it on a whole image."""

    input_size = NET12_SIZE
    num_classes = NUM_FACE_CLASSES

    def __init__(self, rng=None):
        rng = _rng(rng)
        super().__init__(_features12(rng), Linear(16, NUM_FACE_CLASSES, rng=rng))

    def scan(self, level):
        """The 12-net on every 12 x 12 window of an image, 4 pixels apart, in one pass.

        level: (N, 3, H, W) float, normalized, H, W >= 12. Returns logits (N, 2, OH, OW) with
        OH = (H - 12) // 4 + 1 (likewise OW); cell (i, j) equals ``forward`` on the window
        level[:, :, 4i : 4i+12, 4j : 4j+12].

        The same weights, reshaped: conv1 and the pooling run on the whole image; fc1 becomes
        a 4 x 4 convolution with stride 2 over the pooled map (a window's 4 x 4 pooled cells
        start every 2 pooled cells, i.e. every 4 pixels), fc2 a 1 x 1 convolution. A Linear
        weight (D, M) flattens its input as (c, h, w) in C order, so w.T.reshape(M, C, 4, 4)
        is the matching conv kernel. Pixels that no window covers (the last H - 12 mod 4 rows,
        likewise columns) are cut off first.
        """
        level = require_float(level, "level")
        require_ndim(level, (4,), "level", "(N, 3, H, W)")
        N, C, H, W = level.shape
        if C != 3 or H < NET12_SIZE or W < NET12_SIZE:
            raise ValueError(f"scan needs a level of shape (N, 3, H, W) with H, W >= 12, got shape {level.shape}")
        OH = (H - NET12_SIZE) // SCAN_STRIDE + 1
        OW = (W - NET12_SIZE) // SCAN_STRIDE + 1
        level = level[:, :, : NET12_SIZE + SCAN_STRIDE * (OH - 1), : NET12_SIZE + SCAN_STRIDE * (OW - 1)]
        trunk = self.body.trunk
        conv1, fc1, fc2 = trunk["conv1"].params, trunk["fc1"].params, self.children["fc2"].params
        out, _ = conv_forward(level, conv1["w"].value, conv1["b"].value)  # (N, 16, H-2, W-2)
        out, _ = maxpool_forward(out, POOL_SIZE, POOL_STRIDE, ceil_mode=False, record_argmax=False)
        out, _ = relu_forward(out)
        hidden = fc1["w"].value.shape[1]
        w1 = fc1["w"].value.T.reshape(hidden, out.shape[1], 4, 4)
        out, _ = conv_forward(out, w1, fc1["b"].value, stride=SCAN_STRIDE // POOL_STRIDE)  # (N, 16, OH, OW)
        out, _ = relu_forward(out)
        w2 = fc2["w"].value.T.reshape(NUM_FACE_CLASSES, hidden, 1, 1)
        out, _ = conv_forward(out, w2, fc2["b"].value)  # (N, 2, OH, OW)
        return out


class Net24(CascadeNet):
    """24-net: x (N, 3, 24, 24) -> face logits (N, 2). Holds ``branch12`` (the 12-net's
    features of the input averaged down to 12 x 12)."""

    input_size = NET24_SIZE
    num_classes = NUM_FACE_CLASSES
    branch_source = Net12

    def __init__(self, rng=None, frozen_branch: bool = True):
        rng = _rng(rng)
        super().__init__(_features24(rng), Linear(128 + 16, NUM_FACE_CLASSES, rng=rng), frozen_branch)


class Net48(CascadeNet):
    """48-net: x (N, 3, 48, 48) -> face logits (N, 2). Holds ``branch24`` (the 24-net's
    features, its own branch12 included, of the input averaged down to 24 x 24)."""

    input_size = NET48_SIZE
    num_classes = NUM_FACE_CLASSES
    branch_source = Net24

    def __init__(self, rng=None, frozen_branch: bool = True):
        rng = _rng(rng)
        super().__init__(_features48(rng), Linear(256 + 144, NUM_FACE_CLASSES, rng=rng), frozen_branch)


class CalibNet12(CascadeNet):
    """12-calibration-net: x (N, 3, 12, 12) -> logits (N, 45) over the calibration patterns."""

    input_size = NET12_SIZE
    num_classes = NUM_CALIBRATION_CLASSES

    def __init__(self, rng=None):
        rng = _rng(rng)
        super().__init__(CascadeFeatures(NET12_SIZE, _layers12(rng, 128)),
                         Linear(128, NUM_CALIBRATION_CLASSES, rng=rng))


class CalibNet24(CascadeNet):
    """24-calibration-net: x (N, 3, 24, 24) -> logits (N, 45)."""

    input_size = NET24_SIZE
    num_classes = NUM_CALIBRATION_CLASSES

    def __init__(self, rng=None):
        rng = _rng(rng)
        super().__init__(CascadeFeatures(NET24_SIZE, _layers24(rng, 32, 64)),
                         Linear(64, NUM_CALIBRATION_CLASSES, rng=rng))


class CalibNet48(CascadeNet):
    """48-calibration-net: x (N, 3, 48, 48) -> logits (N, 45). With the second pooling layer
    (see the module docstring)."""

    input_size = NET48_SIZE
    num_classes = NUM_CALIBRATION_CLASSES

    def __init__(self, rng=None):
        rng = _rng(rng)
        super().__init__(CascadeFeatures(NET48_SIZE, _layers48(rng)), Linear(256, NUM_CALIBRATION_CLASSES, rng=rng))


CASCADE_NETS = (Net12, Net24, Net48, CalibNet12, CalibNet24, CalibNet48)
