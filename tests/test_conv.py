"""Convolution: a hand example, gradient checks, fast == naive, output size, dtype, layout, errors."""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from layers import batch_chunks, conv_matrix
from layers import conv as conv_module
from layers import (col2im, conv_backward, conv_backward_naive, conv_forward, conv_forward_naive, conv_output_size,
                    im2col)
from layers.gradcheck import assert_gradients_ok, check_op
from layers.linear import linear_backward, linear_forward
from strategies import conv_geometry, random_values, seeds, window_arithmetic
from tolerances import (EXACT, FAST_VS_NAIVE_F64, FLOAT32_FORWARD, LAYOUT_F64, REFERENCE_F64, assert_close)


def conv_inputs(rng, x_shape, w_shape, dtype=np.float64):
    return (random_values(x_shape, rng, dtype), random_values(w_shape, rng, dtype),
            random_values(w_shape[:1], rng, dtype))


# ------------------------------------------------------------------------ a number you can check


def test_hand_example_cross_correlation():
    # d2l's example: a 2x2 kernel slid over 0..8 without flipping.
    x = np.arange(9.0).reshape(1, 1, 3, 3)
    w = np.array([[0.0, 1.0], [2.0, 3.0]]).reshape(1, 1, 2, 2)
    b = np.zeros(1)
    expected = np.array([[19.0, 25.0], [37.0, 43.0]]).reshape(1, 1, 2, 2)
    for forward in (conv_forward, conv_forward_naive):
        out, _ = forward(x, w, b)
        assert_close(out, expected, EXACT, forward.__name__)


def test_hand_example_padding_and_stride():
    # ones kernel on a zero-padded 3x3 of ones, stride 2: corners see 4 ones, nothing else is computed
    x = np.ones((1, 1, 3, 3))
    w = np.ones((1, 1, 3, 3))
    out, _ = conv_forward(x, w, np.array([0.5]), stride=2, pad=1)
    assert_close(out, np.full((1, 1, 2, 2), 4.5), EXACT)


# ------------------------------------------------------------------------ gradient checks

GRADCHECK_CASES = [
    # x shape,        w shape,        stride, pad   -- why
    ((2, 2, 5, 5), (3, 2, 3, 3), 1, 0),  # stride < kernel: windows overlap, pad 0
    ((2, 2, 5, 5), (3, 2, 3, 3), 1, 1),  # same with pad > 0
    ((1, 3, 7, 7), (2, 3, 3, 3), 2, 1),  # stride 2 < kernel 3, odd size
    ((1, 2, 7, 6), (2, 2, 4, 3), 3, 2),  # stride 3, non-square kernel, pad 2, odd/even sizes
    ((2, 1, 6, 7), (2, 1, 2, 2), 2, 0),  # stride == kernel: no overlap
    ((1, 2, 5, 3), (2, 2, 5, 3), 1, 0),  # kernel == input: a 1x1 output
    ((1, 1, 3, 3), (1, 1, 3, 3), 3, 2),  # pad large: some windows see mostly padding
]


@pytest.mark.parametrize("x_shape, w_shape, stride, pad", GRADCHECK_CASES)
def test_conv_gradcheck_full(rng, x_shape, w_shape, stride, pad):
    x, w, b = conv_inputs(rng, x_shape, w_shape)
    results = check_op("conv", conv_forward, conv_backward, {"x": x, "w": w, "b": b},
                       hyper=dict(stride=stride, pad=pad), seed=1)
    assert_gradients_ok(results)


@pytest.mark.parametrize("x_shape, w_shape, stride, pad", GRADCHECK_CASES[:3])
def test_conv_naive_gradcheck_full(rng, x_shape, w_shape, stride, pad):
    x, w, b = conv_inputs(rng, x_shape, w_shape)
    results = check_op("conv_naive", conv_forward_naive, conv_backward_naive, {"x": x, "w": w, "b": b},
                       hyper=dict(stride=stride, pad=pad), seed=2)
    assert_gradients_ok(results)


