"""Exact Shapley values by enumerating every coalition of features — the definition SHAP approximates.

A model ``f`` and an input ``x`` with ``d`` features define a cooperative game: the value of a
coalition ``S`` is the expected output when the features in ``S`` keep their values from ``x`` and
the others are drawn from a background set, ``v(S) = mean_b f(x_S, b_¬S)`` (the "interventional"
value SHAP's explainers use). Feature ``i`` gets

    φ_i = Σ_{S ⊆ F \\ {i}} |S|! (d − |S| − 1)! / d! · (v(S ∪ {i}) − v(S)),

its marginal contribution averaged over every order in which features could join. The φ add up to
``f(x) − E f(background)`` (efficiency). Enumeration costs ``2^d · len(background)`` model calls,
so it is exact and cheap for a handful of features and impossible for a sentence — which is why
SHAP samples (KernelExplainer) or exploits structure (Partition, Tree explainers).

>>> import numpy as np
>>> f = lambda X: 2 * X[:, 0] + X[:, 1] * X[:, 2]
>>> exact_shapley(f, np.array([1.0, 1.0, 1.0]), np.zeros(3)).round(3).tolist()
[2.0, 0.5, 0.5]
"""

from __future__ import annotations

from math import factorial
from typing import Callable

import numpy as np

__all__ = ["shapley_weight", "coalitions", "coalition_values", "exact_shapley", "toy_model", "TOY_FEATURES",
           "toy_background", "shap_exact", "shap_kernel"]

MAX_FEATURES = 16
TOY_FEATURES = ("dose", "age", "weight", "noise")


def shapley_weight(size: int, d: int) -> float:
    """Weight of a coalition of ``size`` features (not containing ``i``) in φ_i: ``size! (d−size−1)! / d!``.

    >>> [round(shapley_weight(s, 3), 4) for s in range(3)]
    [0.3333, 0.1667, 0.3333]
    """
    if not 0 <= size < d:
        raise ValueError(f"a coalition without feature i has 0..{d - 1} members, got size={size} for d={d}")
    return factorial(size) * factorial(d - size - 1) / factorial(d)


def coalitions(d: int) -> np.ndarray:
    """All ``2^d`` coalitions as a boolean (2^d, d) matrix; row ``r`` has feature ``j`` iff bit ``j`` of ``r`` is set.

    >>> coalitions(2).astype(int).tolist()
    [[0, 0], [1, 0], [0, 1], [1, 1]]
    """
    if not isinstance(d, (int, np.integer)) or d < 1:
        raise ValueError(f"d must be a positive int, got {d!r}")
    if d > MAX_FEATURES:
        raise ValueError(
            f"exact Shapley values need 2^d model calls: d={d} gives {2 ** d:,}; use shap's sampling "
            f"explainers (KernelExplainer, PartitionExplainer) for more than {MAX_FEATURES} features"
        )
    rows = np.arange(2 ** d)[:, None]
    return ((rows >> np.arange(d)[None, :]) & 1).astype(bool)


def _as_2d(background: np.ndarray, d: int) -> np.ndarray:
    bg = np.asarray(background, dtype=np.float64)
    if bg.ndim == 1:
        bg = bg[None, :]
    if bg.ndim != 2 or bg.shape[1] != d:
        raise ValueError(f"background must have shape ({d},) or (m, {d}) to match x, got {np.shape(background)}")
    if len(bg) == 0:
        raise ValueError("background is empty: pass at least one reference row")
    return bg


