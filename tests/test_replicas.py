"""Replicas (pipeline/fast/replicas.py): two halves of a batch through two copies of a net give the
net's own outputs and, summed, its own parameter gradients."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from layers import SGD, batch_chunks, softmax_cross_entropy
from pipeline.fast.replicas import Replicas, replicate
from nets import Net24, ONet, PNet, RNet
from tolerances import EXACT, FAST_VS_NAIVE_F64, assert_close


def _douts(outputs, rng):
    """A random gradient for every output (a dict of head outputs, or one array)."""
    if isinstance(outputs, dict):
        return {name: rng.standard_normal(out.shape) for name, out in outputs.items()}
    return rng.standard_normal(outputs.shape)


def _same_outputs(a, b, tol, what):
    if isinstance(a, dict):
        assert set(a) == set(b)
        for name in a:
            assert a[name].shape == b[name].shape
            assert_close(a[name], b[name], tol, f"{what} {name}")
    else:
        assert a.shape == b.shape
        assert_close(a, b, tol, what)


@pytest.mark.parametrize("make, size, n", [(PNet, 12, 7), (RNet, 24, 9), (ONet, 48, 5), (Net24, 24, 6), (RNet, 24, 1)])
def test_replicas_give_the_nets_outputs_and_summed_gradients(make, size, n):
    # float64 and eval mode (no dropout): the only difference is where the batch sums are split
    net = make(rng=np.random.default_rng(1)).astype(np.float64).eval()
    rng = np.random.default_rng(2)
    x = rng.standard_normal((n, 3, size, size))
    with batch_chunks.slicing(threads=2):
        expected_out = net.forward(x)
        douts = _douts(expected_out, rng)
        net.backward(douts)
        expected = {name: p.grad.copy() for name, p in net.named_parameters()}
        for p in net.parameters():
            p.grad[...] = np.nan  # must be overwritten
        with Replicas(net) as replicas:
            out = replicas.forward(x)
            replicas.backward(douts)
    _same_outputs(out, expected_out, FAST_VS_NAIVE_F64, "output")
    for name, p in net.named_parameters():
        assert_close(p.grad, expected[name], FAST_VS_NAIVE_F64, f"gradient of {name}")


def test_replicas_share_the_values_and_see_every_update():
    net = RNet(rng=np.random.default_rng(0)).astype(np.float64).eval()
    copy = replicate(net)
    for (name, mine), (_, theirs) in zip(net.named_parameters(), copy.named_parameters()):
        assert theirs.value is mine.value, name
        assert theirs.grad is not mine.grad, name
    x = np.random.default_rng(1).standard_normal((4, 3, 24, 24))
    optimizer = SGD(net.parameters(), lr=0.1)
    out = net.forward(x)
    net.backward({"face": np.ones_like(out["face"])})
    optimizer.step()  # changes the net's values in place
    _same_outputs(copy.forward(x), net.forward(x), EXACT, "after a step")


def test_only_the_given_parameters_are_summed():
    # a Net24 with its 12-net branch frozen: the trainer passes only the trainable parameters
    net = Net24(rng=np.random.default_rng(0)).astype(np.float64).eval()
    trainable = net.trainable_parameters()
    frozen = [p for p in net.parameters() if all(p is not q for q in trainable)]
    assert frozen
    for p in frozen:
        p.grad[...] = 7.0
    x = np.random.default_rng(1).standard_normal((4, 3, 24, 24))
    with Replicas(net, params=trainable) as replicas:
        out = replicas.forward(x)
        replicas.backward(np.ones_like(out))
    assert all(np.all(p.grad == 7.0) for p in frozen)
    assert any(np.any(p.grad != 0) for p in trainable)


def test_one_thread_or_two_give_the_same_numbers():
    # the batch is always cut into the same parts, so the core count does not change a number
    def step(threads):
        net = ONet(rng=np.random.default_rng(0))  # training mode: dropout active
        optimizer = SGD(net.parameters(), lr=0.01, momentum=0.9)
        rng = np.random.default_rng(1)
        x = rng.standard_normal((8, 3, 48, 48)).astype(np.float32)
        labels = rng.integers(0, 2, 8)
        with batch_chunks.slicing(threads=threads), Replicas(net) as replicas:
            for _ in range(2):
                out = replicas.forward(x)
                _, dface = softmax_cross_entropy(out["face"], labels)
                replicas.backward({"face": dface})
                optimizer.step()
        return net.state_dict()

    one, two = step(1), step(2)
    for name in one:
        np.testing.assert_array_equal(two[name], one[name], err_msg=name)


def test_each_replica_draws_its_own_dropout_masks():
    net = ONet(rng=np.random.default_rng(0))  # training mode
    x = np.ones((2, 3, 48, 48), np.float32)  # two equal samples: only the masks can differ
    with Replicas(net) as replicas:
        out = replicas.forward(x)
    assert not np.array_equal(out["face"][0], out["face"][1])


def test_bad_use_is_named():
    net = RNet(rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="count"):
        Replicas(net, 0)
    with Replicas(net) as replicas, pytest.raises(RuntimeError, match="before forward"):
        replicas.backward({"face": np.zeros((2, 2), np.float32)})


def test_a_failing_replica_names_the_error_and_the_next_batch_still_runs():
    net = RNet(rng=np.random.default_rng(0)).astype(np.float64).eval()
    x = np.random.default_rng(1).standard_normal((4, 3, 24, 24))
    with batch_chunks.slicing(threads=2), Replicas(net) as replicas:
        with pytest.raises(ValueError, match="x must have shape"):  # replica 0 runs here
            replicas.forward(x[:, :, 0])
        _same_outputs(replicas.forward(x), net.forward(x), FAST_VS_NAIVE_F64, "after a failure")

    def broken(_):
        raise ValueError("broken on purpose")

    with batch_chunks.slicing(threads=2), Replicas(net) as replicas:
        replicas._unstarted[0].forward = broken  # the worker (a fork) gets the broken copy
        with pytest.raises(RuntimeError, match="replica 1 failed in forward.*broken on purpose"):
            replicas.forward(x)


def test_a_batch_larger_than_the_first_still_runs():
    # the workers' shared batch buffer has the first batch's size; a larger one goes by pipe
    net = RNet(rng=np.random.default_rng(0)).astype(np.float64).eval()
    rng = np.random.default_rng(1)
    with batch_chunks.slicing(threads=2), Replicas(net) as replicas:
        for n in (2, 6, 3):
            x = rng.standard_normal((n, 3, 24, 24))
            _same_outputs(replicas.forward(x), net.forward(x), FAST_VS_NAIVE_F64, f"batch of {n}")


def _ended(pid: int) -> bool:
    """Whether process pid has ended (gone, or a zombie waiting for its new parent to reap it)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            return any(line.startswith("State:") and "Z" in line.split()[1] for line in status)
    except FileNotFoundError:
        return True


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the workers are forks on Linux only")
def test_replica_workers_end_when_the_trainer_is_killed():
    """kill -9 of the training process: its replica workers see their pipe close and end (they
    once kept a copy of the trainer's end of it, and lived on, 230-290 MB each)."""
    import subprocess
    import time

    script = (
        "import sys, time, numpy as np\n"
        f"sys.path.insert(0, {str(Path(__file__).resolve().parents[1])!r})\n"
        "from layers import batch_chunks\n"
        "from pipeline.fast.replicas import Replicas\n"
        "from nets import PNet\n"
        "batch_chunks.set_threads(2)\n"
        "model = Replicas(PNet(rng=np.random.default_rng(0)))\n"
        "model.forward(np.zeros((8, 3, 12, 12), np.float32))\n"
        "print(' '.join(str(p.pid) for p, _ in model._workers), flush=True)\n"
        "time.sleep(120)\n")
    trainer = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        pids = [int(pid) for pid in trainer.stdout.readline().split()]
    finally:
        trainer.kill()
        trainer.wait()
    assert pids, "the replicas started no worker process"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not all(_ended(pid) for pid in pids):
        time.sleep(0.1)
    assert all(_ended(pid) for pid in pids), f"replica workers {pids} outlived their trainer"
