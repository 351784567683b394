"""`facecascade train mtcnn`: MTCNN's nets trained from scratch with the shared loop.

The samples follow MTCNN's recipe on whole photos (`pipeline.training.mtcnn_samples.build_photo_samples`):
from each WIDER FACE training photo, random windows of every size and windows beside the faces
that overlap every labelled box with IoU < 0.3 (negatives), and squares about each face of 20 px
or more, labelled by IoU (positives above 0.65, parts from 0.4; with their box offsets); landmark
windows of the cuhk80 and wild_landmarks faces with their five points; random windows of the
face-free photos. Validation samples come the same way from the validation splits.

Stage 1: P-Net on 12 x 12 windows, under the multi-task loss with online hard example mining
(`pipeline.training.multitask`). Its threshold lets 1.5% of the validation negatives through
(`NEGATIVE_BUDGET`); the weights and the threshold go to ``<out>/weights/mtcnn_pnet.npz``.

Stage 2: R-Net on 24 x 24 windows: the same kinds of samples, plus the hard examples, the windows
that the trained P-Net passes on over the training photos (labelled by IoU like the others) and
over the face-free photos. The detector that proposes them uses the exact window conventions
(`MTCNNDetector(conventions="exact")`), as the nets here are trained on exact windows.

Stage 3: O-Net on 48 x 48 windows: the same again, with the windows that P-Net and R-Net together
pass on. O-Net is the stage that places the landmarks the detector reports (its landmark loss
weighs 1, not 0.5). After it is trained, the whole scratch detector runs over the validation
faces and the validation face-free photos, and O-Net's threshold is set to the lowest at which
at most 0.1 false positives per validation photo remain (`choose_operating_point`).

Each file is written where `nets.mtcnn_weights` looks for a set (``mtcnn_<net>.npz``), so
``MTCNNDetector(weights="<out>/weights")`` runs a finished run.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from nets import ONet, PNet, RNet
from nets.mtcnn_weights import scratch_path
from nets.weights import load_weights, save_weights

from pipeline.training.mtcnn_samples import MTCNNRecipe, build_photo_samples, describe_kinds
from pipeline.training.multitask import task_for_net
from pipeline.training.photo_windows import PhotoCounts
from pipeline.training.loop import TrainConfig, Trainer, load_or_build, output_lock, run_stages, sample_cache_path

STAGES = ("pnet", "rnet", "onet")
NETS = {"pnet": PNet, "rnet": RNet, "onet": ONet}
# Samples per net (MTCNN's recipe on the WIDER training photos, `pipeline.training.mtcnn_samples.MTCNNRecipe`):
# negatives : positives : parts : landmarks come out near the paper's 3 : 1 : 1 : 2 for P-Net.
# R-Net and O-Net add the hard examples the earlier nets pass on.
RECIPES = {
    "pnet": MTCNNRecipe(PhotoCounts(random_negatives=60, near_negatives=6, candidates=30, positives=8, parts=8),
                        landmarks_per_face=6, free_negatives_per_photo=15),
    "rnet": MTCNNRecipe(PhotoCounts(random_negatives=20, near_negatives=2, positives=3, parts=3),
                        landmarks_per_face=3, free_negatives_per_photo=5,
                        mined_negatives=40, mined_faces=20, mined_free_per_photo=10),
    "onet": MTCNNRecipe(PhotoCounts(random_negatives=12, near_negatives=2, positives=3, parts=3),
                        landmarks_per_face=3, free_negatives_per_photo=3,
                        mined_negatives=30, mined_faces=20, mined_free_per_photo=10),
}
# The new box and landmark heads start far from their targets: SGD with momentum diverged at
# lr >= 0.01 on P-Net here, and 0.005 trains steadily. The deeper O-Net diverges at 0.005 and
# learns slowly at 0.002: 12 epochs on the WIDER recipe reached validation accuracy 0.84 only,
# and the detector's WIDER AP was held back by its scores. Adam at 0.001 reached 0.765 after one
# epoch where SGD at 0.002 had 0.70 (same samples, same seed). Twelve epochs of Adam keep the
# whole run near two hours on two cores (O-Net's epoch takes about 4.5 minutes).
CONFIGS = {"pnet": TrainConfig(epochs=30, batch_size=256, lr=0.005, milestones=(20, 27), weight_decay=5e-4),
           "rnet": TrainConfig(epochs=10, batch_size=256, lr=0.005, milestones=(7, 9), weight_decay=5e-4),
           "onet": TrainConfig(epochs=12, batch_size=256, lr=0.001, optimizer="adam", milestones=(8, 11),
                               weight_decay=5e-4)}
# Each stage's threshold lets at most this share of its validation negatives through (None: it keeps
# 99% of the validation positives instead; O-Net's is then replaced by the operating point). Keeping
# 99% of WIDER's positives, blurred and occluded faces among them, let P-Net pass 57% of the
# negatives; the released P-Net passes 1.0% of the same negatives at its threshold of 0.6.
NEGATIVE_BUDGET = {"pnet": 0.015, "rnet": 0.02, "onet": None}
# A quick run uses the first 20 WIDER photos (of each split), 300 landmark faces and 40 face-free photos.
QUICK_LIMITS = {"max_landmark_faces": 300, "max_free_photos": 40}
QUICK_PHOTOS = 20
# A quick run has a few thousand samples per net: small batches give its nets enough steps to
# learn something, so that the windows they pass on (the next net's hard examples) are few.
QUICK_SCHEDULE = {"epochs": 6, "batch_size": 64, "milestones": ()}


def recipe_for(net: str, quick: bool = False) -> MTCNNRecipe:
    """The sample recipe of a net, cut down to a few photos for a quick run."""
    recipe = RECIPES[net]
    if not quick:
        return recipe
    return replace(recipe, photo=replace(recipe.photo, max_photos=QUICK_PHOTOS), **QUICK_LIMITS)


def weights_file(net: str, folder) -> Path:
    """Where a scratch-trained MTCNN net is written: ``<folder>/mtcnn_<net>.npz``."""
    return scratch_path(net, folder)


def train_stage(net: str, data_dir, out_dir, seed: int = 0, resume: bool = False, quick: bool = False,
                progress: bool = True, log=print) -> Path:
    """Train one MTCNN net from scratch; returns the path of its weights file."""
    if net not in STAGES:
        raise ValueError(f"stage {net!r} is not available; stages are {list(STAGES)}")
    out_dir = Path(out_dir)
    recipe = recipe_for(net, quick)
    config = replace(CONFIGS[net], seed=seed, **(QUICK_SCHEDULE if quick else {}))
    start = time.perf_counter()
    detector = detector_so_far(out_dir / "weights", STAGES.index(net)) if net != "pnet" else None
    train_set, val_set = (
        load_or_build(sample_cache_path(out_dir, net, split, recipe, seed),
                      lambda split=split: build_photo_samples(net, split, data_dir, recipe, seed, detector,
                                                              progress=progress),
                      what=f"{net} {split}", describe=describe_kinds, log=log)
        for split in ("train", "val"))
    if detector is not None:
        # the miner's helper processes end here: training does not use them, and as forks they
        # would hold on to the old copy of every page of this process that training rewrites
        detector.close()
    log(f"{net}: samples ready in {time.perf_counter() - start:.0f} s")
    model = NETS[net](rng=np.random.default_rng([seed, STAGES.index(net)]), landmarks=True).train()
    task = task_for_net(net, max_negatives_passed=NEGATIVE_BUDGET[net])
    trainer = Trainer(model, task, train_set, val_set, config, out_dir / net, name=net, progress=progress)
    trainer.run(resume=resume)
    trainer.plot_roc()
    final = task.validate(model, val_set)
    path = weights_file(net, out_dir / "weights")
    save_weights(model, path, {"threshold": final["threshold"]})
    log(f"{net}: best epoch {trainer.best[0]}; " + ", ".join(f"{k} {v:.4f}" for k, v in final.items())
        + f"; wrote {path} ({time.perf_counter() - start:.0f} s)")
    if net == "onet":
        choose_operating_point(data_dir, out_dir, quick, log)
    return path


def choose_operating_point(data_dir, out_dir, quick: bool = False, log=print) -> dict:
    """O-Net's final threshold, chosen on validation images only.

    The scratch detector runs with O-Net's threshold at 0 over the validation faces and the
    validation face-free photos (index % 10 == 8, never trained on or mined). O-Net's threshold
    becomes the lowest at which at most 0.1 false positives per photo remain (an O-Net score
    above it is kept); if the detector stays within that budget anyway, the threshold that keeps
    99% of the validation positives stays. Lowering only the last threshold changes nothing
    before it, and NMS after O-Net visits boxes best first, so the detections above a threshold
    are the same whether the others were there or not. Written to O-Net's weights file as
    ``meta.operating_threshold``, which `MTCNNDetector(weights=...)` uses. Returns
    {"operating_threshold", "val_recall", "false_positives", "photos"}.
    """
    from nets.weights import write_meta

    from pipeline.evaluation.evaluate import recall_above, validation_operating_point

    weights_dir = Path(out_dir) / "weights"
    detector = detector_so_far(weights_dir, 3)
    own_threshold = detector.thresholds[2]
    detector.thresholds = (*detector.thresholds[:2], 0.0)
    with detector.runner.batch():
        point = validation_operating_point(detector, data_dir, quick)
    # the detector keeps O-Net scores > threshold, the test `operating_point` counts with
    threshold = own_threshold if point["score_above"] is None else point["score_above"]
    result = {"operating_threshold": threshold, "val_recall": recall_above(point["pooled"], threshold),
              "false_positives": int(np.sum(point["negative_scores"] > threshold)), "photos": point["photos"]}
    write_meta(weights_file("onet", weights_dir), operating_threshold=threshold)
    log(f"operating point: O-Net threshold {threshold:.4f} keeps {result['val_recall']:.3f} of the validation "
        f"faces with {result['false_positives']} false positives on {result['photos']} validation face-free photos")
    return result


def detector_so_far(weights_dir, stages: int):
    """An `MTCNNDetector` (exact window conventions) whose first ``stages`` nets are the trained
    scratch nets, with their thresholds; the others are untrained placeholders it never runs."""
    from pipeline.detection.mtcnn import MTCNNDetector

    nets, thresholds = [], []
    for name in ("pnet", "rnet", "onet"):
        net = NETS[name](landmarks=True)
        threshold = 0.5
        if len(nets) < stages:
            threshold = float(load_weights(net, weights_file(name, weights_dir))["threshold"])
        nets.append(net)
        thresholds.append(threshold)
    return MTCNNDetector(nets=tuple(nets), thresholds=tuple(thresholds), conventions="exact")


def train_mtcnn(data_dir, out_dir, stages=STAGES, seed: int = 0, resume: bool = False, quick: bool = False,
                progress: bool = True, log=print) -> list[Path]:
    """Train the given stages in order. With resume=True a finished stage is skipped and a
    stage with a checkpoint continues from it."""
    weights_dir = Path(out_dir) / "weights"
    with output_lock(out_dir):
        return run_stages(stages, STAGES, lambda net: weights_file(net, weights_dir),
                          lambda net: train_stage(net, data_dir, out_dir, seed, resume, quick, progress, log),
                          resume, log)
