"""Checks for lesson 03 (efficient training): an AMP step, gradient accumulation, MFU, activation
checkpointing, a measured memory saving, and reading a gradient histogram.

Each check follows the protocol (:mod:`tutorlib.grading.protocol`): ``inputs`` draws weights and data
from the generator it is given, ``call`` runs the learner's code on them (with probe layers that record
autocast and batch sizes) and returns plain data, ``compare`` replays the step with the reference in
:mod:`tutorlib.efficient` and re-measures what the learner reported.

>>> round(reference_estimate_mfu(1e6, 2, 64, 128, 1e5, 1e12), 6)
0.619661
"""

from __future__ import annotations

import copy
import dataclasses
import math
from typing import Any

import torch
from torch import nn

from tutorlib.efficient.accumulate import accumulation_step
from tutorlib.efficient.amp import amp_train_step
from tutorlib.efficient.checkpointing import (disable_activation_checkpointing, enable_activation_checkpointing,
                                              saved_activation_bytes)
from tutorlib.efficient.formats import smallest_safe_scale
from tutorlib.efficient.measure import mfu, transformer_train_flops

from ..compare import CheckFailed, expect_close, expect_finite, expect_number, expect_tensor
from ..protocol import Learner, exercise

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


def _mlp(state: dict[str, torch.Tensor], probe: nn.Module, device: torch.device) -> nn.Sequential:
    model = nn.Sequential(nn.Linear(8, 16), probe, nn.Tanh(), nn.Linear(16, 3))
    model.load_state_dict(state)
    return model.to(device)


def _mlp_state(gen: torch.Generator) -> dict[str, torch.Tensor]:
    model = nn.Sequential(nn.Linear(8, 16), nn.Identity(), nn.Tanh(), nn.Linear(16, 3))
    return {k: 0.4 * torch.randn(v.shape, generator=gen) for k, v in model.state_dict().items()}


def _amp_dtype(device: torch.device) -> torch.dtype:
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        return torch.float16
    return torch.bfloat16


def _usable(device: torch.device) -> torch.device:
    """Where ``compare`` replays the reference: the learner's device when this process has it, else the CPU."""
    if device.type == "cuda" and torch.cuda.is_available():
        return device
    return torch.device("cpu")


def _params(model: nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters()}


