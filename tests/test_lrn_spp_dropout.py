"""LRN, spatial pyramid pooling and dropout: references by loops, gradient checks, shapes, dtype,
layout and errors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from layers import (dropout_backward, dropout_forward, lrn_backward, lrn_forward, maxpool_forward, spp_backward,
                    spp_bins, spp_forward)
from layers.gradcheck import assert_gradients_ok, check_op
from strategies import distinct_arrays, distinct_values, random_values
from tolerances import DROPOUT_RATE_10K, EXACT, FLOAT32_FORWARD, LAYOUT_F64, REFERENCE_F64, assert_close

# ------------------------------------------------------------------------ LRN

# alpha large enough that the normalization really bends the output (Caffe's 1e-4 would make
# LRN nearly the identity and the checks below nearly vacuous)
LRN_HYPER = dict(alpha=0.8, beta=0.75, k=2.0)


def lrn_reference(x, size, alpha, beta, k):
    """Caffe's across-channel LRN written as a loop over channels."""
    C, half = x.shape[1], (size - 1) // 2
    out = np.empty_like(x)
    for c in range(C):
        lo, hi = max(0, c - half), min(C - 1, c + half)
        scale = k + (alpha / size) * np.sum(x[:, lo : hi + 1] ** 2, axis=1)
        out[:, c] = x[:, c] * scale ** (-beta)
    return out


@pytest.mark.parametrize("shape, size", [((2, 7, 3, 3), 5), ((1, 4, 2, 3), 3), ((1, 3, 2, 2), 5), ((2, 5, 1, 1), 1)])
def test_lrn_matches_the_loop_reference(rng, shape, size):
    x = random_values(shape, rng)
    out, _ = lrn_forward(x, size=size, **LRN_HYPER)
    assert_close(out, lrn_reference(x, size, **LRN_HYPER), REFERENCE_F64)


def test_lrn_with_caffe_defaults_matches_the_reference(rng):
    x = random_values((2, 8, 3, 3), rng) * 20  # Cascade-CNN 48-net: size 9, alpha 1e-4, beta 0.75
    assert_close(lrn_forward(x, size=9)[0], lrn_reference(x, 9, 1e-4, 0.75, 1.0), REFERENCE_F64)


@pytest.mark.parametrize("C, size", [(2, 7), (3, 9), (4, 11)])
def test_lrn_window_wider_than_twice_the_channels(rng, C, size):
    # regression: with half-window > C the channel-window sum used to slice with a negative end
    # (wrapping around) and numpy raised a broadcasting ValueError
    x = random_values((1, C, 2, 2), rng)
    out, _ = lrn_forward(x, size=size, **LRN_HYPER)
    assert_close(out, lrn_reference(x, size, **LRN_HYPER), REFERENCE_F64)


@pytest.mark.parametrize("shape, size", [((2, 7, 2, 3), 5), ((1, 4, 3, 3), 3), ((2, 3, 2, 2), 5)])
def test_lrn_gradcheck_full(rng, shape, size):
    assert_gradients_ok(check_op("lrn", lrn_forward, lrn_backward, {"x": random_values(shape, rng)},
                                 hyper=dict(size=size, **LRN_HYPER), seed=8))


def test_lrn_gradcheck_direction_larger(rng):
    x = random_values((4, 64, 6, 6), rng)
    for seed in range(2):
        assert_gradients_ok(check_op("lrn", lrn_forward, lrn_backward, {"x": x}, hyper=dict(size=9, **LRN_HYPER),
                                     full=False, seed=seed))


@pytest.mark.parametrize("size", [0, 2, 4, -3])
def test_lrn_size_must_be_positive_and_odd(size):
    with pytest.raises(ValueError, match=f"positive odd number, got {size}"):
        lrn_forward(np.ones((1, 5, 2, 2)), size=size)


def test_lrn_bad_input():
    with pytest.raises(ValueError, match=r"\(N, C, H, W\), got shape \(5, 2, 2\)"):
        lrn_forward(np.ones((5, 2, 2)))
    with pytest.raises(ValueError, match="floating-point.*int"):
        lrn_forward(np.ones((1, 5, 2, 2), dtype=np.int64))


# ------------------------------------------------------------------------ SPP


