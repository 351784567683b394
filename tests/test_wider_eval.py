"""Tests for pipeline.evaluation.wider_eval, the WIDER FACE benchmark's protocol: small cases worked by hand,
then the official files of the kit and the released MTCNN's figures on the kit's split."""

from __future__ import annotations

import numpy as np
import pytest
from paths import require_data

from pipeline.evaluation.wider_eval import (GroundTruth, match_photo, normalise_scores, overlaps_plus_one, photo_counts,
                                 voc_ap, wider_ap)

FACE_A = [10, 10, 49, 49]
FACE_B = [100, 10, 139, 49]


def truth(boxes, scored):
    """GroundTruth scoring the same boxes in every setting."""
    scored = np.asarray(scored, dtype=np.int64)
    return GroundTruth(np.asarray(boxes, dtype=np.float64), {s: scored for s in ("easy", "medium", "hard")})


def det(*rows):
    return np.array(rows, dtype=np.float64).reshape(-1, 5)


def test_overlap_counts_areas_with_one_more_pixel():
    # 10 x 10 pixels each way; the half box [0, 0, 4, 9] holds 5 x 10 of them
    np.testing.assert_allclose(overlaps_plus_one([[0, 0, 9, 9]], [[0, 0, 9, 9], [0, 0, 4, 9]]), [[1.0, 0.5]])


def test_a_perfect_detector_has_ap_one():
    gt = {"a.jpg": truth([FACE_A, FACE_B], [0, 1]), "b.jpg": truth([FACE_A], [0])}
    found = {"a.jpg": det([*FACE_A, 0.9], [*FACE_B, 0.7]), "b.jpg": det([*FACE_A, 0.8])}
    result = wider_ap(found, gt)
    assert result["easy"] == pytest.approx(1.0) and result["hard"] == pytest.approx(1.0)
    assert result["faces"]["easy"] == 3 and result["photos"] == 2


def test_a_face_outside_the_setting_is_neither_right_nor_wrong():
    gt = {"a.jpg": truth([FACE_A, FACE_B], [0])}  # only A is scored
    found = {"a.jpg": det([*FACE_B, 0.9], [*FACE_A, 0.8])}
    assert wider_ap(found, gt)["easy"] == pytest.approx(1.0)
    counted, reached = match_photo(found["a.jpg"], gt["a.jpg"].boxes, gt["a.jpg"].scored["easy"])
    assert counted.tolist() == [False, True] and reached.tolist() == [0, 1]
    # the same detection on a face of the setting that is found already is a false positive
    both = {"a.jpg": truth([FACE_A, FACE_B], [0, 1])}
    twice = {"a.jpg": det([*FACE_A, 0.9], [*FACE_A, 0.8], [*FACE_B, 0.7])}
    counted, reached = match_photo(twice["a.jpg"], both["a.jpg"].boxes, [0, 1])
    assert counted.all() and reached.tolist() == [1, 1, 2]


def test_ap_worked_by_hand():
    # a false positive first, then the two faces: normalised scores 1, 0.5, 0.
    # t > 0.5: 1 detection, 0 found; 0 < t <= 0.5: 2 detections, 1 found (precision 1/2, recall
    # 1/2); t = 0: 3 detections, 2 found (precision 2/3, recall 1). Interpolated precision is 2/3
    # at both recalls: AP = 1/2 * 2/3 + 1/2 * 2/3 = 2/3.
    gt = {"a.jpg": truth([FACE_A, FACE_B], [0, 1])}
    found = {"a.jpg": det([300, 300, 340, 340, 0.9], [*FACE_A, 0.6], [*FACE_B, 0.3])}
    assert wider_ap(found, gt)["medium"] == pytest.approx(2 / 3)
    counts = photo_counts(normalise_scores(found)["a.jpg"], gt["a.jpg"].boxes, [0, 1], thresholds=[0.999, 0.4, 0.0])
    assert counts.tolist() == [[1, 0], [2, 1], [3, 2]]


def test_scores_are_normalised_over_the_whole_set():
    found = {"a.jpg": det([*FACE_A, 2.0]), "b.jpg": det([*FACE_A, 4.0], [*FACE_B, 3.0])}
    normalised = normalise_scores(found)
    assert normalised["a.jpg"][:, 4].tolist() == [0.0] and normalised["b.jpg"][:, 4].tolist() == [1.0, 0.5]
    # so AP does not change when every score is moved and stretched alike
    gt = {"a.jpg": truth([FACE_B], [0]), "b.jpg": truth([FACE_A], [0])}
    shifted = {name: np.concatenate([d[:, :4], 10 * d[:, 4:] + 3], axis=1) for name, d in found.items()}
    assert wider_ap(found, gt)["hard"] == pytest.approx(wider_ap(shifted, gt)["hard"])


def test_missed_faces_count_and_photos_without_detections():
    gt = {"a.jpg": truth([FACE_A, FACE_B], [0, 1]), "b.jpg": truth([FACE_A], [0])}
    found = {"a.jpg": det([*FACE_A, 0.9]), "b.jpg": det()}
    assert wider_ap(found, gt)["easy"] == pytest.approx(1 / 3)


def test_voc_ap_is_the_area_under_the_interpolated_curve():
    assert voc_ap(np.array([0.5, 0.5, 1.0]), np.array([1.0, 0.5, 0.75])) == pytest.approx(0.5 * 1.0 + 0.5 * 0.75)


def test_unknown_photos_are_named():
    with pytest.raises(KeyError, match="x.jpg"):
        wider_ap({"x.jpg": det()}, {})


# ---------------------------------------------------------------- the kit's official files


def test_official_ground_truth_matches_the_bbx_gt_file():
    pytest.importorskip("scipy", reason="the .mat files are read with SciPy (the wider extra)")
    from pipeline.data.wider import read_wider
    from pipeline.evaluation.wider_eval import read_ground_truth

    root = require_data("wider", "ground_truth", "wider_face_val.mat").parents[1]
    gt = read_ground_truth(root / "ground_truth")
    photos = read_wider(root / "wider_face_bbx_gt.txt")
    assert len(gt) == 3226  # the whole validation set
    for photo in photos[:50]:
        official = gt[photo.name]
        # the kit's reader drops boxes of zero size; every box it keeps is an official box
        kept = {tuple(b) for b in official.boxes.tolist()}
        assert all(tuple(b) in kept for b in photo.boxes.tolist())
        assert set(official.scored["easy"]) <= set(official.scored["medium"]) <= set(official.scored["hard"])


@pytest.mark.slow
def test_released_mtcnn_on_the_kits_split_gives_the_published_figures(tmp_path):
    """The figures the issue measured with the benchmark's own code: 0.817 / 0.785 / 0.532."""
    pytest.importorskip("scipy", reason="the .mat files are read with SciPy (the wider extra)")
    from pipeline.data.images import load_image
    from pipeline.detection.mtcnn import MTCNNDetector
    from pipeline.data.wider import wider_split
    from pipeline.evaluation.wider_eval import read_ground_truth

    root = require_data("wider", "ground_truth", "wider_face_val.mat").parents[2]  # the kit
    detector = MTCNNDetector(min_face_size=20)
    found = {}
    for photo in wider_split(root, "val"):
        faces = detector.detect(load_image(photo.path))
        found[photo.name] = np.array([[*f.box, f.score] for f in faces]).reshape(-1, 5)
    result = wider_ap(found, read_ground_truth(root / "wider" / "ground_truth"))
    assert [round(result[s], 3) for s in ("easy", "medium", "hard")] == [0.817, 0.785, 0.532]
