"""Deletion curves: does removing the tokens an explanation ranks highest actually change the prediction?

An explanation is *faithful* when the tokens it calls important are the ones the model relies on.
The deletion test (Samek et al., 2017; Petsiuk et al., 2018 "RISE"; DeYoung et al., 2020 "ERASER"
comprehensiveness) removes the ``k`` top-ranked tokens for ``k = 0, 1, …, n`` and records the
probability of the originally predicted class. A faithful ranking makes the probability fall fast:
a small area under the curve (AUC, x = fraction of tokens removed). Removing tokens in a random
order gives the baseline every method must beat.

Tokens are removed in id space (no re-tokenization): ``mode="delete"`` drops them, ``"mask"``
replaces them with ``[MASK]``.

>>> import numpy as np
>>> weights = {10: 2.0, 11: -1.0, 12: 0.5}
>>> prob = lambda seqs: np.array([1 / (1 + np.exp(-sum(weights[i] for i in s))) for s in seqs])
>>> curve = deletion_curve_from_fn(prob, [10, 11, 12], order=[0, 2, 1])
>>> curve.probs.round(3).tolist()
[0.818, 0.378, 0.269, 0.5]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from tutorlib.explain.attribution import Attribution

__all__ = ["DeletionCurve", "remove_tokens", "deletion_auc", "deletion_curve_from_fn", "deletion_curve",
           "random_deletion_curve", "faithfulness_table", "plot_deletion_curves", "DELETION_MODES"]

DELETION_MODES = ("delete", "mask")


@dataclass
class DeletionCurve:
    """Probabilities of the target after removing the top-k tokens, k = 0..n; ``auc`` is the area (lower = more faithful).

    ``fractions[k] = k / n``; ``std`` is set for averaged (random) curves.

    >>> c = DeletionCurve(np.array([0.0, 0.5, 1.0]), np.array([0.9, 0.5, 0.3]), "ig")
    >>> round(c.auc, 3), round(c.drop_at(0.5), 3)
    (0.55, 0.4)
    """

    fractions: np.ndarray
    probs: np.ndarray
    method: str
    std: np.ndarray | None = None
    order: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.fractions = np.asarray(self.fractions, dtype=np.float64)
        self.probs = np.asarray(self.probs, dtype=np.float64)
        if self.fractions.shape != self.probs.shape or self.fractions.ndim != 1 or len(self.probs) < 2:
            raise ValueError(f"fractions and probs must be 1-D of one length ≥ 2, got {self.fractions.shape} and {self.probs.shape}")

    @property
    def auc(self) -> float:
        """Area under the curve over the fraction of tokens removed (trapezoid rule)."""
        return deletion_auc(self.probs, self.fractions)

    def drop_at(self, fraction: float) -> float:
        """Probability drop ``p(0) − p(fraction)`` after removing that fraction of tokens (interpolated)."""
        if not 0 <= fraction <= 1:
            raise ValueError(f"fraction must be in [0, 1], got {fraction}")
        return float(self.probs[0] - np.interp(fraction, self.fractions, self.probs))


def deletion_auc(probs: Sequence[float], fractions: Sequence[float] | None = None) -> float:
    """Trapezoid-rule area under a deletion curve; ``fractions`` default to ``k / n`` for ``n + 1`` points.

    >>> deletion_auc([1.0, 0.0])
    0.5
    """
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 1 or len(p) < 2:
        raise ValueError(f"need a 1-D curve with at least 2 points (k = 0 and k = n), got shape {p.shape}")
    x = np.linspace(0.0, 1.0, len(p)) if fractions is None else np.asarray(fractions, dtype=np.float64)
    if x.shape != p.shape:
        raise ValueError(f"fractions has shape {x.shape}, probs {p.shape}: they must match")
    return float(np.sum((x[1:] - x[:-1]) * (p[1:] + p[:-1]) / 2))


def remove_tokens(ids: Sequence[int], positions: Sequence[int], mode: str = "delete",
                  mask_id: int | None = None) -> list[int]:
    """``ids`` with the tokens at ``positions`` dropped (``"delete"``) or replaced by ``mask_id`` (``"mask"``).

    >>> remove_tokens([5, 6, 7], [1]), remove_tokens([5, 6, 7], [0, 2], mode="mask", mask_id=0)
    ([5, 7], [0, 6, 0])
    """
    if mode not in DELETION_MODES:
        raise ValueError(f"mode must be one of {DELETION_MODES}, got {mode!r}")
    gone = set(int(p) for p in positions)
    bad = [p for p in gone if not 0 <= p < len(ids)]
    if bad:
        raise IndexError(f"positions {sorted(bad)} are outside the {len(ids)} tokens")
    if mode == "delete":
        return [int(t) for i, t in enumerate(ids) if i not in gone]
    if mask_id is None:
        raise ValueError("mode='mask' needs mask_id (the tokenizer's mask_token_id)")
    return [int(mask_id) if i in gone else int(t) for i, t in enumerate(ids)]


def deletion_curve_from_fn(prob_fn: Callable[[list[list[int]]], np.ndarray], ids: Sequence[int],
                           order: Sequence[int], mode: str = "delete", mask_id: int | None = None,
                           method: str = "custom") -> DeletionCurve:
    """Deletion curve for any ``prob_fn(list of id lists) -> (n,)`` target probabilities, removing ``order[:k]``.

    All ``n + 1`` variants are scored in one call.

    >>> prob = lambda seqs: np.array([len(s) / 4 for s in seqs])
    >>> deletion_curve_from_fn(prob, [1, 2, 3, 4], [3, 2, 1, 0]).probs.tolist()
    [1.0, 0.75, 0.5, 0.25, 0.0]
    """
    ids = [int(i) for i in ids]
    order = [int(o) for o in order]
    n = len(ids)
    if n == 0:
        raise ValueError("no tokens to delete")
    if sorted(order) != list(range(n)):
        raise ValueError(f"order must be a permutation of 0..{n - 1} (every token position once), got {order}")
    variants = [remove_tokens(ids, order[:k], mode, mask_id) for k in range(n + 1)]
    probs = np.asarray(prob_fn(variants), dtype=np.float64).reshape(-1)
    if probs.shape != (n + 1,):
        raise ValueError(f"prob_fn must return one probability per sequence ({n + 1}), got shape {probs.shape}")
    return DeletionCurve(np.arange(n + 1) / n, probs, method, order=order)


def _target_prob_fn(model: Any, tokenizer: Any, target: int, batch_size: int) -> Callable[[list[list[int]]], np.ndarray]:
    from tutorlib.explain.text import ids_prob_fn

    probs = ids_prob_fn(model, tokenizer, batch_size=batch_size)
    return lambda seqs: probs(seqs)[:, target]


def _check_attr(attribution: Attribution) -> None:
    if not isinstance(attribution, Attribution):
        raise TypeError(f"expected an Attribution (from explain_text), got {type(attribution).__name__}")
    if attribution.input_ids is None:
        raise ValueError("this Attribution has no input_ids: make it with tutorlib.explain.explain_text")


def deletion_curve(model: Any, tokenizer: Any, attribution: Attribution, mode: str = "delete", by: str = "signed",
                   batch_size: int = 64) -> DeletionCurve:
    """Remove the attribution's top-ranked tokens one by one and record p(target) (see module docstring).

    ``by="signed"`` removes the most supportive tokens first (unsigned attention ranks by size either way).

    >>> from tutorlib.explain.text import load_review_classifier, explain_text
    >>> model, tok = load_review_classifier()
    >>> a = explain_text(model, tok, "Lovely staff.", method="attention")
    >>> len(deletion_curve(model, tok, a).probs)
    4
    """
    _check_attr(attribution)
    order = attribution.ranking(by if attribution.signed else "abs").tolist()
    fn = _target_prob_fn(model, tokenizer, attribution.target, batch_size)
    return deletion_curve_from_fn(fn, attribution.input_ids, order, mode, tokenizer.mask_token_id, attribution.method)


def random_deletion_curve(model: Any, tokenizer: Any, attribution: Attribution, n_repeats: int = 10, seed: int = 0,
                          mode: str = "delete", batch_size: int = 64) -> DeletionCurve:
    """The baseline: the mean deletion curve over ``n_repeats`` random orders (``std`` holds the spread).

    >>> from tutorlib.explain.text import load_review_classifier, explain_text
    >>> model, tok = load_review_classifier()
    >>> a = explain_text(model, tok, "Lovely staff.", method="attention")
    >>> random_deletion_curve(model, tok, a, n_repeats=2).method
    'random'
    """
    _check_attr(attribution)
    if n_repeats < 1:
        raise ValueError(f"n_repeats must be at least 1, got {n_repeats}")
    rng = np.random.default_rng(seed)
    fn = _target_prob_fn(model, tokenizer, attribution.target, batch_size)
    n = len(attribution)
    orders = [rng.permutation(n).tolist() for _ in range(n_repeats)]
    variants = [remove_tokens(attribution.input_ids, o[:k], mode, tokenizer.mask_token_id) for o in orders
                for k in range(n + 1)]
    probs = np.asarray(fn(variants)).reshape(n_repeats, n + 1)
    return DeletionCurve(np.arange(n + 1) / n, probs.mean(0), "random", std=probs.std(0))


def faithfulness_table(model: Any, tokenizer: Any, attributions: Mapping[str, Sequence[Attribution]],
                       n_random: int = 10, mode: str = "delete", seed: int = 0,
                       fraction: float = 0.2) -> dict[str, dict[str, Any]]:
    """Mean deletion AUC and probability drop (after removing ``fraction`` of the tokens) per method, plus random.

    Each row is ``{"auc": mean, "drop": mean, "n": texts, "aucs": [AUC per text], "curves": [DeletionCurve per text]}``.

    ``attributions`` is ``{method: [Attribution per text]}`` (as from :func:`~tutorlib.explain.text.explain_many`);
    the random baseline uses the texts of the first method. Lower AUC, larger drop = more faithful.

    >>> from tutorlib.explain.text import load_review_classifier, explain_many
    >>> model, tok = load_review_classifier()
    >>> atts = explain_many(model, tok, ["Lovely staff."], methods=("attention",), progress=False)
    >>> sorted(faithfulness_table(model, tok, atts, n_random=2))
    ['attention', 'random']
    """
    if not attributions:
        raise ValueError("attributions is empty: pass {method: [Attribution, ...]}")
    table: dict[str, dict[str, Any]] = {}
    for name, atts in attributions.items():
        curves = [deletion_curve(model, tokenizer, a, mode=mode) for a in atts]
        table[name] = {"auc": float(np.mean([c.auc for c in curves])),
                       "drop": float(np.mean([c.drop_at(fraction) for c in curves])), "n": len(curves),
                       "aucs": [c.auc for c in curves], "curves": curves}
    first = next(iter(attributions.values()))
    rand = [random_deletion_curve(model, tokenizer, a, n_repeats=n_random, seed=seed + i, mode=mode)
            for i, a in enumerate(first)]
    table["random"] = {"auc": float(np.mean([c.auc for c in rand])),
                       "drop": float(np.mean([c.drop_at(fraction) for c in rand])), "n": len(rand),
                       "aucs": [c.auc for c in rand], "curves": rand}
    return table


def plot_deletion_curves(curves: Mapping[str, DeletionCurve], title: str = "Deletion curves", ax: Any = None) -> Any:
    """Plot several deletion curves (probability of the predicted class vs fraction of tokens removed); returns the figure.

    >>> c = DeletionCurve(np.array([0.0, 1.0]), np.array([0.9, 0.4]), "ig")
    >>> plot_deletion_curves({"ig": c}).axes[0].get_xlabel()
    'fraction of tokens removed (most important first)'
    """
    import matplotlib.pyplot as plt

    if ax is None:
        fig, ax = plt.subplots(figsize=(6, 4))
    else:
        fig = ax.figure
    for name, c in curves.items():
        style = {"color": "gray", "linestyle": "--"} if c.method == "random" else {}
        ax.plot(c.fractions, c.probs, marker="o", markersize=3, label=f"{name} (AUC {c.auc:.3f})", **style)
        if c.std is not None:
            ax.fill_between(c.fractions, c.probs - c.std, c.probs + c.std, color="gray", alpha=0.15)
    ax.set_xlabel("fraction of tokens removed (most important first)")
    ax.set_ylabel("probability of the predicted class")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(title)
    ax.legend(fontsize=8)
    return fig
