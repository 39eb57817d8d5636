"""Ensembles: soft-vote averaging, majority voting and stacking of several classifiers, measured against the best single one.

Averaging (soft voting) mixes predicted probabilities; stacking trains a meta-classifier on
*out-of-fold* probabilities of the base models, so it learns which model to trust where without
seeing predictions made on the examples the base models were fitted on.

>>> import numpy as np
>>> p1 = np.array([[0.9, 0.1], [0.4, 0.6]]); p2 = np.array([[0.6, 0.4], [0.2, 0.8]])
>>> average_probs([p1, p2]).round(2).tolist()
[[0.75, 0.25], [0.3, 0.7]]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["average_probs", "majority_vote", "default_classifiers", "fit_ensemble", "EnsembleResult"]


def _as_probs(probs: Sequence[Any]) -> np.ndarray:
    if len(probs) == 0:
        raise ValueError("need at least one array of probabilities")
    arrs = [np.asarray(p, dtype=np.float64) for p in probs]
    shapes = {a.shape for a in arrs}
    if len(shapes) != 1 or arrs[0].ndim != 2:
        raise ValueError(f"every model's probabilities must have the same (N, n_classes) shape, got {sorted(shapes)}")
    return np.stack(arrs)


def average_probs(probs: Sequence[Any], weights: Sequence[float] | None = None) -> np.ndarray:
    """Soft voting: the (weighted) mean of several models' ``(N, C)`` probabilities.

    >>> average_probs([[[1.0, 0.0]], [[0.0, 1.0]]], weights=[3, 1]).tolist()
    [[0.75, 0.25]]
    """
    P = _as_probs(probs)
    if weights is None:
        return P.mean(0)
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (P.shape[0],) or (w < 0).any() or w.sum() <= 0:
        raise ValueError(f"weights must be {P.shape[0]} non-negative numbers with a positive sum, got {list(weights)}")
    return np.tensordot(w / w.sum(), P, axes=1)


def majority_vote(probs: Sequence[Any]) -> np.ndarray:
    """Hard voting: the most frequent argmax per example (ties go to the lowest class index).

    >>> majority_vote([[[0.9, 0.1]], [[0.2, 0.8]], [[0.6, 0.4]]]).tolist()
    [0]
    """
    P = _as_probs(probs)
    votes = P.argmax(-1)  # (M, N)
    C = P.shape[-1]
    counts = np.stack([(votes == c).sum(0) for c in range(C)], axis=1)
    return counts.argmax(1)


def default_classifiers(seed: int = 0) -> dict[str, Any]:
    """Five diverse scikit-learn classifiers for small tabular/image data (all with ``predict_proba``).

    >>> sorted(default_classifiers())
    ['forest', 'knn', 'logreg', 'mlp', 'svm']
    """
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.neural_network import MLPClassifier
    from sklearn.svm import SVC

    return {
        "logreg": LogisticRegression(max_iter=500, C=0.5),
        "knn": KNeighborsClassifier(n_neighbors=5),
        "svm": CalibratedClassifierCV(SVC(C=1.0, gamma="scale", random_state=seed), ensemble=False),
        "forest": RandomForestClassifier(n_estimators=100, random_state=seed),
        "mlp": MLPClassifier(hidden_layer_sizes=(64,), max_iter=400, random_state=seed),
    }


class EnsembleResult(dict):
    """Test accuracy per single model and per ensemble, plus ``best_single`` (name) and ``probs`` (per model)."""


def fit_ensemble(X_train: np.ndarray, y_train: np.ndarray, X_test: np.ndarray, y_test: np.ndarray,
                 models: dict[str, Any] | None = None, cv: int = 5, seed: int = 0) -> EnsembleResult:
    """Fit each model, then measure averaging, majority vote and stacking (logistic regression on
    out-of-fold probabilities, ``cv`` folds) on the test set.

    Returns an :class:`EnsembleResult` mapping names (each model, ``"average"``, ``"vote"``,
    ``"stacking"``) to test accuracy, with ``best_single`` and the per-model test ``probs``.

    >>> from sklearn.datasets import load_iris
    >>> X, y = load_iris(return_X_y=True); idx = np.random.default_rng(0).permutation(150)
    >>> r = fit_ensemble(X[idx[:100]], y[idx[:100]], X[idx[100:]], y[idx[100:]], cv=3)
    >>> r["stacking"] > 0.8 and r.best_single in r
    True
    """
    from sklearn.base import clone
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    X_train, X_test = np.asarray(X_train), np.asarray(X_test)
    y_train, y_test = np.asarray(y_train), np.asarray(y_test)
    if X_train.ndim != 2 or X_test.ndim != 2:
        raise ValueError(f"X must be 2-D (N, features), got {X_train.shape} and {X_test.shape}: flatten images first")
    if len(X_train) != len(y_train) or len(X_test) != len(y_test):
        raise ValueError("X and y must have the same number of rows")
    models = models or default_classifiers(seed)
    res = EnsembleResult()
    test_p, oof_p = {}, {}
    folds = StratifiedKFold(cv, shuffle=True, random_state=seed)
    for name, est in models.items():
        oof_p[name] = cross_val_predict(clone(est), X_train, y_train, cv=folds, method="predict_proba")
        fitted = clone(est).fit(X_train, y_train)
        test_p[name] = fitted.predict_proba(X_test)
        res[name] = float((test_p[name].argmax(1) == y_test).mean())
    res.best_single = max(models, key=lambda n: res[n])
    res["average"] = float((average_probs(list(test_p.values())).argmax(1) == y_test).mean())
    res["vote"] = float((majority_vote(list(test_p.values())) == y_test).mean())
    meta = LogisticRegression(max_iter=1000).fit(np.hstack(list(oof_p.values())), y_train)
    res["stacking"] = float((meta.predict(np.hstack(list(test_p.values()))) == y_test).mean())
    res.probs = test_p
    res.meta = meta
    return res
