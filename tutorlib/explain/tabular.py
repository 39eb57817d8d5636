"""SHAP and LIME on a tabular model: a gradient-boosted tumour classifier on scikit-learn's breast-cancer table.

The data (569 tumours, 30 measurements of cell nuclei, Wolberg et al., 1995) ships with
scikit-learn. Labels are flipped from scikit-learn's encoding so that **1 = malignant**: every
explanation then reads as "what pushes the risk up". Trees give exact SHAP values fast
(``shap.TreeExplainer``, Lundberg et al., 2020); the three classic plots are wrapped here with
titles: summary (beeswarm), dependence (scatter) and waterfall.

LIME's answer depends on its random sample and on its kernel width: :func:`lime_stability`
repeats the explanation of one tumour over seeds, for a grid of kernel widths and sample sizes,
and measures how much the answers agree with each other (mean pairwise Spearman ρ of the weights,
and the overlap of their top-k features).

>>> data = load_breast_cancer_data()
>>> model = train_tabular_model(data, n_estimators=20)
>>> round(model.score(data.X_test, data.y_test), 2) > 0.9
True
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from typing import Any, Sequence

import numpy as np

__all__ = ["TabularData", "load_breast_cancer_data", "train_tabular_model", "shap_tabular", "plot_shap_summary",
           "plot_shap_dependence", "plot_shap_waterfall", "lime_tabular_weights", "LimeStability", "lime_stability",
           "plot_lime_stability", "CLASS_NAMES"]

CLASS_NAMES = ("benign", "malignant")


@dataclass
class TabularData:
    """A fixed train/test split of a table: arrays, feature names and class names.

    >>> d = load_breast_cancer_data(); d.X_train.shape[1], d.class_names
    (30, ('benign', 'malignant'))
    """

    X_train: np.ndarray
    X_test: np.ndarray
    y_train: np.ndarray
    y_test: np.ndarray
    feature_names: list[str]
    class_names: tuple[str, ...] = CLASS_NAMES


def load_breast_cancer_data(test_size: float = 0.25, seed: int = 0) -> TabularData:
    """scikit-learn's bundled breast-cancer table, stratified split, label 1 = malignant.

    >>> d = load_breast_cancer_data(); len(d.X_train) + len(d.X_test)
    569
    """
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split

    if not 0 < test_size < 1:
        raise ValueError(f"test_size must be a fraction in (0, 1), got {test_size}")
    raw = load_breast_cancer()
    y = 1 - raw.target  # scikit-learn: 0 = malignant; here 1 = malignant
    Xtr, Xte, ytr, yte = train_test_split(raw.data, y, test_size=test_size, random_state=seed, stratify=y)
    return TabularData(Xtr, Xte, ytr, yte, [str(n) for n in raw.feature_names])


def train_tabular_model(data: TabularData, n_estimators: int = 100, max_depth: int = 3, learning_rate: float = 0.1,
                        seed: int = 0) -> Any:
    """A ``GradientBoostingClassifier`` fitted on ``data.X_train`` (trees: exact, fast TreeSHAP).

    >>> m = train_tabular_model(load_breast_cancer_data(), n_estimators=5); m.n_estimators
    5
    """
    from sklearn.ensemble import GradientBoostingClassifier

    if n_estimators < 1:
        raise ValueError(f"n_estimators must be at least 1, got {n_estimators}")
    model = GradientBoostingClassifier(n_estimators=n_estimators, max_depth=max_depth, learning_rate=learning_rate,
                                       random_state=seed)
    return model.fit(data.X_train, data.y_train)


def shap_tabular(model: Any, data: TabularData, X: np.ndarray | None = None) -> Any:
    """SHAP values (log-odds of malignant) of ``X`` (default: the test set) with ``shap.TreeExplainer``.

    Returns shap's ``Explanation`` with feature names; ``values`` add up to the model's log-odds
    minus ``base_values``.

    >>> d = load_breast_cancer_data(); m = train_tabular_model(d, n_estimators=5)
    >>> shap_tabular(m, d, d.X_test[:3]).values.shape
    (3, 30)
    """
    from tutorlib.explain._shap import import_shap

    shap = import_shap()
    X = data.X_test if X is None else np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[1] != len(data.feature_names):
        raise ValueError(f"X must be (n, {len(data.feature_names)}), got {X.shape}")
    explainer = shap.TreeExplainer(model, feature_names=data.feature_names)
    return explainer(X)


def _finish(fig: Any, title: str, xlabel: str | None = None, ylabel: str | None = None) -> Any:
    ax = fig.axes[0]
    ax.set_title(title)
    if xlabel:
        ax.set_xlabel(xlabel)
    if ylabel:
        ax.set_ylabel(ylabel)
    return fig


def plot_shap_summary(expl: Any, max_display: int = 10, title: str = "SHAP summary: which features matter, and how") -> Any:
    """Beeswarm summary: one dot per tumour and feature, x = SHAP value, colour = feature value; returns the figure.

    >>> d = load_breast_cancer_data(); m = train_tabular_model(d, n_estimators=5)
    >>> plot_shap_summary(shap_tabular(m, d, d.X_test[:20])).axes[0].get_title()
    'SHAP summary: which features matter, and how'
    """
    import matplotlib.pyplot as plt

    from tutorlib.explain._shap import import_shap

    shap = import_shap()
    fig, ax = plt.subplots(figsize=(7, 0.35 * max_display + 1.5))
    shap.plots.beeswarm(expl, max_display=max_display, ax=ax, show=False, plot_size=None)
    return _finish(fig, title, "SHAP value (impact on log-odds of malignant)")


def plot_shap_dependence(expl: Any, feature: str, color: str | None = None, title: str | None = None) -> Any:
    """Dependence plot: a feature's value (x) against its SHAP value (y), coloured by another feature.

    >>> d = load_breast_cancer_data(); m = train_tabular_model(d, n_estimators=5)
    >>> plot_shap_dependence(shap_tabular(m, d, d.X_test[:20]), "worst radius").axes[0].get_xlabel()
    'worst radius'
    """
    import matplotlib.pyplot as plt

    from tutorlib.explain._shap import import_shap

    shap = import_shap()
    names = list(expl.feature_names)
    for f in (feature, color):
        if f is not None and f not in names:
            raise ValueError(f"unknown feature {f!r}: use one of {names}")
    fig, ax = plt.subplots(figsize=(6, 4))
    col = expl[:, color] if color is not None else None
    shap.plots.scatter(expl[:, feature], color=col, ax=ax, show=False)
    return _finish(fig, title or f"SHAP dependence on {feature!r}", feature, f"SHAP value of {feature}")


def plot_shap_waterfall(expl: Any, index: int, max_display: int = 10, title: str | None = None) -> Any:
    """Waterfall of one prediction: from the average log-odds, each feature's push up or down to f(x).

    >>> d = load_breast_cancer_data(); m = train_tabular_model(d, n_estimators=5)
    >>> plot_shap_waterfall(shap_tabular(m, d, d.X_test[:3]), 0).axes[0].get_title()
    'Why tumour 0 got its score (log-odds of malignant)'
    """
    import matplotlib.pyplot as plt

    from tutorlib.explain._shap import import_shap

    shap = import_shap()
    if not 0 <= index < len(expl.values):
        raise IndexError(f"index {index} is outside the {len(expl.values)} explained rows")
    plt.figure(figsize=(7, 0.4 * max_display + 1.5))
    shap.plots.waterfall(expl[index], max_display=max_display, show=False)
    fig = plt.gcf()
    return _finish(fig, title or f"Why tumour {index} got its score (log-odds of malignant)",
                   "model output (log-odds of malignant)")


def lime_tabular_weights(model: Any, data: TabularData, x: np.ndarray, num_samples: int = 5000,
                         kernel_width: float | None = None, seed: int = 0, discretize: bool = True,
                         target: int = 1) -> np.ndarray:
    """LIME weights (one per feature, for class ``target``) of ``LimeTabularExplainer`` on one row ``x``.

    ``kernel_width`` defaults to LIME's ``0.75·sqrt(n_features)``; with ``discretize=True`` (LIME's
    default) a weight is the effect of "this feature is in x's quartile bin".

    >>> d = load_breast_cancer_data(); m = train_tabular_model(d, n_estimators=5)
    >>> lime_tabular_weights(m, d, d.X_test[0], num_samples=200).shape
    (30,)
    """
    from lime.lime_tabular import LimeTabularExplainer

    x = np.asarray(x, dtype=np.float64)
    d = len(data.feature_names)
    if x.shape != (d,):
        raise ValueError(f"x must be one row of {d} features, got shape {x.shape}")
    if num_samples < 10:
        raise ValueError(f"num_samples must be at least 10, got {num_samples}")
    explainer = LimeTabularExplainer(data.X_train, mode="classification", feature_names=data.feature_names,
                                     class_names=list(data.class_names), discretize_continuous=discretize,
                                     kernel_width=kernel_width, feature_selection="none", random_state=seed)
    exp = explainer.explain_instance(x, model.predict_proba, labels=(target,), num_features=d, num_samples=num_samples)
    weights = np.zeros(d)
    for j, w in exp.local_exp[target]:
        weights[int(j)] = w
    return weights


@dataclass
class LimeStability:
    """LIME weights over a grid of kernel widths × sample sizes × seeds, and how stable they are.

    ``weights`` is (widths, sizes, seeds, features); ``spearman[i, j]`` is the mean pairwise
    Spearman ρ of |weights| across seeds for width ``i`` and size ``j`` (1 = the same answer every
    time); ``topk[i, j]`` the mean pairwise top-k overlap.

    >>> s = LimeStability([1.0], [100], [0, 1], np.ones((1, 1, 2, 3)), np.ones((1, 1)), np.ones((1, 1)), 2, ["a", "b", "c"])
    >>> s.most_stable()
    (1.0, 100)
    """

    kernel_widths: list[float]
    num_samples: list[int]
    seeds: list[int]
    weights: np.ndarray
    spearman: np.ndarray
    topk: np.ndarray
    k: int
    feature_names: list[str]

    def most_stable(self) -> tuple[float, int]:
        """The (kernel width, num_samples) with the highest mean Spearman across seeds."""
        i, j = np.unravel_index(int(np.argmax(self.spearman)), self.spearman.shape)
        return float(self.kernel_widths[i]), int(self.num_samples[j])

    def rows(self) -> list[dict[str, float]]:
        """One dict per setting: kernel_width, num_samples, spearman, topk (for printing)."""
        return [{"kernel_width": float(w), "num_samples": int(n), "spearman": float(self.spearman[i, j]),
                 "topk": float(self.topk[i, j])}
                for i, w in enumerate(self.kernel_widths) for j, n in enumerate(self.num_samples)]

    def top_features(self, width_index: int = 0, size_index: int = -1, k: int | None = None) -> list[list[str]]:
        """The top-k features (by |weight|) of each seed's explanation, for one setting."""
        k = k or self.k
        w = self.weights[width_index, size_index]
        return [[self.feature_names[i] for i in np.argsort(-np.abs(row), kind="stable")[:k]] for row in w]


