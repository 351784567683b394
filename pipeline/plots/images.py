"""Boxes, scores and landmarks drawn on images; small arrays drawn as grids of numbers."""

from __future__ import annotations

import numpy as np
from matplotlib.patches import Rectangle

from .common import (
    KEPT_COLOR, LANDMARK_COLOR, as_boxes, as_points, check_image, figure_and_axes, finish,
    image_figsize, plural, show_image)


LABEL_FONTSIZE = 8  # points; score labels smaller than this are hard to read on a saved figure


def draw_boxes(ax, boxes, scores=None, landmarks=None, color=KEPT_COLOR, label_scores=True,
               linewidth=1.5):
    """Draw boxes onto an existing Axes whose data coordinates are image pixels.

    ax: a matplotlib Axes showing the image (e.g. after `plot_boxes` or ``ax.imshow``);
    boxes: (N, 4) float x1, y1, x2, y2 in pixels of the original image (N may be 0);
    scores: optional (N,) face probabilities, written just above each box's top-left corner
    when label_scores is True, best score first; a label that would cover one already
    written is left out, so the labels stay readable however many boxes overlap;
    landmarks: optional (K, 5, 2) (x, y) pixels, drawn as one scatter of cyan points (one
    collection for all faces); color: the rectangles' edge colour.
    Adds exactly one `matplotlib.patches.Rectangle` per box to ``ax.patches``.
    Returns ax.
    """
    boxes = as_boxes(boxes)
    if scores is not None:
        scores = np.asarray(scores, dtype=np.float64).reshape(-1)
        if len(scores) != len(boxes):
            raise ValueError(f"scores must have shape ({len(boxes)},) to match the boxes; "
                             f"got shape {scores.shape}")
    for x1, y1, x2, y2 in boxes:
        ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=color,
                               linewidth=linewidth))
    if scores is not None and label_scores:
        for i in _labels_that_fit(ax, boxes, scores):
            ax.text(boxes[i, 0], boxes[i, 1], f"{scores[i]:.2f}", color="black", fontsize=LABEL_FONTSIZE,
                    va="bottom", ha="left", clip_on=True,
                    bbox=dict(facecolor=color, edgecolor="none", alpha=0.8, pad=1))
    if landmarks is not None:
        points = as_points(landmarks)
        if len(points):
            ax.scatter(points[:, 0], points[:, 1], s=14, c=LANDMARK_COLOR, edgecolors="black",
                       linewidths=0.5, zorder=3)
    return ax


def _labels_that_fit(ax, boxes: np.ndarray, scores: np.ndarray) -> list[int]:
    """Indices of the boxes whose score label gets written: best score first, skipping a label
    whose rectangle (about 4 characters of LABEL_FONTSIZE, above the box's top-left corner)
    would overlap one already placed. Sizes are measured in display pixels of the figure."""
    dpi = ax.figure.dpi
    width, height = 2.8 * LABEL_FONTSIZE * dpi / 72, 1.5 * LABEL_FONTSIZE * dpi / 72  # "0.99" and its padding
    if len(boxes) and ax.figure.get_layout_engine() is not None:
        # lay the figure out first: a constrained layout shrinks the axes when it is drawn, and
        # labels measured on the larger axes would stack once saved
        ax.figure.draw_without_rendering()
    corners = ax.transData.transform(boxes[:, :2]) if len(boxes) else np.zeros((0, 2))
    placed: list[int] = []
    for i in np.argsort(-scores, kind="stable"):
        x, y = corners[i]
        if all(abs(x - corners[j, 0]) >= width or abs(y - corners[j, 1]) >= height for j in placed):
            placed.append(int(i))
    return placed


def plot_boxes(image, boxes, scores=None, landmarks=None, save=None, ax=None, title=None,
               color=KEPT_COLOR):
    """The image with boxes (and optionally scores and landmarks) drawn on it.

    image: (H, W, 3) uint8 RGB (or (H, W) gray); boxes: (N, 4) float x1, y1, x2, y2 in pixels
    of that image; scores: optional (N,); landmarks: optional (K, 5, 2) (x, y) pixels;
    title: default "N boxes"; save: optional path; ax: draw into this Axes instead of a new
    figure. One Rectangle patch per box. Returns the Figure.
    """
    image = check_image(image)
    boxes = as_boxes(boxes)
    fig, ax = figure_and_axes(ax, image_figsize(image))
    show_image(ax, image)
    draw_boxes(ax, boxes, scores, landmarks, color=color)
    ax.set_title(title if title is not None else plural(len(boxes), "box", "boxes"))
    return finish(fig, save)


def plot_faces(image, faces, save=None, ax=None, title=None):
    """The image with the detected faces: box, score and five landmarks each.

    image: (H, W, 3) uint8 RGB; faces: list of `pipeline.detection.mtcnn.Face` (box (4,) x1, y1, x2, y2
    pixels, score float, landmarks (5, 2) (x, y) pixels), as returned by
    ``MTCNNDetector().detect(image)``; title: default "N faces". Returns the Figure.
    """
    boxes = np.array([f.box for f in faces], dtype=np.float64).reshape(-1, 4)
    scores = np.array([f.score for f in faces], dtype=np.float64)
    landmarks = np.array([f.landmarks for f in faces], dtype=np.float64).reshape(-1, 5, 2)
    title = title if title is not None else plural(len(faces), "face")
    return plot_boxes(image, boxes, scores, landmarks, save=save, ax=ax, title=title)


def plot_receptive_fields(image, boxes, save=None, ax=None, title=None, centers=True):
    """Receptive-field windows drawn on an image, with their centres as dots.

    image: (H, W, 3) uint8 RGB; boxes: (N, 4) float x1, y1, x2, y2 in pixels of that image,
    e.g. the 12 x 12 windows [2c, 2c + 12) x [2r, 2r + 12) of P-Net cells (r, c) of a pyramid
    level, divided by the level's scale to land in the original image; centers: draw each
    window's centre ((x1 + x2) / 2, (y1 + y2) / 2) as one scatter. Returns the Figure.
    """
    image = check_image(image)
    boxes = as_boxes(boxes)
    fig, ax = figure_and_axes(ax, image_figsize(image))
    show_image(ax, image)
    draw_boxes(ax, boxes, color=KEPT_COLOR, linewidth=1.0)
    if centers and len(boxes):
        ax.scatter((boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2, s=10,
                   c=KEPT_COLOR, edgecolors="black", linewidths=0.5, zorder=3)
    ax.set_title(title if title is not None else plural(len(boxes), "receptive field"))
    return finish(fig, save)



def draw_number_grid(ax, values, title="", colors=None, fontsize=11):
    """Draw a small 2-D array as a grid of numbered cells onto ``ax`` (row 0 at the top): the
    hand-worked examples of the tutorials.

    values: (rows, cols) numbers; colors: optional rows x cols face colours (default white).
    Returns ax. Cell (r, c) is the unit square [c, c+1) x [r, r+1), so boxes drawn over it
    use the same coordinates as `pipeline.detection.boxes`.
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


def draw_window_groups(ax, groups, linewidth: float = 1.2) -> None:
    """Groups of boxes on an Axes showing an image, each group in its colour with one legend
    entry. groups: sequence of (boxes (N, 4) x1, y1, x2, y2 in pixels, colour, label); a group
    may be empty. The legend goes to the upper right."""
    for boxes, colour, label in groups:
        for k, (x1, y1, x2, y2) in enumerate(as_boxes(boxes)):
            ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, color=colour, lw=linewidth,
                                   label=label if k == 0 else None))
    ax.legend(loc="upper right", fontsize=8, framealpha=0.8)
