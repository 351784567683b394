"""MTCNN's multi-task loss: each sample kind reaches only its own heads, hard example mining keeps
the hardest 70% of the classification losses, the whole loss (masks and OHEM included) passes
a gradient check on its own and through P-Net and R-Net, and the shared training loop lowers
every term on a tiny synthetic set."""

from __future__ import annotations

import numpy as np
import pytest

from layers.gradcheck import assert_gradients_ok, check_gradients, check_module
from layers.losses import softmax_cross_entropy_per_sample
from nets import ONet, PNet, RNet
from pipeline.training.multitask import (LANDMARK, LOSS_WEIGHTS, NEGATIVE, OHEM_KEEP, PART, POSITIVE, MultiTaskTask,
                                flatten_heads, mirror_boxes, mirror_landmarks, multitask_loss,
                                task_for_net)
from pipeline.training.loop import SampleSet, TrainConfig, Trainer, predict
from strategies import distinct_values
from tolerances import REFERENCE_F64, assert_close

# The OHEM selection only stays put under the gradient check's h = 1e-6 steps if the losses on
# either side of the cut differ by much more than the change h makes (~1e-6); the tests build
# (or check) a gap of at least this much there.
SELECTION_GAP = 1e-3


def make_labels(kind, rng):
    """Targets for the given kinds, NaN where a kind has none (as the sample sets store them)."""
    kind = np.asarray(kind, dtype=np.int64)
    N = len(kind)
    box = rng.uniform(-0.3, 0.3, (N, 4))
    box[(kind == NEGATIVE) | (kind == LANDMARK)] = np.nan
    points = rng.uniform(0.1, 0.9, (N, 10))
    points[kind != LANDMARK] = np.nan
    return {"kind": kind, "box": box, "landmarks": points}


def make_outputs(kind, rng):
    """Head outputs whose classification losses are all different (no ties for OHEM to break).

    A sample's cross-entropy is softplus(-s) for its margin s = (logit of its own class) -
    (logit of the other class); distinct margins (a shuffled, spaced arange) give distinct
    losses. Both logits also get a random common shift, which the softmax ignores.
    """
    N = len(kind)
    margin = distinct_values((N,), rng, scale=8.0)
    face_minus_non_face = np.where(np.asarray(kind) == POSITIVE, margin, -margin)
    shift = rng.standard_normal(N)
    return {"face": np.stack([shift, shift + face_minus_non_face], axis=1),
            "box": rng.standard_normal((N, 4)) * 0.3, "landmarks": rng.uniform(0, 1, (N, 10))}


def selection_gap(outputs, labels, keep=OHEM_KEEP):
    """Smallest distance between a kept and a dropped classification loss."""
    kind = labels["kind"]
    classified = (kind == NEGATIVE) | (kind == POSITIVE)
    losses, _ = softmax_cross_entropy_per_sample(outputs["face"], (kind == POSITIVE).astype(np.int64))
    ranked = np.sort(losses[classified])[::-1]
    n_keep = max(1, int(keep * len(ranked) + 1e-9))
    return np.inf if n_keep == len(ranked) else ranked[n_keep - 1] - ranked[n_keep]


# ---------------------------------------------------------------- masks

def test_each_kind_reaches_only_its_own_heads(rng):
    kind = [NEGATIVE, POSITIVE, PART, LANDMARK]
    labels = make_labels(kind, rng)
    outputs = make_outputs(kind, rng)
    loss, douts, terms = multitask_loss(outputs, labels["kind"], labels["box"], labels["landmarks"], ohem_keep=1.0)
    reached = {name: np.any(douts[name] != 0, axis=1).tolist() for name in douts}
    #                        negative positive part   landmark
    assert reached["face"] == [True, True, False, False]
    assert reached["box"] == [False, True, True, False]
    assert reached["landmarks"] == [False, False, False, True]
    assert np.isfinite(loss) and all(np.all(np.isfinite(d)) for d in douts.values())  # NaN targets stay out

    # the loss by hand: cross-entropy over the negative and the positive, box over positive and
    # part, landmarks over the landmark sample, weighted 1, 0.5, 0.5
    probs = np.exp(outputs["face"]) / np.exp(outputs["face"]).sum(axis=1, keepdims=True)
    face = -(np.log(probs[0, 0]) + np.log(probs[1, 1])) / 2
    box = ((outputs["box"][1:3] - labels["box"][1:3]) ** 2).sum() / 2
    points = ((outputs["landmarks"][3] - labels["landmarks"][3]) ** 2).sum()
    assert_close(np.array([terms["face"], terms["box"], terms["landmarks"]]), np.array([face, box, points]),
                 REFERENCE_F64)
    assert_close(np.array(loss), np.array(face + 0.5 * box + 0.5 * points), REFERENCE_F64)


