"""The shipped Cascade-CNN weights: they load without pickle, carry their thresholds, and the
detector built on them finds the face in two portraits (where the released MTCNN finds it)."""

from __future__ import annotations

import numpy as np
import pytest

from nets.cascade_weights import NET_CLASSES, shipped_cascade, weights_path
from nets.weights import WEIGHTS_DIR, read_npz
from pipeline.boxes import pairwise_overlap
from pipeline.cascade import CascadeDetector
from pipeline.demo import sample_photo
from pipeline.mtcnn import MTCNNDetector


def test_every_net_ships_with_float32_arrays_and_its_facts():
    for name in NET_CLASSES:
        arrays = read_npz(weights_path(name, WEIGHTS_DIR))
        params = {k: v for k, v in arrays.items() if not k.startswith("meta.")}
        assert params and all(v.dtype == np.float32 for v in params.values()), name
        if name.startswith("net"):
            assert 0.0 < float(arrays["meta.threshold"]) < 1.0, name
    nets = shipped_cascade()
    assert all(0.0 <= t < 1.0 for t in nets.thresholds)
    assert 1.1 < nets.aspect < 1.5  # face boxes are taller than wide


@pytest.fixture(scope="module")
def cascade():
    return CascadeDetector()


@pytest.mark.parametrize("photo", ["grace_hopper", "astronaut"])
def test_the_shipped_cascade_finds_the_face_mtcnn_finds(cascade, photo):
    if photo == "grace_hopper":
        image = sample_photo()
    else:
        skimage_data = pytest.importorskip("skimage.data")
        image = skimage_data.astronaut()
    reference = MTCNNDetector().detect(image)
    assert len(reference) == 1
    faces = cascade.detect(image)
    assert faces, f"no face found in {photo}"
    overlap = pairwise_overlap(np.array([f.box for f in faces]), reference[0].box[None])[:, 0]
    assert overlap.max() >= 0.5, f"best IoU with MTCNN's face {overlap.max():.2f}"
    assert overlap[0] >= 0.5, "the best-scored detection should be the face"