def _pairwise(weights: np.ndarray, k: int) -> tuple[float, float]:
    from scipy.stats import spearmanr

    rhos, overlaps = [], []
    for a, b in combinations(range(len(weights)), 2):
        wa, wb = np.abs(weights[a]), np.abs(weights[b])
        rhos.append(0.0 if np.ptp(wa) == 0 or np.ptp(wb) == 0 else float(spearmanr(wa, wb).statistic))
        ta = set(np.argsort(-wa, kind="stable")[:k].tolist())
        tb = set(np.argsort(-wb, kind="stable")[:k].tolist())
        overlaps.append(len(ta & tb) / k)
    return float(np.mean(rhos)), float(np.mean(overlaps))


def lime_stability(model: Any, data: TabularData, x: np.ndarray, kernel_widths: Sequence[float] = (0.5, 4.1, 30.0),
                   num_samples: Sequence[int] = (200, 1000, 5000), seeds: Sequence[int] = (0, 1, 2, 3, 4), k: int = 5,
                   discretize: bool = True, progress: bool = True) -> LimeStability:
    """Explain row ``x`` with LIME for every kernel width × sample size × seed, and measure agreement across seeds.

    >>> d = load_breast_cancer_data(); m = train_tabular_model(d, n_estimators=5)
    >>> s = lime_stability(m, d, d.X_test[0], kernel_widths=(4.1,), num_samples=(100,), seeds=(0, 1), progress=False)
    >>> s.spearman.shape
    (1, 1)
    """
    from tqdm.auto import tqdm

    if len(seeds) < 2:
        raise ValueError(f"stability needs at least 2 seeds to compare, got {list(seeds)}")
    d = len(data.feature_names)
    if not 1 <= k <= d:
        raise ValueError(f"k must be in 1..{d}, got {k}")
    W = np.zeros((len(kernel_widths), len(num_samples), len(seeds), d))
    bar = tqdm(total=W.shape[0] * W.shape[1] * W.shape[2], desc="LIME runs", disable=not progress)
    for i, width in enumerate(kernel_widths):
        for j, n in enumerate(num_samples):
            for s, seed in enumerate(seeds):
                W[i, j, s] = lime_tabular_weights(model, data, x, num_samples=int(n), kernel_width=float(width),
                                                  seed=int(seed), discretize=discretize)
                bar.update(1)
    bar.close()
    rho = np.zeros(W.shape[:2])
    top = np.zeros(W.shape[:2])
    for i in range(W.shape[0]):
        for j in range(W.shape[1]):
            rho[i, j], top[i, j] = _pairwise(W[i, j], k)
    return LimeStability([float(w) for w in kernel_widths], [int(n) for n in num_samples], [int(s) for s in seeds],
                         W, rho, top, k, list(data.feature_names))


