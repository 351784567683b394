"""Test data for the layer tests: arrays off kinks and ties, and hypothesis strategies for shapes.

Gradient checks move each input by h = 1e-6. If an input sits within h of a ReLU/PReLU kink (0)
or of a tie in a max-pool window, the two one-sided slopes differ and the numeric gradient is
meaningless. So inputs are built, never filtered, as a *shuffled, scaled arange*: distinct values
with a fixed spacing, none of them near 0.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

MAX_SIZE = 7  # spatial sizes in property tests stay tiny: fast, and every case is readable


def spaced_values(permutation, shape, scale: float = 2.0, dtype=np.float64) -> np.ndarray:
    """Distinct values from an ordering of 0..n-1 (n = prod(shape)).

    Value k becomes (k - n//2 + 0.5) * scale / n: spacing scale/n, smallest |value| 0.5 * scale/n
    (never 0), all within about [-scale/2, scale/2].
    """
    n = int(np.prod(shape))
    order = np.asarray(permutation, dtype=np.float64)
    values = (order - n // 2 + 0.5) * (scale / max(n, 1))
    return values.reshape(shape).astype(dtype)


def distinct_values(shape, rng: np.random.Generator, scale: float = 2.0, dtype=np.float64) -> np.ndarray:
    """A shuffled, scaled arange of the given shape: distinct values, none near 0.

    With n entries the spacing between any two values is scale/n and |value| >= 0.5 * scale/n.
    For the shapes used in the tests (n <= a few hundred) that is >= 1e-3, a thousand times the
    gradient-check step.
    """
    n = int(np.prod(shape))
    return spaced_values(rng.permutation(n), shape, scale, dtype)


def random_values(shape, rng: np.random.Generator, dtype=np.float64) -> np.ndarray:
    """Standard-normal values (for inputs of smooth ops: conv weights, softmax, LRN)."""
    return rng.standard_normal(shape).astype(dtype)


@st.composite
def distinct_arrays(draw, shape, scale: float = 2.0, dtype=np.float64):
    """Hypothesis strategy: a distinct-valued array of ``shape`` (a drawn permutation, so it shrinks)."""
    n = int(np.prod(shape))
    permutation = draw(st.permutations(list(range(n))))
    return spaced_values(permutation, shape, scale, dtype)


@st.composite
def seeds(draw):
    """An integer seed for np.random.default_rng (for values that need no special structure)."""
    return draw(st.integers(0, 2**32 - 1))


@st.composite
def conv_geometry(draw, max_size: int = MAX_SIZE):
    """(N, C, H, W, F, KH, KW, stride, pad) with the kernel never larger than the padded input.

    The kernel is drawn *after* the size and pad, from 1..H + 2*pad, so every drawn case is
    valid by construction (no filtering).
    """
    N = draw(st.integers(1, 2))
    C = draw(st.integers(1, 3))
    F = draw(st.integers(1, 3))
    H = draw(st.integers(1, max_size))
    W = draw(st.integers(1, max_size))
    pad = draw(st.integers(0, 2))
    KH = draw(st.integers(1, min(5, H + 2 * pad)))
    KW = draw(st.integers(1, min(5, W + 2 * pad)))
    stride = draw(st.integers(1, 3))
    return N, C, H, W, F, KH, KW, stride, pad


@st.composite
def pool_geometry(draw, max_size: int = MAX_SIZE):
    """(N, C, H, W, size, stride, ceil_mode) with the window never larger than the input."""
    N = draw(st.integers(1, 2))
    C = draw(st.integers(1, 3))
    H = draw(st.integers(1, max_size))
    W = draw(st.integers(1, max_size))
    size = draw(st.integers(1, min(4, H, W)))
    stride = draw(st.integers(1, 3))
    ceil_mode = draw(st.booleans())
    return N, C, H, W, size, stride, ceil_mode


@st.composite
def window_arithmetic(draw):
    """(size, k, stride, pad, ceil) for conv_output_size, with k <= size + 2*pad by construction.

    In ceil mode pad is drawn from 0..k//2, the range PyTorch allows for pooling (Caffe's
    formula, which this one follows, assumes it too): with a larger pad a whole window can lie
    in the padding and the ceil count can drop below the floor count.
    """
    size = draw(st.integers(1, 40))
    stride = draw(st.integers(1, 5))
    ceil = draw(st.booleans())
    if ceil:
        k = draw(st.integers(1, size))
        pad = draw(st.integers(0, k // 2))
    else:
        pad = draw(st.integers(0, 3))
        k = draw(st.integers(1, size + 2 * pad))
    return size, k, stride, pad, ceil