def spp_reference(x, levels):
    """Max over every bin by loops, concatenated level by level in (c, row bin, column bin) order."""
    N, C, H, W = x.shape
    parts = []
    for n in levels:
        level = np.empty((N, C, n, n))
        for i, (r0, r1) in enumerate(spp_bins(H, n)):
            for j, (c0, c1) in enumerate(spp_bins(W, n)):
                level[:, :, i, j] = x[:, :, r0:r1, c0:c1].max(axis=(2, 3))
        parts.append(level.reshape(N, -1))
    return np.concatenate(parts, axis=1)


def test_spp_bins_hand_values():
    assert spp_bins(13, 3) == [(0, 5), (4, 9), (8, 13)]  # SPPNet: adjacent bins share a cell
    assert spp_bins(8, 4) == [(0, 2), (2, 4), (4, 6), (6, 8)]
    assert spp_bins(1, 4) == [(0, 1)] * 4  # a map smaller than the level: every bin is the one cell
    assert spp_bins(3, 4) == [(0, 1), (0, 2), (1, 3), (2, 3)]


@given(st.integers(1, 30), st.integers(1, 6))
def test_spp_bins_are_nonempty_and_cover_the_axis(length, n):
    bins = spp_bins(length, n)
    assert len(bins) == n
    assert bins[0][0] == 0 and bins[-1][1] == length
    for (start, end), (next_start, _) in zip(bins, bins[1:] + [(length, None)]):
        assert 0 <= start < end <= length  # non-empty
        assert next_start <= end  # no cell falls between two bins


SPP_MAPS = [(1, 1), (2, 3), (3, 3), (5, 7), (6, 6), (8, 8), (4, 1)]


@pytest.mark.parametrize("levels", [(4, 2, 1), (3, 2, 1)])
@pytest.mark.parametrize("H, W", SPP_MAPS)
def test_spp_gradcheck_full(rng, levels, H, W):
    x = distinct_values((2, 2, H, W), rng)  # no ties inside any bin
    out, _ = spp_forward(x, levels)
    assert_close(out, spp_reference(x, levels), EXACT)
    assert_gradients_ok(check_op("spp", spp_forward, spp_backward, {"x": x}, hyper=dict(levels=levels), seed=9))


def test_spp_gradcheck_direction_larger(rng):
    x = distinct_values((4, 16, 13, 11), rng)
    for seed in range(2):
        assert_gradients_ok(check_op("spp", spp_forward, spp_backward, {"x": x}, hyper=dict(levels=(4, 2, 1)),
                                     full=False, seed=seed))


@st.composite
def spp_case(draw):
    N, C = draw(st.integers(1, 2)), draw(st.integers(1, 3))
    H, W = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    levels = draw(st.sampled_from([(4, 2, 1), (3, 2, 1), (1,), (2, 5)]))
    return draw(distinct_arrays((N, C, H, W))), levels


@given(spp_case())
def test_spp_output_shape_and_values_for_any_map(case):
    x, levels = case
    N, C = x.shape[:2]
    out, cache = spp_forward(x, levels)
    assert out.shape == (N, C * sum(n * n for n in levels))
    assert_close(out, spp_reference(x, levels), EXACT)
    assert spp_backward(np.ones_like(out), cache).shape == x.shape


def test_spp_on_divisible_maps_is_max_pooling(rng):
    # on an 8x8 map, level 4 is a 2/2 max pool, level 2 a 4/4 pool, level 1 the global max
    x = distinct_values((2, 3, 8, 8), rng)
    out, _ = spp_forward(x, (4, 2, 1))
    expected = np.concatenate([maxpool_forward(x, 2, 2)[0].reshape(2, -1), maxpool_forward(x, 4, 4)[0].reshape(2, -1),
                               x.max(axis=(2, 3))], axis=1)
    assert_close(out, expected, EXACT)


def test_spp_float32_and_non_contiguous(rng):
    x = distinct_values((2, 3, 7, 5), rng, dtype=np.float32)
    out, cache = spp_forward(x)
    dx = spp_backward(random_values(out.shape, rng, np.float32), cache)
    assert out.dtype == np.float32 and dx.dtype == np.float32
    base = distinct_values((2, 3, 10, 5), rng)
    for x in (base[:, :, ::2], base.transpose(0, 1, 3, 2), base[:, ::-1]):
        out, cache = spp_forward(x, (3, 2, 1))
        ref, ref_cache = spp_forward(np.ascontiguousarray(x), (3, 2, 1))
        assert_close(out, ref, EXACT)
        dout = random_values(out.shape[::-1], rng).T
        assert_close(spp_backward(dout, cache), spp_backward(np.ascontiguousarray(dout), ref_cache), EXACT)


