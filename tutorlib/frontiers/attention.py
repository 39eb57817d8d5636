"""Long-context attention: full, sliding-window and block-sparse masks, a masked reference and a block-sparse kernel that skips blocks.

Masks are boolean ``(T, T)`` tensors with ``True`` = "query i may attend to key j" (the convention of
``torch.nn.functional.scaled_dot_product_attention``). :func:`masked_attention` materialises the full
``T × T`` score matrix and is the reference; :func:`block_sparse_attention` only computes the
``block × block`` tiles a block layout keeps, so its cost grows with the number of kept tiles, not
with ``T²``. Sliding-window attention (Longformer's local pattern) is a special case: with blocks the
size of the window, each query block needs only itself and the block before it.

>>> import torch
>>> q = k = v = torch.randn(1, 2, 16, 8)
>>> m = sliding_window_mask(16, window=4)
>>> layout = block_layout_from_mask(m, block=4)
>>> torch.allclose(masked_attention(q, k, v, m), block_sparse_attention(q, k, v, layout, 4, mask=m), atol=1e-5)
True
"""

from __future__ import annotations

import math

import torch

__all__ = [
    "full_mask",
    "sliding_window_mask",
    "block_sparse_mask",
    "bigbird_layout",
    "block_layout_from_mask",
    "expand_layout",
    "masked_attention",
    "block_sparse_attention",
    "mask_density",
]


def _check_len(T: int, name: str = "T") -> None:
    if not isinstance(T, int) or isinstance(T, bool) or T <= 0:
        raise ValueError(f"{name} must be a positive int, got {T!r}")


def full_mask(T: int, causal: bool = True, device: torch.device | str | None = None) -> torch.Tensor:
    """The dense mask: every query sees every key (or every earlier key when ``causal``).

    >>> full_mask(3).int().tolist()
    [[1, 0, 0], [1, 1, 0], [1, 1, 1]]
    """
    _check_len(T)
    m = torch.ones(T, T, dtype=torch.bool, device=device)
    return torch.tril(m) if causal else m


def sliding_window_mask(T: int, window: int, causal: bool = True, device: torch.device | str | None = None) -> torch.Tensor:
    """Local attention: query ``i`` sees keys ``j`` with ``i - window < j <= i`` (causal) or ``|i - j| < window``.

    ``window`` counts the query itself, so ``window=1`` is the diagonal.

    >>> sliding_window_mask(4, 2).int().tolist()
    [[1, 0, 0, 0], [1, 1, 0, 0], [0, 1, 1, 0], [0, 0, 1, 1]]
    >>> sliding_window_mask(3, 2, causal=False).int().tolist()
    [[1, 1, 0], [1, 1, 1], [0, 1, 1]]
    """
    _check_len(T)
    _check_len(window, "window")
    i = torch.arange(T, device=device)
    d = i[:, None] - i[None, :]
    if causal:
        return (d >= 0) & (d < window)
    return d.abs() < window


def bigbird_layout(n_blocks: int, local: int = 1, n_global: int = 1, n_random: int = 0, causal: bool = True,
                   seed: int = 0) -> torch.Tensor:
    """A BigBird-style block layout ``(n_blocks, n_blocks)``: a band of ``local`` blocks each side, ``n_global``
    global blocks (they see and are seen by all) and ``n_random`` random blocks per query block.

    >>> bigbird_layout(4, local=0, n_global=1).int().tolist()
    [[1, 0, 0, 0], [1, 1, 0, 0], [1, 0, 1, 0], [1, 0, 0, 1]]
    """
    _check_len(n_blocks, "n_blocks")
    if local < 0 or n_global < 0 or n_random < 0:
        raise ValueError(f"local, n_global and n_random must be >= 0, got {local}, {n_global}, {n_random}")
    i = torch.arange(n_blocks)
    d = i[:, None] - i[None, :]
    lay = d.abs() <= local
    g = min(n_global, n_blocks)
    lay[:, :g] = True
    lay[:g, :] = True
    if n_random:
        gen = torch.Generator().manual_seed(seed)
        for r in range(n_blocks):
            cand = torch.arange(r + 1) if causal else torch.arange(n_blocks)
            pick = cand[torch.randperm(len(cand), generator=gen)[:n_random]]
            lay[r, pick] = True
    if causal:
        lay &= d >= 0
    return lay


