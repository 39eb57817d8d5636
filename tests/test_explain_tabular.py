"""The breast-cancer model: accuracy, SHAP additivity, labelled plots, LIME weights and their stability."""

import matplotlib
import numpy as np
import pytest

from tutorlib.explain.tabular import (lime_stability, lime_tabular_weights, load_breast_cancer_data,
                                      plot_lime_stability, plot_shap_dependence, plot_shap_summary,
                                      plot_shap_waterfall, shap_tabular, train_tabular_model)

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def fitted():
    data = load_breast_cancer_data()
    return data, train_tabular_model(data, n_estimators=60)


def test_data_and_model(fitted):
    data, model = fitted
    assert data.X_train.shape[1] == 30 and set(np.unique(data.y_train)) == {0, 1}
    assert data.y_train.mean() < 0.5  # 1 = malignant is the minority class (212 of 569)
    assert model.score(data.X_test, data.y_test) > 0.93


def test_shap_values_add_up_to_the_log_odds(fitted):
    data, model = fitted
    expl = shap_tabular(model, data, data.X_test[:25])
    logodds = model.decision_function(data.X_test[:25])
    np.testing.assert_allclose(expl.values.sum(1) + expl.base_values, logodds, atol=1e-6)


def test_plots_have_titles_and_labels(fitted):
    import matplotlib.pyplot as plt

    data, model = fitted
    expl = shap_tabular(model, data, data.X_test[:30])
    for fig in (plot_shap_summary(expl), plot_shap_dependence(expl, "worst radius", color="mean texture"),
                plot_shap_waterfall(expl, 1)):
        ax = fig.axes[0]
        assert ax.get_title() and ax.get_xlabel()
        plt.close(fig)
    with pytest.raises(ValueError, match="unknown feature"):
        plot_shap_dependence(expl, "tumour colour")


def test_lime_weights_agree_with_shap_on_what_matters(fitted):
    from scipy.stats import spearmanr

    data, model = fitted
    x = data.X_test[0]
    w = lime_tabular_weights(model, data, x, num_samples=2000, seed=0)
    assert w.shape == (30,) and np.abs(w).sum() > 0
    sv = shap_tabular(model, data, x[None]).values[0]
    assert spearmanr(np.abs(w), np.abs(sv)).statistic > 0.2


def test_stability_grows_with_samples_and_collapses_with_a_tiny_kernel(fitted):
    data, model = fitted
    s = lime_stability(model, data, data.X_test[0], kernel_widths=(0.3, 4.1), num_samples=(60, 2000),
                       seeds=(0, 1, 2), k=5, progress=False)
    assert s.weights.shape == (2, 2, 3, 30)
    assert s.spearman[1, 1] > s.spearman[1, 0]  # more samples, more stable (default width)
    assert s.spearman[1, 1] > s.spearman[0, 1]  # a tiny kernel leaves almost no weight: noise
    assert s.most_stable() == (4.1, 2000)
    assert len(s.rows()) == 4 and len(s.top_features(1, 1)) == 3
    fig = plot_lime_stability(s)
    assert all(ax.get_title() and ax.get_xlabel() and ax.get_ylabel() for ax in fig.axes)


def test_bad_input_errors(fitted):
    data, model = fitted
    with pytest.raises(ValueError, match="one row of 30"):
        lime_tabular_weights(model, data, data.X_test[:2])
    with pytest.raises(ValueError, match="at least 2 seeds"):
        lime_stability(model, data, data.X_test[0], seeds=(0,))
    with pytest.raises(ValueError, match="test_size"):
        load_breast_cancer_data(test_size=1.5)
