"""What each stage of the detector sees and keeps, drawn from a `Trace` of `MTCNNDetector.detect`."""

from __future__ import annotations

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle

from pipeline.data.images import to_chw_float
from pipeline.detection.pyramid import scaled_size
from pipeline.detection.resize import resize_area
from .common import (
    HEATMAP_CMAP, KEPT_COLOR, REJECTED_COLOR, STAGES, as_boxes, check_image, concat_boxes,
    figure_and_axes, finish, grid, plural, rows_in, show_image)
from pipeline.plots.images import draw_boxes


def plot_pyramid(trace, save=None):
    """The pyramid levels P-Net scanned, side by side, each at its own size in pixels.

    trace: `pipeline.detection.mtcnn.Trace` (uses trace.image (H, W, 3) uint8, trace.scales and, when
    recorded, the detector's minimum face size). Each level is trace.image resized by area
    averaging to ``scaled_size(H, W, scale)``, as the detector does, and drawn at one pixel per
    pixel on a shared canvas (so level k is really 0.709^k of level 0), with P-Net's 12 x 12
    window drawn in its top-left corner: the face size each level finds is the window divided
    by the level's scale. Returns the Figure (a single message panel if the image had no levels).
    """
    image = check_image(trace.image)
    if not trace.scales:
        return finish(_message_figure(_no_levels(trace)), save)
    height, width = image.shape[:2]
    image_chw = to_chw_float(image)
    sizes = [scaled_size(height, width, scale) for scale in trace.scales]
    gap = max(6, sizes[0][1] // 40)
    total = sum(w for _, w in sizes) + gap * (len(sizes) - 1)
    fig = Figure(figsize=(min(16.0, 2.0 + 12.0 * total / max(total, sizes[0][0] * 3)), 4.2), layout="constrained")
    ax = fig.add_subplot()
    x = 0
    for k, (scale, (h, w)) in enumerate(zip(trace.scales, sizes)):
        level = resize_area(image_chw, h, w)
        level = np.clip(np.rint(level), 0, 255).astype(np.uint8).transpose(1, 2, 0)
        ax.imshow(level, extent=(x, x + w, h, 0), interpolation="nearest")
        ax.add_patch(Rectangle((x, 0), 12, 12, fill=False, color="red", lw=1.2))
        label = f"{k}: x{scale:.3f}\n{w} x {h}" if w >= 40 else f"{k}"
        ax.text(x + w / 2, h + gap, label, ha="center", va="top", fontsize=7)
        x += w + gap
    ax.set_xlim(-gap, x)
    ax.set_ylim(sizes[0][0] + 8 * gap, -gap)
    ax.set_aspect("equal")
    ax.set_axis_off()
    first = 12 / trace.scales[0]
    step = (f"; each next level is {trace.scales[1] / trace.scales[0]:.3f} times the last and finds faces "
            f"{trace.scales[0] / trace.scales[1]:.2f} times larger" if len(trace.scales) > 1 else "")
    fig.suptitle(f"image pyramid: {plural(len(trace.scales), 'level')} of the {width} x {height} px image (W x H), "
                 f"each at its own size; red: the 12 x 12 window.\nLevel 0 is the image times "
                 f"{trace.scales[0]:.3f} = 12 / {first:.0f}, so that a face of {first:.0f} px (the smallest asked "
                 f"for) fills the window{step}", fontsize=9)
    return finish(fig, save)


def _message_figure(message: str) -> Figure:
    """A small Figure that only says ``message`` (for traces with nothing to show)."""
    fig = Figure(figsize=(4, 1.5), layout="constrained")
    ax = fig.add_subplot()
    ax.set_axis_off()
    ax.text(0.5, 0.5, message, ha="center", va="center", wrap=True)
    return fig


def stage_threshold(trace, stage: int, default: float) -> float:
    """The threshold the detector used for stage 0, 1 or 2, as recorded in trace.thresholds,
    else ``default`` (a trace from a detector that does not record it)."""
    thresholds = tuple(getattr(trace, "thresholds", ()) or ())
    return float(thresholds[stage]) if len(thresholds) > stage else default


def _draw_heatmap(ax, prob: np.ndarray, level: int, scale: float, threshold: float):
    """One P-Net face map (OH, OW) in 0..1 with its title; returns the AxesImage."""
    prob = np.asarray(prob)
    im = ax.imshow(prob, vmin=0.0, vmax=1.0, cmap=HEATMAP_CMAP, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    hits = int(np.count_nonzero(prob >= threshold))
    ax.set_title(f"level {level}: scale {scale:.3f}, {prob.shape[1]} x {prob.shape[0]} cells\n"
                 f"{plural(hits, 'cell')} \u2265 {threshold:.3g}", fontsize=9)
    return im


def plot_heatmaps(trace, save=None, max_levels=None, threshold=None):
    """P-Net's face probability map of each pyramid level, one panel per level.

    trace: `pipeline.detection.mtcnn.Trace`; trace.prob_maps[i] is (OH, OW) float in 0..1, cell (r, c)
    = the 12 x 12 level window at (2c, 2r). All panels share the colour scale 0..1 and one
    colourbar; titles give the scale, the map size (W x H cells) and the number of cells >=
    threshold: by default the stage-1 threshold the detector used (trace.thresholds[0]), so
    the count is the number of candidate boxes of that level; pass a number to count against
    another. max_levels: show only the first (largest) levels. Returns the Figure.
    """
    threshold = stage_threshold(trace, 0, 0.6) if threshold is None else threshold
    maps = list(trace.prob_maps)[:max_levels]
    if not maps:
        return finish(_message_figure(_no_levels(trace)), save)
    fig, axes = grid(len(maps), height_ratio=1.05)
    images = [_draw_heatmap(ax, prob, k, scale, threshold)
              for k, (ax, prob, scale) in enumerate(zip(axes, maps, trace.scales))]
    fig.colorbar(images[0], ax=axes, label=f"{trace.stage_names[0]} face probability", shrink=0.8)
    fig.suptitle(f"{trace.stage_names[0]} face maps, {plural(len(maps), 'level')}")
    return finish(fig, save)


def _no_levels(trace) -> str:
    """Why a trace has no pyramid level: the detector's note, or the general reason."""
    notes = list(getattr(trace, "notes", []) or [])
    return notes[0] if notes else "no pyramid levels: the image is smaller than the smallest face searched for"


def _image_panel(ax, image, boxes, scores=None, landmarks=None, title="", color=KEPT_COLOR,
                 label_scores=True, linewidth=1.5):
    """One panel: the image, boxes and a title."""
    show_image(ax, image)
    draw_boxes(ax, boxes, scores, landmarks, color=color, label_scores=label_scores,
               linewidth=linewidth)
    ax.set_title(title, fontsize=10)


def plot_nms(trace, save=None):
    """P-Net's candidates before and after the two rounds of non-maximum suppression.

    trace: `pipeline.detection.mtcnn.Trace` (boxes are (N, 4) x1, y1, x2, y2 pixels of trace.image).
    Three panels: all candidates of all levels (trace.level_candidates), after NMS within
    each level (trace.level_after_nms), after NMS across levels (trace.stage1_after_nms, the
    boxes before regression). Each panel has one Rectangle per box; titles give the counts.
    Returns the Figure.
    """
    image = check_image(trace.image)
    height, width = image.shape[:2]
    fig = Figure(figsize=(3 * 4.0, 4.0 * height / width + 1.0), layout="constrained")
    axes = fig.subplots(1, 3)
    levels = len(trace.level_candidates)
    palette = matplotlib.colormaps["viridis"]
    for ax, (name, per_level) in zip(axes[:2], (("all candidates", trace.level_candidates),
                                                 ("after NMS within each level", trace.level_after_nms))):
        show_image(ax, image)
        for k, boxes in enumerate(per_level):  # each level its own colour: small faces on level 0
            draw_boxes(ax, as_boxes(boxes.boxes), color=palette(k / max(levels - 1, 1)), label_scores=False,
                       linewidth=0.8)
        ax.set_title(f"{name}: {len(concat_boxes(per_level))} boxes", fontsize=10)
    across = as_boxes(trace.stage1_after_nms.boxes)
    within = len(concat_boxes(trace.level_after_nms))
    title = f"after NMS across levels: {len(across)} boxes"
    if len(across) == within:
        # the windows of two levels differ in size by the pyramid's factor (0.709), so the IoU
        # of two concentric ones is at most 0.709^2 = 0.50: under the 0.7 of this round
        title += "\n(none removed: boxes of neighbouring levels\noverlap with IoU <= 0.5, under 0.7)"
    _image_panel(axes[2], image, across, title=title, linewidth=0.8)
    if levels:
        colours = [Line2D([], [], color=palette(k / max(levels - 1, 1)), lw=2) for k in (0, levels - 1)]
        fig.legend(colours, ["level 0 (small faces)", f"level {levels - 1} (large faces)"],
                   loc="outside lower center", ncol=2, fontsize=8, frameon=False)
    fig.suptitle(f"{trace.stage_names[0]} proposals and non-maximum suppression")
    return finish(fig, save)


def _trace_field(stage: str) -> str:
    """The Trace fields' prefix of stage "rnet" or "onet": "stage2" or "stage3"."""
    if stage not in STAGES:
        raise ValueError(f"stage must be one of {sorted(STAGES)}; got {stage!r}")
    return f"stage{list(STAGES).index(stage) + 2}"


def _stage_boxes(trace, stage: str):
    """(input Boxes, passed Boxes, output Boxes) of stage "rnet" or "onet"."""
    field = _trace_field(stage)
    return (getattr(trace, f"{field}_input"), getattr(trace, f"{field}_passed"),
            getattr(trace, f"{field}_output"))


def passed_mask(trace, stage: str, threshold=None) -> np.ndarray:
    """Which boxes entering a stage passed its threshold.

    trace: `pipeline.detection.mtcnn.Trace`; stage: "rnet" or "onet"; threshold: None to read the
    answer from the trace (``trace.stage2_passed_mask`` for R-Net, ``stage3`` for O-Net, recorded
    by the detector with the threshold it used), or a probability to split by score > threshold
    instead. Returns (N,) bool over the stage's ``_input`` boxes. A trace without the recorded
    mask (from a detector that does not record it) falls back to looking up each input box
    among the stage's ``_passed`` boxes.
    """
    entering, passed, _ = _stage_boxes(trace, stage)
    if threshold is not None:
        return np.asarray(entering.scores, dtype=np.float64) > threshold
    recorded = getattr(trace, f"{_trace_field(stage)}_passed_mask", None)
    if recorded is not None and len(recorded) == len(entering):
        return np.asarray(recorded, dtype=bool)
    return rows_in(as_boxes(entering.boxes), as_boxes(passed.boxes))


def plot_stage(trace, stage, save=None, threshold=None):
    """One refinement stage: which boxes it kept, and what it returned.

    trace: `pipeline.detection.mtcnn.Trace`; stage: "rnet" or "onet". Left panel: the boxes entering the
    stage (trace.stage2_input / trace.stage3_input, (N, 4) pixels), kept ones (those that passed
    the stage's threshold) in lime with their scores and rejected ones in red; threshold: None
    (default) takes "passed" from trace.<stage>_passed, a number splits by score > threshold
    (0.7 is the detector's default; see `passed_mask`). Right panel: the stage's output
    (trace.stage2_output: after NMS, regressed and squared for O-Net; trace.stage3_output: the
    final faces, with trace.landmarks (K, 5, 2)). One Rectangle per box in each panel; scores
    are written on the lime boxes, best first, leaving out labels that would cover one
    already written (see `draw_boxes`). Returns the Figure.
    """
    image = check_image(trace.image)
    entering, _, output = _stage_boxes(trace, stage)
    index = list(STAGES).index(stage) + 1  # stage 2 or 3 of the cascade
    name, crop = trace.stage_names[index], trace.crop_sizes[index]
    boxes = as_boxes(entering.boxes)
    scores = np.asarray(entering.scores, dtype=np.float64)
    kept = passed_mask(trace, stage, threshold)
    height, width = image.shape[:2]
    fig = Figure(figsize=(2 * 5.0, 5.0 * height / width + 0.5), layout="constrained")
    left, right = fig.subplots(1, 2)
    show_image(left, image)
    draw_boxes(left, boxes[~kept], color=REJECTED_COLOR, linewidth=0.8)
    draw_boxes(left, boxes[kept], scores[kept], color=KEPT_COLOR)
    used = stage_threshold(trace, index, None)
    if threshold is not None:
        rule = f"score > {threshold:g}"
    else:
        rule = f"passed threshold {used:.3g}" if used is not None else "passed"
    left.set_title(f"{name} input: {len(boxes)} boxes\n"
                   f"{int(kept.sum())} {rule} (lime), {int((~kept).sum())} rejected (red)",
                   fontsize=10)
    landmarks = trace.landmarks if stage == "onet" else None
    what = "final faces" if stage == "onet" else "after NMS, regressed, squared"
    _image_panel(right, image, as_boxes(output.boxes), output.scores, landmarks,
                 title=f"{name} output ({what}): {plural(len(output), 'box', 'boxes')}")
    fig.suptitle(f"{name} on {crop} x {crop} px crops")
    return finish(fig, save)


def strongest_level(trace) -> int:
    """Index of the pyramid level whose face map has the highest probability (0 if none)."""
    if not trace.prob_maps:
        return 0
    return int(np.argmax([np.max(prob) if np.size(prob) else -1.0 for prob in trace.prob_maps]))


def plot_stages(trace, save=None, threshold=None, level=None):
    """Overview of the whole cascade in a 2 x 2 figure, for the README and demos.

    trace: `pipeline.detection.mtcnn.Trace`. Panels: the stage-1 face map of one pyramid level, by
    default the level with the strongest response (`strongest_level`), where a face lights
    up, or the level given as ``level``; its title counts the cells >= threshold (default:
    the stage-1 threshold the detector used, trace.thresholds[0]). Then the stage-1 boxes
    after NMS; the stage-2 output; the final faces with scores and landmarks.
    Returns the Figure.
    """
    image = check_image(trace.image)
    threshold = stage_threshold(trace, 0, 0.6) if threshold is None else threshold
    chosen = strongest_level(trace) if level is None else level
    if trace.prob_maps and not 0 <= chosen < len(trace.prob_maps):
        raise ValueError(f"level must be a pyramid level 0..{len(trace.prob_maps) - 1}; got {level!r}")
    height, width = image.shape[:2]
    fig = Figure(figsize=(9.0, 9.0 * height / width + 0.8), layout="constrained")
    (heat, pnet), (rnet, onet) = fig.subplots(2, 2)
    first, second, third = trace.stage_names
    if trace.prob_maps:
        im = _draw_heatmap(heat, trace.prob_maps[chosen], chosen, trace.scales[chosen], threshold)
        which = "strongest level" if level is None else "level"
        heat.set_title(f"1. {first} face map ({which})\n" + heat.get_title(), fontsize=10)
        fig.colorbar(im, ax=heat, shrink=0.8)
    else:
        heat.set_axis_off()
        heat.set_title(f"1. {first}: no pyramid levels", fontsize=10)
    _image_panel(pnet, image, as_boxes(trace.stage1_after_nms.boxes),
                 title=f"2. {first} after NMS: {len(trace.stage1_after_nms)} boxes", linewidth=0.8)
    _image_panel(rnet, image, as_boxes(trace.stage2_output.boxes), trace.stage2_output.scores,
                 title=f"3. {second} output: {len(trace.stage2_output)} boxes", label_scores=False,
                 linewidth=1.0)
    _image_panel(onet, image, as_boxes(trace.stage3_output.boxes), trace.stage3_output.scores,
                 trace.landmarks, title=f"4. {third} output: {plural(len(trace.stage3_output), 'face')}")
    fig.suptitle(f"{trace.detector}: proposals, refinement, output")
    return finish(fig, save)


def plot_counts(trace, save=None, ax=None):
    """How many boxes are left after each step: a horizontal bar per row of trace.counts().

    trace: `pipeline.detection.mtcnn.Trace`. One bar (a Rectangle patch) per step, first step on top,
    each labelled with its count. Returns the Figure.
    """
    steps = trace.counts()
    names = [name for name, _ in steps]
    counts = np.array([count for _, count in steps])
    fig, ax = figure_and_axes(ax, (7.0, 0.35 * len(steps) + 1.0))
    positions = np.arange(len(steps))
    ax.barh(positions, counts, color=KEPT_COLOR, edgecolor="black", linewidth=0.5)
    ax.set_yticks(positions, names)
    ax.invert_yaxis()
    ax.set_xlim(0, max(1, counts.max(initial=0)) * 1.15)
    for y, count in zip(positions, counts):
        ax.text(count, y, f" {count}", va="center", fontsize=9)
    ax.set_xlabel("boxes")
    ax.set_title("boxes left after each step")
    return finish(fig, save)
