"""Tests for pipeline.evaluation.evaluate: greedy matching against a plain-Python twin, the ROC and AP maths
(hypothesis properties and hand-checked numbers), `evaluate` on a tiny fake data kit with a fake
detector, `facecascade evaluate`, and (slow) the released MTCNN on the real data kit."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from paths import require_data
from PIL import Image

from pipeline.cli.main import main
from pipeline.data.datasets import cuhk_to_mtcnn
from pipeline.evaluation.evaluate import (
    average_precision,
    evaluate,
    format_summary,
    landmark_error,
    match_detections,
    operating_point,
    pool,
    recall_above,
    roc_points,
    to_json,
)
from pipeline.detection.trace import Face

# ---------------------------------------------------------------- the rule, written out by hand


def iou_by_hand(a, b) -> float:
    """IoU of two boxes x1, y1, x2, y2 with plain floats."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def matched_by_hand(truth, boxes, scores) -> list[bool]:
    """The greedy rule as a loop over Python lists: best score first (a stable sort), each
    detection takes the free face it overlaps most if that IoU is >= 0.5."""
    used, flags = set(), [False] * len(boxes)
    for d in sorted(range(len(boxes)), key=lambda i: -scores[i]):
        overlaps = [0.0 if k in used else iou_by_hand(boxes[d], truth[k]) for k in range(len(truth))]
        if overlaps and max(overlaps) >= 0.5:
            used.add(overlaps.index(max(overlaps)))
            flags[d] = True
    return flags


# ---------------------------------------------------------------- strategies

FAR_AWAY = np.array([1000.0, 1000.0, 1010.0, 1010.0])  # overlaps no face of the strategies below


@st.composite
def box(draw):
    """A box on a small integer grid, so that overlaps are common and IoU 0.5 happens exactly."""
    x, y = draw(st.integers(0, 12)), draw(st.integers(0, 12))
    return [float(x), float(y), float(x + draw(st.integers(1, 8))), float(y + draw(st.integers(1, 8)))]


@st.composite
def image_case(draw, max_faces=5, max_detections=6):
    """(truth (K, 4), boxes (D, 4)): detections are faces moved by a pixel, or anywhere."""
    truth = draw(st.lists(box(), max_size=max_faces))
    boxes = []
    for _ in range(draw(st.integers(0, max_detections))):
        if truth and draw(st.booleans()):
            face = draw(st.sampled_from(truth))
            dx, dy, dw, dh = (draw(st.integers(-1, 1)) for _ in range(4))
            boxes.append([face[0] + dx, face[1] + dy, face[2] + dx + max(dw, 1 - (face[2] - face[0])),
                          face[3] + dy + max(dh, 1 - (face[3] - face[1]))])
        else:
            boxes.append(draw(box()))
    return np.array(truth, dtype=np.float64).reshape(-1, 4), np.array(boxes, dtype=np.float64).reshape(-1, 4)


@st.composite
def images_with_distinct_scores(draw, max_images=4):
    """A list of (truth, boxes, scores) whose scores are distinct over all images (no ties)."""
    cases = draw(st.lists(image_case(), min_size=1, max_size=max_images))
    n = sum(len(boxes) for _, boxes in cases)
    order = np.array(draw(st.permutations(range(n))), dtype=np.float64)
    scores = (order + 1) / (n + 1)
    out, start = [], 0
    for truth, boxes in cases:
        out.append((truth, boxes, scores[start : start + len(boxes)]))
        start += len(boxes)
    return out


def summary(per_image):
    pooled = pool(per_image)
    roc = roc_points(pooled.scores, pooled.is_tp, pooled.faces)
    return pooled, roc, average_precision(pooled.scores, pooled.is_tp, pooled.faces)


# ---------------------------------------------------------------- matching