def test_conv_gradcheck_direction_larger(rng):
    # a P-Net-like slice, too big for the full check: one random direction per array
    x, w, b = conv_inputs(rng, (4, 3, 14, 13), (10, 3, 3, 3))
    for seed in range(3):
        assert_gradients_ok(check_op("conv", conv_forward, conv_backward, {"x": x, "w": w, "b": b},
                                     hyper=dict(stride=1, pad=1), full=False, seed=seed))


# ------------------------------------------------------------------------ fast == naive


@given(conv_geometry(), seeds())
def test_fast_equals_naive_forward_and_backward(geometry, seed):
    N, C, H, W, F, KH, KW, stride, pad = geometry
    rng = np.random.default_rng(seed)
    x, w, b = conv_inputs(rng, (N, C, H, W), (F, C, KH, KW))
    out_fast, cache_fast = conv_forward(x, w, b, stride=stride, pad=pad)
    out_naive, cache_naive = conv_forward_naive(x, w, b, stride=stride, pad=pad)
    assert_close(out_fast, out_naive, FAST_VS_NAIVE_F64, "out")

    dout = random_values(out_naive.shape, rng)
    grads_fast, grads_naive = conv_backward(dout, cache_fast), conv_backward_naive(dout, cache_naive)
    for name, fast, naive in zip(("dx", "dw", "db"), grads_fast, grads_naive):
        assert fast.shape == naive.shape
        assert_close(fast, naive, FAST_VS_NAIVE_F64, name)


@contextmanager
def conv_path(matrix: bool):
    """Force conv_forward / conv_backward onto the convolution's matrix (where there is no
    padding) or onto im2col, whatever the map's size."""
    saved = conv_matrix.MAX_MAP_PER_KERNEL, conv_matrix.MAX_ENTRIES
    conv_matrix.MAX_MAP_PER_KERNEL, conv_matrix.MAX_ENTRIES = (10**9, 10**9) if matrix else (0, 0)
    try:
        yield
    finally:
        conv_matrix.MAX_MAP_PER_KERNEL, conv_matrix.MAX_ENTRIES = saved


@pytest.mark.parametrize("matrix", [True, False], ids=["matrix", "im2col"])
@given(geometry=conv_geometry(), seed=seeds())
def test_both_paths_equal_naive_forward_and_backward(matrix, geometry, seed):
    N, C, H, W, F, KH, KW, stride, pad = geometry
    rng = np.random.default_rng(seed)
    x, w, b = conv_inputs(rng, (N, C, H, W), (F, C, KH, KW))
    with conv_path(matrix):
        assert conv_matrix.use_matrix(x.shape, w.shape, stride, pad) == (matrix and pad == 0)
        out, cache = conv_forward(x, w, b, stride=stride, pad=pad)
        dout = random_values(out.shape, rng)
        grads = conv_backward(dout, cache)
        dw_only = conv_backward(dout, cache, input_grad=False)
    out_naive, cache_naive = conv_forward_naive(x, w, b, stride=stride, pad=pad)
    assert out.flags.c_contiguous and out.dtype == x.dtype
    assert_close(out, out_naive, FAST_VS_NAIVE_F64, "out")
    for name, fast, naive in zip(("dx", "dw", "db"), grads, conv_backward_naive(dout, cache_naive)):
        assert fast.shape == naive.shape
        assert_close(fast, naive, FAST_VS_NAIVE_F64, name)
    assert dw_only[0] is None
    np.testing.assert_array_equal(dw_only[1], grads[1])


def test_the_matrix_is_taken_for_pnets_small_maps_only():
    # P-Net in training: conv2 on 5x5 and conv3 on 3x3 maps; R-Net's conv3 (4x4, 2x2 kernel)
    # and anything padded or large stay with im2col
    assert conv_matrix.use_matrix((256, 10, 5, 5), (16, 10, 3, 3), 1, 0)
    assert conv_matrix.use_matrix((256, 16, 3, 3), (32, 16, 3, 3), 1, 0)
    assert not conv_matrix.use_matrix((256, 3, 12, 12), (10, 3, 3, 3), 1, 0)
    assert not conv_matrix.use_matrix((256, 48, 4, 4), (64, 48, 2, 2), 1, 0)
    assert not conv_matrix.use_matrix((256, 10, 5, 5), (16, 10, 3, 3), 1, 1)