def test_targets_a_kind_does_not_have_change_nothing(rng):
    labels = make_labels([NEGATIVE, POSITIVE, PART, LANDMARK, NEGATIVE], rng)
    outputs = make_outputs(labels["kind"], rng)
    before = multitask_loss(outputs, labels["kind"], labels["box"], labels["landmarks"])
    box, points = labels["box"].copy(), labels["landmarks"].copy()
    box[[0, 3, 4]] = 123.0      # negatives and landmark samples have no box
    points[[0, 1, 2, 4]] = -7.0  # only landmark samples have points
    after = multitask_loss(outputs, labels["kind"], box, points)
    assert before[0] == after[0]
    for name in before[1]:
        np.testing.assert_array_equal(before[1][name], after[1][name])


def test_a_batch_without_some_kinds_has_zero_terms(rng):
    labels = make_labels([PART, PART, LANDMARK], rng)
    loss, douts, terms = multitask_loss(make_outputs(labels["kind"], rng), labels["kind"], labels["box"],
                                        labels["landmarks"])
    assert terms["face"] == 0.0 and not douts["face"].any()
    assert loss == pytest.approx(0.5 * terms["box"] + 0.5 * terms["landmarks"])


# ---------------------------------------------------------------- hard example mining

def test_ohem_keeps_the_hardest_seven_tenths_of_the_classified_samples(rng):
    kind = np.array([NEGATIVE] * 6 + [POSITIVE] * 4 + [PART, LANDMARK, PART])
    labels = make_labels(kind, rng)
    # face logit - non-face logit = margin; loss grows as the margin goes the wrong way
    margin = np.array([-3.0, -2.0, -1.0, 0.5, 1.5, 2.5, 3.0, 1.0, -0.5, -2.5, 9.0, 9.0, -9.0])
    outputs = make_outputs(kind, rng)
    outputs["face"] = np.stack([np.zeros_like(margin), margin], axis=1)
    _, douts, terms = multitask_loss(outputs, kind, labels["box"], labels["landmarks"])
    per_sample, _ = softmax_cross_entropy_per_sample(outputs["face"], (kind == POSITIVE).astype(np.int64))
    hardest = np.argsort(-np.where(kind <= POSITIVE, per_sample, -np.inf))[:7]  # floor(0.7 * 10) = 7
    assert sorted(np.flatnonzero(terms["selected"]).tolist()) == sorted(hardest.tolist())
    assert sorted(hardest.tolist()) == [2, 3, 4, 5, 7, 8, 9]  # the easiest: 0, 1 (negatives) and 6 (positive)
    assert np.flatnonzero(np.any(douts["face"] != 0, axis=1)).tolist() == [2, 3, 4, 5, 7, 8, 9]
    assert terms["face"] == pytest.approx(per_sample[hardest].mean())
    assert terms["face_all"] == pytest.approx(per_sample[:10].mean())
    # keep = 1 switches the mining off
    _, douts, terms = multitask_loss(outputs, kind, labels["box"], labels["landmarks"], ohem_keep=1.0)
    assert np.flatnonzero(np.any(douts["face"] != 0, axis=1)).tolist() == list(range(10))


# ---------------------------------------------------------------- gradient checks

@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("alpha", [LOSS_WEIGHTS["pnet"], LOSS_WEIGHTS["onet"]])
def test_multitask_loss_gradcheck(seed, alpha):
    rng = np.random.default_rng(seed)
    kind = rng.permutation(np.array([NEGATIVE] * 6 + [POSITIVE] * 3 + [PART] * 2 + [LANDMARK] * 3))
    labels = make_labels(kind, rng)
    outputs = make_outputs(kind, rng)
    assert selection_gap(outputs, labels) > SELECTION_GAP
    _, douts, _ = multitask_loss(outputs, kind, labels["box"], labels["landmarks"], alpha)

    def scalar():
        return multitask_loss(outputs, kind, labels["box"], labels["landmarks"], alpha)[0]

    assert_gradients_ok(check_gradients("multitask_loss", scalar, douts, outputs, full=True, seed=seed))