@given(image_case(), st.lists(st.integers(0, 3), min_size=6, max_size=6))
def test_matching_agrees_with_the_loop_by_hand(case, score_levels):
    # scores from 4 levels: ties happen, and both take them in the given order
    truth, boxes = case
    scores = np.array(score_levels[: len(boxes)], dtype=np.float64)
    flags = match_detections(truth, boxes, scores)
    assert flags.dtype == bool and flags.shape == (len(boxes),)
    assert flags.tolist() == matched_by_hand(truth.tolist(), boxes.tolist(), scores.tolist())
    assert flags.sum() <= min(len(truth), len(boxes))


def test_matching_by_hand():
    truth = np.array([[0, 0, 10, 10], [20, 0, 30, 10]], dtype=np.float64)
    boxes = np.array([[0, 0, 10, 10],      # exact: face 0
                      [0, 0, 10, 10],      # a duplicate of it with a higher score takes face 0 first
                      [20, 0, 30, 5],      # IoU 0.5 with face 1: found (>=)
                      [40, 0, 50, 10]])    # nothing
    scores = np.array([0.5, 0.9, 0.4, 0.8])
    np.testing.assert_array_equal(match_detections(truth, boxes, scores), [False, True, True, False])
    np.testing.assert_array_equal(match_detections(truth, boxes, scores, iou_threshold=0.51),
                                  [False, True, False, False])
    # equal scores: the earlier detection goes first
    np.testing.assert_array_equal(match_detections(truth[:1], boxes[:2], [0.7, 0.7]), [True, False])


def test_matching_takes_the_free_face_it_overlaps_most():
    truth = np.array([[0, 0, 10, 10], [2, 0, 12, 10]], dtype=np.float64)
    boxes = np.array([[2, 0, 12, 10], [1, 0, 11, 10]], dtype=np.float64)
    # the best detection takes face 1 (IoU 1); the second is left face 0 (IoU 9/11 >= 0.5)
    np.testing.assert_array_equal(match_detections(truth, boxes, [0.9, 0.8]), [True, True])


def test_matching_with_nothing():
    assert match_detections(np.zeros((0, 4)), np.zeros((0, 4)), np.zeros(0)).shape == (0,)
    assert not match_detections(np.zeros((0, 4)), np.ones((2, 4)) * [0, 0, 1, 1], [0.9, 0.8]).any()
    assert match_detections(np.array([[0, 0, 1, 1.0]]), np.zeros((0, 4)), []).shape == (0,)
    with pytest.raises(ValueError, match="scores"):
        match_detections(np.zeros((0, 4)), np.zeros((2, 4)), [0.5])


# ---------------------------------------------------------------- ROC and AP properties


@given(images_with_distinct_scores())
def test_a_perfect_detector_scores_one(per_image):
    # each detection is exactly its face: recall 1 and AP 1 whatever the scores
    perfect = [(truth, truth, np.linspace(0.9, 0.1, len(truth)) - i * 1e-3)
               for i, (truth, _, _) in enumerate(per_image)]
    pooled, roc, ap = summary(perfect)
    if pooled.faces == 0:
        assert np.isnan(ap) and len(roc.thresholds) == 0
        return
    assert pooled.is_tp.all()
    assert roc.recall[-1] == 1.0 and roc.false_positives[-1] == 0
    assert ap == 1.0


@given(images_with_distinct_scores(), st.randoms(use_true_random=False))
def test_order_of_detections_within_an_image_does_not_matter(per_image, random):
    shuffled = []
    for truth, boxes, scores in per_image:
        order = list(range(len(boxes)))
        random.shuffle(order)
        shuffled.append((truth, boxes[order], scores[order]))
    (pooled, roc, ap), (pooled2, roc2, ap2) = summary(per_image), summary(shuffled)
    assert pooled2.is_tp.sum() == pooled.is_tp.sum()
    for name in ("thresholds", "true_positives", "false_positives", "recall"):
        np.testing.assert_array_equal(getattr(roc2, name), getattr(roc, name))
    assert ap2 == ap or (np.isnan(ap) and np.isnan(ap2))


