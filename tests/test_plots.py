"""Tests for pipeline.plots: each figure draws what it claims, and touches no global state.

We count what is on the Axes rather than comparing pixels: one Rectangle patch per box, one
image per pyramid level or filter, one line per curve. The detector runs twice per module (a
real photo and a flat grey image with no faces), which is enough input for every trace plot.
Figures are never shown, so nothing is closed: no pyplot, no global figure list.
"""

import copy
import subprocess
import sys
from pathlib import Path

import matplotlib
import numpy as np
import pytest
import skimage.data
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from nets import PNet
from pipeline import plots
from pipeline.detection.mtcnn import MTCNNDetector
from pipeline.plots.common import plural

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
ROOT = Path(__file__).resolve().parent.parent


# ---------------------------------------------------------------- fixtures and helpers


@pytest.fixture(scope="module")
def detector():
    return MTCNNDetector()


@pytest.fixture(scope="module")
def astronaut(detector):
    """(image, faces, trace) for skimage's astronaut: one face and a few hundred candidates."""
    image = skimage.data.astronaut()
    faces, trace = detector.detect(image, trace=True)
    return image, faces, trace


@pytest.fixture(scope="module")
def empty_trace(detector):
    """Trace of a flat grey 40 x 40 image: three pyramid levels, no boxes at any step."""
    faces, trace = detector.detect(np.full((40, 40, 3), 128, np.uint8), trace=True)
    assert faces == [] and len(trace.scales) > 0
    return trace


@pytest.fixture(scope="module")
def tiny_trace(detector):
    """Trace of an 8 x 8 image: smaller than P-Net's window, so no pyramid levels at all."""
    with pytest.warns(UserWarning, match="no pyramid level fits"):
        _, trace = detector.detect(np.full((8, 8, 3), 128, np.uint8), trace=True)
    assert trace.scales == []
    return trace


@pytest.fixture
def image():
    """A small (30, 40, 3) uint8 RGB image."""
    return np.random.default_rng(0).integers(0, 256, (30, 40, 3), dtype=np.uint8)


def rectangles(ax, color=None):
    """The Rectangle patches of an Axes (optionally only those with this edge colour)."""
    found = [p for p in ax.patches if isinstance(p, Rectangle)]
    if color is not None:
        rgba = matplotlib.colors.to_rgba(color)
        found = [p for p in found if p.get_edgecolor() == rgba]
    return found


def scatter_points(ax) -> int:
    """Number of points in all scatter collections of an Axes."""
    return sum(len(c.get_offsets()) for c in ax.collections)


def image_panels(fig):
    """Axes that show at least one image (colourbars draw no AxesImage)."""
    return [ax for ax in fig.axes if ax.images]


def backend_without_selecting():
    """The backend name, or None if none was chosen yet; never triggers the choice itself
    (a plain ``matplotlib.get_backend()`` imports pyplot to resolve an automatic backend)."""
    try:
        return matplotlib.get_backend(auto_select=False)  # matplotlib >= 3.10
    except TypeError:
        return matplotlib.rcParams._get_backend_or_none()


# ---------------------------------------------------------------- boxes on images


@pytest.mark.parametrize("n", [0, 1, 3])
def test_plot_boxes_one_rectangle_per_box(image, n):
    boxes = np.array([[2.0, 3.0, 12.0, 15.0], [20.5, 1.0, 30.0, 9.5], [0.0, 0.0, 40.0, 30.0]])[:n]
    scores = np.linspace(0.9, 0.99, n)
    landmarks = np.random.default_rng(1).uniform(0, 30, (n, 5, 2))
    fig = plots.plot_boxes(image, boxes, scores, landmarks)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    drawn = rectangles(ax)
    assert len(drawn) == n
    assert len(ax.texts) == n  # one score label per box
    assert scatter_points(ax) == 5 * n
    assert ax.get_title() == f"{n} box" + ("" if n == 1 else "es")


def test_plot_boxes_rectangles_sit_on_the_box_corners(image):
    """A box x1, y1, x2, y2 is the rectangle from (x1, y1), width x2 - x1, height y2 - y1, and
    the image is drawn so that pixel (r, c) covers [c, c+1) x [r, r+1) (no half-pixel shift)."""
    boxes = np.array([[2.0, 3.0, 12.0, 15.0], [-5.0, 20.0, 10.0, 35.0]])
    ax = plots.plot_boxes(image, boxes).axes[0]
    for patch, (x1, y1, x2, y2) in zip(rectangles(ax), boxes):
        assert patch.get_xy() == (x1, y1)
        assert patch.get_width() == x2 - x1 and patch.get_height() == y2 - y1
    assert tuple(ax.images[0].get_extent()) == (0, 40, 30, 0)
    assert ax.get_xlim() == (0, 40) and ax.get_ylim() == (30, 0)  # not widened by the box outside


