"""Tests for pipeline.detection.resize: area averaging as PyTorch's interpolate(mode="area")."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.detection.resize import area_weights, resize_area, resize_area_naive

sizes = st.integers(1, 9)


def test_four_by_four_to_two_by_two_is_block_means():
    x = np.arange(16, dtype=np.float64).reshape(4, 4)
    expected = np.array(
        [
            [(0 + 1 + 4 + 5) / 4, (2 + 3 + 6 + 7) / 4],
            [(8 + 9 + 12 + 13) / 4, (10 + 11 + 14 + 15) / 4],
        ]
    )
    np.testing.assert_allclose(resize_area(x, 2, 2), expected, rtol=1e-12)


def test_five_to_three_uses_overlapping_windows():
    # windows [floor(i*5/3), ceil((i+1)*5/3)) = [0, 2), [1, 4), [3, 5)
    expected = np.array(
        [
            [1 / 2, 1 / 2, 0, 0, 0],
            [0, 1 / 3, 1 / 3, 1 / 3, 0],
            [0, 0, 0, 1 / 2, 1 / 2],
        ]
    )
    np.testing.assert_allclose(area_weights(5, 3), expected, rtol=1e-15)
    x = np.array([[1.0, 2, 4, 8, 16]])
    np.testing.assert_allclose(resize_area(x, 1, 3), [[1.5, 14 / 3, 12]], rtol=1e-12)


def test_upscaling_two_to_three():
    # windows [0, 1), [0, 2), [1, 2): the middle output averages both inputs
    np.testing.assert_allclose(resize_area(np.array([[2.0, 6.0]]), 1, 3), [[2, 4, 6]], rtol=1e-12)


def test_same_size_is_identity():
    x = np.random.default_rng(0).standard_normal((3, 5, 7))
    np.testing.assert_array_equal(resize_area(x, 5, 7), x)


def test_area_weights_rows_sum_to_one_and_are_read_only():
    weights = area_weights(11, 4)
    assert weights.shape == (4, 11)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, rtol=1e-12)
    with pytest.raises(ValueError):
        weights[0, 0] = 5.0


@settings(max_examples=60, deadline=None)
@given(sizes, sizes, sizes, sizes, st.integers(1, 3))
def test_fast_equals_naive(height, width, out_h, out_w, channels):
    x = np.random.default_rng(height * 1000 + width * 100 + out_h * 10 + out_w).standard_normal(
        (channels, height, width)
    )
    fast, naive = resize_area(x, out_h, out_w), resize_area_naive(x, out_h, out_w)
    np.testing.assert_allclose(fast, naive, rtol=1e-12, atol=1e-12)


@settings(max_examples=60, deadline=None)
@given(sizes, sizes, sizes, sizes, st.integers(1, 5), st.integers(1, 5))
def test_banded_multiply_equals_naive_for_any_band(height, width, out_h, out_w, row_band, col_band):
    # bands of 1 to 5 outputs on small images: every way a band can start, end and overlap
    import pipeline.detection.resize as resize

    x = np.random.default_rng(height * 1000 + width * 100 + out_h * 10 + out_w).standard_normal((2, height, width))
    saved = resize.ROW_SPAN, resize.ROW_BAND_MAX, resize.COL_BAND, resize.DENSE_MAX_ENTRIES
    resize.ROW_SPAN, resize.ROW_BAND_MAX, resize.COL_BAND, resize.DENSE_MAX_ENTRIES = 10**9, row_band, col_band, 0
    try:
        fast = resize_area(x, out_h, out_w)
    finally:
        resize.ROW_SPAN, resize.ROW_BAND_MAX, resize.COL_BAND, resize.DENSE_MAX_ENTRIES = saved
    np.testing.assert_allclose(fast, resize_area_naive(x, out_h, out_w), rtol=1e-12, atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(st.integers(12, 400), st.integers(12, 400), st.floats(12, 60), st.integers(0, 2**16))
def test_a_whole_pyramid_at_once_equals_each_level_alone(height, width, min_face, seed):
    """resize_area_pyramid runs the very multiplies of resize_area, in another order."""
    from pipeline.detection.pyramid import pyramid_scales, scaled_size
    from pipeline.detection.resize import resize_area_pyramid

    x = np.random.default_rng(seed).uniform(0, 255, (3, height, width)).astype(np.float32)
    sizes = [scaled_size(height, width, scale) for scale in pyramid_scales(height, width, min_face)]
    levels = resize_area_pyramid(x, sizes)
    assert len(levels) == len(sizes)
    for level, (h, w) in zip(levels, sizes):
        np.testing.assert_array_equal(level, resize_area(x, h, w))


def test_a_pyramid_checks_its_sizes_and_takes_numpy_numbers():
    from pipeline.detection.resize import resize_area_pyramid

    x = np.random.default_rng(0).uniform(0, 255, (3, 300, 400)).astype(np.float32)
    with pytest.raises(ValueError, match="h must be"):
        resize_area_pyramid(x, [(0, 5)])
    whole_numbers = resize_area_pyramid(x, [(np.int64(90), 120.0)])[0]  # sizes as NumPy ints or whole floats
    np.testing.assert_array_equal(whole_numbers, resize_area(x, 90, 120))


def test_keeps_float32_and_leading_axes():
    x = np.random.default_rng(1).uniform(0, 255, size=(2, 3, 13, 17)).astype(np.float32)
    out = resize_area(x, 6, 5)
    assert out.shape == (2, 3, 6, 5) and out.dtype == np.float32
    # float32 rounding only: relative error a few float32 epsilons
    np.testing.assert_allclose(out, resize_area_naive(x.astype(np.float64), 6, 5), rtol=1e-5)


def test_constant_image_stays_constant():
    x = np.full((3, 17, 23), 42.0, dtype=np.float32)
    np.testing.assert_allclose(resize_area(x, 5, 9), 42.0, rtol=1e-6)
    np.testing.assert_allclose(resize_area(x, 30, 40), 42.0, rtol=1e-6)


@pytest.mark.parametrize(
    "shape, out_h, out_w, message",
    [
        ((5,), 2, 2, "shape"),
        ((0, 5), 2, 2, "H, W"),
        ((5, 5), 0, 2, "out_h"),
        ((5, 5), 2, -1, "out_w"),
        ((5, 5), 2.5, 2, "out_h"),
    ],
)
def test_rejects_bad_sizes(shape, out_h, out_w, message):
    with pytest.raises(ValueError, match=message):
        resize_area(np.zeros(shape), out_h, out_w)


def test_rejects_integer_images():
    with pytest.raises(ValueError, match="float"):
        resize_area(np.zeros((4, 4), dtype=np.uint8), 2, 2)


@pytest.mark.parametrize("in_hw, out_hw", [((300, 97), (70, 65)), ((90, 130), (88, 129)), ((150, 240), (260, 300))])
def test_large_outputs_use_the_banded_path_and_equal_naive(in_hw, out_hw):
    # large averaging matrices are multiplied band by band (pyramid levels); check it too
    from pipeline.detection.resize import DENSE_MAX_ENTRIES

    assert max(a * b for a, b in zip(in_hw, out_hw)) > DENSE_MAX_ENTRIES
    x = np.random.default_rng(0).uniform(0, 255, (2, *in_hw))
    np.testing.assert_allclose(resize_area(x, *out_hw), resize_area_naive(x, *out_hw), rtol=1e-12, atol=1e-12)