@exercise("ex03_1", points=2, timeout=60)
class AmpStepCheck:
    """``amp_step(model, x, y, optimizer, scaler, dtype)``: autocast on, loss scaled, step through the scaler, scale updated."""

    names = ("amp_step",)
    reference = ("tutorlib.efficient.amp.amp_train_step",)
    hints = (
        "run the forward pass and the loss inside `with torch.autocast(device_type=x.device.type, dtype=dtype):`.",
        "backpropagate the scaled loss, scaler.scale(loss).backward(), and step with scaler.step(optimizer), not optimizer.step().",
        "finish with scaler.update() (the scale grows after good steps, shrinks after inf/NaN ones) and return loss.item().",
    )

    def inputs(self, gen: torch.Generator) -> dict:
        return {"state": _mlp_state(gen), "x": torch.randn(16, 8, generator=gen), "y": torch.randint(3, (16,), generator=gen)}

    def call(self, learner: Learner, inputs: dict) -> dict:
        amp_step, dev = learner.function("amp_step"), learner.device
        dtype = _amp_dtype(dev)
        probe = _AutocastProbe(dev.type)
        model = _mlp(inputs["state"], probe, dev)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        scaler = torch.amp.GradScaler(dev.type, init_scale=2.0**8, growth_interval=1)
        x, y = inputs["x"].to(dev), inputs["y"].to(dev)
        loss = learner.call(amp_step, model, x, y, opt, scaler, dtype, name="amp_step", mutable=(0, 3, 4))
        out = {"dtype": dtype, "loss": loss, "seen": [[on, d] for on, d in probe.seen], "scale": float(scaler.get_scale()),
               "params": _params(model)}
        x_bad = x.clone()
        x_bad[0, 0] = float("inf")
        learner.call(amp_step, model, x_bad, y, opt, scaler, dtype, name="amp_step", mutable=(0, 3, 4))
        out.update(params_bad=_params(model), scale_bad=float(scaler.get_scale()))
        return out

    def compare(self, inputs: dict, outputs: dict) -> None:
        dtype, dev = outputs["dtype"], _usable(self.device)
        if dtype not in (torch.bfloat16, torch.float16):
            raise CheckFailed(f"the check ran with dtype {dtype}: run it again")
        loss = expect_number(outputs["loss"], "the value amp_step returned", float)
        ref_model = _mlp(inputs["state"], nn.Identity(), dev)
        ref_opt = torch.optim.SGD(ref_model.parameters(), lr=0.1)
        ref_scaler = torch.amp.GradScaler(dev.type, init_scale=2.0**8, growth_interval=1)
        ref_loss = amp_train_step(ref_model, inputs["x"].to(dev), inputs["y"].to(dev), ref_opt, ref_scaler, dtype)
        if not outputs["seen"]:
            raise CheckFailed("amp_step never ran the model: compute the loss with model(x)")
        if not any(on and d == dtype for on, d in outputs["seen"]):
            raise CheckFailed("the model ran without autocast: wrap the forward pass and the loss in "
                              "`with torch.autocast(device_type=x.device.type, dtype=dtype):`")
        expect_close(loss, ref_loss, "the loss amp_step returned", atol=1e-4, rtol=1e-3,
                     hint="return the loss of this batch as a float (loss.item())")
        if outputs["scale"] == 2.0**8:
            raise CheckFailed("the scaler's scale did not change after a good step with growth_interval=1: "
                              "call scaler.update() after scaler.step(optimizer)")
        for name, r in ref_model.named_parameters():
            p = expect_tensor(outputs["params"].get(name), f"parameter {name} after amp_step")
            expect_close(p.cpu(), r.detach().cpu(), f"parameter {name} after amp_step", atol=1e-5, rtol=1e-4,
                         hint="backpropagate the scaled loss, scaler.scale(loss).backward(), then call scaler.step(optimizer): "
                              "the scaler divides the gradients by the scale before stepping")
        if any(not torch.equal(outputs["params_bad"][n], outputs["params"][n]) for n in outputs["params"]):
            raise CheckFailed("a batch whose gradients were inf/NaN changed the weights: step with scaler.step(optimizer) "
                              "(not optimizer.step()), which skips such steps")
        if not outputs["scale_bad"] < outputs["scale"]:
            raise CheckFailed("after a step with inf/NaN gradients the scale should shrink: call scaler.update() every step")


