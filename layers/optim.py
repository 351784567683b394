"""Optimizers. They read ``param.grad`` and update ``param.value`` in place; ``step()`` is the
only thing in the library that changes parameters.

SGD with momentum and weight decay, as in Caffe (and the MTCNN and Cascade-CNN recipes):

    v <- momentum * v - lr * (grad + weight_decay * value)      (decay only where param.decay)
    value <- value + v

Adam (Kingma and Ba), with bias-corrected first and second moments.
Both have ``state_dict()`` / ``load_state_dict()`` so training can resume exactly.
"""

from __future__ import annotations

import numpy as np


class Optimizer:
    """Base: params (a list of Parameter), lr > 0, weight_decay (L2, on params with decay=True)."""

    def __init__(self, params, lr: float, weight_decay: float = 0.0):
        self.params = list(params)
        if lr <= 0:
            raise ValueError(f"learning rate must be > 0, got {lr}")
        self.lr = lr
        self.weight_decay = weight_decay
        self.steps = 0

    def _grad(self, p) -> np.ndarray:
        if self.weight_decay and p.decay:
            return p.grad + self.weight_decay * p.value
        return p.grad

    def zero_grad(self) -> None:
        """Set every parameter's gradient to 0."""
        for p in self.params:
            p.grad[...] = 0

    def state_dict(self) -> dict[str, np.ndarray]:
        """The optimizer's slots (velocities or moments), step count and lr, as arrays."""
        raise NotImplementedError

    def load_state_dict(self, state: dict) -> None:
        """Restore what ``state_dict`` returned (shapes are checked), to resume training."""
        raise NotImplementedError

    def _load_slots(self, state, names):
        for name in names:
            for i, slot in enumerate(getattr(self, name)):
                value = np.asarray(state[f"{name}.{i}"])
                if value.shape != slot.shape:
                    raise ValueError(f"optimizer state {name}.{i} has shape {value.shape}, expected {slot.shape}")
                slot[...] = value
        self.steps = int(state["steps"])
        self.lr = float(state["lr"])


class SGD(Optimizer):
    """Stochastic gradient descent with (Caffe-style) momentum and L2 weight decay."""

    def __init__(self, params, lr: float = 0.01, momentum: float = 0.9, weight_decay: float = 0.0):
        super().__init__(params, lr, weight_decay)
        self.momentum = momentum
        self.velocity = [np.zeros_like(p.value) for p in self.params]

    def step(self) -> None:
        """One update of every parameter from its current gradient."""
        for p, v in zip(self.params, self.velocity):
            v *= self.momentum
            v -= self.lr * self._grad(p)
            p.value += v
        self.steps += 1

    def state_dict(self):
        state = {f"velocity.{i}": v.copy() for i, v in enumerate(self.velocity)}
        state.update(steps=np.array(self.steps), lr=np.array(self.lr))
        return state

    def load_state_dict(self, state):
        self._load_slots(state, ["velocity"])


class Adam(Optimizer):
    """Adam: per-entry step sizes from running averages of the gradient and its square."""

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0):
        super().__init__(params, lr, weight_decay)
        self.beta1, self.beta2 = betas
        self.eps = eps
        self.m = [np.zeros_like(p.value) for p in self.params]
        self.v = [np.zeros_like(p.value) for p in self.params]

    def step(self) -> None:
        """One update of every parameter from its current gradient."""
        self.steps += 1
        correction1 = 1 - self.beta1 ** self.steps
        correction2 = 1 - self.beta2 ** self.steps
        for p, m, v in zip(self.params, self.m, self.v):
            g = self._grad(p)
            m *= self.beta1
            m += (1 - self.beta1) * g
            v *= self.beta2
            v += (1 - self.beta2) * g * g
            p.value -= (self.lr / correction1) * m / (np.sqrt(v / correction2) + self.eps)

    def state_dict(self):
        state = {f"m.{i}": m.copy() for i, m in enumerate(self.m)}
        state.update({f"v.{i}": v.copy() for i, v in enumerate(self.v)})
        state.update(steps=np.array(self.steps), lr=np.array(self.lr))
        return state

    def load_state_dict(self, state):
        self._load_slots(state, ["m", "v"])