@given(images_with_distinct_scores(), st.integers(0, 3))
def test_a_low_scored_false_positive_changes_nothing_above_it(per_image, which):
    truth, boxes, scores = per_image[which % len(per_image)]
    lowest = min([s.min() for _, _, s in per_image if len(s)], default=1.0) / 2
    grown = list(per_image)
    grown[which % len(per_image)] = (truth, np.vstack([boxes, FAR_AWAY]), np.append(scores, lowest))
    (pooled, roc, ap), (pooled2, roc2, ap2) = summary(per_image), summary(grown)
    for name in ("thresholds", "true_positives", "false_positives", "recall"):
        np.testing.assert_array_equal(getattr(roc2, name)[:-1], getattr(roc, name))
    assert roc2.thresholds[-1] == lowest
    assert pooled2.is_tp.sum() == pooled.is_tp.sum()
    assert roc2.true_positives[-1] == pooled.is_tp.sum()
    assert roc2.false_positives[-1] == (~pooled.is_tp).sum() + 1
    if pooled.faces:
        assert ap2 == pytest.approx(ap, rel=1e-12)  # no new recall, so no new area


@given(images_with_distinct_scores())
def test_counts_never_exceed_faces_or_detections(per_image):
    pooled, roc, ap = summary(per_image)
    for truth, boxes, scores in per_image:
        assert match_detections(truth, boxes, scores).sum() <= min(len(truth), len(boxes))
    assert pooled.is_tp.sum() <= min(pooled.faces, len(pooled.scores))
    assert np.all(np.diff(roc.thresholds) < 0)  # one point per distinct score, highest first
    assert np.all(np.diff(roc.true_positives) >= 0) and np.all(np.diff(roc.false_positives) >= 0)
    assert np.all(roc.true_positives + roc.false_positives <= len(pooled.scores))
    if pooled.faces:
        assert 0.0 <= ap <= 1.0
        assert np.all((0 <= roc.recall) & (roc.recall <= 1))


# ---------------------------------------------------------------- ROC and AP by hand


def test_roc_and_ap_by_hand():
    # 3 faces; detections TP 0.9, FP 0.8, TP 0.7, FP 0.6
    scores, is_tp = np.array([0.6, 0.9, 0.7, 0.8]), np.array([False, True, True, False])
    roc = roc_points(scores, is_tp, faces=3)
    np.testing.assert_array_equal(roc.thresholds, [0.9, 0.8, 0.7, 0.6])
    np.testing.assert_array_equal(roc.true_positives, [1, 1, 2, 2])
    np.testing.assert_array_equal(roc.false_positives, [0, 1, 1, 2])
    np.testing.assert_allclose(roc.recall, [1 / 3, 1 / 3, 2 / 3, 2 / 3], rtol=1e-15)
    # precision 1, 1/2, 2/3, 1/2 -> interpolated 1, 2/3, 2/3, 1/2; recall steps 1/3, 0, 1/3, 0
    assert average_precision(scores, is_tp, 3) == pytest.approx(1 / 3 + 2 / 9, rel=1e-15)


def test_equal_scores_enter_together():
    # a TP and an FP with the same score make one point, whichever comes first
    for is_tp in ([True, False], [False, True]):
        roc = roc_points([0.5, 0.5], is_tp, faces=1)
        np.testing.assert_array_equal(roc.thresholds, [0.5])
        np.testing.assert_array_equal(roc.true_positives, [1])
        np.testing.assert_array_equal(roc.false_positives, [1])
        assert average_precision([0.5, 0.5], is_tp, 1) == 0.5


def test_roc_and_ap_without_detections_or_faces():
    roc = roc_points([], [], faces=4)
    assert len(roc.thresholds) == len(roc.recall) == 0
    assert average_precision([], [], 4) == 0.0
    assert np.isnan(average_precision([0.5], [False], 0))
    assert np.isnan(roc_points([0.5], [False], 0).recall).all()
    assert roc_points([0.5], [False], 0).to_dict()["recall"] == [None]


