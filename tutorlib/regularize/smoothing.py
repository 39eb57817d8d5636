"""Label smoothing (Szegedy et al., 2016): train against soft targets so the model stops chasing 100 % confidence.

The one-hot target ``[0, …, 1, …, 0]`` becomes ``(1 − ε)·one_hot + ε/C`` for ``C`` classes; the
loss is the cross-entropy with that distribution. Same convention as
``F.cross_entropy(..., label_smoothing=ε)`` (the tests check they agree).

>>> import torch
>>> smooth_targets(torch.tensor([1]), num_classes=4, eps=0.2).tolist()
[[0.05000000074505806, 0.8500000238418579, 0.05000000074505806, 0.05000000074505806]]
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

__all__ = ["smooth_targets", "label_smoothing_loss"]


def smooth_targets(targets: torch.Tensor, num_classes: int, eps: float = 0.1) -> torch.Tensor:
    """Soft target distributions (B, C): ``1 − ε + ε/C`` on the true class, ``ε/C`` on every other.

    Each row sums to 1. ``targets`` are class indices (B,), int64.

    >>> smooth_targets(torch.tensor([0, 2]), 3, eps=0.0).tolist()
    [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]
    """
    if not isinstance(targets, torch.Tensor) or targets.dim() != 1 or targets.dtype != torch.long:
        got = f"{tuple(targets.shape)} {targets.dtype}" if isinstance(targets, torch.Tensor) else type(targets).__name__
        raise ValueError(f"targets must be class indices of shape (B,) and dtype int64, got {got}")
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}")
    if targets.numel() and (int(targets.min()) < 0 or int(targets.max()) >= num_classes):
        raise ValueError(f"targets must lie in [0, {num_classes - 1}], got values from {int(targets.min())} to "
                         f"{int(targets.max())}")
    if not 0.0 <= eps < 1.0:
        raise ValueError(f"eps must be in [0, 1), got {eps}")
    one_hot = F.one_hot(targets, num_classes).to(torch.float32)
    return one_hot * (1.0 - eps) + eps / num_classes


def label_smoothing_loss(logits: torch.Tensor, targets: torch.Tensor, eps: float = 0.1) -> torch.Tensor:
    """Mean cross-entropy between ``softmax(logits)`` and the smoothed targets; equals torch's ``label_smoothing``.

    >>> logits, y = torch.tensor([[2.0, 0.0, -1.0]]), torch.tensor([0])
    >>> torch.allclose(label_smoothing_loss(logits, y, 0.1), F.cross_entropy(logits, y, label_smoothing=0.1))
    True
    """
    if not isinstance(logits, torch.Tensor) or logits.dim() != 2:
        got = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ValueError(f"expected logits of shape (B, C), got {got}")
    if targets.shape[:1] != logits.shape[:1]:
        raise ValueError(f"logits {tuple(logits.shape)} and targets {tuple(targets.shape)} disagree on the batch size")
    soft = smooth_targets(targets, logits.shape[1], eps).to(logits.device, logits.dtype)
    return -(soft * F.log_softmax(logits, dim=1)).sum(dim=1).mean()
