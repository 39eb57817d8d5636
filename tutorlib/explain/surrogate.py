"""LIME from scratch: perturb, weight by closeness, fit a weighted linear model, read its coefficients.

LIME (Ribeiro et al., 2016) explains one prediction with a linear model that imitates the black
box *near* that input. For text it (1) draws perturbed copies of the sentence with random subsets
of tokens switched off, (2) asks the model for their probabilities, (3) weights each copy by a
locality kernel of its distance to the original, ``π(d) = sqrt(exp(−d² / w²))``, and (4) fits a
weighted ridge regression from "which tokens are on" to the probability. The coefficients are the
explanation. Two choices change the answer: the kernel width ``w`` (how local "local" is) and the
random sample (how many perturbations, which seed) — :mod:`tutorlib.explain.tabular` measures both.

This module reproduces ``lime.lime_text.LimeTextExplainer`` exactly (same sampling with the same
``numpy.random.RandomState``, cosine distance ×100, the same kernel and ``Ridge(alpha=1)``), which
the tests check.

>>> import numpy as np
>>> lime_kernel(np.array([0.0, 25.0]), kernel_width=25).round(4).tolist()
[1.0, 0.6065]
"""

from __future__ import annotations

from typing import Callable

import numpy as np

__all__ = ["lime_kernel", "fit_local_surrogate", "sample_masks", "cosine_distances", "lime_from_scratch"]


def lime_kernel(distances: np.ndarray, kernel_width: float) -> np.ndarray:
    """LIME's exponential locality kernel ``sqrt(exp(−d² / w²))``: 1 at the input, falling with distance.

    >>> lime_kernel(np.array([0.0, 10.0, 100.0]), 25.0).round(3).tolist()
    [1.0, 0.923, 0.0]
    """
    if not np.isfinite(kernel_width) or kernel_width <= 0:
        raise ValueError(f"kernel_width must be a positive number, got {kernel_width!r}")
    d = np.asarray(distances, dtype=np.float64)
    return np.sqrt(np.exp(-(d ** 2) / kernel_width ** 2))


def fit_local_surrogate(Z: np.ndarray, y: np.ndarray, weights: np.ndarray,
                        alpha: float = 1.0) -> tuple[float, np.ndarray]:
    """Weighted ridge regression with an unpenalised intercept: ``min Σ w_n (y_n − b − Z_n·c)² + α‖c‖²``.

    Returns ``(intercept b, coefficients c)``; the same numbers as ``sklearn.linear_model.Ridge(alpha)``
    fitted with ``sample_weight=weights`` (what LIME uses).

    >>> Z = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.0, 0.0]]); y = Z @ [2.0, -1.0] + 0.5
    >>> b, c = fit_local_surrogate(Z, y, np.ones(4), alpha=0.0); round(b, 6), c.round(6).tolist()
    (0.5, [2.0, -1.0])
    """
    Z = np.asarray(Z, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    if Z.ndim != 2:
        raise ValueError(f"Z must be a 2-D (samples, features) array, got shape {Z.shape}")
    if y.shape != (len(Z),) or w.shape != (len(Z),):
        raise ValueError(f"y and weights must have shape ({len(Z)},) to match Z, got {y.shape} and {w.shape}")
    if np.any(w < 0) or w.sum() <= 0:
        raise ValueError("weights must be non-negative and not all zero")
    if alpha < 0:
        raise ValueError(f"alpha must be ≥ 0, got {alpha}")
    z_mean = (w[:, None] * Z).sum(0) / w.sum()
    y_mean = (w * y).sum() / w.sum()
    Zc, yc = Z - z_mean, y - y_mean
    A = Zc.T @ (w[:, None] * Zc) + alpha * np.eye(Z.shape[1])
    coef = np.linalg.lstsq(A, Zc.T @ (w * yc), rcond=None)[0]
    return float(y_mean - z_mean @ coef), coef


def sample_masks(n_features: int, num_samples: int, random_state: np.random.RandomState) -> np.ndarray:
    """LIME's text perturbations: row 0 keeps everything; each other row switches off 1..d random tokens.

    Draws from ``random_state`` in the same order as ``LimeTextExplainer`` (sizes first, then the
    tokens of each row), so the same seed gives the same samples. Returns a (num_samples, d) 0/1 array.

    >>> sample_masks(3, 4, np.random.RandomState(0)).astype(int).tolist()[0]
    [1, 1, 1]
    """
    if n_features < 1 or num_samples < 1:
        raise ValueError(f"need at least one feature and one sample, got n_features={n_features}, num_samples={num_samples}")
    sizes = random_state.randint(1, n_features + 1, num_samples - 1)
    data = np.ones((num_samples, n_features))
    for i, size in enumerate(sizes, start=1):
        off = random_state.choice(range(n_features), size, replace=False)
        data[i, off] = 0
    return data


def cosine_distances(data: np.ndarray) -> np.ndarray:
    """Cosine distance ×100 of every row to row 0 (an all-zero row is at distance 100), as LIME text does.

    >>> cosine_distances(np.array([[1.0, 1.0], [1.0, 0.0], [0.0, 0.0]])).round(2).tolist()
    [0.0, 29.29, 100.0]
    """
    data = np.asarray(data, dtype=np.float64)
    norms = np.linalg.norm(data, axis=1)
    ref = data[0] / max(norms[0], 1e-300)
    safe = np.where(norms > 0, norms, 1.0)
    cos = (data @ ref) / safe
    cos = np.where(norms > 0, cos, 0.0)
    return (1.0 - np.clip(cos, -1.0, 1.0)) * 100


def lime_from_scratch(predict_masks: Callable[[np.ndarray], np.ndarray], n_features: int, num_samples: int = 500,
                      kernel_width: float = 25.0, seed: int = 0, target: int = 1,
                      alpha: float = 1.0) -> tuple[np.ndarray, float]:
    """LIME for a model of on/off features: sample masks, predict, weight, fit; returns (coefficients, intercept).

    ``predict_masks`` maps a (n, d) 0/1 array (1 = token kept) to (n, C) class probabilities.

    >>> w = np.array([0.5, -0.3, 0.0])
    >>> p = lambda M: np.stack([1 - M @ w / 2 - 0.25, M @ w / 2 + 0.25], 1)
    >>> coef, intercept = lime_from_scratch(p, 3, num_samples=200, alpha=0.0)
    >>> (coef.round(3) + 0.0).tolist()
    [0.25, -0.15, 0.0]
    """
    rs = np.random.RandomState(seed)
    data = sample_masks(n_features, num_samples, rs)
    probs = np.asarray(predict_masks(data), dtype=np.float64)
    if probs.ndim != 2 or probs.shape[0] != num_samples or not 0 <= target < probs.shape[1]:
        raise ValueError(f"predict_masks must return ({num_samples}, C) probabilities with C > target={target}, got {probs.shape}")
    weights = lime_kernel(cosine_distances(data), kernel_width)
    intercept, coef = fit_local_surrogate(data, probs[:, target], weights, alpha)
    return coef, intercept
