"""Tests for pipeline.detection.crops: cutting boxes out of an image and resizing them."""

import numpy as np
import pytest

from pipeline.detection.crops import crop_and_resize
from pipeline.detection.resize import resize_area


@pytest.fixture
def image():
    """(3, 30, 40) float32 image with distinct values, so any misplaced pixel shows."""
    return np.random.default_rng(0).permutation(3 * 30 * 40).reshape(3, 30, 40).astype(np.float32)


def test_box_inside_equals_resize_of_the_slice(image):
    boxes = np.array([[5.6, 3.2, 25.9, 20.0]], dtype=np.float32)  # window [5, 25) x [3, 20)
    patches, kept = crop_and_resize(image, boxes, 24)
    assert patches.shape == (1, 3, 24, 24) and patches.dtype == np.float32
    np.testing.assert_array_equal(kept, [0])
    np.testing.assert_array_equal(patches[0], resize_area(image[:, 3:20, 5:25], 24, 24))


def test_box_over_the_border_is_clipped_not_padded(image):
    boxes = np.array([[-10.0, 20.0, 12.0, 45.0]], dtype=np.float32)  # window [0, 12) x [20, 30)
    patches, kept = crop_and_resize(image, boxes, 12)
    np.testing.assert_array_equal(kept, [0])
    np.testing.assert_array_equal(patches[0], resize_area(image[:, 20:30, 0:12], 12, 12))


def test_box_outside_is_dropped_and_reported(image):
    boxes = np.array(
        [
            [0.0, 0.0, 10.0, 10.0],
            [50.0, 0.0, 60.0, 10.0],  # right of the image
            [5.0, -20.0, 15.0, -1.0],  # above the image
            [2.0, 2.0, 2.5, 9.0],  # thinner than a pixel
            [30.0, 20.0, 40.0, 30.0],
        ],
        dtype=np.float32,
    )
    patches, kept = crop_and_resize(image, boxes, 6)
    assert kept.dtype == np.int64
    np.testing.assert_array_equal(kept, [0, 4])
    assert patches.shape == (2, 3, 6, 6)
    np.testing.assert_array_equal(patches[1], resize_area(image[:, 20:30, 30:40], 6, 6))


def test_zero_boxes(image):
    patches, kept = crop_and_resize(image, np.zeros((0, 4), dtype=np.float32), 48)
    assert patches.shape == (0, 3, 48, 48) and patches.dtype == np.float32
    assert kept.shape == (0,) and kept.dtype == np.int64


def test_all_boxes_outside(image):
    patches, kept = crop_and_resize(image, np.array([[100.0, 100.0, 120.0, 120.0]]), 24)
    assert patches.shape == (0, 3, 24, 24) and kept.shape == (0,)


def test_does_not_mutate_inputs(image):
    image_before = image.copy()
    boxes = np.array([[1.5, 2.5, 20.5, 21.5]], dtype=np.float32)
    boxes_before = boxes.copy()
    crop_and_resize(image, boxes, 24)
    np.testing.assert_array_equal(image, image_before)
    np.testing.assert_array_equal(boxes, boxes_before)


@pytest.mark.parametrize(
    "image_array, boxes, size, message",
    [
        (np.zeros((30, 40), dtype=np.float32), np.zeros((0, 4)), 24, "shape"),
        (np.zeros((3, 30, 40), dtype=np.uint8), np.zeros((0, 4)), 24, "float"),
        (np.zeros((3, 30, 40), dtype=np.float32), np.zeros((2, 3)), 24, "shape"),
        (np.zeros((3, 30, 40), dtype=np.float32), np.zeros((0, 4)), 0, "size"),
    ],
)
def test_rejects_bad_input(image_array, boxes, size, message):
    with pytest.raises(ValueError, match=message):
        crop_and_resize(image_array, boxes, size)


def test_a_whole_float_size_is_taken():
    image = np.random.default_rng(3).uniform(0, 255, (3, 40, 50)).astype(np.float32)
    boxes = np.array([[5, 3, 25, 20]], np.float32)
    patches, kept = crop_and_resize(image, boxes, 24.0)
    np.testing.assert_array_equal(patches, crop_and_resize(image, boxes, 24)[0])

