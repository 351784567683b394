"""A thin module layer over the function pairs, so that nets compose.

A module holds its parameters (value and gradient) and the cache of its last forward pass.
``forward(x)`` calls the op's ``*_forward`` and keeps the cache; ``backward(dout)`` calls
``*_backward`` on that cache, stores each parameter's gradient in ``param.grad`` (overwriting,
never accumulating) and returns dx. Nothing here updates parameters: that is the optimizer's job.
"""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np

from .activations import prelu_backward, prelu_forward, relu_backward, relu_forward
from .conv import conv_backward, conv_forward
from .dropout import dropout_backward, dropout_forward
from .linear import linear_backward, linear_forward
from .lrn import lrn_backward, lrn_forward, lrn_within_backward, lrn_within_forward
from .pool import maxpool_backward, maxpool_forward
from .softmax import softmax_backward, softmax_forward
from .spp import spp_backward, spp_forward


_NO_FORWARD_YET = object()  # a cache may legitimately be None (dropout in eval mode)


class Parameter:
    """A learnable array and its gradient. ``decay`` says whether weight decay applies
    (weights yes; biases and PReLU slopes no, as in the MTCNN and Cascade-CNN recipes)."""

    def __init__(self, value: np.ndarray, decay: bool = True):
        self.value = value
        self.grad = np.zeros_like(value)
        self.decay = decay

    def __repr__(self) -> str:
        return f"Parameter(shape={self.value.shape}, dtype={self.value.dtype})"


class Module:
    """Base class: parameters live in ``self.params`` (name -> Parameter), children in
    ``self.children`` (name -> Module).

    A module is in one of three modes, set on it and all its children at once:

    ============  ====================  ==============  ===========  =================
    mode          set by                dropout         caches kept  backward works?
    ============  ====================  ==============  ===========  =================
    training      ``train()`` (default)  active         yes          yes
    eval          ``eval()``             off (identity)  yes          yes
    inference     ``inference()``        off (identity)  no           no: RuntimeError
    ============  ====================  ==============  ===========  =================

    Only dropout behaves differently in training and eval mode; gradient checks use eval mode
    (dropout's random mask would change between the perturbed forward passes). Inference mode
    is eval mode that forgets each forward pass's cache, so a detector does not hold every
    intermediate array alive; ``train()`` (or ``inference(False)``) turns caching back on.
    The flags are ``training`` and ``keep_cache``.
    """

    def __init__(self):
        self.params: dict[str, Parameter] = {}
        self.children: dict[str, Module] = {}
        self.training = True
        self.keep_cache = True  # False for pure inference: no backward, less memory held
        self._cache = _NO_FORWARD_YET

    # --- the two passes -------------------------------------------------------------
    def forward(self, x):
        """x: the input array (shapes per subclass). Returns the output; keeps the cache."""
        raise NotImplementedError

    def backward(self, dout):
        """dout: gradient of the loss w.r.t. the last forward's output. Stores each parameter's
        gradient in ``param.grad`` and returns dx, the gradient w.r.t. that forward's input."""
        raise NotImplementedError

    def __call__(self, x):
        return self.forward(x)

    def _remember(self, cache) -> None:
        """Keep the forward pass's cache for backward, unless the module only infers."""
        self._cache = cache if self.keep_cache else _NO_FORWARD_YET

    def _take_cache(self):
        if self._cache is _NO_FORWARD_YET:
            raise RuntimeError(f"{type(self).__name__}.backward called before forward "
                               "(or after a forward in inference mode, which keeps no cache)")
        return self._cache

    # --- parameters and state ---------------------------------------------------------
    def named_parameters(self, prefix: str = ""):
        """List of (dotted name, Parameter), children first in their order."""
        found = [(prefix + name, p) for name, p in self.params.items()]
        for child_name, child in self.children.items():
            found += child.named_parameters(prefix + child_name + ".")
        return found

    def parameters(self) -> list[Parameter]:
        """Every Parameter, in the order of ``named_parameters``."""
        return [p for _, p in self.named_parameters()]

    def num_parameters(self) -> int:
        """Total number of learnable numbers."""
        return sum(p.value.size for p in self.parameters())

    def zero_grad(self) -> None:
        """Set every parameter's gradient to 0."""
        for p in self.parameters():
            p.grad[...] = 0

    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of every parameter array, by dotted name."""
        return {name: p.value.copy() for name, p in self.named_parameters()}

    def load_state_dict(self, state: dict) -> None:
        """Load arrays by dotted name. Refuses missing or unexpected names and any array whose
        shape differs, naming the array; values are cast to the parameter's dtype."""
        own = dict(self.named_parameters())
        missing = sorted(set(own) - set(state))
        unexpected = sorted(set(state) - set(own))
        if missing or unexpected:
            raise ValueError(f"state does not match the module: missing {missing}, unexpected {unexpected}")
        for name, p in own.items():
            value = np.asarray(state[name])
            if value.shape != p.value.shape:
                raise ValueError(f"array {name!r} has shape {value.shape}, expected {p.value.shape}")
            if not np.issubdtype(value.dtype, np.floating):
                raise ValueError(f"array {name!r} has dtype {value.dtype}, expected floating point")
            p.value[...] = value

    def astype(self, dtype) -> "Module":
        """Cast every parameter (and its gradient) to dtype, e.g. float64 for gradient checks."""
        for p in self.parameters():
            p.value = p.value.astype(dtype)
            p.grad = np.zeros_like(p.value)
        return self

    def train(self, mode: bool = True) -> "Module":
        """Training mode (dropout active, caches kept) or, with mode=False, eval mode."""
        self.training = mode
        if mode:
            self.keep_cache = True  # training needs backward
        for child in self.children.values():
            child.train(mode)
        return self

    def eval(self) -> "Module":
        """Eval mode: dropout off. Forward passes still keep caches (see ``inference``)."""
        return self.train(False)

    def inference(self, enabled: bool = True) -> "Module":
        """Eval mode, and forward passes keep no cache (backward is then unavailable): the
        detector's setting. Caches hold every intermediate array alive until the next pass."""
        self.eval()
        for module in [self, *self._descendants()]:
            module.keep_cache = not enabled
        return self

    def input_layers(self) -> list:
        """The layers that read this module's input directly and can skip computing its
        gradient (`Conv2D.input_grad`). Empty where that is not known, so that nothing is
        skipped by mistake."""
        return []

    def _descendants(self):
        for child in self.children.values():
            yield child
            yield from child._descendants()

    def extra_repr(self) -> str:
        """The hyperparameters shown by repr() and summary()."""
        return ""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.extra_repr()})"


