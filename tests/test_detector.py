"""The MTCNN detector's API and its handling of unusual input."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from nets import ONet, PNet, RNet, WeightsError, load_weights, pretrained_mtcnn, save_weights
from pipeline import MTCNNDetector
from pipeline.images import ImageError
from pipeline.proposals import heatmap_to_boxes, pnet_maps


@pytest.fixture(scope="module")
def detector():
    return MTCNNDetector()


@pytest.fixture(scope="module")
def astronaut():
    skimage_data = pytest.importorskip("skimage.data")
    return skimage_data.astronaut()


def test_detect_returns_faces_best_first(detector, astronaut):
    faces = detector.detect(astronaut)
    assert len(faces) == 1
    face = faces[0]
    assert face.box.shape == (4,) and face.landmarks.shape == (5, 2)
    assert 0.99 < face.score <= 1.0
    x1, y1, x2, y2 = face.box
    # every landmark inside the box, eyes above the mouth, left eye left of the right eye
    assert np.all((face.landmarks[:, 0] > x1) & (face.landmarks[:, 0] < x2))
    assert np.all((face.landmarks[:, 1] > y1) & (face.landmarks[:, 1] < y2))
    assert face.landmarks[0, 0] < face.landmarks[1, 0]
    assert face.landmarks[:2, 1].max() < face.landmarks[3:, 1].min()


def test_same_faces_from_array_pil_and_path(detector, astronaut, tmp_path):
    path = tmp_path / "astronaut.png"
    Image.fromarray(astronaut).save(path)
    results = [detector.detect(src) for src in (astronaut, Image.fromarray(astronaut), path, str(path))]
    for faces in results[1:]:
        assert len(faces) == len(results[0])
        np.testing.assert_array_equal(faces[0].box, results[0][0].box)


def test_trace_records_every_stage(detector, astronaut):
    faces, trace = detector.detect(astronaut, trace=True)
    assert len(trace.scales) == len(trace.prob_maps) == len(trace.level_candidates) > 0
    counts = [n for _, n in trace.counts()]
    assert counts[-1] == len(faces)
    # each NMS and threshold can only remove boxes
    assert counts[0] >= counts[1] >= counts[2]
    assert trace.rnet_input.boxes.shape[1] == 4 and len(trace.rnet_input) == len(trace.rnet_input.scores)
    assert len(trace.rnet_passed) >= len(trace.rnet_after_nms) == len(trace.rnet_output)
    assert len(trace.onet_passed) >= len(trace.onet_output)
    assert trace.landmarks.shape == (len(faces), 5, 2)


@pytest.mark.parametrize("shape", [(11, 11, 3), (1, 1, 3), (30, 8, 3), (12, 12, 3)])
def test_tiny_images_give_no_faces(detector, shape):
    assert detector.detect(np.zeros(shape, np.uint8)) == []


def test_blank_image_gives_no_faces(detector):
    faces, trace = detector.detect(np.full((120, 160, 3), 128, np.uint8), trace=True)
    assert faces == []
    assert len(trace.onet_output) == 0


def test_grayscale_and_rgba_inputs(detector, astronaut):
    rgb_faces = detector.detect(astronaut)
    gray = np.asarray(Image.fromarray(astronaut).convert("L"))
    assert len(detector.detect(gray)) == 1
    rgba = np.dstack([astronaut, np.full(astronaut.shape[:2], 255, np.uint8)])
    np.testing.assert_array_equal(detector.detect(rgba)[0].box, rgb_faces[0].box)


def test_exif_rotated_photo_is_turned_upright(detector, astronaut, tmp_path):
    # Store the photo rotated with an EXIF tag saying "rotate 90 degrees clockwise to view":
    # the detector must see (and report boxes in) the upright photo.
    stored = Image.fromarray(astronaut).transpose(Image.Transpose.ROTATE_90)
    exif = stored.getexif()
    exif[0x0112] = 6
    path = tmp_path / "rotated.jpg"
    stored.save(path, exif=exif, quality=95)
    faces = detector.detect(path)
    upright = detector.detect(astronaut)
    assert len(faces) == 1
    assert np.abs(faces[0].box - upright[0].box).max() < 6  # JPEG changes pixels a little


def test_bad_files_raise_image_error_naming_the_file(detector, tmp_path):
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    for path in (empty, text, tmp_path / "missing.jpg"):
        with pytest.raises(ImageError, match=path.name):
            detector.detect(path)


def test_bad_parameters_are_refused():
    with pytest.raises(ValueError, match="thresholds"):
        MTCNNDetector(thresholds=(0.6, 0.7))
    with pytest.raises(ValueError, match="min_face_size"):
        MTCNNDetector(min_face_size=0)
    with pytest.raises(ValueError, match="factor"):
        MTCNNDetector(factor=1.0)


def test_pnet_tiles_stitch_to_the_whole_level():
    pnet = pretrained_mtcnn()[0]
    level = np.random.default_rng(0).uniform(-1, 1, (3, 61, 47)).astype(np.float32)
    whole_prob, whole_offsets = pnet_maps(pnet, level, tile_pixels=10**9)
    for tile_pixels in (47 * 12, 47 * 13, 47 * 20, 47 * 33):
        prob, offsets = pnet_maps(pnet, level, tile_pixels=tile_pixels, min_rows=1)
        np.testing.assert_allclose(prob, whole_prob, rtol=0, atol=1e-6)
        np.testing.assert_allclose(offsets, whole_offsets, rtol=0, atol=1e-6)


def test_heatmap_cell_maps_to_its_window():
    prob = np.zeros((3, 4), np.float32)
    prob[2, 1] = 0.9
    boxes, scores, offsets = heatmap_to_boxes(prob, np.zeros((4, 3, 4), np.float32), scale=1.0, threshold=0.6)
    # cell (row 2, col 1) is the window starting at (x, y) = (2, 4), 12 pixels wide
    np.testing.assert_array_equal(boxes, [[2, 4, 14, 16]])
    assert scores.tolist() == [pytest.approx(0.9)]
    none = heatmap_to_boxes(prob, np.zeros((4, 3, 4), np.float32), scale=0.5, threshold=0.95)
    assert none[0].shape == (0, 4) and none[1].shape == (0,) and none[2].shape == (0, 4)


@pytest.mark.parametrize("net_class, nominal, params", [(PNet, 12, 6632), (RNet, 24, 100178), (ONet, 48, 389040)])
def test_nets_match_the_released_models(net_class, nominal, params):
    net = net_class().eval()
    assert net.num_parameters() == params
    out = net.forward(np.zeros((2, 3, nominal, nominal), np.float32))
    assert out["face"].shape[:2] == (2, 2) and out["box"].shape[:2] == (2, 4)
    assert f"{params:,}" in net.summary()


def test_pnet_is_fully_convolutional():
    out = PNet().forward(np.zeros((1, 3, 480, 640), np.float32))
    # OH = ceil((H - 2) / 2) - 4
    assert out["face"].shape == (1, 2, 235, 315)


def test_weights_of_wrong_shape_or_dtype_are_refused(tmp_path):
    net = RNet()
    good = tmp_path / "rnet.npz"
    save_weights(net, good)
    load_weights(RNet(), good)
    state = dict(np.load(good))
    state["fc4.w"] = state["fc4.w"][:-1]
    np.savez(tmp_path / "short.npz", **state)
    with pytest.raises(WeightsError, match="fc4.w"):
        load_weights(RNet(), tmp_path / "short.npz")
    state = dict(np.load(good))
    state["conv1.b"] = state["conv1.b"].astype(np.float64)
    np.savez(tmp_path / "f64.npz", **state)
    with pytest.raises(WeightsError, match="conv1.b.*float64"):
        load_weights(RNet(), tmp_path / "f64.npz")
    state = dict(np.load(good))
    del state["face.w"]
    np.savez(tmp_path / "missing.npz", **state)
    with pytest.raises(WeightsError, match="face.w"):
        load_weights(RNet(), tmp_path / "missing.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip file")
    with pytest.raises(WeightsError, match="junk.npz"):
        load_weights(RNet(), tmp_path / "junk.npz")
    np.savez(tmp_path / "pickled.npz", **{"conv1.w": np.array([object()], dtype=object)})
    with pytest.raises(WeightsError, match="pickled.npz"):
        load_weights(RNet(), tmp_path / "pickled.npz")


@pytest.mark.slow
def test_a_6000_by_4000_photo_completes(detector, astronaut):
    # P-Net's largest level is 3600 x 2400 here; it runs in strips (proposals.TILE_PIXELS),
    # so the im2col matrices stay bounded. Peak memory is reported by benchmarks/bench_detect.py.
    big = np.asarray(Image.fromarray(astronaut).resize((6000, 4000), Image.BILINEAR))
    faces = detector.detect(big)
    assert len(faces) == 1
    x1, y1, x2, y2 = faces[0].box
    assert 1900 < (x1 + x2) / 2 < 2700 and 500 < (y1 + y2) / 2 < 1400  # the astronaut's face, scaled