@pytest.mark.parametrize("net_class, size", [(PNet, 12), (RNet, 24)])
def test_multitask_loss_gradcheck_through_the_net(net_class, size):
    rng = np.random.default_rng(4)
    net = net_class(rng=np.random.default_rng(1), landmarks=True).astype(np.float64).eval()
    kind = rng.permutation(np.array([NEGATIVE] * 5 + [POSITIVE] * 3 + [PART] * 2 + [LANDMARK] * 2))
    labels = make_labels(kind, rng)
    x = rng.standard_normal((len(kind), 3, size, size))
    task = MultiTaskTask(LOSS_WEIGHTS["pnet"])
    assert selection_gap(flatten_heads(net.forward(x)), labels) > SELECTION_GAP

    def loss_fn(out):
        loss, douts, _ = task.loss(out, labels)
        return loss, douts

    # one random direction per array, as for the nets' own checks (layers' full checks exist)
    assert_gradients_ok(check_module(f"{net_class.__name__} multitask", net, x, loss_fn=loss_fn, full=False, seed=5))


# ---------------------------------------------------------------- the task

def test_pnet_maps_of_one_cell_are_flattened_and_the_gradients_keep_their_shape(rng):
    net = PNet(rng=np.random.default_rng(0), landmarks=True)
    kind = np.array([NEGATIVE, POSITIVE, PART, LANDMARK])
    out = net.forward(rng.standard_normal((4, 3, 12, 12)).astype(np.float32))
    assert out["landmarks"].shape == (4, 10, 1, 1)
    loss, douts, stats = MultiTaskTask().loss(out, make_labels(kind, rng))
    assert {name: d.shape for name, d in douts.items()} == {name: o.shape for name, o in out.items()}
    assert douts["face"].dtype == np.float32
    assert stats["classified"] == 2 and 0 <= stats["correct"] <= 2
    net.backward(douts)
    with pytest.raises(ValueError, match="12x12"):
        flatten_heads(net.forward(np.zeros((1, 3, 14, 14), np.float32)))


def test_a_net_without_a_landmark_head_is_refused_unless_its_weight_is_zero(rng):
    labels = make_labels([NEGATIVE, POSITIVE, LANDMARK], rng)
    out = RNet(rng=np.random.default_rng(0)).forward(rng.standard_normal((3, 3, 24, 24)).astype(np.float32))
    with pytest.raises(ValueError, match="landmarks=True"):
        MultiTaskTask().loss(out, labels)
    loss, douts, _ = MultiTaskTask(alpha=(1.0, 0.5, 0.0)).loss(out, labels)
    assert set(douts) == {"face", "box"}


def test_stats_are_batch_sums_of_the_unmined_terms(rng):
    kind = np.array([NEGATIVE] * 6 + [POSITIVE] * 4 + [PART, LANDMARK])
    labels = make_labels(kind, rng)
    outputs = make_outputs(kind, rng)
    task = MultiTaskTask(LOSS_WEIGHTS["onet"])
    loss, _, stats = task.loss(outputs, labels)
    _, _, terms = multitask_loss(outputs, kind, labels["box"], labels["landmarks"], LOSS_WEIGHTS["onet"])
    N = len(kind)
    assert stats["face loss"] == pytest.approx(N * terms["face_all"])
    assert stats["box loss"] == pytest.approx(N * terms["box"])
    assert stats["landmark loss"] == pytest.approx(N * terms["landmarks"])
    assert stats["loss"] == pytest.approx(N * (terms["face_all"] + 0.5 * terms["box"] + terms["landmarks"]))
    assert loss == pytest.approx(terms["face"] + 0.5 * terms["box"] + terms["landmarks"])
    predicted_face = outputs["face"][:, 1] > outputs["face"][:, 0]
    assert stats["correct"] == int((predicted_face[:10] == (kind[:10] == POSITIVE)).sum())
    assert stats["classified"] == 10


def test_mirror_labels_changes_only_the_flipped_rows(rng):
    labels = make_labels([POSITIVE, LANDMARK, PART, NEGATIVE], rng)
    flip = np.array([True, True, False, True])
    mirrored = MultiTaskTask().mirror_labels(labels, flip)
    np.testing.assert_array_equal(mirrored["kind"], labels["kind"])
    np.testing.assert_array_equal(mirrored["box"][0], mirror_boxes(labels["box"][:1])[0])
    np.testing.assert_array_equal(mirrored["landmarks"][1], mirror_landmarks(labels["landmarks"][1:2])[0])
    np.testing.assert_array_equal(mirrored["box"][2], labels["box"][2])
    assert np.all(np.isnan(mirrored["box"][3])) and np.all(np.isnan(mirrored["landmarks"][3]))


