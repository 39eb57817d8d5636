"""tutorlib.efficient: number formats vs torch.finfo, AMP step, accumulation (and the Trainer's), checkpointing,
measurement (throughput, memory, FLOPs, MFU), the technique benchmark and the loss-scale explorer."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tutorlib.efficient import (FORMATS, RSSSampler, Technique, accumulation_step, amp_train_step,
                                benchmark_techniques, checkpointed_sequential, collect_gradients, count_flops,
                                device_peak_flops, disable_activation_checkpointing,
                                enable_activation_checkpointing, get_format, gradient_precision_report, lm_dataset,
                                lm_loss, measure, mfu, overflow_fraction, representation_error, round_mantissa, round_to,
                                saved_activation_bytes, smallest_safe_scale, split_micro_batches, techniques_table,
                                transformer_train_flops, underflow_fraction)
from tutorlib.models import GPTConfig, TinyGPT, count_parameters

TINY = GPTConfig(block_size=32, n_layer=2, n_head=2, d_model=32)


# ----------------------------------------------------------------------------------------- formats
@pytest.mark.parametrize("name", ["fp32", "bf16", "fp16"])
def test_format_limits_match_torch_finfo(name):
    f, fi = get_format(name), torch.finfo(FORMATS[name].dtype)
    assert f.max == fi.max
    assert f.smallest_normal == fi.tiny
    assert f.eps == fi.eps
    assert f.smallest_subnormal == fi.smallest_normal * 2.0 ** -f.mantissa_bits
    assert f.bits == fi.bits


def test_round_mantissa_7_bits_is_bf16_rounding():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200_000, generator=g) * torch.exp(6 * torch.randn(200_000, generator=g))
    x = torch.cat([x, torch.tensor([1 + 2**-8, 1 + 3 * 2**-8, -2.5, 0.0])])   # ties round to even
    assert torch.equal(round_mantissa(x, 7), x.to(torch.bfloat16).float())


def test_tf32_keeps_range_and_drops_precision():
    x = torch.tensor([1.0 + 2**-12, 3e38, 1e-30, float("inf")])
    y = round_to(x, "tf32")
    assert y[0] == 1.0 and torch.isfinite(y[1]) and y[2] > 0 and torch.isinf(y[3])
    assert representation_error(torch.linspace(1, 2, 1001), "tf32")["max_rel_error"] <= 2**-11


def test_underflow_overflow_and_safe_scale():
    v = torch.tensor([1e-9, 1e-6, 1e-3, 1.0])
    assert underflow_fraction(v, "fp16") == 0.25
    assert underflow_fraction(v, "bf16") == 0.0
    assert overflow_fraction(v, "fp16", scale=1e5) == 0.25
    k = smallest_safe_scale(v, "fp16", max_underflow=0.0)
    assert underflow_fraction(v, "fp16", 2.0**k) == 0 and underflow_fraction(v, "fp16", 2.0 ** (k - 1)) > 0


def test_format_errors_are_clear():
    with pytest.raises(ValueError, match="unknown number format 'fp8'"):
        get_format("fp8")
    with pytest.raises(ValueError, match="mantissa_bits"):
        round_mantissa(torch.ones(2), 30)
    with pytest.raises(TypeError, match="floating-point"):
        round_to(torch.ones(2, dtype=torch.long), "bf16")
    with pytest.raises(ValueError, match="use bf16"):
        smallest_safe_scale(torch.tensor([1e-30, 6e4]), "fp16", max_underflow=0.0)


# ----------------------------------------------------------------------------------------- AMP
def _classifier():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 3))


def test_amp_step_in_fp32_equals_a_plain_step():
    a, b = _classifier(), _classifier()
    x, y = torch.randn(10, 6), torch.randint(0, 3, (10,))
    oa, ob = torch.optim.SGD(a.parameters(), lr=0.1), torch.optim.SGD(b.parameters(), lr=0.1)
    loss = amp_train_step(a, x, y, oa, torch.amp.GradScaler("cpu", enabled=False), torch.float32)
    ob.zero_grad()
    ref = F.cross_entropy(b(x), y)
    ref.backward()
    ob.step()
    assert loss == pytest.approx(ref.item())
    assert all(torch.allclose(p, q) for p, q in zip(a.parameters(), b.parameters()))


def test_amp_step_bf16_trains_and_scaler_skips_bad_steps():
    model = _classifier()
    x = torch.randn(64, 6)
    y = (x @ torch.randn(6, 3)).argmax(1)        # a learnable labelling
    opt = torch.optim.Adam(model.parameters(), lr=3e-2)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    losses = [amp_train_step(model, x, y, opt, scaler, torch.bfloat16) for _ in range(40)]
    assert losses[-1] < 0.5 * losses[0]
    before = [p.detach().clone() for p in model.parameters()]
    x_bad = x.clone()
    x_bad[0, 0] = float("inf")
    amp_train_step(model, x_bad, y, opt, scaler, torch.bfloat16)
    assert all(torch.equal(p, b) for p, b in zip(model.parameters(), before))
    assert scaler.get_scale() == 2.0**9
    with pytest.raises(ValueError, match="dtype must be"):
        amp_train_step(model, x, y, opt, scaler, torch.int8)


def test_gradient_precision_report_fp16_needs_scaling():
    model = TinyGPT(TINY)
    x, y = lm_dataset(block_size=32, n_sequences=8)[:8]
    rows = gradient_precision_report(model, lambda m: lm_loss(m(x), y), "cpu", ("fp16", "bf16"), (1.0, 2.0**16))
    by = {(r["precision"], r["scale"]): r for r in rows}
    assert by[("fp32", 1.0)]["rel_error"] == 0
    assert by[("bf16", 1.0)]["lost"] == 0 and 0 < by[("bf16", 1.0)]["rel_error"] < 0.05
    assert by[("fp16", 2.0**16)]["lost"] <= by[("fp16", 1.0)]["lost"]
    assert by[("fp16", 2.0**16)]["rel_error"] < 0.05
    assert model.training  # restored
    with pytest.raises(ValueError, match="precisions must be among"):
        gradient_precision_report(model, lambda m: lm_loss(m(x), y), "cpu", ("fp8",))
    with pytest.raises(ValueError, match="no parameter has a gradient"):
        collect_gradients(nn.Linear(2, 2))


# ----------------------------------------------------------------------------------------- accumulation
def test_accumulation_step_equals_full_batch_even_with_ragged_micro_batches():
    a, b = _classifier(), _classifier()
    x, y = torch.randn(10, 6), torch.randint(0, 3, (10,))
    la = accumulation_step(a, x, y, torch.optim.SGD(a.parameters(), lr=0.5), micro_batches=4)
    lb = accumulation_step(b, x, y, torch.optim.SGD(b.parameters(), lr=0.5), micro_batches=1)
    assert la == pytest.approx(lb, rel=1e-5)
    assert all(torch.allclose(p, q, atol=1e-6) for p, q in zip(a.parameters(), b.parameters()))
    with pytest.raises(ValueError, match="cannot split a batch of 10 into 11"):
        split_micro_batches(x, y, 11)
    with pytest.raises(ValueError, match="must match"):
        split_micro_batches(x, y[:5], 2)


def _trainer_pair(n, optimizer):
    from tutorlib.data import load_digits
    from tutorlib.models import MLP
    from tutorlib.train import Trainer

    data = load_digits("train", limit=n)
    torch.manual_seed(0)
    base = MLP(64, [32], 10)
    a, b = copy.deepcopy(base), copy.deepcopy(base)
    opt = (lambda m: torch.optim.SGD(m.parameters(), lr=0.5)) if optimizer == "sgd" else (lambda m: None)
    Trainer(a, opt(a), lr=1e-2, grad_accum=4, batch_size=8, progress=False, log=False).fit(data, epochs=2)
    Trainer(b, opt(b), lr=1e-2, batch_size=32, progress=False, log=False).fit(data, epochs=2)
    return max((p - q).abs().max().item() for p, q in zip(a.parameters(), b.parameters()))


@pytest.mark.parametrize("optimizer", ["adamw", "sgd"])
def test_trainer_grad_accum_4x8_equals_batch_32(optimizer):
    assert _trainer_pair(96, optimizer) < 1e-6


def test_trainer_grad_accum_with_ragged_last_group():
    # n=100 is not a multiple of the effective batch: the last, short group must be weighted by its size.
    assert _trainer_pair(100, "sgd") < 1e-6


# ----------------------------------------------------------------------------------------- checkpointing
def test_checkpointing_same_gradients_less_memory_tinygpt():
    torch.manual_seed(0)
    plain = TinyGPT(TINY)
    ckpt = enable_activation_checkpointing(copy.deepcopy(plain))
    enable_activation_checkpointing(ckpt)  # twice is harmless
    x = torch.randint(0, 128, (4, 33))
    for m in (plain, ckpt):
        m.loss(x).backward()
    for p, q in zip(plain.parameters(), ckpt.parameters()):
        assert torch.allclose(p.grad, q.grad, atol=1e-6)
    assert saved_activation_bytes(lambda: ckpt.loss(x), ckpt) < 0.5 * saved_activation_bytes(lambda: plain.loss(x), plain)
    assert type(disable_activation_checkpointing(ckpt).blocks[0]).__name__ == "_Block"


def test_checkpointing_hugging_face_encoder():
    from transformers import BertConfig, BertModel

    from tutorlib.models import MiniLMClassifier

    torch.manual_seed(0)
    model = MiniLMClassifier(2, encoder=BertModel(BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=3,
                                                              num_attention_heads=2, intermediate_size=32)))
    model.eval()  # no dropout: outputs comparable; checkpointing is active only in train mode, so switch it on below
    ids = torch.randint(0, 50, (3, 10))
    mask = torch.ones_like(ids)
    out = model(ids, mask)
    model.train()
    model.dropout.p = 0.0
    model.encoder.config.hidden_dropout_prob = 0.0
    for mod in model.modules():
        if isinstance(mod, nn.Dropout):
            mod.p = 0.0
    plain = saved_activation_bytes(lambda: model(ids, mask).sum(), model)
    enable_activation_checkpointing(model)
    assert saved_activation_bytes(lambda: model(ids, mask).sum(), model) < 0.5 * plain
    assert torch.allclose(model(ids, mask), out, atol=1e-5)
    disable_activation_checkpointing(model)
    assert saved_activation_bytes(lambda: model(ids, mask).sum(), model) == plain


def test_checkpointed_sequential_and_errors():
    blocks = [nn.Sequential(nn.Linear(8, 8), nn.GELU()) for _ in range(3)]
    x = torch.randn(4, 8, requires_grad=True)
    ref = blocks[2](blocks[1](blocks[0](x)))
    assert torch.allclose(checkpointed_sequential(blocks, x), ref)
    with pytest.raises(ValueError, match="do not know where the blocks"):
        enable_activation_checkpointing(nn.Linear(2, 2))
    with pytest.raises(TypeError, match="expected an nn.ModuleList"):
        enable_activation_checkpointing(TinyGPT(TINY), blocks="ln_f")


# ----------------------------------------------------------------------------------------- measurement
def test_measure_reports_throughput_and_cpu_memory():
    keep = []

    def step():
        # 64 MB per step, kept: the RSS must grow. Above glibc's largest mmap threshold (32 MiB), so each block
        # is fresh memory; 32 MB blocks could reuse heap space an earlier test in the same worker freed
        keep.append(torch.ones(16_000_000))

    m = measure(step, steps=3, warmup=0, samples_per_step=4, tokens_per_step=40, flops_per_step=1e6, peak_flops=1e9,
                name="alloc")
    assert m.memory_source == "process RSS" and m.steps == 3
    assert m.memory_delta_mb > 120
    assert m.samples_per_s == pytest.approx(4 / m.seconds_per_step)
    assert m.tokens_per_s == pytest.approx(40 / m.seconds_per_step)
    assert m.mfu == pytest.approx(1e6 / m.seconds_per_step / 1e9)
    assert "alloc" in str(m) and m.as_row()["name"] == "alloc"
    with pytest.raises(ValueError, match="samples_per_step"):
        measure(lambda: None, samples_per_step=0)
    with pytest.raises(TypeError, match="function taking no arguments"):
        measure(3, samples_per_step=1)  # type: ignore[arg-type]


def test_rss_sampler_sees_a_temporary_allocation():
    with RSSSampler(0.001) as s:
        x = torch.ones(50_000_000)  # 200 MB, freed at the end
        x += 1
        del x
    assert s.peak_mb - s.baseline_mb > 150


def test_flop_counting_and_the_6n_rule():
    assert count_flops(lambda: nn.Linear(8, 4)(torch.zeros(3, 8))) == 2 * 3 * 8 * 4
    model = TinyGPT(GPTConfig(block_size=64, n_layer=2, n_head=4, d_model=64))
    x, y = lm_dataset(block_size=64, n_sequences=4)[:4]
    counted = count_flops(lambda: lm_loss(model(x), y).backward())
    n = count_parameters(model).non_embedding
    estimate = transformer_train_flops(n, x.numel(), n_layer=2, d_model=64, seq_len=64)
    assert 0.7 < counted / estimate < 1.5
    assert count_parameters(model).total > n
    with pytest.raises(ValueError, match="give all of n_layer"):
        transformer_train_flops(10, 10, n_layer=2)
    with pytest.raises(ValueError, match="peak_flops must be positive"):
        mfu(1.0, 1.0, 0.0)
    assert device_peak_flops("cpu") is None


# ----------------------------------------------------------------------------------------- techniques + widget
def test_benchmark_techniques_and_table(capsys):
    data = lm_dataset(block_size=32, n_sequences=16)
    rows = benchmark_techniques(lambda: TinyGPT(TINY), data,
                                [Technique("fp32"), Technique("accum x2", grad_accum=2), Technique("ckpt", checkpointing=True),
                                 Technique("fp16", precision="fp16")],
                                batch_size=8, steps=1, warmup=0, loss_fn=lm_loss, tokens_per_sample=32)
    assert [r.name for r in rows] == ["fp32", "accum x2", "ckpt"]
    assert "skipped 'fp16'" in capsys.readouterr().out
    assert all(r.tokens_per_s > 0 and r.flops_per_step > 0 and r.mfu is None for r in rows)
    table = techniques_table(rows)
    assert table.count("\n") == len(rows) + 1 and "accum x2" in table
    with pytest.raises(ValueError, match="not divisible by grad_accum"):
        benchmark_techniques(lambda: TinyGPT(TINY), data, [Technique("x", grad_accum=3)], batch_size=8, loss_fn=lm_loss)
    with pytest.raises(ValueError, match="precision must be"):
        Technique("x", precision="int8")


def test_lm_dataset_and_loss():
    x, y = lm_dataset(block_size=16, n_sequences=3)[1]
    assert x.shape == y.shape == (16,) and torch.equal(x[1:], y[:-1])
    with pytest.raises(ValueError, match="expected logits"):
        lm_loss(torch.zeros(2, 3), torch.zeros(2, dtype=torch.long))


def test_loss_scale_explorer_updates():
    import matplotlib

    matplotlib.use("Agg")
    from tutorlib.efficient.widgets import LossScaleExplorer, plot_underflow

    values = torch.logspace(-12, -3, 2000)
    ex = LossScaleExplorer(values)
    assert "tutorlib-widget" in ex.box._dom_classes
    at_zero = ex.last["underflow"]
    first_figure = ex.last_figure
    ex.scale.value = 20
    assert ex.last["log2_scale"] == 20 and ex.last["underflow"] < at_zero
    assert ex.last_figure is not first_figure
    assert "2^20" in ex.last_figure.axes[0].get_title()
    ex.fmt.value = "bf16"
    assert ex.last["underflow"] == 0.0
    with pytest.raises(ValueError, match="no non-zero"):
        LossScaleExplorer(torch.zeros(3))
    with pytest.raises(ValueError, match="log2_scale"):
        plot_underflow(values, "fp16", 100)
