"""Deletion curves: exact values on a toy model, the right ranking beats random and reversed ones, clear errors."""

import numpy as np
import pytest

from tutorlib.explain.attribution import Attribution
from tutorlib.explain.faithfulness import (DeletionCurve, deletion_auc, deletion_curve_from_fn, plot_deletion_curves,
                                           remove_tokens)

WEIGHTS = np.array([0.1, 3.0, -1.0, 0.0, 1.5, 0.2])  # per-position evidence for the target
IDS = [100 + i for i in range(len(WEIGHTS))]


def prob_fn(seqs):
    """p(target) = sigmoid(sum of the weights of the ids still present)."""
    return np.array([1 / (1 + np.exp(-sum(WEIGHTS[i - 100] for i in s if i >= 100))) for s in seqs])


def test_curve_values_on_a_toy_model():
    order = [1, 4, 5, 0, 3, 2]
    c = deletion_curve_from_fn(prob_fn, IDS, order)
    expected = [prob_fn([[IDS[j] for j in range(6) if j not in order[:k]]])[0] for k in range(7)]
    np.testing.assert_allclose(c.probs, expected)
    np.testing.assert_allclose(c.fractions, np.arange(7) / 6)
    assert c.auc == pytest.approx(np.trapezoid(expected, np.arange(7) / 6))


def test_true_ranking_is_more_faithful_than_random_and_reversed():
    good = list(np.argsort(-WEIGHTS, kind="stable"))
    rng = np.random.default_rng(0)
    auc_good = deletion_curve_from_fn(prob_fn, IDS, good).auc
    auc_bad = deletion_curve_from_fn(prob_fn, IDS, good[::-1]).auc
    auc_random = np.mean([deletion_curve_from_fn(prob_fn, IDS, rng.permutation(6).tolist()).auc for _ in range(20)])
    assert auc_good < auc_random < auc_bad


def test_mask_mode_replaces_instead_of_deleting():
    assert remove_tokens([5, 6, 7], [1], mode="mask", mask_id=0) == [5, 0, 7]
    assert remove_tokens([5, 6, 7], [1, 0]) == [7]
    c = deletion_curve_from_fn(lambda seqs: np.array([len(s) for s in seqs], float), [1, 2], [0, 1], mode="mask",
                               mask_id=9)
    assert c.probs.tolist() == [2.0, 2.0, 2.0]  # masking keeps the length


def test_attribution_ranking_orders_signed_and_unsigned():
    a = Attribution(["a", "b", "c"], [0.2, -0.9, 0.5], "x", 1, 0.5)
    assert a.ranking().tolist() == [2, 0, 1]
    assert a.ranking("abs").tolist() == [1, 2, 0]


def test_drop_and_auc_helpers():
    c = DeletionCurve(np.array([0.0, 0.5, 1.0]), np.array([0.9, 0.5, 0.3]), "m")
    assert c.drop_at(0.25) == pytest.approx(0.9 - 0.7)
    assert deletion_auc([1.0, 1.0, 1.0]) == pytest.approx(1.0)
    fig = plot_deletion_curves({"m": c, "random": DeletionCurve(c.fractions, c.probs, "random", std=np.zeros(3))})
    ax = fig.axes[0]
    assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel() and len(ax.lines) == 2


def test_bad_input_errors():
    with pytest.raises(ValueError, match="permutation"):
        deletion_curve_from_fn(prob_fn, IDS, [0, 1, 2])
    with pytest.raises(ValueError, match="one probability per sequence"):
        deletion_curve_from_fn(lambda s: np.zeros(2), IDS, list(range(6)))
    with pytest.raises(ValueError, match="mask_id"):
        remove_tokens([1, 2], [0], mode="mask")
    with pytest.raises(IndexError, match="outside"):
        remove_tokens([1, 2], [5])
    with pytest.raises(ValueError, match="at least 2 points"):
        deletion_auc([0.5])
    with pytest.raises(ValueError, match="fraction"):
        DeletionCurve(np.array([0.0, 1.0]), np.array([1.0, 0.0]), "m").drop_at(2.0)
