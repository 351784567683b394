"""Figures for the detector, the nets and training: what each stage sees and keeps.

Every figure is built with matplotlib's object-oriented API (``matplotlib.figure.Figure``),
never with ``pyplot``: nothing here opens a window, picks a backend or leaves a figure behind in
a global list, so the functions work on a headless machine and in tests. Each ``plot_*``
function returns its Figure; show it in a notebook by leaving it as a cell's last value, or
pass ``save="out/figure.png"`` to write it (the folders are created; the format follows the
suffix, PNG for ``.png``). Single-panel plots also take ``ax=`` to draw into an Axes of your
own figure.

    faces, trace = MTCNNDetector().detect(image, trace=True)
    plot_faces(image, faces, save="out/faces.png")
    plot_nms(trace, save="out/nms.png")

Images are drawn with ``extent=(0, W, H, 0)``, so that pixel (row r, col c) covers the unit
square [c, c+1) x [r, r+1), exactly the box convention of `pipeline.boxes`: a box
x1, y1, x2, y2 is drawn as the rectangle with corners (x1, y1) and (x2, y2), no half-pixel
shift. Colours are the same everywhere: boxes that are kept in lime, rejected ones in red,
landmarks as cyan points.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from nets import ONET_SIZE, RNET_SIZE

from .images import to_chw_float
from .pyramid import scaled_size
from .resize import resize_area

KEPT_COLOR = "lime"        # boxes that passed a step
REJECTED_COLOR = "red"     # boxes a step dropped
LANDMARK_COLOR = "cyan"    # the five O-Net landmarks
HEATMAP_CMAP = "viridis"   # face probability 0..1
DPI = 100                  # pixels per inch when saving
PANEL_INCHES = 3.2         # size of one panel in the multi-panel figures
MAX_COLUMNS = 5            # panels per row before a grid wraps
MAX_LABELS = 12            # stage panels write scores only when they hold this few boxes
METRIC_WORDS = ("acc", "recall", "precision")  # history series drawn on the 0..1 axes
STAGES = {"rnet": ("R-Net", RNET_SIZE), "onet": ("O-Net", ONET_SIZE)}  # name, crop size


# ---------------------------------------------------------------- small helpers


def _finish(fig: Figure, save, dpi: int = DPI) -> Figure:
    """Save ``fig`` to ``save`` (str or Path) if given, creating the folders; return it."""
    if save is not None:
        path = Path(save)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=dpi)
    return fig


def _figure_and_axes(ax, figsize):
    """The given Axes and its figure, or a new one-panel Figure of ``figsize`` inches."""
    if ax is not None:
        return ax.figure, ax
    fig = Figure(figsize=figsize, layout="constrained")
    return fig, fig.add_subplot()


def _grid(n: int, columns: int = MAX_COLUMNS, inches: float = PANEL_INCHES, height_ratio=1.0):
    """A Figure with ``n`` panels in rows of at most ``columns``; returns (fig, axes list).

    Each panel is ``inches`` wide and ``inches * height_ratio`` high (room for two-line titles).
    Grid cells past ``n`` are switched off, so ``axes`` has exactly n entries (n >= 1)."""
    cols = min(n, columns)
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(inches * cols, inches * rows * height_ratio), layout="constrained")
    grid = fig.subplots(rows, cols, squeeze=False).ravel()
    for extra in grid[n:]:
        extra.set_axis_off()
    return fig, list(grid[:n])


def _image_figsize(image: np.ndarray, width: float = 6.0) -> tuple[float, float]:
    """Figure size in inches for one image panel ``width`` inches wide, plus room for a title."""
    rows, cols = image.shape[:2]
    return width, width * rows / max(cols, 1) + 0.4


def _check_image(image) -> np.ndarray:
    """image: (H, W, 3) RGB or (H, W) gray; returned as an array, else ValueError."""
    image = np.asarray(image)
    if not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)):
        raise ValueError(f"image must have shape (H, W, 3) RGB or (H, W); got shape {image.shape}")
    return image


def _as_boxes(boxes) -> np.ndarray:
    """boxes: (N, 4) x1, y1, x2, y2 (or empty) as float64 (N, 4), else ValueError."""
    boxes = np.asarray(boxes, dtype=np.float64)
    if boxes.size == 0:
        return np.zeros((0, 4))
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"boxes must have shape (N, 4) as x1, y1, x2, y2; got shape {boxes.shape}")
    return boxes


def _as_points(landmarks) -> np.ndarray:
    """landmarks: (K, 5, 2) or (M, 2) (x, y) points, returned as float64 (M, 2)."""
    points = np.asarray(landmarks, dtype=np.float64)
    if points.size == 0:
        return np.zeros((0, 2))
    if points.shape[-1] != 2:
        raise ValueError(f"landmarks must have shape (K, 5, 2) as (x, y); got shape {points.shape}")
    return points.reshape(-1, 2)


def _show_image(ax, image: np.ndarray) -> None:
    """Draw ``image`` so that data coordinates are pixels of the box convention, and fix the
    view to the image: boxes hanging over the border are clipped, not zoomed out to."""
    height, width = image.shape[:2]
    gray = dict(cmap="gray", vmin=0, vmax=255 if image.dtype == np.uint8 else None)
    ax.imshow(image, extent=(0, width, height, 0), **(gray if image.ndim == 2 else {}),
              interpolation="nearest" if max(height, width) < 200 else "antialiased")
    ax.set_xlim(0, width)
    ax.set_ylim(height, 0)
    ax.set_autoscale_on(False)
    ax.set_xticks([])
    ax.set_yticks([])


def _concat_boxes(box_sets) -> np.ndarray:
    """The boxes of a list of `Boxes` (e.g. one per pyramid level) as one (N, 4) array."""
    return np.concatenate([np.zeros((0, 4))] + [_as_boxes(b.boxes) for b in box_sets])


def _rows_in(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N,) bool: which rows of a (N, 4) occur, coordinate for coordinate, in b (M, 4)."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros(len(a), dtype=bool)
    return (a[:, None, :] == b[None, :, :]).all(axis=2).any(axis=1)


def _plural(n: int, word: str, plural: str | None = None) -> str:
    """"1 face", "2 faces"; ``plural`` for irregular words ("box", "boxes")."""
    return f"{n} {word}" if n == 1 else f"{n} {plural or word + 's'}"


# ---------------------------------------------------------------- boxes on images


def draw_boxes(ax, boxes, scores=None, landmarks=None, color=KEPT_COLOR, label_scores=True,
               linewidth=1.5):
    """Draw boxes onto an existing Axes whose data coordinates are image pixels.

    ax: a matplotlib Axes showing the image (e.g. after `plot_boxes` or ``ax.imshow``);
    boxes: (N, 4) float x1, y1, x2, y2 in pixels of the original image (N may be 0);
    scores: optional (N,) face probabilities, written at each box's top-left corner when
    label_scores is True; landmarks: optional (K, 5, 2) (x, y) pixels, drawn as one scatter
    of cyan points (one collection for all faces); color: the rectangles' edge colour.
    Adds exactly one `matplotlib.patches.Rectangle` per box to ``ax.patches``.
    Returns ax.
    """
    boxes = _as_boxes(boxes)
    if scores is not None:
        scores = np.asarray(scores, dtype=np.float64).reshape(-1)
        if len(scores) != len(boxes):
            raise ValueError(f"scores must have shape ({len(boxes)},) to match the boxes; "
                             f"got shape {scores.shape}")
    for i, (x1, y1, x2, y2) in enumerate(boxes):
        ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=color,
                               linewidth=linewidth))
        if scores is not None and label_scores:
            ax.text(x1, y1, f"{scores[i]:.2f}", color="black", fontsize=7, va="bottom",
                    ha="left", clip_on=True,
                    bbox=dict(facecolor=color, edgecolor="none", alpha=0.7, pad=1))
    if landmarks is not None:
        points = _as_points(landmarks)
        if len(points):
            ax.scatter(points[:, 0], points[:, 1], s=14, c=LANDMARK_COLOR, edgecolors="black",
                       linewidths=0.5, zorder=3)
    return ax


def plot_boxes(image, boxes, scores=None, landmarks=None, save=None, ax=None, title=None,
               color=KEPT_COLOR):
    """The image with boxes (and optionally scores and landmarks) drawn on it.

    image: (H, W, 3) uint8 RGB (or (H, W) gray); boxes: (N, 4) float x1, y1, x2, y2 in pixels
    of that image; scores: optional (N,); landmarks: optional (K, 5, 2) (x, y) pixels;
    title: default "N boxes"; save: optional path; ax: draw into this Axes instead of a new
    figure. One Rectangle patch per box. Returns the Figure.
    """
    image = _check_image(image)
    boxes = _as_boxes(boxes)
    fig, ax = _figure_and_axes(ax, _image_figsize(image))
    _show_image(ax, image)
    draw_boxes(ax, boxes, scores, landmarks, color=color)
    ax.set_title(title if title is not None else _plural(len(boxes), "box", "boxes"))
    return _finish(fig, save)


def plot_faces(image, faces, save=None, ax=None, title=None):
    """The image with the detected faces: box, score and five landmarks each.

    image: (H, W, 3) uint8 RGB; faces: list of `pipeline.mtcnn.Face` (box (4,) x1, y1, x2, y2
    pixels, score float, landmarks (5, 2) (x, y) pixels), as returned by
    ``MTCNNDetector().detect(image)``; title: default "N faces". Returns the Figure.
    """
    boxes = np.array([f.box for f in faces], dtype=np.float64).reshape(-1, 4)
    scores = np.array([f.score for f in faces], dtype=np.float64)
    landmarks = np.array([f.landmarks for f in faces], dtype=np.float64).reshape(-1, 5, 2)
    title = title if title is not None else _plural(len(faces), "face")
    return plot_boxes(image, boxes, scores, landmarks, save=save, ax=ax, title=title)


def plot_receptive_fields(image, boxes, save=None, ax=None, title=None, centers=True):
    """Receptive-field windows drawn on an image, with their centres as dots.

    image: (H, W, 3) uint8 RGB; boxes: (N, 4) float x1, y1, x2, y2 in pixels of that image,
    e.g. the 12 x 12 windows [2c, 2c + 12) x [2r, 2r + 12) of P-Net cells (r, c) of a pyramid
    level, divided by the level's scale to land in the original image; centers: draw each
    window's centre ((x1 + x2) / 2, (y1 + y2) / 2) as one scatter. Returns the Figure.
    """
    image = _check_image(image)
    boxes = _as_boxes(boxes)
    fig, ax = _figure_and_axes(ax, _image_figsize(image))
    _show_image(ax, image)
    draw_boxes(ax, boxes, color=KEPT_COLOR, linewidth=1.0)
    if centers and len(boxes):
        ax.scatter((boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2, s=10,
                   c=KEPT_COLOR, edgecolors="black", linewidths=0.5, zorder=3)
    ax.set_title(title if title is not None else _plural(len(boxes), "receptive field"))
    return _finish(fig, save)


# ---------------------------------------------------------------- the detector's trace


def plot_pyramid(trace, save=None):
    """The pyramid levels P-Net scanned, drawn at their true relative sizes.

    trace: `pipeline.mtcnn.Trace` (uses trace.image (H, W, 3) uint8 and trace.scales).
    Each level is trace.image resized by area averaging to ``scaled_size(H, W, scale)``, as
    the detector does; every panel has the axes of level 0, so smaller levels look smaller.
    Titles give the scale and the level size h x w in pixels. One row, or rows of 5.
    Returns the Figure (a single message panel if the image had no levels).
    """
    image = _check_image(trace.image)
    if not trace.scales:
        return _finish(_message_figure("no pyramid levels: the image is under 12 pixels"), save)
    height, width = image.shape[:2]
    image_chw = to_chw_float(image)
    fig, axes = _grid(len(trace.scales), height_ratio=1.1)
    first = scaled_size(height, width, trace.scales[0])
    for k, (ax, scale) in enumerate(zip(axes, trace.scales)):
        h, w = scaled_size(height, width, scale)
        level = resize_area(image_chw, h, w)
        level = np.clip(np.rint(level), 0, 255).astype(np.uint8).transpose(1, 2, 0)
        ax.imshow(level, extent=(0, w, h, 0), interpolation="nearest")
        ax.set_xlim(0, first[1])
        ax.set_ylim(first[0], 0)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"level {k}: scale {scale:.3f}\n{h} x {w} px", fontsize=9)
    fig.suptitle(f"image pyramid: {_plural(len(trace.scales), 'level')} "
                 f"(image {height} x {width} px)")
    return _finish(fig, save)


def _message_figure(message: str) -> Figure:
    """A small Figure that only says ``message`` (for traces with nothing to show)."""
    fig = Figure(figsize=(4, 1.5), layout="constrained")
    ax = fig.add_subplot()
    ax.set_axis_off()
    ax.text(0.5, 0.5, message, ha="center", va="center", wrap=True)
    return fig


def _draw_heatmap(ax, prob: np.ndarray, level: int, scale: float, threshold: float):
    """One P-Net face map (OH, OW) in 0..1 with its title; returns the AxesImage."""
    prob = np.asarray(prob)
    im = ax.imshow(prob, vmin=0.0, vmax=1.0, cmap=HEATMAP_CMAP, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    hits = int(np.count_nonzero(prob >= threshold))
    ax.set_title(f"level {level}: scale {scale:.3f}, {prob.shape[0]} x {prob.shape[1]} cells\n"
                 f"{_plural(hits, 'cell')} \u2265 {threshold:g}", fontsize=9)
    return im


def plot_heatmaps(trace, save=None, max_levels=None, threshold=0.6):
    """P-Net's face probability map of each pyramid level, one panel per level.

    trace: `pipeline.mtcnn.Trace`; trace.prob_maps[i] is (OH, OW) float in 0..1, cell (r, c)
    = the 12 x 12 level window at (2c, 2r). All panels share the colour scale 0..1 and one
    colourbar; titles give the scale, the map size and the number of cells >= threshold
    (P-Net's threshold, default 0.6: those cells become candidate boxes).
    max_levels: show only the first (largest) levels. Returns the Figure.
    """
    maps = list(trace.prob_maps)[:max_levels]
    if not maps:
        return _finish(_message_figure("no pyramid levels: the image is under 12 pixels"), save)
    fig, axes = _grid(len(maps), height_ratio=1.05)
    images = [_draw_heatmap(ax, prob, k, scale, threshold)
              for k, (ax, prob, scale) in enumerate(zip(axes, maps, trace.scales))]
    fig.colorbar(images[0], ax=axes, label="P-Net face probability", shrink=0.8)
    fig.suptitle(f"P-Net face maps, {_plural(len(maps), 'level')}")
    return _finish(fig, save)


def _image_panel(ax, image, boxes, scores=None, landmarks=None, title="", color=KEPT_COLOR,
                 label_scores=True, linewidth=1.5):
    """One panel: the image, boxes and a title."""
    _show_image(ax, image)
    draw_boxes(ax, boxes, scores, landmarks, color=color, label_scores=label_scores,
               linewidth=linewidth)
    ax.set_title(title, fontsize=10)


def plot_nms(trace, save=None):
    """P-Net's candidates before and after the two rounds of non-maximum suppression.

    trace: `pipeline.mtcnn.Trace` (boxes are (N, 4) x1, y1, x2, y2 pixels of trace.image).
    Three panels: all candidates of all levels (trace.level_candidates), after NMS within
    each level (trace.level_after_nms), after NMS across levels (trace.pnet_after_nms, the
    boxes before regression). Each panel has one Rectangle per box; titles give the counts.
    Returns the Figure.
    """
    image = _check_image(trace.image)
    panels = [
        ("all candidates", _concat_boxes(trace.level_candidates)),
        ("after NMS within each level", _concat_boxes(trace.level_after_nms)),
        ("after NMS across levels", _as_boxes(trace.pnet_after_nms.boxes)),
    ]
    height, width = image.shape[:2]
    fig = Figure(figsize=(3 * 4.0, 4.0 * height / width + 0.5), layout="constrained")
    axes = fig.subplots(1, 3)
    for ax, (name, boxes) in zip(axes, panels):
        _image_panel(ax, image, boxes, title=f"{name}: {len(boxes)} boxes", linewidth=0.8)
    fig.suptitle("P-Net proposals and non-maximum suppression")
    return _finish(fig, save)


def _stage_boxes(trace, stage: str):
    """(input Boxes, passed Boxes, output Boxes) of stage "rnet" or "onet"."""
    if stage not in STAGES:
        raise ValueError(f"stage must be one of {sorted(STAGES)}; got {stage!r}")
    return (getattr(trace, f"{stage}_input"), getattr(trace, f"{stage}_passed"),
            getattr(trace, f"{stage}_output"))


def passed_mask(trace, stage: str, threshold=None) -> np.ndarray:
    """Which boxes entering a stage passed its threshold.

    trace: `pipeline.mtcnn.Trace`; stage: "rnet" or "onet"; threshold: None to read the
    answer from the trace (an input box passed if the same coordinates are in
    ``trace.<stage>_passed``, right whatever thresholds the detector used), or a probability
    to split by score > threshold instead. Returns (N,) bool over ``trace.<stage>_input``.
    """
    entering, passed, _ = _stage_boxes(trace, stage)
    if threshold is None:
        return _rows_in(_as_boxes(entering.boxes), _as_boxes(passed.boxes))
    return np.asarray(entering.scores, dtype=np.float64) > threshold


def plot_stage(trace, stage, save=None, threshold=None):
    """One refinement stage: which boxes it kept, and what it returned.

    trace: `pipeline.mtcnn.Trace`; stage: "rnet" or "onet". Left panel: the boxes entering the
    stage (trace.rnet_input / trace.onet_input, (N, 4) pixels), kept ones (those that passed
    the stage's threshold) in lime with their scores and rejected ones in red; threshold: None
    (default) takes "passed" from trace.<stage>_passed, a number splits by score > threshold
    (0.7 is the detector's default; see `passed_mask`). Right panel: the stage's output
    (trace.rnet_output: after NMS, regressed and squared for O-Net; trace.onet_output: the
    final faces, with trace.landmarks (K, 5, 2)). One Rectangle per box in each panel; scores
    are written on a panel's lime boxes only if it has at most MAX_LABELS of them (more
    would overlap). Returns the Figure.
    """
    image = _check_image(trace.image)
    entering, _, output = _stage_boxes(trace, stage)
    name, crop = STAGES[stage]
    boxes = _as_boxes(entering.boxes)
    scores = np.asarray(entering.scores, dtype=np.float64)
    kept = passed_mask(trace, stage, threshold)
    height, width = image.shape[:2]
    fig = Figure(figsize=(2 * 5.0, 5.0 * height / width + 0.5), layout="constrained")
    left, right = fig.subplots(1, 2)
    _show_image(left, image)
    draw_boxes(left, boxes[~kept], color=REJECTED_COLOR, linewidth=0.8)
    draw_boxes(left, boxes[kept], scores[kept], color=KEPT_COLOR,
               label_scores=kept.sum() <= MAX_LABELS)
    rule = "passed" if threshold is None else f"score > {threshold:g}"
    left.set_title(f"{name} input: {len(boxes)} boxes\n"
                   f"{int(kept.sum())} {rule} (lime), {int((~kept).sum())} rejected (red)",
                   fontsize=10)
    landmarks = trace.landmarks if stage == "onet" else None
    what = "final faces" if stage == "onet" else "after NMS, regressed, squared"
    _image_panel(right, image, _as_boxes(output.boxes), output.scores, landmarks,
                 title=f"{name} output ({what}): {_plural(len(output), 'box', 'boxes')}",
                 label_scores=len(output) <= MAX_LABELS)
    fig.suptitle(f"{name} on {crop} x {crop} crops")
    return _finish(fig, save)


def plot_stages(trace, save=None, threshold=0.6):
    """Overview of the whole cascade in a 2 x 2 figure, for the README and demos.

    trace: `pipeline.mtcnn.Trace`. Panels: P-Net's face map of pyramid level 0 (0..1, cells
    >= threshold counted in the title); P-Net boxes after NMS across levels; R-Net's output;
    O-Net's output (the final faces) with scores and landmarks. Returns the Figure.
    """
    image = _check_image(trace.image)
    height, width = image.shape[:2]
    fig = Figure(figsize=(9.0, 9.0 * height / width + 0.8), layout="constrained")
    (heat, pnet), (rnet, onet) = fig.subplots(2, 2)
    if trace.prob_maps:
        im = _draw_heatmap(heat, trace.prob_maps[0], 0, trace.scales[0], threshold)
        heat.set_title("1. P-Net face map\n" + heat.get_title(), fontsize=10)
        fig.colorbar(im, ax=heat, shrink=0.8)
    else:
        heat.set_axis_off()
        heat.set_title("1. P-Net: no pyramid levels", fontsize=10)
    _image_panel(pnet, image, _as_boxes(trace.pnet_after_nms.boxes),
                 title=f"2. P-Net after NMS: {len(trace.pnet_after_nms)} boxes", linewidth=0.8)
    _image_panel(rnet, image, _as_boxes(trace.rnet_output.boxes), trace.rnet_output.scores,
                 title=f"3. R-Net output: {len(trace.rnet_output)} boxes", label_scores=False,
                 linewidth=1.0)
    _image_panel(onet, image, _as_boxes(trace.onet_output.boxes), trace.onet_output.scores,
                 trace.landmarks, title=f"4. O-Net output: {_plural(len(trace.onet_output), 'face')}")
    fig.suptitle("MTCNN: proposals, refinement, output")
    return _finish(fig, save)


def plot_counts(trace, save=None, ax=None):
    """How many boxes are left after each step: a horizontal bar per row of trace.counts().

    trace: `pipeline.mtcnn.Trace`. One bar (a Rectangle patch) per step, first step on top,
    each labelled with its count. Returns the Figure.
    """
    steps = trace.counts()
    names = [name for name, _ in steps]
    counts = np.array([count for _, count in steps])
    fig, ax = _figure_and_axes(ax, (7.0, 0.35 * len(steps) + 1.0))
    positions = np.arange(len(steps))
    ax.barh(positions, counts, color=KEPT_COLOR, edgecolor="black", linewidth=0.5)
    ax.set_yticks(positions, names)
    ax.invert_yaxis()
    ax.set_xlim(0, max(1, counts.max(initial=0)) * 1.15)
    for y, count in zip(positions, counts):
        ax.text(count, y, f" {count}", va="center", fontsize=9)
    ax.set_xlabel("boxes")
    ax.set_title("boxes left after each step")
    return _finish(fig, save)


# ---------------------------------------------------------------- inside the nets


def draw_number_grid(ax, values, title="", colors=None, fontsize=11):
    """Draw a small 2-D array as a grid of numbered cells onto ``ax`` (row 0 at the top): the
    hand-worked examples of the tutorials.

    values: (rows, cols) numbers; colors: optional rows x cols face colours (default white).
    Returns ax. Cell (r, c) is the unit square [c, c+1) x [r, r+1), so boxes drawn over it
    use the same coordinates as `pipeline.boxes`.
    """
    values = np.asarray(values)
    if values.ndim != 2:
        raise ValueError(f"values must be a 2-D array; got shape {values.shape}")
    rows, cols = values.shape
    for r in range(rows):
        for c in range(cols):
            face = colors[r][c] if colors is not None else "white"
            ax.add_patch(Rectangle((c, r), 1, 1, facecolor=face, edgecolor="0.6"))
            ax.text(c + 0.5, r + 0.5, f"{values[r, c]:g}", ha="center", va="center", fontsize=fontsize)
    ax.set_xlim(-0.1, cols + 0.1)
    ax.set_ylim(rows + 0.1, -0.1)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(title, fontsize=10)
    return ax


def plot_filters(w, save=None, title=None):
    """First-layer style view of convolution filters: one small image per filter.

    w: (F, C, KH, KW) weights. C == 3: each filter shown as an RGB image (channel order of the
    input, RGB for the MTCNN nets), min-max normalized per filter to 0..1 (a constant filter
    is grey). Other C: the mean over the C channels, as grayscale, normalized per filter.
    The figure has F panels, each with exactly one image. Returns the Figure.
    """
    w = np.asarray(w, dtype=np.float64)
    if w.ndim != 4 or w.shape[0] == 0:
        raise ValueError(f"w must have shape (F, C, KH, KW) with F >= 1; got shape {w.shape}")
    F, C, KH, KW = w.shape
    fig, axes = _grid(F, columns=min(F, 8), inches=1.1)
    for f, ax in enumerate(axes):
        tile = w[f].transpose(1, 2, 0) if C == 3 else w[f].mean(axis=0)
        low, high = tile.min(), tile.max()
        tile = (tile - low) / (high - low) if high > low else np.full_like(tile, 0.5)
        ax.imshow(tile, cmap=None if C == 3 else "gray", vmin=0, vmax=1, interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(str(f), fontsize=7)
    shown = "RGB" if C == 3 else f"mean of {C} channels"
    fig.suptitle(title if title is not None else f"{F} filters {KH}x{KW} ({shown})", fontsize=10)
    return _finish(fig, save)


def feature_maps(net, x, layer):
    """The activations of one trunk layer for one input.

    net: a `nets.MultiHeadNet` (its ``trunk`` is run) or a `layers.Sequential`; put it in eval
    mode first (``net.eval()``) so that dropout is off. x: (1, C, H, W) float, already
    normalized as the net expects (``pipeline.proposals.normalize``); layer: a trunk layer name
    such as "conv1", "pool1", "prelu3" (see ``net.trunk.children``).
    Runs the trunk's layers in order up to and including ``layer`` (each layer keeps its cache,
    as any forward pass does). Returns (C', OH, OW), the layer's output for the one input.
    """
    x = np.asarray(x)
    if x.ndim != 4 or x.shape[0] != 1:
        raise ValueError(f"x must have shape (1, C, H, W); got shape {x.shape}")
    layers = getattr(net, "trunk", net).children
    if layer not in layers:
        raise ValueError(f"no layer {layer!r} in the trunk; layers are {list(layers)}")
    out = x
    for name, module in layers.items():
        out = module.forward(out)
        if name == layer:
            break
    if out.ndim != 4:
        raise ValueError(f"layer {layer!r} gives shape {out.shape}, not a stack of maps "
                         "(N, C, OH, OW)")
    return out[0]


def plot_feature_maps(maps, save=None, title=None, max_maps=32):
    """A grid of feature maps, each with its own colour scale (its min to max).

    maps: (C, H, W) float, e.g. from `feature_maps`; max_maps: show only the first max_maps
    channels. One image per shown map, titled with its channel index. Returns the Figure.
    """
    maps = np.asarray(maps)
    if maps.ndim != 3 or maps.shape[0] == 0:
        raise ValueError(f"maps must have shape (C, H, W) with C >= 1; got shape {maps.shape}")
    shown = maps[:max_maps]
    fig, axes = _grid(len(shown), columns=8, inches=1.3)
    for c, (ax, fmap) in enumerate(zip(axes, shown)):
        ax.imshow(fmap, cmap=HEATMAP_CMAP, interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(str(c), fontsize=7)
    C, H, W = maps.shape
    default = f"{len(shown)} of {C} maps, {H} x {W}"
    fig.suptitle(title if title is not None else default, fontsize=10)
    return _finish(fig, save)


# ---------------------------------------------------------------- training and evaluation


def _is_metric(name: str) -> bool:
    """A history series on the 0..1 axes (accuracy, recall, precision) rather than a loss."""
    return any(word in name.lower() for word in METRIC_WORDS)


def plot_training_curves(history, save=None, title=None):
    """Training curves: losses on the left axes, accuracy-like metrics on the right.

    history: dict name -> sequence of floats, one per epoch (or iteration), e.g.
    {"train loss": [...], "val loss": [...], "val accuracy": [...]}. Series whose name
    contains "acc", "recall" or "precision" go on a second axes with y in 0..1, the rest
    (losses) on the first; the second axes exists only if there is such a series. One line
    per series, x = 1, 2, ..., legends on both. Returns the Figure.
    """
    if not history:
        raise ValueError("history is empty: give at least one series name -> values")
    metrics = {k: v for k, v in history.items() if _is_metric(k)}
    losses = {k: v for k, v in history.items() if not _is_metric(k)}
    groups = [(g, label) for g, label in ((losses, "loss"), (metrics, "fraction")) if g]
    fig = Figure(figsize=(5.0 * len(groups), 3.8), layout="constrained")
    for ax, (series, label) in zip(fig.subplots(1, len(groups), squeeze=False)[0], groups):
        for name, values in series.items():
            values = np.asarray(values, dtype=np.float64).reshape(-1)
            ax.plot(np.arange(1, len(values) + 1), values, marker="." if len(values) < 30 else None,
                    label=name)
        if label == "fraction":
            ax.set_ylim(0, 1.02)
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title if title is not None else "training curves")
    return _finish(fig, save)


def plot_roc(curves, save=None, title=None, xlabel="false positives", ax=None):
    """ROC curves, one line per detector or setting.

    curves: dict name -> (x, y), x and y 1-D of equal length, e.g. x = number of false
    positives and y = true positive rate in 0..1 (FDDB's discrete ROC); xlabel: what x
    counts. y is drawn on 0..1. Returns the Figure.
    """
    fig, ax = _figure_and_axes(ax, (6.0, 4.5))
    for name, (x, y) in curves.items():
        x = np.asarray(x, dtype=np.float64).reshape(-1)
        y = np.asarray(y, dtype=np.float64).reshape(-1)
        if x.shape != y.shape:
            raise ValueError(f"curve {name!r}: x has shape {x.shape} but y has shape {y.shape}")
        ax.plot(x, y, label=name)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("true positive rate")
    ax.grid(alpha=0.3)
    if curves:
        ax.legend(loc="lower right")
    ax.set_title(title if title is not None else "ROC")
    return _finish(fig, save)