def test_plot_boxes_rejects_bad_shapes(image):
    with pytest.raises(ValueError, match="boxes"):
        plots.plot_boxes(image, np.zeros((3, 5)))
    with pytest.raises(ValueError, match="scores"):
        plots.plot_boxes(image, np.zeros((2, 4)), scores=np.zeros(3))
    with pytest.raises(ValueError, match="image"):
        plots.plot_boxes(np.zeros((4, 4, 2), np.uint8), np.zeros((0, 4)))


def test_draw_boxes_into_a_given_axes(image):
    fig = Figure()
    left, right = fig.subplots(1, 2)
    assert plots.plot_boxes(image, [[1, 1, 5, 5], [6, 6, 9, 9]], ax=right, title="mine") is fig
    assert len(rectangles(left)) == 0 and len(rectangles(right)) == 2
    assert right.get_title() == "mine"
    assert plots.draw_boxes(left, [[1, 1, 5, 5]], color="red", label_scores=False) is left
    assert len(rectangles(left, "red")) == 1


def test_plot_faces(astronaut):
    image, faces, _ = astronaut
    ax = plots.plot_faces(image, faces).axes[0]
    assert len(faces) >= 1
    assert len(rectangles(ax, plots.KEPT_COLOR)) == len(faces)
    assert scatter_points(ax) == 5 * len(faces)
    assert ax.get_title() == f"{len(faces)} face" + ("" if len(faces) == 1 else "s")


def test_plot_faces_without_faces(image):
    ax = plots.plot_faces(image, []).axes[0]
    assert len(rectangles(ax)) == 0 and scatter_points(ax) == 0
    assert ax.get_title() == "0 faces"


def test_plot_receptive_fields(image):
    windows = np.array([[0.0, 0.0, 12.0, 12.0], [2.0, 0.0, 14.0, 12.0], [4.0, 2.0, 16.0, 14.0]])
    ax = plots.plot_receptive_fields(image, windows).axes[0]
    assert len(rectangles(ax)) == 3
    np.testing.assert_array_equal(ax.collections[0].get_offsets(), [[6, 6], [8, 6], [10, 8]])
    ax = plots.plot_receptive_fields(image, windows, centers=False).axes[0]
    assert scatter_points(ax) == 0


# ---------------------------------------------------------------- trace plots


@pytest.mark.parametrize("which", ["astronaut", "empty_trace"])
def test_plot_nms_panels_match_the_box_counts(which, request):
    trace = request.getfixturevalue(which)
    trace = trace[2] if isinstance(trace, tuple) else trace
    fig = plots.plot_nms(trace)
    expected = [sum(len(b) for b in trace.level_candidates),
                sum(len(b) for b in trace.level_after_nms), len(trace.stage1_after_nms)]
    assert [len(rectangles(ax)) for ax in fig.axes] == expected
    for ax, n in zip(fig.axes, expected):
        assert f"{n} boxes" in ax.get_title()


@pytest.mark.parametrize("stage", ["rnet", "onet"])
def test_plot_stage_splits_kept_and_rejected(astronaut, stage):
    _, _, trace = astronaut
    entering = getattr(trace, f"stage{2 if stage == 'rnet' else 3}_input")
    passed = getattr(trace, f"stage{2 if stage == 'rnet' else 3}_passed")
    output = getattr(trace, f"stage{2 if stage == 'rnet' else 3}_output")
    left, right = plots.plot_stage(trace, stage).axes
    assert len(rectangles(left, plots.KEPT_COLOR)) == len(passed)
    assert len(rectangles(left, plots.REJECTED_COLOR)) == len(entering) - len(passed)
    assert len(rectangles(left)) == len(entering)
    assert len(rectangles(right)) == len(output)
    assert scatter_points(right) == (5 * len(output) if stage == "onet" else 0)
    assert 0 < len(passed) < len(entering)  # both colours are really exercised


