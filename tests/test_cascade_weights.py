"""The shipped Cascade-CNN weights: they load without pickle, carry their thresholds, and the
detector built on them finds the face in two portraits (where the released MTCNN finds it)."""

from __future__ import annotations

import numpy as np
import pytest

from nets import Net12, Net24
from nets.cascade_weights import NET_CLASSES, load_net, round_to_storage, save_net, shipped_cascade, weights_path
from nets.weights import WEIGHTS_DIR, WeightsError, read_npz
from pipeline.detection.boxes import pairwise_overlap
from pipeline.detection.cascade import CascadeDetector
from pipeline.cli.demo import sample_photo
from pipeline.detection.mtcnn import MTCNNDetector


def test_every_net_ships_with_float16_arrays_and_its_facts():
    total = 0
    for name in NET_CLASSES:
        path = weights_path(name, WEIGHTS_DIR)
        total += path.stat().st_size
        arrays = read_npz(path)
        params = {k: v for k, v in arrays.items() if not k.startswith("meta.")}
        assert params and all(v.dtype == np.float16 for v in params.values()), name
        assert not any(k.startswith("branch") for k in params), f"{name} stores its frozen branch again"
        if name.startswith("net"):
            assert 0.0 < float(arrays["meta.threshold"]) < 1.0, name
    assert total < 7e6, f"the six files hold {total / 1e6:.1f} MB"
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


def test_a_net_file_holds_its_own_parameters_and_takes_the_branch_from_the_smaller_net(tmp_path, rng):
    net12 = Net12(rng=rng)
    round_to_storage(net12)
    save_net(net12, weights_path("net12", tmp_path), {"threshold": 0.1})
    net24 = Net24(rng=rng)
    net24.load_branch_from(net12)
    round_to_storage(net24)
    save_net(net24, weights_path("net24", tmp_path), {"threshold": 0.2})
    assert not any(k.startswith("branch12") for k in read_npz(weights_path("net24", tmp_path)))
    loaded, meta = load_net("net24", tmp_path)
    assert float(meta["threshold"]) == pytest.approx(0.2)
    for (name, a), (_, b) in zip(net24.named_parameters(), loaded.named_parameters()):
        np.testing.assert_array_equal(a.value, b.value, err_msg=name)  # rounded before saving: exact
    x = rng.standard_normal((2, 3, 24, 24)).astype(np.float32)
    np.testing.assert_array_equal(net24.eval().forward(x), loaded.forward(x))


def test_a_file_that_does_not_match_its_net_is_refused(tmp_path, rng):
    save_net(Net12(rng=rng), weights_path("net12", tmp_path))
    arrays = read_npz(weights_path("net12", tmp_path))
    del arrays["fc2.w"]
    from nets.weights import save_arrays

    save_arrays(arrays, weights_path("net12", tmp_path))
    with pytest.raises(WeightsError, match="missing \\['fc2.w'\\]"):
        load_net("net12", tmp_path)
