"""LIME from scratch: the kernel, the weighted ridge fit, and the whole text explainer match the `lime` package exactly."""

import numpy as np
import pytest
from sklearn.linear_model import Ridge

from tutorlib.explain.surrogate import (cosine_distances, fit_local_surrogate, lime_from_scratch, lime_kernel,
                                        sample_masks)

WORDS = ["the", "food", "was", "great", "but", "service", "awful"]
WEIGHT = {"great": 2.0, "awful": -1.5, "food": 0.3}


def toy_classifier(texts):
    """Probability of 'positive' = sigmoid(sum of word weights present); masked words contribute nothing."""
    out = []
    for t in texts:
        s = sum(WEIGHT.get(w, 0.0) for w in t.split())
        p = 1 / (1 + np.exp(-s))
        out.append([1 - p, p])
    return np.array(out)


def test_kernel_matches_lime():
    d = np.linspace(0, 120, 13)
    for width in (5.0, 25.0):
        np.testing.assert_allclose(lime_kernel(d, width), np.sqrt(np.exp(-(d ** 2) / width ** 2)))
    assert lime_kernel(np.array([0.0]), 1.0)[0] == 1.0


def test_weighted_ridge_matches_sklearn():
    rng = np.random.default_rng(0)
    Z = rng.integers(0, 2, (60, 5)).astype(float)
    y = Z @ rng.normal(size=5) + 0.3 + 0.05 * rng.normal(size=60)
    w = rng.uniform(0.1, 1.0, 60)
    for alpha in (0.0, 1.0, 10.0):
        b, c = fit_local_surrogate(Z, y, w, alpha)
        ref = Ridge(alpha=alpha).fit(Z, y, sample_weight=w)
        np.testing.assert_allclose(c, ref.coef_, atol=1e-8)
        assert b == pytest.approx(ref.intercept_, abs=1e-8)


def test_cosine_distances_match_sklearn():
    from sklearn.metrics.pairwise import pairwise_distances

    data = sample_masks(6, 30, np.random.RandomState(3))
    ref = pairwise_distances(data, data[:1], metric="cosine").ravel() * 100
    np.testing.assert_allclose(cosine_distances(data), ref, atol=1e-9)


def test_lime_from_scratch_equals_lime_text_explainer():
    from lime.lime_text import LimeTextExplainer

    text = " ".join(WORDS)
    explainer = LimeTextExplainer(class_names=["neg", "pos"], feature_selection="none", split_expression=lambda s: s.split(),
                                  bow=False, mask_string="[MASK]", random_state=7)
    exp = explainer.explain_instance(text, toy_classifier, labels=(1,), num_features=len(WORDS), num_samples=150)
    ref = np.zeros(len(WORDS))
    for j, w in exp.local_exp[1]:
        ref[j] = w

    def predict_masks(M):
        return toy_classifier([" ".join(w if keep else "[MASK]" for w, keep in zip(WORDS, row)) for row in M])

    ours, intercept = lime_from_scratch(predict_masks, len(WORDS), num_samples=150, kernel_width=25, seed=7)
    np.testing.assert_allclose(ours, ref, atol=1e-10)
    assert intercept == pytest.approx(exp.intercept[1])
    # and the explanation makes sense: "great" pushes up most, "awful" down most
    assert WORDS[int(np.argmax(ours))] == "great" and WORDS[int(np.argmin(ours))] == "awful"


def test_sample_masks_first_row_is_the_input_and_others_drop_tokens():
    m = sample_masks(5, 50, np.random.RandomState(0))
    assert m[0].tolist() == [1] * 5
    assert (m[1:].sum(1) <= 4).all()


def test_bad_input_errors():
    with pytest.raises(ValueError, match="kernel_width"):
        lime_kernel(np.zeros(2), 0.0)
    with pytest.raises(ValueError, match="2-D"):
        fit_local_surrogate(np.zeros(3), np.zeros(3), np.ones(3))
    with pytest.raises(ValueError, match="must have shape"):
        fit_local_surrogate(np.zeros((3, 2)), np.zeros(4), np.ones(3))
    with pytest.raises(ValueError, match="non-negative"):
        fit_local_surrogate(np.zeros((3, 2)), np.zeros(3), -np.ones(3))
