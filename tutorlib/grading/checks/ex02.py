"""Checks for lesson 02 (regularization): L1 penalty, dropout, image shift, label smoothing, a dropout sweep, reading curves.

Each check compares the learner's code with :mod:`tutorlib.regularize` on inputs from the check's own
generator (random-number checks seed torch inside the check; the learner's state is restored).

>>> import torch
>>> from tutorlib.regularize import shift_image
>>> shift_image(torch.eye(3)[None], 1, 0)[0].tolist()
[[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 0.0]]
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from tutorlib.regularize import l1_penalty, shift_image, smooth_targets

from ..compare import CheckFailed, describe, expect_close, expect_finite, expect_number, expect_tensor
from ..protocol import exercise

__all__: list[str] = []


def _model(state: dict[str, torch.Tensor] | None = None, gen: torch.Generator | None = None) -> nn.Module:
    model = nn.Sequential(nn.Conv2d(1, 3, 3), nn.BatchNorm2d(3), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 6 * 6, 4))
    with torch.no_grad():
        if state is not None:
            model.load_state_dict(state)
        else:
            for p in model.parameters():
                p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
    return model


@exercise("ex02_1", points=1, timeout=60)
class L1PenaltyCheck:
    """``l1_penalty(model)``: Σ|w| over weight matrices/kernels only, as a tensor that gradients flow through."""

    names = ("l1_penalty",)
    hints = (
        "weights are the parameters with more than one dimension (p.dim() > 1); biases and BatchNorm scales are not.",
        "sum(p.abs().sum() for p in model.parameters() if p.dim() > 1), returned as a tensor (no .item()).",
    )

    def inputs(self, gen: torch.Generator) -> dict:
        with torch.random.fork_rng():
            return {"state": dict(_model(gen=gen).state_dict())}

    def call(self, learner: Any, inputs: dict) -> dict:
        fn = learner.function("l1_penalty")
        with torch.random.fork_rng():
            model = _model(inputs["state"]).to(learner.device)
        out = learner.call(fn, model, name="l1_penalty", mutable=(0,))
        grads: Any = None
        if isinstance(out, torch.Tensor) and out.requires_grad and out.numel() == 1:
            model.zero_grad()
            try:
                out.reshape(()).backward()
                grads = {n: p.grad for n, p in model.named_parameters() if p.dim() > 1}
            except RuntimeError as exc:
                grads = f"backward() failed: {exc}".splitlines()[0]
        return {"out": out, "grads": grads}

    def compare(self, inputs: dict, outputs: dict) -> str:
        out = outputs["out"]
        model = _model(inputs["state"])
        what = "the result of l1_penalty(model)"
        if isinstance(out, (int, float)) and not isinstance(out, bool):
            raise CheckFailed(f"{what} is a Python {type(out).__name__}: return the tensor (no .item()), so that "
                              "loss + l1 * penalty can be back-propagated")
        expect_tensor(out, what, device=self.device)
        if out.numel() != 1:
            raise CheckFailed(f"{what} has shape {tuple(out.shape)}, expected a single number: sum over all values")
        expect_finite(out, what)
        want = l1_penalty(model).detach()
        everything = float(sum(p.detach().abs().sum() for p in model.parameters()))
        got = float(out.detach())
        hint = ""
        if abs(got - everything) < 1e-4 * everything:
            hint = ("you penalised biases and BatchNorm parameters too: only tensors with more than one dimension "
                    "(p.dim() > 1) are weights")
        elif abs(got - float(want) / sum(p.numel() for p in model.parameters() if p.dim() > 1)) < 1e-6:
            hint = "you averaged: the penalty is the sum of absolute values, not the mean"
        expect_close(out.detach().cpu().reshape(()), want, what, atol=1e-4, rtol=1e-5,
                     hint=hint or "sum p.abs().sum() over p with p.dim() > 1")
        if not out.requires_grad:
            raise CheckFailed(f"{what} does not require a gradient: compute it from the parameters with torch operations "
                              "(no .item(), .detach() or torch.no_grad())")
        grads = outputs["grads"]
        if isinstance(grads, str):
            raise CheckFailed(f"{what}: {grads}")
        for name, p in model.named_parameters():
            if p.dim() > 1:
                g = grads.get(name) if isinstance(grads, dict) else None
                if g is None:
                    raise CheckFailed(f"no gradient reached {name}: build the penalty from the model's parameters")
                expect_close(g, torch.sign(p.detach()), f"the gradient of the penalty with respect to {name}", atol=1e-6)
        return "sum of |w| over the weight tensors, differentiable"


@exercise("ex02_2", points=2, timeout=60)
class DropoutCheck:
    """``dropout(x, p, training=True)``: inverted dropout with torch's generator; identity in evaluation."""

    names = ("dropout",)
    hints = (
        "keep each value with probability 1 - p: mask = torch.rand(x.shape, device=x.device) >= p.",
        "return x * mask / (1 - p) when training and 0 < p < 1; x itself when not training or p == 0; zeros when p == 1.",
    )

    def inputs(self, gen: torch.Generator) -> dict:
        seeds = [int(v) for v in torch.randint(0, 2**31 - 1, (3,), generator=gen)]
        return {"x": torch.randn(6, 9, generator=gen), "z": torch.randn(50, 40, generator=gen, dtype=torch.float64),
                "seeds": seeds}

    def call(self, learner: Any, inputs: dict) -> dict:
        fn, dev = learner.function("dropout"), learner.device
        x, z, (s1, s2, s3) = inputs["x"].to(dev), inputs["z"].to(dev), inputs["seeds"]
        out: dict[str, Any] = {
            "eval": learner.call(fn, x, name="dropout", p=0.5, training=False),
            "p0": learner.call(fn, x, name="dropout", p=0.0, training=True),
        }
        ones = torch.ones(200, 100, device=dev)
        torch.manual_seed(s1)  # the protocol restores the learner's random state afterwards
        out["ones"] = learner.call(fn, ones, 0.3, name="dropout")
        torch.manual_seed(s2)
        out["z"] = learner.call(fn, z, 0.5, name="dropout")
        torch.manual_seed(s3)
        out["first"] = learner.call(fn, z, 0.5, name="dropout")
        torch.manual_seed(s3)
        out["second"] = learner.call(fn, z, 0.5, name="dropout")
        out["third"] = learner.call(fn, z, 0.5, name="dropout")
        out["all"] = learner.call(fn, ones[:4], 1.0, name="dropout")
        return out

    def compare(self, inputs: dict, outputs: dict) -> str:
        x, z = inputs["x"], inputs["z"]
        for label, key in (("training=False", "eval"), ("p=0", "p0")):
            out = expect_tensor(outputs[key], f"dropout(x, {label})", shape=x.shape, dtype=x.dtype, device=self.device)
            expect_close(out, x, f"dropout(x, {label})", atol=0, rtol=0,
                         hint="when not training (or p == 0) dropout must return the input values unchanged")
        out = expect_tensor(outputs["ones"], "dropout(ones, 0.3)", shape=(200, 100), dtype=torch.float32, device=self.device)
        expect_finite(out, "dropout(ones, 0.3)")
        out = out.cpu()
        zero_share = float((out == 0).float().mean())
        if abs(zero_share - 0.7) < 0.03:
            raise CheckFailed(f"dropout(ones, p=0.3) zeroed {zero_share:.1%} of the values: p is the probability to DROP "
                              "a value, so keep a value when torch.rand(...) >= p")
        if abs(zero_share - 0.3) > 0.03:
            raise CheckFailed(f"dropout(ones, p=0.3) zeroed {zero_share:.1%} of the values, expected about 30%: "
                              "draw an independent torch.rand(...) value for every element and zero it with probability p")
        kept = out[out != 0]
        if torch.allclose(kept, torch.ones_like(kept)):
            raise CheckFailed("the values dropout keeps are unchanged: divide them by (1 - p) so the expected value "
                              "stays the same and evaluation needs no rescaling (inverted dropout)")
        expect_close(kept, torch.full_like(kept, 1 / 0.7), "the kept values of dropout(ones, 0.3)", atol=1e-5,
                     hint="keep each value with probability 1 - p and scale it by 1 / (1 - p)")
        out = expect_tensor(outputs["z"], "dropout(x, 0.5) for a float64 x", shape=z.shape, dtype=z.dtype, device=self.device)
        out = out.cpu()
        mask = out != 0
        expect_close(out[mask], z[mask] * 2, "the kept values of dropout(x, 0.5)", atol=1e-9,
                     hint="each kept value is x / (1 - p), at the same position")
        first, second, third = (expect_tensor(outputs[k], "dropout(x, 0.5)", shape=z.shape) for k in ("first", "second", "third"))
        if not torch.equal(first, second):
            raise CheckFailed("dropout gives different masks after the same torch.manual_seed(...): draw the mask with "
                              "torch's generator (torch.rand), not Python's random or NumPy")
        if torch.equal(second, third):
            raise CheckFailed("two calls in a row gave the same mask: draw a new random mask on every call")
        out = expect_tensor(outputs["all"], "dropout(x, p=1.0)", shape=(4, 100))
        expect_finite(out, "dropout(x, p=1.0)")
        if out.abs().max() != 0:
            raise CheckFailed("dropout(x, p=1.0) should drop everything (all zeros)")
        return "inverted dropout: ~p of the values zeroed, the rest scaled by 1/(1-p), identity in evaluation"