def test_operating_point_by_hand():
    # 20 photos, at most 0.1 each: 2 false positives allowed; 4 detections, so keep the best 2
    point = operating_point([0.5, 0.9, 0.7, 0.8], 20)
    assert point == {"max_false_positives_per_photo": 0.1, "allowed": 2, "score_above": 0.7, "false_positives": 2}
    # within the budget: no extra threshold
    assert operating_point([0.9, 0.8], 20)["score_above"] is None
    assert operating_point([], 5) == {"max_false_positives_per_photo": 0.1, "allowed": 0, "score_above": None,
                                      "false_positives": 0}
    assert operating_point([0.3], 5)["score_above"] == 0.3  # allowed 0: everything must go
    pooled = pool([(np.array([[0, 0, 10, 10.0]]), np.array([[0, 0, 10, 10.0]]), np.array([0.75]))])
    assert recall_above(pooled, 0.7) == 1.0 and recall_above(pooled, 0.8) == 0.0 and recall_above(pooled, None) == 1.0


# ---------------------------------------------------------------- landmark error

POINT = st.floats(-200, 200, allow_nan=False)


@given(st.lists(st.tuples(POINT, POINT), min_size=5, max_size=5), st.lists(st.tuples(POINT, POINT), min_size=5, max_size=5),
       st.floats(0.1, 10), st.tuples(POINT, POINT))
def test_landmark_error_does_not_depend_on_where_or_how_big_the_face_is(truth, predicted, scale, shift):
    truth, predicted = np.array(truth), np.array(predicted)
    if np.hypot(*(truth[0] - truth[1])) < 1:
        truth[1] = truth[0] + [10, 0]  # keep the eyes apart
    error = landmark_error(predicted, truth)
    assert error >= 0
    assert landmark_error(truth, truth) == 0
    moved = landmark_error(predicted * scale + shift, truth * scale + shift)
    assert moved == pytest.approx(error, rel=1e-6, abs=1e-9)


def test_landmark_error_by_hand():
    truth = np.array([[30.0, 40], [70, 40], [50, 60], [35, 80], [65, 80]])  # eyes 40 px apart
    predicted = truth + [[4, 0], [0, 0], [0, -3], [0, 0], [0, 0]]           # 4 px and 3 px off
    assert landmark_error(predicted, truth) == pytest.approx((4 + 3) / 5 / 40)
    with pytest.raises(ValueError, match="inter-ocular"):
        landmark_error(predicted, np.zeros((5, 2)))


# ---------------------------------------------------------------- evaluate on a fake data kit

CUHK = [10.0, 30.0, 10.0, 30.0]  # left right top bottom of every fake val face
POINTS = np.array([[14.0, 16], [26, 16], [20, 21], [15, 26], [25, 26]])  # its five points (12 px between the eyes)
TRUTH = cuhk_to_mtcnn(np.array([[10.0, 10.0, 30.0, 30.0]]))[0]


class FakeDetector:
    """Answers from a table keyed by the image's (height, width): the fake kit's sizes are distinct."""

    def __init__(self, table):
        self.table = table
        self.seen = []

    def detect(self, image):
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
        self.seen.append(image.shape[:2])
        return [Face(np.asarray(b, np.float32), s, np.zeros((5, 2), np.float32))
                for b, s in self.table.get(image.shape[:2], [])]


FAKE_TABLE = {
    (50, 60): [(TRUTH, 0.9)],                                 # val 0: found
    (50, 61): [([40, 40, 48, 48], 0.7)],                      # val 1: missed, one false positive
    (50, 62): [(TRUTH, 0.95), (TRUTH + 0.5, 0.8)],            # val 2: found, and a duplicate
    (90, 100): [([10, 10, 40, 40], 0.99)],                    # photo 0: one of its two faces
    (40, 70): [([0, 0, 20, 20], 0.6), ([30, 0, 50, 20], 0.5)],  # gray face-free photo
    (40, 71): [([0, 0, 20, 20], 0.4)],                         # colour face-free photo
}


def save(path, height, width, gray=False):
    path.parent.mkdir(parents=True, exist_ok=True)
    shape = (height, width) if gray else (height, width, 3)
    Image.fromarray(np.full(shape, 128, np.uint8)).save(path)


