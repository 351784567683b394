"""MTCNN's training samples: window kinds by IoU, regression and landmark targets that give the
face back, small rotations of images and points, mirrored labels, and whole sets built from a
data kit in miniature (and cached)."""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from pipeline.detection.boxes import apply_regression, pairwise_overlap
from pipeline.training.multitask import (LANDMARK, NEGATIVE, PART, POSITIVE, mirror_boxes, mirror_landmarks)
from pipeline.detection.mtcnn import decode_landmarks
from pipeline.training.mtcnn_samples import (PART_IOU, UNLABELLED, MTCNNSampleCounts, build_mtcnn_samples,
                                    cached_mtcnn_samples, describe_kinds, face_samples, inside, label_windows,
                                    landmark_targets, regression_targets, rotate_image, rotate_points,
                                    snap_to_pixels, windows_around)
from pipeline.training.samples import NEGATIVE_IOU, POSITIVE_IOU

# Regression targets and their inverse are a handful of float64 operations on numbers below
# ~200: they agree to ~1e-13 of the coordinates; 1e-9 leaves room and still catches any slip.
COORDINATE_TOL = 1e-9

boxes = st.tuples(st.floats(0, 40), st.floats(0, 40), st.floats(12, 60), st.floats(0.7, 1.5)).map(
    lambda t: np.array([t[0], t[1], t[0] + t[2], t[1] + t[2] * t[3]]))
squares = st.tuples(st.floats(-20, 60), st.floats(-20, 60), st.floats(5, 80)).map(
    lambda t: np.array([[t[0], t[1], t[0] + t[2], t[1] + t[2]]]))
seeds = st.integers(0, 2**31 - 1)


def face_points(box):
    """Five plausible (x, y) landmarks inside a face box: eyes, nose, mouth corners."""
    x1, y1, x2, y2 = box
    fx = np.array([0.3, 0.7, 0.5, 0.35, 0.65])
    fy = np.array([0.4, 0.4, 0.6, 0.8, 0.8])
    return np.stack([x1 + fx * (x2 - x1), y1 + fy * (y2 - y1)], axis=1)


# ---------------------------------------------------------------- windows, kinds, targets

@given(boxes, squares)
def test_regression_targets_give_the_face_box_back(box, window):
    offsets = regression_targets(window, box)
    np.testing.assert_allclose(apply_regression(window, offsets)[0], box, rtol=0, atol=COORDINATE_TOL * 100)


@given(boxes, squares)
def test_landmark_targets_are_undone_by_the_detectors_decoder(box, window):
    points = face_points(box)
    targets = landmark_targets(window, points)
    assert targets.shape == (1, 10)
    np.testing.assert_allclose(decode_landmarks(window, targets)[0], points, rtol=1e-5)  # decoder gives float32


@given(boxes, seeds)
def test_windows_around_a_face_are_squares_of_the_drawn_sizes(box, seed):
    windows = windows_around(np.random.default_rng(seed), box, 30)
    w, h = box[2] - box[0], box[3] - box[1]
    side = windows[:, 2] - windows[:, 0]
    np.testing.assert_allclose(side, windows[:, 3] - windows[:, 1])
    assert np.all(side >= 0.8 * min(w, h) - 1e-9) and np.all(side <= 1.25 * max(w, h) + 1e-9)
    centre_x = (windows[:, 0] + windows[:, 2]) / 2
    assert np.all(np.abs(centre_x - (box[0] + box[2]) / 2) <= 0.2 * w + 1e-9)