_SHIFTS = ((1, 0), (0, 1), (-2, 3), (3, -1), (0, 0), (-1, -1), (9, 0), (0, -8))


@exercise("ex02_3", points=1, timeout=60)
class ShiftImageCheck:
    """``shift_image(x, dx, dy)``: move right/down by whole pixels, zero fill, works on (C,H,W) and (B,C,H,W)."""

    names = ("shift_image",)
    hints = (
        "make a zero tensor like x and copy the part of x that stays in view into its shifted place.",
        "dx moves along the last dimension (to the right), dy along the one before it (down); never use torch.roll.",
    )

    def inputs(self, gen: torch.Generator) -> dict:
        return {"images": [(torch.randn(1, 8, 8, generator=gen).abs(), "an image (1, 8, 8)"),
                           (torch.randn(3, 1, 8, 8, generator=gen).abs(), "a batch (3, 1, 8, 8)")]}

    def call(self, learner: Any, inputs: dict) -> list:
        fn = learner.function("shift_image")
        return [[learner.call(fn, x.to(learner.device), dx, dy, name="shift_image") for dx, dy in _SHIFTS]
                for x, _ in inputs["images"]]

    def compare(self, inputs: dict, outputs: list) -> str:
        for (x, label), outs in zip(inputs["images"], outputs):
            for (dx, dy), out in zip(_SHIFTS, outs):
                call = f"shift_image(x, dx={dx}, dy={dy}) for {label}"
                out = expect_tensor(out, f"the result of {call}", shape=x.shape, dtype=x.dtype, device=self.device).cpu()
                want = shift_image(x, dx, dy)
                hint = ""
                rolled = torch.roll(x, shifts=(dy, dx), dims=(-2, -1))
                if torch.allclose(out, rolled) and not torch.allclose(want, rolled):
                    hint = "torch.roll wraps pixels around to the other side: fill the uncovered rows/columns with 0 instead"
                elif torch.allclose(out, shift_image(x, dy, dx)) and dx != dy:
                    hint = "dx moves along the width (last dimension, to the right), dy along the height (down)"
                elif torch.allclose(out, shift_image(x, -dx, -dy)) and (dx or dy):
                    hint = "positive dx moves the content to the right, positive dy moves it down"
                expect_close(out, want, f"the result of {call}", atol=1e-6, hint=hint)
        return "shifts with zero fill, on single images and batches"