@pytest.mark.parametrize("stage", ["rnet", "onet"])
def test_threshold_split_agrees_with_the_trace(astronaut, stage):
    """With the detector's default thresholds, score > 0.7 marks the same boxes as *_passed."""
    _, _, trace = astronaut
    np.testing.assert_array_equal(plots.passed_mask(trace, stage, threshold=0.7),
                                  plots.passed_mask(trace, stage))
    left = plots.plot_stage(trace, stage, threshold=0.7).axes[0]
    assert len(rectangles(left, plots.KEPT_COLOR)) == len(getattr(trace, f"stage{2 if stage == 'rnet' else 3}_passed"))
    assert "score > 0.7" in left.get_title()


def test_plot_stage_rejects_unknown_stage(astronaut):
    with pytest.raises(ValueError, match="stage"):
        plots.plot_stage(astronaut[2], "pnet")


def test_plot_heatmaps_one_image_per_level(astronaut):
    _, _, trace = astronaut
    fig = plots.plot_heatmaps(trace)
    panels = image_panels(fig)
    assert len(panels) == len(trace.prob_maps) and all(len(ax.images) == 1 for ax in panels)
    for ax, prob in zip(panels, trace.prob_maps):
        assert ax.images[0].get_array().shape == prob.shape
        assert ax.images[0].get_clim() == (0.0, 1.0)  # one shared colour scale
    hits = int(np.count_nonzero(trace.prob_maps[0] >= 0.6))
    assert f"{hits} cells" in panels[0].get_title()
    assert len(fig.axes) > len(panels)  # the colourbar
    assert len(image_panels(plots.plot_heatmaps(trace, max_levels=3))) == 3


def test_plot_heatmaps_threshold_changes_the_count(astronaut):
    _, _, trace = astronaut
    panel = image_panels(plots.plot_heatmaps(trace, max_levels=1, threshold=0.9))[0]
    assert f"{int(np.count_nonzero(trace.prob_maps[0] >= 0.9))} cells" in panel.get_title()


def test_plot_pyramid_one_image_per_level_at_its_size(astronaut):
    _, _, trace = astronaut
    fig = plots.plot_pyramid(trace)
    (ax,) = fig.axes  # one canvas, every level on it at one pixel per pixel
    assert len(ax.images) == len(trace.scales)
    texts = [t.get_text() for t in ax.texts]
    for image, (h, w) in zip(ax.images, trace.level_sizes):
        assert image.get_array().shape == (h, w, 3)
        left, right, bottom, top = image.get_extent()
        assert (right - left, bottom - top) == (w, h)
        if w >= 40:
            assert any(f"{w} x {h}" in text for text in texts)  # W x H, as images are described
    windows = rectangles(ax)
    assert len(windows) == len(trace.scales) and all(r.get_width() == r.get_height() == 12 for r in windows)
    assert "12 / 20" in fig._suptitle.get_text()  # the first scale, explained


def test_plot_stages_overview(astronaut):
    _, _, trace = astronaut
    heat, pnet, rnet, onet = plots.plot_stages(trace).axes[:4]
    strongest = plots.strongest_level(trace)
    assert heat.images[0].get_array().shape == trace.prob_maps[strongest].shape
    assert len(rectangles(heat)) == 0
    assert len(rectangles(pnet)) == len(trace.stage1_after_nms)
    assert len(rectangles(rnet)) == len(trace.stage2_output)
    assert len(rectangles(onet)) == len(trace.stage3_output)
    assert scatter_points(onet) == 5 * len(trace.stage3_output)


def test_plot_stages_shows_the_strongest_level_or_the_one_asked_for(astronaut):
    _, _, trace = astronaut
    best = int(np.argmax([prob.max() for prob in trace.prob_maps]))
    assert plots.strongest_level(trace) == best
    assert best != 0  # on the astronaut, level 0 is not where the face lights up
    heat = plots.plot_stages(trace).axes[0]
    np.testing.assert_array_equal(heat.images[0].get_array(), trace.prob_maps[best])
    assert f"level {best}:" in heat.get_title() and "strongest level" in heat.get_title()
    heat = plots.plot_stages(trace, level=0).axes[0]
    np.testing.assert_array_equal(heat.images[0].get_array(), trace.prob_maps[0])
    with pytest.raises(ValueError, match="level"):
        plots.plot_stages(trace, level=len(trace.prob_maps))