@exercise("ex03_2", points=2, timeout=60)
class AccumulateStepCheck:
    """``accumulate_step(model, x, y, optimizer, micro_batches)``: micro-batches only, same update as the big batch."""

    names = ("accumulate_step",)
    reference = ("tutorlib.efficient.accumulate.accumulation_step",)
    hints = (
        "split x and y into micro_batches pieces (torch.chunk) and run forward and backward on each; gradients add up in .grad.",
        "weight each micro-batch's mean loss by its share of the batch, len(xb) / len(x), before backward(), so the sum is the big batch's mean.",
        "optimizer.zero_grad() once before the loop, optimizer.step() once after it; return the weighted sum of the losses as a float.",
    )

    def inputs(self, gen: torch.Generator) -> dict:
        return {"cases": [{"batch": b, "micro": m, "state": _mlp_state(gen), "x": torch.randn(b, 8, generator=gen),
                           "y": torch.randint(3, (b,), generator=gen)} for b, m in ((12, 3), (10, 4))]}

    def call(self, learner: Learner, inputs: dict) -> list:
        fn, dev, outs = learner.function("accumulate_step"), learner.device, []
        for c in inputs["cases"]:
            probe = _SizeProbe()
            model = _mlp(c["state"], probe, dev)
            opt = torch.optim.SGD(model.parameters(), lr=0.5)
            loss = learner.call(fn, model, c["x"].to(dev), c["y"].to(dev), opt, c["micro"], name="accumulate_step", mutable=(0, 3))
            outs.append({"loss": loss, "sizes": probe.sizes, "params": _params(model)})
        return outs

    def compare(self, inputs: dict, outputs: list) -> None:
        for c, out in zip(inputs["cases"], outputs):
            batch, micro = c["batch"], c["micro"]
            call = f"accumulate_step(model, x, y, optimizer, micro_batches={micro}) on a batch of {batch}"
            loss = expect_number(out["loss"], f"the value {call} returned", float)
            ref_model = _mlp(c["state"], nn.Identity(), torch.device("cpu"))
            ref_opt = torch.optim.SGD(ref_model.parameters(), lr=0.5)
            ref_loss = accumulation_step(ref_model, c["x"], c["y"], ref_opt, micro)
            limit = math.ceil(batch / micro)
            if not out["sizes"]:
                raise CheckFailed(f"{call} never ran the model")
            if max(out["sizes"]) > limit:
                raise CheckFailed(f"{call} ran the model on {max(out['sizes'])} examples at once: split x and y into "
                                  f"{micro} micro-batches (torch.chunk) and run forward/backward on each")
            for name, r in ref_model.named_parameters():
                p = expect_tensor(out["params"].get(name), f"parameter {name} after {call}").cpu()
                hint = ""
                if not torch.allclose(p, r.detach(), atol=1e-5, rtol=1e-4):
                    hint = ("scale each micro-batch's mean loss by its share of the batch, len(xb) / len(x), before backward(); "
                            "call optimizer.zero_grad() once before the loop and optimizer.step() once after it")
                expect_close(p, r.detach(), f"parameter {name} after {call}", atol=1e-5, rtol=1e-4, hint=hint)
            expect_close(loss, ref_loss, f"the loss {call} returned", atol=1e-5, rtol=1e-4,
                         hint="return the mean loss of the whole batch: the sum of the share-weighted micro-batch losses")


@exercise("ex03_3", points=1, timeout=30)
class EstimateMFUCheck:
    """``estimate_mfu(n_params, n_layer, d_model, seq_len, tokens_per_second, peak_flops)`` = (6N + 12LdT)·tok/s / peak."""

    names = ("estimate_mfu",)
    reference = ("tutorlib.efficient.measure.mfu", "tutorlib.efficient.measure.transformer_train_flops")
    hints = (
        "MFU = the FLOPs the model really needs per second / the peak FLOPs per second of the hardware.",
        "training costs about 6 FLOPs per parameter per token (2 forward + 4 backward) plus attention: 12 · n_layer · d_model · seq_len per token.",
        "(6 · n_params + 12 · n_layer · d_model · seq_len) · tokens_per_second / peak_flops, a fraction (not a percentage).",
    )

    def inputs(self, gen: torch.Generator) -> dict:
        tps = [float(v) for v in torch.randint(1_000, 200_000, (3,), generator=gen)]
        return {"cases": [(22_700_000, 6, 384, 64, tps[0] / 20, 2e12), (124_000_000, 12, 768, 1024, tps[1], 989e12),
                          (800_000, 4, 128, 128, tps[2] / 2, 1.5e11)]}

    def call(self, learner: Learner, inputs: dict) -> list:
        fn = learner.function("estimate_mfu")
        return [learner.call(fn, *c, name="estimate_mfu") for c in inputs["cases"]]

    def compare(self, inputs: dict, outputs: list) -> None:
        for (n, layers, d, t, tps, peak), got in zip(inputs["cases"], outputs):
            call = f"estimate_mfu({n:,}, {layers}, {d}, {t}, {tps:,.0f}, {peak:.3g})"
            got = expect_number(got, f"the result of {call}", float)
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


def _blocks(width: int = 64) -> nn.ModuleList:
    return nn.ModuleList(nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width)) for _ in range(4))


