"""The gradient checker itself: it must pass right backward passes, catch wrong ones with a report
a human can act on, and leave its inputs exactly as it found them."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from layers import (Conv2D, Sequential, ReLU, conv_backward, conv_forward, relu_backward, relu_forward,
                    softmax_cross_entropy)
from layers import gradcheck
from layers.gradcheck import (assert_gradients_ok, check_gradients, check_loss, check_module, check_op,
                              directional_derivative, format_report, numerical_gradient, relative_error)
from strategies import distinct_values, random_values
from tolerances import BROKEN_BACKWARD_MIN_ERROR, EXACT, GRADCHECK, REFERENCE_F64, assert_close

# ------------------------------------------------------------------------ relative error


@pytest.mark.parametrize("a, b, expected", [
    (1.0, 1.1, 0.1 / 2.1),
    (3.0, 3.0, 0.0),
    (-1.0, 1.0, 1.0),           # opposite signs: the largest possible error
    (2.0, 0.0, 1.0),
    (0.0, 0.0, 0.0),            # the guard: no 0/0
    (1e-7, 0.0, 1e-7 / 1e-4),   # below eps, compared against eps instead
    (1e-3, 1.001e-3, 1e-6 / 2.001e-3),
])
def test_relative_error_by_hand(a, b, expected):
    assert gradcheck.EPS == 1e-4
    assert_close(relative_error(a, b), np.array(expected), REFERENCE_F64, f"relative_error({a}, {b})")


def test_relative_error_is_elementwise_and_symmetric():
    a = np.array([[1.0, 2.0], [0.0, -4.0]])
    b = np.array([[1.0, 1.0], [0.0, 4.0]])
    expected = np.array([[0.0, 1.0 / 3.0], [0.0, 1.0]])
    assert_close(relative_error(a, b), expected, REFERENCE_F64)
    assert_close(relative_error(b, a), expected, REFERENCE_F64)


# ------------------------------------------------------------------------ right answers pass


def test_numerical_gradient_of_a_quadratic(rng):
    x = random_values((3, 4), rng)
    numeric = numerical_gradient(lambda: float(np.sum(x ** 2)), x)
    assert relative_error(numeric, 2 * x).max() < GRADCHECK


def test_float32_inputs_are_checked_in_float64_and_left_alone(rng):
    x = distinct_values((2, 5), rng, dtype=np.float32)
    before = x.copy()
    results = check_op("relu", relu_forward, relu_backward, {"x": x})
    assert_gradients_ok(results)
    assert x.dtype == np.float32 and np.array_equal(x, before)
    assert "ok" in results[0].report() and "FAILED" not in results[0].report()


# ------------------------------------------------------------------------ wrong answers are caught


def relu_backward_without_mask(dout, cache):
    """A classic mistake: pass the gradient through everywhere."""
    return dout


def test_relu_backward_without_mask_is_caught_with_a_useful_report(rng):
    x = distinct_values((3, 4), rng)  # half of it negative, where the mask matters
    [result] = check_op("relu", relu_forward, relu_backward_without_mask, {"x": x}, seed=17)
    assert not result.passed
    assert result.rel_error == 1.0  # analytic dout vs numeric 0: the largest possible relative error
    assert x[result.worst_index] < 0, "the worst entry must be one the mask should have zeroed"
    dout = np.random.default_rng(17).standard_normal(x.shape)  # check_op's dout for seed 17
    assert result.analytic == dout[result.worst_index] and result.numeric == 0.0
    report = result.report()
    for piece in ("relu", "d/dx", "(3, 4)", "FAILED", f"at index {result.worst_index}",
                  f"analytic {result.analytic:.10g}", "numeric 0", "seed 17"):
        assert piece in report, f"{piece!r} missing from the report:\n{report}"
    with pytest.raises(AssertionError, match="gradient check failed") as error:
        assert_gradients_ok([result])
    assert report in str(error.value)


def conv_backward_dx_scaled(dout, cache):
    """A subtle mistake: dx off by 1 %."""
    dx, dw, db = conv_backward(dout, cache)
    return 1.01 * dx, dw, db


@pytest.mark.parametrize("full", [True, False], ids=["full", "direction"])
def test_conv_backward_off_by_one_percent_is_caught(rng, full):
    inputs = {"x": random_values((1, 2, 5, 5), rng), "w": random_values((2, 2, 3, 3), rng),
              "b": random_values((2,), rng)}
    results = check_op("conv", conv_forward, conv_backward_dx_scaled, inputs, hyper=dict(pad=1), full=full, seed=3)
    by_name = {r.input_name: r for r in results}
    assert not by_name["x"].passed and by_name["w"].passed and by_name["b"].passed
    assert by_name["x"].rel_error > BROKEN_BACKWARD_MIN_ERROR
    # the numeric side is right to within GRADCHECK, so the analytic side is 1.01 times it
    assert relative_error(by_name["x"].analytic, 1.01 * by_name["x"].numeric) < GRADCHECK
    report = format_report(results)
    assert "conv: d/dx" in report and "FAILED" in report and "seed 3" in report
    assert ("at index" in report) if full else ("along a random direction" in report)


def test_check_loss_catches_a_gradient_missing_the_mean(rng):
    def loss_without_mean(logits, labels):
        loss, dlogits = softmax_cross_entropy(logits, labels)
        return loss, dlogits * len(labels)  # forgot the 1/N

    logits, labels = random_values((4, 3), rng), np.array([0, 1, 2, 0])
    [result] = check_loss("softmax_cross_entropy", loss_without_mean, logits, labels)
    assert not result.passed and "FAILED" in result.report()


def test_check_module_catches_a_wrong_module_backward(rng):
    class LeakyBackwardReLU(ReLU):
        def backward(self, dout):
            return dout  # forgets the mask

    net = Sequential([("conv", Conv2D(1, 2, 2, rng=rng, dtype=np.float64)), ("relu", LeakyBackwardReLU())])
    net["conv"].params["b"].value[...] = [0.3, -0.3]
    results = check_module("net", net, distinct_values((2, 1, 4, 4), rng))
    assert not all(r.passed for r in results)
    assert {r.input_name for r in results} == {"x", "conv.w", "conv.b"}


# ------------------------------------------------------------------------ inputs are restored


def test_numerical_gradient_restores_the_input_bit_for_bit(rng):
    x = random_values((3, 3), rng) * 1e3  # big values: x + h - h would not round-trip
    before = x.copy()
    numerical_gradient(lambda: float(np.sum(np.sin(x))), x)
    assert_close(x, before, EXACT)
    directional_derivative(lambda: float(np.sum(np.sin(x))), x, random_values((3, 3), rng))
    assert_close(x, before, EXACT)


def failing_on_call(n, x):
    """A scalar function of x that raises on its n-th call (after x has been perturbed)."""
    calls = []

    def f():
        calls.append(1)
        if len(calls) == n:
            raise RuntimeError("boom")
        return float(np.sum(x))
    return f


def test_input_is_restored_even_when_the_function_fails(rng):
    x = random_values((4,), rng)
    before = x.copy()
    with pytest.raises(RuntimeError, match="boom"):
        numerical_gradient(failing_on_call(3, x), x)  # fails on entry 1's "+h" evaluation
    assert_close(x, before, EXACT)
    with pytest.raises(RuntimeError, match="boom"):
        directional_derivative(failing_on_call(2, x), x, np.ones(4))  # fails on the "-h" side
    assert_close(x, before, EXACT)


def test_check_gradients_and_check_module_restore_arrays_they_were_given(rng):
    x = random_values((2, 3), rng)
    before = x.copy()
    check_gradients("square", lambda: float(np.sum(x ** 2)), {"x": 2 * x}, {"x": x})
    check_gradients("square", lambda: float(np.sum(x ** 2)), {"x": 2 * x}, {"x": x}, full=False)
    assert_close(x, before, EXACT)

    net = Sequential([("conv", Conv2D(1, 2, 2, rng=rng, dtype=np.float64))])
    params_before = {name: p.value.copy() for name, p in net.named_parameters()}
    assert_gradients_ok(check_module("conv", net, random_values((1, 1, 3, 3), rng)))
    for name, p in net.named_parameters():
        assert_close(p.value, params_before[name], EXACT, name)


def test_check_module_refuses_a_float32_net_with_a_clear_message(rng):
    net = Sequential([("conv", Conv2D(1, 2, 3, rng=rng)), ("relu", ReLU())])  # float32, as nets are built
    with pytest.raises(ValueError, match=r"check_module needs float64 parameters.*conv.w \(float32\).*"
                                         r"copy.deepcopy\(module\).astype\(np.float64\)"):
        check_module("net", net, random_values((1, 1, 4, 4), rng))
    copy_64 = copy.deepcopy(net).astype(np.float64)
    assert_gradients_ok(check_module("net", copy_64, distinct_values((1, 1, 4, 4), rng)))
    assert net.params == {} and net["conv"].params["w"].value.dtype == np.float32  # the original is untouched
