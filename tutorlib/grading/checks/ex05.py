"""Checks for lesson 05 (compression): int8 quantize/dequantize, global magnitude pruning, neuron removal,
the distillation loss, the smallest model above an accuracy bar, a pruning sweep, and reading the Pareto chart.

Each check compares the learner's answer with the reference in :mod:`tutorlib.compress`, on inputs
drawn from the check's own generator.

>>> import torch
>>> from tutorlib.compress import quantize
>>> quantize(torch.tensor([0.5]), 0.25, 1).tolist()
[3]
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn
from torch.nn import functional as F

from tutorlib.compress import (dequantize, distillation_loss, global_magnitude_masks, magnitude_mask,
                               make_permanent, pareto_front, prune_magnitude, quantize, remove_neurons, smallest_above)

from ..compare import (CheckFailed, call_safely, describe, expect_close, expect_finite, expect_number,
                       expect_tensor)
from ..registry import CheckContext, register

__all__: list[str] = []


# --------------------------------------------------------------------------- ex05_1 quantize / dequantize


@register("ex05_1", points=2, timeout=60)
def check_quantize_dequantize(ctx: CheckContext) -> None:
    """``quantize_int8(x, scale, zero_point)`` and ``dequantize_int8(q, scale, zero_point)`` per tensor."""
    q_fn = ctx.function("quantize_int8")
    dq_fn = ctx.function("dequantize_int8")
    cases = [
        ("a small tensor", 2 * ctx.randn(5, 7), 0.02, 3),
        ("values that must be clamped", 10 * ctx.randn(40), 0.05, -10),
        ("a zero point of 0", ctx.randn(3, 4), 0.01, 0),
        ("exact half steps (0.5, 1.5, 2.5, -0.5)", torch.tensor([0.05, 0.15, 0.25, -0.05], device=ctx.device), 0.1, 0),
    ]
    for label, x, scale, zp in cases:
        call = f"quantize_int8(x, scale={scale}, zero_point={zp}) for {label}"
        q = call_safely(q_fn, x, scale, zp, name="quantize_int8")
        ref = quantize(x, scale, zp)
        expect_tensor(q, f"the result of {call}", shape=ref.shape, dtype=torch.int8, device=x.device)
        if not torch.equal(q, ref):
            hint = "q = clamp(round(x / scale) + zero_point, -128, 127), then .to(torch.int8)"
            floor = torch.clamp(torch.floor(x / scale) + zp, -128, 127).to(torch.int8)
            unclamped = (torch.round(x / scale) + zp).to(torch.int8)
            plus = torch.clamp(torch.round(x / scale + 0.5) + zp, -128, 127).to(torch.int8)
            if torch.equal(q, floor) or torch.equal(q, torch.clamp(torch.trunc(x / scale) + zp, -128, 127).to(torch.int8)):
                hint = "you rounded down (floor/trunc or int()): use torch.round, which rounds to the nearest integer"
            elif torch.equal(q, unclamped):
                hint = "values beyond the int8 range wrapped around: clamp to [-128, 127] BEFORE converting to int8"
            elif torch.equal(q, plus):
                hint = "round(x + 0.5) rounds halves up; torch.round rounds halves to even, as torch's int8 kernels do"
            elif torch.equal(q, torch.clamp(torch.round(x * scale) + zp, -128, 127).to(torch.int8)):
                hint = "you multiplied by the scale: quantizing DIVIDES by it (x / scale)"
            elif torch.equal(q, torch.clamp(torch.round(x / scale) - zp, -128, 127).to(torch.int8)):
                hint = "the zero point is ADDED when quantizing (and subtracted when dequantizing)"
            expect_close(q.float(), ref.float(), f"the result of {call}", atol=0, rtol=0, hint=hint)
        back = call_safely(dq_fn, ref, scale, zp, name="dequantize_int8")
        want = dequantize(ref, scale, zp)
        what = f"the result of dequantize_int8(q, scale={scale}, zero_point={zp}) for {label}"
        expect_tensor(back, what, shape=want.shape, dtype=torch.float32, device=x.device)
        hint = ""
        if torch.allclose(back, ref.float() * scale - zp, atol=1e-6):
            hint = "subtract the zero point BEFORE multiplying: (q - zero_point) * scale"
        elif torch.allclose(back, (ref.float() + zp) * scale, atol=1e-6):
            hint = "the zero point is subtracted when dequantizing: (q - zero_point) * scale"
        expect_close(back, want, what, atol=1e-6, rtol=1e-6, hint=hint or "x̂ = (q.float() - zero_point) * scale")
    return "your int8 round trip matches the reference (and torch.quantize_per_tensor)"


# --------------------------------------------------------------------------- ex05_2 global magnitude pruning


@register("ex05_2", points=2, timeout=60)
def check_global_prune(ctx: CheckContext) -> None:
    """``global_magnitude_prune(weights, sparsity)``: one threshold over all layers, masks of 0/1."""
    fn = ctx.function("global_magnitude_prune")
    weights = [ctx.randn(8, 6), 0.1 * ctx.randn(16, 8), 3 * ctx.randn(4, 16)]  # layers of very different scales
    for sparsity in (0.5, 0.8, 0.0):
        call = f"global_magnitude_prune(weights, {sparsity})"
        masks = call_safely(fn, weights, sparsity, name="global_magnitude_prune")
        if not isinstance(masks, (list, tuple)):
            raise CheckFailed(f"{call} returned {describe(masks)}, expected a list with one mask per weight tensor")
        if len(masks) != len(weights):
            raise CheckFailed(f"{call} returned {len(masks)} masks for {len(weights)} weight tensors: return one per tensor")
        ref = global_magnitude_masks(weights, sparsity)
        for i, (m, r, w) in enumerate(zip(masks, ref, weights)):
            what = f"mask {i} of {call}"
            expect_tensor(m, what, shape=w.shape, device=w.device)
            mf = m.float()
            if not bool(((mf == 0) | (mf == 1)).all()):
                raise CheckFailed(f"{what} holds values other than 0 and 1: a mask says keep (1) or prune (0)")
        got_zeros = sum(int((m.float() == 0).sum()) for m in masks)
        want_zeros = sum(int((r == 0).sum()) for r in ref)
        if all(torch.equal(m.float(), r.float()) for m, r in zip(masks, ref)):
            continue
        layerwise = [magnitude_mask(w, sparsity) for w in weights]
        if all(torch.equal(m.float(), lw) for m, lw in zip(masks, layerwise)):
            raise CheckFailed(f"{call} pruned each tensor to {sparsity:.0%} separately: global pruning uses ONE "
                              "threshold over all tensors together (concatenate the |w| of every tensor first)")
        inverted = [1 - r for r in global_magnitude_masks(weights, 1 - sparsity)]
        if all(torch.equal(m.float(), r) for m, r in zip(masks, inverted)) and sparsity > 0:
            raise CheckFailed(f"{call} pruned the LARGEST weights: keep the large ones, zero the smallest |w|")
        if got_zeros != want_zeros:
            raise CheckFailed(f"{call} zeroed {got_zeros} weights out of {sum(w.numel() for w in weights)}, expected "
                              f"{want_zeros} (round({sparsity} × total)): check how you pick the threshold")
        raise CheckFailed(f"{call} zeroed the right number of weights but not the smallest ones in absolute value: "
                          "rank by w.abs(), not by w")
    for i, w in enumerate(weights):
        if not torch.isfinite(w).all():
            raise CheckFailed(f"weights[{i}] was changed")
    return "one global threshold, the right masks"


# --------------------------------------------------------------------------- ex05_3 structured neuron removal


@register("ex05_3", points=2, timeout=60)
def check_remove_neurons(ctx: CheckContext) -> None:
    """``remove_neurons(fc1, fc2, keep)``: a new, smaller Linear pair computing the same function for kept neurons."""
    fn = ctx.function("remove_neurons")
    fc1, fc2 = nn.Linear(6, 10), nn.Linear(10, 4)
    with torch.no_grad():
        for p in list(fc1.parameters()) + list(fc2.parameters()):
            p.copy_(torch.randn(p.shape, generator=ctx.generator))
    fc1, fc2 = fc1.to(ctx.device), fc2.to(ctx.device)
    keep = torch.tensor([0, 3, 4, 8], device=ctx.device)
    out = call_safely(fn, fc1, fc2, keep, name="remove_neurons")
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        raise CheckFailed(f"remove_neurons returned {describe(out)}, expected a pair (new_fc1, new_fc2)")
    a, b = out
    for name, layer in (("new_fc1", a), ("new_fc2", b)):
        if not isinstance(layer, nn.Linear):
            raise CheckFailed(f"{name} is {describe(layer)}, expected an nn.Linear: build it with nn.Linear(in, out)")
    ref_a, ref_b = remove_neurons(fc1, fc2, keep)
    if (a.in_features, a.out_features) != (6, 4):
        raise CheckFailed(f"new_fc1 maps {a.in_features} → {a.out_features} features, expected 6 → 4 "
                          "(same inputs, one output per kept neuron)")
    if (b.in_features, b.out_features) != (4, 4):
        raise CheckFailed(f"new_fc2 maps {b.in_features} → {b.out_features} features, expected 4 → 4 "
                          "(one input per kept neuron, same outputs)")
    if a.bias is None or b.bias is None:
        raise CheckFailed("a new layer has no bias: keep the biases (fc1's for the kept neurons, fc2's whole)")
    expect_close(a.weight.detach(), ref_a.weight.detach(), "new_fc1.weight", atol=0, rtol=0,
                 hint="new_fc1.weight should be fc1.weight[keep] (the kept ROWS)")
    expect_close(a.bias.detach(), ref_a.bias.detach(), "new_fc1.bias", atol=0, rtol=0, hint="use fc1.bias[keep]")
    expect_close(b.weight.detach(), ref_b.weight.detach(), "new_fc2.weight", atol=0, rtol=0,
                 hint="new_fc2.weight should be fc2.weight[:, keep] (the kept COLUMNS)")
    expect_close(b.bias.detach(), ref_b.bias.detach(), "new_fc2.bias", atol=0, rtol=0,
                 hint="fc2's bias does not depend on the hidden neurons: copy it unchanged")
    if a.weight.data_ptr() == fc1.weight.data_ptr() or any(
            p.data_ptr() == q.data_ptr() for p in (a.weight, b.weight) for q in (fc1.weight, fc2.weight)):
        raise CheckFailed("a new layer shares memory with the old one: copy the sliced weights into fresh layers")
    x = ctx.randn(5, 6)
    with torch.no_grad():
        got = b(torch.relu(a(x)))
        masked = fc1(x)
        masked[:, [i for i in range(10) if i not in keep.tolist()]] = 0
        want = fc2(torch.relu(masked))
    expect_close(got, want, "fc2'(relu(fc1'(x))) vs the original pair with the other neurons silenced", atol=1e-5)
    return "a really smaller pair with the same function"


# --------------------------------------------------------------------------- ex05_4 distillation loss


@register("ex05_4", points=2, timeout=60)
def check_distillation_loss(ctx: CheckContext) -> None:
    """``distillation_loss(student_logits, teacher_logits, labels, T, alpha)``: value and gradient."""
    fn = ctx.function("distillation_loss")
    s, t = ctx.randn(8, 3), 2 * ctx.randn(8, 3)
    y = ctx.randint(3, 8)
    for T, alpha in ((1.0, 0.5), (4.0, 0.7), (2.0, 1.0), (3.0, 0.0)):
        call = f"distillation_loss(s, t, y, T={T}, alpha={alpha})"
        sl = s.clone().requires_grad_(True)
        got = call_safely(fn, sl, t, y, T, alpha, name="distillation_loss", mutable=(0,))
        if isinstance(got, (int, float)):
            raise CheckFailed(f"{call} returned a Python number: return the loss tensor (no .item()) so it can be backpropagated")
        expect_tensor(got, f"the result of {call}")
        if got.numel() != 1:
            raise CheckFailed(f"{call} has shape {tuple(got.shape)}, expected a scalar: average over the batch")
        expect_finite(got, f"the result of {call}")
        want = distillation_loss(s, t, y, T, alpha)
        p_t = torch.softmax(t / T, -1)
        soft = (p_t * (torch.log(p_t) - torch.log_softmax(s / T, -1))).sum(-1).mean()
        hard = F.cross_entropy(s, y)
        hints = {
            "you forgot to multiply the soft term by T² (it keeps its gradients on the same scale as the hard term)":
                alpha * soft + (1 - alpha) * hard,
            "the KL divergence goes the other way: KL(teacher ‖ student) = Σ p_t (log p_t − log p_s); with F.kl_div "
            "pass the student's LOG-probabilities first and the teacher's probabilities second":
                alpha * T * T * (torch.softmax(s / T, -1) * (torch.log_softmax(s / T, -1) - torch.log(p_t))).sum(-1).mean()
                + (1 - alpha) * hard,
            "alpha weighs the SOFT term: alpha · T² · KL + (1 − alpha) · CE": (1 - alpha) * T * T * soft + alpha * hard,
            "divide BOTH logits by T before the softmaxes (the hard cross-entropy uses the raw logits)":
                alpha * T * T * (torch.softmax(t, -1) * (torch.log_softmax(t, -1) - torch.log_softmax(s / T, -1))).sum(-1).mean()
                + (1 - alpha) * hard,
            "average the KL over the batch (reduction='batchmean'), not over every element ('mean')":
                alpha * T * T * soft / 3 + (1 - alpha) * hard,
        }
        hint = next((h for h, v in hints.items() if abs(float(got.detach()) - float(v)) < 1e-5 and abs(float(v) - float(want)) > 1e-5), "")
        expect_close(float(got.detach()), float(want), f"the value of {call}", atol=1e-5, rtol=1e-5, hint=hint)
        got.backward()
        if sl.grad is None:
            raise CheckFailed(f"no gradient reached the student logits in {call}: do not detach them or call .item()")
        ref_s = s.clone().requires_grad_(True)
        distillation_loss(ref_s, t, y, T, alpha).backward()
        expect_close(sl.grad, ref_s.grad, f"the gradient of {call} w.r.t. the student logits", atol=1e-5, rtol=1e-4,
                     hint="treat the teacher's logits as constants (detach them)")
    return "value and gradient match"


# --------------------------------------------------------------------------- ex05_5 smallest above a bar


@register("ex05_5", points=1, timeout=60)
def check_smallest_above(ctx: CheckContext) -> None:
    """``smallest_above(points, min_accuracy)``: the name of the smallest variant meeting the bar, or None."""
    fn = ctx.function("smallest_above")
    g = ctx.generator
    names = ["dense", "int8", "pruned-50", "pruned-90", "student", "heads-50", "ffn-50", "qat-4bit"]
    sizes = (torch.rand(len(names), generator=g) * 90 + 10).round().tolist()
    accs = (torch.rand(len(names), generator=g) * 0.3 + 0.65).tolist()
    points = [{"name": n, "bytes": int(s), "accuracy": round(a, 4), "latency_ms": 1.0} for n, s, a in zip(names, sizes, accs)]
    for bar in (0.0, 0.7, 0.8, float(max(accs)), 0.99):
        call = f"smallest_above(points, {bar:.4g})"
        got = call_safely(fn, points, bar, name="smallest_above")
        want = smallest_above(points, bar)
        if got != want:
            if want is None:
                raise CheckFailed(f"{call} returned {got!r}, but no variant reaches {bar:.4g}: return None then")
            chosen = next((p for p in points if p["name"] == got), None)
            if chosen is not None and chosen["accuracy"] < bar:
                hint = f"{got!r} has accuracy {chosen['accuracy']} < {bar:.4g}: keep only the variants at or above the bar"
            elif chosen is not None:
                hint = f"{got!r} takes {chosen['bytes']} bytes, but another variant above the bar is smaller"
            else:
                hint = "return the variant's name (its 'name' entry)"
            raise CheckFailed(f"{call} returned {got!r}, expected {want!r}: {hint}")
    return "right on every bar"


# --------------------------------------------------------------------------- ex05_6 the sweep experiment


@register("ex05_6", points=2, timeout=120)
def check_sweep(ctx: CheckContext) -> None:
    """``sweep`` ({sparsity: accuracy}) measured on ``cnn`` and ``max_safe_sparsity`` read from it."""
    sweep = ctx.get("sweep")
    cnn = ctx.get("cnn")
    if not isinstance(cnn, nn.Module):
        raise CheckFailed(f"`cnn` is {describe(cnn)}, expected the trained SmallCNN of the notebook")
    if not isinstance(sweep, dict):
        raise CheckFailed(f"`sweep` is {describe(sweep)}, expected a dict {{sparsity: accuracy}}")
    if len(sweep) < 5:
        raise CheckFailed(f"`sweep` has {len(sweep)} entries: measure at least 5 sparsities (including 0.0)")
    for k, v in sweep.items():
        expect_number(k, f"the sparsity key {k!r} of `sweep`", float)
        expect_number(v, f"sweep[{k!r}]", float)
        if not 0.0 <= k < 1.0 or not 0.0 <= v <= 1.0:
            raise CheckFailed(f"sweep[{k!r}] = {v!r}: sparsities must be in [0, 1) and accuracies in [0, 1] (not percent)")
    if 0.0 not in sweep:
        raise CheckFailed("`sweep` has no entry for sparsity 0.0: measure the dense model too, it is the reference")
    from tutorlib.data import load_digits

    val = load_digits("val")
    device = next(cnn.parameters()).device
    x, y = val.tensors[0].to(device), val.tensors[1].to(device)
    with torch.no_grad():
        for s in sorted(sweep)[:12]:
            model = copy.deepcopy(cnn).eval()
            if s > 0:
                prune_magnitude(model, s, scope="global")
                make_permanent(model)
            want = (model(x).argmax(1) == y).float().mean().item()
            if abs(sweep[s] - want) > 1e-6:
                raise CheckFailed(
                    f"sweep[{s}] = {sweep[s]:.4f}, but pruning a copy of `cnn` to {s:.0%} (global magnitude, all Conv2d "
                    f"and Linear layers, no fine-tuning) gives {want:.4f} on load_digits('val'): prune a fresh COPY at "
                    "each sparsity and measure with accuracy_of on the validation split"
                )
    if any(p.device != device for p in cnn.parameters()):
        raise CheckFailed("`cnn` changed device")
    msafe = ctx.get("max_safe_sparsity")
    msafe = expect_number(msafe, "`max_safe_sparsity`", float)
    dense = sweep[0.0]
    ok = [s for s in sweep if sweep[s] >= dense - 0.01]
    want = max(ok)
    if not math.isclose(msafe, want):
        raise CheckFailed(f"max_safe_sparsity = {msafe}, but your sweep says {want}: the largest sparsity whose accuracy "
                          f"is at least dense − 0.01 = {dense - 0.01:.4f}")
    return f"your sweep is reproducible; up to {want:.0%} of the weights can go with ≤ 1 point lost"


# --------------------------------------------------------------------------- ex05_7 reading the Pareto chart


@register("ex05_7", points=1, timeout=60)
def check_on_front(ctx: CheckContext) -> None:
    """``on_front``: the names of the variants on the size-vs-accuracy Pareto front of ``variants``."""
    variants = ctx.get("variants")
    if not isinstance(variants, (list, tuple)) or not variants:
        raise CheckFailed(f"`variants` is {describe(variants)}: run the cell that measures the variants first")
    answer = ctx.get("on_front")
    if not isinstance(answer, (list, tuple, set)) or not all(isinstance(a, str) for a in answer):
        raise CheckFailed(f"`on_front` is {describe(answer)}, expected a list of variant names (strings)")
    try:
        want = pareto_front(variants, x="bytes", y="accuracy")
    except (KeyError, TypeError) as exc:
        raise CheckFailed(f"`variants` cannot be read: {exc}") from exc
    names = {v.name if hasattr(v, "name") else v.get("name") for v in variants}
    unknown = set(answer) - names
    if unknown:
        raise CheckFailed(f"{sorted(unknown)} are not variant names; the names are {sorted(names)}")
    missing, extra = set(want) - set(answer), set(answer) - set(want)
    if extra:
        name = sorted(extra)[0]
        raise CheckFailed(f"{name!r} is not on the front: another variant is at least as small AND at least as accurate")
    if missing:
        raise CheckFailed(f"{sorted(missing)[0]!r} is on the front too: no variant is both smaller and more accurate")
    return f"the front is {', '.join(want)}"
