"""The module layer (Sequential and friends) and the optimizers (SGD, Adam)."""

from __future__ import annotations

import numpy as np
import pytest

from layers import (LRN, SGD, SPP, Adam, Conv2D, Dropout, Flatten, Linear, MaxPool2D, Parameter, PReLU, ReLU,
                    Sequential, Softmax, conv_backward, conv_forward, dropout_backward, dropout_forward,
                    linear_backward, linear_forward, lrn_backward, lrn_forward, maxpool_backward, maxpool_forward,
                    prelu_backward, prelu_forward, relu_backward, relu_forward, softmax_backward,
                    softmax_cross_entropy, softmax_forward, spp_backward, spp_forward)
from strategies import random_values
from tolerances import EXACT, REFERENCE_F64, assert_close

DROPOUT_SEED = 5


def make_net(seed=0, dtype=np.float32):
    """A net that uses every module: (N, 2, 9, 9) -> (N, 3) class probabilities."""
    rng = np.random.default_rng(seed)
    return Sequential([
        ("conv1", Conv2D(2, 4, 3, rng=rng, dtype=dtype)),      # 9 -> 7
        ("prelu1", PReLU(4, dtype=dtype)),
        ("pool1", MaxPool2D(3, 2, ceil_mode=True)),             # 7 -> 3
        ("norm1", LRN(size=3, alpha=0.5)),
        ("conv2", Conv2D(4, 5, 2, pad=1, rng=rng, dtype=dtype)),  # 3 -> 4
        ("relu2", ReLU()),
        ("spp", SPP((2, 1))),                                   # -> 5 * (4 + 1) = 25
        ("fc", Linear(25, 3, rng=rng, dtype=dtype)),
        ("drop", Dropout(0.5, rng=np.random.default_rng(DROPOUT_SEED))),
        ("prob", Softmax()),
    ])


N_PARAMS = (4 * 2 * 3 * 3 + 4) + 4 + (5 * 4 * 2 * 2 + 5) + (25 * 3 + 3)


def by_hand_forward(net, x):
    """The same computation as ``net.forward`` written as the function pairs, returning caches."""
    p = {name: param.value for name, param in net.named_parameters()}
    caches = []
    out, c = conv_forward(x, p["conv1.w"], p["conv1.b"]); caches.append(c)
    out, c = prelu_forward(out, p["prelu1.alpha"]); caches.append(c)
    out, c = maxpool_forward(out, 3, 2, ceil_mode=True); caches.append(c)
    out, c = lrn_forward(out, size=3, alpha=0.5); caches.append(c)
    out, c = conv_forward(out, p["conv2.w"], p["conv2.b"], stride=1, pad=1); caches.append(c)
    out, c = relu_forward(out); caches.append(c)
    out, c = spp_forward(out, (2, 1)); caches.append(c)
    out, c = linear_forward(out, p["fc.w"], p["fc.b"]); caches.append(c)
    out, c = dropout_forward(out, 0.5, training=True, rng=np.random.default_rng(DROPOUT_SEED)); caches.append(c)
    out, c = softmax_forward(out); caches.append(c)
    return out, caches


def by_hand_backward(dout, caches):
    grads = {}
    dout = softmax_backward(dout, caches[9])
    dout = dropout_backward(dout, caches[8])
    dout, grads["fc.w"], grads["fc.b"] = linear_backward(dout, caches[7])
    dout = spp_backward(dout, caches[6])
    dout = relu_backward(dout, caches[5])
    dout, grads["conv2.w"], grads["conv2.b"] = conv_backward(dout, caches[4])
    dout = lrn_backward(dout, caches[3])
    dout = maxpool_backward(dout, caches[2])
    dout, grads["prelu1.alpha"] = prelu_backward(dout, caches[1])
    dout, grads["conv1.w"], grads["conv1.b"] = conv_backward(dout, caches[0])
    return dout, grads


# ------------------------------------------------------------------------ Sequential


