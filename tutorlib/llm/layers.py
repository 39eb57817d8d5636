"""The building blocks of a Llama-style decoder, from scratch: RMSNorm, RoPE, grouped-query causal attention, SwiGLU.

Each function follows the conventions of ``transformers``' Llama code (the rotate-half RoPE layout, the
``repeat_kv`` head order, softmax in float32), so that the from-scratch model in :mod:`tutorlib.llm.llama`
gives the same numbers as ``LlamaForCausalLM``.

>>> import torch
>>> x = torch.randn(4, 2, 3, 8)                               # (B, H, T, D)
>>> cos, sin = rope_cos_sin(torch.arange(3), head_dim=8)
>>> out, w = causal_attention(apply_rope(x, cos, sin), apply_rope(x, cos, sin), x)
>>> out.shape, w.shape
(torch.Size([4, 2, 3, 8]), torch.Size([4, 2, 3, 3]))
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["rms_norm", "RMSNorm", "rope_cos_sin", "rotate_half", "apply_rope", "repeat_kv", "causal_mask",
           "causal_attention", "SwiGLU"]


def rms_norm(x: torch.Tensor, weight: torch.Tensor | None = None, eps: float = 1e-5) -> torch.Tensor:
    """Root-mean-square normalization over the last dimension: ``x / sqrt(mean(x²) + eps) * weight``.

    Unlike LayerNorm there is no mean subtraction and no bias. Computed in float32 and cast back.

    >>> rms_norm(torch.tensor([[3.0, 4.0]]), eps=0.0)        # rms = sqrt((9 + 16) / 2)
    tensor([[0.8485, 1.1314]])
    """
    dtype = x.dtype
    x32 = x.float()
    y = (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + eps)).to(dtype)
    return y if weight is None else weight * y


class RMSNorm(nn.Module):
    """:func:`rms_norm` with a learned per-feature gain ``weight`` (initialised to ones).

    >>> norm = RMSNorm(4)
    >>> norm(torch.full((2, 4), 3.0)).round(decimals=4)          # every row now has rms 1
    tensor([[1., 1., 1., 1.],
            [1., 1., 1., 1.]], grad_fn=<RoundBackward1>)
    """

    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return rms_norm(x, self.weight, self.eps)

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, eps={self.eps}"


def rope_cos_sin(positions: torch.Tensor, head_dim: int, theta: float = 10000.0,
                 dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotary-embedding tables for the given positions: ``cos`` and ``sin``, each (T, head_dim).

    Pair ``j`` of a head (dimensions ``j`` and ``j + head_dim/2``) turns by angle ``position · theta^(-2j/head_dim)``:
    fast rotations in the first pairs, slow ones in the last. The frequencies are repeated twice along the
    last dimension (the rotate-half layout of ``transformers``).

    >>> cos, sin = rope_cos_sin(torch.arange(4), head_dim=8)
    >>> cos.shape, cos[0].tolist() == [1.0] * 8, round(sin[1, 0].item(), 4)
    (torch.Size([4, 8]), True, 0.8415)
    """
    if head_dim % 2:
        raise ValueError(f"head_dim must be even for RoPE, got {head_dim}")
    if positions.dim() != 1:
        raise ValueError(f"expected positions of shape (T,), got {tuple(positions.shape)}")
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.int64, device=positions.device).float()
                                / head_dim))
    freqs = positions.float()[:, None] * inv_freq[None, :]          # (T, head_dim/2)
    emb = torch.cat((freqs, freqs), dim=-1)                          # (T, head_dim)
    return emb.cos().to(dtype), emb.sin().to(dtype)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """``[x1, x2] -> [-x2, x1]`` on the two halves of the last dimension.

    >>> rotate_half(torch.tensor([1.0, 2.0, 3.0, 4.0]))
    tensor([-3., -4.,  1.,  2.])
    """
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate queries or keys ``x`` (B, H, T, D) by their positions' angles: ``x·cos + rotate_half(x)·sin``.

    ``cos``/``sin`` are (T, D) from :func:`rope_cos_sin` (or (B, T, D)). The dot product of a rotated query and a
    rotated key depends only on their distance, which is how attention learns relative positions.

    >>> q = torch.randn(1, 2, 5, 8); cos, sin = rope_cos_sin(torch.arange(5), 8)
    >>> torch.allclose(apply_rope(q, cos, sin).norm(dim=-1), q.norm(dim=-1), atol=1e-5)  # a rotation keeps the norm
    True
    """
    if x.dim() != 4:
        raise ValueError(f"expected x of shape (B, H, T, D), got {tuple(x.shape)}")
    if cos.shape[-2:] != x.shape[-2:]:
        raise ValueError(f"cos/sin of shape {tuple(cos.shape)} do not match x's (T, D) = {tuple(x.shape[-2:])}")
    if cos.dim() == 3:                       # (B, T, D) -> broadcast over heads
        cos, sin = cos[:, None], sin[:, None]
    return x * cos + rotate_half(x) * sin


def repeat_kv(x: torch.Tensor, n_rep: int) -> torch.Tensor:
    """Grouped-query attention: share each of ``H_kv`` key/value heads among ``n_rep`` query heads.

    (B, H_kv, T, D) -> (B, H_kv·n_rep, T, D); query head ``h`` uses key/value head ``h // n_rep``.

    >>> repeat_kv(torch.arange(2.0).view(1, 2, 1, 1), 3).flatten().tolist()
    [0.0, 0.0, 0.0, 1.0, 1.0, 1.0]
    """
    if n_rep == 1:
        return x
    B, H_kv, T, D = x.shape
    return x[:, :, None].expand(B, H_kv, n_rep, T, D).reshape(B, H_kv * n_rep, T, D)


def causal_mask(t_q: int, t_k: int, device: torch.device | str | None = None) -> torch.Tensor:
    """Boolean (Tq, Tk) mask, True where query ``i`` may attend to key ``j``.

    With a cache, the ``Tq`` new queries are the last ones: query ``i`` sits at position ``Tk - Tq + i``
    and sees keys ``j <= Tk - Tq + i``.

    >>> causal_mask(2, 4).int().tolist()
    [[1, 1, 1, 0], [1, 1, 1, 1]]
    """
    if t_q > t_k:
        raise ValueError(f"more queries ({t_q}) than keys ({t_k}): the keys must include the queries' own positions")
    return torch.ones(t_q, t_k, dtype=torch.bool, device=device).tril(diagonal=t_k - t_q)


def causal_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, causal: bool = True,
                     return_weights: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Scaled dot-product attention with grouped-query heads and a causal mask.

    q (B, H, Tq, D); k, v (B, H_kv, Tk, D) with ``H`` a multiple of ``H_kv``; ``Tq <= Tk`` (cached decoding:
    the queries are the last ``Tq`` positions). Returns ``(out (B, H, Tq, D), weights (B, H, Tq, Tk))``.

    ``return_weights=True`` (default) is the explicit math: ``softmax(q kᵀ / sqrt(D) + mask) v`` with the softmax in
    float32. ``return_weights=False`` is the fast path: ``F.scaled_dot_product_attention`` without materializing
    the weights (returned as ``None``); the two agree to float rounding.

    >>> q, k, v = torch.randn(1, 4, 3, 8), torch.randn(1, 2, 3, 8), torch.randn(1, 2, 3, 8)
    >>> out, w = causal_attention(q, k, v)
    >>> w[0, 0].triu(1).abs().sum().item(), torch.allclose(w.sum(-1), torch.ones(1, 4, 3))
    (0.0, True)
    >>> torch.allclose(out, causal_attention(q, k, v, return_weights=False)[0], atol=1e-6)
    True
    """
    if q.dim() != 4 or k.dim() != 4 or v.dim() != 4:
        raise ValueError(f"expected q, k, v of shape (B, H, T, D), got {tuple(q.shape)}, {tuple(k.shape)}, "
                         f"{tuple(v.shape)}")
    B, H, Tq, D = q.shape
    H_kv, Tk = k.shape[1], k.shape[2]
    if H % H_kv:
        raise ValueError(f"the {H} query heads must be a multiple of the {H_kv} key/value heads")
    if k.shape != v.shape or k.shape[0] != B or k.shape[-1] != D:
        raise ValueError(f"k {tuple(k.shape)} and v {tuple(v.shape)} must both be (B={B}, H_kv, Tk, D={D})")
    if causal and Tq > Tk:
        raise ValueError(f"more queries ({Tq}) than keys ({Tk}): the keys must include the queries' own positions")
    n_rep = H // H_kv
    if not return_weights:
        return _sdpa(q, k, v, causal, n_rep), None
    k, v = repeat_kv(k, n_rep), repeat_kv(v, n_rep)
    scores = (q @ k.transpose(-2, -1)) / math.sqrt(D)                   # (B, H, Tq, Tk)
    if causal:
        scores = scores.masked_fill(~causal_mask(Tq, Tk, q.device), float("-inf"))
    weights = F.softmax(scores, dim=-1, dtype=torch.float32).to(q.dtype)
    return weights @ v, weights


