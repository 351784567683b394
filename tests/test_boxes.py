"""Tests for pipeline.detection.boxes: areas, overlaps, NMS, regression, squaring, crop windows."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from pipeline.detection.boxes import (
    apply_regression,
    batched_nms,
    box_area,
    crop_windows,
    iou,
    make_square,
    nms,
    nms_naive,
    nonempty_windows,
    pairwise_overlap,
)

EMPTY_BOXES = np.zeros((0, 4), dtype=np.float32)

# ---------------------------------------------------------------- strategies

coordinate = st.integers(0, 40).map(float)  # whole pixels keep hand-checkable numbers


@st.composite
def box_sets(draw, min_size=0, max_size=8):
    """(N, 4) float64 boxes with x2 > x1, y2 > y1, and (N,) distinct scores (a shuffled arange)."""
    n = draw(st.integers(min_size, max_size))
    corners = draw(arrays(np.float64, (n, 2), elements=coordinate))
    sizes = draw(arrays(np.float64, (n, 2), elements=st.integers(1, 20).map(float)))
    boxes = np.concatenate([corners, corners + sizes], axis=1)
    order = draw(st.permutations(range(n)))
    scores = (np.array(order, dtype=np.float64) + 1) / (n + 1)
    return boxes, scores


thresholds = st.sampled_from([0.0, 0.1, 0.3, 0.5, 0.7, 0.9])
modes = st.sampled_from(["union", "min"])
PROPERTY_SETTINGS = settings(max_examples=40, deadline=None)


# ---------------------------------------------------------------- area and overlap by hand


def test_box_area_has_no_plus_one():
    boxes = np.array([[0, 0, 10, 5], [2, 3, 2, 8], [5, 5, 3, 9]], dtype=np.float32)
    np.testing.assert_array_equal(box_area(boxes), [50, 0, 0])  # inverted box: 0, not negative
    assert box_area(boxes).dtype == np.float32


def test_iou_by_hand():
    box = np.array([0, 0, 10, 10], dtype=np.float64)
    others = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [0, 0, 5, 5], [20, 20, 30, 30]], dtype=np.float64)
    # half-shifted: inter 50, union 150; quarter inside: inter 25, union 100, min 25
    np.testing.assert_allclose(iou(box, others), [1, 1 / 3, 1 / 4, 0], rtol=1e-12)
    np.testing.assert_allclose(iou(box, others, mode="min"), [1, 1 / 2, 1, 0], rtol=1e-12)


def test_touching_boxes_do_not_overlap():
    # [0, 10) and [10, 20) share no pixel
    assert iou(np.array([0.0, 0, 10, 10]), np.array([[10.0, 0, 20, 10]]))[0] == 0


def test_zero_area_boxes_give_overlap_zero_not_nan():
    point = np.array([5.0, 5, 5, 5])
    boxes = np.array([[5.0, 5, 5, 5], [0, 0, 10, 10]])
    for mode in ("union", "min"):
        overlap = iou(point, boxes, mode=mode)
        np.testing.assert_array_equal(overlap, [0, 0])


def test_pairwise_overlap_matches_iou_rows():
    rng = np.random.default_rng(0)
    corners = rng.uniform(0, 50, size=(7, 2))
    a = np.concatenate([corners, corners + rng.uniform(1, 30, size=(7, 2))], axis=1)
    b = a[::-1] + 3.0
    for mode in ("union", "min"):
        table = pairwise_overlap(a, b, mode=mode)
        assert table.shape == (7, 7)
        for i in range(7):
            np.testing.assert_allclose(table[i], iou(a[i], b, mode=mode), rtol=1e-12)


def test_empty_inputs_give_empty_outputs():
    assert box_area(EMPTY_BOXES).shape == (0,)
    assert iou(np.array([0.0, 0, 1, 1]), EMPTY_BOXES).shape == (0,)
    assert pairwise_overlap(EMPTY_BOXES, np.ones((3, 4))).shape == (0, 3)
    kept = nms(EMPTY_BOXES, np.zeros(0), 0.5)
    assert kept.shape == (0,) and kept.dtype == np.int64
    kept = batched_nms(EMPTY_BOXES, np.zeros(0), np.zeros(0, dtype=int), 0.5)
    assert kept.shape == (0,) and kept.dtype == np.int64
    assert apply_regression(EMPTY_BOXES, EMPTY_BOXES).shape == (0, 4)
    assert make_square(EMPTY_BOXES).shape == (0, 4)
    windows = crop_windows(EMPTY_BOXES, 10, 10)
    assert windows.shape == (0, 4) and windows.dtype == np.int64
    assert nonempty_windows(windows).shape == (0,)


# ---------------------------------------------------------------- NMS by hand


def test_nms_by_hand():
    boxes = np.array(
        [
            [0, 0, 10, 10],  # 0: best
            [1, 0, 11, 10],  # 1: IoU with 0 is 90/110 = 0.82 -> dropped
            [20, 20, 30, 30],  # 2: separate -> kept
            [5, 0, 15, 10],  # 3: IoU with 0 is 1/3 -> kept at 0.5
        ],
        dtype=np.float32,
    )
    scores = np.array([0.9, 0.8, 0.7, 0.6], dtype=np.float32)
    np.testing.assert_array_equal(nms(boxes, scores, 0.5), [0, 2, 3])
    # at 0.3, box 3 also goes (1/3 > 0.3)
    np.testing.assert_array_equal(nms(boxes, scores, 0.3), [0, 2])


def test_nms_overlap_equal_to_threshold_survives():
    boxes = np.array([[0, 0, 10, 10], [5, 0, 15, 10]], dtype=np.float64)  # "min" overlap exactly 0.5
    np.testing.assert_array_equal(nms(boxes, np.array([0.9, 0.8]), 0.5, mode="min"), [0, 1])


def test_nms_min_mode_drops_a_box_inside_another():
    boxes = np.array([[0, 0, 20, 20], [2, 2, 6, 6]], dtype=np.float64)  # IoU 0.04, IoM 1
    scores = np.array([0.9, 0.8])
    np.testing.assert_array_equal(nms(boxes, scores, 0.5, mode="union"), [0, 1])
    np.testing.assert_array_equal(nms(boxes, scores, 0.5, mode="min"), [0])


def test_nms_ties_keep_the_lower_index():
    boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [50, 50, 60, 60]], dtype=np.float64)
    scores = np.array([0.5, 0.5, 0.9])
    np.testing.assert_array_equal(nms(boxes, scores, 0.5), [2, 0])


def test_nms_does_not_mutate_inputs():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11]], dtype=np.float32)
    scores = np.array([0.2, 0.9], dtype=np.float32)
    boxes_before, scores_before = boxes.copy(), scores.copy()
    nms(boxes, scores, 0.5)
    np.testing.assert_array_equal(boxes, boxes_before)
    np.testing.assert_array_equal(scores, scores_before)


def test_nms_sorts_unsigned_scores_correctly():
    boxes = np.array([[0, 0, 1, 1], [5, 5, 6, 6]], dtype=np.float64)
    np.testing.assert_array_equal(nms(boxes, np.array([1, 2], dtype=np.uint8), 0.5), [1, 0])


@pytest.mark.parametrize(
    "boxes, scores, threshold, mode, message",
    [
        (np.zeros((3, 5)), np.zeros(3), 0.5, "union", "shape"),
        (np.zeros(4), np.zeros(1), 0.5, "union", "shape"),
        (np.zeros((3, 4)), np.zeros(2), 0.5, "union", "scores"),
        (np.zeros((3, 4)), np.zeros(3), 1.5, "union", "threshold"),
        (np.zeros((3, 4)), np.zeros(3), -0.1, "union", "threshold"),
        (np.zeros((3, 4)), np.zeros(3), float("nan"), "union", "threshold"),
        (np.zeros((3, 4)), np.zeros(3), 0.5, "Union", "mode"),
        (np.full((1, 4), np.nan), np.zeros(1), 0.5, "union", "NaN"),
        (np.zeros((1, 4)), np.array([np.nan]), 0.5, "union", "NaN"),
    ],
)
def test_nms_rejects_bad_input(boxes, scores, threshold, mode, message):
    with pytest.raises(ValueError, match=message):
        nms(boxes, scores, threshold, mode=mode)


# ---------------------------------------------------------------- NMS properties


@PROPERTY_SETTINGS
@given(box_sets(), thresholds, modes)
def test_nms_properties(data, threshold, mode):
    boxes, scores = data
    kept = nms(boxes, scores, threshold, mode=mode)
    # a subset, without repeats, in descending score order
    assert kept.dtype == np.int64
    assert len(np.unique(kept)) == len(kept)
    assert set(kept.tolist()) <= set(range(len(boxes)))
    assert np.all(np.diff(scores[kept]) < 0)
    # the survivors do not suppress each other
    overlap = pairwise_overlap(boxes[kept], boxes[kept], mode=mode)
    np.fill_diagonal(overlap, 0)
    assert np.all(overlap <= threshold)
    # every dropped box is suppressed by a kept box with a higher score
    dropped = np.setdiff1d(np.arange(len(boxes)), kept)
    for index in dropped:
        by_better_kept = iou(boxes[index], boxes[kept], mode=mode)[scores[kept] >= scores[index]]
        assert np.any(by_better_kept > threshold)


@settings(max_examples=60, deadline=None)
@given(box_sets(max_size=40), thresholds, modes, st.integers(1, 9), st.booleans())
def test_nms_in_blocks_equals_nms_naive(data, threshold, mode, block, tied):
    # blocks of 1 to 9 boxes, so that kept boxes suppress across many block boundaries
    import pipeline.detection.boxes as box_module

    boxes, scores = data
    if tied:
        scores = np.round(scores * 3) / 3  # many equal scores: ties go by index
    saved = box_module.NMS_BLOCK
    box_module.NMS_BLOCK = block
    try:
        kept = nms(boxes, scores, threshold, mode=mode)
    finally:
        box_module.NMS_BLOCK = saved
    np.testing.assert_array_equal(kept, nms_naive(boxes, scores, threshold, mode=mode))
    assert kept.dtype == np.int64


@PROPERTY_SETTINGS
@given(box_sets(), modes)
def test_nms_threshold_one_keeps_every_box(data, mode):
    boxes, scores = data
    kept = nms(boxes, scores, 1.0, mode=mode)
    np.testing.assert_array_equal(kept, np.argsort(-scores))


@PROPERTY_SETTINGS
@given(box_sets(), thresholds, modes)
def test_nms_is_invariant_to_input_order(data, threshold, mode):
    boxes, scores = data
    permutation = np.random.default_rng(len(boxes)).permutation(len(boxes))
    kept = nms(boxes, scores, threshold, mode=mode)
    kept_permuted = nms(boxes[permutation], scores[permutation], threshold, mode=mode)
    np.testing.assert_array_equal(permutation[kept_permuted], kept)


# ---------------------------------------------------------------- batched NMS


def test_batched_nms_keeps_overlapping_boxes_of_different_groups():
    boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [1, 0, 11, 10]], dtype=np.float32)
    scores = np.array([0.6, 0.9, 0.8])
    groups = np.array([0, 1, 1])
    # group 1: box 1 suppresses box 2; box 0 is alone in group 0; order by score overall
    np.testing.assert_array_equal(batched_nms(boxes, scores, groups, 0.5), [1, 0])


@PROPERTY_SETTINGS
@given(box_sets(), st.data(), thresholds, modes)
def test_batched_nms_equals_nms_per_group(data, draw, threshold, mode):
    boxes, scores = data
    groups = draw.draw(arrays(np.int64, (len(boxes),), elements=st.integers(0, 2)))
    kept = batched_nms(boxes, scores, groups, threshold, mode=mode)
    assert np.all(np.diff(scores[kept]) < 0)
    for group in np.unique(groups):
        members = np.flatnonzero(groups == group)
        expected = members[nms(boxes[members], scores[members], threshold, mode=mode)]
        np.testing.assert_array_equal(kept[groups[kept] == group], expected)


def test_batched_nms_with_one_group_equals_nms():
    rng = np.random.default_rng(1)
    corners = rng.uniform(0, 30, size=(20, 2))
    boxes = np.concatenate([corners, corners + rng.uniform(5, 15, size=(20, 2))], axis=1)
    scores = rng.permutation(20) / 20.0
    np.testing.assert_array_equal(batched_nms(boxes, scores, np.zeros(20), 0.4), nms(boxes, scores, 0.4))


def test_batched_nms_rejects_groups_of_wrong_length():
    with pytest.raises(ValueError, match="groups"):
        batched_nms(np.zeros((3, 4)), np.zeros(3), np.zeros(2), 0.5)


# ---------------------------------------------------------------- overlap properties


@PROPERTY_SETTINGS
@given(box_sets(min_size=1), box_sets(min_size=1), modes)
def test_overlap_is_symmetric_and_in_unit_interval(data_a, data_b, mode):
    a, b = data_a[0], data_b[0]
    table = pairwise_overlap(a, b, mode=mode)
    assert np.all((table >= 0) & (table <= 1))
    np.testing.assert_allclose(table, pairwise_overlap(b, a, mode=mode).T, rtol=1e-12)
    np.testing.assert_array_equal(np.diagonal(pairwise_overlap(a, a, mode=mode)), 1.0)


# ---------------------------------------------------------------- regression


def test_apply_regression_by_hand():
    boxes = np.array([[10, 20, 30, 60]], dtype=np.float32)  # w = 20, h = 40
    offsets = np.array([[0.1, -0.25, 0.5, 0.0]], dtype=np.float32)
    np.testing.assert_allclose(apply_regression(boxes, offsets), [[12, 10, 40, 60]], rtol=1e-6)
    assert apply_regression(boxes, offsets).dtype == np.float32


def test_apply_regression_with_given_sizes():
    boxes = np.array([[10, 20, 30, 60]], dtype=np.float64)
    offsets = np.array([[0.1, 0.1, 0.1, 0.1]])
    moved = apply_regression(boxes, offsets, widths=np.array([21.0]), heights=np.array([41.0]))
    np.testing.assert_allclose(moved, [[12.1, 24.1, 32.1, 64.1]], rtol=1e-12)


def test_apply_regression_does_not_mutate_inputs():
    boxes = np.array([[0, 0, 10, 10]], dtype=np.float32)
    offsets = np.full((1, 4), 0.5, dtype=np.float32)
    moved = apply_regression(boxes, offsets)
    np.testing.assert_array_equal(boxes, [[0, 0, 10, 10]])
    assert moved is not boxes


def test_apply_regression_rejects_mismatched_offsets():
    with pytest.raises(ValueError, match="offsets"):
        apply_regression(np.zeros((2, 4)), np.zeros((3, 4)))


# ---------------------------------------------------------------- make_square


def test_make_square_by_hand():
    boxes = np.array([[10, 20, 30, 60], [0, 0, 8, 2]], dtype=np.float64)
    np.testing.assert_array_equal(make_square(boxes), [[0, 20, 40, 60], [0, -3, 8, 5]])


@PROPERTY_SETTINGS
@given(box_sets(min_size=1))
def test_make_square_is_square_about_the_same_centre(data):
    boxes = data[0]
    square = make_square(boxes)
    width, height = square[:, 2] - square[:, 0], square[:, 3] - square[:, 1]
    np.testing.assert_allclose(width, height, rtol=1e-12)
    side = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    np.testing.assert_allclose(width, side, rtol=1e-12)
    np.testing.assert_allclose(square[:, 0] + square[:, 2], boxes[:, 0] + boxes[:, 2], rtol=1e-12)
    np.testing.assert_allclose(square[:, 1] + square[:, 3], boxes[:, 1] + boxes[:, 3], rtol=1e-12)
    # the square contains the box
    assert np.all(square[:, :2] <= boxes[:, :2]) and np.all(square[:, 2:] >= boxes[:, 2:])


# ---------------------------------------------------------------- crop windows


def test_crop_windows_truncate_toward_zero_and_clip():
    boxes = np.array(
        [
            [2.7, 3.2, 8.9, 9.99],  # inside: truncated
            [-0.5, -3.7, 4.5, 5.5],  # over the top-left corner: clipped to 0
            [6.2, 1.0, 14.8, 12.1],  # over the bottom-right: clipped to the image size
            [-9.0, 2.0, -1.5, 6.0],  # left of the image: empty
            [3.0, 3.0, 3.9, 8.0],  # thinner than a pixel: empty after truncation
        ],
        dtype=np.float32,
    )
    windows = crop_windows(boxes, width=10, height=12)
    assert windows.dtype == np.int64
    np.testing.assert_array_equal(
        windows, [[2, 3, 8, 9], [0, 0, 4, 5], [6, 1, 10, 12], [0, 2, 0, 6], [3, 3, 3, 8]]
    )
    np.testing.assert_array_equal(nonempty_windows(windows), [True, True, True, False, False])


def test_crop_windows_survive_huge_coordinates():
    windows = crop_windows(np.array([[-1e30, -1e30, 1e30, 1e30]]), width=5, height=7)
    np.testing.assert_array_equal(windows, [[0, 0, 5, 7]])


@pytest.mark.parametrize("width, height", [(0, 5), (5, 0), (2.5, 5)])
def test_crop_windows_reject_bad_image_size(width, height):
    with pytest.raises(ValueError, match="width|height"):
        crop_windows(np.zeros((1, 4)), width, height)
