"""The training loop: it learns, it resumes exactly, it keeps a usable checkpoint when
interrupted, and it refuses to overwrite a run by accident."""

from __future__ import annotations

import numpy as np
import pytest

from layers import Linear
from nets import Net12
from pipeline.training.loop import ClassifierTask, SampleSet, TrainConfig, Trainer, recall_threshold, to_input


def toy_samples(n=96, seed=0) -> SampleSet:
    """Bright-centred 12x12 'faces' against dark-centred 'non-faces': learnable in a few steps."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    images = rng.integers(0, 120, (n, 12, 12, 3)).astype(np.uint8)
    images[labels == 1, 3:9, 3:9] += 120
    return SampleSet(images, {"label": labels.astype(np.int64)})


def make_trainer(out_dir, epochs=2, **kw):
    task = ClassifierTask(2, mirror_map=np.arange(2), positive_class=1)
    config = TrainConfig(epochs=epochs, batch_size=16, lr=0.02, seed=3, milestones=(2,))
    return Trainer(Net12(rng=np.random.default_rng(0)), task, toy_samples(), toy_samples(48, seed=1), config,
                   out_dir, progress=False, **kw)


def test_training_lowers_the_loss(tmp_path):
    trainer = make_trainer(tmp_path, epochs=4)
    history = trainer.run()
    assert history["train loss"][-1] < history["train loss"][0]
    assert history["val accuracy"][-1] > 0.8
    assert (tmp_path / "checkpoint.npz").is_file() and (tmp_path / "curves.png").is_file()
    assert trainer.plot_roc().is_file()


def test_two_epochs_equal_one_epoch_then_resume_then_one_more(tmp_path):
    straight = make_trainer(tmp_path / "a", epochs=2)
    straight.run()
    first = make_trainer(tmp_path / "b", epochs=1)
    first.run()
    resumed = make_trainer(tmp_path / "b", epochs=2)
    resumed.run(resume=True)
    assert resumed.epoch == 2
    for (name, a), (_, b) in zip(straight.net.named_parameters(), resumed.net.named_parameters()):
        np.testing.assert_array_equal(a.value, b.value, err_msg=name)
    assert straight.history == resumed.history


def test_an_interrupted_run_keeps_its_last_checkpoint(tmp_path):
    trainer = make_trainer(tmp_path, epochs=3)
    calls = {"n": 0}
    real_loss = trainer.task.loss

    def loss_then_ctrl_c(logits, labels):
        calls["n"] += 1
        if calls["n"] == 8:  # in the second epoch (6 batches per epoch)
            raise KeyboardInterrupt
        return real_loss(logits, labels)

    trainer.task.loss = loss_then_ctrl_c
    with pytest.raises(KeyboardInterrupt):
        trainer.run()
    again = make_trainer(tmp_path, epochs=3)
    again.run(resume=True)
    straight = make_trainer(tmp_path / "straight", epochs=3)
    straight.run()
    for (name, a), (_, b) in zip(straight.net.named_parameters(), again.net.named_parameters()):
        np.testing.assert_array_equal(a.value, b.value, err_msg=name)


def test_an_existing_run_is_not_overwritten(tmp_path):
    make_trainer(tmp_path, epochs=1).run()
    with pytest.raises(FileExistsError, match="resume"):
        make_trainer(tmp_path, epochs=1).run()


def test_resume_refuses_a_different_batch_size(tmp_path):
    make_trainer(tmp_path, epochs=1).run()
    other = make_trainer(tmp_path, epochs=2)
    other.config.batch_size = 32
    with pytest.raises(ValueError, match="batch_size"):
        other.run(resume=True)


def test_recall_threshold_keeps_the_asked_share():
    scores = np.linspace(0.01, 1.0, 100)
    t = recall_threshold(scores, 0.99)
    assert np.mean(scores >= t) >= 0.99 and np.mean(scores >= np.nextafter(t, 2)) < 0.99
    assert recall_threshold(np.zeros(0), 0.99) == 0.0


def test_to_input_normalizes_and_mirrors():
    images = np.arange(2 * 2 * 3 * 3, dtype=np.uint8).reshape(2, 2, 3, 3)
    x = to_input(images, flip=np.array([True, False]))
    assert x.shape == (2, 3, 2, 3) and x.dtype == np.float32
    np.testing.assert_allclose(x[0, :, :, 0], (images[0, :, 2].T - 127.5) / 128)
    np.testing.assert_allclose(x[1, :, :, 0], (images[1, :, 0].T - 127.5) / 128)


def test_a_short_run_on_real_face_crops_lowers_the_loss(tmp_path):
    from paths import require_data

    from pipeline.training.cascade_samples import SampleCounts, build_samples
    from pipeline.training.train_cascade import task_for

    data = require_data("cuhk80", "train.txt").parents[1]
    counts = SampleCounts(positives_per_face=2, face_negatives_per_face=1, negatives_per_photo=20,
                          max_faces=150, max_photos=15)
    train = build_samples("net12", "train", data, counts, seed=0)
    val = build_samples("net12", "val", data, counts, seed=0)
    assert set(np.unique(train.labels["label"])) == {0, 1} and train.images.shape[1:] == (12, 12, 3)
    config = TrainConfig(epochs=3, batch_size=32, lr=0.02, seed=0)
    trainer = Trainer(Net12(), task_for("net12"), train, val, config, tmp_path, progress=False)
    history = trainer.run()
    assert history["train loss"][-1] < 0.8 * history["train loss"][0]
    assert history["val accuracy"][-1] > 0.8


def test_a_calibration_task_draws_a_pooled_roc(tmp_path):
    samples = toy_samples()
    labels = samples.labels["label"] * 2  # classes 0 and 2 of three
    three = SampleSet(samples.images, {"label": labels})
    task = ClassifierTask(3, mirror_map=np.arange(3))
    net = Net12(rng=np.random.default_rng(0))
    net.children["fc2"] = Linear(16, 3, rng=np.random.default_rng(1))
    fp, tp = task.roc(net, three)
    assert len(fp) == len(tp) == 3 * len(three) and tp[-1] == fp[-1] == 1.0
    trainer = Trainer(net, task, three, three, TrainConfig(epochs=1, batch_size=32), tmp_path, progress=False)
    assert trainer.plot_roc().is_file()


def test_run_stages_skips_finished_stages_on_resume_and_refuses_unknown_ones(tmp_path):
    from pipeline.training.loop import run_stages

    (tmp_path / "a.npz").write_bytes(b"done")
    trained = []

    def train_one(name):
        trained.append(name)
        return tmp_path / f"{name}.npz"

    paths = run_stages(("b", "a"), ("a", "b"), lambda n: tmp_path / f"{n}.npz", train_one, resume=True, log=lambda m: None)
    assert trained == ["b"] and paths == [tmp_path / "a.npz", tmp_path / "b.npz"]
    run_stages(("a",), ("a", "b"), lambda n: tmp_path / f"{n}.npz", train_one, resume=False, log=lambda m: None)
    assert trained == ["b", "a"]
    with pytest.raises(ValueError, match="zz"):
        run_stages(("zz",), ("a", "b"), lambda n: tmp_path / f"{n}.npz", train_one)


def test_slices_not_blas_holds_blas_to_one_thread_and_restores_everything():
    from threadpoolctl import threadpool_info

    from layers import batch_chunks

    def blas_threads():
        # NumPy's BLAS (a wheel bundles its own in numpy.libs); other packages' copies (SciPy's)
        # are loaded later and are not what the layers call
        blas = [lib for lib in threadpool_info() if lib["user_api"] == "blas"]
        numpys = [lib for lib in blas if "numpy" in lib["filepath"]]
        return [lib["num_threads"] for lib in (numpys or blas)]

    before_threads, before_blas = batch_chunks.get_threads(), blas_threads()
    with batch_chunks.slices_not_blas(3):
        assert batch_chunks.get_threads() == 3
        assert all(n == 1 for n in blas_threads())
    assert batch_chunks.get_threads() == before_threads
    assert blas_threads() == before_blas


def test_training_steps_are_identical_with_blas_on_one_thread():
    # the speed device must not change a number: same slices, and a matrix product does not
    # depend on BLAS's thread count
    from layers import SGD, batch_chunks, softmax_cross_entropy
    from nets import RNet

    def two_steps():
        rng = np.random.default_rng(5)
        net = RNet(rng)
        optimizer = SGD(net.parameters(), lr=0.01, momentum=0.9)
        x = rng.standard_normal((64, 3, 24, 24)).astype(np.float32)
        labels = rng.integers(0, 2, 64)
        for _ in range(2):
            out = net.forward(x)
            _, dface = softmax_cross_entropy(out["face"], labels)
            net.backward({"face": dface, "box": np.zeros_like(out["box"])})
            optimizer.step()
        return net.state_dict()

    with batch_chunks.slicing(threads=2, min_parallel_bytes=0):
        plain = two_steps()
        with batch_chunks.slices_not_blas():
            held = two_steps()
    for name in plain:
        np.testing.assert_array_equal(held[name], plain[name], err_msg=name)


def test_budget_threshold_lets_at_most_the_share_through_even_with_ties():
    from pipeline.training.loop import budget_threshold, stage_threshold

    scores = np.array([0.9, 0.8, 0.8, 0.8, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05], np.float32)
    for share in (0.0, 0.1, 0.2, 0.35, 0.5, 1.0):
        t = budget_threshold(scores, share)
        assert np.mean(scores >= t) <= share + 1e-12
    assert budget_threshold(scores, 0.1) > 0.8 and np.sum(scores >= budget_threshold(scores, 0.1)) == 1
    assert budget_threshold(scores, 0.5) == pytest.approx(0.4, abs=1e-6)  # just above 0.4: five pass
    assert budget_threshold(np.zeros(0), 0.1) == 0.0 and budget_threshold(scores, 1.0) == 0.0
    faces = np.array([0.95, 0.6, 0.3], np.float32)
    assert stage_threshold(faces, scores, 0.99) == pytest.approx(0.3)  # no budget: keep 99% of the faces
    assert stage_threshold(faces, scores, 0.99, max_negatives_passed=0.1) == budget_threshold(scores, 0.1)
