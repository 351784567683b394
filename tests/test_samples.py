"""Sample generation: face windows, jitter that stays on the face, negatives that stay off it,
crops, the gray/colour matching, and the sample sets built from the data kit."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.detection.boxes import pairwise_overlap
from pipeline.training.samples import (NEGATIVE_IOU, POSITIVE_IOU, cut, face_window, jitter_windows, match_colour,
                              random_windows, to_gray, windows_away_from)

box_st = st.tuples(st.floats(0, 40), st.floats(0, 40), st.floats(12, 60), st.floats(0.7, 1.5)).map(
    lambda t: np.array([[t[0], t[1], t[0] + t[2], t[1] + t[2] * t[3]]]))


@given(box_st)
def test_face_window_is_the_square_of_the_same_area_and_centre(box):
    window = face_window(box)[0]
    w, h = box[0, 2] - box[0, 0], box[0, 3] - box[0, 1]
    side = window[2] - window[0]
    assert side == pytest.approx(window[3] - window[1])
    assert side * side == pytest.approx(w * h)
    assert (window[0] + window[2]) / 2 == pytest.approx((box[0, 0] + box[0, 2]) / 2)


@given(box_st, st.integers(0, 2**31 - 1))
def test_jittered_windows_stay_on_the_face(box, seed):
    window = face_window(box)
    moved, index = jitter_windows(np.random.default_rng(seed), window, 20)
    assert len(moved) == len(index) and np.all(index == 0)
    assert np.all(pairwise_overlap(moved, window)[:, 0] >= POSITIVE_IOU)


@given(box_st, st.integers(0, 2**31 - 1))
def test_negative_windows_stay_off_the_face(box, seed):
    window = face_window(box)[0]
    away = windows_away_from(np.random.default_rng(seed), window, 80, 80, 10)
    assert len(away) <= 10
    if len(away):
        assert np.all(pairwise_overlap(away, window[None])[:, 0] < NEGATIVE_IOU)


@given(st.integers(12, 300), st.integers(12, 300), st.integers(0, 2**31 - 1))
def test_random_windows_are_squares_inside_the_image(width, height, seed):
    boxes = random_windows(np.random.default_rng(seed), width, height, 25, min_size=12)
    assert boxes.shape == (25, 4)
    side = boxes[:, 2] - boxes[:, 0]
    np.testing.assert_allclose(side, boxes[:, 3] - boxes[:, 1])
    assert np.all(side >= 12 - 1e-9) and np.all(side <= min(width, height) + 1e-9)
    assert np.all(boxes[:, :2] >= -1e-9) and np.all(boxes[:, 2] <= width + 1e-9) and np.all(boxes[:, 3] <= height + 1e-9)


def test_random_windows_of_a_too_small_image_are_none():
    assert random_windows(np.random.default_rng(0), 10, 50, 5, min_size=12).shape == (0, 4)


def test_cut_at_the_box_size_is_the_plain_crop(rng):
    image = rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)
    patches, kept = cut(image, np.array([[5.0, 7.0, 17.0, 19.0], [100.0, 100.0, 120.0, 120.0]]), 12)
    assert kept.tolist() == [0]  # the second box lies outside the image
    np.testing.assert_array_equal(patches[0], image[7:19, 5:17])


def test_gray_and_colour_matching(rng):
    patches = rng.integers(0, 256, (400, 4, 4, 3), dtype=np.uint8)
    gray = to_gray(patches)
    assert np.all(gray[..., 0] == gray[..., 1]) and np.all(gray[..., 1] == gray[..., 2])
    mixed = match_colour(np.random.default_rng(1), patches, 0.75)
    is_gray = np.all(mixed[..., 0] == mixed[..., 2], axis=(1, 2))
    assert 0.65 < is_gray.mean() < 0.85
    assert mixed.dtype == np.uint8 and mixed.shape == patches.shape
