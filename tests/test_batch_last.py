"""pipeline.fast.batch_last: the detector's inference layout gives what net.forward gives.

Each kernel is checked against its plain-loop twin in layers/ (float64, so that only the order of
the sums differs), and whole nets against net.forward, with random weights whose PReLU slopes
lie on both sides of 0 and of 1.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from layers import Conv2D, Linear, PReLU, Sequential, Softmax
from layers.activations import prelu_forward_naive
from layers.conv import conv_forward_naive
from layers.pool import maxpool_forward_naive
from nets import ONet, PNet, RNet
import pipeline.fast.batch_last as batch_last_module
from pipeline.fast.batch_last import (BatchLast, BatchLastCache, _fits_blocks, _pool_before_prelu, block_weights, conv_batch_last,
                              conv_pool2_batch_last, maxpool_batch_last, prelu_rows_)
from nets.heads import MultiHeadNet
from layers.modules import inference_mode

from .strategies import MAX_SIZE
from .tolerances import FAST_VS_NAIVE_F64, FLOAT32_FORWARD, assert_close


def batch_last(x):
    """(N, C, H, W) -> (C, H, W, N)"""
    return np.ascontiguousarray(np.moveaxis(x, 0, -1))


def batch_first(x):
    """(C, H, W, N) -> (N, C, H, W)"""
    return np.moveaxis(x, -1, 0)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 3), c=st.integers(1, 3), f=st.integers(1, 4), k=st.integers(1, 3),
       stride=st.integers(1, 2), pad=st.integers(0, 1), h=st.integers(3, MAX_SIZE), w=st.integers(3, MAX_SIZE),
       seed=st.integers(0, 2**16))
def test_conv_equals_naive(n, c, f, k, stride, pad, h, w, seed):
    rng = np.random.default_rng(seed)
    x, weights, bias = rng.standard_normal((n, c, h, w)), rng.standard_normal((f, c, k, k)), rng.standard_normal(f)
    expected, _ = conv_forward_naive(x, weights, bias, stride, pad)
    w_aug = np.concatenate([weights.reshape(f, -1), bias[:, None]], axis=1)
    actual = batch_first(conv_batch_last(batch_last(x), w_aug, k, k, stride, pad))
    assert_close(actual, expected, FAST_VS_NAIVE_F64)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 3), c=st.integers(1, 3), size=st.integers(1, 3), stride=st.integers(1, 3),
       ceil_mode=st.booleans(), h=st.integers(3, MAX_SIZE), w=st.integers(3, MAX_SIZE), seed=st.integers(0, 2**16))
def test_maxpool_equals_naive(n, c, size, stride, ceil_mode, h, w, seed):
    x = np.random.default_rng(seed).standard_normal((n, c, h, w))
    expected, _ = maxpool_forward_naive(x, size, stride, ceil_mode)
    actual = batch_first(maxpool_batch_last(batch_last(x), size, stride, ceil_mode))
    np.testing.assert_array_equal(actual, expected)  # a maximum is exact


def test_maxpool_of_ties_and_negative_values():
    x = -np.ones((1, 1, 5, 5))
    x[0, 0, 4, 4] = -0.5  # the last, clipped ceil-mode window holds only this pixel
    expected, _ = maxpool_forward_naive(x, 3, 2, ceil_mode=True)
    np.testing.assert_array_equal(batch_first(maxpool_batch_last(batch_last(x), 3, 2, True)), expected)


@settings(max_examples=40, deadline=None)
@given(c=st.integers(1, 6), size=st.integers(1, 20), seed=st.integers(0, 2**16))
def test_prelu_equals_naive_for_slopes_below_zero_between_and_above_one(c, size, seed):
    rng = np.random.default_rng(seed)
    y = rng.standard_normal((c, size))
    alpha = rng.uniform(-1.5, 1.5, c)
    expected, _ = prelu_forward_naive(y.T, alpha)  # (N, C): channel on axis 1
    assert_close(prelu_rows_(y.copy(), alpha), expected.T, FAST_VS_NAIVE_F64)


@settings(max_examples=20, deadline=None)
@given(c=st.integers(1, 6), size=st.integers(1, 20), block=st.integers(1, 40), seed=st.integers(0, 2**16))
def test_prelu_gives_the_same_in_passes_of_any_size(c, size, block, seed):
    """prelu_rows_ works a few channels (or one, with a scalar slope) at a time."""
    rng = np.random.default_rng(seed)
    y = rng.standard_normal((c, size))
    alpha = rng.uniform(-1.5, 1.5, c)
    expected, _ = prelu_forward_naive(y.T, alpha)
    original = batch_last_module.PRELU_BLOCK
    batch_last_module.PRELU_BLOCK = block
    try:
        actual = prelu_rows_(y.copy(), alpha)
    finally:
        batch_last_module.PRELU_BLOCK = original
    assert_close(actual, expected.T, FAST_VS_NAIVE_F64)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 3), c=st.integers(1, 3), f=st.integers(1, 4), k=st.integers(1, 3),
       ceil_mode=st.booleans(), extra_h=st.integers(1, MAX_SIZE), extra_w=st.integers(1, MAX_SIZE),
       negative=st.integers(0, 4), seed=st.integers(0, 2**16))
def test_conv_pool2_equals_naive_conv_prelu_pool(n, c, f, k, ceil_mode, extra_h, extra_w, negative, seed):
    """The 2x2 blocks give the three naive layers' result, for odd and even sizes, either
    pooling mode and any number of negative slopes (those come first)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, k + extra_h, k + extra_w))
    weights, bias = rng.standard_normal((f, c, k, k)), rng.standard_normal(f)
    negative = min(negative, f)
    alpha = np.concatenate([rng.uniform(-1.5, -0.01, negative), rng.uniform(0, 1.5, f - negative)])
    conv, _ = conv_forward_naive(x, weights, bias)
    activated, _ = prelu_forward_naive(conv, alpha)
    expected, _ = maxpool_forward_naive(activated, 2, 2, ceil_mode)
    actual = conv_pool2_batch_last(batch_last(x), block_weights(weights, bias), k, k, ceil_mode, alpha, negative)
    assert_close(batch_first(actual), expected, FAST_VS_NAIVE_F64)