def expand_layout(layout: torch.Tensor, block: int, T: int | None = None) -> torch.Tensor:
    """Turn a block layout ``(nb, nb)`` into a token mask ``(T, T)`` (``T`` defaults to ``nb * block``).

    >>> expand_layout(torch.tensor([[True, False], [True, True]]), 2).int().tolist()
    [[1, 1, 0, 0], [1, 1, 0, 0], [1, 1, 1, 1], [1, 1, 1, 1]]
    """
    if layout.dim() != 2 or layout.shape[0] != layout.shape[1] or layout.dtype != torch.bool:
        raise ValueError(f"layout must be a square bool tensor (n_blocks, n_blocks), got {tuple(layout.shape)} {layout.dtype}")
    _check_len(block, "block")
    m = layout.repeat_interleave(block, 0).repeat_interleave(block, 1)
    T = T if T is not None else m.shape[0]
    if T > m.shape[0]:
        raise ValueError(f"T={T} is longer than the layout covers ({m.shape[0]} = n_blocks * block)")
    return m[:T, :T]


def block_sparse_mask(T: int, block: int, local: int = 1, n_global: int = 1, n_random: int = 0, causal: bool = True,
                      seed: int = 0) -> torch.Tensor:
    """Token mask of a BigBird-style block-sparse pattern (see :func:`bigbird_layout`), causal inside blocks too.

    >>> m = block_sparse_mask(8, block=2, local=1, n_global=1)
    >>> m.shape, bool(m[7, 0]), bool(m[7, 2]), bool(m[0, 1])
    (torch.Size([8, 8]), True, False, False)
    """
    _check_len(T)
    _check_len(block, "block")
    nb = math.ceil(T / block)
    m = expand_layout(bigbird_layout(nb, local, n_global, n_random, causal, seed), block, T)
    return m & full_mask(T, causal, m.device) if causal else m


def block_layout_from_mask(mask: torch.Tensor, block: int) -> torch.Tensor:
    """The coarsest block layout covering ``mask``: tile ``(a, b)`` is kept when any entry inside it is ``True``.

    >>> block_layout_from_mask(sliding_window_mask(8, 2), 4).int().tolist()
    [[1, 0], [1, 1]]
    """
    if mask.dim() != 2 or mask.shape[0] != mask.shape[1] or mask.dtype != torch.bool:
        raise ValueError(f"mask must be a square bool tensor (T, T), got {tuple(mask.shape)} {mask.dtype}")
    _check_len(block, "block")
    T = mask.shape[0]
    nb = math.ceil(T / block)
    pad = nb * block - T
    m = torch.nn.functional.pad(mask, (0, pad, 0, pad))
    return m.view(nb, block, nb, block).any(dim=3).any(dim=1)


