"""Do two explanations of the same prediction agree? Rank correlation and top-k overlap.

Explanation methods answer different questions (SHAP: fair share of a coalition game; LIME: a
local linear fit; IG: path-integrated gradients; attention: where the model looked), so there is
no reason for them to agree — and on text they often do not (Krishna et al., 2022, "The
disagreement problem in explainable ML"). Three numbers compare two score vectors over the same
tokens:

- Spearman's ρ: correlation of the rankings (1 = same order, 0 = unrelated, −1 = reversed);
- Kendall's τ: the share of token pairs ordered the same way minus the share ordered differently;
- top-k overlap: ``|top_k(a) ∩ top_k(b)| / k`` — do they name the same few tokens?

``by="abs"`` compares importance regardless of direction (needed when one method, attention, is
unsigned); ``by="signed"`` compares the scores as they are.

>>> import numpy as np
>>> r = rank_agreement(np.array([3.0, 2.0, 1.0, 0.0]), np.array([0.3, 0.2, 0.0, 0.1]), k=2)
>>> round(r["spearman"], 2), round(r["kendall"], 2), r["topk_overlap"]
(0.8, 0.67, 1.0)
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from tutorlib.explain.attribution import Attribution

__all__ = ["spearman", "kendall", "topk_overlap", "rank_agreement", "agreement_matrix", "mean_agreement",
           "plot_agreement"]

METRICS = ("spearman", "kendall", "topk_overlap")


def _vectors(a: Any, b: Any, by: str) -> tuple[np.ndarray, np.ndarray]:
    if by not in ("abs", "signed"):
        raise ValueError(f"by must be 'abs' or 'signed', got {by!r}")
    if isinstance(a, Attribution) and isinstance(b, Attribution) and a.tokens != b.tokens:
        raise ValueError(f"the two attributions explain different tokens ({len(a)} vs {len(b)}): "
                         "compare explanations of the same text")
    va = np.asarray(a.scores if isinstance(a, Attribution) else a, dtype=np.float64)
    vb = np.asarray(b.scores if isinstance(b, Attribution) else b, dtype=np.float64)
    if va.ndim != 1 or va.shape != vb.shape:
        raise ValueError(f"expected two 1-D score vectors of one length, got shapes {va.shape} and {vb.shape}")
    if len(va) < 2:
        raise ValueError("need at least 2 tokens to compare rankings")
    if by == "abs":
        va, vb = np.abs(va), np.abs(vb)
    return va, vb


def spearman(a: Any, b: Any, by: str = "abs") -> float:
    """Spearman rank correlation of two score vectors (or Attributions); 0 when either is constant.

    >>> spearman([1.0, 2.0, 3.0], [10.0, 20.0, 30.0])
    1.0
    """
    from scipy.stats import spearmanr

    va, vb = _vectors(a, b, by)
    if np.ptp(va) == 0 or np.ptp(vb) == 0:
        return 0.0
    return float(spearmanr(va, vb).statistic)


def kendall(a: Any, b: Any, by: str = "abs") -> float:
    """Kendall's τ-b of two score vectors (or Attributions); 0 when either is constant.

    >>> kendall([1.0, 2.0, 3.0], [3.0, 2.0, 1.0])
    -1.0
    """
    from scipy.stats import kendalltau

    va, vb = _vectors(a, b, by)
    if np.ptp(va) == 0 or np.ptp(vb) == 0:
        return 0.0
    return float(kendalltau(va, vb).statistic)


def topk_overlap(a: Any, b: Any, k: int = 3, by: str = "abs") -> float:
    """Fraction of the ``k`` highest-scoring tokens the two share (ties broken by token order).

    >>> topk_overlap([5.0, 4.0, 0.0, 0.0], [0.0, 4.0, 5.0, 0.0], k=2)
    0.5
    """
    va, vb = _vectors(a, b, by)
    if not 1 <= k <= len(va):
        raise ValueError(f"k must be in 1..{len(va)} (the number of tokens), got {k}")
    ta = set(np.argsort(-va, kind="stable")[:k].tolist())
    tb = set(np.argsort(-vb, kind="stable")[:k].tolist())
    return len(ta & tb) / k


def rank_agreement(a: Any, b: Any, k: int = 3, by: str = "abs") -> dict[str, float]:
    """Spearman, Kendall and top-k overlap of two explanations of the same text, as a dict.

    ``k`` is capped at the number of tokens.

    >>> sorted(rank_agreement([1.0, 2.0, 3.0], [1.0, 3.0, 2.0]))
    ['kendall', 'spearman', 'topk_overlap']
    """
    va, vb = _vectors(a, b, by)
    k = min(k, len(va))
    return {"spearman": spearman(va, vb, "signed"), "kendall": kendall(va, vb, "signed"),
            "topk_overlap": topk_overlap(va, vb, k, "signed")}


def agreement_matrix(attributions: Mapping[str, Attribution], metric: str = "spearman", k: int = 3,
                     by: str = "abs") -> tuple[list[str], np.ndarray]:
    """Pairwise agreement between several methods' explanations of ONE text: (names, (M, M) matrix).

    >>> names, m = agreement_matrix({"a": Attribution(["x", "y"], [1.0, 0.0], "a", 1, 0.5),
    ...                              "b": Attribution(["x", "y"], [0.0, 1.0], "b", 1, 0.5)})
    >>> m.round(6).tolist()
    [[1.0, -1.0], [-1.0, 1.0]]
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    names = list(attributions)
    M = np.eye(len(names))
    for i, ni in enumerate(names):
        for j in range(i + 1, len(names)):
            value = rank_agreement(attributions[ni], attributions[names[j]], k=k, by=by)[metric]
            M[i, j] = M[j, i] = value
    return names, M


