"""Calibration patterns: the index formula, the correction undoing the perturbation, the averaged
correction, and mirroring."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.detection.calibration import (NUM_PATTERNS, PATTERNS, SCALES, SHIFTS, calibrate, correct_boxes, mean_patterns,
                                  mirrored_patterns, perturb_boxes)
from tolerances import REFERENCE_F64

boxes_st = st.tuples(st.floats(-50, 50), st.floats(-50, 50), st.floats(5, 200), st.floats(0.5, 2.0)).map(
    lambda t: np.array([[t[0], t[1], t[0] + t[2], t[1] + t[2] * t[3]]]))


def test_pattern_table_follows_the_index_formula():
    assert PATTERNS.shape == (NUM_PATTERNS, 3) == (45, 3)
    for i_s, s in enumerate(SCALES):
        for i_x, x in enumerate(SHIFTS):
            for i_y, y in enumerate(SHIFTS):
                assert tuple(PATTERNS[9 * i_s + 3 * i_x + i_y]) == (s, x, y)


@given(boxes_st, st.integers(0, NUM_PATTERNS - 1))
def test_correction_gives_the_face_box_back(box, n):
    crop = perturb_boxes(box, np.array([n]))
    np.testing.assert_allclose(correct_boxes(crop, np.array([n])), box, atol=REFERENCE_F64 * 1e3)


def test_perturbation_moves_and_scales_as_documented():
    box = np.array([[10.0, 20.0, 110.0, 220.0]])  # w 100, h 200
    n = 9 * 4 + 3 * 2 + 0  # s = 1.21, x = +0.17, y = -0.17
    np.testing.assert_allclose(perturb_boxes(box, np.array([n])), [[27.0, -14.0, 27.0 + 121.0, -14.0 + 242.0]])


def test_calibrate_averages_the_patterns_above_the_threshold():
    box = np.array([[0.0, 0.0, 100.0, 100.0]])
    probs = np.zeros((1, NUM_PATTERNS))
    a, b = 9 * 0 + 3 * 0 + 1, 9 * 4 + 3 * 2 + 1  # (0.83, -0.17, 0) and (1.21, 0.17, 0)
    probs[0, [a, b]] = 0.4
    probs[0, 5] = 0.05  # under the threshold: ignored
    mean, passed = mean_patterns(probs)
    np.testing.assert_allclose(mean, [[(0.83 + 1.21) / 2, 0.0, 0.0]])
    assert passed.tolist() == [True]
    np.testing.assert_allclose(calibrate(box, probs), correct_boxes(box, mean))


def test_calibrate_leaves_a_window_alone_when_no_pattern_is_sure():
    box = np.array([[3.0, 4.0, 50.0, 51.0]])
    probs = np.full((1, NUM_PATTERNS), 1.0 / NUM_PATTERNS)
    np.testing.assert_array_equal(calibrate(box, probs), box)


def test_mirroring_negates_the_x_shift_only():
    m = mirrored_patterns()
    np.testing.assert_array_equal(m[m], np.arange(NUM_PATTERNS))
    np.testing.assert_allclose(PATTERNS[m], PATTERNS * [1, -1, 1])


def test_bad_pattern_indices_are_refused():
    with pytest.raises(ValueError, match=r"\[0, 45\)"):
        perturb_boxes(np.zeros((1, 4)) + [0, 0, 1, 1], np.array([45]))
    with pytest.raises(ValueError, match="shape"):
        correct_boxes(np.zeros((2, 4)), np.array([1]))
