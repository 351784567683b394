"""Losses: softmax cross-entropy (with per-sample weights and ignored samples), Euclidean loss,
and online hard example mining."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from layers import euclidean_loss, ohem_weights, softmax_cross_entropy, softmax_cross_entropy_per_sample
from layers.gradcheck import assert_gradients_ok, check_loss
from strategies import distinct_arrays, random_values
from tolerances import EXACT, FLOAT32_FORWARD, REFERENCE_F64, assert_close

# ------------------------------------------------------------------------ softmax cross-entropy


def test_uniform_logits_give_log_k():
    N, K = 4, 5
    labels = np.array([0, 1, 4, 2])
    loss, dlogits = softmax_cross_entropy(np.zeros((N, K)), labels)
    assert_close(np.array(loss), np.array(np.log(K)), REFERENCE_F64)
    expected = (np.full((N, K), 1 / K) - np.eye(K)[labels]) / N  # (p - onehot) / N
    assert_close(dlogits, expected, REFERENCE_F64)


def test_weighted_mean_by_hand():
    logits = np.array([[2.0, 0.0], [0.0, 1.0], [5.0, -5.0]])
    labels = np.array([0, 0, -1])  # the third sample is ignored: its label may be anything
    weights = np.array([1.0, 3.0, 0.0])
    log_p = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    expected = -(1.0 * log_p[0, 0] + 3.0 * log_p[1, 0]) / 4.0
    loss, dlogits = softmax_cross_entropy(logits, labels, weights)
    assert_close(np.array(loss), np.array(expected), REFERENCE_F64)
    assert_close(dlogits[2], np.zeros(2), EXACT, "ignored sample's gradient")


@pytest.mark.parametrize("weights, labels", [
    (None, [0, 2, 1, 2]),
    ([1.0, 0.0, 2.5, 0.5], [0, -1, 1, 2]),  # a zero weight with the "no label" marker -1
    ([0.0, 0.0, 1.0, 0.0], [-1, -1, 2, -1]),  # a single sample counts
])
def test_softmax_cross_entropy_gradcheck(rng, weights, labels):
    logits = random_values((4, 3), rng) * 2
    results = check_loss("softmax_cross_entropy", softmax_cross_entropy, logits, np.array(labels),
                         None if weights is None else np.array(weights), seed=12)
    assert_gradients_ok(results)


def test_softmax_cross_entropy_gradcheck_direction_larger(rng):
    logits = random_values((256, 2), rng) * 3  # an R-Net batch
    labels = rng.integers(0, 2, size=256)
    weights = (rng.random(256) < 0.6).astype(np.float64)
    labels = np.where(weights > 0, labels, -1)
    for seed in range(2):
        assert_gradients_ok(check_loss("softmax_cross_entropy", softmax_cross_entropy, logits, labels, weights,
                                       full=False, seed=seed))


def test_ignored_samples_change_nothing(rng):
    logits = random_values((5, 3), rng)
    labels = np.array([0, -1, 2, 1, -1])
    weights = np.array([1.0, 0.0, 1.0, 1.0, 0.0])
    loss, dlogits = softmax_cross_entropy(logits, labels, weights)
    other = logits.copy()
    other[[1, 4]] = random_values((2, 3), rng) * 100  # whatever the net says about ignored samples
    loss2, dlogits2 = softmax_cross_entropy(other, labels, weights)
    assert loss2 == loss
    assert_close(dlogits2, dlogits, EXACT)
    # and they count as if they were not there at all
    kept = weights > 0
    loss3, dlogits3 = softmax_cross_entropy(logits[kept], labels[kept])
    assert_close(np.array(loss3), np.array(loss), REFERENCE_F64)
    assert_close(dlogits[kept], dlogits3, REFERENCE_F64)


def test_all_zero_weights_give_zero_loss_and_gradient():
    loss, dlogits = softmax_cross_entropy(np.ones((3, 2)), np.array([-1, -1, -1]), np.zeros(3))
    assert loss == 0.0
    assert_close(dlogits, np.zeros((3, 2)), EXACT)


def test_per_sample_losses_and_large_logits():
    logits = np.array([[1e4, 0.0], [0.0, 1e4], [3.0, 3.0]])
    per_sample, probs = softmax_cross_entropy_per_sample(logits, np.array([0, 0, 1]))
    assert np.all(np.isfinite(per_sample)) and np.all(np.isfinite(probs))
    assert_close(per_sample, np.array([0.0, 1e4, np.log(2.0)]), REFERENCE_F64)
    loss, dlogits = softmax_cross_entropy(logits, np.array([0, 0, 1]))
    assert np.isfinite(loss) and np.all(np.isfinite(dlogits))


def test_float32_logits_give_float32_gradient(rng):
    logits = random_values((6, 3), rng, np.float32)
    labels = np.array([0, 1, 2, 0, 1, 2])
    loss, dlogits = softmax_cross_entropy(logits, labels)
    assert dlogits.dtype == np.float32 and isinstance(loss, float)
    assert_close(dlogits, softmax_cross_entropy(logits.astype(np.float64), labels)[1], FLOAT32_FORWARD)
    pred = random_values((6, 4), rng, np.float32)
    assert euclidean_loss(pred, np.zeros((6, 4)))[1].dtype == np.float32


@pytest.mark.parametrize("logits, labels, weights, words", [
    (np.zeros((3, 2)), np.array([0, 2, 1]), None, "[0, 2)"),  # label out of range on a weighted sample
    (np.zeros((3, 2)), np.array([0, -1, 1]), np.array([1.0, 1.0, 1.0]), "[0, 2)"),
    (np.zeros((3, 2)), np.array([0.0, 1.0, 1.0]), None, "labels must be integers of shape (3,)"),
    (np.zeros((3, 2)), np.array([0, 1]), None, "labels must be integers of shape (3,)"),
    (np.zeros((3, 2)), np.array([0, 1, 1]), np.ones(2), "weights must have shape (3,), got (2,)"),
    (np.zeros((3, 2)), np.array([0, 1, 1]), np.array([1.0, -1.0, 1.0]), "weights must be >= 0"),
    (np.zeros((3, 2, 1, 1)), np.array([0, 1, 1]), None, "logits must have shape (N, K), got (3, 2, 1, 1)"),
    (np.zeros((3, 2), dtype=np.int64), np.array([0, 1, 1]), None, "floating-point"),
])
def test_softmax_cross_entropy_bad_arguments(logits, labels, weights, words):
    with pytest.raises(ValueError) as error:
        softmax_cross_entropy(logits, labels, weights)
    assert words in str(error.value)


# ------------------------------------------------------------------------ Euclidean loss


def test_euclidean_loss_by_hand():
    pred = np.array([[1.0, 2.0], [3.0, 4.0], [9.0, 9.0]])
    target = np.array([[0.0, 0.0], [3.0, 5.0], [np.nan, np.nan]])  # no box target for the 3rd sample
    loss, dpred = euclidean_loss(pred, target, np.array([1.0, 1.0, 0.0]))
    assert_close(np.array(loss), np.array((5.0 + 1.0) / 2), REFERENCE_F64)
    assert_close(dpred, np.array([[1.0, 2.0], [0.0, -1.0], [0.0, 0.0]]), REFERENCE_F64)


@pytest.mark.parametrize("weights", [None, [1.0, 0.0, 2.0, 0.5, 0.0]])
def test_euclidean_loss_gradcheck(rng, weights):
    pred = random_values((5, 4), rng)
    target = random_values((5, 4), rng)
    if weights is not None:
        target[1] = np.nan  # ignored samples may carry no target at all
    results = check_loss("euclidean_loss", euclidean_loss, pred, target,
                         None if weights is None else np.array(weights), seed=13)
    assert_gradients_ok(results)


def test_euclidean_loss_bad_arguments():
    with pytest.raises(ValueError, match=r"\(N, D\), got \(3, 4\) and \(3, 2\)"):
        euclidean_loss(np.zeros((3, 4)), np.zeros((3, 2)))
    with pytest.raises(ValueError, match=r"weights must have shape \(3,\)"):
        euclidean_loss(np.zeros((3, 4)), np.zeros((3, 4)), np.ones(4))
    assert euclidean_loss(np.ones((2, 4)), np.zeros((2, 4)), np.zeros(2))[0] == 0.0


# ------------------------------------------------------------------------ online hard example mining

# keep fraction -> exact integer arithmetic for floor(keep * n)
KEEP_FRACTIONS = {0.7: (7, 10), 0.5: (1, 2), 0.25: (1, 4), 1.0: (1, 1)}


@st.composite
def ohem_case(draw):
    N = draw(st.integers(1, 60))
    losses = draw(distinct_arrays((N,), scale=10.0))  # distinct: "the top k" is unambiguous
    valid = np.array(draw(st.lists(st.booleans(), min_size=N, max_size=N)))
    keep = draw(st.sampled_from(sorted(KEEP_FRACTIONS)))
    return losses, valid, keep


@given(ohem_case())
def test_ohem_keeps_the_hardest_valid_samples(case):
    losses, valid, keep = case
    weights = ohem_weights(losses, keep=keep, valid=valid)
    numerator, denominator = KEEP_FRACTIONS[keep]
    n_valid = int(valid.sum())
    expected_count = max(1, numerator * n_valid // denominator) if n_valid else 0
    assert weights.shape == losses.shape and set(np.unique(weights)) <= {0.0, 1.0}
    kept = weights == 1
    assert not np.any(kept & ~valid), "an invalid sample was kept"
    assert kept.sum() == expected_count
    dropped = valid & ~kept
    if kept.any() and dropped.any():
        assert losses[kept].min() > losses[dropped].max(), "an easier sample was kept over a harder one"


def test_ohem_default_keeps_floor_of_seven_tenths():
    # every batch size up to 1000 (cheap, and it includes the ones where 0.7 * N rounds below an integer)
    for N in range(1, 1001):
        weights = ohem_weights(np.arange(N, dtype=np.float64))
        expected = max(1, 7 * N // 10)
        assert np.count_nonzero(weights) == expected, f"N={N}"
        assert np.all(weights[N - expected:] == 1), f"N={N}: the largest losses are the last ones"


def test_ohem_ties_go_to_the_lower_index():
    weights = ohem_weights(np.array([2.0, 2.0, 2.0, 0.0]), keep=0.5)
    assert_close(weights, np.array([1.0, 1.0, 0.0, 0.0]), EXACT)


def test_ohem_keeps_one_when_few_are_valid():
    weights = ohem_weights(np.array([5.0, 1.0, 3.0]), keep=0.7, valid=np.array([False, True, False]))
    assert_close(weights, np.array([0.0, 1.0, 0.0]), EXACT)
    assert_close(ohem_weights(np.array([5.0, 1.0]), valid=np.array([False, False])), np.zeros(2), EXACT)


@pytest.mark.parametrize("N", [90, 170, 700])
def test_ohem_count_is_exact_for_batch_sizes_like_90(N):
    # regression: int(0.7 * 90) is 62 in floating point (0.7 * 90 = 62.99999999999999)
    weights = ohem_weights(np.arange(N, dtype=np.float64))
    assert int(weights.sum()) == 7 * N // 10


def test_ohem_bad_arguments():
    with pytest.raises(ValueError, match=r"\(N,\), got \(2, 2\)"):
        ohem_weights(np.zeros((2, 2)))
    with pytest.raises(ValueError, match=r"keep must be in \(0, 1\], got 0"):
        ohem_weights(np.zeros(3), keep=0)
    with pytest.raises(ValueError, match=r"valid must have shape \(3,\), got \(2,\)"):
        ohem_weights(np.zeros(3), valid=np.ones(2, dtype=bool))
