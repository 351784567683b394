"""A whole small net, end to end: Conv2D -> PReLU -> MaxPool2D (ceil mode) -> Conv2D -> Linear ->
softmax cross-entropy. Its backward pass must agree with numeric gradients for the input and every
parameter, and a few SGD steps on a tiny fixed data set must lower the loss."""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from layers import SGD, Conv2D, Linear, MaxPool2D, PReLU, Sequential, conv_output_size, softmax_cross_entropy
from layers.gradcheck import H, assert_gradients_ok, check_module, format_report


def small_net(seed: int = 0) -> Sequential:
    """(N, 3, 8, 8) -> (N, 2) logits; a 12-net-like stack at toy size."""
    rng = np.random.default_rng(seed)
    return Sequential([
        ("conv1", Conv2D(3, 4, 3, rng=rng)),         # 8 -> 6
        ("prelu1", PReLU(4)),
        ("pool1", MaxPool2D(3, 2, ceil_mode=True)),  # 6 -> 3 (the last window hangs over)
        ("conv2", Conv2D(4, 5, 2, rng=rng)),         # 3 -> 2
        ("fc", Linear(5 * 2 * 2, 2, rng=rng)),
    ])


def pool_margin(z, size, stride):
    """Smallest gap between the largest and second-largest value of any ceil-mode pooling window."""
    H, W = z.shape[2:]
    OH, OW = conv_output_size(H, size, stride, ceil=True), conv_output_size(W, size, stride, ceil=True)
    zp = np.pad(z, ((0, 0), (0, 0), (0, (OH - 1) * stride + size - H), (0, (OW - 1) * stride + size - W)),
                constant_values=-np.inf)
    windows = sliding_window_view(zp, (size, size), axis=(2, 3))[:, :, ::stride, ::stride][:, :, :OH, :OW]
    top2 = np.sort(windows.reshape(*windows.shape[:4], -1), axis=-1)[..., -2:]
    return float(np.min(top2[..., 1] - top2[..., 0]))


def test_small_net_gradcheck_input_and_every_parameter():
    net = small_net().astype(np.float64)
    net["prelu1"].params["alpha"].value[...] = [0.25, 0.1, -0.2, 0.6]  # different slopes per channel
    for name in ("conv1", "conv2", "fc"):
        net[name].params["b"].value[...] = np.linspace(-0.2, 0.2, net[name].params["b"].value.size)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 3, 8, 8))
    labels = np.array([0, 1, 1])

    # the data must sit off PReLU's kink and off max-pool ties by far more than the check's step H
    z = net["conv1"].forward(x)
    assert np.min(np.abs(z)) > 100 * H
    assert pool_margin(net["prelu1"].forward(z), 3, 2) > 100 * H

    def loss_fn(logits):
        return softmax_cross_entropy(logits, labels)

    results = check_module("small net", net, x, loss_fn=loss_fn, seed=21)
    checked = {r.input_name for r in results}
    assert checked == {"x"} | {name for name, _ in net.named_parameters()}
    assert all(r.mode == "full" for r in results)
    assert_gradients_ok(results)
    print(format_report(results))


def tiny_dataset():
    """16 fixed 3x8x8 images: class 1 has a bright 3x3 square somewhere in the middle, class 0 is noise."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((16, 3, 8, 8)).astype(np.float32) * 0.5
    labels = np.tile([0, 1], 8)
    for n in np.flatnonzero(labels):
        r, c = rng.integers(1, 5, size=2)
        x[n, :, r : r + 3, c : c + 3] += 2.0
    return x, labels


def test_short_sgd_run_reduces_the_loss():
    net = small_net(seed=3)
    x, labels = tiny_dataset()
    opt = SGD(net.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    losses = []
    for _ in range(30):
        loss, dlogits = softmax_cross_entropy(net.forward(x), labels)
        net.backward(dlogits)
        opt.step()
        losses.append(loss)
    final, _ = softmax_cross_entropy(net.forward(x), labels)
    assert final < 0.5 * losses[0], f"loss went from {losses[0]:.4f} to {final:.4f}: {np.round(losses, 3)}"
    assert np.all(np.argmax(net.forward(x), axis=1) == labels), "the tiny training set should be learned"