def test_blocks_serve_pnets_first_layer_only():
    """P-Net's conv1 (27 inputs per output) runs in blocks; O-Net's conv3 -> 2x2 pooling (576
    inputs, where the blocks' extra multiplications would cost more than they save) does not."""
    pnet, onet = (list(net.trunk.children.values()) for net in (PNet(), ONet()))
    assert _fits_blocks(pnet[0], pnet[2])
    conv3, pool3 = onet[6], onet[8]
    assert conv3.params["w"].value.shape[1:] == (64, 3, 3) and pool3.size == 2
    assert not _fits_blocks(conv3, pool3)


def random_weights(net, rng):
    """Random weights, slopes in [-1.5, 1.5]; float32 values as the nets keep them."""
    for name, param in net.named_parameters():
        if name.endswith("alpha"):
            param.value[...] = rng.uniform(-1.5, 1.5, param.value.shape)
        else:
            param.value[...] = rng.standard_normal(param.value.shape) * 0.3
    return net


@settings(max_examples=12, deadline=None)
@given(net_kind=st.sampled_from(["pnet", "rnet", "onet"]), n=st.integers(1, 4), extra_h=st.integers(0, 9),
       extra_w=st.integers(0, 9), seed=st.integers(0, 2**16))
def test_whole_nets_equal_forward(net_kind, n, extra_h, extra_w, seed):
    rng = np.random.default_rng(seed)
    net = random_weights({"pnet": PNet, "rnet": RNet, "onet": ONet}[net_kind](landmarks=True), rng)
    size = net.input_size
    h, w = (size + extra_h, size + extra_w) if net_kind == "pnet" else (size, size)  # P-Net takes any size
    x = rng.standard_normal((n, 3, h, w))
    with inference_mode(net):
        expected = net.forward(x)
    actual = BatchLast(net).forward(x)
    assert actual.keys() == expected.keys()
    for name in expected:
        assert actual[name].shape == expected[name].shape, name
        assert_close(actual[name], expected[name], FAST_VS_NAIVE_F64, name)


def test_released_nets_in_float32_give_the_same_outputs():
    from nets import load_mtcnn

    rng = np.random.default_rng(0)
    for net in load_mtcnn("released").nets:
        x = rng.uniform(-1, 1, (7, 3, net.input_size + 5 * (net.input_size == 12), net.input_size)).astype(np.float32)
        with inference_mode(net):
            expected = net.forward(x)
        actual = BatchLast(net).forward(x)
        for name in expected:
            assert actual[name].dtype == np.float32
            assert_close(actual[name], expected[name], 1e-5, name)  # float32: a few roundings of 6e-8