def test_spp_bad_input():
    with pytest.raises(ValueError, match=r"\(N, C, H, W\), got shape \(3, 4\)"):
        spp_forward(np.ones((3, 4)))
    with pytest.raises(ValueError, match="floating-point.*int"):
        spp_forward(np.ones((1, 1, 4, 4), dtype=np.int8))
    with pytest.raises(ValueError, match="n >= 1"):
        spp_forward(np.ones((1, 1, 4, 4)), levels=(2, 0))


# ------------------------------------------------------------------------ dropout


def training_dropout(p, seed):
    """A dropout forward that draws the same mask on every call (as a gradient check needs)."""
    def forward(x):
        return dropout_forward(x, p, training=True, rng=np.random.default_rng(seed))
    return forward


@pytest.mark.parametrize("shape, p", [((3, 5), 0.5), ((2, 3, 3, 2), 0.25), ((4, 4), 0.0)])
def test_dropout_gradcheck_full(rng, shape, p):
    x = random_values(shape, rng)
    assert_gradients_ok(check_op("dropout", training_dropout(p, 10), dropout_backward, {"x": x}, seed=11))


def test_dropout_keeps_and_scales(rng):
    x = random_values((100, 100), rng)
    p = 0.3
    out, mask = dropout_forward(x, p, training=True, rng=np.random.default_rng(12))
    kept = out != 0
    assert_close(out[kept], x[kept] / (1 - p), REFERENCE_F64, "survivors scaled by 1/(1-p)")
    assert abs((~kept).mean() - p) < DROPOUT_RATE_10K  # 10,000 units dropped with probability p
    dout = random_values(x.shape, rng)
    assert_close(dropout_backward(dout, mask), np.where(kept, dout / (1 - p), 0.0), REFERENCE_F64)
    # same seed, same mask: runs are reproducible
    assert_close(dropout_forward(x, p, training=True, rng=np.random.default_rng(12))[0], out, EXACT)


@pytest.mark.parametrize("p", [0.0, 0.5, 0.9])
def test_dropout_eval_is_the_identity(rng, p):
    x = random_values((3, 4, 2, 2), rng)
    out, cache = dropout_forward(x, p, training=False)
    assert_close(out, x, EXACT)
    dout = random_values(x.shape, rng)
    assert_close(dropout_backward(dout, cache), dout, EXACT)


def test_dropout_float32_and_non_contiguous(rng):
    x = random_values((4, 6, 3, 3), rng, np.float32)
    out, mask = dropout_forward(x, 0.5, training=True, rng=np.random.default_rng(13))
    dx = dropout_backward(np.ones_like(out), mask)
    assert out.dtype == np.float32 and dx.dtype == np.float32
    assert_close(out, x.astype(np.float64) * np.where(out != 0, 2.0, 0.0), FLOAT32_FORWARD)
    view = random_values((6, 8, 5), rng).transpose(2, 0, 1)[:, ::2]
    out, _ = dropout_forward(view, 0.5, training=True, rng=np.random.default_rng(14))
    ref, _ = dropout_forward(np.ascontiguousarray(view), 0.5, training=True, rng=np.random.default_rng(14))
    assert_close(out, ref, LAYOUT_F64)


@pytest.mark.parametrize("p", [1.0, -0.1, 1.5])
def test_dropout_p_out_of_range(p):
    with pytest.raises(ValueError, match=r"\[0, 1\), got " + str(p)):
        dropout_forward(np.ones(3), p, training=True, rng=np.random.default_rng(0))


def test_dropout_needs_an_rng_when_training():
    with pytest.raises(ValueError, match="rng"):
        dropout_forward(np.ones(3), 0.5, training=True)
    with pytest.raises(ValueError, match="floating-point.*int"):
        dropout_forward(np.ones(3, dtype=np.int64), 0.5, training=False)
