"""Checks for lesson 03 (efficient training): an AMP step, gradient accumulation, MFU, activation
checkpointing, a measured memory saving, and reading a gradient histogram.

Each check compares the learner's code with the reference in :mod:`tutorlib.efficient`, on inputs
drawn from the check's own generator.

>>> round(reference_estimate_mfu(1e6, 2, 64, 128, 1e5, 1e12), 6)
0.619661
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from tutorlib.efficient.accumulate import accumulation_step
from tutorlib.efficient.amp import amp_train_step
from tutorlib.efficient.checkpointing import (disable_activation_checkpointing, enable_activation_checkpointing,
                                              saved_activation_bytes)
from tutorlib.efficient.formats import smallest_safe_scale
from tutorlib.efficient.measure import mfu, transformer_train_flops

from ..compare import CheckFailed, call_safely, expect_close, expect_finite, expect_number, expect_tensor
from ..registry import CheckContext, register

__all__ = ["reference_estimate_mfu", "reference_saving"]


def reference_estimate_mfu(n_params: float, n_layer: int, d_model: int, seq_len: int, tokens_per_second: float,
                           peak_flops: float) -> float:
    """MFU with the PaLM estimate: ``(6 N + 12 L d T) · tokens/s / peak``."""
    flops_per_token = transformer_train_flops(int(n_params), 1, n_layer=n_layer, d_model=d_model, seq_len=seq_len)
    return mfu(flops_per_token * tokens_per_second, 1.0, peak_flops)


def reference_saving(model: nn.Module, x: torch.Tensor) -> tuple[int, int, float]:
    """Saved-for-backward bytes of ``model.loss(x)`` without and with activation checkpointing, and the saving."""
    plain = disable_activation_checkpointing(copy.deepcopy(model))
    ckpt = enable_activation_checkpointing(copy.deepcopy(model))
    plain.train()
    ckpt.train()
    a = saved_activation_bytes(lambda: plain.loss(x), plain)
    b = saved_activation_bytes(lambda: ckpt.loss(x), ckpt)
    return a, b, 1 - b / a


class _AutocastProbe(nn.Module):
    """Identity layer that records whether autocast was on when it ran."""

    def __init__(self, device_type: str) -> None:
        super().__init__()
        self.device_type = device_type
        self.seen: list[tuple[bool, torch.dtype]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append((torch.is_autocast_enabled(self.device_type), torch.get_autocast_dtype(self.device_type)))
        return x


class _SizeProbe(nn.Module):
    """Identity layer that records the batch sizes it saw."""

    def __init__(self) -> None:
        super().__init__()
        self.sizes: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.sizes.append(int(x.shape[0]))
        return x


def _mlp(ctx: CheckContext, probe: nn.Module, d_in: int = 8, hidden: int = 16, classes: int = 3) -> nn.Sequential:
    model = nn.Sequential(nn.Linear(d_in, hidden), probe, nn.Tanh(), nn.Linear(hidden, classes))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(0.4 * torch.randn(p.shape, generator=ctx.generator))
    return model.to(ctx.device)


def _amp_dtype(device: torch.device) -> torch.dtype:
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        return torch.float16
    return torch.bfloat16


@register("ex03_1", points=2, timeout=60)
def check_amp_step(ctx: CheckContext) -> None:
    """``amp_step(model, x, y, optimizer, scaler, dtype)``: autocast on, loss scaled, step through the scaler, scale updated."""
    amp_step = ctx.function("amp_step")
    dev, dtype = ctx.device, _amp_dtype(ctx.device)
    probe = _AutocastProbe(dev.type)
    model = _mlp(ctx, probe)
    ref_model = copy.deepcopy(model)
    ref_model[1] = nn.Identity()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    ref_opt = torch.optim.SGD(ref_model.parameters(), lr=0.1)
    scaler = torch.amp.GradScaler(dev.type, init_scale=2.0**8, growth_interval=1)
    ref_scaler = torch.amp.GradScaler(dev.type, init_scale=2.0**8, growth_interval=1)
    x, y = ctx.randn(16, 8), ctx.randint(3, 16)
    loss = call_safely(amp_step, model, x, y, opt, scaler, dtype, name="amp_step", mutable=(0, 3, 4))
    loss = expect_number(loss, "the value amp_step returned", float)
    ref_loss = amp_train_step(ref_model, x, y, ref_opt, ref_scaler, dtype)
    if not probe.seen:
        raise CheckFailed("amp_step never ran the model: compute the loss with model(x)")
    if not any(on and d == dtype for on, d in probe.seen):
        raise CheckFailed(f"the model ran without autocast: wrap the forward pass and the loss in "
                          f"`with torch.autocast(device_type=x.device.type, dtype=dtype):`")
    expect_close(loss, ref_loss, "the loss amp_step returned", atol=1e-4, rtol=1e-3,
                 hint="return the loss of this batch as a float (loss.item())")
    if scaler.get_scale() == 2.0**8:
        raise CheckFailed("the scaler's scale did not change after a good step with growth_interval=1: "
                          "call scaler.update() after scaler.step(optimizer)")
    for (name, p), r in zip(model.named_parameters(), ref_model.parameters()):
        expect_close(p.detach(), r.detach(), f"parameter {name} after amp_step", atol=1e-5, rtol=1e-4,
                     hint="backpropagate the scaled loss, scaler.scale(loss).backward(), then call scaler.step(optimizer): "
                          "the scaler divides the gradients by the scale before stepping")
    # A batch with an infinite input: the scaler must skip the step and lower the scale.
    before = [p.detach().clone() for p in model.parameters()]
    scale_before = scaler.get_scale()
    x_bad = x.clone()
    x_bad[0, 0] = float("inf")
    call_safely(amp_step, model, x_bad, y, opt, scaler, dtype, name="amp_step", mutable=(0, 3, 4))
    if any(not torch.equal(p.detach(), b) for p, b in zip(model.parameters(), before)):
        raise CheckFailed("a batch whose gradients were inf/NaN changed the weights: step with scaler.step(optimizer) "
                          "(not optimizer.step()), which skips such steps")
    if not scaler.get_scale() < scale_before:
        raise CheckFailed("after a step with inf/NaN gradients the scale should shrink: call scaler.update() every step")


@register("ex03_2", points=2, timeout=60)
def check_accumulate_step(ctx: CheckContext) -> None:
    """``accumulate_step(model, x, y, optimizer, micro_batches)``: micro-batches only, same update as the big batch."""
    accumulate_step = ctx.function("accumulate_step")
    for batch, micro in ((12, 3), (10, 4)):
        probe = _SizeProbe()
        model = _mlp(ctx, probe)
        ref_model = copy.deepcopy(model)
        ref_model[1] = nn.Identity()
        opt = torch.optim.SGD(model.parameters(), lr=0.5)
        ref_opt = torch.optim.SGD(ref_model.parameters(), lr=0.5)
        x, y = ctx.randn(batch, 8), ctx.randint(3, batch)
        call = f"accumulate_step(model, x, y, optimizer, micro_batches={micro}) on a batch of {batch}"
        loss = expect_number(call_safely(accumulate_step, model, x, y, opt, micro, name="accumulate_step",
                                         mutable=(0, 3)), f"the value {call} returned", float)
        ref_loss = accumulation_step(ref_model, x, y, ref_opt, micro)
        limit = math.ceil(batch / micro)
        if not probe.sizes:
            raise CheckFailed(f"{call} never ran the model")
        if max(probe.sizes) > limit:
            raise CheckFailed(f"{call} ran the model on {max(probe.sizes)} examples at once: split x and y into "
                              f"{micro} micro-batches (torch.chunk) and run forward/backward on each")
        for (name, p), r in zip(model.named_parameters(), ref_model.parameters()):
            hint = ""
            if not torch.allclose(p.detach(), r.detach(), atol=1e-5, rtol=1e-4):
                hint = ("scale each micro-batch's mean loss by its share of the batch, len(xb) / len(x), before backward(); "
                        "call optimizer.zero_grad() once before the loop and optimizer.step() once after it")
            expect_close(p.detach(), r.detach(), f"parameter {name} after {call}", atol=1e-5, rtol=1e-4, hint=hint)
        expect_close(loss, ref_loss, f"the loss {call} returned", atol=1e-5, rtol=1e-4,
                     hint="return the mean loss of the whole batch: the sum of the share-weighted micro-batch losses")


@register("ex03_3", points=1, timeout=30)
def check_estimate_mfu(ctx: CheckContext) -> None:
    """``estimate_mfu(n_params, n_layer, d_model, seq_len, tokens_per_second, peak_flops)`` = (6N + 12LdT)·tok/s / peak."""
    estimate_mfu = ctx.function("estimate_mfu")
    cases = ((22_700_000, 6, 384, 64, 5_000.0, 2e12), (124_000_000, 12, 768, 1024, 150_000.0, 989e12),
             (800_000, 4, 128, 128, 40_000.0, 1.5e11))
    for n, layers, d, t, tps, peak in cases:
        call = f"estimate_mfu({n:,}, {layers}, {d}, {t}, {tps:,.0f}, {peak:.3g})"
        got = expect_number(call_safely(estimate_mfu, n, layers, d, t, tps, peak, name="estimate_mfu"),
                            f"the result of {call}", float)
        want = reference_estimate_mfu(n, layers, d, t, tps, peak)
        if abs(got - want) <= 1e-9 + 1e-6 * abs(want):
            continue
        hint = ""
        if abs(got - 6 * n * tps / peak) <= 1e-6 * abs(want):
            hint = "add the attention term 12 · n_layer · d_model · seq_len FLOPs per token"
        elif abs(got - want * 100) <= 1e-4 * abs(want * 100):
            hint = "return a fraction (0.05), not a percentage (5)"
        elif abs(got - (2 * n + 12 * layers * d * t) * tps / peak) <= 1e-6 * abs(want):
            hint = "training costs 6 FLOPs per parameter per token (2 forward + 4 backward), not 2"
        expect_close(got, want, f"the result of {call}", atol=1e-12, rtol=1e-6, hint=hint)


@register("ex03_4", points=2, timeout=60)
def check_checkpointed_forward(ctx: CheckContext) -> None:
    """``checkpointed_forward(blocks, x)``: same output and gradients as the plain loop, less memory saved for backward."""
    checkpointed_forward = ctx.function("checkpointed_forward")
    width = 64
    blocks = nn.ModuleList(nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width))
                           for _ in range(4)).to(ctx.device)
    with torch.no_grad():
        for p in blocks.parameters():
            p.copy_(0.05 * torch.randn(p.shape, generator=ctx.generator))
    x = ctx.randn(32, width).requires_grad_(True)
    out = call_safely(checkpointed_forward, list(blocks), x, name="checkpointed_forward", mutable=(0, 1))
    ref = x
    for b in blocks:
        ref = b(ref)
    what = "checkpointed_forward(blocks, x)"
    expect_tensor(out, what, shape=ref.shape, dtype=ref.dtype, device=ref.device)
    expect_finite(out, what)
    expect_close(out.detach(), ref.detach(), what, atol=1e-5, rtol=1e-4, hint="apply every block in order: x = block(x)")
    if not out.requires_grad:
        raise CheckFailed(f"{what} does not require grad: do not wrap the computation in torch.no_grad()")
    g_out = torch.autograd.grad(out.square().sum(), [x, *blocks.parameters()])
    g_ref = torch.autograd.grad(ref.square().sum(), [x, *blocks.parameters()])
    for i, (a, b) in enumerate(zip(g_out, g_ref)):
        expect_close(a, b, "the gradient of the input" if i == 0 else f"the gradient of block parameter {i - 1}",
                     atol=1e-5, rtol=1e-4)
    plain = saved_activation_bytes(lambda: _plain(blocks, x), blocks)
    yours = saved_activation_bytes(lambda: checkpointed_forward(list(blocks), x), blocks)
    if yours > 0.6 * plain:
        raise CheckFailed(f"{what} kept {yours:,} bytes of activations for backward, a plain loop keeps {plain:,}: "
                          "run each block through torch.utils.checkpoint.checkpoint(block, x, use_reentrant=False)")


def _plain(blocks: nn.ModuleList, x: torch.Tensor) -> torch.Tensor:
    for b in blocks:
        x = b(x)
    return x


@register("ex03_5", points=1, timeout=60)
def check_saving(ctx: CheckContext) -> None:
    """The measured activation-memory saving of checkpointing the tiny GPT (``bytes_plain``, ``bytes_ckpt``, ``saving``)."""
    model = ctx.get("exp_model")
    x = ctx.get("exp_x")
    if not isinstance(model, nn.Module) or not hasattr(model, "loss"):
        raise CheckFailed("`exp_model` should be the TinyGPT the exercise builds (run the cell that defines it)")
    expect_tensor(x, "`exp_x`")
    bytes_plain = expect_number(ctx.get("bytes_plain"), "`bytes_plain`", int)
    bytes_ckpt = expect_number(ctx.get("bytes_ckpt"), "`bytes_ckpt`", int)
    saving = expect_number(ctx.get("saving"), "`saving`", float)
    want_plain, want_ckpt, want_saving = reference_saving(model, x)
    if bytes_plain != want_plain:
        raise CheckFailed(f"`bytes_plain` is {bytes_plain:,}, but saved_activation_bytes(lambda: exp_model.loss(exp_x), exp_model) "
                          f"gives {want_plain:,} without checkpointing: measure the model before enabling checkpointing "
                          "(or on a copy)")
    if bytes_ckpt != want_ckpt:
        raise CheckFailed(f"`bytes_ckpt` is {bytes_ckpt:,}, expected {want_ckpt:,} with activation checkpointing on: "
                          "use enable_activation_checkpointing on a copy of exp_model and measure the same loss")
    expect_close(saving, want_saving, "`saving`", atol=1e-9, rtol=1e-9,
                 hint="saving = 1 - bytes_ckpt / bytes_plain (a fraction, not a percentage)")


@register("ex03_6", points=1, timeout=60)
def check_read_scale(ctx: CheckContext) -> None:
    """``safe_log2_scale``: read from the histogram/explorer, the smallest log2 scale with ≤ 0.01 % of ``grad_values`` underflowing in fp16."""
    values = expect_tensor(ctx.get("grad_values"), "`grad_values`")
    answer = ctx.get("safe_log2_scale")
    if isinstance(answer, float) and answer.is_integer():
        answer = int(answer)
    answer = expect_number(answer, "`safe_log2_scale`", int)
    want = smallest_safe_scale(values, "fp16", max_underflow=1e-4)
    if abs(answer - want) > 1:
        direction = "larger" if answer < want else "smaller"
        raise CheckFailed(f"with 2^{answer} the fp16 underflow of grad_values is not the smallest scale that keeps it at or "
                          f"below 0.01 %: try a {direction} exponent (move the explorer's slider and read the title)")
