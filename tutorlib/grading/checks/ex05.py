"""Checks for lesson 05 (compression): int8 quantize/dequantize, global magnitude pruning, neuron removal,
the distillation loss, the smallest model above an accuracy bar, a pruning sweep, and reading the Pareto chart.

Each check follows the protocol (:mod:`tutorlib.grading.protocol`): ``inputs`` draws the data from the
generator it is given, ``call`` runs the learner's code and returns plain data (tensors, layer weights,
names), ``compare`` checks it against :mod:`tutorlib.compress`; for the sweep and the Pareto chart it
re-measures from the returned weights and measurements, so made-up numbers fail.

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

from ..compare import (CheckFailed, describe, expect_close, expect_finite, expect_number,
                       expect_tensor)
from ..protocol import Learner, exercise

__all__: list[str] = []


# --------------------------------------------------------------------------- ex05_1 quantize / dequantize


@exercise("ex05_1", points=2, timeout=60)
class QuantizeCheck:
    """``quantize_int8(x, scale, zero_point)`` and ``dequantize_int8(q, scale, zero_point)`` per tensor."""

    names = ("quantize_int8", "dequantize_int8")
    reference = ("tutorlib.compress.quantize", "tutorlib.compress.dequantize")
    hints = (
        "quantizing divides by the scale, rounds to the nearest integer, adds the zero point, clamps to [-128, 127], then converts to int8.",
        "round with torch.round (halves go to even, as torch's int8 kernels do) and clamp BEFORE .to(torch.int8), or large values wrap around.",
        "dequantizing undoes it: (q.float() - zero_point) * scale.",
    )

    def inputs(self, gen: torch.Generator) -> dict:
        return {"cases": [
            ("a small tensor", 2 * torch.randn(5, 7, generator=gen), 0.02, 3),
            ("values that must be clamped", 10 * torch.randn(40, generator=gen), 0.05, -10),
            ("a zero point of 0", torch.randn(3, 4, generator=gen), 0.01, 0),
            ("exact half steps (0.5, 1.5, 2.5, -0.5)", torch.tensor([0.05, 0.15, 0.25, -0.05]), 0.1, 0),
        ]}

    def call(self, learner: Learner, inputs: dict) -> list:
        q_fn, dq_fn, dev = learner.function("quantize_int8"), learner.function("dequantize_int8"), learner.device
        outs = []
        for _, x, scale, zp in inputs["cases"]:
            x = x.to(dev)
            q = learner.call(q_fn, x, scale, zp, name="quantize_int8")
            back = learner.call(dq_fn, quantize(x, scale, zp), scale, zp, name="dequantize_int8")
            outs.append({"q": q, "back": back})
        return outs

    def compare(self, inputs: dict, outputs: list) -> str:
        for (label, x, scale, zp), out in zip(inputs["cases"], outputs):
            call = f"quantize_int8(x, scale={scale}, zero_point={zp}) for {label}"
            q = out["q"]
            ref = quantize(x, scale, zp)
            expect_tensor(q, f"the result of {call}", shape=ref.shape, dtype=torch.int8, device=self.device)
            q = q.cpu()
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
            back = out["back"]
            want = dequantize(ref, scale, zp)
            what = f"the result of dequantize_int8(q, scale={scale}, zero_point={zp}) for {label}"
            expect_tensor(back, what, shape=want.shape, dtype=torch.float32, device=self.device)
            back = back.cpu()
            hint = ""
            if torch.allclose(back, ref.float() * scale - zp, atol=1e-6):
                hint = "subtract the zero point BEFORE multiplying: (q - zero_point) * scale"
            elif torch.allclose(back, (ref.float() + zp) * scale, atol=1e-6):
                hint = "the zero point is subtracted when dequantizing: (q - zero_point) * scale"
            expect_close(back, want, what, atol=1e-6, rtol=1e-6, hint=hint or "x̂ = (q.float() - zero_point) * scale")
        return "your int8 round trip matches the reference (and torch.quantize_per_tensor)"


# --------------------------------------------------------------------------- ex05_2 global magnitude pruning


@exercise("ex05_2", points=2, timeout=60)
class GlobalPruneCheck:
    """``global_magnitude_prune(weights, sparsity)``: one threshold over all layers, masks of 0/1."""

    names = ("global_magnitude_prune",)
    reference = ("tutorlib.compress.global_magnitude_masks",)
    hints = (
        "global pruning ranks the |w| of ALL tensors together and uses one threshold for every tensor.",
        "concatenate w.abs().flatten() of every tensor, find the k-th smallest (k = round(sparsity · total)), keep what lies above it.",
        "return one mask per tensor, of its shape, with 1 = keep and 0 = prune; leave the weights unchanged.",
    )

    def inputs(self, gen: torch.Generator) -> dict:
        return {"weights": [torch.randn(8, 6, generator=gen), 0.1 * torch.randn(16, 8, generator=gen),
                            3 * torch.randn(4, 16, generator=gen)],  # layers of very different scales
                "sparsities": [0.5, 0.8, 0.0]}

    def call(self, learner: Learner, inputs: dict) -> list:
        fn, dev = learner.function("global_magnitude_prune"), learner.device
        weights = [w.to(dev) for w in inputs["weights"]]
        return [learner.call(fn, weights, s, name="global_magnitude_prune") for s in inputs["sparsities"]]

    def compare(self, inputs: dict, outputs: list) -> str:
        weights = inputs["weights"]
        for sparsity, masks in zip(inputs["sparsities"], outputs):
            call = f"global_magnitude_prune(weights, {sparsity})"
            if not isinstance(masks, (list, tuple)):
                raise CheckFailed(f"{call} returned {describe(masks)}, expected a list with one mask per weight tensor")
            if len(masks) != len(weights):
                raise CheckFailed(f"{call} returned {len(masks)} masks for {len(weights)} weight tensors: return one per tensor")
            ref = global_magnitude_masks(weights, sparsity)
            for i, (m, w) in enumerate(zip(masks, weights)):
                what = f"mask {i} of {call}"
                expect_tensor(m, what, shape=w.shape, device=self.device)
                mf = m.float()
                if not bool(((mf == 0) | (mf == 1)).all()):
                    raise CheckFailed(f"{what} holds values other than 0 and 1: a mask says keep (1) or prune (0)")
            masks = [m.float().cpu() for m in masks]
            got_zeros = sum(int((m == 0).sum()) for m in masks)
            want_zeros = sum(int((r == 0).sum()) for r in ref)
            if all(torch.equal(m, r.float()) for m, r in zip(masks, ref)):
                continue
            layerwise = [magnitude_mask(w, sparsity) for w in weights]
            if all(torch.equal(m, lw) for m, lw in zip(masks, layerwise)):
                raise CheckFailed(f"{call} pruned each tensor to {sparsity:.0%} separately: global pruning uses ONE "
                                  "threshold over all tensors together (concatenate the |w| of every tensor first)")
            inverted = [1 - r for r in global_magnitude_masks(weights, 1 - sparsity)]
            if all(torch.equal(m, r) for m, r in zip(masks, inverted)) and sparsity > 0:
                raise CheckFailed(f"{call} pruned the LARGEST weights: keep the large ones, zero the smallest |w|")
            if got_zeros != want_zeros:
                raise CheckFailed(f"{call} zeroed {got_zeros} weights out of {sum(w.numel() for w in weights)}, expected "
                                  f"{want_zeros} (round({sparsity} × total)): check how you pick the threshold")
            raise CheckFailed(f"{call} zeroed the right number of weights but not the smallest ones in absolute value: "
                              "rank by w.abs(), not by w")
        return "one global threshold, the right masks"


# --------------------------------------------------------------------------- ex05_3 structured neuron removal


def _pair(state: dict[str, torch.Tensor]) -> tuple[nn.Linear, nn.Linear]:
    fc1, fc2 = nn.Linear(6, 10), nn.Linear(10, 4)
    fc1.load_state_dict({k[4:]: v for k, v in state.items() if k.startswith("fc1.")})
    fc2.load_state_dict({k[4:]: v for k, v in state.items() if k.startswith("fc2.")})
    return fc1, fc2


@exercise("ex05_3", points=2, timeout=60)
class RemoveNeuronsCheck:
    """``remove_neurons(fc1, fc2, keep)``: a new, smaller Linear pair computing the same function for kept neurons."""

    names = ("remove_neurons",)
    reference = ("tutorlib.compress.remove_neurons",)
    hints = (
        "a hidden neuron is one ROW of fc1 (weight and bias) and one COLUMN of fc2's weight.",
        "build fresh layers nn.Linear(fc1.in_features, len(keep)) and nn.Linear(len(keep), fc2.out_features) and copy the slices in.",
        "new_fc1.weight = fc1.weight[keep], new_fc1.bias = fc1.bias[keep], new_fc2.weight = fc2.weight[:, keep], fc2's bias unchanged.",
    )

    def inputs(self, gen: torch.Generator) -> dict:
        state = {f"fc1.{k}": torch.randn(v.shape, generator=gen) for k, v in nn.Linear(6, 10).state_dict().items()}
        state.update({f"fc2.{k}": torch.randn(v.shape, generator=gen) for k, v in nn.Linear(10, 4).state_dict().items()})
        keep = torch.randperm(10, generator=gen)[:4].sort().values
        return {"state": state, "keep": keep, "x": torch.randn(5, 6, generator=gen)}

    def call(self, learner: Learner, inputs: dict) -> dict:
        fn, dev = learner.function("remove_neurons"), learner.device
        fc1, fc2 = (m.to(dev) for m in _pair(inputs["state"]))
        out = learner.call(fn, fc1, fc2, inputs["keep"].to(dev), name="remove_neurons")
        if not isinstance(out, (tuple, list)) or len(out) != 2:
            raise CheckFailed(f"remove_neurons returned {describe(out)}, expected a pair (new_fc1, new_fc2)")
        layers = []
        for name, layer in zip(("new_fc1", "new_fc2"), out):
            if not isinstance(layer, nn.Linear):
                raise CheckFailed(f"{name} is {describe(layer)}, expected an nn.Linear: build it with nn.Linear(in, out)")
            layers.append({"in": layer.in_features, "out": layer.out_features, "weight": layer.weight.detach(),
                           "bias": None if layer.bias is None else layer.bias.detach()})
        old = [p.data_ptr() for p in (*fc1.parameters(), *fc2.parameters())]
        shared = any(p.data_ptr() in old for layer in out for p in layer.parameters())
        return {"layers": layers, "shared": shared}

    def compare(self, inputs: dict, outputs: dict) -> str:
        fc1, fc2 = _pair(inputs["state"])
        keep = inputs["keep"]
        a, b = outputs["layers"]
        ref_a, ref_b = remove_neurons(fc1, fc2, keep)
        k = len(keep)
        if (a["in"], a["out"]) != (6, k):
            raise CheckFailed(f"new_fc1 maps {a['in']} → {a['out']} features, expected 6 → {k} "
                              "(same inputs, one output per kept neuron)")
        if (b["in"], b["out"]) != (k, 4):
            raise CheckFailed(f"new_fc2 maps {b['in']} → {b['out']} features, expected {k} → 4 "
                              "(one input per kept neuron, same outputs)")
        if a["bias"] is None or b["bias"] is None:
            raise CheckFailed("a new layer has no bias: keep the biases (fc1's for the kept neurons, fc2's whole)")
        expect_close(a["weight"].cpu(), ref_a.weight.detach(), "new_fc1.weight", atol=0, rtol=0,
                     hint="new_fc1.weight should be fc1.weight[keep] (the kept ROWS)")
        expect_close(a["bias"].cpu(), ref_a.bias.detach(), "new_fc1.bias", atol=0, rtol=0, hint="use fc1.bias[keep]")
        expect_close(b["weight"].cpu(), ref_b.weight.detach(), "new_fc2.weight", atol=0, rtol=0,
                     hint="new_fc2.weight should be fc2.weight[:, keep] (the kept COLUMNS)")
        expect_close(b["bias"].cpu(), ref_b.bias.detach(), "new_fc2.bias", atol=0, rtol=0,
                     hint="fc2's bias does not depend on the hidden neurons: copy it unchanged")
        if outputs["shared"]:
            raise CheckFailed("a new layer shares memory with the old one: copy the sliced weights into fresh layers")
        return "a really smaller pair with the same function"


# --------------------------------------------------------------------------- ex05_4 distillation loss


@exercise("ex05_4", points=2, timeout=60)
class DistillationLossCheck:
    """``distillation_loss(student_logits, teacher_logits, labels, T, alpha)``: value and gradient."""

    names = ("distillation_loss",)
    reference = ("tutorlib.compress.distillation_loss",)
    hints = (
        "two terms: the KL divergence between the teacher's and the student's softened distributions, and the usual cross-entropy.",
        "soften both with the same temperature: softmax(logits / T); KL(teacher ‖ student), averaged over the batch, times T².",
        "loss = alpha · T² · KL + (1 − alpha) · CE(student_logits, labels); keep it a tensor so it can be backpropagated.",
    )

    def inputs(self, gen: torch.Generator) -> dict:
        return {"s": torch.randn(8, 3, generator=gen), "t": 2 * torch.randn(8, 3, generator=gen),
                "y": torch.randint(3, (8,), generator=gen), "cases": [(1.0, 0.5), (4.0, 0.7), (2.0, 1.0), (3.0, 0.0)]}

    def call(self, learner: Learner, inputs: dict) -> list:
        fn, dev, outs = learner.function("distillation_loss"), learner.device, []
        t, y = inputs["t"].to(dev), inputs["y"].to(dev)
        for T, alpha in inputs["cases"]:
            sl = inputs["s"].to(dev).clone().requires_grad_(True)
            got = learner.call(fn, sl, t, y, T, alpha, name="distillation_loss", mutable=(0,))
            grad = None
            if isinstance(got, torch.Tensor) and got.numel() == 1 and got.requires_grad:
                got.backward()
                grad = sl.grad
            outs.append({"loss": got.detach() if isinstance(got, torch.Tensor) else got, "grad": grad})
        return outs

    def compare(self, inputs: dict, outputs: list) -> str:
        s, t, y = inputs["s"], inputs["t"], inputs["y"]
        for (T, alpha), out in zip(inputs["cases"], outputs):
            call = f"distillation_loss(s, t, y, T={T}, alpha={alpha})"
            got = out["loss"]
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
            value = float(got.reshape(()).cpu())
            hint = next((h for h, v in hints.items() if abs(value - float(v)) < 1e-5 and abs(float(v) - float(want)) > 1e-5), "")
            expect_close(value, float(want), f"the value of {call}", atol=1e-5, rtol=1e-5, hint=hint)
            if out["grad"] is None:
                raise CheckFailed(f"no gradient reached the student logits in {call}: do not detach them or call .item()")
            ref_s = s.clone().requires_grad_(True)
            distillation_loss(ref_s, t, y, T, alpha).backward()
            expect_close(out["grad"].cpu(), ref_s.grad, f"the gradient of {call} w.r.t. the student logits", atol=1e-5, rtol=1e-4,
                         hint="treat the teacher's logits as constants (detach them)")
        return "value and gradient match"


# --------------------------------------------------------------------------- ex05_5 smallest above a bar


@exercise("ex05_5", points=1, timeout=60)
class SmallestAboveCheck:
    """``smallest_above(points, min_accuracy)``: the name of the smallest variant meeting the bar, or None."""

    names = ("smallest_above",)
    reference = ("tutorlib.compress.smallest_above",)
    hints = (
        "keep only the variants whose accuracy is at least the bar (>=, not >).",
        "among those, return the 'name' of the one with the fewest bytes; if none is left, return None.",
    )

    def inputs(self, gen: torch.Generator) -> dict:
        names = ["dense", "int8", "pruned-50", "pruned-90", "student", "heads-50", "ffn-50", "qat-4bit"]
        sizes = (torch.rand(len(names), generator=gen) * 90 + 10).round().tolist()
        accs = (torch.rand(len(names), generator=gen) * 0.3 + 0.65).tolist()
        points = [{"name": n, "bytes": int(s), "accuracy": round(a, 4), "latency_ms": 1.0} for n, s, a in zip(names, sizes, accs)]
        return {"points": points, "bars": [0.0, 0.7, 0.8, max(p["accuracy"] for p in points), 0.99]}

    def call(self, learner: Learner, inputs: dict) -> list:
        fn = learner.function("smallest_above")
        return [learner.call(fn, inputs["points"], bar, name="smallest_above") for bar in inputs["bars"]]

    def compare(self, inputs: dict, outputs: list) -> str:
        points = inputs["points"]
        for bar, got in zip(inputs["bars"], outputs):
            call = f"smallest_above(points, {bar:.4g})"
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


def _cnn_config(cnn: nn.Module) -> dict[str, int]:
    conv, head = cnn.features[0], cnn.classifier[-1]
    return {"in_channels": int(conv.in_channels), "num_classes": int(head.out_features), "width": int(conv.out_channels)}


@exercise("ex05_6", points=2, timeout=120)
class SweepCheck:
    """``sweep`` ({sparsity: accuracy}) measured on ``cnn`` and ``max_safe_sparsity`` read from it.

    ``call`` returns the CNN's weights and the learner's sweep; ``compare`` rebuilds the CNN, prunes a
    copy at each sparsity and measures it on the validation split itself, so a made-up sweep fails.
    """

    names = ("sweep", "cnn", "max_safe_sparsity")
    hints = (
        "for each sparsity, prune a fresh COPY of cnn (copy.deepcopy) with prune_magnitude(copy, s, scope='global'), make_permanent, and measure its accuracy on the validation split.",
        "include sparsity 0.0 (the dense model) and at least 5 sparsities; accuracies are fractions in [0, 1].",
        "max_safe_sparsity is the largest sparsity in your sweep whose accuracy is at least sweep[0.0] − 0.01.",
    )

    def inputs(self, gen: torch.Generator) -> dict:
        return {}

    def call(self, learner: Learner, inputs: dict) -> dict:
        from tutorlib.models import SmallCNN

        cnn, sweep = learner.get("cnn"), learner.get("sweep")
        if not isinstance(cnn, SmallCNN):
            raise CheckFailed(f"`cnn` is {describe(cnn)}, expected the trained SmallCNN of the notebook")
        if not isinstance(sweep, dict):
            raise CheckFailed(f"`sweep` is {describe(sweep)}, expected a dict {{sparsity: accuracy}}")
        return {"config": _cnn_config(cnn), "state": {k: v.detach() for k, v in cnn.state_dict().items()},
                "sweep": [[k, v] for k, v in sweep.items()], "max_safe": learner.get("max_safe_sparsity")}

    def compare(self, inputs: dict, outputs: dict) -> str:
        from tutorlib.data import load_digits
        from tutorlib.models import SmallCNN

        pairs = outputs["sweep"]
        if len(pairs) < 5:
            raise CheckFailed(f"`sweep` has {len(pairs)} entries: measure at least 5 sparsities (including 0.0)")
        sweep: dict[float, float] = {}
        for k, v in pairs:
            expect_number(k, f"the sparsity key {k!r} of `sweep`", float)
            expect_number(v, f"sweep[{k!r}]", float)
            if not 0.0 <= k < 1.0 or not 0.0 <= v <= 1.0:
                raise CheckFailed(f"sweep[{k!r}] = {v!r}: sparsities must be in [0, 1) and accuracies in [0, 1] (not percent)")
            sweep[float(k)] = float(v)
        if 0.0 not in sweep:
            raise CheckFailed("`sweep` has no entry for sparsity 0.0: measure the dense model too, it is the reference")
        cnn = SmallCNN(**outputs["config"])
        cnn.load_state_dict({k: v.cpu() for k, v in outputs["state"].items()})
        val = load_digits("val")
        x, y = val.tensors
        with torch.no_grad():
            for s in sorted(sweep)[:12]:
                model = copy.deepcopy(cnn).eval()
                if s > 0:
                    prune_magnitude(model, s, scope="global")
                    make_permanent(model)
                want = (model(x).argmax(1) == y).float().mean().item()
                if abs(sweep[s] - want) > 1e-4:
                    raise CheckFailed(
                        f"sweep[{s}] = {sweep[s]:.4f}, but pruning a copy of `cnn` to {s:.0%} (global magnitude, all Conv2d "
                        f"and Linear layers, no fine-tuning) gives {want:.4f} on load_digits('val'): prune a fresh COPY at "
                        "each sparsity and measure with accuracy_of on the validation split"
                    )
        msafe = expect_number(outputs["max_safe"], "`max_safe_sparsity`", float)
        dense = sweep[0.0]
        ok = [s for s in sweep if sweep[s] >= dense - 0.01]
        want = max(ok)
        if not math.isclose(msafe, want):
            raise CheckFailed(f"max_safe_sparsity = {msafe}, but your sweep says {want}: the largest sparsity whose accuracy "
                              f"is at least dense − 0.01 = {dense - 0.01:.4f}")
        return f"your sweep is reproducible; up to {want:.0%} of the weights can go with ≤ 1 point lost"


# --------------------------------------------------------------------------- ex05_7 reading the Pareto chart


@exercise("ex05_7", points=1, timeout=60)
class OnFrontCheck:
    """``on_front``: the names of the variants on the size-vs-accuracy Pareto front of ``variants``."""

    names = ("variants", "on_front")
    hints = (
        "a variant is on the front when no other variant is at least as small AND at least as accurate (and better on one).",
        "read the chart from left (small) to right: a point is on the front when it is higher than every point to its left.",
    )

    def inputs(self, gen: torch.Generator) -> dict:
        return {}

    def call(self, learner: Learner, inputs: dict) -> dict:
        variants = learner.get("variants")
        if not isinstance(variants, (list, tuple)) or not variants:
            raise CheckFailed(f"`variants` is {describe(variants)}: run the cell that measures the variants first")
        rows = []
        for v in variants:
            get = (lambda k: getattr(v, k, None)) if hasattr(v, "name") else (lambda k: v.get(k) if isinstance(v, dict) else None)
            b, a = get("bytes"), get("accuracy")
            rows.append({"name": get("name"), "bytes": None if b is None else float(b), "accuracy": None if a is None else float(a)})
        answer = learner.get("on_front")
        return {"variants": rows, "answer": sorted(answer) if isinstance(answer, set) else answer}

    def compare(self, inputs: dict, outputs: dict) -> str:
        variants, answer = outputs["variants"], outputs["answer"]
        if not isinstance(answer, (list, tuple)) or not all(isinstance(a, str) for a in answer):
            raise CheckFailed(f"`on_front` is {describe(answer)}, expected a list of variant names (strings)")
        try:
            want = pareto_front(variants, x="bytes", y="accuracy")
        except (KeyError, TypeError) as exc:
            raise CheckFailed(f"`variants` cannot be read: {exc}") from exc
        names = {v["name"] for v in variants}
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
