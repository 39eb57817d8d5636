"""Group fairness: per-group metrics, demographic-parity and equalized-odds gaps, and reweighing (Kamiran & Calders, 2012).

Demographic parity asks every group to get positive predictions at the same rate; equalized odds
(Hardt et al., 2016) asks for the same true-positive *and* false-positive rates. A gap is the
largest difference between any two groups (0 = fair by that definition). Reweighing gives each
training example the weight ``P(group)·P(label) / P(group, label)``, which makes label and group
independent in the weighted training set.

>>> y = [1, 1, 0, 0, 1, 0]; p = [1, 0, 0, 1, 1, 0]; g = ["a", "a", "a", "b", "b", "b"]
>>> round(demographic_parity_gap(p, g), 3), round(equalized_odds_gap(y, p, g), 3)
(0.333, 0.5)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["group_metrics", "demographic_parity_gap", "equalized_odds_gap", "reweighing_weights", "skew_groups"]


def _arrays(*xs: Any) -> list[np.ndarray]:
    arrs = [np.asarray(x.cpu() if hasattr(x, "cpu") else x) for x in xs]
    n = {len(a) for a in arrs}
    if len(n) != 1:
        raise ValueError(f"all inputs must have the same length, got {[len(a) for a in arrs]}")
    if arrs[0].size == 0:
        raise ValueError("inputs are empty")
    return arrs


def _binary(a: np.ndarray, name: str) -> np.ndarray:
    if not np.isin(a, (0, 1)).all():
        raise ValueError(f"{name} must be binary 0/1 (1 = the favourable/positive outcome), got values {np.unique(a)[:5]}")
    return a.astype(int)


def group_metrics(y_true: Sequence[int], y_pred: Sequence[int], groups: Sequence[Any]) -> dict[Any, dict[str, float]]:
    """Per group: ``n``, ``accuracy``, ``positive_rate`` P(ŷ=1), ``tpr`` P(ŷ=1|y=1), ``fpr`` P(ŷ=1|y=0) (NaN if undefined).

    >>> m = group_metrics([1, 0, 1, 0], [1, 1, 0, 0], ["a", "a", "b", "b"])
    >>> m["a"]["tpr"], m["a"]["fpr"], m["b"]["accuracy"]
    (1.0, 1.0, 0.5)
    """
    y, p, g = _arrays(y_true, y_pred, groups)
    y, p = _binary(y, "y_true"), _binary(p, "y_pred")
    out = {}
    for grp in sorted(set(g.tolist()), key=str):
        s = g == grp
        pos, neg = s & (y == 1), s & (y == 0)
        out[grp] = {
            "n": float(s.sum()),
            "accuracy": float((p[s] == y[s]).mean()),
            "positive_rate": float(p[s].mean()),
            "tpr": float(p[pos].mean()) if pos.any() else float("nan"),
            "fpr": float(p[neg].mean()) if neg.any() else float("nan"),
        }
    return out


def _gap(values: list[float]) -> float:
    v = [x for x in values if not np.isnan(x)]
    return float(max(v) - min(v)) if len(v) > 1 else 0.0


def demographic_parity_gap(y_pred: Sequence[int], groups: Sequence[Any]) -> float:
    """``max_g P(ŷ=1 | g) − min_g P(ŷ=1 | g)``.

    >>> demographic_parity_gap([1, 1, 0, 1], ["a", "a", "b", "b"])
    0.5
    """
    p, g = _arrays(y_pred, groups)
    p = _binary(p, "y_pred")
    return _gap([float(p[g == grp].mean()) for grp in set(g.tolist())])


def equalized_odds_gap(y_true: Sequence[int], y_pred: Sequence[int], groups: Sequence[Any]) -> float:
    """``max(TPR gap, FPR gap)`` across groups (groups lacking a class are skipped for that rate).

    >>> equalized_odds_gap([1, 0, 1, 0], [1, 0, 0, 0], ["a", "a", "b", "b"])
    1.0
    """
    m = group_metrics(y_true, y_pred, groups)
    return max(_gap([v["tpr"] for v in m.values()]), _gap([v["fpr"] for v in m.values()]))


def reweighing_weights(y: Sequence[int], groups: Sequence[Any]) -> np.ndarray:
    """Kamiran–Calders weights ``P(g)·P(y) / P(g, y)`` per example (mean 1); group and label become independent.

    >>> reweighing_weights([1, 1, 1, 0], ["a", "a", "a", "a"]).tolist()
    [1.0, 1.0, 1.0, 1.0]
    >>> reweighing_weights([1, 1, 0, 0, 0, 0], ["a", "a", "a", "b", "b", "b"]).round(3).tolist()
    [0.5, 0.5, 2.0, 0.667, 0.667, 0.667]
    """
    yy, g = _arrays(y, groups)
    w = np.empty(len(yy), dtype=np.float64)
    n = len(yy)
    for grp in set(g.tolist()):
        for lab in set(yy.tolist()):
            s = (g == grp) & (yy == lab)
            if s.any():
                w[s] = ((g == grp).sum() / n) * ((yy == lab).sum() / n) / (s.sum() / n)
    return w


def skew_groups(y: Sequence[int], groups: Sequence[Any], skewed: dict[Any, float], seed: int = 0) -> np.ndarray:
    """Indices of a subsample where each group ``g`` in ``skewed`` keeps only a fraction ``skewed[g]`` of its
    positives (a collection bias: e.g. few happy reviews of airlines were gathered). Other examples are all kept.

    >>> skew_groups([1, 1, 1, 1, 0], ["a"] * 5, {"a": 0.5}).tolist()
    [0, 2, 4]
    """
    yy, g = _arrays(y, groups)
    rng = np.random.default_rng(seed)
    keep = np.ones(len(yy), dtype=bool)
    for grp, frac in skewed.items():
        if not 0 <= frac <= 1:
            raise ValueError(f"fraction for group {grp!r} must be in [0, 1], got {frac}")
        pos = np.flatnonzero((g == grp) & (yy == 1))
        if len(pos) == 0:
            raise ValueError(f"group {grp!r} has no positive examples (groups present: {sorted(set(g.tolist()), key=str)[:8]})")
        drop = rng.permutation(pos)[int(round(frac * len(pos))):]
        keep[drop] = False
    return np.flatnonzero(keep)
