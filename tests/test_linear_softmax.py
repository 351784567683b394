"""Fully connected layer and softmax: gradient checks, closed forms, stability, dtype, layout, errors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from layers import linear_backward, linear_forward, softmax, softmax_backward, softmax_forward
from layers.gradcheck import assert_gradients_ok, check_op
from strategies import random_values, seeds
from tolerances import (EXACT, FLOAT32_FORWARD, LAYOUT_F64, REFERENCE_F64, ROW_SUM_F64, SHIFT_1E4_F64,
                        assert_close)

# ------------------------------------------------------------------------ linear


def test_linear_hand_example():
    x = np.array([[1.0, 2.0], [3.0, 4.0]])
    w = np.array([[1.0, 0.0, -1.0], [0.5, 2.0, 0.0]])
    out, cache = linear_forward(x, w, np.array([0.0, 1.0, 10.0]))
    assert_close(out, np.array([[2.0, 5.0, 9.0], [5.0, 9.0, 7.0]]), EXACT)
    dx, dw, db = linear_backward(np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]), cache)
    assert_close(dx, np.array([[1.0, 0.5], [-1.0, 0.0]]), EXACT)
    assert_close(dw, np.array([[1.0, 0.0, 3.0], [2.0, 0.0, 4.0]]), EXACT)
    assert_close(db, np.array([1.0, 0.0, 1.0]), EXACT)


@pytest.mark.parametrize("x_shape, M", [((3, 5), 4), ((2, 3, 2, 2), 3), ((1, 7), 1)])
def test_linear_gradcheck_full(rng, x_shape, M):
    D = int(np.prod(x_shape[1:]))
    inputs = {"x": random_values(x_shape, rng), "w": random_values((D, M), rng), "b": random_values((M,), rng)}
    assert_gradients_ok(check_op("linear", linear_forward, linear_backward, inputs, seed=6))


def test_linear_gradcheck_direction_larger(rng):
    # O-Net's fc5 size: 128 channels of 3x3 -> 256
    inputs = {"x": random_values((8, 128, 3, 3), rng), "w": random_values((1152, 256), rng) / 30,
              "b": random_values((256,), rng)}
    for seed in range(2):
        assert_gradients_ok(check_op("linear", linear_forward, linear_backward, inputs, full=False, seed=seed))


def test_linear_on_maps_flattens_in_c_order(rng):
    x = random_values((2, 3, 2, 2), rng)
    w, b = random_values((12, 5), rng), random_values((5,), rng)
    out, cache = linear_forward(x, w, b)
    assert_close(out, x.reshape(2, 12) @ w + b, EXACT)
    dx, _, _ = linear_backward(np.ones((2, 5)), cache)
    assert dx.shape == x.shape


def test_linear_float32_and_non_contiguous(rng):
    x = random_values((4, 6), rng, np.float32)
    w = random_values((6, 3), rng)  # float64 weights follow the float32 input
    out, cache = linear_forward(x, w, np.zeros(3))
    grads = linear_backward(np.ones((4, 3), dtype=np.float32), cache)
    assert out.dtype == np.float32 and all(g.dtype == np.float32 for g in grads)
    assert_close(out, linear_forward(x.astype(np.float64), w, np.zeros(3))[0], FLOAT32_FORWARD)

    w = random_values((3, 8), rng).T  # (D=8, M=3), non-contiguous
    views = {"every third row": random_values((12, 8), rng)[::3], "transposed": random_values((8, 4), rng).T,
             "4-D, every other row": random_values((4, 2, 4, 2), rng)[:, :, ::2]}
    for name, x in views.items():
        assert not x.flags.c_contiguous
        out, cache = linear_forward(x, w, np.zeros(3))
        ref, ref_cache = linear_forward(np.ascontiguousarray(x), np.ascontiguousarray(w), np.zeros(3))
        assert_close(out, ref, LAYOUT_F64, name)
        dout = random_values((3, 4), rng).T
        for g, g_ref in zip(linear_backward(dout, cache), linear_backward(np.ascontiguousarray(dout), ref_cache)):
            assert_close(g, g_ref, LAYOUT_F64, name)


def test_linear_feature_mismatch_names_both_shapes():
    with pytest.raises(ValueError) as error:
        linear_forward(np.zeros((2, 3, 2, 2)), np.zeros((10, 4)), np.zeros(4))
    message = str(error.value)
    assert "(2, 3, 2, 2)" in message and "D=12" in message and "(10, 4)" in message


@pytest.mark.parametrize("x, w, b, expected", [
    (np.zeros((2, 3)), np.zeros((3, 4)), np.zeros(3), "b must have shape (4,), got (3,)"),
    (np.zeros((2, 3)), np.zeros(3), np.zeros(1), "w must have shape (D, M), got shape (3,)"),
    (np.zeros(3), np.zeros((3, 4)), np.zeros(4), "x must have shape (N, D) or (N, ...), got shape (3,)"),
    (np.zeros((2, 3), dtype=np.int64), np.zeros((3, 4)), np.zeros(4), "floating-point array, got dtype int64"),
])
def test_linear_bad_arguments(x, w, b, expected):
    with pytest.raises(ValueError) as error:
        linear_forward(x, w, b)
    assert expected in str(error.value)


# ------------------------------------------------------------------------ softmax


def test_softmax_hand_example():
    out = softmax(np.array([[0.0, np.log(3.0)], [5.0, 5.0]]))
    assert_close(out, np.array([[0.25, 0.75], [0.5, 0.5]]), REFERENCE_F64)


@pytest.mark.parametrize("shape", [(3, 4), (2, 1), (2, 3, 2, 3), (1, 2, 4, 1)])
def test_softmax_gradcheck_full(rng, shape):
    assert_gradients_ok(check_op("softmax", softmax_forward, softmax_backward, {"x": random_values(shape, rng) * 2},
                                 seed=7))


def test_softmax_gradcheck_direction_per_pixel_larger(rng):
    # P-Net's face map on a small image: 2 classes per pixel
    x = random_values((2, 2, 40, 30), rng) * 3
    for seed in range(2):
        assert_gradients_ok(check_op("softmax", softmax_forward, softmax_backward, {"x": x}, full=False, seed=seed))


def test_softmax_backward_matches_the_jacobian_matrix(rng):
    x = random_values((3, 5), rng)
    y, cache = softmax_forward(x)
    dout = random_values((3, 5), rng)
    dx = softmax_backward(dout, cache)
    for n in range(3):
        jacobian = np.diag(y[n]) - np.outer(y[n], y[n])  # d y_i / d x_j
        assert_close(dx[n], jacobian.T @ dout[n], REFERENCE_F64, f"row {n}")


@st.composite
def logits(draw):
    shape = draw(st.sampled_from([(1, 1), (3, 2), (2, 7), (2, 3, 2, 2), (1, 2, 5, 4)]))
    rng = np.random.default_rng(draw(seeds()))
    return rng.standard_normal(shape) * draw(st.sampled_from([0.1, 1.0, 30.0]))


@given(logits())
def test_softmax_rows_sum_to_one(x):
    y = softmax(x)
    assert np.all(y >= 0) and np.all(y <= 1)
    assert_close(y.sum(axis=1), np.ones(x.shape[:1] + x.shape[2:]), ROW_SUM_F64, "sum over classes")


@given(logits())
def test_softmax_is_stable_for_large_logits(x):
    for shift in (1e4, -1e4):
        y = softmax(x + shift)  # exp(1e4) overflows without the max subtraction
        assert np.all(np.isfinite(y))
        assert_close(y, softmax(x), SHIFT_1E4_F64, f"softmax(x {shift:+g})")
    big = softmax(x * 1e4)  # nearly one-hot, still finite and normalized
    assert np.all(np.isfinite(big))
    assert_close(big.sum(axis=1), np.ones(x.shape[:1] + x.shape[2:]), ROW_SUM_F64)


def test_softmax_float32_and_non_contiguous(rng):
    x = random_values((4, 3, 2, 2), rng, np.float32) * 50
    y, cache = softmax_forward(x)
    dx = softmax_backward(random_values(x.shape, rng, np.float32), cache)
    assert y.dtype == np.float32 and dx.dtype == np.float32
    assert_close(y, softmax(x.astype(np.float64)), FLOAT32_FORWARD)
    assert np.all(np.isfinite(softmax(np.full((2, 3), 1e4, dtype=np.float32))))

    base = random_values((5, 4, 3), rng)
    for x in (base[:, :, 0].T, base[::2, ::-1, :]):
        y, cache = softmax_forward(x)
        ref, ref_cache = softmax_forward(np.ascontiguousarray(x))
        assert_close(y, ref, EXACT)
        dout = random_values(x.shape[::-1], rng).T
        assert_close(softmax_backward(dout, cache), softmax_backward(np.ascontiguousarray(dout), ref_cache), LAYOUT_F64)


def test_softmax_bad_arguments():
    with pytest.raises(ValueError, match=r"\(N, K\) or \(N, K, H, W\), got shape \(3,\)"):
        softmax(np.zeros(3))
    with pytest.raises(ValueError, match="floating-point.*int"):
        softmax(np.zeros((2, 3), dtype=np.int32))