def mean_agreement(attributions: Mapping[str, Sequence[Attribution]], metric: str = "spearman", k: int = 3,
                   by: str = "abs") -> tuple[list[str], np.ndarray]:
    """Agreement matrices averaged over texts; ``attributions`` is ``{method: [Attribution per text]}``.

    >>> a = Attribution(["x", "y", "z"], [3.0, 2.0, 1.0], "a", 1, 0.5)
    >>> names, m = mean_agreement({"a": [a], "b": [a]}); m.tolist()
    [[1.0, 1.0], [1.0, 1.0]]
    """
    names = list(attributions)
    lengths = {len(v) for v in attributions.values()}
    if len(lengths) != 1 or 0 in lengths:
        raise ValueError(f"every method needs one Attribution per text, got counts "
                         f"{ {n: len(v) for n, v in attributions.items()} }")
    mats = [agreement_matrix({n: attributions[n][t] for n in names}, metric, k, by)[1] for t in range(lengths.pop())]
    return names, np.mean(mats, axis=0)


def plot_agreement(names: Sequence[str], matrix: np.ndarray, title: str = "Agreement between methods",
                   metric: str = "Spearman ρ", ax: Any = None) -> Any:
    """Heatmap of an agreement matrix with the values written in the cells; returns the figure.

    >>> fig = plot_agreement(["a", "b"], np.array([[1.0, 0.2], [0.2, 1.0]]))
    >>> fig.axes[0].get_title()
    'Agreement between methods'
    """
    import matplotlib.pyplot as plt

    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.shape != (len(names), len(names)):
        raise ValueError(f"matrix must be ({len(names)}, {len(names)}) for {len(names)} names, got {matrix.shape}")
    if ax is None:
        fig, ax = plt.subplots(figsize=(1.2 * len(names) + 2, 1.1 * len(names) + 1.5))
    else:
        fig = ax.figure
    im = ax.imshow(matrix, cmap="RdBu_r", vmin=-1, vmax=1)
    ax.set_xticks(range(len(names)), names)
    ax.set_yticks(range(len(names)), names)
    for i in range(len(names)):
        for j in range(len(names)):
            ax.text(j, i, f"{matrix[i, j]:.2f}", ha="center", va="center", fontsize=9,
                    color="white" if abs(matrix[i, j]) > 0.6 else "black")
    ax.set_xlabel("method")
    ax.set_ylabel("method")
    ax.set_title(title)
    fig.colorbar(im, ax=ax, label=metric, fraction=0.046)
    return fig
