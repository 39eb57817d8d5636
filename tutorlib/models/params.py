"""Counting a model's parameters, with one meaning everywhere in the course.

Every topic (transfer learning, compression, PEFT, efficient training, CLIP) asks "how many parameters,
how many of them train?"; they all call :func:`count_parameters`. Each parameter tensor counts once,
also when it is shared (tied input/output embeddings).

>>> from torch import nn
>>> n = count_parameters(nn.Sequential(nn.Embedding(10, 4), nn.Linear(4, 2)))
>>> n.total, n.trainable, n.non_embedding
(50, 50, 10)
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

__all__ = ["ParameterCount", "count_parameters", "trainable_summary"]


@dataclass(frozen=True)
class ParameterCount:
    """Parameter values of a model: ``total``, how many ``trainable`` (``requires_grad``), how many in embedding tables.

    >>> ParameterCount(total=200, trainable=2, embedding=0).percent
    1.0
    """

    total: int
    trainable: int
    embedding: int

    @property
    def frozen(self) -> int:
        """Values that do not train."""
        return self.total - self.trainable

    @property
    def non_embedding(self) -> int:
        """Values outside ``nn.Embedding`` tables (Kaplan et al. count these for the ``6 · N`` FLOPs rule)."""
        return self.total - self.embedding

    @property
    def fraction(self) -> float:
        """Trainable share of all values, 0–1."""
        return self.trainable / self.total if self.total else 0.0

    @property
    def percent(self) -> float:
        """Trainable share of all values, 0–100."""
        return 100.0 * self.fraction


def count_parameters(model: nn.Module) -> ParameterCount:
    """Count ``model``'s parameter values (each tensor once, also when shared).

    >>> from torch import nn
    >>> lin = nn.Linear(3, 2); lin.bias.requires_grad_(False)
    Parameter containing:...
    >>> count_parameters(lin)
    ParameterCount(total=8, trainable=6, embedding=0)
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"expected a torch.nn.Module, got {type(model).__name__}: pass the model itself")
    embedding_ids = {id(p) for m in model.modules() if isinstance(m, nn.Embedding) for p in m.parameters(recurse=False)}
    total = trainable = embedding = 0
    for p in model.parameters():  # parameters() yields each tensor once
        n = p.numel()
        total += n
        trainable += n if p.requires_grad else 0
        embedding += n if id(p) in embedding_ids else 0
    return ParameterCount(total, trainable, embedding)


def trainable_summary(model: nn.Module) -> dict[str, float]:
    """``{"trainable", "total", "percent", "fraction"}`` of ``model``, for tables and printouts.

    >>> from torch import nn
    >>> s = trainable_summary(nn.Linear(3, 2)); s["trainable"], s["percent"], s["fraction"]
    (8, 100.0, 1.0)
    """
    n = count_parameters(model)
    return {"trainable": n.trainable, "total": n.total, "percent": n.percent, "fraction": n.fraction}