def test_sequential_equals_the_function_pairs_by_hand(rng):
    net = make_net()
    x = random_values((3, 2, 9, 9), rng, np.float32)
    out = net.forward(x)
    expected, caches = by_hand_forward(net, x)
    assert out.dtype == np.float32
    assert_close(out, expected, EXACT, "forward")

    dout = random_values(out.shape, rng, np.float32)
    dx = net.backward(dout)
    expected_dx, expected_grads = by_hand_backward(dout, caches)
    assert_close(dx, expected_dx, EXACT, "dx")
    for name, param in net.named_parameters():
        assert param.grad.shape == param.value.shape, name
        assert_close(param.grad, expected_grads[name], EXACT, name)


def test_backward_overwrites_gradients_instead_of_accumulating(rng):
    net = make_net()
    x = random_values((2, 2, 9, 9), rng, np.float32)
    dout = random_values((2, 3), rng, np.float32)
    net.forward(x)
    net.backward(dout)
    first = {name: p.grad.copy() for name, p in net.named_parameters()}
    net.backward(dout)  # a second backward on the same cache gives the same, not twice the, gradients
    for name, p in net.named_parameters():
        assert_close(p.grad, first[name], EXACT, name)


def test_parameters_and_names():
    net = make_net()
    names = [name for name, _ in net.named_parameters()]
    assert names == ["conv1.w", "conv1.b", "prelu1.alpha", "conv2.w", "conv2.b", "fc.w", "fc.b"]
    assert len(net.parameters()) == 7
    assert net.num_parameters() == N_PARAMS
    decays = {name: p.decay for name, p in net.named_parameters()}
    assert decays == {"conv1.w": True, "conv1.b": False, "prelu1.alpha": False, "conv2.w": True, "conv2.b": False,
                      "fc.w": True, "fc.b": False}
    assert net["conv1"].params["w"].value.shape == (4, 2, 3, 3)


def test_summary_lists_every_layer():
    net = make_net()
    text = net.summary((2, 9, 9))
    lines = text.splitlines()
    for name in net.children:
        assert any(line.startswith(name) for line in lines), name
    assert "(4, 7, 7)" in text and "(4, 3, 3)" in text and "(25,)" in text and "(3,)" in text
    assert lines[-1].startswith("total") and lines[-1].endswith(f"{N_PARAMS:,}")
    assert len(lines) == len(net.children) + 4  # header, rule, input row, one per layer, total row


def test_state_dict_roundtrip(rng):
    net, other = make_net(seed=0).eval(), make_net(seed=1).eval()
    x = random_values((2, 2, 9, 9), rng, np.float32)
    state = net.state_dict()
    assert sorted(state) == sorted(name for name, _ in net.named_parameters())
    other.load_state_dict(state)
    assert_close(other.forward(x), net.forward(x), EXACT)
    state["conv1.w"][...] = 0  # state_dict hands out copies
    assert np.any(net["conv1"].params["w"].value != 0)


def test_load_state_dict_refuses_mismatches():
    net = make_net()
    good = net.state_dict()

    wrong_shape = dict(good, **{"conv2.w": np.zeros((5, 4, 3, 3))})
    with pytest.raises(ValueError, match=r"'conv2.w' has shape \(5, 4, 3, 3\), expected \(5, 4, 2, 2\)"):
        net.load_state_dict(wrong_shape)

    missing = {k: v for k, v in good.items() if k != "fc.b"}
    with pytest.raises(ValueError, match=r"missing \['fc.b'\]"):
        net.load_state_dict(missing)

    unexpected = dict(good, **{"fc2.w": np.zeros(3)})
    with pytest.raises(ValueError, match=r"unexpected \['fc2.w'\]"):
        net.load_state_dict(unexpected)

    integers = dict(good, **{"prelu1.alpha": np.zeros(4, dtype=np.int64)})
    with pytest.raises(ValueError, match=r"'prelu1.alpha' has dtype int64"):
        net.load_state_dict(integers)


def test_backward_before_forward_raises():
    for module in (Conv2D(1, 1, 3), PReLU(2), ReLU(), MaxPool2D(), Softmax(), Linear(2, 2), Flatten(), make_net()):
        with pytest.raises(RuntimeError, match="backward called before forward"):
            module.backward(np.ones((1, 1)))


def test_zero_grad(rng):
    net = make_net()
    net.forward(random_values((2, 2, 9, 9), rng, np.float32))
    net.backward(random_values((2, 3), rng, np.float32))
    assert any(np.any(p.grad != 0) for p in net.parameters())
    for p in net.parameters():
        p.grad[...] = 1.0  # make sure every gradient has something to clear
    net.zero_grad()
    assert all(p.grad.shape == p.value.shape and np.all(p.grad == 0) for p in net.parameters())


