"""Inside the nets: learned filters and the feature maps of any layer."""

from __future__ import annotations

import numpy as np

from pipeline.data.images import to_chw_float
from pipeline.detection.proposals import normalize
from pipeline.plots.common import HEATMAP_CMAP, finish, grid


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
    fig, axes = grid(F, columns=min(F, 8), inches=1.1)
    for f, ax in enumerate(axes):
        tile = w[f].transpose(1, 2, 0) if C == 3 else w[f].mean(axis=0)
        low, high = tile.min(), tile.max()
        tile = (tile - low) / (high - low) if high > low else np.full_like(tile, 0.5)
        ax.imshow(tile, cmap=None if C == 3 else "gray", vmin=0, vmax=1, interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(str(f), fontsize=7)
    shown = "RGB" if C == 3 else f"mean of {C} channels"
    heading = title if title is not None else f"{F} filters {KW} x {KH} ({shown})"
    fig.suptitle(f"{heading}\neach filter on its own colour scale (its min to max)", fontsize=10)
    return finish(fig, save)


def feature_maps(net, x, layer):
    """The activations of one trunk layer for one input.

    net: a `nets.MultiHeadNet` (its ``trunk`` is run) or a `layers.Sequential`; put it in eval
    mode first (``net.eval()``) so that dropout is off. x: either an image crop (H, W, 3)
    uint8 RGB, e.g. ``image[40:200, 150:300]``, which is normalized here as the MTCNN nets
    expect, (pixel - 127.5) / 128 (`pipeline.detection.proposals.normalize`); or a net input
    (1, C, H, W) float, already normalized. layer: a trunk layer name such as "conv1",
    "pool1", "prelu3" (see ``net.trunk.children``).
    Runs the trunk's layers in order up to and including ``layer`` (each layer keeps its cache,
    as any forward pass does). Returns (C', OH, OW), the layer's output for the one input.
    """
    x = np.asarray(x)
    if x.dtype == np.uint8:
        if x.ndim != 3 or x.shape[2] != 3:
            raise ValueError(f"x: an image crop must have shape (H, W, 3) uint8 RGB; got shape {x.shape}")
        x = normalize(to_chw_float(x))[None]
    if x.ndim != 4 or x.shape[0] != 1:
        raise ValueError(f"x must be an (H, W, 3) uint8 RGB crop or a normalized (1, C, H, W) float input; "
                         f"got shape {x.shape}, dtype {x.dtype}")
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


def plot_feature_maps(maps, save=None, title=None, max_maps=32, shared_scale=False):
    """A grid of feature maps.

    maps: (C, H, W) float, e.g. from `feature_maps`; max_maps: show only the first max_maps
    channels; shared_scale: False (default) gives each map its own colour scale, its min to
    max, which shows the pattern of every map but not how strong one map is against another
    (the title says so); True puts all maps on one scale with one colour bar. One image per
    shown map, titled with its channel index. Returns the Figure.
    """
    maps = np.asarray(maps)
    if maps.ndim != 3 or maps.shape[0] == 0:
        raise ValueError(f"maps must have shape (C, H, W) with C >= 1; got shape {maps.shape}")
    shown = maps[:max_maps]
    fig, axes = grid(len(shown), columns=8, inches=1.3)
    limits = dict(vmin=float(shown.min()), vmax=float(shown.max())) if shared_scale else {}
    for c, (ax, fmap) in enumerate(zip(axes, shown)):
        im = ax.imshow(fmap, cmap=HEATMAP_CMAP, interpolation="nearest", **limits)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(str(c), fontsize=7)
    if shared_scale:
        fig.colorbar(im, ax=axes, shrink=0.8, label="activation (one scale for all maps)")
    C, H, W = maps.shape
    default = f"{len(shown)} of {C} maps, {W} x {H} cells"
    scale = ("one colour scale for all maps" if shared_scale
             else "each map on its own colour scale (its min to max)")
    fig.suptitle(f"{title if title is not None else default}\n{scale}", fontsize=10)
    return finish(fig, save)
