"""Long-context attention: masks, the dense reference vs torch's SDPA, and the block-sparse kernel that skips tiles."""

import pytest
import torch
import torch.nn.functional as F

from tutorlib.frontiers import (bigbird_layout, block_layout_from_mask, block_sparse_attention, block_sparse_mask,
                                expand_layout, full_mask, mask_density, masked_attention, sliding_window_mask)
from tutorlib.frontiers.measure import measure_attention
from tutorlib.measure import LiveTensorMemory


def _qkv(T, B=2, H=3, D=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(B, H, T, D, generator=g) for _ in range(3))


@pytest.mark.parametrize("mask_fn", [
    lambda T: full_mask(T),
    lambda T: full_mask(T, causal=False),
    lambda T: sliding_window_mask(T, 5),
    lambda T: sliding_window_mask(T, 4, causal=False),
    lambda T: block_sparse_mask(T, 8, local=1, n_global=1),
    lambda T: block_sparse_mask(T, 8, local=0, n_global=2, n_random=1, causal=False, seed=3),
])
def test_masked_attention_equals_sdpa_with_the_same_bool_mask(mask_fn):
    q, k, v = _qkv(40)
    m = mask_fn(40)
    ours = masked_attention(q, k, v, m)
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=m)
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("T,block", [(64, 8), (50, 8), (33, 16)])
def test_block_sparse_kernel_matches_dense_masked_version(T, block):
    q, k, v = _qkv(T, seed=1)
    for m in (sliding_window_mask(T, 10), block_sparse_mask(T, block, local=1, n_global=1),
              block_sparse_mask(T, block, local=0, n_global=1, n_random=1, seed=2)):
        lay = block_layout_from_mask(m, block)
        out = block_sparse_attention(q, k, v, lay, block, mask=m)
        torch.testing.assert_close(out, masked_attention(q, k, v, m), atol=1e-5, rtol=1e-5)


def test_block_sparse_really_skips_blocks():
    """It only ever computes kept tiles: peak memory at long T is far below the dense T×T scores."""
    T, block = 1024, 64
    q, k, v = _qkv(T, B=1, H=1, D=16)
    m = sliding_window_mask(T, block)
    lay = block_layout_from_mask(m, block)
    assert int(lay.sum()) == 2 * (T // block) - 1  # the diagonal and the block before it
    with LiveTensorMemory() as dense:
        masked_attention(q, k, v, m)
    with LiveTensorMemory() as sparse:
        block_sparse_attention(q, k, v, lay, block, mask=m)
    assert dense.peak_bytes >= T * T * 4  # the score matrix
    assert sparse.peak_bytes < dense.peak_bytes / 5


def test_block_layout_without_token_mask_is_block_attention():
    q, k, v = _qkv(32)
    lay = bigbird_layout(4, local=1, n_global=1, causal=False)
    out = block_sparse_attention(q, k, v, lay, 8)
    torch.testing.assert_close(out, masked_attention(q, k, v, expand_layout(lay, 8)), atol=1e-5, rtol=1e-5)


def test_mask_shapes_and_densities():
    assert sliding_window_mask(6, 1).equal(torch.eye(6, dtype=torch.bool))
    assert sliding_window_mask(6, 100).equal(full_mask(6))
    assert mask_density(full_mask(4, causal=False)) == 1.0
    bb = bigbird_layout(6, local=1, n_global=1, causal=True)
    assert bb[:, 0].all() and not bb.triu(1).any()


def test_measure_attention_rows():
    rows = measure_attention([64, 128], window=16, block=16, repeats=1)
    assert len(rows) == 10
    full = {r["T"]: r for r in rows if r["variant"] == "full (dense)"}
    assert full[128]["peak_mib"] > 3 * full[64]["peak_mib"]  # quadratic growth


def test_bad_input_is_explained():
    with pytest.raises(ValueError, match="window"):
        sliding_window_mask(8, 0)
    with pytest.raises(TypeError, match="bool"):
        masked_attention(*_qkv(4), torch.ones(4, 4))
    with pytest.raises(ValueError, match="layout"):
        block_sparse_attention(*_qkv(16), torch.ones(3, 3, dtype=torch.bool), 8)
    with pytest.raises(ValueError, match="square bool"):
        block_layout_from_mask(torch.ones(4, 5, dtype=torch.bool), 2)
