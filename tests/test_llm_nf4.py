"""NF4 quantization and the QLoRA layer from scratch (tutorlib.llm.nf4) against torchao's to_nf4 and a float Linear."""

from __future__ import annotations

import copy

import pytest
import torch
import transformers
from torch import nn
from torch.nn import functional as F

from tutorlib.llm.nf4 import (LLAMA_LINEARS, NF4_LEVELS, LoRALinear, NF4Linear, dequantize_nf4, lora_linears,
                              lora_parameters, nf4_levels, pack_codes, quantize_linears, quantize_nf4, step_peak_bytes,
                              unpack_codes, weight_bytes)

TINY_LLAMA = dict(vocab_size=61, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, max_position_embeddings=64, tie_word_embeddings=False)


@pytest.fixture(scope="module")
def to_nf4():
    torchao = pytest.importorskip("torchao.quantization")
    return torchao.to_nf4


def test_levels_from_normal_quantiles_match_the_paper_table():
    levels = nf4_levels()
    assert torch.allclose(levels, torch.tensor(NF4_LEVELS, dtype=torch.float64), atol=1e-6)
    assert levels[7] == 0 and levels[0] == -1 and levels[-1] == 1 and bool((levels.diff() > 0).all())


def test_codes_scales_and_values_equal_torchao_to_nf4(to_nf4):
    torch.manual_seed(0)
    w = torch.randn(32, 512)                  # 256 blocks of 64: one group of 256 scales
    ao = to_nf4(w, block_size=64, scaler_block_size=256)
    # torchao's table is the paper's rounded to 4 decimals
    assert torch.allclose(ao.nf4, torch.tensor(NF4_LEVELS), atol=5e-5)
    ours = quantize_nf4(w, block_size=64, double_quant=True, scale_block_size=256, levels=ao.nf4)
    assert torch.equal(ours.codes, ao.quantized_data)                  # packed 4-bit codes, byte for byte
    assert torch.equal(ours.scale_codes, ao.quantized_scalers)         # int8 double-quantized scales
    assert torch.equal(ours.scale_factor, ao.quantization_factor)
    assert torch.equal(dequantize_nf4(ours), ao.get_original_weight())


def test_paper_levels_give_torchaos_codes_except_at_rounding_ties(to_nf4):
    torch.manual_seed(1)
    w = torch.randn(64, 256)
    ao = to_nf4(w, block_size=64, scaler_block_size=256)
    ours = quantize_nf4(w, block_size=64, double_quant=True, scale_block_size=256)   # full-precision levels
    same = unpack_codes(ours.codes) == unpack_codes(ao.quantized_data)
    assert same.float().mean() > 0.999
    scale = w.abs().max()
    assert (dequantize_nf4(ours) - ao.get_original_weight()).abs().max() < 0.15 * scale


def test_round_trip_error_is_bounded_by_half_the_widest_level_gap():
    torch.manual_seed(0)
    w = torch.randn(48, 128) * torch.rand(48, 1)          # rows of different magnitudes
    q = quantize_nf4(w)
    err = (dequantize_nf4(q) - w).abs().view(-1, 64)
    half_gap = torch.tensor(NF4_LEVELS).diff().max() / 2
    assert bool((err <= half_gap * q.scales.unsqueeze(-1) + 1e-6).all())
    # on normal weights the mean error is far below the worst case
    assert err.mean() < 0.1 * w.abs().mean()
    # block maxima are exact (they map to ±1)
    assert torch.equal(dequantize_nf4(q).view(-1, 64).abs().amax(1), w.view(-1, 64).abs().amax(1))


def test_double_quantization_shrinks_scales_and_stays_close():
    torch.manual_seed(0)
    w = torch.randn(64, 256)
    plain, double = quantize_nf4(w), quantize_nf4(w, double_quant=True)
    assert plain.nbytes == w.numel() // 2 + 4 * w.numel() // 64
    assert double.nbytes < plain.nbytes
    assert double.nbytes < 0.53 * w.numel()             # about 4.1 bits per weight
    assert (dequantize_nf4(double) - dequantize_nf4(plain)).abs().max() < 0.01 * w.abs().max()


def test_pack_unpack_round_trip_and_zero_block():
    codes = torch.randint(0, 16, (100,))
    assert torch.equal(unpack_codes(pack_codes(codes)), codes)
    q = quantize_nf4(torch.zeros(2, 64))
    assert torch.equal(dequantize_nf4(q), torch.zeros(2, 64))


def test_bad_inputs_say_what_to_do():
    with pytest.raises(ValueError, match="not a multiple of block_size=64.*pick a block_size"):
        quantize_nf4(torch.randn(3, 10))
    with pytest.raises(ValueError, match="even number"):
        quantize_nf4(torch.randn(4, 9), block_size=9)
    with pytest.raises(ValueError, match="does not divide.*double_quant=False"):
        quantize_nf4(torch.randn(3, 64), double_quant=True, scale_block_size=2)
    with pytest.raises(ValueError, match="16 levels"):
        quantize_nf4(torch.randn(64), levels=[0.0, 1.0])
    with pytest.raises(ValueError, match="0..15"):
        pack_codes(torch.tensor([3, 16]))
    with pytest.raises(ValueError, match="rank r"):
        NF4Linear(nn.Linear(64, 8), r=0)


def test_nf4_linear_equals_float_linear_with_dequantized_weight():
    torch.manual_seed(0)
    base = nn.Linear(128, 48)
    layer = NF4Linear(base, r=4, alpha=8)
    reference = nn.Linear(128, 48)
    with torch.no_grad():
        reference.weight.copy_(dequantize_nf4(layer.nf4_weight()))
        reference.bias.copy_(base.bias)
        layer.lora_B.normal_()                          # a trained-looking adapter
    x = torch.randn(2, 5, 128)
    expected = reference(x) + 2.0 * (x @ layer.lora_A.T) @ layer.lora_B.T
    assert torch.allclose(layer(x), expected, atol=1e-5)