@given(boxes, seeds)
def test_kinds_follow_the_iou_with_the_face_box(box, seed):
    rng = np.random.default_rng(seed)
    windows = np.concatenate([windows_around(rng, box, 30), windows_around(rng, box, 10, 0.3, 3.0, 1.0)])
    kinds, iou = label_windows(windows, box)
    np.testing.assert_array_equal(iou, pairwise_overlap(windows, box[None])[:, 0])
    assert np.all(iou[kinds == POSITIVE] > POSITIVE_IOU)
    assert np.all((iou[kinds == PART] >= PART_IOU) & (iou[kinds == PART] <= POSITIVE_IOU))
    assert np.all(iou[kinds == NEGATIVE] < NEGATIVE_IOU)
    assert np.all((iou[kinds == UNLABELLED] >= NEGATIVE_IOU) & (iou[kinds == UNLABELLED] < PART_IOU))


def test_kinds_on_either_side_of_each_threshold():
    box = np.array([0.0, 0.0, 10.0, 10.0])
    # windows 10 high and 10 / t wide, starting at x = 0, hold the box: IoU = t
    windows = np.array([[0.0, 0.0, 10.0 / t, 10.0] for t in (0.651, 0.649, 0.401, 0.399, 0.301, 0.299)])
    kinds, iou = label_windows(windows, box)
    np.testing.assert_allclose(iou, [0.651, 0.649, 0.401, 0.399, 0.301, 0.299])
    assert kinds.tolist() == [POSITIVE, PART, PART, UNLABELLED, UNLABELLED, NEGATIVE]


@given(squares)
def test_windows_snapped_to_pixels_are_whole_squares_near_the_window(window):
    snapped = snap_to_pixels(window)[0]
    assert np.all(snapped == np.round(snapped)) and snapped[2] - snapped[0] == snapped[3] - snapped[1] >= 1
    assert np.all(np.abs(snapped - window[0]) <= 1.5)


def test_inside():
    windows = np.array([[0, 0, 80, 80], [-0.5, 0, 10, 10], [70, 70, 80.5, 80]], dtype=float)
    assert inside(windows, 80, 80).tolist() == [True, False, False]


# ---------------------------------------------------------------- rotations

def test_rotating_by_zero_is_the_identity(rng):
    image = rng.integers(0, 256, (23, 31, 3), dtype=np.uint8)
    np.testing.assert_array_equal(rotate_image(image, 0.0, (11.3, 7.9)), image)
    points = rng.uniform(0, 30, (5, 2))
    # (p - c) + c, so equal up to one rounding of the coordinates (~4e-15 at 30)
    np.testing.assert_allclose(rotate_points(points, 0.0, (11.3, 7.9)), points, rtol=0, atol=1e-13)


def test_a_quarter_turn_is_numpys_rot90(rng):
    image = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    # counter-clockwise as shown, about the image centre: np.rot90 exactly
    np.testing.assert_array_equal(rotate_image(image, 90.0, (8.0, 8.0)), np.rot90(image))
    # pixel (row 2, col 5) goes where rot90 puts it: row 16 - 1 - 5, col 2; its centre with it
    turned = rotate_points(np.array([5.5, 2.5]), 90.0, (8.0, 8.0))
    np.testing.assert_allclose(turned, [2.5, 16 - 1 - 5 + 0.5], atol=1e-12)


@pytest.mark.parametrize("angle", [-5.0, 3.0, 7.5])
def test_a_dot_moves_where_its_point_moves(angle):
    image = np.zeros((60, 60, 3), np.uint8)
    image[39:42, 14:17] = 255  # a 3x3 dot centred on (15.5, 40.5)
    turned = rotate_image(image, angle, (30.0, 30.0)).astype(np.float64)[..., 0]
    ys, xs = np.mgrid[0:60, 0:60] + 0.5
    centroid = np.array([(turned * xs).sum(), (turned * ys).sum()]) / turned.sum()
    np.testing.assert_allclose(centroid, rotate_points(np.array([15.5, 40.5]), angle, (30.0, 30.0)), atol=0.05)


