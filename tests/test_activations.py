"""ReLU and PReLU: hand values, gradient checks (inputs off the kink at 0), the alpha=1 / alpha=0
identities, dtype, layout and errors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from layers import batch_chunks, prelu_backward, prelu_forward, relu_backward, relu_forward
from layers.activations import prelu_backward_naive, prelu_forward_naive
from layers.gradcheck import assert_gradients_ok, check_op
from strategies import distinct_arrays, distinct_values, random_values
from tolerances import EXACT, FAST_VS_NAIVE_F64, FLOAT32_FORWARD, assert_close

SHAPES = [(3, 4), (2, 3, 4, 5)]  # after a fully connected layer, after a conv


def test_hand_values():
    x = np.array([[-2.0, -0.5, 0.5, 3.0]])
    out, cache = relu_forward(x)
    assert_close(out, np.array([[0.0, 0.0, 0.5, 3.0]]), EXACT)
    assert_close(relu_backward(np.array([[1.0, 2.0, 3.0, 4.0]]), cache), np.array([[0.0, 0.0, 3.0, 4.0]]), EXACT)

    x = np.array([[-2.0, 4.0], [1.0, -3.0]])  # (N=2, C=2), channel slopes 0.25 and 0.5
    out, cache = prelu_forward(x, np.array([0.25, 0.5]))
    assert_close(out, np.array([[-0.5, 4.0], [1.0, -1.5]]), EXACT)
    dx, dalpha = prelu_backward(np.array([[1.0, 1.0], [2.0, 2.0]]), cache)
    assert_close(dx, np.array([[0.25, 1.0], [2.0, 1.0]]), EXACT)
    assert_close(dalpha, np.array([-2.0, -6.0]), EXACT)  # dout * x where x <= 0, summed per channel


# ------------------------------------------------------------------------ gradient checks


@pytest.mark.parametrize("shape", SHAPES + [(2, 2, 3), (7,)])
def test_relu_gradcheck_full(rng, shape):
    x = distinct_values(shape, rng)  # about half negative, none within 1e-3 of 0
    assert_gradients_ok(check_op("relu", relu_forward, relu_backward, {"x": x}, seed=4))


@pytest.mark.parametrize("shape", SHAPES)
def test_prelu_gradcheck_full(rng, shape):
    x = distinct_values(shape, rng)
    alpha = np.array([0.25, -0.5, 1.5, 0.0, 0.1][: shape[1]])  # slopes of every kind, including 0
    assert_gradients_ok(check_op("prelu", prelu_forward, prelu_backward, {"x": x, "alpha": alpha}, seed=5))


def test_prelu_gradcheck_direction_larger(rng):
    x = distinct_values((8, 10, 12, 12), rng)
    alpha = random_values((10,), rng)
    for seed in range(3):
        assert_gradients_ok(check_op("prelu", prelu_forward, prelu_backward, {"x": x, "alpha": alpha},
                                     full=False, seed=seed))


# ------------------------------------------------------------------------ identities


@st.composite
def prelu_input(draw):
    shape = draw(st.sampled_from([(2, 3), (1, 5), (2, 3, 2, 4), (1, 2, 5, 1)]))
    return draw(distinct_arrays(shape, scale=10.0))


@given(prelu_input())
def test_prelu_with_alpha_one_is_the_identity(x):
    alpha = np.ones(x.shape[1])
    out, cache = prelu_forward(x, alpha)
    assert_close(out, x, EXACT)
    dout = x[::-1].copy()  # any gradient
    dx, dalpha = prelu_backward(dout, cache)
    assert_close(dx, dout, EXACT)


@given(prelu_input())
def test_prelu_with_alpha_zero_is_relu(x):
    out, cache = prelu_forward(x, np.zeros(x.shape[1]))
    relu_out, relu_cache = relu_forward(x)
    assert_close(out, relu_out, EXACT)
    dout = x[::-1].copy()
    assert_close(prelu_backward(dout, cache)[0], relu_backward(dout, relu_cache), EXACT)


# ------------------------------------------------------------------------ fast == naive


@st.composite
def sliced_prelu_case(draw):
    shape = draw(st.sampled_from([(5, 3), (1, 4), (4, 3, 2, 5), (3, 2, 5, 1)]))
    x = draw(distinct_arrays(shape, scale=10.0))
    alpha = draw(st.lists(st.sampled_from([0.25, -0.5, 1.5, 0.0, 1.0]), min_size=shape[1], max_size=shape[1]))
    return x, np.array(alpha), draw(st.integers(0, 2**32 - 1))


@given(sliced_prelu_case(), st.booleans())
def test_fast_equals_naive_whole_batch_and_one_sample_per_slice(case, sliced):
    # fast: cache-sized slices of the batch on threads (layers.batch_chunks); forcing one sample
    # per slice on two threads must give the whole-array formula's result
    x, alpha, seed = case
    dout = random_values(x.shape, np.random.default_rng(seed))
    settings = dict(chunk_bytes=1, threads=2, min_parallel_bytes=0) if sliced else {}
    with batch_chunks.slicing(**settings):
        out, cache = prelu_forward(x, alpha)
        dx, dalpha = prelu_backward(dout, cache)
        relu_dx = relu_backward(dout, x)
    out_naive, cache_naive = prelu_forward_naive(x, alpha)
    dx_naive, dalpha_naive = prelu_backward_naive(dout, cache_naive)
    assert_close(out, out_naive, FAST_VS_NAIVE_F64, "out")
    assert_close(dx, dx_naive, FAST_VS_NAIVE_F64, "dx")
    assert_close(dalpha, dalpha_naive, FAST_VS_NAIVE_F64, "dalpha")
    assert_close(relu_dx, np.where(x > 0, dout, 0), EXACT, "relu dx")


# ------------------------------------------------------------------------ dtype and memory layout


def test_float32_in_float32_out(rng):
    for shape in SHAPES:
        x = distinct_values(shape, rng, dtype=np.float32)
        dout = random_values(shape, rng, np.float32)
        out, cache = relu_forward(x)
        assert out.dtype == np.float32 and relu_backward(dout, cache).dtype == np.float32
        out, cache = prelu_forward(x, np.full(shape[1], 0.25, dtype=np.float32))
        dx, dalpha = prelu_backward(dout, cache)
        assert (out.dtype, dx.dtype, dalpha.dtype) == (np.float32,) * 3
        out64 = prelu_forward(x.astype(np.float64), np.full(shape[1], 0.25))[0]
        assert_close(out, out64, FLOAT32_FORWARD)


def test_float64_alpha_follows_a_float32_input(rng):
    x = distinct_values((2, 3, 4, 4), rng, dtype=np.float32)
    out, cache = prelu_forward(x, np.full(3, 0.25))  # float64 slopes
    assert out.dtype == np.float32
    assert prelu_backward(np.ones_like(out), cache)[0].dtype == np.float32


def test_non_contiguous_inputs_give_the_contiguous_result(rng):
    base = distinct_values((2, 3, 8, 6), rng)
    alpha = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8])[::-1]  # (8,) for the transposed view
    for name, x, a in [("every other row", base[:, :, ::2], alpha[:3]),
                       ("transposed", base.transpose(0, 2, 1, 3), alpha),
                       ("(N, C) view", base[:, :, 0, 0].T.copy().T, alpha[:3])]:
        dout = random_values(x.shape, rng)[::-1]
        out, cache = prelu_forward(x, a)
        ref, ref_cache = prelu_forward(np.ascontiguousarray(x), np.ascontiguousarray(a))
        assert_close(out, ref, EXACT, name)
        for g, g_ref in zip(prelu_backward(dout, cache), prelu_backward(np.ascontiguousarray(dout), ref_cache)):
            assert_close(g, g_ref, EXACT, name)
        out, cache = relu_forward(x)
        assert_close(out, relu_forward(np.ascontiguousarray(x))[0], EXACT, name)
        assert_close(relu_backward(dout, cache), relu_backward(np.ascontiguousarray(dout), cache), EXACT, name)


# ------------------------------------------------------------------------ bad arguments


@pytest.mark.parametrize("x_shape, alpha_shape", [((2, 3), (2,)), ((2, 3, 4, 4), (4,)), ((2, 3, 4, 4), (3, 1))])
def test_wrong_alpha_shape_names_the_shapes(x_shape, alpha_shape):
    with pytest.raises(ValueError) as error:
        prelu_forward(np.ones(x_shape), np.ones(alpha_shape))
    assert f"alpha must have shape ({x_shape[1]},), got {alpha_shape}" in str(error.value)


def test_prelu_rejects_other_ranks():
    with pytest.raises(ValueError, match=r"\(N, C\) or \(N, C, H, W\), got shape \(2, 3, 4\)"):
        prelu_forward(np.ones((2, 3, 4)), np.ones(3))


def test_integer_input_is_refused():
    with pytest.raises(ValueError, match="floating-point.*int"):
        relu_forward(np.arange(4))
    with pytest.raises(ValueError, match="floating-point.*int"):
        prelu_forward(np.ones((2, 3), dtype=np.int16), np.ones(3))
