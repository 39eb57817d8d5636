"""Small shared helpers of ``tutorlib.generative``: pull images out of any batch layout, check image sizes.

>>> import torch
>>> images_of((torch.zeros(2, 1, 8, 8), torch.zeros(2))).shape
torch.Size([2, 1, 8, 8])
"""

from __future__ import annotations

import math
from typing import Any

import torch

__all__ = ["images_of", "labels_of", "check_img_size", "check_images"]


def images_of(batch: Any) -> torch.Tensor:
    """The image tensor of a batch: a tensor, an ``(x, y, …)`` tuple/list, or a dict with ``"image"``.

    >>> images_of({"image": torch.zeros(3, 3, 32, 32)}).shape
    torch.Size([3, 3, 32, 32])
    """
    if isinstance(batch, torch.Tensor):
        x = batch
    elif isinstance(batch, dict):
        if "image" not in batch:
            raise KeyError(f"a dict batch needs an 'image' entry, got keys {sorted(batch)}")
        x = batch["image"]
    elif isinstance(batch, (list, tuple)) and batch:
        x = batch[0]
    else:
        raise TypeError(f"expected a tensor, an (x, y) tuple or a dict with 'image', got {type(batch).__name__}")
    return check_images(x, "the batch's images")


def labels_of(batch: Any) -> Any:
    """The second element of an ``(x, y)`` batch (``None`` when there is none).

    >>> labels_of((torch.zeros(2, 1, 8, 8), torch.tensor([3, 4]))).tolist()
    [3, 4]
    """
    if isinstance(batch, (list, tuple)) and len(batch) > 1:
        return batch[1]
    return None


def check_images(x: Any, what: str = "images") -> torch.Tensor:
    """Raise a clear error unless ``x`` is a float tensor of shape (B, C, H, W).

    >>> check_images(torch.zeros(1, 1, 8, 8)).dim()
    4
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{what} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 4:
        hint = ": add a channel dimension with x.unsqueeze(1)" if x.dim() == 3 else ""
        raise ValueError(f"{what} must have shape (B, C, H, W), got {tuple(x.shape)}{hint}")
    if not x.is_floating_point():
        raise TypeError(f"{what} must be floating point, got {x.dtype}: convert with x.float()")
    return x


def check_img_size(img_size: int) -> int:
    """Number of ×2 resolution steps between 4×4 and ``img_size``; ``img_size`` must be 4·2^k with k ≥ 1.

    >>> check_img_size(8), check_img_size(32)
    (1, 3)
    """
    if not isinstance(img_size, int) or img_size < 8 or 2 ** round(math.log2(img_size)) != img_size:
        raise ValueError(f"img_size must be a power of two ≥ 8 (8, 16, 32, 64), got {img_size!r}")
    return int(math.log2(img_size)) - 2
