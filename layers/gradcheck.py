"""Numerical gradient checks: the proof that each hand-written backward pass is right.

The idea: a backward pass claims dL/dx for L = sum(out * dout) with a random dout. Central
differences measure the same thing directly,

    dL/dx[i] ~ (L(x + h e_i) - L(x - h e_i)) / (2h),

and the two must agree. Rules that make the check trustworthy (the practice of CS231n's
gradient_check.py and Chainer's gradient_check.py, whose numeric gradients are always float64):

* always float64: a float32 number keeps about 7 digits, so with h = 1e-6 the difference
  f(x + h) - f(x - h) loses almost all of them (``np.float32(45) + np.float32(1e-6)`` is
  ``np.float32(45)``); `check_op` and `check_loss` cast their inputs to float64 copies, and
  `check_module` refuses a module whose parameters are not float64;
* h = 1e-6, the perturbed entry is always restored;
* relative error |a - b| / max(eps, |a| + |b|), eps guarding entries whose gradient is ~0;
* the *full* check perturbs every entry (tiny shapes); the *direction* check perturbs all
  entries at once along one random unit direction v and compares the directional derivative
  with <analytic gradient, v> (one pair of forward passes, for larger shapes);
* inputs are kept off kinks (ReLU at 0) and ties (max pooling) by the caller.

On failure the result's ``report()`` names the op, input, shape, worst index, both values and
the seed, so a human can reproduce it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np

H = 1e-6
# Relative error allowed between analytic and numeric gradients in float64. With h = 1e-6 the
# truncation error is ~h^2 = 1e-12 and rounding ~1e-16 * |L| / h ~ 1e-9 for |L| ~ 10, so a
# correct backward lands near 1e-8 and a wrong one near 1e-1; 1e-5 sits safely between.
TOLERANCE = 1e-5
# Entries with |a| + |b| below EPS are compared as absolute differences (relative to EPS):
# their relative error would only measure rounding noise, which is ~1e-10 in absolute terms
# for losses of order 10 (so 1e-10 / EPS stays far below TOLERANCE), while a wrong gradient of
# that size is still off by ~1e-5 / EPS = 0.1.
EPS = 1e-4


def relative_error(a, b, eps: float = EPS) -> np.ndarray:
    """Elementwise |a - b| / max(eps, |a| + |b|)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return np.abs(a - b) / np.maximum(eps, np.abs(a) + np.abs(b))


def numerical_gradient(f: Callable[[], float], x: np.ndarray, h: float = H) -> np.ndarray:
    """Central-difference gradient of the scalar f() with respect to every entry of x.

    x is perturbed *in place* (f reads it) and restored after each entry, even on error.
    Returns an array shaped like x (float64).
    """
    grad = np.zeros(x.shape, dtype=np.float64)
    it = np.nditer(x, flags=["multi_index"], op_flags=["readwrite"])
    for _ in it:
        i = it.multi_index
        original = x[i]
        try:
            x[i] = original + h
            plus = f()
            x[i] = original - h
            minus = f()
        finally:
            x[i] = original
        grad[i] = (plus - minus) / (2 * h)
    return grad


def directional_derivative(f: Callable[[], float], x: np.ndarray, v: np.ndarray, h: float = H) -> float:
    """(f(x + h v) - f(x - h v)) / (2h), perturbing x in place and restoring it."""
    original = x.copy()
    try:
        x += h * v
        plus = f()
        x[...] = original - h * v
        minus = f()
    finally:
        x[...] = original
    return (plus - minus) / (2 * h)


@dataclass
class GradcheckResult:
    """Outcome of checking one input (or parameter) of one op."""

    op: str
    input_name: str
    shape: tuple
    rel_error: float
    passed: bool
    mode: str  # "full" or "direction"
    worst_index: tuple | None
    analytic: float
    numeric: float
    seed: int

    def report(self) -> str:
        status = "ok" if self.passed else "FAILED"
        text = (f"{self.op}: d/d{self.input_name} {self.shape} {self.mode} check "
                f"rel. error {self.rel_error:.2e} (tolerance {TOLERANCE:.0e}) {status}")
        if not self.passed:
            where = f"at index {self.worst_index}" if self.worst_index is not None else "along a random direction"
            text += (f"\n  {where}: analytic {self.analytic:.10g} vs numeric {self.numeric:.10g}"
                     f" (seed {self.seed})")
        return text


def _compare(op, name, analytic, numeric, mode, seed, tol) -> GradcheckResult:
    analytic = np.asarray(analytic, dtype=np.float64)
    numeric = np.asarray(numeric, dtype=np.float64)
    if analytic.shape != numeric.shape:
        raise ValueError(f"{op}: gradient for {name} has shape {analytic.shape}, expected {numeric.shape}")
    errors = relative_error(analytic, numeric)
    worst = int(np.argmax(errors)) if errors.size else 0
    index = np.unravel_index(worst, errors.shape) if errors.ndim else None
    rel = float(errors.flat[worst]) if errors.size else 0.0
    return GradcheckResult(
        op=op, input_name=name, shape=tuple(numeric.shape) if mode == "full" else tuple(),
        rel_error=rel, passed=bool(rel < tol), mode=mode,
        worst_index=tuple(int(i) for i in index) if (mode == "full" and index is not None) else None,
        analytic=float(analytic.flat[worst]) if analytic.size else 0.0,
        numeric=float(numeric.flat[worst]) if numeric.size else 0.0, seed=seed)


