"""The MTCNN detector's API and its handling of unusual input."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from tolerances import FLOAT32_FORWARD, assert_close
from PIL import Image

from nets import ONet, PNet, RNet, WeightsError, load_weights, pretrained_mtcnn, save_weights
from pipeline import MTCNNDetector
from pipeline.data.images import ImageError
from pipeline.detection.proposals import heatmap_to_boxes, pnet_maps, pnet_output_size
from pipeline.fast.strips import pnet_maps_in_strips


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
    assert trace.stage2_input.boxes.shape[1] == 4 and len(trace.stage2_input) == len(trace.stage2_input.scores)
    assert len(trace.stage2_passed) >= len(trace.stage2_after_nms) == len(trace.stage2_output)
    assert len(trace.stage3_passed) >= len(trace.stage3_output)
    assert trace.landmarks.shape == (len(faces), 5, 2)


@pytest.mark.parametrize("shape", [(11, 11, 3), (1, 1, 3), (30, 8, 3), (12, 12, 3)])
def test_tiny_images_give_no_faces(detector, shape):
    with pytest.warns(UserWarning, match="no pyramid level fits"):
        assert detector.detect(np.zeros(shape, np.uint8)) == []


def test_min_face_larger_than_the_image_is_reported(detector):
    image = np.full((60, 80, 3), 128, np.uint8)
    big = MTCNNDetector(min_face_size=100)
    with pytest.warns(UserWarning, match=r"no pyramid level fits.*80 x 60 px.*min_face_size = 100") as caught:
        faces, trace = big.detect(image, trace=True)
    assert faces == [] and trace.scales == [] and len(caught) == 1
    assert len(trace.notes) == 1 and "at most 60 px" in trace.notes[0]
    assert "note: no pyramid level fits" in repr(trace)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a level fits: no warning, no note
        faces, trace = detector.detect(image, trace=True)
    assert trace.notes == []


def test_blank_image_gives_no_faces(detector):
    faces, trace = detector.detect(np.full((120, 160, 3), 128, np.uint8), trace=True)
    assert faces == []
    assert len(trace.stage3_output) == 0


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


@pytest.mark.parametrize("settings, message", [
    ({"min_face_size": "20"}, r"min_face_size must be a number; got '20' \(a str\)"),
    ({"min_face_size": True}, r"min_face_size must be a number"),
    ({"thresholds": 0.6}, r"thresholds must be 3 probabilities, one per stage.*got 0.6 \(a float\)"),
    ({"thresholds": "0.6"}, r"thresholds must be 3 probabilities"),
    ({"thresholds": (0.6, "0.7", 0.7)}, r"thresholds\[1\] must be a number"),
    ({"thresholds": (0.6, 1.7, 0.7)}, r"thresholds\[1\] must be a probability between 0 and 1"),
    ({"factor": None}, r"factor must be a number; got None"),
    ({"factor": 2}, r"factor must be between 0 and 1"),
    ({"workers": 0}, r"workers must be None or an integer >= 1; got 0 \(an int\)"),
    ({"workers": 1.5}, r"workers must be None or an integer >= 1"),
    ({"nets": "pnet"}, r"nets must be three nets"),
])
def test_wrong_argument_types_name_the_argument(settings, message):
    with pytest.raises(ValueError, match=message):
        MTCNNDetector(**settings)


def test_bad_image_arguments_name_the_argument(detector):
    with pytest.raises(ImageError, match=r"image must be a path, a PIL image or a NumPy array; got an int"):
        detector.detect(3)
    with pytest.raises(ImageError, match=r"image: cannot use an array of shape \(4, 4, 3\) and dtype float64"):
        detector.detect(np.zeros((4, 4, 3)))


def test_numpy_numbers_are_accepted():
    det = MTCNNDetector(min_face_size=np.int64(24), thresholds=np.array([0.6, 0.7, 0.7]), factor=np.float32(0.7))
    assert det.min_face_size == 24.0 and det.thresholds == (0.6, 0.7, 0.7)


def test_the_callers_nets_keep_their_mode_and_can_still_learn(astronaut):
    nets = pretrained_mtcnn()
    for net in nets:
        net.train()
    MTCNNDetector(nets=nets, workers=1).detect(astronaut[:200, 150:350])
    modules = [m for net in nets for m in (net, *net._descendants())]
    assert all(m.training and m.keep_cache for m in modules)  # back in training mode
    x = np.random.default_rng(0).standard_normal((2, 3, 24, 24)).astype(np.float32)
    out = nets[1].forward(x)
    dx = nets[1].backward({name: np.ones_like(value) for name, value in out.items()})
    assert dx.shape == x.shape  # backward works after a detection
    nets[2].eval()
    MTCNNDetector(nets=nets, workers=1).detect(astronaut[:100, :100])
    assert not nets[2].training and nets[2].keep_cache  # eval mode is kept too


@pytest.mark.parametrize("workers", [1, 2])
def test_a_detector_sees_changes_to_the_nets_it_was_given(astronaut, workers):
    """The detector keeps its nets in a faster layout between photos (BatchLastCache), and its
    helper processes are forks with the nets of their day, but a change to the weights shows
    in the next detection."""
    nets = pretrained_mtcnn()
    detector = MTCNNDetector(nets=nets, workers=workers)
    image = astronaut[:200, 150:350]
    assert len(detector.detect(image)) == 1
    face_bias = nets[2].children["face"].params["b"].value
    saved = face_bias.copy()
    face_bias += np.array([20.0, -20.0], np.float32)  # O-Net now calls everything "not a face"
    assert detector.detect(image) == []
    face_bias[...] = saved
    assert len(detector.detect(image)) == 1


def test_two_workers_see_changed_settings_and_give_the_traces_of_one(astronaut):
    """The helper processes start as copies of the detector; settings changed afterwards
    (thresholds, conventions) must still reach every share of the work. Stage 1 computes each
    pyramid level whole in one worker, so its results are the same bit for bit; R-Net and O-Net
    see their crops in other batches, which BLAS may sum in another order (float32 rounding)."""
    image = astronaut[:300, 100:400]
    one, two = MTCNNDetector(workers=1), MTCNNDetector(workers=2)
    for settings in [{}, {"thresholds": (0.9, 0.7, 0.7)}, {"thresholds": (0.6, 0.7, 0.7), "exact": True}]:
        for detector in (one, two):
            for name, value in settings.items():
                setattr(detector, name, value)
        (faces1, trace1), (faces2, trace2) = one.detect(image, trace=True), two.detect(image, trace=True)
        stage1 = [(a, b) for name in ("level_candidates", "level_after_nms")
                  for a, b in zip(getattr(trace1, name), getattr(trace2, name))]
        for a, b in stage1 + [(trace1.stage1_output, trace2.stage1_output)]:
            np.testing.assert_array_equal(a.boxes, b.boxes)
            np.testing.assert_array_equal(a.scores, b.scores)
        assert len(faces1) == len(faces2) == 1
        np.testing.assert_allclose(faces1[0].box, faces2[0].box, rtol=1e-5)
        np.testing.assert_allclose(faces1[0].landmarks, faces2[0].landmarks, rtol=1e-5)
    assert two.runner.parallel._helpers is not None  # the shares did run in a helper


def test_a_detector_that_has_detected_can_be_pickled(astronaut):
    """E.g. to send it to worker processes: its threads and caches are left behind and made again."""
    import pickle

    image = astronaut[:200, 150:350]
    detector = MTCNNDetector(workers=2)
    faces = detector.detect(image)
    again = pickle.loads(pickle.dumps(detector)).detect(image)
    assert len(again) == len(faces) == 1
    np.testing.assert_array_equal(again[0].box, faces[0].box)


def test_print_detector_and_trace_is_a_short_summary(detector, astronaut):
    text = repr(detector)
    assert text == ("MTCNNDetector(min_face_size=20, thresholds=(0.6, 0.7, 0.7), factor=0.709, "
                    f"workers={detector.runner.workers}, weights=released)")
    faces, trace = detector.detect(astronaut, trace=True)
    summary = repr(trace)
    assert summary.startswith("Trace of MTCNN on a 512 x 512 px image (W x H): ")
    assert "thresholds (0.6, 0.7, 0.7)" in summary
    assert len(summary.splitlines()) == 1 + len(trace.counts())
    assert len(summary) < 1000  # counts, not arrays
    for step, count in trace.counts():
        assert step in summary
    assert repr(trace.stage3_output).startswith("Boxes(1 box, scores ")


def test_trace_records_thresholds_and_which_boxes_passed(astronaut):
    det = MTCNNDetector(thresholds=(0.5, 0.8, 0.75))
    _, trace = det.detect(astronaut, trace=True)
    assert trace.thresholds == (0.5, 0.8, 0.75)
    for stage, threshold in (("stage2", 0.8), ("stage3", 0.75)):
        entering, mask = getattr(trace, f"{stage}_input"), getattr(trace, f"{stage}_passed_mask")
        assert mask.dtype == bool and mask.shape == (len(entering),)
        np.testing.assert_array_equal(mask, entering.scores > threshold)
        np.testing.assert_array_equal(entering.boxes[mask], getattr(trace, f"{stage}_passed").boxes)


def test_pnet_tiles_stitch_to_the_whole_level():
    pnet = pretrained_mtcnn()[0]
    level = np.random.default_rng(0).uniform(-1, 1, (3, 61, 47)).astype(np.float32)
    whole_prob, whole_offsets = pnet_maps(pnet, level)  # one plain pass over the level
    assert whole_prob.shape == (pnet_output_size(61), pnet_output_size(47))
    for tile_pixels in (47 * 12, 47 * 13, 47 * 20, 47 * 33, 10**9):
        prob, offsets = pnet_maps_in_strips(pnet, level, tile_pixels=tile_pixels, min_rows=1)
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
    assert (pnet_output_size(480), pnet_output_size(640)) == (235, 315)


@pytest.mark.parametrize("size", range(12, 40))
def test_pnet_output_size_is_the_layer_by_layer_formula(size):
    expected = -(-(size - 2) // 2) - 4  # ceil((size - 2) / 2) - 4
    assert pnet_output_size(size) == expected
    assert PNet().forward(np.zeros((1, 3, size, 12), np.float32))["face"].shape[2] == expected


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
    # P-Net's largest level is 3600 x 2400 px here; it runs in strips (strips.TILE_PIXELS),
    # so the im2col matrices stay bounded. Peak memory is reported by benchmarks/bench_detect.py.
    big = np.asarray(Image.fromarray(astronaut).resize((6000, 4000), Image.BILINEAR))
    faces = detector.detect(big)
    assert len(faces) == 1
    x1, y1, x2, y2 = faces[0].box
    assert 1900 < (x1 + x2) / 2 < 2700 and 500 < (y1 + y2) / 2 < 1400  # the astronaut's face, scaled


def test_exact_windows_are_the_cells_divided_by_the_scale():
    from pipeline.detection.proposals import heatmap_to_boxes

    prob = np.zeros((4, 5), np.float32)
    prob[3, 2] = 0.9
    offsets = np.zeros((4, 4, 5), np.float32)
    boxes, scores, _ = heatmap_to_boxes(prob, offsets, 0.6, 0.5, exact=True)
    np.testing.assert_allclose(boxes, [[4 / 0.6, 6 / 0.6, 16 / 0.6, 18 / 0.6]], rtol=1e-6)
    rounded, _, _ = heatmap_to_boxes(prob, offsets, 0.6, 0.5)
    assert not np.allclose(rounded, boxes)  # the released decoder rounds to whole pixels


def test_exact_conventions_still_find_the_face_with_the_released_nets():
    from pipeline.detection.boxes import iou
    from pipeline.cli.demo import sample_photo

    image = sample_photo()
    released = MTCNNDetector().detect(image)
    exact = MTCNNDetector(conventions="exact").detect(image)
    assert len(released) == len(exact) == 1
    # the released nets were trained with the rounded windows, so the exact ones move the box a
    # little (IoU 0.88 here): the same face, not the reference's pixels
    assert iou(released[0].box, exact[0].box[None])[0] > 0.8


def test_unknown_conventions_are_refused():
    with pytest.raises(ValueError, match="conventions"):
        MTCNNDetector(conventions="matlab")


def test_crop_and_score_in_chunks_equals_one_batch():
    from pipeline.detection.crops import crop_and_resize
    from pipeline.detection.runner import crop_and_score
    from pipeline.detection.proposals import normalize

    rng = np.random.default_rng(3)
    image = rng.uniform(0, 255, (3, 60, 80)).astype(np.float32)
    corners = rng.uniform(-10, 70, (9, 2))
    boxes = np.concatenate([corners, corners + rng.uniform(5, 30, (9, 2))], axis=1).astype(np.float32)
    boxes[[1, 2, 5]] = [[100, 100, 120, 120], [-50, 0, -20, 30], [90, 5, 99, 20]]  # outside the image
    rnet = RNet(rng=np.random.default_rng(4))
    patches, expected_kept = crop_and_resize(image, boxes, 24)
    expected = rnet.forward(normalize(patches))
    kept, out = crop_and_score(rnet, image, boxes, 24, batch=2)  # chunks of 2 boxes
    np.testing.assert_array_equal(kept, expected_kept)
    for name in expected:
        # float32 products blocked differently for 2 rows than for 9 (numpy 2.4's OpenBLAS moved
        # one entry by 1.5e-6, over the old elementwise 1e-6): the table's float32 tolerance
        assert_close(out[name], expected[name], FLOAT32_FORWARD, what=name)
    kept, out = crop_and_score(rnet, image, boxes[[1, 2]], 24)  # no box inside: nothing to run
    assert kept.size == 0 and out == {}


def test_detect_many_gives_one_result_per_image_in_order_and_goes_on_after_a_bad_one(tmp_path):
    from PIL import Image

    from pipeline import MTCNNDetector

    astronaut = pytest.importorskip("skimage.data").astronaut()
    Image.fromarray(astronaut).save(tmp_path / "astronaut.png")
    (tmp_path / "broken.jpg").write_bytes(b"not an image")
    detector = MTCNNDetector(workers=1)
    alone = detector.detect(astronaut)
    images = [tmp_path / "astronaut.png", tmp_path / "broken.jpg", astronaut[:200, :300].copy(),
              Image.fromarray(astronaut), np.zeros((8, 8, 3), np.uint8)]
    results = detector.detect_many(images)
    assert [r.source for r in results] == [str(tmp_path / "astronaut.png"), str(tmp_path / "broken.jpg"),
                                           "image 2", "image 3", "image 4"]
    assert [r.ok for r in results] == [True, False, True, True, True]
    assert "broken.jpg" in results[1].error and results[1].faces is None
    for k in (0, 3):
        assert [f.box.tolist() for f in results[k].faces] == [f.box.tolist() for f in alone]
    assert results[4].faces == [] and results[4].notes  # smaller than the smallest face: said so


# ---------------------------------------------------------------- the runners: plain and fast


def _same_faces(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        np.testing.assert_allclose(x.box, y.box, atol=1e-2)
        np.testing.assert_allclose(x.score, y.score, atol=1e-4)
        np.testing.assert_allclose(x.landmarks, y.landmarks, atol=1e-2)


@pytest.mark.parametrize("make", [lambda **kw: MTCNNDetector(**kw),
                                  lambda **kw: __import__("pipeline").CascadeDetector(**kw)],
                         ids=["mtcnn", "cascade"])
def test_the_plain_runner_finds_the_faces_of_the_fast_one(make, astronaut):
    """The plain runner (one step after the other, nets as they are) and the fast one (helpers,
    batch-last layout, strips) do the same work: the same faces, to float32 rounding."""
    fast, plain = make(workers=2), make(runner="plain")
    assert plain.runner.workers == 1
    faces = fast.detect(astronaut)
    assert faces
    _same_faces(plain.detect(astronaut), faces)


@pytest.mark.parametrize("runner", ["fast", "plain"])
def test_the_stages_run_outside_a_session_too(astronaut, runner):
    """A student may call the stages one by one on `to_chw_float(image)`, without a session."""
    from pipeline.data.images import to_chw_float
    from pipeline.detection.trace import Trace

    detector = MTCNNDetector(runner=runner, workers=2)
    image_chw, trace = to_chw_float(astronaut), Trace(image=astronaut)
    final, _ = detector.output(image_chw, detector.refine(image_chw, detector.propose(image_chw, trace), trace), trace)
    expected = detector.detect(astronaut)
    np.testing.assert_allclose(np.sort(final.scores)[::-1], [face.score for face in expected], atol=1e-6)


def test_an_unknown_runner_is_refused():
    with pytest.raises(ValueError, match="runner must be one of fast, plain; got 'quick'"):
        MTCNNDetector(runner="quick")
