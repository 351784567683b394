"""Tests for pipeline.detection.pyramid: the scales scanned by P-Net and the resized levels."""

import numpy as np
import pytest

from pipeline.detection.pyramid import (
    DEFAULT_FACTOR,
    DEFAULT_MIN_FACE,
    PNET_WINDOW,
    image_pyramid,
    pyramid_scales,
    scaled_size,
)
from pipeline.detection.resize import resize_area


def test_vga_image_has_ten_scales():
    # the reference MTCNN's pyramid: 640 x 480 with min face 20 -> m = 0.6, scales 0.6 * 0.709**k, k = 0..9
    scales = pyramid_scales(480, 640)
    assert len(scales) == 10
    assert scales[0] == 0.6
    np.testing.assert_allclose(scales, 0.6 * DEFAULT_FACTOR ** np.arange(10), rtol=1e-12)
    # the last level's shorter side is still at least one window
    assert 480 * scales[-1] >= PNET_WINDOW > 480 * scales[-1] * DEFAULT_FACTOR


def test_defaults():
    assert (PNET_WINDOW, DEFAULT_FACTOR, DEFAULT_MIN_FACE) == (12, 0.709, 20)


def test_small_images_give_no_scales():
    assert pyramid_scales(11, 100, min_face_size=12) == []
    assert pyramid_scales(5, 5) == []
    # exactly one window: one scale
    assert pyramid_scales(12, 30, min_face_size=12) == [1.0]


def test_shorter_side_decides():
    assert pyramid_scales(480, 640) == pyramid_scales(640, 480)


def test_smaller_min_face_means_more_and_larger_scales():
    fine, coarse = pyramid_scales(480, 640, min_face_size=12), pyramid_scales(480, 640, min_face_size=40)
    assert fine[0] == 1.0 and coarse[0] == 0.3
    assert len(fine) > len(coarse)


def test_scaled_size_uses_the_reference_rounding():
    assert scaled_size(480, 640, 0.6) == (289, 385)  # 288 + 1 and 384 + 1: whole numbers gain a pixel
    assert scaled_size(100, 50, 0.35) == (36, 18)  # int(35 + 1), int(17.5 + 1)
    assert scaled_size(7, 7, 0.01) == (1, 1)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(min_face_size=0), "min_face_size"),
        (dict(factor=1.0), "factor"),
        (dict(factor=0.0), "factor"),
        (dict(window=0), "window"),
    ],
)
def test_pyramid_scales_rejects_bad_parameters(kwargs, message):
    with pytest.raises(ValueError, match=message):
        pyramid_scales(100, 100, **kwargs)


def test_pyramid_scales_rejects_empty_image():
    with pytest.raises(ValueError, match="height"):
        pyramid_scales(0, 100)


def test_image_pyramid_levels():
    image = np.random.default_rng(0).uniform(0, 255, size=(3, 60, 80)).astype(np.float32)
    scales = pyramid_scales(60, 80)
    levels = list(image_pyramid(image, scales))
    assert [scale for scale, _ in levels] == scales
    for scale, level in levels:
        assert level.dtype == np.float32
        assert level.shape == (3, *scaled_size(60, 80, scale))
        np.testing.assert_array_equal(level, resize_area(image, *scaled_size(60, 80, scale)))


def test_image_pyramid_without_scales_is_empty():
    assert list(image_pyramid(np.zeros((3, 8, 8), dtype=np.float32), [])) == []


def test_image_pyramid_checks_input_at_the_call():
    with pytest.raises(ValueError, match="float"):
        image_pyramid(np.zeros((3, 8, 8), dtype=np.uint8), [0.5])
    with pytest.raises(ValueError, match="shape"):
        image_pyramid(np.zeros((8, 8), dtype=np.float32), [0.5])
    with pytest.raises(ValueError, match="scale"):
        image_pyramid(np.zeros((3, 8, 8), dtype=np.float32), [-0.5])