def check_gradients(op: str, scalar_fn: Callable[[], float], grads: Mapping[str, np.ndarray],
                    arrays: Mapping[str, np.ndarray], full: bool = True, seed: int = 0,
                    tol: float = TOLERANCE) -> list[GradcheckResult]:
    """Compare analytic ``grads[name]`` with numeric gradients of scalar_fn() w.r.t. ``arrays[name]``.

    scalar_fn must read the float64 arrays in ``arrays`` (which are perturbed in place).
    full=True checks every entry; full=False checks one random unit direction per array.
    """
    rng = np.random.default_rng(seed)
    results = []
    for name, x in arrays.items():
        if full:
            numeric = numerical_gradient(scalar_fn, x)
            result = _compare(op, name, grads[name], numeric, "full", seed, tol)
            result.shape = tuple(x.shape)
        else:
            v = rng.standard_normal(x.shape)
            v /= np.linalg.norm(v) or 1.0
            numeric = directional_derivative(scalar_fn, x, v)
            analytic = float(np.sum(np.asarray(grads[name], dtype=np.float64) * v))
            result = _compare(op, name, analytic, numeric, "direction", seed, tol)
            result.shape = tuple(x.shape)
        results.append(result)
    return results


def check_op(op: str, forward: Callable, backward: Callable, inputs: Mapping[str, np.ndarray],
             hyper: Mapping | None = None, full: bool = True, seed: int = 0,
             tol: float = TOLERANCE) -> list[GradcheckResult]:
    """Gradient check of a layer pair ``forward(*inputs, **hyper) -> (out, cache)`` and
    ``backward(dout, cache) -> dx`` or ``(dx, dparam1, ...)`` in the order of ``inputs``.

    inputs: name -> array, in the forward's argument order (cast to float64 copies here).
    L = sum(out * dout) for a fixed random dout drawn with ``seed``.
    """
    hyper = dict(hyper or {})
    arrays = {name: np.array(value, dtype=np.float64) for name, value in inputs.items()}
    out, cache = forward(*arrays.values(), **hyper)
    dout = np.random.default_rng(seed).standard_normal(np.shape(out))
    analytic = backward(dout, cache)
    if not isinstance(analytic, tuple):
        analytic = (analytic,)
    if len(analytic) != len(arrays):
        raise ValueError(f"{op}: backward returned {len(analytic)} gradients for {len(arrays)} inputs")
    grads = {name: np.array(g, dtype=np.float64) for name, g in zip(arrays, analytic)}

    def scalar_fn() -> float:
        return float(np.sum(forward(*arrays.values(), **hyper)[0] * dout))

    return check_gradients(op, scalar_fn, grads, arrays, full=full, seed=seed, tol=tol)


def check_loss(op: str, loss_fn: Callable, x: np.ndarray, *args, full: bool = True, seed: int = 0,
               tol: float = TOLERANCE, **kwargs) -> list[GradcheckResult]:
    """Gradient check of a loss ``loss_fn(x, *args, **kwargs) -> (loss, dx)`` w.r.t. x."""
    x = np.array(x, dtype=np.float64)
    _, dx = loss_fn(x, *args, **kwargs)
    return check_gradients(op, lambda: loss_fn(x, *args, **kwargs)[0], {"x": dx}, {"x": x},
                           full=full, seed=seed, tol=tol)


def check_module(op: str, module, x: np.ndarray, loss_fn: Callable | None = None, full: bool = True,
                 seed: int = 0, tol: float = TOLERANCE) -> list[GradcheckResult]:
    """Gradient check of a whole module (or net): its input and every parameter.

    The module's parameters must be float64, else ValueError: a float32 net would report
    false failures. Check a float64 copy, e.g. ``copy.deepcopy(net).astype(np.float64)``
    (``astype`` changes the module it is called on). x is cast to a float64 copy.
    loss_fn(out) -> (loss, dout) closes the net; default: sum(out * random dout), also for
    nets whose forward returns a dict of head outputs (then dout is a dict too).
    """
    not_float64 = [f"{name} ({param.value.dtype})" for name, param in module.named_parameters()
                   if param.value.dtype != np.float64]
    if not_float64:
        shown = ", ".join(not_float64[:3]) + (", ..." if len(not_float64) > 3 else "")
        raise ValueError(
            f"{op}: check_module needs float64 parameters (float32 finite differences give false "
            f"failures); not float64: {shown}. Check a float64 copy: "
            "copy.deepcopy(module).astype(np.float64)")
    x = np.array(x, dtype=np.float64)
    if loss_fn is None:
        rng = np.random.default_rng(seed)
        out = module.forward(x)
        if isinstance(out, dict):
            fixed = {name: rng.standard_normal(np.shape(value)) for name, value in out.items()}

            def loss_fn(out):
                return float(sum(np.sum(out[name] * fixed[name]) for name in fixed)), fixed
        else:
            fixed = rng.standard_normal(np.shape(out))

            def loss_fn(out):
                return float(np.sum(out * fixed)), fixed

    _, dout = loss_fn(module.forward(x))
    dx = module.backward(dout)
    arrays = {"x": x}
    grads = {"x": dx}
    for name, param in module.named_parameters():
        arrays[name] = param.value
        grads[name] = param.grad.copy()
    return check_gradients(op, lambda: loss_fn(module.forward(x))[0], grads, arrays, full=full, seed=seed, tol=tol)


def format_report(results: Sequence[GradcheckResult]) -> str:
    """Human-readable lines, one per result, failures with their details."""
    return "\n".join(r.report() for r in results)


def assert_gradients_ok(results: Sequence[GradcheckResult]) -> None:
    """Raise AssertionError with the full report if any result failed."""
    if not all(r.passed for r in results):
        raise AssertionError("gradient check failed:\n" + format_report(results))