def test_heatmap_counts_use_the_thresholds_the_detector_used(astronaut):
    image, _, _ = astronaut
    _, trace = MTCNNDetector(thresholds=(0.8, 0.7, 0.7)).detect(image, trace=True)
    panels = image_panels(plots.plot_heatmaps(trace))
    for panel, prob, candidates in zip(panels, trace.prob_maps, trace.level_candidates):
        hits = int(np.count_nonzero(prob >= 0.8))
        assert hits == len(candidates)  # the count in the title is the number of candidates
        assert f"{plural(hits, 'cell')} \u2265 0.8" in panel.get_title()
    heat = plots.plot_stages(trace).axes[0]
    assert "\u2265 0.8" in heat.get_title()


def test_passed_mask_is_read_from_the_trace(astronaut):
    _, _, trace = astronaut
    recorded = trace.stage2_passed_mask
    assert recorded is not None
    np.testing.assert_array_equal(plots.passed_mask(trace, "rnet"), recorded)
    # the plot follows the recorded mask, not the coordinates of the boxes
    changed = copy.copy(trace)
    changed.stage2_passed_mask = ~recorded
    np.testing.assert_array_equal(plots.passed_mask(changed, "rnet"), ~recorded)
    left = plots.plot_stage(changed, "rnet").axes[0]
    assert len(rectangles(left, plots.KEPT_COLOR)) == int((~recorded).sum())
    assert "passed threshold 0.7" in plots.plot_stage(trace, "rnet").axes[0].get_title()
    # a trace without the mask (another detector) falls back to matching the passed boxes
    changed.stage2_passed_mask = None
    np.testing.assert_array_equal(plots.passed_mask(changed, "rnet"), recorded)


def test_score_labels_never_cover_each_other(image):
    boxes = np.array([[2.0, 3.0, 12.0, 15.0]] * 4 + [[2.5, 3.5, 12.0, 15.0], [25.0, 15.0, 38.0, 28.0]])
    scores = np.array([0.8, 0.95, 0.9, 0.85, 0.99, 0.7])
    ax = plots.plot_boxes(image, boxes, scores).axes[0]
    assert len(rectangles(ax)) == 6  # every box is drawn
    assert sorted(t.get_text() for t in ax.texts) == ["0.70", "0.99"]  # the best of each cluster
    fig = ax.figure
    fig.canvas.draw()
    extents = [t.get_window_extent() for t in ax.texts]
    assert not extents[0].overlaps(extents[1])


def test_plot_counts_one_bar_per_step(astronaut):
    _, _, trace = astronaut
    ax = plots.plot_counts(trace).axes[0]
    bars = rectangles(ax)
    assert [bar.get_width() for bar in bars] == [n for _, n in trace.counts()]
    assert [t.get_text() for t in ax.get_yticklabels()] == [name for name, _ in trace.counts()]


def test_trace_plots_of_an_image_without_faces(empty_trace):
    """Every trace plot works when no step has any box, and draws no rectangles."""
    figures = [plots.plot_nms(empty_trace), plots.plot_stages(empty_trace),
               plots.plot_stage(empty_trace, "rnet"), plots.plot_stage(empty_trace, "onet")]
    for fig in figures:
        assert sum(len(rectangles(ax)) for ax in fig.axes) == 0
    assert len(image_panels(plots.plot_heatmaps(empty_trace))) == len(empty_trace.scales)
    assert len(plots.plot_pyramid(empty_trace).axes[0].images) == len(empty_trace.scales)  # one canvas
    assert all(bar.get_width() == 0 for bar in rectangles(plots.plot_counts(empty_trace).axes[0]))


def test_trace_plots_of_an_image_without_pyramid_levels(tiny_trace):
    for plot in (plots.plot_pyramid, plots.plot_heatmaps, plots.plot_stages, plots.plot_nms):
        fig = plot(tiny_trace)
        assert sum(len(rectangles(ax)) for ax in fig.axes) == 0
    message = plots.plot_heatmaps(tiny_trace).axes[0].texts[0].get_text()
    assert message == tiny_trace.notes[0]  # the detector's own explanation


# ---------------------------------------------------------------- inside the nets


def test_plot_filters_rgb_one_image_per_filter():
    w = np.random.default_rng(2).standard_normal((10, 3, 3, 3))
    w[4] = 0.5  # a constant filter must not divide by zero
    panels = image_panels(plots.plot_filters(w))
    assert len(panels) == 10
    tiles = [ax.images[0].get_array() for ax in panels]
    assert all(t.shape == (3, 3, 3) for t in tiles)  # RGB
    assert all(np.min(t) >= 0 and np.max(t) <= 1 for t in tiles)
    assert tiles[0].min() == 0 and tiles[0].max() == 1  # min-max per filter
    np.testing.assert_array_equal(tiles[4], 0.5)


