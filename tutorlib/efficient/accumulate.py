"""Gradient accumulation: the gradient of a large batch from several micro-batches that fit in memory.

The mean loss over a batch is the size-weighted mean of its micro-batches' mean losses, and
gradients add up across ``backward()`` calls, so backpropagating ``loss_i · n_i / N`` for every
micro-batch ``i`` and stepping once gives exactly the large batch's update.
``Trainer(grad_accum=k, batch_size=b)`` does this with micro-batches of ``b`` (effective batch ``k·b``).

>>> _ = torch.manual_seed(0); m = nn.Linear(4, 3); opt = torch.optim.SGD(m.parameters(), lr=0.1)
>>> x, y = torch.randn(12, 4), torch.randint(0, 3, (12,))
>>> round(accumulation_step(m, x, y, opt, micro_batches=3), 4) > 0
True
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["split_micro_batches", "accumulation_step"]


def split_micro_batches(x: torch.Tensor, y: torch.Tensor, micro_batches: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Split a batch into ``micro_batches`` consecutive pieces (the last may be smaller), like ``torch.chunk``.

    >>> [len(a) for a, _ in split_micro_batches(torch.zeros(10, 2), torch.zeros(10), 4)]
    [3, 3, 3, 1]
    """
    if micro_batches < 1:
        raise ValueError(f"micro_batches must be at least 1, got {micro_batches}")
    if len(x) != len(y):
        raise ValueError(f"x has {len(x)} rows but y has {len(y)}: they must match")
    if micro_batches > len(x):
        raise ValueError(f"cannot split a batch of {len(x)} into {micro_batches} micro-batches")
    return list(zip(torch.chunk(x, micro_batches), torch.chunk(y, micro_batches)))


def accumulation_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor, optimizer: torch.optim.Optimizer,
                      micro_batches: int, loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = F.cross_entropy
                      ) -> float:
    """One optimizer step on the batch ``(x, y)`` computed as ``micro_batches`` forward/backward passes.

    Each micro-batch's mean loss is weighted by its share of the examples, so the update equals the
    full-batch step even when the last micro-batch is smaller. Returns the full batch's mean loss.

    >>> _ = torch.manual_seed(0); a = nn.Linear(3, 2); b = nn.Linear(3, 2); _ = b.load_state_dict(a.state_dict())
    >>> x, y = torch.randn(10, 3), torch.randint(0, 2, (10,))
    >>> _ = accumulation_step(a, x, y, torch.optim.SGD(a.parameters(), lr=1.0), 4)
    >>> _ = accumulation_step(b, x, y, torch.optim.SGD(b.parameters(), lr=1.0), 1)
    >>> torch.allclose(a.weight, b.weight, atol=1e-6)
    True
    """
    optimizer.zero_grad(set_to_none=True)
    total = 0.0
    for xb, yb in split_micro_batches(x, y, micro_batches):
        share = len(xb) / len(x)
        loss = loss_fn(model(xb), yb) * share
        loss.backward()
        total += float(loss.detach())
    optimizer.step()
    return total