@given(st.floats(-30, 30), st.tuples(st.floats(0, 80), st.floats(0, 80)), seeds)
def test_rotating_points_keeps_distances_and_turns_back(angle, centre, seed):
    points = np.random.default_rng(seed).uniform(0, 80, (5, 2))
    turned = rotate_points(points, angle, centre)
    np.testing.assert_allclose(np.hypot(*(turned - centre).T), np.hypot(*(points - np.array(centre)).T), atol=1e-9)
    np.testing.assert_allclose(rotate_points(turned, -angle, centre), points, atol=1e-9)


# ---------------------------------------------------------------- mirroring the labels

@given(boxes, squares)
def test_mirrored_offsets_are_the_offsets_of_the_mirrored_face(box, window):
    # mirror the photo about the window's vertical centre line: x -> x1 + x2 - x
    axis = window[0, 0] + window[0, 2]
    mirrored_box = np.array([axis - box[2], box[1], axis - box[0], box[3]])
    np.testing.assert_allclose(mirror_boxes(regression_targets(window, box)),
                               regression_targets(window, mirrored_box), atol=1e-12)
    np.testing.assert_array_equal(mirror_boxes(mirror_boxes(regression_targets(window, box))),
                                  regression_targets(window, box))


@given(boxes, squares)
def test_mirrored_landmarks_are_the_landmarks_of_the_mirrored_face(box, window):
    points = face_points(box)
    axis = window[0, 0] + window[0, 2]
    mirrored = np.stack([axis - points[:, 0], points[:, 1]], axis=1)
    # the eye now on the left of the image was the right eye: it becomes point 0 again
    renamed = mirrored[[1, 0, 2, 4, 3]]
    np.testing.assert_allclose(mirror_landmarks(landmark_targets(window, points)),
                               landmark_targets(window, renamed), atol=1e-12)


def test_mirrored_landmarks_keep_the_left_eye_on_the_left():
    points = landmark_targets(np.array([[0.0, 0.0, 10.0, 10.0]]), face_points([2.0, 1.0, 8.0, 9.0]))
    mirrored = mirror_landmarks(points)
    assert mirrored[0, 0] < mirrored[0, 1] and mirrored[0, 3] < mirrored[0, 4]
    np.testing.assert_allclose(mirror_landmarks(mirrored), points, rtol=0, atol=1e-15)  # 1 - (1 - x)


# ---------------------------------------------------------------- one face photo

def dotted_face(rng):
    """An 80x80 photo: noise, a brighter face box, and five white dots at the landmarks."""
    photo = rng.integers(0, 60, (80, 80, 3), dtype=np.uint8)
    box = np.array([26.0, 22.0, 53.0, 58.0])
    photo[22:58, 26:53] += 60
    points = np.floor(face_points(box)) + 0.5  # pixel centres, so that each dot is centred on its point
    for x, y in points.astype(int):
        photo[y - 1 : y + 2, x - 1 : x + 2] = 255
    return photo, box, points


def test_face_samples_have_the_asked_mix_and_consistent_labels(rng):
    photo, box, points = dotted_face(rng)
    counts = MTCNNSampleCounts(positives_per_face=3, parts_per_face=2, landmarks_per_face=4,
                               face_negatives_per_face=2, candidates_per_face=40)
    samples = face_samples(rng, photo, box, points, 12, counts, share_gray=0.5)
    kind = samples.labels["kind"]
    assert [(kind == k).sum() for k in (NEGATIVE, POSITIVE, PART, LANDMARK)] == [2, 3, 2, 4]
    assert samples.images.shape == (11, 12, 12, 3) and samples.images.dtype == np.uint8
    has_box = np.isfinite(samples.labels["box"]).all(axis=1)
    has_points = np.isfinite(samples.labels["landmarks"]).all(axis=1)
    np.testing.assert_array_equal(has_box, (kind == POSITIVE) | (kind == PART))
    np.testing.assert_array_equal(has_points, kind == LANDMARK)
    assert np.all(np.isnan(samples.labels["box"][~has_box]))
    assert np.all(np.isnan(samples.labels["landmarks"][~has_points]))
    assert samples.labels["box"].dtype == np.float32 and samples.labels["landmarks"].dtype == np.float32