@exercise("ex02_4", points=2, timeout=60)
class LabelSmoothingCheck:
    """``smooth_targets(targets, num_classes, eps)`` and ``smoothed_cross_entropy(logits, targets, eps)``."""

    names = ("smooth_targets", "smoothed_cross_entropy")
    hints = (
        "every class gets eps / C, and the true class 1 - eps + eps / C (torch's convention): rows sum to 1.",
        "smoothed_cross_entropy = -(soft_targets * F.log_softmax(logits, dim=1)).sum(dim=1).mean().",
    )

    def inputs(self, gen: torch.Generator) -> dict:
        return {"y": torch.randint(5, (12,), generator=gen), "logits": torch.randn(12, 5, generator=gen) * 2,
                "smooth_eps": [0.0, 0.1, 0.3], "ce_eps": [0.0, 0.1, 0.25]}

    def call(self, learner: Any, inputs: dict) -> dict:
        smooth = learner.function("smooth_targets")
        y, logits = inputs["y"].to(learner.device), inputs["logits"].to(learner.device)
        out: dict[str, Any] = {"smooth": [learner.call(smooth, y, 5, eps, name="smooth_targets") for eps in inputs["smooth_eps"]]}
        try:
            ce = learner.function("smoothed_cross_entropy")
        except CheckFailed as exc:  # reported after smooth_targets has been checked
            out["ce_missing"] = str(exc)
            return out
        out["ce"] = [learner.call(ce, logits, y, eps, name="smoothed_cross_entropy") for eps in inputs["ce_eps"]]
        return out

    def compare(self, inputs: dict, outputs: dict) -> str:
        y, logits = inputs["y"], inputs["logits"]
        for eps, out in zip(inputs["smooth_eps"], outputs["smooth"]):
            call = f"smooth_targets(targets, 5, eps={eps})"
            expect_tensor(out, f"the result of {call}", shape=(12, 5), device=self.device)
            if not out.is_floating_point():
                raise CheckFailed(f"the result of {call} has dtype {out.dtype}: soft targets are probabilities, use float32")
            out = out.cpu()
            want = smooth_targets(y, 5, eps).to(out.dtype)
            hint = ""
            other = F.one_hot(y, 5).float() * (1 - eps) + (1 - F.one_hot(y, 5).float()) * eps / 4
            if eps and torch.allclose(out.float(), other, atol=1e-6):
                hint = ("torch spreads eps over all C classes, the true one included: every class gets eps / C and the "
                        "true class 1 - eps + eps / C")
            elif eps and not torch.allclose(out.float().sum(1), torch.ones(12), atol=1e-5):
                hint = "each row must sum to 1"
            expect_close(out, want, f"the result of {call}", atol=1e-6, hint=hint)
        if "ce_missing" in outputs:
            raise CheckFailed(outputs["ce_missing"])
        for eps, out in zip(inputs["ce_eps"], outputs["ce"]):
            call = f"smoothed_cross_entropy(logits, targets, eps={eps})"
            expect_tensor(out, f"the result of {call}", device=self.device)
            if out.numel() != 1:
                raise CheckFailed(f"the result of {call} has shape {tuple(out.shape)}: average over the batch to one number")
            want = F.cross_entropy(logits, y, label_smoothing=eps)
            hint = ""
            if abs(float(out) - float(want) * 12) < 1e-4:
                hint = "you summed over the batch: take the mean"
            elif abs(float(out) + float(want)) < 1e-5:
                hint = "cross-entropy is minus the sum of target * log_softmax(logits)"
            expect_close(out.detach().cpu().reshape(()), want, f"the result of {call}", atol=1e-5, rtol=1e-5,
                         hint=hint or "-(soft_targets * F.log_softmax(logits, dim=1)).sum(dim=1).mean()")
        return "matches F.cross_entropy(..., label_smoothing=eps)"


