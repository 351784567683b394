"""The Cascade-CNN detector's geometry and stages, with untrained nets (fast, no weights needed)."""

from __future__ import annotations

import numpy as np
import pytest

from nets import CalibNet12, CalibNet24, CalibNet48, Net12, Net24, Net48
from nets.cascade_weights import CascadeNets
from pipeline.detection.cascade import SCAN_STRIDE, WINDOW, CascadeDetector, heatmap_windows, window_to_box


def random_nets(thresholds=(0.0, 0.0, 0.0)) -> CascadeNets:
    rng = np.random.default_rng(0)
    nets = [cls(rng=rng).inference() for cls in (Net12, CalibNet12, Net24, CalibNet24, Net48, CalibNet48)]
    return CascadeNets(*nets, thresholds=thresholds, aspect=1.3)


def test_heatmap_cells_map_to_their_windows():
    prob = np.zeros((3, 4), np.float32)
    prob[2, 1] = 0.9
    boxes, scores = heatmap_windows(prob, scale=0.5, threshold=0.5)
    np.testing.assert_allclose(boxes, [[1 * SCAN_STRIDE / 0.5, 2 * SCAN_STRIDE / 0.5,
                                        1 * SCAN_STRIDE / 0.5 + WINDOW / 0.5, 2 * SCAN_STRIDE / 0.5 + WINDOW / 0.5]])
    np.testing.assert_allclose(scores, [0.9])
    assert heatmap_windows(prob, 1.0, 0.95)[0].shape == (0, 4)


def test_window_to_box_keeps_centre_and_area():
    windows = np.array([[10.0, 20.0, 50.0, 60.0]])
    box = window_to_box(windows, 1.44)[0]
    w, h = box[2] - box[0], box[3] - box[1]
    assert h / w == pytest.approx(1.44, rel=1e-5)
    assert w * h == pytest.approx(40.0 * 40.0, rel=1e-5)
    assert ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2) == pytest.approx((30.0, 40.0))


def test_every_stage_runs_and_the_trace_records_it(rng):
    image = rng.integers(0, 256, (64, 80, 3), dtype=np.uint8)
    detector = CascadeDetector(min_face_size=24, nets=random_nets(), workers=1)
    faces, trace = detector.detect(image, trace=True)
    assert trace.detector == "Cascade-CNN" and trace.stage_names == ("12-net", "24-net", "48-net")
    assert len(trace.prob_maps) == len(trace.scales) > 0
    # threshold 0: every window of the scan is a candidate
    assert sum(len(b) for b in trace.level_candidates) == sum(p.size for p in trace.prob_maps)
    counts = dict(trace.counts())
    assert counts["24-net passed threshold"] == counts["24-net input"]
    assert len(faces) == len(trace.stage3_output) > 0
    scores = [f.score for f in faces]
    assert scores == sorted(scores, reverse=True)
    for face in faces:
        assert face.box.shape == (4,) and face.landmarks.shape == (0, 2)
        w, h = face.box[2] - face.box[0], face.box[3] - face.box[1]
        assert h / w == pytest.approx(1.3, rel=1e-4)


def test_nothing_passes_a_threshold_of_one(rng):
    image = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
    faces, trace = CascadeDetector(nets=random_nets((1.0, 1.0, 1.0)), workers=1).detect(image, trace=True)
    assert faces == [] and len(trace.stage1_output) == 0


def test_an_image_smaller_than_the_window_gives_no_faces():
    tiny = np.zeros((8, 30, 3), np.uint8)
    with pytest.warns(UserWarning, match="no pyramid level fits"):
        assert CascadeDetector(nets=random_nets(), workers=1).detect(tiny) == []


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="min_face_size"):
        CascadeDetector(min_face_size=0, nets=random_nets())
    with pytest.raises(ValueError, match="min_face_size must be a number"):
        CascadeDetector(min_face_size="20", nets=random_nets())
    with pytest.raises(ValueError, match="thresholds"):
        CascadeDetector(thresholds=(0.5, 0.5), nets=random_nets())


def test_repr_is_a_short_summary():
    text = repr(CascadeDetector(nets=random_nets((0.1, 0.2, 0.3)), workers=1))
    assert text.startswith("CascadeDetector(min_face_size=20") and "0.2" in text and len(text) < 200


def _same_detections(trace1, trace2):
    """Stage 1's maps are computed whole in one worker, so they are equal bit for bit; the
    nets on crops see them in other batches, which BLAS may sum in another order."""
    assert len(trace1.prob_maps) == len(trace2.prob_maps)
    for a, b in zip(trace1.prob_maps, trace2.prob_maps):
        np.testing.assert_array_equal(a, b)
    assert trace1.counts() == trace2.counts()
    np.testing.assert_allclose(trace1.stage3_output.boxes, trace2.stage3_output.boxes, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(trace1.stage3_output.scores, trace2.stage3_output.scores, rtol=1e-4, atol=1e-6)


def test_two_workers_find_what_one_finds_and_see_changed_settings(rng):
    """With two workers the stages run partly in a helper process, a fork of the detector made
    at its first detection: thresholds changed afterwards must still reach every share."""
    image = rng.integers(0, 256, (90, 120, 3), dtype=np.uint8)
    one = CascadeDetector(min_face_size=24, nets=random_nets(), workers=1)
    two = CascadeDetector(min_face_size=24, nets=random_nets(), workers=2)
    for thresholds in [(0.0, 0.0, 0.0), (0.3, 0.35, 0.95)]:
        one.thresholds = two.thresholds = thresholds
        (faces1, trace1), (faces2, trace2) = one.detect(image, trace=True), two.detect(image, trace=True)
        _same_detections(trace1, trace2)
        assert len(faces1) == len(faces2) > 0
    assert two.runner.parallel._helpers is not None  # the shares did run in a helper


@pytest.mark.parametrize("workers", [1, 2])
def test_a_detector_sees_changes_to_the_nets_it_was_given(rng, workers):
    """The helper processes are forks with the nets of their day, but a change to the weights
    (here the 48-net's last bias) shows in the next detection."""
    image = rng.integers(0, 256, (64, 80, 3), dtype=np.uint8)
    nets = random_nets(thresholds=(0.0, 0.0, 0.5))
    detector = CascadeDetector(min_face_size=24, nets=nets, workers=workers)
    bias = nets.net48.children["fc2"].params["b"].value
    bias[...] = [-20.0, 20.0]  # the 48-net calls every window a face
    assert len(detector.detect(image)) > 0
    bias[...] = [20.0, -20.0]  # and now none
    assert detector.detect(image) == []
    bias[...] = [-20.0, 20.0]
    assert len(detector.detect(image)) > 0
