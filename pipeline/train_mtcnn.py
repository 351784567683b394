"""`facecascade train mtcnn`: MTCNN's nets trained from scratch with the shared loop.

Stage 1 (this module so far): P-Net on 12 x 12 windows of the training faces labelled by IoU
(negative, part, positive) with their box offsets, landmark windows with the five points, and
random windows of the training face-free photos, mixed about 3 : 1 : 1 : 2
(`pipeline.mtcnn_samples`), under the multi-task loss with online hard example mining
(`pipeline.multitask`). The weights, with the face threshold that keeps 99% of the validation
positives, go to ``<out>/weights/mtcnn_pnet.npz``.

R-Net and O-Net train on the windows that the trained earlier stages let through (hard
examples); their stages are the next step and are not here yet.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from nets import PNet
from nets.weights import save_weights

from .mtcnn_samples import MTCNNSampleCounts, cached_mtcnn_samples
from .multitask import task_for_net
from .training import TrainConfig, Trainer

STAGES = ("pnet",)
COUNTS = {"pnet": MTCNNSampleCounts(positives_per_face=2, parts_per_face=2, landmarks_per_face=4,
                                    face_negatives_per_face=2, photo_negatives_per_face=4)}
# The new box and landmark heads start far from their targets: SGD with momentum diverged at
# lr >= 0.01 on P-Net here, and 0.005 trains steadily.
CONFIGS = {"pnet": TrainConfig(epochs=12, batch_size=256, lr=0.005, milestones=(8, 11), weight_decay=5e-4)}
QUICK_COUNTS = MTCNNSampleCounts(max_faces=200, max_photos=20)
QUICK_EPOCHS = 2


def weights_file(net: str, folder) -> Path:
    """Where a scratch-trained MTCNN net is written: ``<folder>/mtcnn_<net>.npz``."""
    return Path(folder) / f"mtcnn_{net}.npz"


def train_stage(net: str, data_dir, out_dir, seed: int = 0, resume: bool = False, quick: bool = False,
                progress: bool = True, log=print) -> Path:
    """Train one MTCNN net from scratch; returns the path of its weights file."""
    if net not in STAGES:
        raise ValueError(f"stage {net!r} is not available; stages are {list(STAGES)}")
    out_dir = Path(out_dir)
    counts = QUICK_COUNTS if quick else COUNTS[net]
    config = replace(CONFIGS[net], seed=seed, epochs=QUICK_EPOCHS if quick else CONFIGS[net].epochs)
    start = time.perf_counter()
    train_set = cached_mtcnn_samples(net, "train", data_dir, out_dir, counts, seed, log=log)
    val_set = cached_mtcnn_samples(net, "val", data_dir, out_dir, counts, seed, log=log)
    log(f"{net}: samples ready in {time.perf_counter() - start:.0f} s")
    model = PNet(rng=np.random.default_rng([seed, STAGES.index(net)]), landmarks=True).train()
    task = task_for_net(net)
    trainer = Trainer(model, task, train_set, val_set, config, out_dir / net, name=net, progress=progress)
    trainer.run(resume=resume)
    trainer.plot_roc()
    final = task.validate(model, val_set)
    path = weights_file(net, out_dir / "weights")
    save_weights(model, path, {"threshold": final["threshold"]})
    log(f"{net}: best epoch {trainer.best[0]}; " + ", ".join(f"{k} {v:.4f}" for k, v in final.items())
        + f"; wrote {path} ({time.perf_counter() - start:.0f} s)")
    return path


def train_mtcnn(data_dir, out_dir, stages=STAGES, seed: int = 0, resume: bool = False, quick: bool = False,
                progress: bool = True, log=print) -> list[Path]:
    """Train the given stages in order. With resume=True a finished stage is skipped and a
    stage with a checkpoint continues from it."""
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        raise ValueError(f"unknown or not yet available stage(s) {unknown}; stages are {list(STAGES)}")
    written = []
    for net in (s for s in STAGES if s in stages):
        path = weights_file(net, Path(out_dir) / "weights")
        if resume and path.is_file():
            log(f"{net}: done already ({path})")
            written.append(path)
            continue
        written.append(train_stage(net, data_dir, out_dir, seed, resume, quick, progress, log))
    return written