def test_landmark_patches_show_their_dots_where_the_targets_say(rng):
    photo, box, points = dotted_face(rng)
    counts = MTCNNSampleCounts(positives_per_face=0, parts_per_face=0, landmarks_per_face=6,
                               face_negatives_per_face=0, candidates_per_face=40, max_rotation=8.0)
    samples = face_samples(rng, photo, box, points, 48, counts, share_gray=0.0)
    assert len(samples) >= 4
    ys, xs = np.mgrid[0:48, 0:48] + 0.5
    for patch, target in zip(samples.images, samples.labels["landmarks"]):
        bright = patch.astype(np.float64).mean(axis=2)
        for x, y in zip(target[:5] * 48, target[5:] * 48):
            near = (np.abs(xs - x) < 4) & (np.abs(ys - y) < 4)
            half_max = (bright[near].max() + np.median(bright[near])) / 2
            weight = np.where(near, np.maximum(bright - half_max, 0), 0)
            found = np.array([(weight * xs).sum(), (weight * ys).sum()]) / weight.sum()
            # the dot's centre to within 0.6 patch pixels (0.4 pixels of the photo): resampling
            # blurs it, but a window cut a pixel off its targets would miss by up to 1.4
            np.testing.assert_allclose(found, [x, y], atol=0.6)


# ---------------------------------------------------------------- whole sets from a kit