def test_only_lora_gets_gradients_and_input_gradient_matches_float():
    torch.manual_seed(0)
    layer = NF4Linear(nn.Linear(64, 32, bias=False), r=4, alpha=8)
    assert [n for n, p in layer.named_parameters()] == ["lora_A", "lora_B"]
    assert not any(b.requires_grad for b in layer.buffers())
    x = torch.randn(3, 64, requires_grad=True)
    layer(x).pow(2).sum().backward()
    assert layer.lora_B.grad is not None and layer.lora_B.grad.abs().sum() > 0
    # the custom backward gives the same input gradient as autograd through the dequantized weight
    x2 = x.detach().clone().requires_grad_(True)
    w = dequantize_nf4(layer.nf4_weight())
    (F.linear(x2, w) + layer.scaling * (x2 @ layer.lora_A.T) @ layer.lora_B.T).pow(2).sum().backward()
    assert torch.allclose(x.grad, x2.grad, atol=1e-5)


def test_forward_does_not_keep_the_float_weight_alive():
    torch.manual_seed(0)
    layer = NF4Linear(nn.Linear(1024, 1024, bias=False), r=2)       # its float weight: 4 MiB
    x = torch.randn(1, 1024)
    out = {}
    peak = step_peak_bytes(lambda: out.update(y=layer(x)))
    assert peak >= 4 * 1024 * 1024                       # dequantized once inside forward ...
    from tutorlib.measure import LiveTensorMemory
    with LiveTensorMemory() as mem:
        y = layer(x)
    assert mem.current_bytes < 1024 * 1024               # ... and freed: the graph saved codes, not floats
    y.sum().backward()


def test_quantize_linears_swaps_every_llama_linear_and_freezes_the_rest():
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(transformers.LlamaConfig(**TINY_LLAMA)).eval()
    ids = torch.randint(0, 61, (2, 12))
    reference = copy.deepcopy(model)                     # the float model with each target weight round-tripped
    with torch.no_grad():
        for name, module in reference.named_modules():
            if name.rsplit(".", 1)[-1] in LLAMA_LINEARS:
                module.weight.copy_(dequantize_nf4(quantize_nf4(module.weight)))
    float_bytes = weight_bytes(model)["total"]
    quantize_linears(model, r=4, alpha=8)
    swapped = [n for n, m in model.named_modules() if isinstance(m, NF4Linear)]
    assert len(swapped) == len(LLAMA_LINEARS) * TINY_LLAMA["num_hidden_layers"]
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {n for n, _ in model.named_parameters() if n.endswith(("lora_A", "lora_B"))}
    assert len(lora_parameters(model)) == 2 * len(swapped)
    with torch.no_grad():                                # B = 0: the model is its dequantized base
        assert torch.allclose(model(ids).logits, reference(ids).logits, atol=1e-5)
    sizes = weight_bytes(model)
    assert sizes["trainable"] > 0 and sizes["frozen"] < float_bytes


def test_unknown_target_modules_name_the_real_ones():
    model = transformers.LlamaForCausalLM(transformers.LlamaConfig(**TINY_LLAMA))
    with pytest.raises(ValueError, match="q_proj"):
        quantize_linears(model, target_modules=["query"])
    quantize_linears(model)
    with pytest.raises(ValueError, match="already has LoRA layers"):
        quantize_linears(model)


@pytest.mark.parametrize("prepare", [quantize_linears, lora_linears], ids=["nf4", "float"])
def test_tiny_llama_trains_with_lora_on_a_frozen_base(prepare):
    torch.manual_seed(0)
    model = prepare(transformers.LlamaForCausalLM(transformers.LlamaConfig(**TINY_LLAMA)), r=4, alpha=8)
    frozen = {n: t.clone() for n, t in model.state_dict().items() if "lora_" not in n}
    ids = torch.randint(0, 61, (4, 16))
    opt = torch.optim.AdamW(lora_parameters(model), lr=1e-2)
    losses = []
    for _ in range(25):
        loss = model(ids, labels=ids).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.5
    assert all(torch.equal(t, model.state_dict()[n]) for n, t in frozen.items())    # the base never moved
    assert all(isinstance(m, LoRALinear) for n, m in model.named_modules() if n.endswith("q_proj"))


def test_weight_bytes_counts_torchao_nf4_through_its_inner_tensors(to_nf4):
    torch.manual_seed(0)
    ao = to_nf4(torch.randn(64, 256), block_size=64, scaler_block_size=256)
    holder = nn.Module()
    holder.w = nn.Parameter(ao, requires_grad=False)
    inner = (ao.quantized_data, ao.quantized_scalers, ao.quantization_factor, ao.scaler_mean, ao.nf4)
    assert weight_bytes(holder)["frozen"] == sum(t.untyped_storage().nbytes() for t in inner)
    assert weight_bytes(holder)["frozen"] < 64 * 256


def test_step_peak_bytes_does_not_count_views_of_existing_weights():
    torch.manual_seed(0)
    layer = LoRALinear(nn.Linear(512, 512, bias=False), r=2)          # float weight: 1 MiB
    x = torch.randn(2, 512)
    assert step_peak_bytes(lambda: layer(x).sum().backward(), model=layer) < 64 * 1024
    nf4 = NF4Linear(nn.Linear(512, 512, bias=False), r=2)            # dequantizes: a new 1 MiB tensor
    assert step_peak_bytes(lambda: nf4(x).sum().backward(), model=nf4) >= 512 * 512 * 4