def test_pool_before_prelu_puts_negative_slopes_first_and_leaves_the_net_alone():
    rng = np.random.default_rng(2)
    net = random_weights(RNet(), rng)
    net.trunk.children["prelu1"].params["alpha"].value[...] = np.linspace(-1, 1.5, 28)  # 11 negative
    net.trunk.children["prelu2"].params["alpha"].value[...] = np.abs(np.linspace(-1, 1, 48))  # none
    before = {name: value.copy() for name, value in net.state_dict().items()}
    layers = list(net.trunk.children.items())
    arrays = [{key: param.value for key, param in layer.params.items()} for _, layer in layers]
    assert _pool_before_prelu(layers, arrays) == {1: 11, 4: 0}  # prelu1 and prelu2, by position
    alpha = arrays[1]["alpha"]
    assert np.all(alpha[:11] < 0) and np.all(alpha[11:] >= 0)
    order = np.argsort(~(net.trunk.children["prelu1"].params["alpha"].value < 0), kind="stable")
    np.testing.assert_array_equal(arrays[0]["w"], before["conv1.w"][order])  # conv1's filters
    np.testing.assert_array_equal(arrays[3]["w"], before["conv2.w"][:, order])  # conv2's inputs
    for name, value in net.state_dict().items():
        np.testing.assert_array_equal(value, before[name], err_msg=name)
    x = rng.standard_normal((3, 3, 24, 24))
    with inference_mode(net):
        expected = net.forward(x)
    for name, value in BatchLast(net).forward(x).items():
        assert_close(value, expected[name], FAST_VS_NAIVE_F64, name)


def test_prelu_rows_refuses_a_copy():
    with pytest.raises(ValueError, match="C-contiguous"):
        prelu_rows_(np.ones((4, 6))[:, ::2], np.ones(4))


def test_reads_the_weights_when_made():
    net = PNet()
    x = np.random.default_rng(1).standard_normal((1, 3, 12, 12)).astype(np.float32)
    fast = BatchLast(net)
    before = fast.forward(x)["face"].copy()
    net.children["face"].params["b"].value += 1.0
    np.testing.assert_array_equal(fast.forward(x)["face"], before)
    assert not np.allclose(BatchLast(net).forward(x)["face"], before)


def test_cache_reuses_a_batch_last_until_the_net_changes():
    """Same weights: the same BatchLast. Weights changed in place, loaded, or a layer replaced:
    a new one, which computes with the new net."""
    net, cache = PNet(), BatchLastCache()
    x = np.random.default_rng(2).standard_normal((1, 3, 14, 14)).astype(np.float32)
    first = cache(net)
    assert cache(net) is first and cache(PNet()) is not first
    net.children["face"].params["b"].value += 1.0  # in place, as an optimizer step
    second = cache(net)
    assert second is not first
    with inference_mode(net):
        assert_close(second.forward(x)["face"], net.forward(x)["face"], FLOAT32_FORWARD)
    net.load_state_dict({name: value * 0.5 for name, value in net.state_dict().items()})
    assert cache(net) is not second
    third = cache(net)
    net.trunk.children["prelu1"] = PReLU(10)  # a new layer with the same weights' shapes
    fourth = cache(net)
    assert fourth is not third
    net.trunk.children["pool1"].ceil_mode = False  # a setting changed in place
    assert cache(net) is not fourth


def test_unknown_layers_and_heads_are_named():
    trunk = Sequential([("conv1", Conv2D(3, 4, 3)), ("squash", Softmax())])
    with pytest.raises(TypeError, match="'squash' is a Softmax"):
        BatchLast(MultiHeadNet(trunk, [("face", Conv2D(4, 2, 1))]))
    trunk = Sequential([("conv1", Conv2D(3, 4, 3)), ("prelu1", PReLU(4))])
    with pytest.raises(TypeError, match="head 'face' is a Conv2D"):
        BatchLast(MultiHeadNet(trunk, [("face", Conv2D(4, 2, 3))]))
    with pytest.raises(ValueError, match="x"):
        BatchLast(MultiHeadNet(trunk, [("face", Linear(4, 2))])).forward(np.zeros((3, 12, 12), np.float32))