def test_the_matrix_holds_each_weight_once_per_output_position():
    w = np.arange(1, 1 + 2 * 3 * 2 * 2, dtype=np.float64).reshape(2, 3, 2, 2)
    M = conv_matrix.conv_matrix(w, 3, 4)  # 3x4 maps -> 2x3 outputs
    assert M.shape == (3 * 3 * 4, 2 * 2 * 3)
    for f in range(2):
        column = M[:, f * 6 + 1 * 3 + 2].reshape(3, 3, 4)  # output (i, j) = (1, 2)
        np.testing.assert_array_equal(column[:, 1:3, 2:4], w[f])
        assert np.count_nonzero(column) == w[f].size


@given(conv_geometry(), st.integers(2, 4), seeds())
def test_fast_equals_naive_one_sample_per_slice(geometry, N, seed):
    # conv_forward / conv_backward run slices of the batch on threads (dw adds up over slices):
    # one sample per slice on two threads must give the loops' result
    _, C, H, W, F, KH, KW, stride, pad = geometry
    rng = np.random.default_rng(seed)
    x, w, b = conv_inputs(rng, (N, C, H, W), (F, C, KH, KW))
    saved = conv_module.CONV_CHUNK_BYTES
    conv_module.CONV_CHUNK_BYTES = 1
    try:
        with batch_chunks.slicing(threads=2, min_parallel_bytes=0):
            out_fast, cache_fast = conv_forward(x, w, b, stride=stride, pad=pad)
            dout = random_values(out_fast.shape, rng)
            grads_fast = conv_backward(dout, cache_fast)
    finally:
        conv_module.CONV_CHUNK_BYTES = saved
    out_naive, cache_naive = conv_forward_naive(x, w, b, stride=stride, pad=pad)
    assert out_fast.flags.c_contiguous
    assert_close(out_fast, out_naive, FAST_VS_NAIVE_F64, "out")
    for name, fast, naive in zip(("dx", "dw", "db"), grads_fast, conv_backward_naive(dout, cache_naive)):
        assert_close(fast, naive, FAST_VS_NAIVE_F64, name)


@given(st.integers(2, 5), st.integers(1, 6), st.integers(1, 4), seeds())
def test_linear_is_a_1x1_conv_one_sample_per_slice(N, D, M, seed):
    # a fully connected layer is a 1x1 convolution of a 1x1 map with D channels; linear_forward /
    # linear_backward run parts of the batch on threads, which must change nothing
    rng = np.random.default_rng(seed)
    x, w, b = random_values((N, D), rng), random_values((D, M), rng), random_values((M,), rng)
    dout = random_values((N, M), rng)
    with batch_chunks.slicing(threads=2, min_parallel_bytes=0):
        out, cache = linear_forward(x, w, b)
        dx, dw, db = linear_backward(dout, cache)
    out_conv, cache_conv = conv_forward_naive(x.reshape(N, D, 1, 1), w.T.reshape(M, D, 1, 1), b)
    dx_conv, dw_conv, db_conv = conv_backward_naive(dout.reshape(N, M, 1, 1), cache_conv)
    assert_close(out, out_conv.reshape(N, M), FAST_VS_NAIVE_F64, "out")
    assert_close(dx, dx_conv.reshape(N, D), FAST_VS_NAIVE_F64, "dx")
    assert_close(dw, dw_conv.reshape(M, D).T, FAST_VS_NAIVE_F64, "dw")
    assert_close(db, db_conv, FAST_VS_NAIVE_F64, "db")


