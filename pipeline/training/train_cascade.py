"""`facecascade train cascade`: the whole Cascade-CNN training procedure, stage by stage.

    net12  -> cal12  -> mine with (net12, cal12)               -> net24 -> cal24
           -> mine with (net12, cal12, net24, cal24)           -> net48 -> cal48

Each stage makes (or reads from the cache) its samples, trains with the shared loop
(`pipeline.training.loop`), picks the detection threshold on the validation samples (`NEGATIVE_BUDGET`) and
writes ``<out>/weights/cascade_<net>.npz``. A stage whose weights file exists is done; a stage
with a checkpoint continues from it with ``resume=True``. The 24-net and 48-net hold the trained
12-net and 24-net as their (frozen) multi-resolution branch.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from nets.cascade_weights import NET_CLASSES, CascadeNets, load_net, round_to_storage, save_net, weights_path

from pipeline.detection.calibration import NUM_PATTERNS, mirrored_patterns
from pipeline.training.cascade_samples import FACE, CascadeRecipe, build_photo_samples, describe
from pipeline.training.photo_windows import PhotoCounts, large_faces
from pipeline.training.loop import (ClassifierTask, TrainConfig, Trainer, load_or_build, output_lock, run_stages,
                       sample_cache_path)

STAGES = ("net12", "cal12", "net24", "cal24", "net48", "cal48")
TARGET_RECALL = 0.99  # a detection stage without a budget keeps this share of the validation faces
# Each detection stage's threshold lets at most this share of its validation non-faces through
# (`pipeline.training.loop.stage_threshold`), a budget on the next stage's work; the 48-net keeps 99%
# of the validation faces, and the final threshold is chosen on the validation photos.
NEGATIVE_BUDGET = {"net12": 0.03, "net24": 0.03, "net48": None}

# Samples per net (from the WIDER training photos by MTCNN's window recipe, the face-free photos
# and, for the calibration nets, also the cuhk80 faces; `pipeline.training.cascade_samples.CascadeRecipe`).
RECIPES = {
    "net12": CascadeRecipe(PhotoCounts(random_negatives=40, near_negatives=3), positives_per_face=4,
                           free_negatives_per_photo=30),
    "cal12": CascadeRecipe(PhotoCounts(), patterns_per_face=8),
    "net24": CascadeRecipe(PhotoCounts(random_negatives=10, near_negatives=2), positives_per_face=3,
                           free_negatives_per_photo=30, mined_per_photo=40),
    "cal24": CascadeRecipe(PhotoCounts(), patterns_per_face=6),
    "net48": CascadeRecipe(PhotoCounts(random_negatives=5, near_negatives=1), positives_per_face=2,
                           free_negatives_per_photo=20, mined_per_photo=30),
    "cal48": CascadeRecipe(PhotoCounts(), patterns_per_face=3),
}
CONFIGS = {
    "net12": TrainConfig(epochs=12, batch_size=128, lr=0.02, milestones=(8, 11), weight_decay=5e-4),
    "cal12": TrainConfig(epochs=12, batch_size=128, lr=0.02, milestones=(8, 11), weight_decay=5e-4),
    "net24": TrainConfig(epochs=6, batch_size=128, lr=0.01, milestones=(4, 6), weight_decay=5e-4),
    "cal24": TrainConfig(epochs=6, batch_size=128, lr=0.01, milestones=(4, 6), weight_decay=5e-4),
    "net48": TrainConfig(epochs=5, batch_size=128, lr=0.01, milestones=(3, 5), weight_decay=5e-4),
    "cal48": TrainConfig(epochs=5, batch_size=128, lr=0.01, milestones=(3, 5), weight_decay=5e-4),
}
# A run small enough for the test suite and the tutorial (FACECASCADE_QUICK=1, --quick): the first
# 20 WIDER photos and 20 face-free photos (of each split) and 300 cuhk80 faces, 2 epochs.
QUICK_PHOTOS, QUICK_FACES, QUICK_EPOCHS = 20, 300, 2


def recipe_for(net: str, quick: bool = False) -> CascadeRecipe:
    """The sample recipe of a net, cut down for a quick run."""
    recipe = RECIPES[net]
    if not quick:
        return recipe
    return replace(recipe, photo=replace(recipe.photo, max_photos=QUICK_PHOTOS), max_faces=QUICK_FACES)


def task_for(net: str) -> ClassifierTask:
    """Face / non-face (mirroring keeps the label) or 45 patterns (mirroring swaps x shifts)."""
    if net.startswith("cal"):
        return ClassifierTask(NUM_PATTERNS, mirror_map=mirrored_patterns())
    return ClassifierTask(2, mirror_map=np.arange(2), positive_class=FACE, target_recall=TARGET_RECALL,
                          max_negatives_passed=NEGATIVE_BUDGET[net])


def face_aspect(data_dir, min_face: float = 20.0) -> float:
    """Median height / width of the training faces: the valid WIDER faces of at least
    min_face px (the faces the cascade is trained to find)."""
    from pipeline.data.wider import wider_split

    boxes = large_faces(np.concatenate([photo.faces for photo in wider_split(data_dir, "train")]), min_face)
    return float(np.median((boxes[:, 3] - boxes[:, 1]) / (boxes[:, 2] - boxes[:, 0])))


def _detector_so_far(weights_dir: Path, stage: int):
    """A CascadeDetector with the trained nets of stages 1..stage (for mining)."""
    from pipeline.detection.cascade import CascadeDetector

    loaded = {}
    thresholds = [1.0, 1.0, 1.0]
    for k, (net, cal) in enumerate((("net12", "cal12"), ("net24", "cal24"))[:stage]):
        for name in (net, cal):
            loaded[name], meta = load_net(name, weights_dir)
            if name == net:
                thresholds[k] = float(meta["threshold"])
    nets = CascadeNets(**{name: loaded.get(name) for name in NET_CLASSES}, thresholds=tuple(thresholds))
    return CascadeDetector(nets=nets)


def build_net(net: str, weights_dir: Path, seed: int):
    """A fresh net for a stage; the 24- and 48-nets get the trained smaller net as branch."""
    model = NET_CLASSES[net](rng=np.random.default_rng([seed, STAGES.index(net)]))
    source = {"net24": "net12", "net48": "net24"}.get(net)
    if source is not None:
        trained, _ = load_net(source, weights_dir)
        model.load_branch_from(trained)
    return model.train()


def train_stage(net: str, data_dir, out_dir, seed: int = 0, resume: bool = False, quick: bool = False,
                progress: bool = True, log=print) -> Path:
    """Train one net of the cascade; returns the path of its weights file."""
    out_dir = Path(out_dir)
    weights_dir = out_dir / "weights"
    recipe = recipe_for(net, quick)
    config = replace(CONFIGS[net], seed=seed, epochs=QUICK_EPOCHS if quick else CONFIGS[net].epochs)
    detector = None
    if net in ("net24", "net48"):
        detector = _detector_so_far(weights_dir, 1 if net == "net24" else 2)
    start = time.perf_counter()
    train_set, val_set = (
        load_or_build(sample_cache_path(out_dir, net, split, recipe, seed),
                      lambda split=split: build_photo_samples(net, split, data_dir, recipe, seed, detector,
                                                              progress=progress),
                      what=f"{net} {split}", describe=describe, log=log)
        for split in ("train", "val"))
    if detector is not None:  # the miner's helper processes are not needed for training (see train_mtcnn)
        detector.close()
    log(f"{net}: samples ready in {time.perf_counter() - start:.0f} s")
    model = build_net(net, weights_dir, seed)
    task = task_for(net)
    trainer = Trainer(model, task, train_set, val_set, config, out_dir / net, name=net, progress=progress)
    trainer.run(resume=resume)
    round_to_storage(model)  # the thresholds below belong to exactly the weights that ship
    trainer.plot_roc()
    meta = {}
    final = task.validate(model, val_set)
    if task.positive_class is not None:
        meta["threshold"] = final["threshold"]
        log(f"{net}: threshold {final['threshold']:.4f} keeps {final['threshold_recall']:.2%} of the validation "
            f"faces; {final['negatives_passed']:.2%} of the validation non-faces pass it")
    if net == "cal48":
        meta["aspect"] = face_aspect(data_dir)
    path = weights_path(net, weights_dir)
    save_net(model, path, meta)
    log(f"{net}: best epoch {trainer.best[0]}, validation accuracy {final['accuracy']:.4f}; "
        f"wrote {path} ({time.perf_counter() - start:.0f} s)")
    return path


def choose_operating_point(data_dir, out_dir, quick: bool = False, log=print) -> dict:
    """The final threshold of the whole cascade, chosen on validation images only.

    The stage thresholds keep 99% of the validation faces each, which leaves some false
    positives for the end. Here the trained cascade (with no final threshold) runs over the
    validation faces and the validation face-free photos (index % 10 == 8, never trained on);
    the final threshold on the detections' scores is the lowest at which at most 0.1 false
    positives per photo remain, i.e. the one that keeps the most faces within that budget. It
    is stored in the 48-net's weights file as ``meta.operating_threshold``, and
    `CascadeDetector` uses it as its ``final_threshold``. Returns {"operating_threshold", "val_recall", "false_positives", "photos"}.
    """
    from nets.cascade_weights import load_cascade
    from nets.weights import write_meta

    from pipeline.detection.cascade import CascadeDetector
    from pipeline.evaluation.evaluate import validation_operating_point

    weights_dir = Path(out_dir) / "weights"
    detector = CascadeDetector(nets=load_cascade(weights_dir), final_threshold=0.0)
    point = validation_operating_point(detector, data_dir, quick)
    # CascadeDetector keeps scores >= final_threshold: the next float above score_above
    threshold = 0.0 if point["score_above"] is None else float(np.nextafter(point["score_above"], 1.0))
    result = {"operating_threshold": threshold, "val_recall": point["val_recall"],
              "false_positives": point["false_positives"], "photos": point["photos"]}
    write_meta(weights_path("net48", weights_dir), operating_threshold=threshold)
    log(f"operating point: final threshold {threshold:.4f} keeps {result['val_recall']:.3f} of the validation "
        f"faces with {result['false_positives']} false positives on {result['photos']} validation face-free photos")
    return result


def train_cascade(data_dir, out_dir, stages=STAGES, seed: int = 0, resume: bool = False, quick: bool = False,
                  progress: bool = True, log=print) -> list[Path]:
    """Train the given stages in order (default: all six). With resume=True a stage whose
    weights exist is skipped and a stage with a checkpoint continues from it."""
    weights_dir = Path(out_dir) / "weights"
    with output_lock(out_dir):
        written = run_stages(stages, STAGES, lambda net: weights_path(net, weights_dir),
                             lambda net: train_stage(net, data_dir, out_dir, seed, resume, quick, progress, log),
                             resume, log)
        if "cal48" in stages or "net48" in stages:
            missing = [net for net in STAGES if not weights_path(net, weights_dir).is_file()]
            if missing:  # the operating point runs the whole cascade
                log(f"operating point: not chosen yet, it needs all six nets ({' '.join(missing)} not trained)")
            else:
                choose_operating_point(data_dir, out_dir, quick, log)
    return written