@pytest.mark.parametrize("mode", ["eval", "p=0"])
def test_dropout_module_backward_when_nothing_is_dropped(rng, mode):
    # regression: dropout's cache is None when nothing is dropped, which the module layer used to
    # mistake for "backward called before forward"
    layer = Dropout(0.0) if mode == "p=0" else Dropout(0.5).eval()
    x = random_values((2, 3), rng)
    assert_close(layer.forward(x), x, EXACT)
    dout = random_values((2, 3), rng)
    assert_close(layer.backward(dout), dout, EXACT)


def test_train_and_eval_toggle_dropout(rng):
    net = make_net()
    x = random_values((4, 2, 9, 9), rng, np.float32)
    assert net.training and net["drop"].training
    net.eval()
    assert not net.training and not any(child.training for child in net.children.values())
    out_eval = net.forward(x)
    assert_close(net.forward(x), out_eval, EXACT, "eval is deterministic")
    no_dropout = Sequential([(name, layer) for name, layer in net.children.items() if name != "drop"])
    assert_close(no_dropout.forward(x), out_eval, EXACT, "eval dropout is the identity")
    net.forward(x)
    dout = random_values(out_eval.shape, rng, np.float32)
    assert_close(net.backward(dout), no_dropout.backward(dout), EXACT, "eval mode backpropagates too")
    net.train()
    assert net["drop"].training
    assert not np.array_equal(net.forward(x), out_eval)


def test_astype_casts_parameters_and_gradients(rng):
    net = make_net().astype(np.float64)
    assert all(p.value.dtype == np.float64 and p.grad.dtype == np.float64 for p in net.parameters())
    out = net.forward(random_values((1, 2, 9, 9), rng))
    assert out.dtype == np.float64


def test_duplicate_layer_names_are_refused():
    with pytest.raises(ValueError, match="duplicate layer name 'a'"):
        Sequential([("a", ReLU()), ("a", ReLU())])


# ------------------------------------------------------------------------ optimizers


def two_params(rng):
    """A weight (decayed) and a bias (not decayed), float64."""
    return Parameter(random_values((3, 2), rng)), Parameter(random_values((2,), rng), decay=False)


def test_sgd_two_steps_by_hand(rng):
    w, b = two_params(rng)
    lr, momentum, decay = 0.1, 0.9, 0.01
    opt = SGD([w, b], lr=lr, momentum=momentum, weight_decay=decay)
    w0, b0 = w.value.copy(), b.value.copy()
    grads = [(random_values((3, 2), rng), random_values((2,), rng)) for _ in range(2)]

    w.grad, b.grad = grads[0]
    opt.step()
    vw1 = -lr * (grads[0][0] + decay * w0)  # decay on the weight ...
    vb1 = -lr * grads[0][1]                 # ... not on the bias
    assert_close(w.value, w0 + vw1, REFERENCE_F64, "w after step 1")
    assert_close(b.value, b0 + vb1, REFERENCE_F64, "b after step 1")

    w.grad, b.grad = grads[1]
    opt.step()
    vw2 = momentum * vw1 - lr * (grads[1][0] + decay * (w0 + vw1))
    vb2 = momentum * vb1 - lr * grads[1][1]
    assert_close(w.value, w0 + vw1 + vw2, REFERENCE_F64, "w after step 2")
    assert_close(b.value, b0 + vb1 + vb2, REFERENCE_F64, "b after step 2")
    assert opt.steps == 2


def test_adam_two_steps_by_hand(rng):
    w, b = two_params(rng)
    lr, beta1, beta2, eps = 0.01, 0.9, 0.999, 1e-8
    opt = Adam([w, b], lr=lr, betas=(beta1, beta2), eps=eps)
    grads = [(random_values((3, 2), rng), random_values((2,), rng)) for _ in range(2)]
    expected = {}  # name -> value after step 1, after step 2
    for name, p, index in (("w", w, 0), ("b", b, 1)):
        value = p.value.copy()
        m = np.zeros_like(value)
        v = np.zeros_like(value)
        expected[name] = []
        for t, g in enumerate((grads[0][index], grads[1][index]), start=1):
            m = beta1 * m + (1 - beta1) * g
            v = beta2 * v + (1 - beta2) * g * g
            m_hat, v_hat = m / (1 - beta1 ** t), v / (1 - beta2 ** t)
            value = value - lr * m_hat / (np.sqrt(v_hat) + eps)
            expected[name].append(value)
    for t in range(2):
        w.grad, b.grad = grads[t]
        opt.step()
        assert_close(w.value, expected["w"][t], REFERENCE_F64, f"w after step {t + 1}")
        assert_close(b.value, expected["b"][t], REFERENCE_F64, f"b after step {t + 1}")