@given(conv_geometry(), seeds())
def test_output_shape_matches_formula(geometry, seed):
    N, C, H, W, F, KH, KW, stride, pad = geometry
    x, w, b = conv_inputs(np.random.default_rng(seed), (N, C, H, W), (F, C, KH, KW))
    out, cache = conv_forward(x, w, b, stride=stride, pad=pad)
    assert out.shape == (N, F, conv_output_size(H, KH, stride, pad), conv_output_size(W, KW, stride, pad))
    dx, dw, db = conv_backward(np.ones_like(out), cache)
    assert (dx.shape, dw.shape, db.shape) == (x.shape, w.shape, b.shape)


@given(conv_geometry(), seeds())
def test_col2im_is_the_adjoint_of_im2col(geometry, seed):
    # <im2col(x), y> == <x, col2im(y)> for all x, y: col2im adds every window back where it came from
    N, C, H, W, _, KH, KW, stride, pad = geometry
    rng = np.random.default_rng(seed)
    x = random_values((N, C, H, W), rng)
    cols = im2col(x, KH, KW, stride, pad)
    y = random_values(cols.shape, rng)
    lhs = np.vdot(cols, y)
    rhs = np.vdot(x, col2im(y, x.shape, KH, KW, stride, pad))
    assert_close(np.array(rhs), np.array(lhs), REFERENCE_F64, "<x, col2im(y)> vs <im2col(x), y>")


# ------------------------------------------------------------------------ output-size arithmetic


@given(window_arithmetic())
def test_conv_output_size_windows_fit(args):
    size, k, stride, pad, ceil = args
    out = conv_output_size(size, k, stride, pad, ceil=ceil)
    floor_out = conv_output_size(size, k, stride, pad)
    assert out >= 1
    # floor mode: the last window ends inside the padded input and one more would not fit
    assert (floor_out - 1) * stride + k <= size + 2 * pad < floor_out * stride + k
    if ceil:
        assert floor_out <= out <= floor_out + 1
        assert (out - 1) * stride < size + pad  # every window starts inside the (left-padded) input
    else:
        assert out == floor_out


@pytest.mark.parametrize("size, k, stride, pad, ceil, expected", [
    # MTCNN (Caffe pooling is ceil mode)
    (10, 2, 2, 0, True, 5),   # P-Net: 12 -> conv3 -> 10 -> pool 2/2 -> 5
    (22, 3, 2, 0, True, 11),  # R-Net: 24 -> conv3 -> 22 -> pool 3/2 -> 11
    (9, 3, 2, 0, True, 4),    # R-Net: 11 -> conv3 -> 9 -> pool 3/2 -> 4
    (46, 3, 2, 0, True, 23),  # O-Net: 48 -> conv3 -> 46 -> pool 3/2 -> 23
    (21, 3, 2, 0, True, 10),  # O-Net: 23 -> conv3 -> 21 -> pool 3/2 -> 10
    (8, 2, 2, 0, True, 4),    # O-Net: 10 -> conv3 -> 8 -> pool 2/2 -> 4
    (12, 3, 1, 0, False, 10),  # Cascade-CNN 12-net conv 3x3
    (10, 3, 2, 0, True, 5),   # ... then pool 3/2 in Caffe's ceil mode
    (10, 3, 2, 0, False, 4),  # ... and in floor mode
    (5, 3, 1, 1, False, 5),   # "same" padding
    (7, 3, 2, 1, False, 4),
    (1, 1, 1, 0, False, 1),
    (3, 2, 2, 0, True, 2),    # ceil: the last window hangs over the edge
    (4, 3, 3, 1, True, 2),    # ceil with pad: a 3rd window would start in the right padding, dropped
])
def test_conv_output_size_known_values(size, k, stride, pad, ceil, expected):
    assert conv_output_size(size, k, stride, pad, ceil=ceil) == expected


