"""MTCNN's weight sets: released, scratch (trained here, shipped) and a training run's folder."""

from __future__ import annotations

import numpy as np
import pytest

from nets import ONet, PNet, RNet, WeightsError, load_mtcnn, save_weights
from nets.mtcnn_weights import RELEASED_THRESHOLDS, scratch_path
from nets.weights import WEIGHTS_DIR
from pipeline.detection.boxes import iou
from pipeline.cli.demo import sample_photo
from pipeline.evaluation.evaluate import landmark_error
from pipeline.detection.mtcnn import MTCNNDetector


def write_run(folder, thresholds=(0.1, 0.2, 0.3), operating=None):
    """Three small-init nets with their thresholds, as `facecascade train mtcnn` writes them."""
    for (name, cls), threshold in zip((("pnet", PNet), ("rnet", RNet), ("onet", ONet)), thresholds):
        meta = {"threshold": threshold}
        if name == "onet" and operating is not None:
            meta["operating_threshold"] = operating
        save_weights(cls(landmarks=True), scratch_path(name, folder), meta)
    return folder


def test_released_set_has_the_authors_thresholds_and_conventions():
    nets = load_mtcnn("released")
    assert nets.thresholds == RELEASED_THRESHOLDS and nets.conventions == "released"
    assert "landmarks" not in nets.pnet.head_names and not nets.onet.training


def test_a_run_folder_loads_with_its_own_thresholds(tmp_path):
    nets = load_mtcnn(write_run(tmp_path, operating=0.9))
    assert nets.thresholds == pytest.approx((0.1, 0.2, 0.9))  # O-Net's operating threshold wins
    assert nets.conventions == "exact"
    assert load_mtcnn(write_run(tmp_path / "b")).thresholds == pytest.approx((0.1, 0.2, 0.3))
    detector = MTCNNDetector(weights=tmp_path)
    assert detector.thresholds == pytest.approx((0.1, 0.2, 0.9)) and detector.exact
    assert MTCNNDetector(weights=tmp_path, thresholds=(0.5, 0.5, 0.5)).thresholds == (0.5, 0.5, 0.5)
    assert not MTCNNDetector(weights=tmp_path, conventions="released").exact


def test_bad_weight_sets_are_refused_by_name(tmp_path):
    with pytest.raises(ValueError, match="weights must be one of"):
        load_mtcnn("mine")
    with pytest.raises(WeightsError, match="mtcnn_pnet.npz: weights file not found"):
        load_mtcnn(tmp_path)
    write_run(tmp_path)
    save_weights(ONet(landmarks=True), scratch_path("onet", tmp_path))  # no threshold stored
    with pytest.raises(WeightsError, match="mtcnn_onet.npz: no meta.threshold"):
        load_mtcnn(tmp_path)
    with pytest.raises(ValueError, match="either nets or weights"):
        MTCNNDetector(nets=load_mtcnn("released").nets, weights=tmp_path)


shipped = pytest.mark.skipif(not scratch_path("onet", WEIGHTS_DIR).is_file(),
                             reason="the scratch MTCNN weights are not in nets/weights/ yet")


@shipped
def test_shipped_scratch_weights_load_with_thresholds_chosen_in_training():
    nets = load_mtcnn("scratch")
    assert nets.conventions == "exact"
    assert all(0 < t < 1 for t in nets.thresholds) and nets.thresholds != RELEASED_THRESHOLDS


@shipped
def test_scratch_weights_find_grace_hoppers_face_and_its_landmarks():
    photo = sample_photo()
    released = MTCNNDetector(workers=1).detect(photo)
    scratch = MTCNNDetector(weights="scratch", workers=1).detect(photo)
    assert len(released) == 1 and len(scratch) >= 1
    best = scratch[0]
    assert iou(best.box, released[0].box[None])[0] > 0.6
    # within a quarter of the eye distance of the released model's points, on average
    assert landmark_error(best.landmarks, released[0].landmarks) < 0.25
