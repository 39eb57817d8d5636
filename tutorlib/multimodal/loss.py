"""The symmetric InfoNCE (CLIP) loss with a learnable temperature, written from scratch.

Given ``B`` matching (image, text) pairs, the similarity matrix ``S[i, j] = scale * cos(img_i, txt_j)``
should be largest on its diagonal. InfoNCE is cross-entropy over each row (image → which text?)
and each column (text → which image?), averaged: the same loss as ``transformers``'
``CLIPModel(..., return_loss=True).loss`` on the same logits.

>>> import torch
>>> from tutorlib.multimodal.loss import info_nce, contrastive_loss
>>> logits = torch.eye(4) * 10
>>> info_nce(logits).item() < 0.01
True
>>> img, txt = torch.randn(8, 16), torch.randn(8, 16)
>>> bool(contrastive_loss(img, txt, torch.tensor(2.6592)) > 0)
True
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["info_nce", "contrastive_logits", "contrastive_loss", "InfoNCELoss", "MAX_LOGIT_SCALE",
           "CLIP_INIT_TEMPERATURE"]

#: CLIP clamps the learned logit scale at 100 (temperature 0.01) so training stays stable.
MAX_LOGIT_SCALE = math.log(100.0)
#: CLIP's initial temperature, 0.07 (logit scale log(1/0.07) ≈ 2.659).
CLIP_INIT_TEMPERATURE = 0.07


def _check_square(logits: torch.Tensor) -> None:
    if not isinstance(logits, torch.Tensor):
        raise TypeError(f"expected a tensor of logits (B, B), got {type(logits).__name__}")
    if logits.dim() != 2 or logits.shape[0] != logits.shape[1]:
        raise ValueError(
            f"expected square logits (B, B) with matching pairs on the diagonal, got {tuple(logits.shape)}: "
            "pass image_emb @ text_emb.T for B images and their B captions"
        )
    if logits.shape[0] < 2:
        raise ValueError("InfoNCE needs at least 2 pairs per batch (one positive and at least one negative)")


def info_nce(logits: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE on a (B, B) logit matrix whose diagonal holds the matching pairs.

    Rows are images and columns texts (or the other way round: the loss is symmetric).
    Returns the mean of the image→text and text→image cross-entropies.

    >>> round(info_nce(torch.zeros(4, 4)).item(), 4) == round(math.log(4), 4)
    True
    """
    _check_square(logits)
    targets = torch.arange(logits.shape[0], device=logits.device)
    image_to_text = F.cross_entropy(logits, targets)
    text_to_image = F.cross_entropy(logits.t(), targets)
    return (image_to_text + text_to_image) / 2


def contrastive_logits(image_emb: torch.Tensor, text_emb: torch.Tensor, logit_scale: torch.Tensor | float) -> torch.Tensor:
    """``exp(logit_scale) * cos(image_i, text_j)``: the (B_img, B_txt) similarity logits CLIP uses.

    ``logit_scale`` is the log of the inverse temperature (CLIP learns it; 1/T = exp(logit_scale)).

    >>> contrastive_logits(torch.eye(2), torch.eye(2), 0.0)
    tensor([[1., 0.],
            [0., 1.]])
    """
    for name, emb in (("image_emb", image_emb), ("text_emb", text_emb)):
        if not isinstance(emb, torch.Tensor) or emb.dim() != 2:
            got = tuple(emb.shape) if isinstance(emb, torch.Tensor) else type(emb).__name__
            raise ValueError(f"expected {name} of shape (B, D), got {got}")
    if image_emb.shape[1] != text_emb.shape[1]:
        raise ValueError(
            f"image and text embeddings must share their width D, got {image_emb.shape[1]} and {text_emb.shape[1]}: "
            "project both towers to the same dimension first"
        )
    scale = torch.as_tensor(logit_scale, dtype=image_emb.dtype, device=image_emb.device).exp()
    return scale * F.normalize(image_emb, dim=-1) @ F.normalize(text_emb, dim=-1).t()


def contrastive_loss(image_emb: torch.Tensor, text_emb: torch.Tensor, logit_scale: torch.Tensor | float) -> torch.Tensor:
    """CLIP's loss from raw embeddings: L2-normalise, scale the cosine similarities, symmetric InfoNCE.

    >>> e = torch.randn(5, 8)
    >>> bool(contrastive_loss(e, e, math.log(100)) < contrastive_loss(e, e.flip(0), math.log(100)))
    True
    """
    if image_emb.shape[0] != text_emb.shape[0]:
        raise ValueError(
            f"expected as many images as texts (pair i is image i with text i), got {image_emb.shape[0]} and {text_emb.shape[0]}"
        )
    return info_nce(contrastive_logits(image_emb, text_emb, logit_scale))


class InfoNCELoss(nn.Module):
    """Symmetric InfoNCE with a learnable temperature (stored as its log inverse, like CLIP's ``logit_scale``).

    The scale is clamped to at most ``max_scale`` (100, as in CLIP) in the forward pass.

    >>> loss_fn = InfoNCELoss(temperature=0.07)
    >>> round(loss_fn.temperature, 3)
    0.07
    >>> loss = loss_fn(torch.randn(6, 8), torch.randn(6, 8)); loss.backward()
    >>> loss_fn.logit_scale.grad is not None
    True
    """

    def __init__(self, temperature: float = CLIP_INIT_TEMPERATURE, learnable: bool = True,
                 max_scale: float = 100.0) -> None:
        super().__init__()
        if not temperature > 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        if not max_scale > 0:
            raise ValueError(f"max_scale must be positive, got {max_scale}")
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / temperature)), requires_grad=learnable)
        self.max_log_scale = math.log(max_scale)

    @property
    def temperature(self) -> float:
        """The current temperature ``1 / exp(logit_scale)`` (after clamping)."""
        return float(1.0 / self.logit_scale.detach().clamp(max=self.max_log_scale).exp())

    def forward(self, image_emb: torch.Tensor, text_emb: torch.Tensor) -> torch.Tensor:
        return contrastive_loss(image_emb, text_emb, self.logit_scale.clamp(max=self.max_log_scale))