@pytest.fixture
def fake_kit(tmp_path):
    """A data kit in miniature: 3 val faces, 2 labelled photos (one broken), 20 face-free photos
    of which lines 9 (gray) and 19 (colour) are held out."""
    kit = tmp_path / "kit"
    lines = []
    for i in range(3):
        save(kit / "cuhk80" / "faces" / f"v{i}.jpg", 50, 60 + i)
        lines.append(f"faces/v{i}.jpg " + " ".join(f"{v:.2f}" for v in CUHK + list(POINTS.reshape(-1))))
    (kit / "cuhk80" / "val.txt").write_text("\n".join(lines) + "\n")
    save(kit / "photos" / "p0.jpg", 90, 100)
    save(kit / "photos" / "p1.jpg", 80, 80)
    (kit / "photos" / "p1.jpg").write_bytes((kit / "photos" / "p1.jpg").read_bytes()[:100])  # truncated
    (kit / "photos" / "boxes.txt").write_text("p0.jpg\n2\n10 10 30 30 0 0 0 0 0 0\n50 10 30 30 0 0 0 0 0 0\n"
                                              "p1.jpg\n1\n10 10 30 30 0 0 0 0 0 0\n")
    negatives = [f"train/n{i}.jpg 10 10 gray" for i in range(20)]  # not loaded: need not exist
    negatives[9], negatives[19] = "held/n9.jpg 70 40 gray", "held/n19.jpg 71 40 color"
    save(kit / "negatives" / "held" / "n9.jpg", 40, 70, gray=True)
    save(kit / "negatives" / "held" / "n19.jpg", 40, 71)
    (kit / "negatives" / "files.txt").write_text("\n".join(negatives) + "\n")
    return kit


def test_evaluate_on_a_fake_kit(fake_kit, tmp_path, capsys):
    detector = FakeDetector(FAKE_TABLE)
    results = evaluate(detector, fake_kit, tmp_path / "out", name="fake", progress=False)
    assert len(detector.seen) == 3 + 1 + 2  # the broken photo never reaches the detector
    assert "p1.jpg" in capsys.readouterr().err

    val = results["val"]
    assert (val["images"], val["faces"], val["detected"], val["false_positives"]) == (3, 3, 2, 2)
    assert val["recall"] == pytest.approx(2 / 3)
    # pooled: 0.95 TP, 0.9 TP, 0.8 FP (the duplicate), 0.7 FP
    assert val["roc"]["thresholds"] == pytest.approx([0.95, 0.9, 0.8, 0.7])
    assert val["roc"]["true_positives"] == [1, 2, 2, 2] and val["roc"]["false_positives"] == [0, 0, 1, 2]
    assert val["ap"] == pytest.approx(2 / 3)
    assert val["failed"] == []
    # both found faces were found by a detection with all five points at (0, 0)
    error = np.mean(np.hypot(*POINTS.T)) / 12
    assert val["landmark_error"] == {"faces": 2, "mean": pytest.approx(error), "median": pytest.approx(error)}

    photos = results["photos"]
    assert (photos["images"], photos["faces"], photos["detected"], photos["false_positives"]) == (1, 2, 1, 0)
    assert photos["recall"] == 0.5 and photos["ap"] == 0.5
    assert [p.rsplit("/", 1)[-1] for p in photos["failed"]] == ["p1.jpg"]

    negatives = results["negatives"]
    assert (negatives["images"], negatives["faces"], negatives["false_positives"]) == (2, 0, 3)
    assert negatives["recall"] is None and negatives["false_positives_per_photo"] == 1.5
    assert negatives["gray"] == {"images": 1, "false_positives": 2}
    assert negatives["color"] == {"images": 1, "false_positives": 1}
    assert negatives["per_photo"] == {"held/n9.jpg": 2, "held/n19.jpg": 1}
    assert negatives["roc"]["false_positives"] == [1, 2, 3]

    # 2 photos allow floor(0.2) = 0 false positives: keep scores above the best one, 0.6
    point = results["operating_point"]
    assert point["allowed"] == 0 and point["score_above"] == pytest.approx(0.6) and point["false_positives"] == 0
    assert point["val_recall"] == pytest.approx(2 / 3) and point["photos_recall"] == 0.5

    assert json.loads((tmp_path / "out" / "evaluation.json").read_text()) == results
    assert (tmp_path / "out" / "roc.png").stat().st_size > 1000
    table = format_summary(results)
    assert "val" in table and "0.667" in table and "gray 2 on 1, colour 1 on 1" in table
    assert "photos: 1 images failed to load" in table
    assert f"landmarks: mean error {error:.4f}" in table and "over the 2 val faces found" in table