def _plain(blocks: Any, x: torch.Tensor) -> torch.Tensor:
    for b in blocks:
        x = b(x)
    return x


@exercise("ex03_4", points=2, timeout=60)
class CheckpointedForwardCheck:
    """``checkpointed_forward(blocks, x)``: same output and gradients as the plain loop, less memory saved for backward."""

    names = ("checkpointed_forward",)
    hints = (
        "apply the blocks in order, x = block(x), but let each block recompute its activations during backward.",
        "torch.utils.checkpoint.checkpoint(block, x, use_reentrant=False) runs a block without keeping its inner activations.",
    )

    def inputs(self, gen: torch.Generator) -> dict:
        state = {k: 0.05 * torch.randn(v.shape, generator=gen) for k, v in _blocks().state_dict().items()}
        return {"state": state, "x": torch.randn(32, 64, generator=gen)}

    def call(self, learner: Learner, inputs: dict) -> dict:
        fn, dev = learner.function("checkpointed_forward"), learner.device
        blocks = _blocks()
        blocks.load_state_dict(inputs["state"])
        blocks.to(dev)
        x = inputs["x"].to(dev).requires_grad_(True)
        out = learner.call(fn, list(blocks), x, name="checkpointed_forward", mutable=(0, 1))
        if not isinstance(out, torch.Tensor) or not out.requires_grad or out.shape != x.shape:
            return {"out": out}
        wrt = [x, *blocks.parameters()]
        grads = torch.autograd.grad(out.square().sum(), wrt, allow_unused=True)
        grads = [torch.zeros_like(w) if g is None else g for g, w in zip(grads, wrt)]
        saved = saved_activation_bytes(lambda: fn(list(blocks), x), blocks)
        return {"out": out.detach(), "requires_grad": True, "grads": list(grads), "saved": saved}

    def compare(self, inputs: dict, outputs: dict) -> None:
        blocks = _blocks()
        blocks.load_state_dict(inputs["state"])
        x = inputs["x"].clone().requires_grad_(True)
        ref = _plain(blocks, x)
        what = "checkpointed_forward(blocks, x)"
        out = outputs["out"]
        expect_tensor(out, what, shape=ref.shape, dtype=ref.dtype, device=self.device)
        expect_finite(out, what)
        expect_close(out.detach().cpu(), ref.detach(), what, atol=1e-5, rtol=1e-4, hint="apply every block in order: x = block(x)")
        if not outputs.get("requires_grad"):
            raise CheckFailed(f"{what} does not require grad: do not wrap the computation in torch.no_grad()")
        g_ref = torch.autograd.grad(ref.square().sum(), [x, *blocks.parameters()])
        for i, (a, b) in enumerate(zip(outputs["grads"], g_ref)):
            expect_close(a.cpu(), b, "the gradient of the input" if i == 0 else f"the gradient of block parameter {i - 1}",
                         atol=1e-5, rtol=1e-4)
        plain = saved_activation_bytes(lambda: _plain(blocks, x), blocks)
        yours = expect_number(outputs["saved"], "the bytes your forward kept for backward", int)
        if yours > 0.6 * plain:
            raise CheckFailed(f"{what} kept {yours:,} bytes of activations for backward, a plain loop keeps {plain:,}: "
                              "run each block through torch.utils.checkpoint.checkpoint(block, x, use_reentrant=False)")