def save(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


@pytest.fixture
def tiny_kit(tmp_path):
    """A data kit in miniature: 4 training faces, 2 validation faces (80x80, CUHK lines), and 20
    face-free photos (lines 8 and 18 validate, 9 and 19 are held out)."""
    rng = np.random.default_rng(5)
    kit = tmp_path / "kit"
    for split, n in (("train", 4), ("val", 2)):
        lines = []
        for i in range(n):
            photo, _, points = dotted_face(rng)
            save(kit / "cuhk80" / "faces" / f"{split}{i}.png", photo)
            # a CUHK box (left right top bottom) whose MTCNN-convention box is about the bright area
            fields = [26.0, 51.0, 30.0, 55.0] + [v for point in points for v in point]
            lines.append(f"faces/{split}{i}.png " + " ".join(f"{v:.2f}" for v in fields))
        (kit / "cuhk80" / f"{split}.txt").write_text("\n".join(lines) + "\n")
    negatives = []
    for i in range(20):
        gray = i % 2 == 0
        shape = (50, 70) if gray else (50, 70, 3)
        save(kit / "negatives" / f"n{i}.png", rng.integers(0, 256, shape, dtype=np.uint8))
        negatives.append(f"n{i}.png 70 50 {'gray' if gray else 'color'}")
    (kit / "negatives" / "files.txt").write_text("\n".join(negatives) + "\n")
    return kit


def unit_iou(offsets):
    """IoU of the unit window with the face box that the offsets describe in it (IoU does not
    depend on the window's size or place, so the stored offsets alone tell the kind)."""
    unit = np.tile([0.0, 0.0, 1.0, 1.0], (len(offsets), 1))
    faces = apply_regression(unit, offsets.astype(np.float64))
    return pairwise_overlap(faces, unit).diagonal()


def test_a_set_from_the_kit_has_the_three_one_one_two_mix_and_is_cached(tiny_kit, tmp_path):
    counts = MTCNNSampleCounts()
    assert counts.mix() == (3, 1, 1, 2)
    logs = []
    samples = cached_mtcnn_samples("pnet", "train", tiny_kit, tmp_path / "out", counts, seed=0, log=logs.append)
    kind = samples.labels["kind"]
    found = [int((kind == k).sum()) for k in (NEGATIVE, POSITIVE, PART, LANDMARK)]
    assert found == [12, 4, 4, 8], describe_kinds(samples)
    assert samples.images.shape[1:] == (12, 12, 3)
    iou = unit_iou(samples.labels["box"][kind == POSITIVE])
    assert np.all(iou > POSITIVE_IOU)
    iou = unit_iou(samples.labels["box"][kind == PART])
    assert np.all((iou >= PART_IOU - 1e-6) & (iou <= POSITIVE_IOU + 1e-6))
    points = samples.labels["landmarks"][kind == LANDMARK]
    assert np.all((points > 0) & (points < 1))
    assert (tmp_path / "out" / "samples" / "pnet-train.npz").is_file() and "made" in logs[0]

    again = cached_mtcnn_samples("pnet", "train", tiny_kit, tmp_path / "out", counts, seed=0, log=logs.append)
    assert "from" in logs[1]
    np.testing.assert_array_equal(again.images, samples.images)
    for name in ("kind", "box", "landmarks"):
        np.testing.assert_array_equal(again.labels[name], samples.labels[name])


def test_sets_are_reproducible_and_the_splits_differ(tiny_kit):
    counts = MTCNNSampleCounts(max_photos=5)
    a = build_mtcnn_samples("rnet", "val", tiny_kit, counts, seed=3)
    b = build_mtcnn_samples("rnet", "val", tiny_kit, counts, seed=3)
    np.testing.assert_array_equal(a.images, b.images)
    assert a.images.shape[1:] == (24, 24, 3) and len(a) == 2 * 7  # two validation faces
    train = build_mtcnn_samples("rnet", "train", tiny_kit, counts, seed=3)
    assert len(train) == 4 * 7


def test_an_unknown_net_is_refused(tiny_kit, tmp_path):
    with pytest.raises(ValueError, match="pnet"):
        cached_mtcnn_samples("net12", "train", tiny_kit, tmp_path, MTCNNSampleCounts(), seed=0)


class _ProposingDetector:
    """Stands in for an MTCNNDetector whose stage 1 proposes fixed windows."""

    def __init__(self, windows):
        from pipeline.detection.trace import Boxes

        self.found = Boxes(np.asarray(windows, np.float32), np.ones(len(windows), np.float32))

    @contextmanager
    def session(self, rgb):
        from pipeline.data.images import to_chw_float

        yield to_chw_float(rgb)

    def propose(self, image_chw, trace):
        return self.found


def test_mined_windows_are_labelled_by_iou_with_their_targets():
    from pipeline.detection.boxes import apply_regression
    from pipeline.training.mtcnn_samples import MTCNNSampleCounts, mined_face_samples
    from pipeline.training.multitask import NEGATIVE, PART, POSITIVE

    photo = np.random.default_rng(0).integers(0, 256, (80, 80, 3), dtype=np.uint8)
    box = np.array([20.0, 20.0, 60.0, 60.0])
    windows = [[20, 20, 60, 60],   # the face: positive
               [30, 30, 70, 70],   # IoU 0.39: between part and negative, not used
               [26, 26, 66, 66],   # IoU 0.55: part
               [0, 0, 16, 16]]     # negative
    counts = MTCNNSampleCounts(positives_per_face=5, parts_per_face=5, face_negatives_per_face=5)
    samples = mined_face_samples(np.random.default_rng(1), _ProposingDetector(windows), photo, box, 24, 1, counts, 0.0)
    assert sorted(samples.labels["kind"].tolist()) == sorted([POSITIVE, PART, NEGATIVE])
    for kind, window in ((POSITIVE, windows[0]), (PART, windows[2])):
        offsets = samples.labels["box"][samples.labels["kind"] == kind]
        np.testing.assert_allclose(apply_regression(np.array([window], np.float64), offsets.astype(np.float64)),
                                   box[None], atol=1e-5)
    assert np.isnan(samples.labels["box"][samples.labels["kind"] == NEGATIVE]).all()
    assert samples.images.shape == (3, 24, 24, 3)
