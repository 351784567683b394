"""Losses. Each returns (loss, dinput): a Python float and the gradient of the loss with
respect to its first argument, so a training step is ``loss, dout = loss_fn(...)`` and then
the net's backward pass on dout.

Per-sample weights (N,) >= 0 switch samples on and off (0 = ignore), as MTCNN's sample-type
indicators: a part face has no face/non-face label, a negative has no box target. The mean is
taken over the weight total; when every weight is 0 the loss is 0 with a zero gradient.
"""

from __future__ import annotations

import numpy as np

from .checks import require_float
from .softmax import softmax


def _sample_weights(weights, N, dtype):
    if weights is None:
        return np.ones(N, dtype=dtype)
    weights = np.asarray(weights, dtype=dtype)
    if weights.shape != (N,):
        raise ValueError(f"weights must have shape ({N},), got {weights.shape}")
    if np.any(weights < 0):
        raise ValueError("weights must be >= 0")
    return weights


def softmax_cross_entropy_per_sample(logits, labels):
    """logits: (N, K) float; labels: (N,) ints in [0, K). Returns (N,) -log softmax(logits)[label]
    and the probabilities (N, K). Labels of ignored samples may be anything; pass them
    through ``np.where(weights > 0, labels, 0)`` first."""
    probs = softmax(logits)
    N = logits.shape[0]
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))  # stable log-softmax
    return -log_probs[np.arange(N), labels], probs


def softmax_cross_entropy(logits, labels, weights=None):
    """Fused softmax + cross-entropy.

    logits: (N, K) float; labels: (N,) ints in [0, K) (free where the weight is 0);
    weights: optional (N,) >= 0. loss = sum_i w_i * -log p_i[labels_i] / sum_i w_i.
    Returns (loss, dlogits) with dlogits (N, K) = w_i * (p_i - onehot_i) / sum(w).
    """
    logits = require_float(logits, "logits")
    if logits.ndim != 2:
        raise ValueError(f"logits must have shape (N, K), got {logits.shape}")
    N, K = logits.shape
    labels = np.asarray(labels)
    if labels.shape != (N,) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be integers of shape ({N},), got {labels.dtype} {labels.shape}")
    w = _sample_weights(weights, N, logits.dtype)
    used = w > 0
    if np.any((labels[used] < 0) | (labels[used] >= K)):
        raise ValueError(f"labels of weighted samples must lie in [0, {K}), got {np.unique(labels[used])}")
    safe_labels = np.where(used, labels, 0)
    per_sample, probs = softmax_cross_entropy_per_sample(logits, safe_labels)
    total = w.sum()
    if total == 0:
        return 0.0, np.zeros_like(logits)
    loss = float((w * per_sample).sum() / total)
    dlogits = probs.copy()
    dlogits[np.arange(N), safe_labels] -= 1
    dlogits *= (w / total)[:, None]
    return loss, dlogits


def euclidean_loss(pred, target, weights=None):
    """Squared L2 distance per sample, averaged over the weighted samples.

    pred, target: (N, D) float (boxes D=4, landmarks D=10); weights: optional (N,) >= 0.
    loss = sum_i w_i * ||pred_i - target_i||^2 / sum_i w_i.
    Returns (loss, dpred) with dpred = 2 * w_i * (pred_i - target_i) / sum(w).
    """
    pred = require_float(pred, "pred")
    target = np.asarray(target, dtype=pred.dtype)
    if pred.ndim != 2 or target.shape != pred.shape:
        raise ValueError(f"pred and target must both be (N, D), got {pred.shape} and {target.shape}")
    w = _sample_weights(weights, pred.shape[0], pred.dtype)
    total = w.sum()
    if total == 0:
        return 0.0, np.zeros_like(pred)
    diff = pred - target
    used = w > 0  # ignored samples may carry NaN targets; keep them out of the sum
    diff = np.where(used[:, None], diff, 0)
    loss = float((w * (diff * diff).sum(axis=1)).sum() / total)
    return loss, (2.0 / total) * w[:, None] * diff


def ohem_weights(per_sample_losses, keep: float = 0.7, valid=None):
    """Online hard example mining (MTCNN): 0/1 weights that keep the hardest samples.

    per_sample_losses: (N,) float; keep in (0, 1]: fraction to keep; valid: optional (N,) bool,
    the samples that take part (e.g. positives and negatives for the face task).
    Keeps the floor(keep * N_valid) largest losses among the valid samples (at least one when
    any is valid); ties are broken by the lower index. Returns (N,) float weights of 0 and 1.
    """
    losses = np.asarray(per_sample_losses, dtype=np.float64)
    if losses.ndim != 1:
        raise ValueError(f"per_sample_losses must have shape (N,), got {losses.shape}")
    if not 0.0 < keep <= 1.0:
        raise ValueError(f"keep must be in (0, 1], got {keep}")
    valid = np.ones(losses.shape, dtype=bool) if valid is None else np.asarray(valid, dtype=bool)
    if valid.shape != losses.shape:
        raise ValueError(f"valid must have shape {losses.shape}, got {valid.shape}")
    candidates = np.flatnonzero(valid)
    # floor(keep * n) with a little slack: in floating point 0.7 * 90 is 62.99999999999999
    n_keep = max(1, int(keep * candidates.size + 1e-9)) if candidates.size else 0
    order = candidates[np.argsort(-losses[candidates], kind="stable")]
    weights = np.zeros(losses.shape, dtype=np.float32)
    weights[order[:n_keep]] = 1.0
    return weights
