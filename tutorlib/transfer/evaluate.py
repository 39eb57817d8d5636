"""Evaluation done right: precision/recall/F1 from the confusion matrix, calibration (reliability diagram, ECE),
and results per group (domain) — accuracy alone hides which class and which group a model fails on.

>>> import torch
>>> cm = torch.tensor([[5, 1], [2, 2]])
>>> [round(v, 3) for v in f1_from_confusion(cm)[2].tolist()]
[0.769, 0.571]
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from tutorlib.train.metrics import as_predictions, confusion_matrix

__all__ = ["f1_from_confusion", "classification_report", "reliability_bins", "expected_calibration_error",
           "per_group_results", "plot_reliability", "plot_per_group", "report_table"]


def f1_from_confusion(cm: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-class precision, recall and F1 from a confusion matrix ``cm[true, predicted]`` (0 where undefined).

    precision_c = cm[c, c] / column sum, recall_c = cm[c, c] / row sum, F1 = their harmonic mean.
    Returns three float64 tensors of shape (C,).

    >>> [t.tolist() for t in f1_from_confusion(torch.tensor([[2, 0], [0, 0]]))]
    [[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]]
    """
    if not isinstance(cm, torch.Tensor) or cm.dim() != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"expected a square confusion matrix (C, C), got {getattr(cm, 'shape', type(cm).__name__)}")
    if bool((cm < 0).any()):
        raise ValueError("a confusion matrix holds counts: found negative entries")
    cm = cm.double()
    tp = cm.diag()
    predicted, actual = cm.sum(0), cm.sum(1)
    precision = torch.where(predicted > 0, tp / predicted.clamp(min=1e-12), torch.zeros_like(tp))
    recall = torch.where(actual > 0, tp / actual.clamp(min=1e-12), torch.zeros_like(tp))
    denom = precision + recall
    f1 = torch.where(denom > 0, 2 * precision * recall / denom.clamp(min=1e-12), torch.zeros_like(tp))
    return precision, recall, f1


def classification_report(outputs: torch.Tensor, targets: torch.Tensor, label_names: Sequence[str] | None = None,
                          num_classes: int | None = None) -> dict[str, Any]:
    """Accuracy, macro F1, the confusion matrix and per-class precision/recall/F1/support.

    ``outputs`` are logits (N, C) or predicted labels (N,).

    >>> r = classification_report(torch.tensor([0, 1, 1]), torch.tensor([0, 1, 0]), ["neg", "pos"])
    >>> r["accuracy"], [c["label"] for c in r["per_class"]]
    (0.6666666666666666, ['neg', 'pos'])
    """
    preds = as_predictions(outputs).cpu()
    t = torch.as_tensor(targets).cpu().long()
    c = num_classes or (len(label_names) if label_names is not None else None)
    cm = confusion_matrix(preds, t, c)
    precision, recall, f1 = f1_from_confusion(cm)
    names = list(label_names) if label_names is not None else [str(i) for i in range(cm.shape[0])]
    if len(names) != cm.shape[0]:
        raise ValueError(f"{len(names)} label names for {cm.shape[0]} classes")
    per_class = [{"label": names[i], "precision": float(precision[i]), "recall": float(recall[i]),
                  "f1": float(f1[i]), "support": int(cm[i].sum())} for i in range(cm.shape[0])]
    return {"accuracy": float((preds == t).double().mean()), "macro_f1": float(f1.mean()), "confusion": cm,
            "per_class": per_class, "labels": names}


def reliability_bins(probs: torch.Tensor, targets: torch.Tensor, n_bins: int = 10) -> dict[str, torch.Tensor]:
    """Bin predictions by confidence (the top probability) into ``n_bins`` equal-width bins on [0, 1].

    Returns ``edges`` (n_bins + 1), and per bin ``confidence`` (mean top probability), ``accuracy``
    (fraction correct) and ``counts``; empty bins have confidence and accuracy NaN. A perfectly
    calibrated model has accuracy = confidence in every bin. A confidence of exactly 1 goes to the last bin.

    >>> b = reliability_bins(torch.tensor([[0.9, 0.1], [0.2, 0.8]]), torch.tensor([0, 0]), n_bins=2)
    >>> b["counts"].tolist(), b["accuracy"].tolist()
    ([0, 2], [nan, 0.5])
    """
    if not isinstance(probs, torch.Tensor) or probs.dim() != 2:
        raise ValueError(f"expected probabilities (N, C), got {getattr(probs, 'shape', type(probs).__name__)}: apply softmax to logits")
    if n_bins < 1:
        raise ValueError(f"n_bins must be at least 1, got {n_bins}")
    p = probs.detach().double().cpu()
    if bool((p < -1e-6).any()) or not torch.allclose(p.sum(1), torch.ones(len(p), dtype=p.dtype), atol=1e-3):
        raise ValueError("rows of probs must be probabilities that sum to 1: apply softmax(logits, dim=1) first")
    t = torch.as_tensor(targets).cpu().long()
    if t.shape != p.shape[:1]:
        raise ValueError(f"probs has {len(p)} rows but targets has shape {tuple(t.shape)}")
    conf, pred = p.max(dim=1)
    correct = (pred == t).double()
    edges = torch.linspace(0, 1, n_bins + 1, dtype=torch.float64)
    idx = torch.clamp((conf * n_bins).floor().long(), max=n_bins - 1)
    counts = torch.bincount(idx, minlength=n_bins)
    sum_conf = torch.zeros(n_bins, dtype=torch.float64).index_add_(0, idx, conf)
    sum_acc = torch.zeros(n_bins, dtype=torch.float64).index_add_(0, idx, correct)
    nan = torch.full((n_bins,), float("nan"), dtype=torch.float64)
    safe = counts.clamp(min=1).double()
    return {"edges": edges, "confidence": torch.where(counts > 0, sum_conf / safe, nan),
            "accuracy": torch.where(counts > 0, sum_acc / safe, nan), "counts": counts}


