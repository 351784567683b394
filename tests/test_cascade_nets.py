"""Cascade-CNN's six nets and the within-channel LRN of the 48-nets: shapes, parameter counts and
names, summaries, end-to-end gradient checks, saving and loading, frozen branches, the branch's
half-size input, and the 12-net's fully convolutional scan against the net on every crop."""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from numpy.lib.stride_tricks import sliding_window_view

from layers import (SGD, WithinChannelLRN, lrn_within_backward, lrn_within_backward_naive, lrn_within_forward,
                    lrn_within_forward_naive)
from layers.gradcheck import H, assert_gradients_ok, check_module, check_op
from nets import (CASCADE_NETS, NUM_CALIBRATION_CLASSES, CalibNet12, CalibNet24, CalibNet48, Net12, Net24, Net48,
                  load_weights, save_weights)
from nets.cascade import half_size_backward, half_size_forward
from strategies import random_values, seeds
from tolerances import EXACT, FAST_VS_NAIVE_F64, FLOAT32_FORWARD, REFERENCE_F64, assert_close

# net class -> (input size, classes, features width, parameter count, of which in the branch)
NET_TABLE = {
    Net12: (12, 2, 16, 4_594, 0),
    Net24: (24, 2, 144, 673_394, 4_560),
    Net48: (48, 2, 400, 1_830_066, 673_104),
    CalibNet12: (12, 45, 128, 39_149, 0),
    CalibNet24: (24, 45, 64, 171_309, 0),
    CalibNet48: (48, 45, 256, 1_167_725, 0),
}
BRANCHED = [(Net24, "branch12"), (Net48, "branch24")]


def make(net_class, seed=0, **kwargs):
    return net_class(rng=np.random.default_rng(seed), **kwargs)


def summary_table(text):
    """The rows of a summary() table: layer name -> [layer, output shape, parameters] (the
    columns are separated by at least two spaces; a row without a layer has one less)."""
    lines = text.splitlines()[3:-1]  # after the title, header and rule; before the total
    return {cells[0]: cells[1:] for cells in (re.split(r"\s{2,}", line.strip()) for line in lines)}