def coalition_values(f: Callable[[np.ndarray], np.ndarray], x: np.ndarray, background: np.ndarray,
                     masks: np.ndarray | None = None) -> np.ndarray:
    """``v(S) = mean_b f(where(S, x, b))`` for every coalition row of ``masks`` (default: all of them).

    Returns shape (n_masks,) for a scalar model, (n_masks, C) for a model with C outputs.

    >>> f = lambda X: X.sum(1)
    >>> coalition_values(f, np.array([1.0, 2.0]), np.zeros(2)).tolist()
    [0.0, 1.0, 2.0, 3.0]
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"x must be one input, a 1-D array of d features, got shape {x.shape}")
    d = x.shape[0]
    bg = _as_2d(background, d)
    masks = coalitions(d) if masks is None else np.asarray(masks, dtype=bool)
    inputs = np.where(masks[:, None, :], x[None, None, :], bg[None, :, :])  # (n_masks, m, d)
    out = np.asarray(f(inputs.reshape(-1, d)), dtype=np.float64)
    if out.shape[0] != inputs.shape[0] * inputs.shape[1]:
        raise ValueError(
            f"f must return one output per input row: called with {inputs.shape[0] * inputs.shape[1]} rows, "
            f"got shape {out.shape}"
        )
    return out.reshape(len(masks), len(bg), *out.shape[1:]).mean(axis=1)


def exact_shapley(f: Callable[[np.ndarray], np.ndarray], x: np.ndarray, background: np.ndarray) -> np.ndarray:
    """Exact (interventional) Shapley values of ``f`` at ``x`` against ``background`` by enumerating 2^d coalitions.

    ``f`` maps an (n, d) array to (n,) or (n, C); the result is (d,) or (d, C). The values add up
    to ``f(x) − mean f(background)``.

    >>> f = lambda X: X[:, 0] * X[:, 1]
    >>> exact_shapley(f, np.array([2.0, 3.0]), np.zeros(2)).tolist()
    [3.0, 3.0]
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"x must be one input, a 1-D array of d features, got shape {x.shape}")
    d = x.shape[0]
    masks = coalitions(d)
    v = coalition_values(f, x, background, masks)
    sizes = masks.sum(axis=1)
    index = {int(r): r for r in range(len(masks))}  # row r encodes its coalition as bits
    phi = np.zeros((d, *v.shape[1:]))
    for i in range(d):
        bit = 1 << i
        for r in index:
            if r & bit:
                continue
            phi[i] += shapley_weight(int(sizes[r]), d) * (v[r | bit] - v[r])
    return phi


def toy_model(X: np.ndarray) -> np.ndarray:
    """A 4-feature toy "risk score" with a main effect, an interaction and a feature it ignores.

    ``f = 2·dose + dose·age − weight² / 2 + 0·noise`` (features :data:`TOY_FEATURES`).

    >>> toy_model(np.array([[1.0, 2.0, 2.0, 5.0]])).tolist()
    [2.0]
    """
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[1] != 4:
        raise ValueError(f"toy_model expects an (n, 4) array of {TOY_FEATURES}, got shape {X.shape}")
    return 2 * X[:, 0] + X[:, 0] * X[:, 1] - 0.5 * X[:, 2] ** 2 + 0 * X[:, 3]


def toy_background(n: int = 50, seed: int = 0) -> np.ndarray:
    """``n`` standard-normal background rows for :func:`toy_model`.

    >>> toy_background(3).shape
    (3, 4)
    """
    return np.random.default_rng(seed).standard_normal((n, 4))


def shap_exact(f: Callable[[np.ndarray], np.ndarray], x: np.ndarray, background: np.ndarray) -> np.ndarray:
    """The same values computed by ``shap.ExactExplainer`` with an ``Independent`` masker (the reference).

    >>> f = lambda X: X[:, 0] * X[:, 1]
    >>> shap_exact(f, np.array([2.0, 3.0]), np.zeros((1, 2))).round(6).tolist()
    [3.0, 3.0]
    """
    from tutorlib.explain._shap import import_shap

    shap = import_shap()
    x = np.asarray(x, dtype=np.float64)
    bg = _as_2d(background, x.shape[0])
    masker = shap.maskers.Independent(bg, max_samples=len(bg))
    explainer = shap.explainers.ExactExplainer(f, masker)
    return np.asarray(explainer(x[None, :]).values[0])


def shap_kernel(f: Callable[[np.ndarray], np.ndarray], x: np.ndarray, background: np.ndarray,
                nsamples: int | str = "auto", seed: int = 0) -> np.ndarray:
    """``shap.KernelExplainer``'s values (weighted linear regression over coalitions; exact when it enumerates all).

    >>> f = lambda X: X[:, 0] * X[:, 1]
    >>> shap_kernel(f, np.array([2.0, 3.0]), np.zeros((1, 2))).round(6).tolist()
    [3.0, 3.0]
    """
    from tutorlib.explain._shap import import_shap

    shap = import_shap()
    x = np.asarray(x, dtype=np.float64)
    bg = _as_2d(background, x.shape[0])
    explainer = shap.KernelExplainer(f, bg)
    state = np.random.get_state()  # KernelExplainer samples coalitions with NumPy's global generator
    np.random.seed(seed)
    try:
        values = explainer.shap_values(x[None, :], nsamples=nsamples, silent=True)
    finally:
        np.random.set_state(state)
    return np.asarray(values)[0]