def expected_calibration_error(probs: torch.Tensor, targets: torch.Tensor, n_bins: int = 10) -> float:
    """ECE: the count-weighted mean of |accuracy − confidence| over the reliability bins (0 = perfectly calibrated).

    >>> round(expected_calibration_error(torch.tensor([[0.9, 0.1], [0.9, 0.1]]), torch.tensor([0, 1])), 4)
    0.4
    """
    b = reliability_bins(probs, targets, n_bins)
    filled = b["counts"] > 0
    gaps = (b["accuracy"][filled] - b["confidence"][filled]).abs()
    return float((gaps * b["counts"][filled]).sum() / b["counts"].sum())


def per_group_results(outputs: torch.Tensor, targets: torch.Tensor, groups: Sequence[str]) -> list[dict[str, Any]]:
    """Accuracy and macro F1 per group (e.g. review domain), sorted by group name.

    >>> rows = per_group_results(torch.tensor([1, 0, 1]), torch.tensor([1, 1, 1]), ["a", "b", "a"])
    >>> [(r["group"], r["n"], r["accuracy"]) for r in rows]
    [('a', 2, 1.0), ('b', 1, 0.0)]
    """
    preds = as_predictions(outputs).cpu()
    t = torch.as_tensor(targets).cpu().long()
    if len(groups) != len(t) or len(preds) != len(t):
        raise ValueError(f"outputs ({len(preds)}), targets ({len(t)}) and groups ({len(groups)}) must have the same length")
    num_classes = int(max(int(preds.max()), int(t.max()))) + 1
    rows = []
    for g in sorted(set(groups)):
        mask = torch.tensor([x == g for x in groups])
        _, _, f1 = f1_from_confusion(confusion_matrix(preds[mask], t[mask], num_classes))
        present = torch.zeros(num_classes, dtype=torch.bool)
        present[t[mask].unique()] = True
        present[preds[mask].unique()] = True
        rows.append({"group": g, "n": int(mask.sum()), "accuracy": float((preds[mask] == t[mask]).double().mean()),
                     "f1": float(f1[present].mean())})
    return rows


def plot_reliability(bins: dict[str, torch.Tensor], ax: Any = None, title: str = "Reliability diagram",
                     label: str = "model") -> Any:
    """Reliability diagram: accuracy per confidence bin against the diagonal of perfect calibration; returns the axes.

    >>> import matplotlib; matplotlib.use("Agg")
    >>> ax = plot_reliability(reliability_bins(torch.tensor([[0.7, 0.3]]), torch.tensor([0])))
    >>> ax.get_xlabel()
    'confidence (top predicted probability)'
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(4.5, 4.5))
    edges = bins["edges"].numpy()
    centers = (edges[:-1] + edges[1:]) / 2
    width = edges[1] - edges[0]
    acc = bins["accuracy"].numpy()
    ax.bar(centers, acc, width=width * 0.9, alpha=0.7, edgecolor="k", label=f"{label}: accuracy per bin")
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfect calibration")
    conf = bins["confidence"].numpy()
    ax.plot(conf, acc, "o", color="tab:red", ms=4, label="(mean confidence, accuracy)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence (top predicted probability)")
    ax.set_ylabel("accuracy")
    ax.set_title(title)
    ax.legend(loc="upper left", fontsize=8)
    return ax


def plot_per_group(rows: Sequence[dict[str, Any]], metric: str = "accuracy", ax: Any = None,
                   title: str = "Accuracy per domain", overall: float | None = None) -> Any:
    """Horizontal bars of ``metric`` per group, with the overall value as a vertical line; returns the axes.

    >>> import matplotlib; matplotlib.use("Agg")
    >>> plot_per_group([{"group": "a", "n": 3, "accuracy": 0.5, "f1": 0.4}]).get_xlabel()
    'accuracy'
    """
    import matplotlib.pyplot as plt

    if not rows:
        raise ValueError("no groups to plot")
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 0.35 * len(rows) + 1.2))
    names = [f"{r['group']} (n={r['n']})" for r in rows]
    ax.barh(names, [r[metric] for r in rows], color="tab:green", alpha=0.8)
    if overall is not None:
        ax.axvline(overall, color="k", ls="--", lw=1, label=f"overall {overall:.3f}")
        ax.legend(loc="lower right", fontsize=8)
    ax.set_xlim(0, 1)
    ax.set_xlabel(metric)
    ax.set_ylabel("group")
    ax.set_title(title)
    return ax


def report_table(report: dict[str, Any]) -> str:
    """A Markdown table of a :func:`classification_report`.

    >>> print(report_table(classification_report(torch.tensor([0, 1]), torch.tensor([0, 1]), ["neg", "pos"])).splitlines()[2])
    | neg | 1.000 | 1.000 | 1.000 | 1 |
    """
    lines = ["| class | precision | recall | F1 | support |", "|---|---:|---:|---:|---:|"]
    for c in report["per_class"]:
        lines.append(f"| {c['label']} | {c['precision']:.3f} | {c['recall']:.3f} | {c['f1']:.3f} | {c['support']} |")
    lines.append(f"| **macro** | | | {report['macro_f1']:.3f} | {sum(c['support'] for c in report['per_class'])} |")
    return "\n".join(lines)
