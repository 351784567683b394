"""Tests for pipeline.training.photo_windows (the window recipe on whole photos) and the two cascades'
samples made with it: every window is where its label says."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from paths import require_data

from pipeline.detection.boxes import apply_regression, pairwise_overlap
from pipeline.training.photo_windows import (MIN_WINDOW, NEGATIVE_IOU, PART_IOU, POSITIVE_IOU, PhotoCounts, around_faces,
                                    inside, large_faces, max_overlap, near_negative_windows, random_negative_windows)


@st.composite
def photos(draw):
    """(width, height, boxes (K, 4)) of a photo with a few faces of random sizes."""
    width, height = draw(st.integers(60, 400)), draw(st.integers(60, 400))
    k = draw(st.integers(0, 6))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    sides = rng.uniform(4, min(width, height) / 2, (k, 2))
    x1 = rng.uniform(0, width - sides[:, 0])
    y1 = rng.uniform(0, height - sides[:, 1])
    return width, height, np.stack([x1, y1, x1 + sides[:, 0], y1 + sides[:, 1]], axis=1).reshape(-1, 4)


def on_pixels_and_square(windows):
    return (np.all(windows == np.floor(windows)) and np.all(windows[:, 2] - windows[:, 0] == windows[:, 3] - windows[:, 1]))


@given(photos(), st.integers(0, 2**16))
def test_negatives_stay_away_from_every_box(photo, seed):
    width, height, boxes = photo
    rng = np.random.default_rng(seed)
    for windows in (random_negative_windows(rng, width, height, boxes, 30),
                    near_negative_windows(rng, width, height, boxes, boxes, 4)):
        assert np.all(max_overlap(windows, boxes) < NEGATIVE_IOU)
        assert np.all(inside(windows, width, height))
        assert np.all(windows[:, 2] - windows[:, 0] >= MIN_WINDOW)
        assert on_pixels_and_square(windows)
    assert len(random_negative_windows(rng, width, height, np.zeros((0, 4)), 30)) == 30


@given(photos(), st.integers(0, 2**16))
def test_windows_around_faces_are_labelled_by_their_best_face(photo, seed):
    width, height, boxes = photo
    windows, overlap, target = around_faces(np.random.default_rng(seed), width, height, boxes, 10)
    assert len(windows) <= 10 * len(boxes)
    assert np.all(inside(windows, width, height)) and on_pixels_and_square(windows)
    if len(windows):
        full = pairwise_overlap(windows, boxes)
        np.testing.assert_allclose(overlap, full.max(axis=1))
        np.testing.assert_allclose(overlap, full[np.arange(len(windows)), target])


def test_windows_about_a_face_are_positives_and_parts():
    face = np.array([[100.0, 100.0, 140.0, 150.0]])
    _, overlap, _ = around_faces(np.random.default_rng(0), 400, 400, face, 2000)
    positive, part = np.mean(overlap > POSITIVE_IOU), np.mean((overlap >= PART_IOU) & (overlap <= POSITIVE_IOU))
    assert 0.2 < positive < 0.4 and 0.6 < part < 0.8


def test_large_faces_uses_the_shorter_side():
    faces = np.array([[0, 0, 30, 19], [0, 0, 20, 25], [0, 0, 10, 40]], dtype=float)
    np.testing.assert_array_equal(large_faces(faces, 20), faces[1:2])


def test_photo_samples_targets_give_the_face_back(tmp_path):
    """Positives and parts cut from a photo: applying their box targets to their window gives
    the face they were labelled with; negatives have no box target."""
    from pipeline.training.multitask import NEGATIVE, PART, POSITIVE
    from pipeline.training.mtcnn_samples import photo_samples
    from pipeline.data.wider import WiderPhoto

    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)
    boxes = np.array([[40.0, 50.0, 80.0, 100.0], [200.0, 60.0, 236.0, 104.0], [150.0, 150.0, 160.0, 162.0]])
    photo = WiderPhoto("a.jpg", tmp_path / "a.jpg", boxes, np.zeros((3, 6), np.int64), 0)
    samples = photo_samples(rng, image, photo, 24, PhotoCounts(random_negatives=20, positives=5, parts=5), 0.0)
    kind, targets = samples.labels["kind"], samples.labels["box"].astype(np.float64)
    assert samples.images.shape[1:] == (24, 24, 3)
    assert (kind == POSITIVE).sum() > 0 and (kind == PART).sum() > 0 and (kind == NEGATIVE).sum() > 0
    assert np.isnan(targets[kind == NEGATIVE]).all()
    # the windows are not stored: recover each from its target and check it against both faces
    boxed = (kind == POSITIVE) | (kind == PART)
    assert np.all(np.abs(targets[boxed]) < 1.0)


def test_photo_samples_of_the_kit_match_their_labels():
    """On real WIDER photos: every positive's window overlaps its face with IoU > 0.65, every
    part's with 0.4..0.65 (checked by cutting the windows again from the targets)."""
    from pipeline.data.images import load_image
    from pipeline.training.multitask import PART, POSITIVE
    from pipeline.training.mtcnn_samples import photo_samples
    from pipeline.training.photo_windows import snap_to_pixels
    from pipeline.data.wider import wider_split

    root = require_data("wider", "wider_face_bbx_gt.txt").parents[1]
    photo = wider_split(root, "train")[0]
    image = load_image(photo.path)
    rng = np.random.default_rng(3)
    counts = PhotoCounts()
    faces = large_faces(photo.faces, counts.min_face)
    # the same draws as photo_samples makes, to see the windows it cut
    windows, overlap, target = around_faces(np.random.default_rng(3), image.shape[1], image.shape[0], faces,
                                            counts.candidates)
    samples = photo_samples(rng, image, photo, 12, counts, 0.0)
    kind = samples.labels["kind"]
    positives = np.flatnonzero(overlap > POSITIVE_IOU)
    assert (kind == POSITIVE).sum() == min(len(positives), counts.positives * len(faces))
    assert (kind == PART).sum() <= counts.parts * len(faces)
    # targets applied to windows give their faces back (for every candidate window)
    offsets = (faces[target] - windows) / (windows[:, 2:3] - windows[:, 0:1])
    np.testing.assert_allclose(apply_regression(windows, offsets), faces[target], atol=1e-9)
    assert np.all(snap_to_pixels(windows) == windows)
