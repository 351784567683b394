"""One training loop for every net: mini-batch SGD, a validation pass per epoch, checkpoints.

    for epoch in epochs:
        shuffle the samples (and mirror half of them)
        for each mini-batch:
            outputs = net.forward(x)                     # the hand-written forward pass
            loss, douts = task.loss(outputs, labels)     # the loss and its gradient
            net.backward(douts)                          # the hand-written backward pass
            optimizer.step()                             # the only place weights change
        validation pass; training curves; checkpoint

What differs between nets lives in a *task* (`ClassifierTask` here; MTCNN's multi-task loss
in `pipeline.training.multitask`): how to compute the loss and its gradient from the net's outputs, how
mirroring a sample changes its labels, and what to measure on the validation samples. A task's
``loss(outputs, labels)`` returns ``(loss, douts, stats)``; stats holds the batch's summed
``loss`` and its number of ``correct`` predictions, optionally ``classified`` (how many samples
have a class to predict, when not all of them do; the accuracy is correct / classified) and any
further batch sums (e.g. one per loss term), which are averaged per sample like the loss and
recorded in the history under their own names.

On two cores each batch runs as two halves through two copies of the net in two processes
(`pipeline.fast.replicas`, a speed device with the same forward/backward as the net); the loss still
sees the whole batch.

Reproducible and resumable: all randomness of epoch e (shuffling, mirroring, dropout masks)
comes from generators seeded with (seed, e), so the checkpoint written after each epoch
(weights, optimizer state, epoch, history) is all it takes to continue exactly: two epochs in
one run equal one epoch, stop, resume, one epoch. Checkpoints are written atomically
(temporary file, then rename), so Ctrl-C or a crash at any moment leaves the last one intact.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from layers import SGD, Adam, softmax, softmax_cross_entropy
from layers.batch_chunks import slices_not_blas
from pipeline.fast.memory import reuse_freed_memory
from layers.modules import dropout_layers, without_input_gradient
from pipeline.fast.replicas import Replicas
from nets.weights import read_npz, save_arrays

from pipeline.detection.proposals import normalize

CHECKPOINT = "checkpoint.npz"
EVAL_BATCH = 512


# ---------------------------------------------------------------- samples in memory

@dataclass
class SampleSet:
    """Training or validation samples: images (N, S, S, 3) uint8 RGB and named label arrays,
    each with N rows (e.g. {"label": (N,) int64})."""

    images: np.ndarray
    labels: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.images.ndim != 4 or self.images.shape[3] != 3 or self.images.dtype != np.uint8:
            raise ValueError(f"images must be (N, S, S, 3) uint8, got {self.images.shape} {self.images.dtype}")
        for name, values in self.labels.items():
            if len(values) != len(self.images):
                raise ValueError(f"labels {name!r} have {len(values)} rows for {len(self.images)} images")

    def __len__(self) -> int:
        return len(self.images)

    def take(self, index) -> "SampleSet":
        """The samples at ``index`` (an int array or slice), as a new SampleSet."""
        return SampleSet(self.images[index], {k: v[index] for k, v in self.labels.items()})

    def save(self, path) -> None:
        """Write to an .npz (atomically): ``images`` and ``label.<name>`` arrays."""
        save_arrays({"images": self.images, **{f"label.{k}": v for k, v in self.labels.items()}}, path)

    @classmethod
    def load(cls, path) -> "SampleSet":
        """Read what `save` wrote (no pickle)."""
        arrays = read_npz(path)
        labels = {k[len("label."):]: v for k, v in arrays.items() if k.startswith("label.")}
        return cls(arrays["images"], labels)

    @staticmethod
    def concat(sets) -> "SampleSet":
        """Join sample sets that have the same label names."""
        sets = [s for s in sets if len(s)] or list(sets)[:1]
        names = set(sets[0].labels)
        if any(set(s.labels) != names for s in sets):
            raise ValueError("sample sets to join must have the same label names")
        return SampleSet(np.concatenate([s.images for s in sets]),
                         {k: np.concatenate([s.labels[k] for s in sets]) for k in names})


def load_or_build(path, build, what: str = "samples", describe=None, log=print) -> SampleSet:
    """A sample set read from ``path`` (.npz, `SampleSet.save`) if it exists; otherwise
    ``build()`` (a function of no arguments returning a SampleSet), saved there first.

    Generate once, then every epoch and every resumed run trains on exactly the same samples
    without decoding a photo again. what: a name for the log lines ("pnet: train samples");
    describe: optional SampleSet -> str summary for the log.
    """
    path = Path(path)
    if path.is_file():
        samples = SampleSet.load(path)
        log(f"{what}: {len(samples):,} samples from {path}")
        return samples
    samples = build()
    samples.save(path)
    summary = f" ({describe(samples)})" if describe is not None else ""
    log(f"{what}: made {len(samples):,} samples{summary} -> {path}")
    return samples


def sample_cache_path(out_dir, net: str, split: str, recipe, seed: int) -> Path:
    """Where a sample set is cached: ``<out_dir>/samples/<net>-<split>-<key>.npz``, the key a
    hash of everything the samples depend on (the recipe's fields, quick runs' limits among
    them, and the seed), so that a run with other settings never reads another's samples.
    recipe: a dataclass."""
    text = json.dumps({"recipe": asdict(recipe), "seed": seed, "net": net, "split": split},
                      sort_keys=True, default=str)
    key = hashlib.sha256(text.encode()).hexdigest()[:12]
    return Path(out_dir) / "samples" / f"{net}-{split}-{key}.npz"


def to_input(images: np.ndarray, flip=None) -> np.ndarray:
    """uint8 (N, S, S, 3) RGB -> the nets' input (N, 3, S, S) float32, (x - 127.5) / 128.
    flip: optional (N,) bool, images to mirror left-right first."""
    x = images
    if flip is not None and flip.any():
        x = x.copy()
        x[flip] = x[flip, :, ::-1]
    return normalize(np.ascontiguousarray(x.transpose(0, 3, 1, 2), dtype=np.float32))


# ---------------------------------------------------------------- what a net learns

class ClassifierTask:
    """Softmax cross-entropy on (N, K) logits against labels["label"] (N,) ints.

    mirror_map: optional (K,) int array, the label of a sample after mirroring it (the identity
    when mirroring does not change the class, as for face / non-face; calibration patterns swap
    left and right shifts). None: never mirror. positive_class: for a detection net, the class
    whose probability is the face score (validation then also reports recall and the stage
    threshold, `stage_threshold`: the one that keeps ``target_recall`` of the validation faces,
    or, with max_negatives_passed, the one that lets at most that share of the non-faces pass).
    """

    def __init__(self, num_classes: int, mirror_map=None, positive_class: int | None = None,
                 target_recall: float = 0.99, max_negatives_passed: float | None = None):
        self.max_negatives_passed = max_negatives_passed
        self.num_classes = num_classes
        self.mirror_map = None if mirror_map is None else np.asarray(mirror_map, dtype=np.int64)
        self.positive_class = positive_class
        self.target_recall = target_recall

    @property
    def mirrors(self) -> bool:
        return self.mirror_map is not None

    def mirror_labels(self, labels: dict, flip: np.ndarray) -> dict:
        """labels after mirroring the samples where flip (N,) is True."""
        out = dict(labels)
        out["label"] = np.where(flip, self.mirror_map[labels["label"]], labels["label"])
        return out

    def loss(self, logits: np.ndarray, labels: dict):
        """logits (N, K) -> (loss, dlogits (N, K), stats) with stats the batch's summed loss
        and number of correct predictions, for the running averages."""
        loss, dlogits = softmax_cross_entropy(logits, labels["label"])
        correct = int((logits.argmax(axis=1) == labels["label"]).sum())
        return loss, dlogits, {"loss": loss * len(logits), "correct": correct}

    def validate(self, net, samples: SampleSet) -> dict:
        """Loss and accuracy on the samples; for a detection net also the face threshold that
        keeps ``target_recall`` of the faces, the recall at 0.5 and the share of non-faces that
        would pass that threshold."""
        probs = softmax(predict(net, samples.images))
        labels = samples.labels["label"]
        eps = 1e-12
        metrics = {"loss": float(-np.mean(np.log(probs[np.arange(len(labels)), labels] + eps))),
                   "accuracy": float(np.mean(probs.argmax(axis=1) == labels))}
        if self.positive_class is not None:
            score = probs[:, self.positive_class]
            faces = labels == self.positive_class
            threshold = stage_threshold(score[faces], score[~faces], self.target_recall, self.max_negatives_passed)
            metrics.update(recall=float(np.mean(score[faces] >= 0.5)) if faces.any() else float("nan"),
                           threshold=threshold,
                           threshold_recall=float(np.mean(score[faces] >= threshold)) if faces.any() else float("nan"),
                           negatives_passed=float(np.mean(score[~faces] >= threshold)) if (~faces).any() else 0.0)
        return metrics

    def roc(self, net, samples: SampleSet):
        """(false positive rate, recall) over all thresholds, on the validation samples.

        A detection net: the face class against the rest. A net with many classes (the 45
        calibration patterns): every class against the rest, pooled ("micro-averaged"): each
        (sample, class) pair is one decision whose score is that class's probability."""
        probs = softmax(predict(net, samples.images))
        labels = samples.labels["label"]
        if self.positive_class is not None:
            score, faces = probs[:, self.positive_class], labels == self.positive_class
        else:
            score = probs.reshape(-1)
            faces = (labels[:, None] == np.arange(probs.shape[1])[None, :]).reshape(-1)
        order = np.argsort(-score, kind="stable")
        tp = np.cumsum(faces[order]) / max(1, faces.sum())
        fp = np.cumsum(~faces[order]) / max(1, (~faces).sum())
        return fp, tp


