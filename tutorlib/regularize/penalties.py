"""Penalties added to the loss (L1, L2) and a training loss that applies them, with label smoothing, only in training.

An L2 penalty ``λ/2 · Σ w²`` in the loss adds ``λ·w`` to every gradient: for plain SGD that *is*
weight decay (``torch.optim.SGD(weight_decay=λ)``), but for Adam the extra gradient is divided by
Adam's running RMS like any other, so weights with large gradients are barely decayed. Decoupled
weight decay (AdamW) shrinks the weights directly instead (Loshchilov & Hutter, 2019). L1
``λ · Σ |w|`` pushes weights to exactly zero (sparse weights).

>>> import torch
>>> from torch import nn
>>> m = nn.Linear(2, 1); _ = nn.init.constant_(m.weight, -2.0); _ = nn.init.zeros_(m.bias)
>>> l1_penalty(m).item(), l2_penalty(m).item()
(4.0, 4.0)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["l1_penalty", "l2_penalty", "penalized_parameters", "RegularizedLoss"]


def penalized_parameters(model: nn.Module | Iterable[torch.Tensor], include_bias: bool = False) -> list[torch.Tensor]:
    """The parameters a penalty applies to: weight matrices/kernels (``dim > 1``), plus biases if asked.

    Biases and normalisation scales (1-D) are usually left alone: they do not cause overfitting
    and shrinking them only hurts.

    >>> [tuple(p.shape) for p in penalized_parameters(nn.Linear(3, 2))]
    [(2, 3)]
    """
    params = model.parameters() if isinstance(model, nn.Module) else model
    out = []
    for p in params:
        if not isinstance(p, torch.Tensor):
            raise TypeError(f"expected a model or an iterable of tensors, found a {type(p).__name__} inside")
        if p.requires_grad and (include_bias or p.dim() > 1):
            out.append(p)
    return out


def l1_penalty(model: nn.Module | Iterable[torch.Tensor], include_bias: bool = False) -> torch.Tensor:
    """``Σ |w|`` over the model's weight matrices (and biases if ``include_bias``); a scalar tensor with a gradient.

    >>> m = nn.Linear(2, 2); _ = nn.init.constant_(m.weight, 0.5)
    >>> l1_penalty(m).item()
    2.0
    """
    params = penalized_parameters(model, include_bias)
    if not params:
        raise ValueError("no parameters to penalise: the model has no trainable weight matrices")
    return torch.stack([p.abs().sum() for p in params]).sum()


def l2_penalty(model: nn.Module | Iterable[torch.Tensor], include_bias: bool = False) -> torch.Tensor:
    """``½ Σ w²`` over the model's weight matrices (and biases if ``include_bias``): its gradient is ``w`` itself.

    With the ½, ``loss + λ · l2_penalty(model)`` under plain SGD is exactly ``SGD(weight_decay=λ)``.

    >>> m = nn.Linear(2, 2); _ = nn.init.constant_(m.weight, 2.0)
    >>> l2_penalty(m).item()
    8.0
    """
    params = penalized_parameters(model, include_bias)
    if not params:
        raise ValueError("no parameters to penalise: the model has no trainable weight matrices")
    return 0.5 * torch.stack([p.pow(2).sum() for p in params]).sum()


class RegularizedLoss:
    """A ``loss_fn(logits, targets)`` for the Trainer: cross-entropy (with label smoothing) + λ1·L1 + λ2·L2 in training.

    In evaluation (``model.eval()``) it is the plain cross-entropy, so validation losses of differently
    regularised runs stay comparable.

    >>> m = nn.Linear(4, 3)
    >>> loss_fn = RegularizedLoss(m, l1=1e-3, l2=1e-2)
    >>> x, y = torch.randn(5, 4), torch.tensor([0, 1, 2, 0, 1])
    >>> bool(loss_fn(m(x), y) > F.cross_entropy(m(x), y)), bool(loss_fn(m.eval()(x), y) == F.cross_entropy(m(x), y))
    (True, True)
    """

    def __init__(self, model: nn.Module, l1: float = 0.0, l2: float = 0.0, label_smoothing: float = 0.0,
                 include_bias: bool = False,
                 base: Callable[..., torch.Tensor] | None = None) -> None:
        if l1 < 0 or l2 < 0:
            raise ValueError(f"penalty strengths must be >= 0, got l1={l1}, l2={l2}")
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
        self.model, self.l1, self.l2, self.label_smoothing = model, l1, l2, label_smoothing
        self.include_bias = include_bias
        self.base = base or F.cross_entropy

    def __call__(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if not self.model.training:
            return self.base(logits, targets)
        loss = self.base(logits, targets, label_smoothing=self.label_smoothing) if self.label_smoothing else \
            self.base(logits, targets)
        if self.l1:
            loss = loss + self.l1 * l1_penalty(self.model, self.include_bias)
        if self.l2:
            loss = loss + self.l2 * l2_penalty(self.model, self.include_bias)
        return loss
