"""Constants and small helpers shared by the plot modules: colours, panel sizes, saving."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from nets import ONET_SIZE, RNET_SIZE

KEPT_COLOR = "lime"        # boxes that passed a step
REJECTED_COLOR = "red"     # boxes a step dropped
LANDMARK_COLOR = "cyan"    # the five O-Net landmarks
HEATMAP_CMAP = "viridis"   # face probability 0..1
DPI = 100                  # pixels per inch when saving
PANEL_INCHES = 3.2         # size of one panel in the multi-panel figures
MAX_COLUMNS = 5            # panels per row before a grid wraps
METRIC_WORDS = ("acc", "recall", "precision", "passed")  # history series drawn on the 0..1 axes
STAGES = {"rnet": ("R-Net", RNET_SIZE), "onet": ("O-Net", ONET_SIZE)}  # name, crop size


def finish(fig: Figure, save, dpi: int = DPI) -> Figure:
    """Save ``fig`` to ``save`` (str or Path) if given, creating the folders; return it."""
    if save is not None:
        path = Path(save)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=dpi)
    return fig


def figure_and_axes(ax, figsize):
    """The given Axes and its figure, or a new one-panel Figure of ``figsize`` inches."""
    if ax is not None:
        return ax.figure, ax
    fig = Figure(figsize=figsize, layout="constrained")
    return fig, fig.add_subplot()


def grid(n: int, columns: int = MAX_COLUMNS, inches: float = PANEL_INCHES, height_ratio=1.0):
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


def image_figsize(image: np.ndarray, width: float = 6.0) -> tuple[float, float]:
    """Figure size in inches for one image panel ``width`` inches wide, plus room for a title."""
    rows, cols = image.shape[:2]
    return width, width * rows / max(cols, 1) + 0.4


def check_image(image) -> np.ndarray:
    """image: (H, W, 3) RGB or (H, W) gray; returned as an array, else ValueError."""
    image = np.asarray(image)
    if not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)):
        raise ValueError(f"image must have shape (H, W, 3) RGB or (H, W); got shape {image.shape}")
    return image


def as_boxes(boxes) -> np.ndarray:
    """boxes: (N, 4) x1, y1, x2, y2 (or empty) as float64 (N, 4), else ValueError."""
    boxes = np.asarray(boxes, dtype=np.float64)
    if boxes.size == 0:
        return np.zeros((0, 4))
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"boxes must have shape (N, 4) as x1, y1, x2, y2; got shape {boxes.shape}")
    return boxes


def as_points(landmarks) -> np.ndarray:
    """landmarks: (K, 5, 2) or (M, 2) (x, y) points, returned as float64 (M, 2)."""
    points = np.asarray(landmarks, dtype=np.float64)
    if points.size == 0:
        return np.zeros((0, 2))
    if points.shape[-1] != 2:
        raise ValueError(f"landmarks must have shape (K, 5, 2) as (x, y); got shape {points.shape}")
    return points.reshape(-1, 2)


def show_image(ax, image: np.ndarray) -> None:
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


def concat_boxes(box_sets) -> np.ndarray:
    """The boxes of a list of `Boxes` (e.g. one per pyramid level) as one (N, 4) array."""
    return np.concatenate([np.zeros((0, 4))] + [as_boxes(b.boxes) for b in box_sets])


def rows_in(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N,) bool: which rows of a (N, 4) occur, coordinate for coordinate, in b (M, 4)."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros(len(a), dtype=bool)
    return (a[:, None, :] == b[None, :, :]).all(axis=2).any(axis=1)


def plural(n: int, word: str, plural: str | None = None) -> str:
    """"1 face", "2 faces"; ``plural`` for irregular words ("box", "boxes")."""
    return f"{n} {word}" if n == 1 else f"{n} {plural or word + 's'}"