def _check_qkv(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> None:
    for name, t in (("q", q), ("k", k), ("v", v)):
        if not isinstance(t, torch.Tensor) or t.dim() < 2:
            raise ValueError(f"{name} must be a tensor of shape (..., T, head_dim), got {getattr(t, 'shape', type(t))}")
    if q.shape[-1] != k.shape[-1] or k.shape[-2] != v.shape[-2]:
        raise ValueError(f"shapes do not fit: q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)}")


def masked_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Reference attention ``softmax(q kᵀ / √d + log mask) v``, materialising the whole score matrix.

    Same result as ``F.scaled_dot_product_attention(q, k, v, attn_mask=mask)``; a fully masked row
    gives zeros (instead of NaN).

    >>> q = torch.randn(2, 5, 4)
    >>> out = masked_attention(q, q, q, full_mask(5))
    >>> torch.allclose(out, torch.nn.functional.scaled_dot_product_attention(q, q, q, is_causal=True), atol=1e-6)
    True
    """
    _check_qkv(q, k, v)
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        if mask.dtype != torch.bool:
            raise TypeError(f"mask must be a bool tensor (True = attend), got {mask.dtype}")
        if mask.shape[-2:] != scores.shape[-2:]:
            raise ValueError(f"mask has shape {tuple(mask.shape)}, expected (..., {q.shape[-2]}, {k.shape[-2]})")
        scores = scores.masked_fill(~mask, float("-inf"))
    w = torch.softmax(scores, dim=-1)
    if mask is not None:
        w = torch.nan_to_num(w, nan=0.0)
    return w @ v


def block_sparse_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, layout: torch.Tensor, block: int,
                           mask: torch.Tensor | None = None) -> torch.Tensor:
    """Attention that only computes the kept ``block × block`` tiles of ``layout`` (``(nb, nb)`` bool).

    For each query block it gathers the key/value blocks its layout row keeps, computes those scores
    only and applies ``mask`` (a token mask, optional) inside them. Equals :func:`masked_attention` with
    ``mask`` whenever the layout covers the mask (:func:`block_layout_from_mask`). Memory for scores
    is ``kept tiles × block²`` instead of ``T²``.

    >>> q = torch.randn(1, 12, 4)
    >>> lay = bigbird_layout(3, local=1, n_global=1)
    >>> m = expand_layout(lay, 4) & full_mask(12)
    >>> torch.allclose(block_sparse_attention(q, q, q, lay, 4, mask=m), masked_attention(q, q, q, m), atol=1e-5)
    True
    """
    _check_qkv(q, k, v)
    _check_len(block, "block")
    T, S = q.shape[-2], k.shape[-2]
    if T != S:
        raise ValueError(f"block-sparse attention needs as many queries as keys, got {T} and {S}")
    nb = math.ceil(T / block)
    if layout.dtype != torch.bool or tuple(layout.shape) != (nb, nb):
        raise ValueError(f"layout must be a bool tensor of shape ({nb}, {nb}) for T={T}, block={block}; "
                         f"got {tuple(layout.shape)} {layout.dtype}")
    if mask is not None and (mask.dtype != torch.bool or tuple(mask.shape) != (T, T)):
        raise ValueError(f"mask must be a bool tensor of shape ({T}, {T}), got {tuple(mask.shape)} {mask.dtype}")
    pad = nb * block - T
    if pad:
        q, k, v = (torch.nn.functional.pad(t, (0, 0, 0, pad)) for t in (q, k, v))
        if mask is None:
            mask = torch.ones(T, T, dtype=torch.bool, device=q.device)
    if mask is not None:
        mask = torch.nn.functional.pad(mask, (0, pad, 0, pad))
    scale = 1.0 / math.sqrt(q.shape[-1])
    out = torch.zeros(*q.shape[:-1], v.shape[-1], dtype=v.dtype, device=v.device)
    for r in range(nb):
        cols = torch.nonzero(layout[r], as_tuple=False).flatten()
        if cols.numel() == 0:
            continue
        qs = slice(r * block, (r + 1) * block)
        idx = (cols[:, None] * block + torch.arange(block, device=cols.device)).flatten()
        kb, vb = k[..., idx, :], v[..., idx, :]
        s = (q[..., qs, :] @ kb.transpose(-2, -1)) * scale
        if mask is not None:
            s = s.masked_fill(~mask[qs][:, idx], float("-inf"))
        w = torch.nan_to_num(torch.softmax(s, dim=-1), nan=0.0)
        out[..., qs, :] = w @ vb
    return out[..., :T, :]


def mask_density(mask: torch.Tensor) -> float:
    """Fraction of query/key pairs a mask keeps.

    >>> round(mask_density(full_mask(4)), 3)
    0.625
    """
    if mask.dtype != torch.bool:
        raise TypeError(f"mask must be bool, got {mask.dtype}")
    return float(mask.float().mean())
