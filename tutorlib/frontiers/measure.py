"""Measure time and peak tensor memory of attention variants as the sequence grows.

Memory is the peak of live tensors, measured with :class:`tutorlib.measure.LiveTensorMemory` on any
device (CPU included). Work buffers inside a fused kernel (e.g. the flash kernel behind
``scaled_dot_product_attention``) are invisible to it: it sees only outputs of ops.

>>> rows = measure_attention([64], window=16, block=16, repeats=1)
>>> rows[0]["T"], len(rows) == len(ATTENTION_VARIANTS)
(64, True)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from tutorlib.measure import LiveTensorMemory, time_call

from .attention import (block_layout_from_mask, block_sparse_attention, block_sparse_mask, full_mask,
                        masked_attention, sliding_window_mask)

__all__ = ["measure_attention", "ATTENTION_VARIANTS"]


ATTENTION_VARIANTS = ("full (dense)", "sliding (dense mask)", "sliding (block-sparse)", "bigbird (block-sparse)", "sdpa (fused, full)")


def measure_attention(seq_lens: Sequence[int], window: int = 64, block: int = 64, heads: int = 2, head_dim: int = 32,
                      repeats: int = 2, seed: int = 0) -> list[dict[str, Any]]:
    """Time and peak memory of each attention variant for each sequence length (batch 1, causal).

    Variants: the dense reference with a full mask, the dense reference with a sliding-window mask
    (same ``T²`` cost: masking alone saves nothing), sliding-window and BigBird computed block-sparse
    (cost ∝ kept tiles), and torch's fused ``scaled_dot_product_attention``. Returns one dict per
    (T, variant) with ``T``, ``variant``, ``seconds``, ``peak_mib`` and ``density`` (fraction of pairs kept).

    >>> rows = measure_attention([64], window=16, block=16, repeats=1)
    >>> sorted({r["variant"] for r in rows}) == sorted(ATTENTION_VARIANTS)
    True
    """
    if not seq_lens or any(int(T) <= 0 for T in seq_lens):
        raise ValueError(f"seq_lens must be positive ints, got {list(seq_lens)}")
    gen = torch.Generator().manual_seed(seed)
    rows = []
    for T in seq_lens:
        T = int(T)
        q, k, v = (torch.randn(1, heads, T, head_dim, generator=gen) for _ in range(3))
        fm = full_mask(T)
        sw = sliding_window_mask(T, window)
        sw_lay = block_layout_from_mask(sw, block)
        bb = block_sparse_mask(T, block, local=1, n_global=1)
        bb_lay = block_layout_from_mask(bb, block)
        calls = {
            "full (dense)": (lambda: masked_attention(q, k, v, fm), fm),
            "sliding (dense mask)": (lambda: masked_attention(q, k, v, sw), sw),
            "sliding (block-sparse)": (lambda: block_sparse_attention(q, k, v, sw_lay, block, mask=sw), sw),
            "bigbird (block-sparse)": (lambda: block_sparse_attention(q, k, v, bb_lay, block, mask=bb), bb),
            "sdpa (fused, full)": (lambda: torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True), fm),
        }
        for name, (fn, m) in calls.items():
            with torch.no_grad():
                seconds = time_call(fn, repeats, stat="min")
                with LiveTensorMemory() as pm:
                    fn()
            rows.append({"T": T, "variant": name, "seconds": seconds, "peak_mib": pm.peak_bytes / 2**20,
                         "density": float(m.float().mean())})
    return rows
