"""LoRA from scratch (tutorlib.peft.lora): behaviour, errors, and equality with the peft library on a tiny BERT."""

from __future__ import annotations

import copy
import time

import pytest
import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from tutorlib.models import count_parameters
from tutorlib.peft import (LoRALinear, find_linear_names, inject_lora, load_lora_state_dict,
                           lora_layers, lora_parameter_count, lora_state_dict, merge_lora, unload_lora, unmerge_lora)


def tiny_bert(layers: int = 2, vocab: int = 100):
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=vocab, hidden_size=32, num_hidden_layers=layers, num_attention_heads=4,
                     intermediate_size=64)
    return BertModel(cfg).eval()


def _randomise_b(model: nn.Module, seed: int = 1) -> None:
    g = torch.Generator().manual_seed(seed)
    for _, layer in lora_layers(model):
        layer.lora_B.weight.data.normal_(generator=g)


def test_zero_init_is_identity_and_counts():
    base = nn.Linear(16, 8)
    layer = LoRALinear(base, r=4, alpha=8)
    x = torch.randn(5, 16)
    assert torch.equal(layer(x), base(x))
    n = count_parameters(layer)
    assert (n.trainable, n.total) == (4 * (16 + 8), 16 * 8 + 8 + 4 * (16 + 8))
    assert not base.weight.requires_grad and not base.bias.requires_grad
    assert layer.scaling == 2.0


def test_forward_matches_formula_and_grads_reach_only_a_b():
    layer = LoRALinear(nn.Linear(6, 5), r=2, alpha=6)
    nn.init.normal_(layer.lora_B.weight)
    x = torch.randn(3, 6)
    expected = x @ layer.base.weight.T + layer.base.bias + 3.0 * (x @ layer.lora_A.weight.T @ layer.lora_B.weight.T)
    out = layer(x)
    torch.testing.assert_close(out, expected)
    out.sum().backward()
    assert layer.lora_A.weight.grad is not None and layer.lora_B.weight.grad is not None
    assert layer.base.weight.grad is None
    assert torch.linalg.matrix_rank(layer.delta_weight().detach()) <= 2


