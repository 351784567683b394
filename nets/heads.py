"""A net with one shared trunk and several output heads (MTCNN's face / box / landmark outputs).

forward(x) returns a dict head name -> raw output (logits for "face"; apply softmax for
probabilities). backward takes a dict head name -> dout (heads without a loss may be left
out) and sums the heads' gradients into the trunk, as the chain rule does at a fork.
"""

from __future__ import annotations

import numpy as np

from layers import Module, Sequential
from layers.modules import format_summary


class MultiHeadNet(Module):
    """trunk: Sequential; heads: list of (name, Module) applied to the trunk's output."""

    input_size: int | None = None  # nominal square input (12, 24 or 48), None if any size

    def __init__(self, trunk: Sequential, heads):
        super().__init__()
        self.children["trunk"] = trunk
        self.head_names = []
        for name, head in heads:
            self.children[name] = head
            self.head_names.append(name)

    @property
    def trunk(self) -> Sequential:
        """The shared layers, as a Sequential."""
        return self.children["trunk"]

    def forward(self, x) -> dict[str, np.ndarray]:
        """x: (N, 3, H, W) float32. Returns head name -> raw output ((N, K) or (N, K, OH, OW))."""
        features = self.trunk.forward(x)
        self._remember(features.shape)
        return {name: self.children[name].forward(features) for name in self.head_names}

    def backward(self, douts: dict[str, np.ndarray]):
        """douts: head name -> gradient of the loss w.r.t. that head's output (heads without a
        loss may be left out). Returns dx (N, 3, H, W)."""
        unknown = set(douts) - set(self.head_names)
        if unknown:
            raise ValueError(f"no such heads: {sorted(unknown)}; heads are {self.head_names}")
        shape = self._take_cache()
        dfeatures = None
        for name, dout in douts.items():
            d = self.children[name].backward(dout)
            dfeatures = d if dfeatures is None else dfeatures + d
        if dfeatures is None:
            raise ValueError("backward needs at least one head's gradient")
        return self.trunk.backward(dfeatures.reshape(shape))

    def input_layers(self) -> list:
        return self.trunk.input_layers()

    def named_parameters(self, prefix: str = ""):
        # The trunk's parameters without a "trunk." prefix, so names read conv1.w, prelu1.alpha, ...
        found = self.trunk.named_parameters(prefix)
        for name in self.head_names:
            found += self.children[name].named_parameters(prefix + name + ".")
        return found

    def summary(self, input_shape=None) -> str:
        """Each layer's output shape and parameter count (trunk, then heads) for one input
        of shape (C, H, W); defaults to the net's nominal input (3, size, size)."""
        if input_shape is None:
            input_shape = (3, self.input_size, self.input_size)
        dtype = self.parameters()[0].value.dtype
        was_training = self.training
        self.eval()  # no dropout masks drawn for the dry run
        try:
            rows, features = self.trunk.summary_rows(np.zeros((1, *input_shape), dtype=dtype))
            for name in self.head_names:
                head = self.children[name]
                out = head.forward(features)
                rows.append((f"{name} (head)", repr(head), str(out.shape[1:]), f"{head.num_parameters():,}"))
        finally:
            self.train(was_training)
        table = format_summary([("input", "", str(tuple(input_shape)), "")] + rows, self.num_parameters())
        return f"{type(self).__name__}\n{table}"
