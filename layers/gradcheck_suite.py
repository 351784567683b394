"""The standard gradient checks of every layer and loss, on small random float64 inputs.

``run_all(seed)`` is what ``facecascade gradcheck`` prints and what the tests assert: one row
per (op, input) with its shape, relative error and verdict. Inputs are kept off ReLU kinks
and max-pool ties with ``distinct_values`` (a shuffled arange, scaled, never near 0).
"""

from __future__ import annotations

import numpy as np

from . import (conv_backward, conv_forward, dropout_backward, dropout_forward, euclidean_loss, linear_backward,
               linear_forward, lrn_backward, lrn_forward, lrn_within_backward, lrn_within_forward, maxpool_backward,
               maxpool_forward, prelu_backward, prelu_forward, relu_backward, relu_forward, softmax_backward,
               softmax_cross_entropy, softmax_forward, spp_backward, spp_forward)
from .gradcheck import GradcheckResult, check_loss, check_op


def distinct_values(shape, rng: np.random.Generator, spread: float = 4.0) -> np.ndarray:
    """(shape) float64 values that are all different and at least spread / (2n) away from 0:
    no ReLU kink, no max-pool tie, so the numerical derivative is well defined."""
    n = int(np.prod(shape))
    values = (rng.permutation(n) - (n - 1) / 2) * (spread / n)  # ..., -1.5u, -0.5u, 0.5u, ... never 0
    return values.reshape(shape)


def run_all(seed: int = 0) -> list[tuple[str, str, GradcheckResult]]:
    """Every op and loss checked once. Returns (op, description of the shapes, result) rows."""
    rng = np.random.default_rng(seed)
    normal = rng.standard_normal
    rows = []

    def add(op, desc, results):
        rows.extend((op, desc, r) for r in results)

    add("conv", "x (2,3,7,6) w (4,3,3,3) stride 2 pad 1",
        check_op("conv", conv_forward, conv_backward,
                 dict(x=normal((2, 3, 7, 6)), w=normal((4, 3, 3, 3)), b=normal(4)), dict(stride=2, pad=1), seed=seed))
    add("conv", "x (1,2,5,5) w (3,2,2,2) stride 1 pad 0",
        check_op("conv", conv_forward, conv_backward,
                 dict(x=normal((1, 2, 5, 5)), w=normal((3, 2, 2, 2)), b=normal(3)), seed=seed))
    add("maxpool", "x (2,2,7,7) 3x3/2 ceil",
        check_op("maxpool", maxpool_forward, maxpool_backward, dict(x=distinct_values((2, 2, 7, 7), rng)),
                 dict(size=3, stride=2, ceil_mode=True), seed=seed))
    add("maxpool", "x (1,2,5,6) 2x2/2 floor",
        check_op("maxpool", maxpool_forward, maxpool_backward, dict(x=distinct_values((1, 2, 5, 6), rng)),
                 dict(size=2, stride=2, ceil_mode=False), seed=seed))
    add("prelu", "x (2,3,4,4) alpha (3,)",
        check_op("prelu", prelu_forward, prelu_backward,
                 dict(x=distinct_values((2, 3, 4, 4), rng), alpha=normal(3)), seed=seed))
    add("prelu", "x (4,5) alpha (5,)",
        check_op("prelu", prelu_forward, prelu_backward, dict(x=distinct_values((4, 5), rng), alpha=normal(5)),
                 seed=seed))
    add("relu", "x (2,3,4,4)", check_op("relu", relu_forward, relu_backward,
                                        dict(x=distinct_values((2, 3, 4, 4), rng)), seed=seed))
    add("linear", "x (3,2,3,3) w (18,5)",
        check_op("linear", linear_forward, linear_backward,
                 dict(x=normal((3, 2, 3, 3)), w=normal((18, 5)), b=normal(5)), seed=seed))
    add("softmax", "x (4,5)", check_op("softmax", softmax_forward, softmax_backward, dict(x=normal((4, 5))), seed=seed))
    add("lrn", "x (2,7,3,3) size 5",
        check_op("lrn", lrn_forward, lrn_backward, dict(x=normal((2, 7, 3, 3))),
                 dict(size=5, alpha=0.5, beta=0.75, k=2.0), seed=seed))
    add("lrn_within", "x (2,3,5,4) size 3",
        check_op("lrn_within", lrn_within_forward, lrn_within_backward, dict(x=normal((2, 3, 5, 4))),
                 dict(size=3, alpha=0.5, beta=0.75, k=2.0), seed=seed))
    add("spp", "x (2,3,5,7) levels 4,2,1",
        check_op("spp", spp_forward, spp_backward, dict(x=distinct_values((2, 3, 5, 7), rng)),
                 dict(levels=(4, 2, 1)), seed=seed))
    add("dropout", "x (4,6) p 0.3 training",
        check_op("dropout", lambda x: dropout_forward(x, 0.3, True, np.random.default_rng(seed)), dropout_backward,
                 dict(x=normal((4, 6))), seed=seed))
    labels = np.array([0, 2, 1, -1, 1])  # -1: an ignored sample (weight 0)
    add("softmax_cross_entropy", "logits (5,3) weighted",
        check_loss("softmax_cross_entropy", softmax_cross_entropy, normal((5, 3)), labels,
                   np.array([1.0, 1.0, 0.5, 0.0, 2.0]), seed=seed))
    add("euclidean_loss", "pred (5,4) weighted",
        check_loss("euclidean_loss", euclidean_loss, normal((5, 4)), normal((5, 4)),
                   np.array([1.0, 0.0, 1.0, 1.0, 0.5]), seed=seed))
    return rows


def format_table(rows) -> str:
    """The rows of ``run_all`` as an aligned text table."""
    header = ("op", "shapes", "d/d", "check", "rel. error", "result")
    lines = [header] + [(op, desc, r.input_name, r.mode, f"{r.rel_error:.1e}", "pass" if r.passed else "FAIL")
                        for op, desc, r in rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = ["  ".join(f"{cell:<{w}}" for cell, w in zip(line, widths)) for line in lines]
    text.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(text)