def half_size_reference(x):
    """2 x 2 block means written another way: a reshape and a mean."""
    N, C, H, W = x.shape
    return x.reshape(N, C, H // 2, 2, W // 2, 2).mean(axis=(3, 5))


# ------------------------------------------------------------------ shapes, counts, names, summary

@pytest.mark.parametrize("net_class", CASCADE_NETS)
def test_output_and_feature_shapes(net_class):
    size, classes, width, _, _ = NET_TABLE[net_class]
    net = make(net_class)
    assert (net.input_size, net.num_classes) == (size, classes)
    x = np.random.default_rng(1).standard_normal((3, 3, size, size)).astype(np.float32)
    logits = net.forward(x)
    assert logits.shape == (3, classes) and logits.dtype == np.float32
    assert net.features(x).shape == (3, width)


def test_calibration_class_count():
    assert NUM_CALIBRATION_CLASSES == 45  # 5 scales x 3 x-shifts x 3 y-shifts
    assert all(make(cls).num_classes == 45 for cls in (CalibNet12, CalibNet24, CalibNet48))


@pytest.mark.parametrize("net_class", CASCADE_NETS)
def test_parameter_counts(net_class):
    _, _, _, total, in_branch = NET_TABLE[net_class]
    net = make(net_class)
    assert net.num_parameters() == total
    assert (net.branch.num_parameters() if net.branch is not None else 0) == in_branch


def test_parameter_names_read_like_the_layer_table():
    assert list(make(Net12).state_dict()) == ["conv1.w", "conv1.b", "fc1.w", "fc1.b", "fc2.w", "fc2.b"]
    assert list(make(Net24).state_dict()) == [
        "conv1.w", "conv1.b", "fc1.w", "fc1.b",
        "branch12.conv1.w", "branch12.conv1.b", "branch12.fc1.w", "branch12.fc1.b", "fc2.w", "fc2.b"]
    names = list(make(Net48).state_dict())
    assert names[:6] == ["conv1.w", "conv1.b", "conv2.w", "conv2.b", "fc1.w", "fc1.b"]
    assert "branch24.fc1.w" in names and "branch24.branch12.conv1.w" in names
    assert names[-2:] == ["fc2.w", "fc2.b"]


@pytest.mark.parametrize("net_class", CASCADE_NETS)
def test_summary_shows_every_layer_and_the_totals(net_class):
    size, classes, width, total, _ = NET_TABLE[net_class]
    net = make(net_class)
    text = net.summary()
    lines = text.splitlines()
    assert lines[0].startswith(net_class.__name__)
    assert lines[-1].split() == ["total", f"{total:,}"]
    rows = summary_table(text)
    assert rows["input"] == [f"(3, {size}, {size})"]
    for name, layer in net.body.trunk.children.items():
        assert rows[name][0] == repr(layer)
        assert rows[name][2] == f"{layer.num_parameters():,}"
    assert rows["fc2"][1:] == [f"({classes},)", f"{classes * width + classes:,}"]
    if net.branch is not None:
        assert rows["concat"][1] == f"({width},)"


def test_summary_shows_the_branch_and_what_is_frozen():
    text = make(Net48).summary()
    rows = summary_table(text)
    assert rows["pool1"][1:] == ["(64, 21, 21)", "0"]
    assert rows["norm2"][1:] == ["(64, 8, 8)", "0"]
    assert rows["half"] == ["HalfSize(2x2 average)", "(3, 24, 24)", "0"]
    assert rows["branch24.pool1"][1:] == ["(64, 9, 9)", "0"]
    assert rows["branch24.fc1"][1:] == ["(128,)", "663,680"]
    assert rows["branch24.half"][1:] == ["(3, 12, 12)", "0"]
    assert rows["branch24.branch12.pool1"][1:] == ["(16, 4, 4)", "0"]
    assert rows["branch24.branch12.fc1"][1:] == ["(16,)", "4,112"]
    assert rows["branch24.concat"] == ["128 + branch12 16", "(144,)", "0"]
    assert rows["concat"] == ["256 + branch24 144", "(400,)", "0"]
    assert "branch24 frozen: 1,156,962 of 1,830,066 parameters trainable" in text.splitlines()[0]
    assert "branch12 trained too" in make(Net24, frozen_branch=False).summary().splitlines()[0]


def test_wrong_input_size_is_refused():
    with pytest.raises(ValueError, match=r"Net24 takes x of shape \(N, 3, 24, 24\), got shape \(1, 3, 12, 12\)"):
        make(Net24).forward(np.zeros((1, 3, 12, 12), dtype=np.float32))


# ------------------------------------------------------------------ gradient checks

def relu_and_pool_margin(net, x):
    """Smallest distance of any ReLU input from 0 and of any pooling window's top two values,
    in a Net12 run on x: the full gradient check needs both far above its step H."""
    trunk = net.body.trunk
    conv = trunk["conv1"].forward(x)
    windows = sliding_window_view(conv, (3, 3), axis=(2, 3))[:, :, ::2, ::2]
    top2 = np.sort(windows.reshape(*windows.shape[:4], -1), axis=-1)[..., -2:]
    pooled = trunk["pool1"].forward(conv)
    hidden = trunk["fc1"].forward(trunk["relu1"].forward(pooled))
    return min(np.min(top2[..., 1] - top2[..., 0]), np.min(np.abs(pooled)), np.min(np.abs(hidden)))


def test_net12_full_gradcheck_of_the_input_and_every_parameter():
    net = make(Net12, seed=4).astype(np.float64)
    for name in ("fc1", "conv1"):  # nonzero biases, so their gradients are checked at a general point
        b = net.body.trunk[name].params["b"].value
        b[...] = np.linspace(-0.1, 0.1, b.size)
    x = np.random.default_rng(5).standard_normal((2, 3, 12, 12))
    assert relu_and_pool_margin(net, x) > 100 * H
    results = check_module("Net12", net, x, seed=6)
    assert {r.input_name for r in results} == {"x"} | set(net.state_dict())
    assert all(r.mode == "full" for r in results)
    assert_gradients_ok(results)


@pytest.mark.parametrize("net_class", CASCADE_NETS)
def test_end_to_end_gradcheck_covers_every_parameter_branch_included(net_class):
    size = NET_TABLE[net_class][0]
    net = make(net_class, seed=1).astype(np.float64)
    x = np.random.default_rng(2).standard_normal((2, 3, size, size))
    # one random direction per array (input and every parameter): full checks of up to 1.8M
    # parameters would take hours. Two directions, so that one lucky direction cannot hide an
    # error. The seeds are fixed on purpose: in these nets float64 rounding moves the loss by
    # ~1e-14, i.e. the central difference by ~1e-8, so a direction nearly orthogonal to the
    # gradient (derivative ~1e-3, which a few seeds in a hundred draw) shows a relative error
    # near 1e-5 that measures rounding, not the backward pass (seed 4 does that for Net24's x:
    # derivative 3.4e-4, error 1.1e-5; with h = 1e-3 the two agree to 4e-9). A wrong backward
    # lands near 1e-1 for any seed.
    for seed in (3, 5):
        results = check_module(net_class.__name__, net, x, full=False, seed=seed)
        assert {r.input_name for r in results} == {"x"} | set(net.state_dict())
        assert_gradients_ok(results)


def test_the_frozen_branch_still_gets_gradients_and_passes_them_on():
    net = make(Net24, seed=1).astype(np.float64)  # frozen by default
    x = np.random.default_rng(2).standard_normal((2, 3, 24, 24))
    net.zero_grad()
    net.backward(np.ones_like(net.forward(x)))
    assert all(np.any(p.grad != 0) for p in net.branch.parameters())


# ------------------------------------------------------------------ saving, loading, freezing

@pytest.mark.parametrize("net_class", CASCADE_NETS)
def test_save_and_load_round_trip(net_class, tmp_path):
    size = NET_TABLE[net_class][0]
    saved, fresh = make(net_class, seed=1), make(net_class, seed=2)
    path = tmp_path / f"{net_class.__name__}.npz"
    save_weights(saved, path)
    load_weights(fresh, path)
    for name, value in saved.state_dict().items():
        assert_close(fresh.state_dict()[name], value, EXACT, name)
    x = np.random.default_rng(3).standard_normal((2, 3, size, size)).astype(np.float32)
    assert_close(fresh.forward(x), saved.forward(x), EXACT, "logits after loading")


@pytest.mark.parametrize("net_class, branch_name", BRANCHED)
def test_trainable_parameters_leave_out_a_frozen_branch(net_class, branch_name):
    frozen, free = make(net_class), make(net_class, frozen_branch=False)
    all_names = set(frozen.state_dict())
    frozen_names = {name for name, _ in frozen.named_trainable_parameters()}
    assert frozen_names == {name for name in all_names if not name.startswith(branch_name + ".")}
    assert len(frozen_names) < len(all_names)
    assert {name for name, _ in free.named_trainable_parameters()} == all_names
    assert len(free.trainable_parameters()) == len(free.parameters())


@pytest.mark.parametrize("net_class", [CalibNet12, Net12, CalibNet48])
def test_nets_without_a_branch_train_everything(net_class):
    net = make(net_class)
    assert net.branch is None
    assert [name for name, _ in net.named_trainable_parameters()] == list(net.state_dict())


def test_an_optimizer_on_trainable_parameters_leaves_the_branch_as_it_was():
    net = make(Net24, seed=1)
    before = net.state_dict()
    x = np.random.default_rng(2).standard_normal((4, 3, 24, 24)).astype(np.float32)
    net.backward(np.ones_like(net.forward(x)))
    SGD(net.trainable_parameters(), lr=0.1).step()
    after = net.state_dict()
    for name in before:
        changed = not np.array_equal(before[name], after[name])
        assert changed == (not name.startswith("branch12.")), name


# ------------------------------------------------------------------ the branch's half-size input

def test_half_size_is_the_2x2_block_mean(rng):
    x = random_values((2, 3, 6, 4), rng)
    out, cache = half_size_forward(x)
    assert_close(out, half_size_reference(x), REFERENCE_F64)
    assert_gradients_ok(check_op("half_size", half_size_forward, half_size_backward, {"x": x}, seed=7))
    with pytest.raises(ValueError, match="even height and width"):
        half_size_forward(np.zeros((1, 3, 5, 4)))


def test_a_loaded_12net_gives_the_24nets_branch_features_of_the_half_size_input():
    net12 = make(Net12, seed=7).astype(np.float64)
    net24 = make(Net24, seed=8).astype(np.float64)
    x = np.random.default_rng(9).standard_normal((3, 3, 24, 24))
    assert not np.allclose(net24.features(x)[:, 128:], net12.features(half_size_reference(x)))
    net24.load_branch_from(net12)
    for name, value in net12.state_dict().items():
        if not name.startswith("fc2."):
            assert_close(net24.state_dict()["branch12." + name], value, EXACT, name)
    assert_close(net24.features(x)[:, 128:], net12.features(half_size_reference(x)), REFERENCE_F64)


def test_a_loaded_24net_gives_the_48nets_branch_features_of_the_half_size_input():
    net12 = make(Net12, seed=7).astype(np.float64)
    net24 = make(Net24, seed=8).astype(np.float64)
    net24.load_branch_from(net12)
    net48 = make(Net48, seed=10).astype(np.float64)
    net48.load_branch_from(net24)
    x = np.random.default_rng(11).standard_normal((2, 3, 48, 48))
    half = half_size_reference(x)
    assert_close(net48.features(x)[:, 256:], net24.features(half), REFERENCE_F64)
    # and, one level further down, the 12-net sees the input averaged down to 12 x 12
    assert_close(net48.features(x)[:, 256 + 128:], net12.features(half_size_reference(half)), REFERENCE_F64)


def test_load_branch_from_refuses_the_wrong_net():
    with pytest.raises(ValueError, match="Net24's branch holds a Net12, got a CalibNet12"):
        make(Net24).load_branch_from(make(CalibNet12))
    with pytest.raises(ValueError, match="Net48's branch holds a Net24, got a Net12"):
        make(Net48).load_branch_from(make(Net12))
    with pytest.raises(ValueError, match="Net12 has no branch"):
        make(Net12).load_branch_from(make(Net12))


# ------------------------------------------------------------------ the 12-net's scan

def crops_through_the_net(net, level):
    """The reference: every 12 x 12 window, 4 pixels apart, through ``forward``; (N, 2, OH, OW)."""
    N, _, H, W = level.shape
    OH, OW = (H - 12) // 4 + 1, (W - 12) // 4 + 1
    crops = [level[:, :, 4 * i : 4 * i + 12, 4 * j : 4 * j + 12] for i in range(OH) for j in range(OW)]
    logits = net.forward(np.concatenate(crops))  # crop-major: row k * N + n
    return logits.reshape(OH, OW, N, 2).transpose(2, 3, 0, 1)


@given(H=st.integers(12, 40), W=st.integers(12, 40), seed=seeds())
def test_scan_equals_the_net_on_every_crop_float64(H, W, seed):
    net = make(Net12, seed=seed % 1000).astype(np.float64)
    level = np.random.default_rng(seed).standard_normal((2, 3, H, W))
    out = net.scan(level)
    assert out.shape == (2, 2, (H - 12) // 4 + 1, (W - 12) // 4 + 1)
    # the same products summed in another order (im2col over the image, fc1 as a conv)
    assert_close(out, crops_through_the_net(net, level), FAST_VS_NAIVE_F64)


@pytest.mark.parametrize("H, W", [(12, 12), (13, 29), (23, 17), (38, 31)])
def test_scan_in_float32_matches_the_float64_net_on_each_crop(H, W):
    net = make(Net12, seed=3)
    level = np.random.default_rng(4).standard_normal((1, 3, H, W)).astype(np.float32)
    out = net.scan(level)
    assert out.dtype == np.float32
    expected = crops_through_the_net(make(Net12, seed=3).astype(np.float64), level.astype(np.float64))
    assert_close(out, expected, FLOAT32_FORWARD)


def test_scan_refuses_a_level_smaller_than_a_window():
    with pytest.raises(ValueError, match=r"H, W >= 12, got shape \(1, 3, 11, 20\)"):
        make(Net12).scan(np.zeros((1, 3, 11, 20), dtype=np.float32))


# ------------------------------------------------------------------ within-channel LRN

# alpha large enough that the normalization really bends the output (the nets' 1e-4 would make
# LRN nearly the identity and the checks below nearly vacuous)
LRN_HYPER = dict(alpha=0.8, beta=0.75, k=2.0)


def test_lrn_within_by_hand():
    # one pixel: its window holds only itself, scale = k + alpha / size^2 * x^2
    x = np.array([[[[2.0]]]])
    out, _ = lrn_within_forward(x, size=3, alpha=0.9, beta=0.5, k=1.0)
    assert_close(out, [[[[2.0 / np.sqrt(1.0 + 0.1 * 4.0)]]]], REFERENCE_F64)
    # a 1 x 3 row, size 3: the middle pixel's window holds all three, the ends' two each
    x = np.array([[[[1.0, 2.0, 3.0]]]])
    out, _ = lrn_within_forward(x, size=3, alpha=9.0, beta=1.0, k=1.0)
    assert_close(out, [[[[1.0 / 6.0, 2.0 / 15.0, 3.0 / 14.0]]]], REFERENCE_F64)


def test_window_sums_are_multiplies_by_a_band_of_ones():
    from layers.lrn import ones_band

    band = ones_band(5, 3)
    assert band.tolist() == [[1, 1, 0, 0, 0], [1, 1, 1, 0, 0], [0, 1, 1, 1, 0], [0, 0, 1, 1, 1], [0, 0, 0, 1, 1]]
    assert not band.flags.writeable  # cached and shared
    # each entry's window of 3, the ends padded with zeros
    assert (np.array([1, 2, 3, 4, 5], np.float32) @ band).tolist() == [3, 6, 9, 12, 9]
    assert ones_band(2, 9).tolist() == [[1, 1], [1, 1]]  # a window wider than the axis


@given(N=st.integers(1, 2), C=st.integers(1, 3), H=st.integers(1, 7), W=st.integers(1, 7),
       size=st.sampled_from([1, 3, 5, 9]), seed=seeds())
def test_lrn_within_fast_equals_naive(N, C, H, W, size, seed):
    rng = np.random.default_rng(seed)
    x = random_values((N, C, H, W), rng)
    dout = random_values((N, C, H, W), rng)
    out, cache = lrn_within_forward(x, size=size, **LRN_HYPER)
    out_naive, cache_naive = lrn_within_forward_naive(x, size=size, **LRN_HYPER)
    assert_close(out, out_naive, FAST_VS_NAIVE_F64)
    assert_close(lrn_within_backward(dout, cache), lrn_within_backward_naive(dout, cache_naive), FAST_VS_NAIVE_F64)


@pytest.mark.parametrize("shape, size", [((2, 2, 4, 5), 1), ((1, 3, 5, 4), 3), ((2, 2, 6, 6), 5),
                                         ((1, 2, 5, 7), 9)])
def test_lrn_within_gradcheck_full(rng, shape, size):
    assert_gradients_ok(check_op("lrn_within", lrn_within_forward, lrn_within_backward,
                                 {"x": random_values(shape, rng)}, hyper=dict(size=size, **LRN_HYPER), seed=8))


def test_lrn_within_gradcheck_direction_at_the_nets_settings(rng):
    x = random_values((2, 64, 8, 8), rng) * 20  # the 48-net's norm2 shape; scaled so that alpha 1e-4 bites
    for seed in range(2):
        assert_gradients_ok(check_op("lrn_within", lrn_within_forward, lrn_within_backward, {"x": x},
                                     hyper=dict(size=9), full=False, seed=seed))


def test_lrn_within_keeps_float32_and_the_module_matches_the_function(rng):
    x = random_values((2, 3, 5, 5), rng, dtype=np.float32)
    layer = WithinChannelLRN(size=3, **LRN_HYPER)
    out = layer.forward(x)
    assert out.dtype == np.float32
    assert_close(out, lrn_within_forward(x, size=3, **LRN_HYPER)[0], EXACT)
    dout = random_values(x.shape, rng, dtype=np.float32)
    assert_close(layer.backward(dout), lrn_within_backward(dout, lrn_within_forward(x, size=3, **LRN_HYPER)[1]),
                 EXACT)
    assert repr(layer) == "WithinChannelLRN(size=3, alpha=0.8, beta=0.75, k=2.0)"


@pytest.mark.parametrize("size", [0, 2, 4, -3])
def test_lrn_within_size_must_be_positive_and_odd(size):
    with pytest.raises(ValueError, match=f"positive odd number, got {size}"):
        lrn_within_forward(np.ones((1, 2, 3, 3)), size=size)


def test_training_backward_skips_the_input_gradient_and_the_frozen_branch():
    from layers.modules import without_input_gradient

    rng = np.random.default_rng(4)
    net = Net48(rng=rng)
    x = rng.standard_normal((3, 3, 48, 48)).astype(np.float32)
    dlogits = rng.standard_normal((3, 2)).astype(np.float32)
    net.forward(x)
    assert net.backward(dlogits).shape == x.shape
    trained = {name: p.grad.copy() for name, p in net.named_trainable_parameters()}
    for p in net.branch.parameters():
        p.grad[...] = 0
    with without_input_gradient(net):
        net.forward(x)
        assert net.backward(dlogits) is None
    for name, p in net.named_trainable_parameters():
        np.testing.assert_array_equal(p.grad, trained[name], err_msg=name)
    assert all(not p.grad.any() for p in net.branch.parameters())  # the frozen branch was not run backward
    net.forward(x)
    assert net.backward(dlogits).shape == x.shape  # and everything again after the block