def _init_weight(shape, fan_in, rng, dtype):
    """Xavier/He-style normal init with std sqrt(2 / fan_in) (good for ReLU/PReLU nets)."""
    rng = rng if rng is not None else np.random.default_rng(0)
    return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(dtype)


class Conv2D(Module):
    """Convolution: x (N, in_channels, H, W) -> (N, out_channels, OH, OW). Params w (F, C, K, K), b (F,)."""

    def __init__(self, in_channels, out_channels, kernel, stride=1, pad=0, rng=None, dtype=np.float32):
        super().__init__()
        self.stride, self.pad, self.kernel = stride, pad, kernel
        fan_in = in_channels * kernel * kernel
        self.params["w"] = Parameter(_init_weight((out_channels, in_channels, kernel, kernel), fan_in, rng, dtype))
        self.params["b"] = Parameter(np.zeros(out_channels, dtype=dtype), decay=False)
        self.input_grad = True  # False: backward returns None instead of dx (see `without_input_gradient`)

    def forward(self, x):
        out, cache = conv_forward(x, self.params["w"].value, self.params["b"].value, self.stride, self.pad)
        self._remember(cache)
        return out

    def backward(self, dout):
        dx, self.params["w"].grad, self.params["b"].grad = conv_backward(dout, self._take_cache(), self.input_grad)
        return dx

    def input_layers(self) -> list:
        return [self]

    def extra_repr(self):
        F, C, K, _ = self.params["w"].value.shape
        return f"{C}->{F}, kernel={K}, stride={self.stride}, pad={self.pad}"


class Linear(Module):
    """Fully connected: x (N, ...) flattened to (N, in_features) -> (N, out_features)."""

    def __init__(self, in_features, out_features, rng=None, dtype=np.float32):
        super().__init__()
        self.params["w"] = Parameter(_init_weight((in_features, out_features), in_features, rng, dtype))
        self.params["b"] = Parameter(np.zeros(out_features, dtype=dtype), decay=False)

    def forward(self, x):
        out, cache = linear_forward(x, self.params["w"].value, self.params["b"].value)
        self._remember(cache)
        return out

    def backward(self, dout):
        dx, self.params["w"].grad, self.params["b"].grad = linear_backward(dout, self._take_cache())
        return dx

    def extra_repr(self):
        D, M = self.params["w"].value.shape
        return f"{D}->{M}"


