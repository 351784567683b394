"""The one tolerance table for the layer tests, and the one way to compare arrays.

Every number below is a *relative* tolerance: ``assert_close(actual, expected, tol)`` checks

    max |actual - expected|  <=  tol * max |expected|

i.e. the worst difference measured against the size of the expected array as a whole. Unlike an
elementwise relative error this does not blow up on entries that cancel to ~0 (a conv output,
a softmax gradient), and unlike an absolute tolerance it does not pass everything when the
values happen to be small. There are no absolute tolerances and no comparisons of sums.

float64 machine epsilon is 2.2e-16, float32's is 1.2e-7. The sums in these tests have at most a
few hundred terms (C*KH*KW <= 7*7*7 for a conv), so reordering a float64 sum moves it by well
under 1e-13 of its magnitude and a float32 sum by well under 1e-5.
"""

from __future__ import annotations

import numpy as np

from layers import gradcheck

# Bit-identical. The two sides run the same float operations in the same order: Sequential vs the
# same function pairs called by hand, an optimizer resumed from its state_dict vs an uninterrupted
# run, PReLU(alpha=1) vs the identity, a dropout mask applied twice.
EXACT = 0.0

# Fast (im2col + BLAS, strided-slice max) vs naive loops, float64. The two add the same products
# in a different order; each of the <= 343 products rounds at 1.1e-16, so the sums differ by
# ~1e-14 of the largest output at worst. 1e-12 leaves 100x margin yet catches any real bug
# (a missing or doubled term moves an entry by ~1e-2 of the scale).
FAST_VS_NAIVE_F64 = 1e-12

# A closed-form reference computed another way in float64 (softmax Jacobian as a matrix, LRN by
# loops, a loss typed out from its formula, an optimizer update by hand, the im2col adjoint
# identity): same reasoning as above, a handful of roundings of 1.1e-16 each.
REFERENCE_F64 = 1e-12

# The same op on a non-contiguous view vs its contiguous copy, float64. Same numbers, but BLAS may
# block the matrix product differently for a different memory layout, so allow reordering noise.
LAYOUT_F64 = 1e-12

# float32 result vs the float64 result on the same (float32-representable) inputs. Sums of up to
# a few hundred terms accumulate ~sqrt(n) to n roundings of 6e-8 each; 1e-5 covers n ~ 150 in the
# worst case and is still 1000x below what a wrong formula produces.
FLOAT32_FORWARD = 1e-5

# Softmax rows summing to one, float64: K <= 7 additions of numbers in [0, 1] plus one division,
# each rounding at 1.1e-16.
ROW_SUM_F64 = 1e-14

# Softmax of logits shifted by 1e4 vs the unshifted logits. Adding 1e4 rounds each logit to the
# float64 grid at 1e4, whose spacing is 1.8e-12; that absolute error in a logit becomes the same
# relative error in exp(). 1e-11 is five grid steps.
SHIFT_1E4_F64 = 1e-11

# Analytic vs central-difference gradients in float64 (h = 1e-6): layers.gradcheck's own
# threshold, whose size is argued next to it in layers/gradcheck.py (a correct backward lands
# near 1e-8, a wrong one near 1e-1).
GRADCHECK = gradcheck.TOLERANCE

# Fraction of units a dropout mask drops, measured on 10,000 units with p = 0.3 (a fixed seed). The
# count is Binomial(10000, 0.3): standard deviation sqrt(0.3 * 0.7 / 10000) = 0.0046 of the units,
# so 0.02 is more than four standard deviations (and the seed is fixed anyway).
DROPOUT_RATE_10K = 0.02

# How far a deliberately broken backward (dx scaled by 1.01) must land from passing: the checker
# must report a relative error of at least 1.01/2.01 - 1/2 ~ 2.5e-3, far above GRADCHECK.
BROKEN_BACKWARD_MIN_ERROR = 2e-3


def max_relative_difference(actual, expected) -> float:
    """max |actual - expected| / max |expected| (0 when both are all zeros; inf for shape or NaN trouble)."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    if actual.shape != expected.shape:
        raise AssertionError(f"shape {actual.shape} != expected shape {expected.shape}")
    if actual.size == 0:
        return 0.0
    if not (np.all(np.isfinite(actual)) and np.all(np.isfinite(expected))):
        same = np.array_equal(actual, expected, equal_nan=True)
        return 0.0 if same else float("inf")
    scale = float(np.max(np.abs(expected)))
    diff = float(np.max(np.abs(actual - expected)))
    if scale == 0.0:
        return 0.0 if diff == 0.0 else float("inf")
    return diff / scale


def assert_close(actual, expected, tol: float, what: str = "array") -> None:
    """Assert max|actual - expected| <= tol * max|expected|, with a readable message."""
    error = max_relative_difference(actual, expected)
    if not error <= tol:
        actual = np.asarray(actual)
        worst = np.unravel_index(np.argmax(np.abs(np.asarray(actual, np.float64) - np.asarray(expected, np.float64))),
                                 actual.shape) if actual.size else ()
        raise AssertionError(
            f"{what}: max difference is {error:.3e} of the expected scale (tolerance {tol:.0e}); "
            f"shape {actual.shape}, worst index {tuple(int(i) for i in worst)}: "
            f"{np.asarray(actual)[worst]!r} vs expected {np.asarray(expected)[worst]!r}")