def test_merge_unmerge_roundtrip_same_outputs():
    layer = LoRALinear(nn.Linear(12, 7), r=3, alpha=5)
    nn.init.normal_(layer.lora_B.weight)
    w0 = layer.base.weight.detach().clone()
    x = torch.randn(4, 12)
    before = layer(x)
    layer.merge()
    layer.merge()  # idempotent
    torch.testing.assert_close(layer(x), before, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(layer(x), layer.base(x))
    layer.unmerge()
    layer.unmerge()
    torch.testing.assert_close(layer.base.weight, w0, atol=1e-6, rtol=0)
    torch.testing.assert_close(layer(x), before, atol=1e-5, rtol=1e-5)


class _CountMatmuls(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.n = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func.__name__.split(".")[0] in ("mm", "addmm", "bmm", "matmul", "linear"):
            self.n += 1
        return func(*args, **(kwargs or {}))


def test_merged_lora_does_the_work_of_a_plain_linear():
    base = nn.Linear(256, 256)
    layer = LoRALinear(copy.deepcopy(base), r=8)
    x = torch.randn(64, 256)
    counts = {}
    for name, mod in (("plain", base), ("unmerged", layer)):
        with torch.no_grad(), _CountMatmuls() as c:
            mod(x)
        counts[name] = c.n
    layer.merge()
    with torch.no_grad(), _CountMatmuls() as c:
        layer(x)
    counts["merged"] = c.n
    assert counts["merged"] == counts["plain"] < counts["unmerged"]

    # and measured: the merged layer is as fast as the plain one (min over repeats, generous for a shared CPU)
    def best(mod):
        times = []
        with torch.no_grad():
            for _ in range(30):
                t0 = time.perf_counter()
                mod(x)
                times.append(time.perf_counter() - t0)
        return min(times)

    assert best(layer) <= 1.5 * best(base) + 2e-4


def test_bad_arguments_are_explained():
    with pytest.raises(TypeError, match="wraps an nn.Linear"):
        LoRALinear(nn.Conv1d(2, 2, 1))
    with pytest.raises(ValueError, match="rank r must be a positive int"):
        LoRALinear(nn.Linear(4, 4), r=0)
    with pytest.raises(ValueError, match=r"expected inputs \(\.\.\., 4\)"):
        LoRALinear(nn.Linear(4, 4), r=2)(torch.zeros(2, 3))
    bert = tiny_bert()
    with pytest.raises(ValueError, match="no module matches.*query"):
        inject_lora(bert, ["qkv"])
    with pytest.raises(TypeError, match="not nn.Linear"):
        inject_lora(bert, ["LayerNorm"])
    inject_lora(bert, ["query"])
    with pytest.raises(ValueError, match="already has LoRA"):
        inject_lora(bert, ["value"])
    with pytest.raises(ValueError, match="no LoRALinear"):
        merge_lora(nn.Linear(2, 2))


def test_inject_freezes_everything_but_lora_and_named_modules():
    bert = tiny_bert()
    names = inject_lora(bert, ["query", "value"], r=4, alpha=8, trainable=("pooler",))
    assert names == [f"encoder.layer.{i}.attention.self.{p}" for i in range(2) for p in ("query", "value")]
    trainable = {n for n, p in bert.named_parameters() if p.requires_grad}
    assert all(".lora_" in n or n.startswith("pooler.") for n in trainable)
    pooler = 32 * 32 + 32
    assert count_parameters(bert).trainable == lora_parameter_count([(32, 32)] * 4, r=4) + pooler
    assert "query" in find_linear_names(tiny_bert())


@pytest.mark.parametrize("targets,r", [(["query", "value"], 4), (["query", "key", "value", "dense"], 2)])
def test_same_outputs_and_trainable_count_as_peft(targets, r):
    from peft import LoraConfig, get_peft_model

    base = tiny_bert()
    ours = copy.deepcopy(base)
    inject_lora(ours, targets, r=r, alpha=2 * r)
    ref = get_peft_model(copy.deepcopy(base), LoraConfig(r=r, lora_alpha=2 * r, target_modules=targets)).eval()
    assert count_parameters(ours).trainable == ref.get_nb_trainable_parameters()[0]
    assert sorted(n for n, _ in lora_layers(ours)) == sorted(
        n.removeprefix("base_model.model.") for n, m in ref.named_modules() if hasattr(m, "lora_A") and m.lora_A)
    _randomise_b(ours)
    for name, layer in lora_layers(ours):
        twin = ref.base_model.model.get_submodule(name)
        twin.lora_A["default"].weight.data.copy_(layer.lora_A.weight)
        twin.lora_B["default"].weight.data.copy_(layer.lora_B.weight)
    ids = torch.randint(0, 100, (3, 7))
    mask = torch.ones_like(ids)
    mask[0, 5:] = 0
    with torch.no_grad():
        a = ours(input_ids=ids, attention_mask=mask).last_hidden_state
        b = ref(input_ids=ids, attention_mask=mask).last_hidden_state
        c = base(input_ids=ids, attention_mask=mask).last_hidden_state
    assert (a - c).abs().max() > 1e-2  # the update does something …
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)  # … and the same thing as peft's
    # merging both gives the same merged weights
    merge_lora(ours)
    merged_ref = ref.merge_and_unload()
    for name, layer in lora_layers(ours):
        torch.testing.assert_close(layer.base.weight, merged_ref.get_submodule(name).weight, atol=1e-6, rtol=1e-5)


def test_lora_trains_and_loss_falls():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 32), nn.Tanh(), nn.Linear(32, 2))
    inject_lora(model, ["0", "2"], r=4, alpha=8)
    x = torch.randn(64, 8)
    y = (x[:, 0] > 0).long()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    losses = []
    for _ in range(40):  # a tiny inner loop is the point here: only A and B move
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]


def test_state_dict_roundtrip_and_unload():
    bert = tiny_bert()
    inject_lora(bert, ["query", "value"], r=2)
    _randomise_b(bert)
    state = lora_state_dict(bert)
    assert all(".lora_A." in k or ".lora_B." in k for k in state) and len(state) == 8
    fresh = tiny_bert()
    inject_lora(fresh, ["query", "value"], r=2)
    load_lora_state_dict(fresh, state)
    ids = torch.randint(0, 100, (2, 6))
    with torch.no_grad():
        torch.testing.assert_close(fresh(input_ids=ids).last_hidden_state, bert(input_ids=ids).last_hidden_state)
        expected = bert(input_ids=ids).last_hidden_state
    wrong_rank = tiny_bert()
    inject_lora(wrong_rank, ["query", "value"], r=4)
    with pytest.raises(ValueError, match="rank r differs"):
        load_lora_state_dict(wrong_rank, state)
    merge_lora(fresh)
    with pytest.raises(ValueError, match="unmerge_lora"):
        load_lora_state_dict(fresh, state)
    unmerge_lora(fresh)
    plain = unload_lora(fresh)
    assert not lora_layers(plain)
    assert isinstance(plain.encoder.layer[0].attention.self.query, nn.Linear)
    with torch.no_grad():
        torch.testing.assert_close(plain(input_ids=ids).last_hidden_state, expected, atol=1e-5, rtol=1e-5)