@pytest.mark.parametrize("args, words", [
    ((0, 3, 1, 0), ["size", "0"]),
    ((-2, 3, 1, 0), ["size", "-2"]),
    ((5, 0, 1, 0), ["kernel", "0"]),
    ((5, 3, 0, 0), ["stride", "0"]),
    ((5, 3, -1, 0), ["stride", "-1"]),
    ((5, 3, 1, -1), ["pad", "-1"]),
    ((5, 3, 1.5, 0), ["stride", "1.5"]),
    ((2, 5, 1, 1), ["kernel 5", "2 + 2*1 = 4"]),
])
def test_conv_output_size_rejects_bad_numbers(args, words):
    with pytest.raises(ValueError) as error:
        conv_output_size(*args)
    for word in words:
        assert word in str(error.value)


# ------------------------------------------------------------------------ dtype and memory layout


def test_float32_in_float32_out(rng):
    x, w, b = conv_inputs(rng, (2, 3, 6, 5), (4, 3, 3, 3), np.float32)
    for forward, backward in ((conv_forward, conv_backward), (conv_forward_naive, conv_backward_naive)):
        out, cache = forward(x, w, b, stride=2, pad=1)
        dout = random_values(out.shape, rng, np.float32)
        grads = backward(dout, cache)
        assert out.dtype == np.float32 and all(g.dtype == np.float32 for g in grads), forward.__name__
        out64, cache64 = forward(*(a.astype(np.float64) for a in (x, w, b)), stride=2, pad=1)
        assert_close(out, out64, FLOAT32_FORWARD, "float32 out")
        for g, g64 in zip(grads, backward(dout.astype(np.float64), cache64)):
            assert_close(g, g64, FLOAT32_FORWARD, "float32 gradient")


def test_float64_weights_follow_a_float32_input(rng):
    x, _, _ = conv_inputs(rng, (1, 2, 5, 5), (3, 2, 3, 3), np.float32)
    w, b = random_values((3, 2, 3, 3), rng), random_values((3,), rng)  # float64 parameters
    out, cache = conv_forward(x, w, b)
    assert out.dtype == np.float32
    assert all(g.dtype == np.float32 for g in conv_backward(np.ones_like(out), cache))


def test_non_contiguous_inputs_give_the_contiguous_result(rng):
    base = random_values((2, 3, 9, 8), rng)
    views = {
        "every other row": base[:, :, ::2],                # (2, 3, 5, 8)
        "transposed H and W": base.transpose(0, 1, 3, 2),  # (2, 3, 8, 9)
        "channels reversed": base[:, ::-1],
    }
    w = random_values((4, 3, 3, 3), rng).transpose(0, 1, 3, 2)  # non-contiguous weights
    b = random_values((8,), rng)[::2]                           # non-contiguous bias
    assert not w.flags.c_contiguous and not b.flags.c_contiguous
    for name, x in views.items():
        assert not x.flags.c_contiguous, name
        out, cache = conv_forward(x, w, b, stride=1, pad=1)
        ref, ref_cache = conv_forward(np.ascontiguousarray(x), np.ascontiguousarray(w), np.ascontiguousarray(b),
                                      stride=1, pad=1)
        assert_close(out, ref, LAYOUT_F64, name)
        dout = random_values(out.shape[::-1], rng).transpose(3, 2, 1, 0)  # non-contiguous dout
        for g, g_ref in zip(conv_backward(dout, cache), conv_backward(np.ascontiguousarray(dout), ref_cache)):
            assert_close(g, g_ref, LAYOUT_F64, name + " backward")


# ------------------------------------------------------------------------ bad arguments


def test_channel_mismatch_names_both_shapes():
    x = np.zeros((1, 3, 5, 5))
    w = np.zeros((4, 2, 3, 3))
    for forward in (conv_forward, conv_forward_naive):
        with pytest.raises(ValueError, match=r"channel mismatch") as error:
            forward(x, w, np.zeros(4))
        assert "(1, 3, 5, 5)" in str(error.value) and "(4, 2, 3, 3)" in str(error.value)


def test_kernel_larger_than_padded_input():
    with pytest.raises(ValueError, match=r"kernel 5 is larger than the padded input 3 \+ 2\*0 = 3"):
        conv_forward(np.zeros((1, 1, 3, 7)), np.zeros((1, 1, 5, 5)), np.zeros(1))
    conv_forward(np.zeros((1, 1, 3, 7)), np.zeros((1, 1, 5, 5)), np.zeros(1), pad=1)  # fits with pad 1