def recall_threshold(face_scores: np.ndarray, recall: float) -> float:
    """The largest threshold t with mean(face_scores >= t) >= recall: the cut that keeps that
    share of the faces. face_scores: (M,) probabilities. 0.0 when there are no faces."""
    if len(face_scores) == 0:
        return 0.0
    ranked = np.sort(face_scores)[::-1]
    keep = int(np.ceil(recall * len(ranked) - 1e-9))
    return float(ranked[max(keep, 1) - 1])


def budget_threshold(non_face_scores: np.ndarray, share: float) -> float:
    """The smallest threshold t with mean(non_face_scores >= t) <= share: the loosest cut that
    lets at most that share of the non-faces through. non_face_scores: (M,) probabilities.
    0.0 when there are none or the budget holds at 0."""
    if len(non_face_scores) == 0:
        return 0.0
    scores = np.asarray(non_face_scores)
    if not np.issubdtype(scores.dtype, np.floating):
        scores = scores.astype(np.float64)
    ranked = np.sort(scores)[::-1]
    allowed = int(np.floor(share * len(ranked) + 1e-9))
    if allowed >= len(ranked):
        return 0.0
    # the next number above the first score over budget, in the scores' own precision (a
    # float64 step above a float32 score would round back to it, and let its ties through)
    return float(np.nextafter(ranked[allowed], np.asarray(np.inf, ranked.dtype)))