class PReLU(Module):
    """Per-channel PReLU on (N, C) or (N, C, H, W); slopes start at ``init`` (0.25 as in MTCNN)."""

    def __init__(self, channels, init=0.25, dtype=np.float32):
        super().__init__()
        self.params["alpha"] = Parameter(np.full(channels, init, dtype=dtype), decay=False)

    def forward(self, x):
        out, cache = prelu_forward(x, self.params["alpha"].value)
        self._remember(cache)
        return out

    def backward(self, dout):
        dx, self.params["alpha"].grad = prelu_backward(dout, self._take_cache())
        return dx

    def extra_repr(self):
        return f"{self.params['alpha'].value.size}"


class _Stateless(Module):
    """A module around a parameter-free function pair; subclasses set the two functions."""

    def _forward(self, x):
        raise NotImplementedError

    def forward(self, x):
        out, cache = self._forward(x)
        self._remember(cache)
        return out

    def backward(self, dout):
        return type(self).backward_fn(dout, self._take_cache())


class ReLU(_Stateless):
    """max(x, 0) elementwise, any shape."""

    backward_fn = staticmethod(relu_backward)

    def _forward(self, x):
        return relu_forward(x)


class MaxPool2D(_Stateless):
    """Max pooling; ceil_mode=True gives Caffe's output size (as in the MTCNN models)."""

    backward_fn = staticmethod(maxpool_backward)

    def __init__(self, size=2, stride=2, ceil_mode=False):
        super().__init__()
        self.size, self.stride, self.ceil_mode = size, stride, ceil_mode

    def _forward(self, x):
        # without a cache to keep (inference), the winners' positions are not needed
        return maxpool_forward(x, self.size, self.stride, self.ceil_mode, record_argmax=self.keep_cache)

    def extra_repr(self):
        return f"size={self.size}, stride={self.stride}, ceil_mode={self.ceil_mode}"


class Softmax(_Stateless):
    """Softmax over axis 1 (classes), for (N, K) or per pixel on (N, K, H, W)."""

    backward_fn = staticmethod(softmax_backward)

    def _forward(self, x):
        return softmax_forward(x)


class LRN(_Stateless):
    """Across-channel local response normalization (Caffe LRN)."""

    backward_fn = staticmethod(lrn_backward)

    def __init__(self, size=5, alpha=1e-4, beta=0.75, k=1.0):
        super().__init__()
        self.hyper = dict(size=size, alpha=alpha, beta=beta, k=k)

    def _forward(self, x):
        return lrn_forward(x, **self.hyper)

    def extra_repr(self):
        return ", ".join(f"{k}={v}" for k, v in self.hyper.items())


class WithinChannelLRN(_Stateless):
    """Within-channel local response normalization (Caffe LRN, norm_region WITHIN_CHANNEL):
    each pixel divided by (k + alpha/size^2 * sum of squares over its size x size window) ** beta.
    Any (N, C, H, W); the defaults are Cascade-CNN's 9 x 9 region."""

    backward_fn = staticmethod(lrn_within_backward)

    def __init__(self, size=9, alpha=1e-4, beta=0.75, k=1.0):
        super().__init__()
        self.hyper = dict(size=size, alpha=alpha, beta=beta, k=k)

    def _forward(self, x):
        return lrn_within_forward(x, **self.hyper)

    def extra_repr(self):
        return ", ".join(f"{k}={v}" for k, v in self.hyper.items())


class SPP(_Stateless):
    """Spatial pyramid pooling: (N, C, H, W) of any size -> (N, C * sum(n*n for n in levels))."""

    backward_fn = staticmethod(spp_backward)

    def __init__(self, levels=(4, 2, 1)):
        super().__init__()
        self.levels = tuple(levels)

    def _forward(self, x):
        return spp_forward(x, self.levels)

    def extra_repr(self):
        return f"levels={self.levels}"


