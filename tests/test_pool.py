"""Max pooling (floor and Caffe ceil mode): hand examples, gradient checks, fast == naive, sizes,
dtype, layout, errors. Inputs are shuffled aranges, so no window has a tie."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from layers import batch_chunks, conv_output_size, maxpool_backward, maxpool_backward_naive, maxpool_forward, maxpool_forward_naive
from layers.gradcheck import assert_gradients_ok, check_op
from strategies import distinct_arrays, distinct_values, pool_geometry, random_values
from tolerances import EXACT, FAST_VS_NAIVE_F64, assert_close

IMPLEMENTATIONS = [(maxpool_forward, maxpool_backward), (maxpool_forward_naive, maxpool_backward_naive)]


# ------------------------------------------------------------------------ numbers you can check


def test_hand_example_floor_and_ceil():
    x = np.array([[1.0, 5.0, 2.0],
                  [4.0, 3.0, 9.0],
                  [7.0, 8.0, 6.0]]).reshape(1, 1, 3, 3)
    floor_out, _ = maxpool_forward(x, size=2, stride=2)
    assert_close(floor_out, np.array([[[[5.0]]]]), EXACT)
    # ceil mode: the right column and bottom row get their own (clipped) windows
    for forward, _ in IMPLEMENTATIONS:
        ceil_out, _ = forward(x, size=2, stride=2, ceil_mode=True)
        assert_close(ceil_out, np.array([[[[5.0, 9.0], [8.0, 6.0]]]]), EXACT, forward.__name__)


def test_hand_example_overlapping_windows_add_gradients():
    # 3x3 windows with stride 1 on a 4x4 map whose maximum (16) sits in the middle:
    # it wins all four windows, so it receives the sum of their gradients.
    x = np.arange(1.0, 17.0).reshape(1, 1, 4, 4)
    x[0, 0, 1, 2], x[0, 0, 3, 3] = 16.0, 7.0  # swap 7 and 16
    for forward, backward in IMPLEMENTATIONS:
        out, cache = forward(x, size=3, stride=1)
        assert_close(out, np.full((1, 1, 2, 2), 16.0), EXACT)
        dx = backward(np.array([[[[1.0, 2.0], [3.0, 4.0]]]]), cache)
        expected = np.zeros_like(x)
        expected[0, 0, 1, 2] = 10.0
        assert_close(dx, expected, EXACT, backward.__name__)


def test_ceil_mode_padding_never_wins_on_negative_inputs():
    # the overhanging windows are padded with -inf; an all-negative map must still give its own values
    x = -1.0 - np.arange(25.0).reshape(1, 1, 5, 5)
    out, cache = maxpool_forward(x, size=2, stride=2, ceil_mode=True)
    assert out.shape == (1, 1, 3, 3)
    assert_close(out[0, 0, 2, 2], x[0, 0, 4, 4], EXACT)
    assert_close(out[0, 0, :, 2], x[0, 0, ::2, 4], EXACT)
    dx = maxpool_backward(np.ones_like(out), cache)
    assert dx.shape == x.shape
    # the 2/2 windows do not overlap: each sends its 1 to exactly one real pixel
    assert np.count_nonzero(dx) == out.size and set(np.unique(dx)) == {0.0, 1.0}


# ------------------------------------------------------------------------ gradient checks

GRADCHECK_CASES = [
    # x shape,    size, stride, ceil_mode  -- why
    ((2, 2, 4, 4), 2, 2, False),  # the common 2/2 pool
    ((2, 2, 5, 5), 2, 2, True),   # odd size in ceil mode: clipped last windows
    ((2, 2, 5, 5), 2, 2, False),  # odd size in floor mode: last row/column dropped
    ((1, 2, 7, 7), 3, 2, True),   # overlapping 3/2 (MTCNN), ceil
    ((1, 2, 7, 6), 3, 2, False),  # overlapping 3/2, floor, non-square map
    ((1, 2, 6, 6), 3, 2, True),   # 3/2 ceil where the last window hangs over by one
    ((1, 1, 5, 7), 3, 1, False),  # stride 1: a pixel can win up to 9 windows
    ((1, 1, 7, 5), 2, 3, True),   # stride > size: gaps between windows
]


@pytest.mark.parametrize("x_shape, size, stride, ceil_mode", GRADCHECK_CASES)
@pytest.mark.parametrize("forward, backward", IMPLEMENTATIONS, ids=["fast", "naive"])
def test_maxpool_gradcheck_full(rng, forward, backward, x_shape, size, stride, ceil_mode):
    x = distinct_values(x_shape, rng)
    results = check_op(forward.__name__, forward, backward, {"x": x},
                       hyper=dict(size=size, stride=stride, ceil_mode=ceil_mode), seed=3)
    assert_gradients_ok(results)


def test_maxpool_gradcheck_direction_larger(rng):
    x = distinct_values((4, 6, 23, 23), rng)  # an O-Net pool2-sized map
    for seed in range(3):
        assert_gradients_ok(check_op("maxpool", maxpool_forward, maxpool_backward, {"x": x},
                                     hyper=dict(size=3, stride=2, ceil_mode=True), full=False, seed=seed))


# ------------------------------------------------------------------------ fast == naive


@st.composite
def pool_case(draw):
    N, C, H, W, size, stride, ceil_mode = draw(pool_geometry())
    x = draw(distinct_arrays((N, C, H, W)))
    dout = draw(distinct_arrays((N, C, conv_output_size(H, size, stride, ceil=ceil_mode),
                                 conv_output_size(W, size, stride, ceil=ceil_mode))))
    return x, dout, size, stride, ceil_mode


@given(pool_case())
def test_fast_equals_naive_forward_and_backward(case):
    x, dout, size, stride, ceil_mode = case
    out_fast, cache_fast = maxpool_forward(x, size, stride, ceil_mode)
    out_naive, cache_naive = maxpool_forward_naive(x, size, stride, ceil_mode)
    assert_close(out_fast, out_naive, FAST_VS_NAIVE_F64, "out")
    assert_close(maxpool_backward(dout, cache_fast), maxpool_backward_naive(dout, cache_naive), FAST_VS_NAIVE_F64, "dx")
    # inference: the same maxima without the winners' positions
    out_plain, cache_plain = maxpool_forward(x, size, stride, ceil_mode, record_argmax=False)
    assert_close(out_plain, out_fast, EXACT, "out without argmax")
    assert cache_plain[1] is None
    with pytest.raises(ValueError, match="record_argmax=False"):
        maxpool_backward(dout, cache_plain)


@given(pool_geometry(), st.integers(0, 2**32 - 1))
def test_fast_and_naive_break_ties_the_same_way(geometry, seed):
    # with ties both send a window's gradient to its first maximum in row-major order
    N, C, H, W, size, stride, ceil_mode = geometry
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 3, size=(N, C, H, W)).astype(np.float64)  # many ties on purpose
    out_fast, cache_fast = maxpool_forward(x, size, stride, ceil_mode)
    out_naive, cache_naive = maxpool_forward_naive(x, size, stride, ceil_mode)
    assert_close(out_fast, out_naive, EXACT, "out")
    dout = random_values(out_fast.shape, rng)
    assert_close(maxpool_backward(dout, cache_fast), maxpool_backward_naive(dout, cache_naive), FAST_VS_NAIVE_F64, "dx")


@given(pool_geometry(), st.integers(2, 5), st.integers(0, 2**32 - 1))
def test_fast_equals_naive_one_sample_per_slice_on_two_threads(geometry, N, seed):
    # the fast kernels run on slices of the batch, on threads (layers.batch_chunks): forcing one
    # sample per slice must change nothing, ties included
    _, C, H, W, size, stride, ceil_mode = geometry
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 3, size=(N, C, H, W)).astype(np.float64)  # many ties on purpose
    with batch_chunks.slicing(chunk_bytes=1, threads=2, min_parallel_bytes=0):
        out_fast, cache_fast = maxpool_forward(x, size, stride, ceil_mode)
        dout = random_values(out_fast.shape, rng)
        dx_fast = maxpool_backward(dout, cache_fast)
    out_naive, cache_naive = maxpool_forward_naive(x, size, stride, ceil_mode)
    assert_close(out_fast, out_naive, EXACT, "out")
    assert_close(dx_fast, maxpool_backward_naive(dout, cache_naive), FAST_VS_NAIVE_F64, "dx")


@given(st.integers(1, 300), st.integers(1, 5000), st.integers(1, 4))
def test_batch_slices_cover_the_batch_once(N, bytes_per_sample, parts):
    slices = batch_chunks.batch_slices(N, bytes_per_sample, parts)
    assert [i for s in slices for i in range(N)[s]] == list(range(N))
    assert len(slices) >= min(parts, N)


@given(pool_geometry())
def test_output_shape_matches_formula(geometry):
    N, C, H, W, size, stride, ceil_mode = geometry
    x = np.zeros((N, C, H, W))
    out, cache = maxpool_forward(x, size, stride, ceil_mode)
    assert out.shape == (N, C, conv_output_size(H, size, stride, ceil=ceil_mode),
                         conv_output_size(W, size, stride, ceil=ceil_mode))
    assert maxpool_backward(np.ones_like(out), cache).shape == x.shape


@pytest.mark.parametrize("H, size, stride, expected_ceil, expected_floor", [
    (10, 2, 2, 5, 5),    # P-Net
    (22, 3, 2, 11, 10),  # R-Net pool1
    (9, 3, 2, 4, 4),     # R-Net pool2
    (46, 3, 2, 23, 22),  # O-Net pool1
    (21, 3, 2, 10, 10),  # O-Net pool2
    (8, 2, 2, 4, 4),     # O-Net pool3
    (10, 3, 2, 5, 4),    # Cascade-CNN 12-net: 12 -> conv3 -> 10 -> pool 3/2
])
def test_mtcnn_and_cascade_sizes_on_real_arrays(H, size, stride, expected_ceil, expected_floor):
    x = np.zeros((1, 1, H, H + 1))
    assert maxpool_forward(x, size, stride, ceil_mode=True)[0].shape[2] == expected_ceil
    assert maxpool_forward(x, size, stride, ceil_mode=False)[0].shape[2] == expected_floor


# ------------------------------------------------------------------------ dtype and memory layout


@pytest.mark.parametrize("forward, backward", IMPLEMENTATIONS, ids=["fast", "naive"])
def test_float32_in_float32_out(rng, forward, backward):
    x = distinct_values((2, 3, 7, 6), rng, dtype=np.float32)
    out, cache = forward(x, 3, 2, True)
    dx = backward(random_values(out.shape, rng, np.float32), cache)
    assert out.dtype == np.float32 and dx.dtype == np.float32
    assert_close(out, forward(x.astype(np.float64), 3, 2, True)[0], EXACT)  # max is exact in any dtype


@pytest.mark.parametrize("ceil_mode", [False, True])
def test_non_contiguous_inputs_give_the_contiguous_result(rng, ceil_mode):
    base = distinct_values((2, 3, 11, 8), rng)
    for name, x in {"every other row": base[:, :, ::2], "transposed H and W": base.transpose(0, 1, 3, 2),
                    "batch reversed": base[::-1]}.items():
        out, cache = maxpool_forward(x, 3, 2, ceil_mode)
        ref, ref_cache = maxpool_forward(np.ascontiguousarray(x), 3, 2, ceil_mode)
        assert_close(out, ref, EXACT, name)
        dout = random_values(out.shape[::-1], rng).T  # non-contiguous dout
        dx, dx_ref = maxpool_backward(dout, cache), maxpool_backward(np.ascontiguousarray(dout), ref_cache)
        assert_close(dx, dx_ref, EXACT, name)


# ------------------------------------------------------------------------ bad arguments


@pytest.mark.parametrize("forward", [maxpool_forward, maxpool_forward_naive])
def test_window_larger_than_input(forward):
    with pytest.raises(ValueError, match=r"kernel 3 is larger than the padded input 2"):
        forward(np.zeros((1, 1, 2, 5)), size=3, stride=1)


@pytest.mark.parametrize("size, stride, word",
                         [(0, 1, "kernel"), (-1, 1, "kernel"), (2, 0, "stride"), (2, -2, "stride")])
def test_bad_size_or_stride(size, stride, word):
    with pytest.raises(ValueError, match=word):
        maxpool_forward(np.zeros((1, 1, 4, 4)), size=size, stride=stride)


def test_wrong_rank_and_integer_input():
    with pytest.raises(ValueError, match=r"x must have shape \(N, C, H, W\), got shape \(4, 4\)"):
        maxpool_forward(np.zeros((4, 4)))
    with pytest.raises(ValueError, match="floating-point.*int"):
        maxpool_forward(np.zeros((1, 1, 4, 4), dtype=np.int32))