def test_each_net_has_the_papers_task_weights():
    assert task_for_net("pnet").alpha == (1.0, 0.5, 0.5)
    assert task_for_net("rnet").alpha == (1.0, 0.5, 0.5)
    assert task_for_net("onet").alpha == (1.0, 0.5, 1.0)
    with pytest.raises(ValueError):
        task_for_net("net12")


class FixedNet:
    """A stand-in net whose forward returns fixed outputs (for checking the validation maths)."""

    training = False

    def __init__(self, outputs):
        self.outputs = outputs

    def inference(self):
        return self

    def train(self, mode=True):
        return self

    def forward(self, x):
        assert len(x) == len(self.outputs["face"])
        return self.outputs


def test_validation_measures_by_hand():
    kind = np.array([NEGATIVE, NEGATIVE, POSITIVE, POSITIVE, PART, LANDMARK])
    labels = {"kind": kind, "box": np.zeros((6, 4), np.float32), "landmarks": np.full((6, 10), 0.5, np.float32)}
    labels["box"][[0, 1, 5]] = np.nan
    face = np.log(np.array([[0.9, 0.1], [0.3, 0.7], [0.2, 0.8], [0.6, 0.4], [0.5, 0.5], [0.5, 0.5]]))
    box = np.zeros((6, 4)); box[2] = [0.1, -0.1, 0.1, -0.1]; box[4] = [0.2, 0.2, 0.2, 0.2]
    points = np.full((6, 10), 0.5); points[5, 0], points[5, 5] = 0.53, 0.54  # point 1 is 0.05 away
    net = FixedNet({"face": face, "box": box, "landmarks": points})
    images = np.zeros((6, 12, 12, 3), np.uint8)
    metrics = MultiTaskTask().validate(net, SampleSet(images, labels))
    assert metrics["accuracy"] == pytest.approx(2 / 4)           # 0.9/0.1 and 0.2/0.8 right
    assert metrics["recall"] == pytest.approx(1 / 2)             # p = 0.8 passes 0.5, p = 0.4 does not
    assert metrics["threshold"] == pytest.approx(0.4)            # keeps 99% of 2 faces: both
    assert metrics["negatives_passed"] == pytest.approx(1 / 2)   # 0.7 >= 0.4
    assert metrics["box error"] == pytest.approx((0.4 + 0 + 0.8) / 12)  # positives 2, 3 and part 4
    assert metrics["landmark error"] == pytest.approx(0.05 / 5)
    face_loss = -np.mean(np.log([0.9, 0.3, 0.8, 0.4]))
    assert metrics["face loss"] == pytest.approx(face_loss)
    assert metrics["loss"] == pytest.approx(face_loss + 0.5 * metrics["box loss"] + 0.5 * metrics["landmark loss"])
    fp, tp = MultiTaskTask().roc(net, SampleSet(images, labels))
    np.testing.assert_allclose(tp, [0.5, 0.5, 1.0, 1.0])
    np.testing.assert_allclose(fp, [0.0, 0.5, 0.5, 1.0])


def test_predict_gives_every_head_and_restores_training_mode(rng):
    net = ONet(rng=np.random.default_rng(0)).train()
    out = predict(net, rng.integers(0, 256, (3, 48, 48, 3), dtype=np.uint8), batch=2)
    assert {name: o.shape for name, o in out.items()} == {"face": (3, 2), "box": (3, 4), "landmarks": (3, 10)}
    assert net.training


# ---------------------------------------------------------------- the shared training loop