class Dropout(_Stateless):
    """Inverted dropout, active only in training mode; rng makes the masks reproducible."""

    backward_fn = staticmethod(dropout_backward)

    def __init__(self, p=0.5, rng=None):
        super().__init__()
        self.p = p
        self.rng = rng if rng is not None else np.random.default_rng(0)

    def _forward(self, x):
        return dropout_forward(x, self.p, self.training, self.rng)

    def extra_repr(self):
        return f"p={self.p}"


def dropout_layers(module: Module) -> list[Dropout]:
    """The Dropout layers of a module and its descendants, always in the same order."""
    return [m for m in (module, *module._descendants()) if isinstance(m, Dropout)]


class Flatten(_Stateless):
    """(N, C, H, W) -> (N, C*H*W) in C order."""

    @staticmethod
    def backward_fn(dout, shape):
        return dout.reshape(shape)

    def _forward(self, x):
        return x.reshape(x.shape[0], -1), x.shape


class Sequential(Module):
    """Layers run in order. Built from (name, module) pairs so state_dict names read like
    the paper's tables: ``conv1.w``, ``prelu1.alpha``..."""

    def __init__(self, layers):
        super().__init__()
        for name, layer in layers:
            if name in self.children:
                raise ValueError(f"duplicate layer name {name!r}")
            self.children[name] = layer

    def forward(self, x):
        for layer in self.children.values():
            x = layer.forward(x)
        return x

    def backward(self, dout):
        for layer in reversed(list(self.children.values())):
            dout = layer.backward(dout)
        return dout

    def input_layers(self) -> list:
        first = next(iter(self.children.values()), None)
        return first.input_layers() if first is not None else []

    def __getitem__(self, name):
        return self.children[name]

    def summary_rows(self, x):
        """Run x through the layers; returns ([(name, layer, output shape, parameters)], output)."""
        rows = []
        for name, layer in self.children.items():
            x = layer.forward(x)
            rows.append((name, repr(layer), str(x.shape[1:]), f"{layer.num_parameters():,}"))
        return rows, x

    def summary(self, input_shape) -> str:
        """Table of every layer's output shape and parameter count for an input of
        ``input_shape`` (C, H, W) or (N, C, H, W); runs one forward pass on zeros."""
        shape = tuple(input_shape) if len(input_shape) == 4 else (1, *input_shape)
        dtype = self.parameters()[0].value.dtype if self.parameters() else np.float32
        was_training = self.training
        self.eval()  # in eval mode, so that dropout draws no random numbers for the dry run
        try:
            rows, _ = self.summary_rows(np.zeros(shape, dtype=dtype))
        finally:
            self.train(was_training)
        return format_summary([("input", "", str(shape[1:]), "")] + rows, self.num_parameters())


def format_summary(rows, total: int) -> str:
    """Rows of (name, layer, output shape, parameters) as an aligned table with a total line."""
    rows = [("layer", "", "output (C, H, W)", "parameters")] + list(rows) + [("total", "", "", f"{total:,}")]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = [f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:<{widths[2]}}  {r[3]:>{widths[3]}}".rstrip()
             for r in rows]
    lines.insert(1, "-" * max(len(line) for line in lines))
    return "\n".join(lines)


@contextmanager
def without_input_gradient(net: Module):
    """Inside the ``with`` block, the layers that read the net's input skip the gradient with
    respect to it (``net.backward`` then returns None): training only needs the parameters'
    gradients, and for a first convolution on a large image dx is a third of its backward
    work. The layers compute dx again after the block.
    """
    layers = net.input_layers()
    saved = [layer.input_grad for layer in layers]
    for layer in layers:
        layer.input_grad = False
    try:
        yield net
    finally:
        for layer, flag in zip(layers, saved):
            layer.input_grad = flag


@contextmanager
def inference_mode(*nets: Module):
    """Run the nets in inference mode inside the ``with`` block, then put every module back
    in the mode it had (training or eval, caches kept or not).

    Inference mode (`Module.inference`) switches dropout off and keeps no caches, so a pass
    over many images holds less memory; but a net left in it cannot run ``backward``.
    Restoring the modes means a net you are training can be handed to a detector and trained
    on afterwards. (Its cache is the one of the detector's last forward pass, not yours:
    run your own forward again before a backward.)
    """
    modules = [m for net in nets for m in (net, *net._descendants())]
    saved = [(m.training, m.keep_cache) for m in modules]
    for net in nets:
        net.inference()
    try:
        yield
    finally:
        for module, (training, keep_cache) in zip(modules, saved):
            module.training, module.keep_cache = training, keep_cache