def _run_like(r: Any) -> bool:
    return hasattr(r, "train_accuracy") and hasattr(r, "val_accuracy")


def _val_limit() -> int | None:
    from tutorlib.runtime import budget

    return budget(full=None, smoke=64)  # the exercise's validation slice: all of it, 64 images in smoke mode


def _sweep_run(r: Any) -> Any:
    """What crosses the boundary for one run of the learner's sweep: its numbers and its model's weights."""
    if not _run_like(r):
        return describe(r)
    out = {k: getattr(r, k) for k in ("train_accuracy", "val_accuracy", "val_loss") if hasattr(r, k)}
    model = getattr(r, "model", None)
    out["model"] = dict(model.state_dict()) if isinstance(model, nn.Module) else describe(model)
    return out


@exercise("ex02_5", points=2, timeout=60)
class DropoutSweepCheck:
    """``sweep_results`` (rate -> RunResult), ``gaps`` (rate -> train − val accuracy) and ``best_rate``: the rate
    with the best validation accuracy (ties: the lower validation loss) — the lesson's criterion, not the smallest gap.
    Each run's validation accuracy is re-measured from its own model, so made-up results fail."""

    names = ("sweep_results", "gaps", "best_rate")
    hints = (
        "gaps[rate] = sweep_results[rate].train_accuracy - sweep_results[rate].val_accuracy.",
        "best_rate is the rate whose run has the highest val_accuracy; on a tie, the lower val_loss.",
    )

    def inputs(self, gen: torch.Generator) -> dict:
        return {}

    def call(self, learner: Any, inputs: dict) -> dict:
        results = learner.get("sweep_results")
        gaps = learner.get("gaps")
        best = learner.get("best_rate")
        runs = ({k: _sweep_run(r) for k, r in results.items()} if isinstance(results, dict)
                and all(isinstance(k, (int, float)) for k in results) else describe(results))
        plain_gaps = (dict(gaps) if isinstance(gaps, dict) and all(isinstance(k, (int, float)) for k in gaps)
                      else describe(gaps))
        return {"runs": runs, "gaps": plain_gaps, "best": best if isinstance(best, (int, float)) else describe(best),
                "val_limit": _val_limit()}

    def compare(self, inputs: dict, outputs: dict) -> str:
        from tutorlib.data import load_digits
        from tutorlib.models import MLP

        results = outputs["runs"]
        if not isinstance(results, dict) or len(results) < 3:
            raise CheckFailed(f"`sweep_results` is {results if isinstance(results, str) else 'a dict of ' + str(len(results)) + ' runs'}, "
                              "expected a dict of at least 3 dropout rates -> results (what dropout_sweep(...) returns)")
        for rate, r in results.items():
            if isinstance(rate, bool) or not 0 <= rate < 1:
                raise CheckFailed(f"`sweep_results` has key {rate!r}: the keys should be the dropout rates, numbers in [0, 1)")
            if not isinstance(r, dict):
                raise CheckFailed(f"sweep_results[{rate}] is {r}, expected a RunResult with train_accuracy and val_accuracy")
        gaps = outputs["gaps"]
        if not isinstance(gaps, dict) or set(gaps) != set(results):
            got = sorted(gaps) if isinstance(gaps, dict) else gaps
            raise CheckFailed(f"`gaps` should be a dict with the same keys as sweep_results ({sorted(results)}), got {got}")
        for rate, r in results.items():
            g = expect_number(gaps[rate], f"gaps[{rate}]")
            tr, va = expect_number(r["train_accuracy"], f"sweep_results[{rate}].train_accuracy"), \
                expect_number(r["val_accuracy"], f"sweep_results[{rate}].val_accuracy")
            want = tr - va
            if abs(g + want) < 1e-9 and want:
                raise CheckFailed(f"gaps[{rate}] = {g:.4f} has the wrong sign: the gap is train accuracy minus validation accuracy")
            if abs(g - want) > 1e-9:
                raise CheckFailed(f"gaps[{rate}] = {g:.4f}, but sweep_results[{rate}] has train accuracy {tr:.4f} "
                                  f"and validation accuracy {va:.4f}: the gap is {want:.4f}")
        # The numbers must come from the run: re-measure each run's validation accuracy from its own model.
        limit = outputs["val_limit"]
        if limit is not None and (not isinstance(limit, int) or limit <= 0):
            raise CheckFailed("the check could not tell which validation slice the sweep used")
        x_val, y_val = load_digits("val", limit=limit).tensors
        for rate, r in results.items():
            state = r.get("model")
            if not isinstance(state, dict):
                raise CheckFailed(f"sweep_results[{rate}] has no trained model (it is {state}): keep what dropout_sweep "
                                  "returns — the numbers must come from the run, not be typed in")
            net = MLP(64, [256, 256], 10, dropout=float(rate))
            try:
                net.load_state_dict(state)
            except (RuntimeError, KeyError) as exc:
                first = str(exc).strip().splitlines()[0][:200]
                raise CheckFailed(f"sweep_results[{rate}].model is not the lesson's MLP(64, [256, 256], 10) ({first})") from None
            net.eval()
            with torch.no_grad():
                measured = float((net(x_val).argmax(1) == y_val).float().mean())
            if abs(float(r["val_accuracy"]) - measured) > 1e-4:
                raise CheckFailed(f"sweep_results[{rate}] reports validation accuracy {float(r['val_accuracy']):.4f}, but its "
                                  f"own model measures {measured:.4f} on the validation digits: keep the results "
                                  "dropout_sweep returned (do not edit or type them)")
        best = outputs["best"]
        if isinstance(best, str) or best not in results:
            raise CheckFailed(f"`best_rate` is {best!r}, expected one of the swept rates {sorted(results)}")

        def score(rate: float) -> tuple[float, float]:
            r = results[rate]
            return (float(r["val_accuracy"]), -float(r.get("val_loss", 0.0)))

        winner = max(results, key=score)
        if score(best) < score(winner):
            smallest = min(gaps, key=gaps.get)
            hint = ""
            if best == smallest:
                hint = (": that is the rate with the smallest gap — the lesson keeps the best *validation* score instead, "
                        "since a rate that stops the model fitting its training data closes the gap by making both worse")
            raise CheckFailed(f"`best_rate` = {best} has validation accuracy {results[best]['val_accuracy']:.4f}, but rate "
                              f"{winner} has {results[winner]['val_accuracy']:.4f}{hint}")
        return f"dropout {best} has the best validation accuracy ({results[best]['val_accuracy']:.3f})"