def test_plot_filters_many_channels_show_the_channel_mean():
    w = np.random.default_rng(3).standard_normal((5, 16, 3, 3))
    fig = plots.plot_filters(w)
    tiles = [ax.images[0].get_array() for ax in image_panels(fig)]
    assert len(tiles) == 5 and all(t.shape == (3, 3) for t in tiles)
    mean = w[0].mean(axis=0)
    np.testing.assert_allclose(tiles[0], (mean - mean.min()) / (mean.max() - mean.min()))
    assert "mean of 16 channels" in fig._suptitle.get_text()


@pytest.mark.parametrize("layer, shape", [("conv1", (10, 22, 22)), ("pool1", (10, 11, 11)),
                                          ("prelu3", (32, 7, 7))])
def test_feature_maps_shapes_of_pnet(layer, shape):
    # 24 -> conv 3x3: 22 -> pool 2x2 (ceil): 11 -> conv: 9 -> conv: 7
    net = PNet().eval()
    x = np.random.default_rng(4).standard_normal((1, 3, 24, 24)).astype(np.float32)
    maps = plots.feature_maps(net, x, layer)
    assert maps.shape == shape and maps.dtype == np.float32
    if layer == "prelu3":  # the last trunk layer: the same as the whole trunk
        np.testing.assert_array_equal(maps, net.trunk.forward(x)[0])


def test_feature_maps_rejects_unknown_layer_and_batches():
    net = PNet()
    x = np.zeros((1, 3, 12, 12), np.float32)
    with pytest.raises(ValueError, match="conv9"):
        plots.feature_maps(net, x, "conv9")
    with pytest.raises(ValueError, match="1, C, H, W"):
        plots.feature_maps(net, np.zeros((2, 3, 12, 12), np.float32), "conv1")


def test_feature_maps_take_an_image_crop():
    net = PNet().eval()
    crop = np.random.default_rng(6).integers(0, 256, (30, 26, 3), dtype=np.uint8)
    by_crop = plots.feature_maps(net, crop, "prelu1")
    x = ((crop.transpose(2, 0, 1).astype(np.float32) - 127.5) / 128)[None]  # the normalization, by hand
    np.testing.assert_allclose(by_crop, plots.feature_maps(net, x, "prelu1"), rtol=0, atol=1e-6)
    assert by_crop.shape == (10, 28, 24)
    with pytest.raises(ValueError, match=r"x: an image crop must have shape \(H, W, 3\)"):
        plots.feature_maps(net, crop[:, :, :2], "conv1")


def test_feature_map_grids_say_how_colours_are_scaled():
    maps = np.random.default_rng(7).standard_normal((6, 5, 4))
    fig = plots.plot_feature_maps(maps)
    assert "each map on its own colour scale" in fig._suptitle.get_text()
    assert "6 of 6 maps, 4 x 5 cells" in fig._suptitle.get_text()  # W x H
    shared = plots.plot_feature_maps(maps, shared_scale=True)
    panels = image_panels(shared)
    assert {ax.images[0].get_clim() for ax in panels} == {(maps.min(), maps.max())}
    assert len(shared.axes) > len(panels)  # the colour bar
    assert "one colour scale for all maps" in shared._suptitle.get_text()
    assert "own colour scale" in plots.plot_filters(np.ones((2, 3, 3, 3)))._suptitle.get_text()


def test_plot_feature_maps_respects_max_maps():
    maps = np.random.default_rng(5).standard_normal((40, 6, 6))
    assert len(image_panels(plots.plot_feature_maps(maps))) == 32
    assert len(image_panels(plots.plot_feature_maps(maps[:7]))) == 7
    assert len(image_panels(plots.plot_feature_maps(maps, max_maps=4))) == 4


# ---------------------------------------------------------------- training and evaluation


def test_plot_training_curves_one_line_per_series():
    history = {"train loss": [1.0, 0.6, 0.4], "val loss": [1.1, 0.7, 0.5],
               "val accuracy": [0.5, 0.8, 0.9], "val recall": [0.4, 0.7, 0.8]}
    losses, metrics = plots.plot_training_curves(history).axes
    assert [line.get_label() for line in losses.lines] == ["train loss", "val loss"]
    assert [line.get_label() for line in metrics.lines] == ["val accuracy", "val recall"]
    np.testing.assert_array_equal(losses.lines[0].get_xdata(), [1, 2, 3])
    assert losses.get_legend() is not None and metrics.get_legend() is not None
    only_losses = plots.plot_training_curves({"loss": [3.0, 2.0]})
    assert len(only_losses.axes) == 1 and len(only_losses.axes[0].lines) == 1
    with pytest.raises(ValueError, match="empty"):
        plots.plot_training_curves({})