def stage_threshold(face_scores, non_face_scores, target_recall: float, max_negatives_passed=None) -> float:
    """A detection stage's threshold on validation scores: the one that keeps target_recall of
    the faces (`recall_threshold`), or, when max_negatives_passed is given, the one that lets
    at most that share of the non-faces through (`budget_threshold`): a budget on the windows
    the next stage has to look at, which sets the detector's speed."""
    if max_negatives_passed is None:
        return recall_threshold(face_scores, target_recall)
    return budget_threshold(non_face_scores, max_negatives_passed)


def predict(net, images: np.ndarray, batch: int = EVAL_BATCH):
    """What ``net.forward`` gives on uint8 (N, S, S, 3) images, in inference mode (no caches;
    the net's training mode is restored afterwards), in batches of at most ``batch``: the
    (N, K) logits of a classifier (softmax them for probabilities), or a dict head name ->
    (N, ...) outputs of a net with several heads (MTCNN's). N = 0 gives (0, 2) logits."""
    was_training = net.training
    net.inference()
    try:
        parts = [net.forward(to_input(images[i : i + batch])) for i in range(0, len(images), batch)]
    finally:
        net.train(was_training)
    if not parts:
        return np.zeros((0, 2), np.float32)
    if isinstance(parts[0], dict):
        return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}
    return np.concatenate(parts)


# ---------------------------------------------------------------- the loop

@dataclass
class TrainConfig:
    """Hyperparameters of one training run. lr is multiplied by ``lr_decay`` at each epoch in
    ``milestones`` (1-based epoch numbers at which the new rate starts)."""

    epochs: int = 10
    batch_size: int = 128
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    milestones: tuple = ()
    lr_decay: float = 0.1
    optimizer: str = "sgd"
    seed: int = 0

    def lr_at(self, epoch: int) -> float:
        """Learning rate of (1-based) ``epoch``."""
        return self.lr * self.lr_decay ** sum(epoch >= m for m in self.milestones)