def fixed_batch():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((6, 2, 9, 9)).astype(np.float32)
    labels = np.array([0, 1, 2, 0, 1, 2])
    return x, labels


def train_steps(net, opt, steps):
    x, labels = fixed_batch()
    losses = []
    for _ in range(steps):
        logits = net.forward(x)
        loss, dlogits = softmax_cross_entropy(logits, labels)
        net.backward(dlogits)
        opt.step()
        losses.append(loss)
    return losses


def logits_net(seed):
    """make_net without dropout and softmax: its output feeds softmax_cross_entropy."""
    net = make_net(seed)
    return Sequential([(n, layer) for n, layer in net.children.items() if n not in ("drop", "prob")])


@pytest.mark.parametrize("make_optimizer", [
    lambda params: SGD(params, lr=0.05, momentum=0.9, weight_decay=5e-4),
    lambda params: Adam(params, lr=1e-2, weight_decay=1e-4),
], ids=["SGD", "Adam"])
def test_resume_from_state_dicts_gives_the_uninterrupted_run(make_optimizer):
    straight = logits_net(seed=0)
    straight_opt = make_optimizer(straight.parameters())
    train_steps(straight, straight_opt, 4)

    first = logits_net(seed=0)
    first_opt = make_optimizer(first.parameters())
    train_steps(first, first_opt, 2)
    net_state, opt_state = first.state_dict(), first_opt.state_dict()
    train_steps(first, first_opt, 3)  # the saved state must not follow the live objects

    resumed = logits_net(seed=99)  # a differently initialized net: everything comes from the state
    resumed_opt = make_optimizer(resumed.parameters())
    resumed.load_state_dict(net_state)
    resumed_opt.load_state_dict(opt_state)
    assert resumed_opt.steps == 2
    train_steps(resumed, resumed_opt, 2)
    for (name, p), (_, q) in zip(resumed.named_parameters(), straight.named_parameters()):
        assert_close(p.value, q.value, EXACT, name)


def test_optimizer_state_with_a_wrong_shape_is_refused(rng):
    w, b = two_params(rng)
    opt = SGD([w, b])
    state = opt.state_dict()
    state["velocity.1"] = np.zeros(3)
    with pytest.raises(ValueError, match=r"velocity.1 has shape \(3,\), expected \(2,\)"):
        opt.load_state_dict(state)


@pytest.mark.parametrize("make_optimizer, steps", [
    (lambda params: SGD(params, lr=0.1, momentum=0.9), 100),
    (lambda params: Adam(params, lr=0.1), 200),
], ids=["SGD", "Adam"])
def test_optimizers_reduce_a_quadratic(make_optimizer, steps):
    # f(w) = 1/2 sum(a * (w - t)^2), a badly scaled bowl with its minimum at t
    a = np.array([1.0, 4.0, 0.5, 2.0])
    t = np.array([1.0, -2.0, 3.0, 0.5])
    p = Parameter(np.zeros(4))
    opt = make_optimizer([p])

    def f():
        return 0.5 * float(np.sum(a * (p.value - t) ** 2))

    start = f()
    for _ in range(steps):
        p.grad = a * (p.value - t)
        opt.step()
    assert f() < 1e-3 * start, f"f went from {start} to {f()}"


def test_optimizer_zero_grad_and_bad_lr(rng):
    w, b = two_params(rng)
    w.grad, b.grad = np.ones((3, 2)), np.ones(2)
    SGD([w, b]).zero_grad()
    assert np.all(w.grad == 0) and np.all(b.grad == 0)
    with pytest.raises(ValueError, match="learning rate must be > 0, got 0"):
        Adam([w], lr=0)
