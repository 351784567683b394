"""Training curves and ROC curves."""

from __future__ import annotations

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from pipeline.plots.common import METRIC_WORDS, figure_and_axes, finish


def _is_metric(name: str) -> bool:
    """A history series on the 0..1 axes (accuracy, recall, precision) rather than a loss."""
    return any(word in name.lower() for word in METRIC_WORDS)


def _quantity(name: str) -> tuple[str, str]:
    """("val", "face loss") from "val face loss": the split ("train", "val" or "") and what."""
    for split in ("train ", "val "):
        if name.startswith(split):
            return split.strip(), name[len(split):]
    return "", name


def plot_training_curves(history, save=None, title=None):
    """Training curves: losses on the left axes, fractions (accuracy, recall, share of
    negatives passing) on the right.

    history: dict name -> sequence of floats, one per epoch (or iteration), e.g.
    {"train loss": [...], "val loss": [...], "val accuracy": [...]}. Series whose name
    contains "acc", "recall", "precision" or "passed" go on the second axes with y in 0..1,
    the rest (losses, errors) on the first; the second axes exists only if there is such a
    series. Each quantity has its own colour, train solid and val dashed, x = 1, 2, ...;
    each legend sits to the right of its axes, off the lines. Returns the Figure.
    """
    if not history:
        raise ValueError("history is empty: give at least one series name -> values")
    metrics = {k: v for k, v in history.items() if _is_metric(k)}
    losses = {k: v for k, v in history.items() if not _is_metric(k)}
    groups = [(g, label) for g, label in ((losses, "loss"), (metrics, "fraction")) if g]
    quantities = list(dict.fromkeys(_quantity(name)[1] for name in history))
    palette = matplotlib.colormaps["tab10" if len(quantities) <= 10 else "tab20"]
    colour = {q: palette(i % palette.N) for i, q in enumerate(quantities)}
    fig = Figure(figsize=(6.6 * len(groups), 3.8), layout="constrained")
    for ax, (series, label) in zip(fig.subplots(1, len(groups), squeeze=False)[0], groups):
        for name, values in series.items():
            values = np.asarray(values, dtype=np.float64).reshape(-1)
            split, quantity = _quantity(name)
            ax.plot(np.arange(1, len(values) + 1), values, marker="." if len(values) < 30 else None,
                    color=colour[quantity], linestyle="--" if split == "val" else "-", label=name)
        if label == "fraction":
            ax.set_ylim(0, 1.02)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    fig.suptitle(title if title is not None else "training curves")
    return finish(fig, save)


def plot_roc(curves, save=None, title=None, xlabel="false positives", ax=None):
    """ROC curves, one line per detector or setting.

    curves: dict name -> (x, y), x and y 1-D of equal length, e.g. x = number of false
    positives and y = true positive rate in 0..1 (FDDB's discrete ROC); xlabel: what x
    counts. y is drawn on 0..1. Returns the Figure.
    """
    fig, ax = figure_and_axes(ax, (6.0, 4.5))
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
    return finish(fig, save)


def plot_evaluation(results: dict, save=None):
    """What `pipeline.evaluation.evaluate` measured, one panel per image set.

    results: evaluate's dict. Face sets ("val", "photos"): recall against false positives per
    image as the score threshold falls (FDDB's discrete ROC, divided by the set's images), the
    detector's operating point (at most 0.1 false positives per face-free photo) marked. The
    face-free photos: false positives per photo against the score threshold, the budget drawn
    and the operating point's threshold marked. Returns the Figure.
    """
    point = results["operating_point"]
    above = point["score_above"]
    sets = [(key, label) for key, label in (("val", "validation faces"), ("photos", "labelled photos"))
            if results[key]["faces"]]
    fig = Figure(figsize=(4.6 * (len(sets) + 1), 3.9), layout="constrained")
    axes = fig.subplots(1, len(sets) + 1, squeeze=False)[0]
    for ax, (key, label) in zip(axes, sets):
        r = results[key]
        thresholds = np.asarray(r["roc"]["thresholds"], dtype=np.float64)
        per_image = np.asarray(r["roc"]["false_positives"], dtype=np.float64) / max(r["images"], 1)
        recall = np.asarray([np.nan if v is None else v for v in r["roc"]["recall"]], dtype=np.float64)
        ax.step(per_image, recall, where="post", color="tab:blue", label="as the threshold falls")
        kept = thresholds > above if above is not None else np.ones(len(thresholds), bool)
        if kept.any():
            last = np.flatnonzero(kept)[-1]
            ax.plot(per_image[last], recall[last], "o", color="tab:red",
                    label=f"operating point: recall {recall[last]:.3f}")
        ax.set_ylim(0, 1.02)
        right = max(0.1, float(np.nanmax(per_image, initial=0.0)) * 1.05)
        ax.set_xlim(-0.02 * right, right)  # a little room, so that a curve at x = 0 shows
        ax.set_xlabel("false positives per image")
        ax.set_ylabel("recall (IoU >= 0.5)")
        ax.set_title(f"{label}: {r['faces']} faces in {r['images']} images", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
    ax = axes[-1]
    n = results["negatives"]
    scores = np.asarray(n["roc"]["thresholds"], dtype=np.float64)
    per_photo = np.asarray(n["roc"]["false_positives"], dtype=np.float64) / max(n["images"], 1)
    if len(scores):
        # from low thresholds to high: at x in (s[i-1], s[i]] the detections scoring >= s[i] remain
        x = np.concatenate([[min(0.0, scores.min())], scores[::-1], [max(1.0, scores.max())]])
        y = np.concatenate([[per_photo[-1]], per_photo[::-1], [0.0]])
        ax.step(x, y, where="pre", color="tab:blue", label="detections scoring at least x")
    ax.axhline(point["max_false_positives_per_photo"], color="gray", ls="--", label="budget per photo")
    if above is not None:
        ax.axvline(above, color="tab:red", label=f"operating point: score > {above:.3f}")
    ax.set_xlabel("score threshold")
    ax.set_ylabel("false positives per photo")
    ax.set_title(f"face-free photos: {n['images']} held out", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right", fontsize=8)
    fig.suptitle(f"{results['detector']}: at the detector's own thresholds and below")
    return finish(fig, save)