def make_optimizer(params, config: TrainConfig):
    """SGD with momentum (the papers' solver) or Adam, over ``params``."""
    if config.optimizer == "sgd":
        return SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    if config.optimizer == "adam":
        return Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    raise ValueError(f"optimizer must be 'sgd' or 'adam', got {config.optimizer!r}")


def _trainable(net):
    return net.trainable_parameters() if hasattr(net, "trainable_parameters") else net.parameters()


def _seed_dropout(net, seed: int, epoch: int) -> None:
    for i, module in enumerate(dropout_layers(net)):
        module.rng = np.random.default_rng([seed, epoch, 1 + i])


class Trainer:
    """Trains ``net`` on ``task`` and writes everything to ``out_dir``:

    checkpoint.npz (after every epoch), curves.png (training curves), history.json, and at the
    end roc.png (detection nets). ``best`` weights are those of the epoch with the lowest
    validation loss; `run` leaves them loaded in the net.
    """

    def __init__(self, net, task, train_set: SampleSet, val_set: SampleSet, config: TrainConfig,
                 out_dir, name: str = "net", progress: bool = True):
        if len(train_set) == 0:
            raise ValueError(f"{name}: no training samples")
        self.net, self.task, self.config = net, task, config
        self.train_set, self.val_set = train_set, val_set
        self.out_dir = Path(out_dir)
        self.name = name
        self.progress = progress
        self.params = _trainable(net)
        self.optimizer = make_optimizer(self.params, config)
        self.epoch = 0  # epochs completed
        self.history: dict[str, list] = {}
        self.best = None  # (epoch, val loss, state)

    # --- checkpoints
    @property
    def checkpoint_path(self) -> Path:
        return self.out_dir / CHECKPOINT

    def save_checkpoint(self) -> None:
        """Weights, optimizer state, epoch, history, config and best weights, atomically."""
        arrays = {f"param.{k}": v for k, v in self.net.state_dict().items()}
        arrays.update({f"optim.{k}": np.asarray(v) for k, v in self.optimizer.state_dict().items()})
        if self.best is not None:
            arrays.update({f"best.{k}": v for k, v in self.best[2].items()})
            arrays["best_epoch"] = np.array(self.best[0])
            arrays["best_loss"] = np.array(self.best[1])
        arrays["epoch"] = np.array(self.epoch)
        arrays["history"] = np.array(json.dumps(self.history))
        arrays["config"] = np.array(json.dumps(asdict(self.config)))
        save_arrays(arrays, self.checkpoint_path)

    def load_checkpoint(self) -> None:
        """Continue from checkpoint.npz: weights, optimizer, epoch, history, best."""
        state = read_npz(self.checkpoint_path)
        saved = json.loads(str(state["config"]))
        for key in ("batch_size", "seed", "optimizer"):
            if saved[key] != getattr(self.config, key):
                raise ValueError(f"{self.checkpoint_path}: was trained with {key}={saved[key]!r}, "
                                 f"now {getattr(self.config, key)!r}; resume with the same setting")
        self.net.load_state_dict({k[6:]: v for k, v in state.items() if k.startswith("param.")})
        self.optimizer.load_state_dict({k[6:]: v for k, v in state.items() if k.startswith("optim.")})
        self.epoch = int(state["epoch"])
        self.history = json.loads(str(state["history"]))
        if "best_epoch" in state:
            best = {k[5:]: v for k, v in state.items() if k.startswith("best.")}
            self.best = (int(state["best_epoch"]), float(state["best_loss"]), best)

    # --- one epoch
    def train_epoch(self) -> dict:
        """One pass over the shuffled training samples. Returns {"loss", "accuracy"} averages
        (and the per-sample average of every further stat the task reports)."""
        cfg = self.config
        epoch = self.epoch + 1
        rng = np.random.default_rng([cfg.seed, epoch])
        _seed_dropout(self.net, cfg.seed, epoch)
        self.optimizer.lr = cfg.lr_at(epoch)
        order = rng.permutation(len(self.train_set))
        flips = rng.random(len(order)) < 0.5 if self.task.mirrors else np.zeros(len(order), bool)
        self.net.train()
        with without_input_gradient(self.net):  # only the parameters' gradients are needed
            # a speed device: two halves of each batch through two copies of the net on two
            # cores; the losses still see the whole batch (see pipeline/fast/replicas.py)
            with Replicas(self.net, params=self.params) as model:
                return self._train_batches(model, order, flips, epoch,
                                           bar_desc=f"{self.name} epoch {epoch}/{cfg.epochs}")

    def _train_batches(self, model, order, flips, epoch: int, bar_desc: str) -> dict:
        """The steps of one epoch: batches of ``order`` (sample indices), mirrored where
        ``flips``, through ``model`` (the net, or `Replicas` of it: the same forward and
        backward); returns the epoch's averages (see `train_epoch`)."""
        cfg = self.config
        total = {"loss": 0.0, "correct": 0, "seen": 0, "classified": 0}
        extra = {}  # further per-batch sums a task reports (e.g. each term of a multi-task loss)
        bar = _progress(range(0, len(order), cfg.batch_size), bar_desc, self.progress)
        for start in bar:
            index = order[start : start + cfg.batch_size]
            batch = self.train_set.take(index)
            flip = flips[start : start + cfg.batch_size]
            labels = self.task.mirror_labels(batch.labels, flip) if flip.any() else batch.labels
            outputs = model.forward(to_input(batch.images, flip))
            loss, douts, stats = self.task.loss(outputs, labels)
            model.backward(douts)
            self.optimizer.step()
            if not np.isfinite(loss):
                raise FloatingPointError(f"{self.name}: the loss became {loss} at epoch {epoch}; "
                                         f"lower the learning rate ({self.optimizer.lr})")
            total["loss"] += stats["loss"]
            total["correct"] += stats.get("correct", 0)
            total["seen"] += len(index)
            total["classified"] += stats.get("classified", len(index))
            for key, value in stats.items():
                if key not in total:
                    extra[key] = extra.get(key, 0.0) + value
            if hasattr(bar, "set_postfix"):
                bar.set_postfix(loss=f"{total['loss'] / total['seen']:.4f}",
                                acc=f"{total['correct'] / max(total['classified'], 1):.3f}", refresh=False)
        metrics = {"loss": total["loss"] / total["seen"],
                   "accuracy": total["correct"] / max(total["classified"], 1)}
        metrics.update({key: value / total["seen"] for key, value in extra.items()})
        return metrics

    def run(self, resume: bool = False) -> dict:
        """Train up to ``config.epochs`` (continuing from the checkpoint if ``resume``), then
        load the best epoch's weights. Returns the history (name -> list per epoch)."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        if resume and self.checkpoint_path.exists():
            self.load_checkpoint()
            _say(f"{self.name}: resuming after epoch {self.epoch} from {self.checkpoint_path}")
        elif self.checkpoint_path.exists() and not resume:
            raise FileExistsError(f"{self.checkpoint_path} exists: pass resume=True (--resume) to continue it, "
                                  "or choose another output folder")
        try:
            # speed devices: BLAS on one thread (the replicas and the layers' slices share out
            # the cores) and each step's large arrays reusing the previous step's memory
            with slices_not_blas(), reuse_freed_memory():
                self._run_epochs()
        except KeyboardInterrupt:
            if self.checkpoint_path.exists():
                _say(f"\n{self.name}: interrupted; {self.checkpoint_path} holds epoch {self.epoch}. "
                     "Run again with --resume to continue.")
            else:
                _say(f"\n{self.name}: interrupted during the first epoch; no checkpoint yet, "
                     "a new run starts this net from the beginning.")
            raise
        if self.best is not None:
            self.net.load_state_dict(self.best[2])
        return self.history

    def _run_epochs(self) -> None:
        """Train and validate epoch after epoch up to ``config.epochs``, a checkpoint after each."""
        while self.epoch < self.config.epochs:
            train_metrics = self.train_epoch()
            val_metrics = self.task.validate(self.net, self.val_set) if len(self.val_set) else {}
            self.epoch += 1
            self._record(train_metrics, val_metrics)
            self.save_checkpoint()
            # after the checkpoint: history.json never runs ahead of what a resume starts from
            (self.out_dir / "history.json").write_text(json.dumps(self.history, indent=1))
            self._plot_curves()

    def _record(self, train_metrics: dict, val_metrics: dict) -> None:
        for k, v in train_metrics.items():
            self.history.setdefault(f"train {k}", []).append(float(v))
        for k, v in val_metrics.items():
            self.history.setdefault(f"val {k}", []).append(float(v))
        loss = val_metrics.get("loss", train_metrics["loss"])
        if self.best is None or loss < self.best[1]:
            self.best = (self.epoch, float(loss), self.net.state_dict())
        parts = [f"{k} {v:.4f}" for k, v in {**{f"train {k}": v for k, v in train_metrics.items()},
                                              **{f"val {k}": v for k, v in val_metrics.items()}}.items()]
        _say(f"{self.name} epoch {self.epoch}: " + ", ".join(parts))

    def _plot_curves(self) -> None:
        from pipeline.plots import plot_training_curves

        shown = {k: v for k, v in self.history.items() if "threshold" not in k}
        plot_training_curves(shown, save=self.out_dir / "curves.png", title=f"{self.name}: training curves")

    def plot_roc(self) -> Path | None:
        """ROC of the net on the validation samples (roc.png): faces against non-faces for a
        detection net, each class against the rest (pooled) for a calibration net. None when the
        task has no ROC or there are no validation samples."""
        if not hasattr(self.task, "roc") or not len(self.val_set):
            return None
        from pipeline.plots import plot_roc

        fp, tp = self.task.roc(self.net, self.val_set)
        path = self.out_dir / "roc.png"
        detection = getattr(self.task, "positive_class", None) is not None
        xlabel = "share of validation non-faces passing" if detection else \
            "false positive rate (every class against the rest, pooled)"
        plot_roc({self.name: (fp, tp)}, save=path, xlabel=xlabel, title=f"{self.name}: validation ROC")
        return path


LOCK = "train.lock"


class OutputInUse(RuntimeError):
    """Another training run is writing into the same output folder."""


@contextmanager
def output_lock(out_dir):
    """Hold ``<out_dir>/train.lock`` for the length of a training run, so that a second run
    into the same folder is refused at once (it would overwrite the first's checkpoints and
    weights) instead of racing it.

    The lock is an advisory ``flock`` on the file: the kernel drops it when the holder ends,
    however it ends (kill -9 included), so a stale file never blocks a later run. The file
    holds the holder's pid, for the message. Raises OutputInUse naming that pid. Where flock
    does not exist (not POSIX), runs without a lock. Once the lock is held, the temporary
    files of an atomic write that was killed half-way are removed.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    path = out_dir / LOCK
    with open(path, "a+") as file:
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            file.seek(0)
            holder = file.read().strip() or "another process"
            raise OutputInUse(f"{out_dir} is in use by another training run ({holder}); wait for it to end, "
                              "or choose another --out") from None
        file.seek(0)
        file.truncate()
        file.write(f"pid {os.getpid()}")
        file.flush()
        # half-written files of a run that was killed while it wrote (save_arrays writes
        # NAME.*.tmp, then renames it); with the lock held, no one else is writing them
        for leftover in out_dir.rglob("*.npz.*.tmp"):
            leftover.unlink()
        try:
            yield
        finally:
            fcntl.flock(file, fcntl.LOCK_UN)


def run_stages(stages, order, weights_of, train_one, resume: bool = False, log=print) -> list[Path]:
    """Train the named ``stages`` in the cascade's ``order``: the stage loop of every
    `facecascade train` command. weights_of(name) -> the stage's weights file; train_one(name)
    -> trains it and returns that path. With resume=True a stage whose weights file exists is
    done and skipped (a stage with a checkpoint continues inside train_one). Raises ValueError
    naming unknown stages. Returns the weights paths in order."""
    unknown = [s for s in stages if s not in order]
    if unknown:
        raise ValueError(f"unknown or not yet available stage(s) {unknown}; stages are {list(order)}")
    written = []
    for name in (s for s in order if s in stages):
        path = weights_of(name)
        if resume and path.is_file():
            log(f"{name}: done already ({path})")
        else:
            path = train_one(name)
        written.append(path)
    return written


def _progress(iterable, desc: str, enabled: bool):
    if not enabled:
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, desc=desc, unit="batch", leave=False, file=sys.stderr, disable=None)


def _say(message: str) -> None:
    print(message, flush=True)
