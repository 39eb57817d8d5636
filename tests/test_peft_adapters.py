"""Bottleneck adapters (tutorlib.peft.adapters): identity at start, placements, parameter counts, training."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tutorlib.models import count_parameters
from tutorlib.peft import AdaptedLinear, BottleneckAdapter, adapter_layers, inject_adapters


def tiny_bert(layers: int = 2):
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    return BertModel(BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=layers, num_attention_heads=4,
                                intermediate_size=64)).eval()


def test_adapter_is_identity_at_init_and_residual_after():
    a = BottleneckAdapter(32, bottleneck=4)
    h = torch.randn(2, 5, 32)
    assert torch.equal(a(h), h)
    nn.init.normal_(a.up.weight)
    expected = h + a.up(torch.nn.functional.gelu(a.down(h)))
    torch.testing.assert_close(a(h), expected)
    assert sum(p.numel() for p in a.parameters()) == 2 * 32 * 4 + 4 + 32


@pytest.mark.parametrize("placement,per_layer", [("houlsby", 2), ("pfeiffer", 1)])
def test_placements_keep_outputs_and_count(placement, per_layer):
    bert = tiny_bert(layers=3)
    ids = torch.randint(0, 100, (2, 6))
    with torch.no_grad():
        before = bert(input_ids=ids).last_hidden_state
    names = inject_adapters(bert, bottleneck=4, placement=placement)
    assert len(names) == 3 * per_layer
    assert all(isinstance(bert.get_submodule(n), AdaptedLinear) for n in names)
    if placement == "pfeiffer":
        assert all("attention" not in n for n in names)
    with torch.no_grad():
        torch.testing.assert_close(bert(input_ids=ids).last_hidden_state, before)
    adapters = 3 * per_layer * (2 * 32 * 4 + 4 + 32)
    layernorms = (1 + 3 * 2) * 2 * 32 if placement == "houlsby" else 0  # embeddings LN + 2 per layer
    assert count_parameters(bert).trainable == adapters + layernorms
    assert len(adapter_layers(bert)) == 3 * per_layer


def test_adapters_learn():
    torch.manual_seed(0)
    bert = tiny_bert()
    inject_adapters(bert, bottleneck=8, placement="pfeiffer", trainable=("pooler",))
    ids = torch.randint(0, 100, (16, 6))
    y = (ids[:, 1] % 2).long()
    head = nn.Linear(32, 2)
    params = [p for p in bert.parameters() if p.requires_grad] + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=1e-2)
    bert.train()
    losses = []
    for _ in range(30):  # tiny inner loop: the adapter (and the head) are the only things that move
        loss = nn.functional.cross_entropy(head(bert(input_ids=ids).last_hidden_state[:, 0]), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    frozen = bert.encoder.layer[0].attention.self.query.weight
    assert not frozen.requires_grad and frozen.grad is None


def test_adapter_errors():
    with pytest.raises(ValueError, match="unknown activation"):
        BottleneckAdapter(8, 2, activation="swish2")
    with pytest.raises(ValueError, match="positive"):
        BottleneckAdapter(8, 0)
    with pytest.raises(ValueError, match=r"expected hidden states \(\.\.\., 8\)"):
        BottleneckAdapter(8, 2)(torch.zeros(3, 4))
    with pytest.raises(ValueError, match="unknown placement"):
        inject_adapters(tiny_bert(), placement="parallel")
    with pytest.raises(ValueError, match="no Linear layer matches"):
        inject_adapters(nn.Sequential(nn.Linear(3, 3)), placement="pfeiffer")
    bert = tiny_bert()
    inject_adapters(bert, placement="pfeiffer")
    with pytest.raises(ValueError, match="already has adapters"):
        inject_adapters(bert, placement="pfeiffer")
