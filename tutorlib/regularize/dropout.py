"""Dropout written out (Srivastava et al., 2014), in the "inverted" form every framework uses.

In training each value is kept with probability ``1 - p`` and the survivors are divided by
``1 - p``, so the expected activation is unchanged and evaluation needs no rescaling (it is the
identity). ``torch.nn.Dropout`` does the same; the tests compare the two statistically (their
random streams differ).

>>> import torch
>>> x = torch.ones(4, 1000)
>>> y = dropout(x, p=0.25, generator=torch.Generator().manual_seed(0))
>>> sorted(set(y.unique().tolist()))  # zeros and 1 / (1 - 0.25)
[0.0, 1.3333333730697632]
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["dropout", "Dropout"]


def dropout(x: torch.Tensor, p: float = 0.5, training: bool = True,
            generator: torch.Generator | None = None) -> torch.Tensor:
    """Zero each value of ``x`` with probability ``p`` and scale the rest by ``1 / (1 - p)``; identity when not training.

    Returns a new tensor (``x`` is not changed). ``generator`` makes the mask reproducible; by
    default torch's global generator is used (so ``torch.manual_seed`` controls it).

    >>> dropout(torch.ones(3), p=0.5, training=False).tolist()
    [1.0, 1.0, 1.0]
    >>> dropout(torch.ones(3), p=1.0).tolist()
    [0.0, 0.0, 0.0]
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a tensor, got {type(x).__name__}")
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability p must be in [0, 1], got {p}")
    if not training or p == 0.0:
        return x.clone()
    if p == 1.0:
        return torch.zeros_like(x)
    if generator is not None and generator.device != x.device:
        keep = torch.rand(x.shape, generator=generator, device=generator.device).to(x.device) >= p
    else:
        keep = torch.rand(x.shape, generator=generator, device=x.device) >= p
    return x * keep.to(x.dtype) / (1.0 - p)


class Dropout(nn.Module):
    """Module form of :func:`dropout`: active in ``train()`` mode, the identity in ``eval()`` mode.

    >>> d = Dropout(0.5).eval(); d(torch.ones(2)).tolist()
    [1.0, 1.0]
    """

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"dropout probability p must be in [0, 1], got {p}")
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"
