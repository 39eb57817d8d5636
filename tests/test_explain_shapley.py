"""Exact Shapley values by enumeration: the Shapley axioms, and the same numbers as shap's Exact and Kernel explainers."""

import numpy as np
import pytest

from tutorlib.explain.shapley import (coalition_values, coalitions, exact_shapley, shap_exact, shap_kernel,
                                      shapley_weight, toy_background, toy_model)


def test_weights_of_all_coalitions_without_i_sum_to_one():
    from math import comb

    for d in (1, 3, 6):
        total = sum(comb(d - 1, s) * shapley_weight(s, d) for s in range(d))
        assert total == pytest.approx(1.0)


def test_coalitions_enumerate_every_subset_once():
    m = coalitions(4)
    assert m.shape == (16, 4)
    assert len({tuple(r) for r in m.tolist()}) == 16


def test_matches_shap_exact_and_kernel_on_the_toy_model():
    bg = toy_background(40, seed=1)
    for x in (np.array([1.5, -0.5, 2.0, 3.0]), np.array([-1.0, 2.0, 0.1, -4.0])):
        ours = exact_shapley(toy_model, x, bg)
        np.testing.assert_allclose(ours, shap_exact(toy_model, x, bg), atol=1e-9)
        # with 4 features Kernel SHAP enumerates all 14 proper coalitions: exact as well
        np.testing.assert_allclose(ours, shap_kernel(toy_model, x, bg, nsamples=100), atol=1e-6)


def test_efficiency_dummy_and_symmetry():
    bg = toy_background(30)
    x = np.array([0.7, 1.2, -2.0, 9.0])
    phi = exact_shapley(toy_model, x, bg)
    assert phi.sum() == pytest.approx(toy_model(x[None])[0] - toy_model(bg).mean())  # efficiency
    assert phi[3] == pytest.approx(0.0, abs=1e-12)  # the toy model ignores "noise": dummy axiom
    sym = lambda X: X[:, 0] * X[:, 1]  # noqa: E731 - symmetric in features 0 and 1
    phi = exact_shapley(sym, np.array([2.0, 2.0, 5.0]), np.zeros(3))
    assert phi[0] == pytest.approx(phi[1]) and phi[2] == pytest.approx(0.0)


def test_interaction_credit_is_split_equally_against_a_zero_baseline():
    f = lambda X: X[:, 0] * X[:, 1]  # noqa: E731
    assert exact_shapley(f, np.array([2.0, 3.0]), np.zeros(2)).tolist() == [3.0, 3.0]


def test_multi_output_model():
    f = lambda X: np.stack([X.sum(1), -X[:, 0]], 1)  # noqa: E731
    phi = exact_shapley(f, np.array([1.0, 2.0]), np.zeros(2))
    assert phi.shape == (2, 2)
    np.testing.assert_allclose(phi, [[1.0, -1.0], [2.0, 0.0]])


def test_coalition_values_are_means_over_background():
    v = coalition_values(lambda X: X.sum(1), np.array([1.0, 1.0]), np.array([[0.0, 0.0], [2.0, 2.0]]))
    np.testing.assert_allclose(v, [2.0, 2.0, 2.0, 2.0])


def test_bad_input_errors():
    with pytest.raises(ValueError, match="2\\^d"):
        coalitions(20)
    with pytest.raises(ValueError, match="1-D"):
        exact_shapley(toy_model, np.zeros((2, 4)), np.zeros(4))
    with pytest.raises(ValueError, match="background must have shape"):
        exact_shapley(toy_model, np.zeros(4), np.zeros((3, 5)))
    with pytest.raises(ValueError, match="one output per input row"):
        exact_shapley(lambda X: np.zeros(1), np.zeros(2), np.zeros(2))
    with pytest.raises(ValueError, match="expects an \\(n, 4\\)"):
        toy_model(np.zeros((2, 3)))