@pytest.mark.parametrize("stride, pad, word", [(0, 0, "stride"), (-1, 0, "stride"), (1, -1, "pad")])
def test_bad_stride_or_pad(stride, pad, word):
    with pytest.raises(ValueError, match=word):
        conv_forward(np.zeros((1, 1, 5, 5)), np.zeros((1, 1, 3, 3)), np.zeros(1), stride=stride, pad=pad)


def test_zero_sized_input_is_refused():
    with pytest.raises(ValueError, match="size must be an integer >= 1, got 0"):
        conv_forward(np.zeros((1, 1, 0, 5)), np.zeros((1, 1, 1, 1)), np.zeros(1))


def test_wrong_bias_shape_names_the_shapes():
    with pytest.raises(ValueError) as error:
        conv_forward(np.zeros((1, 2, 5, 5)), np.zeros((3, 2, 3, 3)), np.zeros(2))
    assert "b must have shape (3,), got (2,)" in str(error.value)


@pytest.mark.parametrize("x_shape, w_shape, word", [
    ((2, 5, 5), (1, 2, 3, 3), "x must have shape (N, C, H, W), got shape (2, 5, 5)"),
    ((1, 2, 5, 5), (2, 3, 3), "w must have shape (F, C, KH, KW), got shape (2, 3, 3)"),
])
def test_wrong_number_of_dimensions(x_shape, w_shape, word):
    with pytest.raises(ValueError) as error:
        conv_forward(np.zeros(x_shape), np.zeros(w_shape), np.zeros(1))
    assert word in str(error.value)


def test_integer_input_is_refused():
    with pytest.raises(ValueError, match="floating-point.*int"):
        conv_forward(np.zeros((1, 1, 5, 5), dtype=np.int64), np.zeros((1, 1, 3, 3)), np.zeros(1))
    with pytest.raises(ValueError, match="floating-point.*uint8"):
        conv_forward_naive(np.zeros((1, 1, 5, 5), dtype=np.uint8), np.zeros((1, 1, 3, 3)), np.zeros(1))


@given(st.integers(1, 4), st.integers(0, 3))
def test_kernel_too_large_always_raises(excess, pad):
    # built to be invalid: kernel = padded size + excess
    size = 3
    with pytest.raises(ValueError, match="larger than the padded input"):
        conv_forward(np.zeros((1, 1, size, size)), np.zeros((1, 1, size + 2 * pad + excess, 1)), np.zeros(1), pad=pad)


def test_backward_without_the_input_gradient_gives_the_same_parameter_gradients(rng):
    x = rng.standard_normal((5, 3, 9, 8)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    out, cache = conv_forward(x, w, b, stride=2, pad=1)
    dout = rng.standard_normal(out.shape).astype(np.float32)
    dx, dw, db = conv_backward(dout, cache)
    none, dw_only, db_only = conv_backward(dout, cache, input_grad=False)
    assert none is None and dx is not None
    np.testing.assert_array_equal(dw_only, dw)
    np.testing.assert_array_equal(db_only, db)


def test_a_net_skips_its_input_gradient_only_inside_the_block(rng):
    from layers.modules import without_input_gradient
    from nets import ONet, PNet

    for net in (PNet(landmarks=True), ONet()):
        x = rng.standard_normal((2, 3, net.input_size, net.input_size)).astype(np.float32)
        douts = {name: np.ones_like(v) for name, v in net.eval().forward(x).items()}  # eval: no dropout
        full = net.backward(douts)
        grads = [p.grad.copy() for p in net.parameters()]
        with without_input_gradient(net):
            net.forward(x)
            assert net.backward(douts) is None
        for before, p in zip(grads, net.parameters()):
            np.testing.assert_array_equal(before, p.grad)
        net.forward(x)
        assert net.backward(douts).shape == full.shape == x.shape