def test_evaluate_fails_early_on_a_wrong_folder(tmp_path):
    with pytest.raises(FileNotFoundError):
        evaluate(FakeDetector({}), tmp_path, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


def test_json_keeps_lists_of_numbers_on_one_line():
    results = {"a": [1, 2.5, None], "names": ["x  y.jpg", "[1,  2]"], "b": {"c": [], "d": {}},
               "e": [[1, 2], {"f": 3}]}
    text = to_json(results)
    assert json.loads(text) == results
    assert '\n  "a": [1, 2.5, null],\n' in text and '"[1,  2]"' in text


# ---------------------------------------------------------------- the command line


def test_cli_evaluate_on_a_fake_kit(fake_kit, tmp_path, monkeypatch, capsys):
    # the released MTCNN finds nothing on flat gray images; FACECASCADE_DATA stands in for --data
    monkeypatch.setenv("FACECASCADE_DATA", str(fake_kit))
    code = main(["evaluate", "--out", str(tmp_path / "out")])
    captured = capsys.readouterr()
    assert code == 1  # one photo failed to load
    assert "p1.jpg" in captured.err
    assert "mtcnn: faces found at IoU >= 0.5" in captured.out
    results = json.loads((tmp_path / "out" / "evaluation.json").read_text())
    assert results["detector"] == "mtcnn" and results["val"]["faces"] == 3 and results["val"]["detected"] == 0


def test_cli_evaluate_and_train_need_data_and_say_so_alike(tmp_path, monkeypatch, capsys):
    nowhere = str(tmp_path / "nowhere")
    monkeypatch.setenv("FACECASCADE_DATA", nowhere)
    assert main(["evaluate", "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert f"error: face data kit not found: {nowhere} ($FACECASCADE_DATA) is not a folder; pass --data" in err
    for command in (["evaluate"], ["train", "mtcnn"], ["train", "cascade"]):
        assert main([*command, "--data", nowhere, "--out", str(tmp_path / "out")]) == 1
        assert f"error: face data kit not found: {nowhere} (--data) is not a folder" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_cli_evaluate_refuses_unknown_weights_and_a_missing_cascade(tmp_path, monkeypatch, capsys):
    assert main(["evaluate", "--data", str(tmp_path), "--out", str(tmp_path), "--weights", "mine"]) == 1
    assert "--weights mine: not one of released, scratch, nor a folder" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "pipeline.detection.cascade", None)  # as if the module did not exist
    assert main(["evaluate", "--detector", "cascade", "--data", str(tmp_path), "--out", str(tmp_path)]) == 1
    assert "the Cascade-CNN detector is not available yet" in capsys.readouterr().err


# ---------------------------------------------------------------- the released MTCNN on the real kit


@pytest.mark.slow
def test_released_mtcnn_on_the_data_kit(tmp_path):
    """The numbers of the independent check of the released MTCNN: val recall 0.995 (995 of 1,000),
    photos 0.977 (42 of 43), 2 false positives on the 177 held-out face-free photos (both gray)."""
    data = require_data("cuhk80", "val.txt").parents[1]
    from pipeline.detection.mtcnn import MTCNNDetector

    results = evaluate(MTCNNDetector(), data, tmp_path, name="mtcnn", progress=False)
    assert (results["val"]["images"], results["val"]["faces"], results["val"]["detected"]) == (1000, 1000, 995)
    assert (results["photos"]["images"], results["photos"]["faces"], results["photos"]["detected"]) == (9, 43, 42)
    negatives = results["negatives"]
    assert (negatives["images"], negatives["false_positives"]) == (177, 2)
    assert negatives["gray"] == {"images": 157, "false_positives": 2}
    assert negatives["color"] == {"images": 20, "false_positives": 0}
    assert f"{results['val']['recall']:.3f}" == "0.995" and f"{results['photos']['recall']:.3f}" == "0.977"
    assert f"{negatives['false_positives_per_photo']:.3f}" == "0.011"
    assert results["operating_point"]["score_above"] is None  # 2 <= 17 allowed
    assert not any(results[key]["failed"] for key in ("val", "photos", "negatives"))
    # landmarks: the mean distance to the annotated points is 0.118 eye distances
    marks = results["val"]["landmark_error"]
    assert marks["faces"] == 995 and f"{marks['mean']:.4f}" == "0.1183"


def add_wider_and_wild(kit):
    """Five WIDER photos (the fifth, position 4, is the validation split) with the benchmark's
    .mat files, and five wild_landmarks crops (the fifth is validation)."""
    from scipy.io import savemat

    names, boxes = [f"e/p{k}" for k in range(5)], []
    lines = []
    for k, name in enumerate(names):
        save(kit / "wider" / "images" / f"{name}.jpg", 120, 130 + k)
        lines += [f"{name}.jpg", "2", "10 10 30 40 0 0 0 0 0 0", "60 10 30 40 0 0 0 0 0 0"]
        boxes.append(np.array([[10, 10, 30, 40], [60, 10, 30, 40]], np.float64))
    (kit / "wider" / "wider_face_bbx_gt.txt").write_text("\n".join(lines) + "\n")
    gt = kit / "wider" / "ground_truth"
    gt.mkdir()

    def cells(values):
        out = np.empty((len(values), 1), dtype=object)
        for i, v in enumerate(values):
            out[i, 0] = v
        return out

    savemat(gt / "wider_face_val.mat", {
        "event_list": cells([np.array(["e"])]),
        "file_list": cells([cells([np.array([n.split("/")[1]]) for n in names])]),
        "face_bbx_list": cells([cells(boxes)])})
    for setting in ("easy", "medium", "hard"):
        scored = [np.array([[1]]) if setting == "easy" else np.array([[1], [2]]) for _ in names]
        savemat(gt / f"wider_{setting}_val.mat", {"gt_list": cells([cells(scored)])})
    save(kit / "wild_landmarks" / "images" / "w.jpg", 96, 96)
    (kit / "wild_landmarks" / "landmarks.txt").write_text(
        ("images/w.jpg 30 66 30 70 40 45 56 45 48 55 42 62 54 62\n") * 5)


def test_evaluate_scores_wider_with_the_benchmarks_protocol_on_a_fake_kit(fake_kit, tmp_path):
    pytest.importorskip("scipy", reason="the .mat files are read with SciPy (the wider extra)")
    add_wider_and_wild(fake_kit)
    # the validation photo (120 x 134): the first face found, the second face (outside easy) too
    table = dict(FAKE_TABLE)
    table[(120, 134)] = [([10, 10, 40, 50], 0.9), ([60, 10, 90, 50], 0.8)]
    results = evaluate(FakeDetector(table), fake_kit, tmp_path / "out", name="fake", progress=False)
    wider = results["wider"]
    assert wider["photos"] == 1 and wider["faces"] == {"easy": 1, "medium": 2, "hard": 2}
    assert wider["easy"] == pytest.approx(1.0)  # the second detection is ignored in easy
    assert wider["medium"] == pytest.approx(1.0) and wider["failed"] == []
    assert results["wild_landmarks"]["faces"] == 1 and results["wild_landmarks"]["detected"] == 0
    summary = format_summary(results)
    assert "WIDER FACE (1 photos, the benchmark's protocol): AP easy 1.000, medium 1.000" in summary


def test_evaluate_without_wider_in_the_kit_says_so(fake_kit, tmp_path):
    results = evaluate(FakeDetector(FAKE_TABLE), fake_kit, tmp_path / "out", name="fake", progress=False)
    assert "not in the kit" in results["wider"]["skipped"]
    assert "WIDER FACE AP not measured" in format_summary(results)
