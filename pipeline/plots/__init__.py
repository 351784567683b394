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
square [c, c+1) x [r, r+1), exactly the box convention of `pipeline.detection.boxes`: a box
x1, y1, x2, y2 is drawn as the rectangle with corners (x1, y1) and (x2, y2), no half-pixel
shift. Sizes are written W x H (width first, as images are usually described), in pixels
("px") for images and in cells for feature maps. Colours are the same everywhere: boxes that are kept in lime, rejected ones in red,
landmarks as cyan points.

The functions live in four small modules: `images` (boxes on images, number grids),
`detection` (the stages of a trace), `nets` (filters, feature maps) and `training` (curves).
"""

from .common import DPI, KEPT_COLOR, LANDMARK_COLOR, REJECTED_COLOR
from .detection import (passed_mask, plot_counts, plot_heatmaps, plot_nms, plot_pyramid, plot_stage, plot_stages,
                        strongest_level)
from .images import draw_boxes, draw_number_grid, draw_window_groups, plot_boxes, plot_faces, plot_receptive_fields
from .nets import feature_maps, plot_feature_maps, plot_filters
from .training import plot_evaluation, plot_roc, plot_training_curves

__all__ = ["DPI", "KEPT_COLOR", "LANDMARK_COLOR", "REJECTED_COLOR", "draw_boxes", "draw_number_grid", "draw_window_groups", "feature_maps",
           "passed_mask", "plot_boxes", "plot_counts", "plot_faces", "plot_feature_maps", "plot_filters",
           "plot_evaluation", "plot_heatmaps", "plot_nms", "plot_pyramid", "plot_receptive_fields", "plot_roc", "plot_stage",
           "plot_stages", "plot_training_curves", "strongest_level"]
