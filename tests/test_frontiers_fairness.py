"""Group fairness metrics (hand-computed cases) and Kamiran–Calders reweighing."""

import numpy as np
import pytest

from tutorlib.frontiers import demographic_parity_gap, equalized_odds_gap, group_metrics, reweighing_weights, skew_groups


def test_group_metrics_by_hand():
    y = np.array([1, 1, 0, 0, 1, 1, 0, 0])
    p = np.array([1, 0, 1, 0, 1, 1, 0, 0])
    g = np.array(["a"] * 4 + ["b"] * 4)
    m = group_metrics(y, p, g)
    assert m["a"] == {"n": 4.0, "accuracy": 0.5, "positive_rate": 0.5, "tpr": 0.5, "fpr": 0.5}
    assert m["b"] == {"n": 4.0, "accuracy": 1.0, "positive_rate": 0.5, "tpr": 1.0, "fpr": 0.0}
    assert demographic_parity_gap(p, g) == 0.0  # same positive rate ...
    assert equalized_odds_gap(y, p, g) == 0.5  # ... but very different errors


def test_a_perfect_classifier_has_no_equalized_odds_gap_but_may_violate_parity():
    y = np.array([1, 1, 1, 0, 1, 0, 0, 0])
    g = np.array(["a"] * 4 + ["b"] * 4)
    assert equalized_odds_gap(y, y, g) == 0.0
    assert demographic_parity_gap(y, g) == 0.5


def test_reweighing_makes_label_and_group_independent():
    rng = np.random.default_rng(0)
    g = rng.choice(["a", "b", "c"], 600)
    y = (rng.random(600) < np.where(g == "a", 0.8, 0.3)).astype(int)
    w = reweighing_weights(y, g)
    assert w.mean() == pytest.approx(1.0)
    rates = [np.average(y[g == k], weights=w[g == k]) for k in "abc"]
    assert max(rates) - min(rates) < 1e-9
    assert np.average(y, weights=w) == pytest.approx(y.mean())


def test_skew_groups_keeps_only_a_fraction_of_positives():
    y = np.array([1] * 10 + [0] * 10)
    g = np.array(["a"] * 20)
    keep = skew_groups(y, g, {"a": 0.3})
    assert y[keep].sum() == 3 and (y[keep] == 0).sum() == 10


def test_bad_input_is_explained():
    with pytest.raises(ValueError, match="binary"):
        demographic_parity_gap([0, 2], ["a", "b"])
    with pytest.raises(ValueError, match="same length"):
        equalized_odds_gap([0, 1], [0, 1, 1], ["a", "b"])
    with pytest.raises(ValueError, match="no positive"):
        skew_groups([0, 0], ["a", "a"], {"a": 0.5})