def _sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool, n_rep: int) -> torch.Tensor:
    """The fast path of :func:`causal_attention` (PyTorch's fused kernel)."""
    B, H, Tq, D = q.shape
    Tk = k.shape[2]
    if Tq == 1 or not causal:
        if n_rep > 1 and Tq == 1:
            # One new query per head: the n_rep query heads of a group become n_rep queries of its kv head,
            # so the keys/values are never copied (no repeat_kv).
            out = F.scaled_dot_product_attention(q.reshape(B, H // n_rep, n_rep, D), k, v)
            return out.reshape(B, H, 1, D)
        return F.scaled_dot_product_attention(q, repeat_kv(k, n_rep), repeat_kv(v, n_rep))
    k, v = repeat_kv(k, n_rep), repeat_kv(v, n_rep)
    if Tq == Tk:
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=causal_mask(Tq, Tk, q.device))


class SwiGLU(nn.Module):
    """The Llama MLP: ``down(silu(gate(x)) * up(x))``, a gated feed-forward layer without biases.

    >>> m = SwiGLU(8, 16); m(torch.randn(2, 3, 8)).shape
    torch.Size([2, 3, 8])
    """

    def __init__(self, d_model: int, d_ff: int, bias: bool = False) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(d_model, d_ff, bias=bias)
        self.up_proj = nn.Linear(d_model, d_ff, bias=bias)
        self.down_proj = nn.Linear(d_ff, d_model, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))