def plot_lime_stability(stab: LimeStability, title: str = "LIME stability across seeds") -> Any:
    """Two panels: mean pairwise Spearman ρ and top-k overlap vs number of samples, one line per kernel width.

    >>> s = LimeStability([1.0], [100, 200], [0, 1], np.ones((1, 2, 2, 3)), np.ones((1, 2)), np.ones((1, 2)), 2, list("abc"))
    >>> plot_lime_stability(s).axes[0].get_xlabel()
    'LIME samples per explanation'
    """
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for i, w in enumerate(stab.kernel_widths):
        axes[0].plot(stab.num_samples, stab.spearman[i], marker="o", label=f"kernel width {w:g}")
        axes[1].plot(stab.num_samples, stab.topk[i], marker="o", label=f"kernel width {w:g}")
    lows = (min(-0.05, float(stab.spearman.min()) - 0.05), -0.05)
    for ax, name, low in zip(axes, ("mean pairwise Spearman ρ of |weights|", f"mean top-{stab.k} overlap"), lows):
        ax.set_xscale("log")
        ax.set_xlabel("LIME samples per explanation")
        ax.set_ylabel(name)
        ax.set_ylim(low, 1.05)
        ax.grid(alpha=0.3)
    axes[0].set_title(f"{title}: ranking")
    axes[1].set_title(f"{title}: top-{stab.k} features")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return fig