def test_plot_roc_one_line_per_curve():
    fp = np.arange(0, 200, 10)
    curves = {"ours": (fp, fp / 250), "reference": (fp, fp / 220), "third": (fp, fp / 300)}
    ax = plots.plot_roc(curves, xlabel="false positives (FDDB)").axes[0]
    assert len(ax.lines) == 3
    assert ax.get_ylim()[0] == 0 and ax.get_ylim()[1] >= 1
    assert ax.get_xlabel() == "false positives (FDDB)"
    with pytest.raises(ValueError, match="shape"):
        plots.plot_roc({"bad": ([1, 2, 3], [0.1, 0.2])})


# ---------------------------------------------------------------- saving and global state


def test_save_writes_a_png_into_new_folders(tmp_path, image):
    path = tmp_path / "new" / "nested" / "boxes.png"
    fig = plots.plot_boxes(image, [[1, 1, 10, 10]], save=path)
    assert isinstance(fig, Figure)
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and len(data) > 1000


def test_save_a_trace_figure(tmp_path, empty_trace):
    path = tmp_path / "figures" / "stages.png"
    plots.plot_stages(empty_trace, save=str(path))  # str paths too; a small image renders fast
    assert path.read_bytes().startswith(PNG_SIGNATURE)


def test_no_backend_change_and_no_pyplot_figures(astronaut, image, tmp_path):
    before = backend_without_selecting()
    _, faces, trace = astronaut
    plots.plot_faces(image, [], save=tmp_path / "faces.png")  # saving switches canvas internally
    plots.plot_faces(astronaut[0], faces)
    plots.plot_heatmaps(trace, max_levels=2)
    plots.plot_stage(trace, "onet")
    plots.plot_training_curves({"loss": [1.0, 0.5]})
    assert backend_without_selecting() == before
    if "matplotlib.pyplot" in sys.modules:  # someone else imported it: we left no figures there
        assert sys.modules["matplotlib.pyplot"].get_fignums() == []


def test_plotting_and_saving_never_import_pyplot(tmp_path):
    """In a fresh interpreter, importing the module, drawing and saving leave pyplot unloaded,
    so no backend gets chosen and a later ``matplotlib.use(...)`` by the caller still works."""
    script = f"""
import sys, numpy as np
from pipeline import plots
plots.plot_boxes(np.zeros((20, 30, 3), np.uint8), [[1, 2, 8, 9]], scores=[0.9],
                 save={str(tmp_path / "a" / "b.png")!r})
plots.plot_filters(np.ones((4, 3, 3, 3)))
assert "matplotlib.pyplot" not in sys.modules, "pyplot was imported"
"""
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "a" / "b.png").read_bytes().startswith(PNG_SIGNATURE)


def test_draw_number_grid_draws_one_cell_per_value():
    from matplotlib.figure import Figure

    from pipeline.plots import draw_number_grid

    ax = Figure().subplots()
    draw_number_grid(ax, np.arange(6).reshape(2, 3), "x")
    assert len(ax.patches) == 6 and len(ax.texts) == 6
    with pytest.raises(ValueError, match="2-D"):
        draw_number_grid(ax, np.arange(3))


def test_plot_evaluation_one_panel_per_set_with_the_operating_point():
    roc = {"thresholds": [0.9, 0.8, 0.5], "true_positives": [1, 2, 2], "false_positives": [0, 0, 3],
           "recall": [0.5, 1.0, 1.0]}
    face_set = {"faces": 2, "images": 2, "roc": roc}
    results = {"detector": "fake", "val": face_set, "photos": face_set,
               "negatives": {"images": 10, "roc": {"thresholds": [0.7, 0.6], "false_positives": [1, 2]}},
               "operating_point": {"score_above": 0.6, "max_false_positives_per_photo": 0.1}}
    fig = plots.plot_evaluation(results)
    assert len(fig.axes) == 3
    val, _, free = fig.axes
    assert "operating point: recall 1.000" in [t.get_text() for t in val.get_legend().get_texts()]
    assert any("score > 0.600" in t.get_text() for t in free.get_legend().get_texts())
    assert free.get_xlabel() == "score threshold" and val.get_xlabel() == "false positives per image"