def synthetic_set(n, seed):
    """12x12 windows: noise for negatives; a bright 'face' rectangle placed by the box offsets
    for positives (small offsets) and parts (large ones); for landmark samples a face with five
    dark dots at the landmark targets. Kinds in the ratio 3 : 1 : 1 : 2."""
    rng = np.random.default_rng(seed)
    kind = rng.permutation(np.resize(np.array([0, 0, 0, 1, 2, 3, 3]), n))
    labels = make_labels(kind, rng)
    labels["box"][kind == POSITIVE] = rng.uniform(-0.08, 0.08, ((kind == POSITIVE).sum(), 4))
    images = rng.integers(0, 90, (n, 12, 12, 3)).astype(np.uint8)
    for i in np.flatnonzero(kind != NEGATIVE):
        offsets = np.nan_to_num(labels["box"][i])
        x1, y1, x2, y2 = np.clip(np.rint((np.array([0, 0, 1, 1]) + offsets) * 12), 0, 12).astype(int)
        images[i, y1:y2, x1:x2] += 140
    for i in np.flatnonzero(kind == LANDMARK):
        base = np.array([0.3, 0.7, 0.5, 0.35, 0.65, 0.35, 0.35, 0.55, 0.75, 0.75])
        labels["landmarks"][i] = base + rng.uniform(-0.08, 0.08, 10)
        for x, y in zip(labels["landmarks"][i, :5] * 12, labels["landmarks"][i, 5:] * 12):
            images[i, int(y), int(x)] = 0
    labels = {"kind": labels["kind"], "box": labels["box"].astype(np.float32),
              "landmarks": labels["landmarks"].astype(np.float32)}
    return SampleSet(images, labels)


def test_a_few_epochs_of_pnet_lower_every_term(tmp_path):
    net = PNet(rng=np.random.default_rng(0), landmarks=True)
    # lr 0.01 already diverges here: the fresh regression heads start far from their targets
    # (landmark loss ~7) and the squared loss's gradient grows with the distance
    config = TrainConfig(epochs=5, batch_size=32, lr=0.005, seed=1)
    trainer = Trainer(net, task_for_net("pnet"), synthetic_set(224, 0), synthetic_set(70, 1), config, tmp_path,
                      name="pnet", progress=False)
    history = trainer.run()
    for term in ("loss", "face loss", "box loss", "landmark loss"):
        for split in ("train", "val"):
            series = history[f"{split} {term}"]
            assert series[-1] < series[0], (split, term, series)
    assert history["val accuracy"][-1] > 0.8
    assert "val landmark error" in history and "val box error" in history
    assert trainer.plot_roc().is_file() and (tmp_path / "curves.png").is_file()


def test_multitask_training_resumes_exactly(tmp_path):
    """O-Net (dropout, three heads, OHEM, mirroring): 2 epochs == 1 epoch, resume, 1 more."""
    def trainer(folder, epochs):
        images = np.repeat(np.repeat(synthetic_set(48, 0).images, 4, axis=1), 4, axis=2)  # 12 -> 48 px
        train = SampleSet(images, synthetic_set(48, 0).labels)
        config = TrainConfig(epochs=epochs, batch_size=16, lr=1e-4, seed=2)
        return Trainer(ONet(rng=np.random.default_rng(0)), task_for_net("onet"), train, train.take(np.arange(16)),
                       config, folder, name="onet", progress=False)

    straight = trainer(tmp_path / "a", 2)
    straight.run()
    trainer(tmp_path / "b", 1).run()
    resumed = trainer(tmp_path / "b", 2)
    resumed.run(resume=True)
    for (name, a), (_, b) in zip(straight.net.named_parameters(), resumed.net.named_parameters()):
        np.testing.assert_array_equal(a.value, b.value, err_msg=name)
    assert straight.history == resumed.history


def test_pnet_on_real_samples_lowers_each_loss_term(tmp_path):
    from paths import require_data

    from pipeline.training.mtcnn_samples import MTCNNSampleCounts, build_mtcnn_samples

    data = require_data("cuhk80", "train.txt").parents[1]
    counts = MTCNNSampleCounts(positives_per_face=2, parts_per_face=2, landmarks_per_face=4, face_negatives_per_face=2,
                               photo_negatives_per_face=4, max_faces=150, max_photos=20)
    train = build_mtcnn_samples("pnet", "train", data, counts, seed=0)
    val = build_mtcnn_samples("pnet", "val", data, counts, seed=0)
    config = TrainConfig(epochs=3, batch_size=64, lr=0.005, seed=0)
    trainer = Trainer(PNet(rng=np.random.default_rng(0), landmarks=True), task_for_net("pnet"), train, val, config,
                      tmp_path, name="pnet", progress=False)
    history = trainer.run()
    for term in ("face loss", "box loss", "landmark loss"):
        for split in ("train", "val"):
            series = history[f"{split} {term}"]
            assert series[-1] < series[0], (split, term, series)
