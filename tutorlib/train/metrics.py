"""Classification metrics computed from logits or predicted labels: accuracy, precision/recall/F1, confusion matrix.

>>> import torch
>>> from tutorlib.train.metrics import accuracy, f1_score, confusion_matrix
>>> y = torch.tensor([0, 1, 1, 0]); p = torch.tensor([0, 1, 0, 0])
>>> accuracy(p, y), round(f1_score(p, y), 3)
(0.75, 0.733)
>>> confusion_matrix(p, y, 2).tolist()
[[2, 0], [1, 1]]
"""

from __future__ import annotations

import torch

__all__ = ["as_predictions", "accuracy", "confusion_matrix", "precision_recall_f1", "f1_score"]


def as_predictions(outputs: torch.Tensor) -> torch.Tensor:
    """Predicted class ids from logits (B, C) — argmax — or pass labels (B,) through.

    >>> as_predictions(torch.tensor([[0.1, 2.0], [3.0, 0.0]])).tolist()
    [1, 0]
    """
    if not isinstance(outputs, torch.Tensor):
        raise TypeError(f"expected a tensor of logits (B, C) or labels (B,), got {type(outputs).__name__}")
    if outputs.dim() == 2:
        return outputs.argmax(dim=1)
    if outputs.dim() == 1:
        return outputs.long()
    raise ValueError(f"expected logits (B, C) or labels (B,), got shape {tuple(outputs.shape)}")


def _check_pair(preds: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    p = as_predictions(preds).detach().cpu()
    t = torch.as_tensor(targets).detach().cpu().long()
    if p.shape != t.shape:
        raise ValueError(f"predictions {tuple(p.shape)} and targets {tuple(t.shape)} must have the same length")
    if p.numel() == 0:
        raise ValueError("cannot compute a metric on zero examples")
    return p, t


def accuracy(preds: torch.Tensor, targets: torch.Tensor) -> float:
    """Fraction of correct predictions (logits or labels).

    >>> accuracy(torch.tensor([1, 1]), torch.tensor([1, 0]))
    0.5
    """
    p, t = _check_pair(preds, targets)
    return float((p == t).float().mean())


def confusion_matrix(preds: torch.Tensor, targets: torch.Tensor, num_classes: int | None = None) -> torch.Tensor:
    """Counts ``M[true, predicted]`` as an int64 (C, C) tensor.

    >>> confusion_matrix(torch.tensor([1, 0]), torch.tensor([1, 1])).tolist()
    [[0, 0], [1, 1]]
    """
    p, t = _check_pair(preds, targets)
    c = num_classes or int(max(p.max(), t.max())) + 1
    if int(max(p.max(), t.max())) >= c or int(min(p.min(), t.min())) < 0:
        raise ValueError(f"labels must be in [0, {c}); got range [{int(min(p.min(), t.min()))}, {int(max(p.max(), t.max()))}]")
    return torch.bincount(t * c + p, minlength=c * c).reshape(c, c)


def precision_recall_f1(preds: torch.Tensor, targets: torch.Tensor, num_classes: int | None = None
                        ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-class precision, recall and F1 (0 where undefined), each a float tensor (C,).

    >>> [v.tolist() for v in precision_recall_f1(torch.tensor([0, 1]), torch.tensor([0, 0]))]
    [[1.0, 0.0], [0.5, 0.0], [0.6666666865348816, 0.0]]
    """
    cm = confusion_matrix(preds, targets, num_classes).double()
    tp = cm.diag()
    precision = torch.where(cm.sum(0) > 0, tp / cm.sum(0).clamp(min=1), torch.zeros_like(tp))
    recall = torch.where(cm.sum(1) > 0, tp / cm.sum(1).clamp(min=1), torch.zeros_like(tp))
    denom = precision + recall
    f1 = torch.where(denom > 0, 2 * precision * recall / denom.clamp(min=1e-12), torch.zeros_like(tp))
    return precision.float(), recall.float(), f1.float()


def f1_score(preds: torch.Tensor, targets: torch.Tensor, average: str = "macro", num_classes: int | None = None) -> float:
    """F1 score: ``macro`` (mean over classes present in targets or predictions) or ``micro`` (= accuracy).

    >>> f1_score(torch.tensor([0, 1]), torch.tensor([0, 1]))
    1.0
    """
    if average == "micro":
        return accuracy(preds, targets)
    if average != "macro":
        raise ValueError(f"average must be 'macro' or 'micro', got {average!r}")
    p, t = _check_pair(preds, targets)
    _, _, f1 = precision_recall_f1(p, t, num_classes)
    present = torch.zeros(len(f1), dtype=torch.bool)
    present[t.unique()] = True
    present[p.unique()] = True
    return float(f1[present].mean())