@exercise("ex03_5", points=1, timeout=60)
class SavingCheck:
    """The measured activation-memory saving of checkpointing the tiny GPT (``bytes_plain``, ``bytes_ckpt``, ``saving``).

    ``call`` returns the model's weights, its config and ``exp_x`` with the three numbers; ``compare``
    rebuilds the model and measures both itself, so made-up numbers fail.
    """

    names = ("exp_model", "exp_x", "bytes_plain", "bytes_ckpt", "saving")
    hints = (
        "measure saved_activation_bytes(lambda: exp_model.loss(exp_x), exp_model) before turning checkpointing on.",
        "turn it on for a copy: ckpt = enable_activation_checkpointing(copy.deepcopy(exp_model)); measure ckpt.loss(exp_x) the same way.",
        "saving = 1 - bytes_ckpt / bytes_plain, a fraction between 0 and 1.",
    )

    def inputs(self, gen: torch.Generator) -> dict:
        return {}

    def call(self, learner: Learner, inputs: dict) -> dict:
        model, x = learner.get("exp_model"), learner.get("exp_x")
        if not isinstance(model, nn.Module) or not hasattr(model, "loss") or not dataclasses.is_dataclass(getattr(model, "cfg", None)):
            raise CheckFailed("`exp_model` should be the TinyGPT the exercise builds (run the cell that defines it)")
        return {"cfg": dataclasses.asdict(model.cfg), "state": {k: v.detach() for k, v in model.state_dict().items()},
                "x": x, "bytes_plain": learner.get("bytes_plain"), "bytes_ckpt": learner.get("bytes_ckpt"),
                "saving": learner.get("saving")}

    def compare(self, inputs: dict, outputs: dict) -> None:
        from tutorlib.models import GPTConfig, TinyGPT

        x = expect_tensor(outputs["x"], "`exp_x`")
        bytes_plain = expect_number(outputs["bytes_plain"], "`bytes_plain`", int)
        bytes_ckpt = expect_number(outputs["bytes_ckpt"], "`bytes_ckpt`", int)
        saving = expect_number(outputs["saving"], "`saving`", float)
        dev = _usable(self.device)
        model = TinyGPT(GPTConfig(**outputs["cfg"]))
        model.load_state_dict(outputs["state"])
        want_plain, want_ckpt, want_saving = reference_saving(model.to(dev), x.to(dev))
        if bytes_plain != want_plain:
            raise CheckFailed(f"`bytes_plain` is {bytes_plain:,}, but saved_activation_bytes(lambda: exp_model.loss(exp_x), exp_model) "
                              f"gives {want_plain:,} without checkpointing: measure the model before enabling checkpointing "
                              "(or on a copy)")
        if bytes_ckpt != want_ckpt:
            raise CheckFailed(f"`bytes_ckpt` is {bytes_ckpt:,}, expected {want_ckpt:,} with activation checkpointing on: "
                              "use enable_activation_checkpointing on a copy of exp_model and measure the same loss")
        expect_close(saving, want_saving, "`saving`", atol=1e-9, rtol=1e-9,
                     hint="saving = 1 - bytes_ckpt / bytes_plain (a fraction, not a percentage)")


@exercise("ex03_6", points=1, timeout=60)
class ReadScaleCheck:
    """``safe_log2_scale``: read from the histogram/explorer, the smallest log2 scale with ≤ 0.01 % of ``grad_values`` underflowing in fp16."""

    names = ("grad_values", "safe_log2_scale")
    hints = (
        "move the explorer's slider: its title says which fraction of the gradients underflows (rounds to 0) in fp16.",
        "the answer is the smallest exponent (an int) at which that fraction is at most 0.01 %; a larger one risks overflow.",
    )

    def inputs(self, gen: torch.Generator) -> dict:
        return {}

    def call(self, learner: Learner, inputs: dict) -> dict:
        return {"values": learner.get("grad_values"), "answer": learner.get("safe_log2_scale")}

    def compare(self, inputs: dict, outputs: dict) -> None:
        values = expect_tensor(outputs["values"], "`grad_values`")
        answer = outputs["answer"]
        if isinstance(answer, float) and answer.is_integer():
            answer = int(answer)
        answer = expect_number(answer, "`safe_log2_scale`", int)
        want = smallest_safe_scale(values.cpu(), "fp16", max_underflow=1e-4)
        if abs(answer - want) > 1:
            direction = "larger" if answer < want else "smaller"
            raise CheckFailed(f"with 2^{answer} the fp16 underflow of grad_values is not the smallest scale that keeps it at or "
                              f"below 0.01 %: try a {direction} exponent (move the explorer's slider and read the title)")
