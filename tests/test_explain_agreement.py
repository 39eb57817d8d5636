"""Rank agreement between explanations: the same numbers as scipy, top-k overlap, matrices, the HTML rendering."""

import numpy as np
import pytest
from scipy.stats import kendalltau, spearmanr

from tutorlib.explain.agreement import (agreement_matrix, kendall, mean_agreement, plot_agreement, rank_agreement,
                                        spearman, topk_overlap)
from tutorlib.explain.attribution import Attribution


def _attr(scores, method="m", tokens=None):
    tokens = tokens or [f"t{i}" for i in range(len(scores))]
    return Attribution(tokens, scores, method, 1, 0.8)


def test_matches_scipy_signed_and_abs():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=12), rng.normal(size=12)
    assert spearman(a, b, by="signed") == pytest.approx(spearmanr(a, b).statistic)
    assert kendall(a, b, by="signed") == pytest.approx(kendalltau(a, b).statistic)
    assert spearman(a, b) == pytest.approx(spearmanr(np.abs(a), np.abs(b)).statistic)


def test_topk_overlap_counts_shared_top_tokens():
    a = [5.0, 4.0, 3.0, 0.0, 0.0]
    b = [0.0, 4.0, 5.0, 3.0, 0.0]
    assert topk_overlap(a, b, k=1) == 0.0
    assert topk_overlap(a, b, k=2) == 0.5
    assert topk_overlap(a, b, k=3) == pytest.approx(2 / 3)
    assert topk_overlap(a, a, k=3) == 1.0


def test_matrix_is_symmetric_with_unit_diagonal_and_averages():
    x = _attr([3.0, 1.0, 2.0, 0.5], "x")
    y = _attr([2.0, 1.0, 3.0, 0.5], "y")
    z = _attr([-3.0, 0.2, 0.1, 2.0], "z")
    names, m = agreement_matrix({"x": x, "y": y, "z": z})
    assert names == ["x", "y", "z"]
    np.testing.assert_allclose(m, m.T)
    np.testing.assert_allclose(np.diag(m), 1.0)
    assert m[0, 1] == pytest.approx(rank_agreement(x, y)["spearman"])
    _, mean = mean_agreement({"x": [x, y], "y": [y, x]})
    assert mean[0, 1] == pytest.approx(m[0, 1])
    fig = plot_agreement(names, m)
    assert fig.axes[0].get_title() and fig.axes[0].get_xlabel() == "method"


def test_constant_scores_give_zero_not_nan():
    assert spearman([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]) == 0.0


def test_attribution_rendering_and_words():
    a = Attribution(["great", "##ly", "<b>"], [0.6, 0.2, -0.3], "ig", 1, 0.9, label_names=("neg", "pos"))
    html = a.to_html()
    assert "greatly" not in html  # pieces are separate spans…
    assert "ly</span>" in html and "&lt;b&gt;" in html  # …joined without a space, and escaped
    assert "rgba(230, 50, 50" in html and "rgba(40, 110, 230" in html and "pos" in html
    assert a.words() == [("greatly", pytest.approx(0.8)), ("<b>", -0.3)]
    assert a.to_dict()["target_name"] == "pos"


def test_bad_input_errors():
    with pytest.raises(ValueError, match="different tokens"):
        spearman(_attr([1.0, 2.0], tokens=["a", "b"]), _attr([1.0, 2.0], tokens=["a", "c"]))
    with pytest.raises(ValueError, match="one length"):
        kendall([1.0, 2.0], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="k must be"):
        topk_overlap([1.0, 2.0], [2.0, 1.0], k=3)
    with pytest.raises(ValueError, match="metric"):
        agreement_matrix({"a": _attr([1.0, 2.0])}, metric="pearson")
    with pytest.raises(ValueError, match="one score per token"):
        Attribution(["a", "b"], [1.0], "m", 0, 0.5)
    with pytest.raises(ValueError, match="NaN"):
        Attribution(["a"], [float("nan")], "m", 0, 0.5)