@exercise("ex02_6", points=1, timeout=60)
class BestEpochCheck:
    """``best_epoch`` read from the curves of ``overfit_history``: an epoch where the validation loss is (nearly) lowest."""

    names = ("overfit_history", "best_epoch")
    hints = (
        "look at the validation curve (not the training one) and find its lowest point.",
        "epochs are counted from 1 on the plot's x axis: min(range(1, n + 1), key=lambda e: val_loss[e - 1]).",
    )

    def inputs(self, gen: torch.Generator) -> dict:
        return {}

    def call(self, learner: Any, inputs: dict) -> dict:
        h = learner.get("overfit_history")
        best = learner.get("best_epoch")
        if not (hasattr(h, "epochs") and isinstance(h.epochs, list) and h.epochs and "val_loss" in h.epochs[-1]):
            losses: Any = describe(h)
        else:
            losses = [float(e["val_loss"]) for e in h.epochs]
        return {"losses": losses, "best": best if isinstance(best, (int, float)) else describe(best)}

    def compare(self, inputs: dict, outputs: dict) -> str:
        losses = outputs["losses"]
        if isinstance(losses, str):
            raise CheckFailed(f"`overfit_history` is {losses}, expected the History (with val_loss) from the cell above")
        best = outputs["best"]
        if isinstance(best, str):
            raise CheckFailed(f"`best_epoch` is {best}, expected a Python int")
        if isinstance(best, float) and best.is_integer():
            best = int(best)
        best = expect_number(best, "`best_epoch`", int)
        n = len(losses)
        if not 1 <= best <= n:
            raise CheckFailed(f"`best_epoch` = {best}, but the run has epochs 1 to {n} (as on the plot's x axis)")
        low, high = min(losses), max(losses)
        tol = low + 0.1 * (high - low) if n > 1 else math.inf
        i_min = losses.index(low)
        if losses[best - 1] > tol:
            hint = ""
            if best - 1 != i_min and 0 <= best < n and losses[best] <= tol:
                hint = " (epochs are counted from 1 on the plot, not from 0)"
            raise CheckFailed(f"at epoch {best} the validation loss is {losses[best - 1]:.4f}, well above its lowest value "
                              f"{low:.4f} (reached at epoch {i_min + 1}){hint}: look for the bottom of the validation curve, "
                              "not of the training curve")
        return f"validation loss bottoms out around epoch {i_min + 1}; early stopping would keep that epoch's weights"
