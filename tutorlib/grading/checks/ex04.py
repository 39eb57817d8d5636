"""Checks for lesson 04 (transfer learning): freezing the top k layers, layer-wise LR decay groups, a multi-task
loss, F1 from a confusion matrix, expected calibration error, a linear-probe experiment and reading the per-domain plot.

Each check follows the protocol (:mod:`tutorlib.grading.protocol`): ``inputs`` draws the data from the
generator it is given, ``call`` runs the learner's code on tiny models and returns plain data (flags,
parameter names, tensors, numbers), ``compare`` checks it against :mod:`tutorlib.transfer` and
re-derives the experiment's figures from the returned weights and data.

>>> m = tiny_classifier(torch.device("cpu"), torch.Generator().manual_seed(0))
>>> len(m.encoder.encoder.layer)
3
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from tutorlib.transfer.evaluate import expected_calibration_error, f1_from_confusion
from tutorlib.transfer.freeze import layerwise_lr_groups, unfreeze_top

from ..compare import CheckFailed, describe, expect_close, expect_finite, expect_number, expect_tensor
from ..protocol import Learner, exercise

__all__ = ["tiny_classifier", "reference_combined_loss"]


def tiny_classifier(device: torch.device, generator: torch.Generator, n_layers: int = 3, num_labels: int = 2) -> nn.Module:
    """A ``MiniLMClassifier`` around a tiny randomly initialised BERT (same layout as the real one, built in milliseconds)."""
    from transformers import BertConfig, BertModel

    from tutorlib.models import MiniLMClassifier

    cfg = BertConfig(vocab_size=64, hidden_size=16, num_hidden_layers=n_layers, num_attention_heads=2,
                     intermediate_size=32, max_position_embeddings=32)
    model = MiniLMClassifier(num_labels, encoder=BertModel(cfg))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(0.05 * torch.randn(p.shape, generator=generator))
    return model.to(device)


def reference_combined_loss(sentiment_logits: torch.Tensor, domain_logits: torch.Tensor, sentiment_y: torch.Tensor,
                            domain_y: torch.Tensor, domain_weight: float) -> torch.Tensor:
    """``CE(sentiment) + domain_weight · CE(domain)``."""
    return F.cross_entropy(sentiment_logits, sentiment_y) + domain_weight * F.cross_entropy(domain_logits, domain_y)


def _frozen_start(model: nn.Module, k: int) -> nn.Module:
    if k == 2:  # start from a partly frozen model: the function must set every flag, not only add some
        for p in model.encoder.encoder.layer[0].parameters():
            p.requires_grad_(False)
        model.head.requires_grad_(False)
    return model


@exercise("ex04_1", points=2, timeout=60)
class UnfreezeTopCheck:
    """``unfreeze_top(model, k)``: freezes everything, then unfreezes the top k layers and the head, in place."""

    names = ("unfreeze_top",)
    reference = ("tutorlib.transfer.freeze.unfreeze_top",)
    hints = (
        "set p.requires_grad for every parameter: first freeze them all, then unfreeze what should train.",
        "the top k layers are model.encoder.encoder.layer[len(layers) - k:] (careful: layers[-0:] is all of them); the head always trains.",
        "change the model in place and return that same model.",
    )

    def inputs(self, gen: torch.Generator) -> dict:
        return {"ks": [0, 1, 3, 2], "seed": int(torch.randint(0, 2**31 - 1, (1,), generator=gen))}

    def call(self, learner: Learner, inputs: dict) -> list:
        fn, outs = learner.function("unfreeze_top"), []
        for k in inputs["ks"]:
            model = _frozen_start(tiny_classifier(learner.device, torch.Generator().manual_seed(inputs["seed"])), k)
            result = learner.call(fn, model, k, name="unfreeze_top", mutable=(0,))
            outs.append({"same": result is None or result is model,
                         "flags": {n: bool(p.requires_grad) for n, p in model.named_parameters()}})
        return outs

    def compare(self, inputs: dict, outputs: list) -> None:
        for k, out in zip(inputs["ks"], outputs):
            if not out["same"]:
                raise CheckFailed("unfreeze_top should change the model in place and return that same model (return model)")
            ref = unfreeze_top(_frozen_start(tiny_classifier(torch.device("cpu"), torch.Generator().manual_seed(0)), k), k)
            for name, r in ref.named_parameters():
                if out["flags"].get(name) != r.requires_grad:
                    state = "trainable" if r.requires_grad else "frozen"
                    where = ("the head always trains" if name.startswith("head") else
                             "embeddings stay frozen" if "embeddings" in name else
                             f"with k={k} only the top {k} of the 3 layers train")
                    raise CheckFailed(f"with k={k}, parameter {name} should be {state} ({where}): set p.requires_grad "
                                      "for every parameter — first freeze all, then unfreeze the top k layers and the head")


def _llrd_model(device: torch.device) -> nn.Module:
    model = tiny_classifier(device, torch.Generator().manual_seed(0))
    model.encoder.pooler.requires_grad_(False)  # unused by mean pooling
    return model


@exercise("ex04_2", points=2, timeout=60)
class LLRDGroupsCheck:
    """``llrd_groups(model, lr, decay)``: every trainable parameter once, with lr · decay^(L + 1 − depth)."""

    names = ("llrd_groups",)
    reference = ("tutorlib.transfer.freeze.layerwise_lr_groups",)
    hints = (
        "return a list of dicts {'params': [tensors], 'lr': float}, one per depth, holding only trainable parameters.",
        "the head trains at lr; layer i (0 = bottom, of L) at lr · decay^(L − i); the embeddings at lr · decay^(L + 1).",
    )

    def inputs(self, gen: torch.Generator) -> dict:
        return {"lr": float(torch.empty(1).uniform_(5e-4, 5e-3, generator=gen)), "decay": 0.5}

    def call(self, learner: Learner, inputs: dict) -> Any:
        fn = learner.function("llrd_groups")
        model = _llrd_model(learner.device)
        groups = learner.call(fn, model, inputs["lr"], inputs["decay"], name="llrd_groups", mutable=(0,))
        if not isinstance(groups, (list, tuple)) or not all(isinstance(g, dict) for g in groups):
            raise CheckFailed("llrd_groups should return a list of dicts like {'params': [...], 'lr': ...}")
        names = {id(p): n for n, p in model.named_parameters()}
        out = []
        for g in groups:
            if "params" not in g or "lr" not in g:
                out.append(None)
                continue
            lr = g["lr"]
            out.append({"names": [names.get(id(p)) for p in g["params"]],
                        "lr": float(lr) if isinstance(lr, (int, float, torch.Tensor)) else str(lr)})
        return out

    def compare(self, inputs: dict, outputs: list) -> None:
        lr, decay = inputs["lr"], inputs["decay"]
        got: dict[str, float] = {}
        for i, g in enumerate(outputs):
            if g is None:
                raise CheckFailed(f"group {i} lacks 'params' or 'lr': each group is {{'params': [tensors], 'lr': float}}")
            value = expect_number(g["lr"], f"the lr of group {i}")
            for name in g["names"]:
                if name is None:
                    raise CheckFailed(f"group {i} holds a tensor that is not a parameter of the model")
                if name in got:
                    raise CheckFailed(f"parameter {name} is in two groups: each parameter may appear once")
                got[name] = value
        model = _llrd_model(torch.device("cpu"))
        names = {id(p): n for n, p in model.named_parameters()}
        want = {names[id(p)]: float(g["lr"]) for g in layerwise_lr_groups(model, lr, decay) for p in g["params"]}
        for name in want:
            if name not in got:
                raise CheckFailed(f"trainable parameter {name} is missing from the groups")
        for name in got:
            if name not in want:
                raise CheckFailed(f"parameter {name} is frozen (requires_grad=False) and should not be in any group")
        for name, value in want.items():
            if abs(got[name] - value) > 1e-12 + 1e-9 * value:
                raise CheckFailed(f"parameter {name} has lr {got[name]:.4g}, expected {value:.4g}: the head trains at lr, "
                                  f"layer i (0 = bottom, of L) at lr · decay^(L − i), the embeddings at lr · decay^(L + 1)")


@exercise("ex04_3", points=1, timeout=30)
class CombinedLossCheck:
    """``combined_loss(sentiment_logits, domain_logits, sentiment_y, domain_y, domain_weight)``: weighted sum of two CEs."""

    names = ("combined_loss",)
    reference = ("tutorlib.grading.checks.ex04.reference_combined_loss",)
    hints = (
        "two heads, two cross-entropies: one for sentiment, one for the domain.",
        "the domain loss is multiplied by domain_weight before adding; return the loss tensor (it must keep its gradient).",
    )

    def inputs(self, gen: torch.Generator) -> dict:
        return {"s": torch.randn(12, 2, generator=gen), "d": torch.randn(12, 8, generator=gen),
                "sy": torch.randint(2, (12,), generator=gen), "dy": torch.randint(8, (12,), generator=gen),
                "weights": [0.5, 0.0, 2.0]}

    def call(self, learner: Learner, inputs: dict) -> list:
        fn, dev, outs = learner.function("combined_loss"), learner.device, []
        s, d = inputs["s"].to(dev).requires_grad_(True), inputs["d"].to(dev).requires_grad_(True)
        sy, dy = inputs["sy"].to(dev), inputs["dy"].to(dev)
        pristine = [t.detach().clone() for t in (s, d, sy, dy)]
        for w in inputs["weights"]:
            # The logits are passed as they are (copies would carry no gradient); they are compared afterwards.
            out = learner.call(fn, s, d, sy, dy, w, name="combined_loss", mutable=(0, 1))
            changed = any(not torch.equal(t.detach(), c) for t, c in zip((s, d, sy, dy), pristine))
            grad = isinstance(out, torch.Tensor) and out.requires_grad
            outs.append({"out": out.detach() if isinstance(out, torch.Tensor) else out, "requires_grad": grad, "changed": changed})
        return outs

    def compare(self, inputs: dict, outputs: list) -> None:
        for w, o in zip(inputs["weights"], outputs):
            call = f"combined_loss(..., domain_weight={w})"
            if o["changed"]:
                raise CheckFailed("combined_loss changed its inputs in place: compute the losses without modifying the logits or labels")
            out = o["out"]
            expect_tensor(out, f"the result of {call}", shape=())
            expect_finite(out, f"the result of {call}")
            if not o["requires_grad"]:
                raise CheckFailed(f"the result of {call} has no gradient: return the loss tensor, not loss.item()")
            want = reference_combined_loss(inputs["s"], inputs["d"], inputs["sy"], inputs["dy"], w)
            expect_close(out.cpu(), want, f"the result of {call}", atol=1e-5, rtol=1e-5,
                         hint="cross-entropy of the sentiment head plus domain_weight times the cross-entropy of the domain head")


@exercise("ex04_4", points=2, timeout=30)
class F1FromCMCheck:
    """``f1_from_cm(cm)``: per-class (precision, recall, f1), 0 where a class is never predicted or never present."""

    names = ("f1_from_cm",)
    reference = ("tutorlib.transfer.evaluate.f1_from_confusion",)
    hints = (
        "rows of cm are the true classes, columns the predicted ones; the diagonal holds the correct predictions.",
        "precision = cm[c, c] / cm[:, c].sum() (the column), recall = cm[c, c] / cm[c, :].sum() (the row), f1 = 2pr / (p + r).",
        "where a denominator is 0 the value is 0, not NaN: use torch.where (or clamp the denominator).",
    )

    def inputs(self, gen: torch.Generator) -> dict:
        random_cm = torch.randint(0, 20, (4, 4), generator=gen)
        empty = random_cm.clone()
        empty[2, :] = 0
        empty[:, 2] = 0  # class 2 never occurs and is never predicted
        never_predicted = random_cm.clone()
        never_predicted[:, 1] = 0
        return {"cases": [("a random 4×4 confusion matrix", random_cm), ("a matrix where class 2 never occurs", empty),
                          ("a matrix where class 1 is never predicted", never_predicted)]}

    def call(self, learner: Learner, inputs: dict) -> list:
        fn = learner.function("f1_from_cm")
        return [learner.call(fn, cm.to(learner.device), name="f1_from_cm") for _, cm in inputs["cases"]]

    def compare(self, inputs: dict, outputs: list) -> None:
        for (label, cm), out in zip(inputs["cases"], outputs):
            if not isinstance(out, (tuple, list)) or len(out) != 3:
                raise CheckFailed(f"f1_from_cm should return three tensors (precision, recall, f1); got {describe(out)}")
            want = f1_from_confusion(cm)
            for name, got, ref in zip(("precision", "recall", "f1"), out, want):
                what = f"{name} for {label}"
                expect_tensor(got, what, shape=ref.shape)
                got = got.detach().cpu()
                if bool(torch.isnan(got.double()).any()):
                    raise CheckFailed(f"{what} contains NaN: when a denominator is 0 the value is defined as 0 (use torch.where)")
                hint = ""
                if name == "precision":
                    hint = "precision = cm[c, c] / cm[:, c].sum() (the column: everything predicted as c)"
                elif name == "recall":
                    hint = "recall = cm[c, c] / cm[c, :].sum() (the row: everything that truly is c)"
                expect_close(got.double(), ref, what, atol=1e-6, rtol=1e-6, hint=hint)


@exercise("ex04_5", points=1, timeout=30)
class ECECheck:
    """``ece(probs, targets, n_bins)``: count-weighted mean |accuracy − confidence| over equal-width confidence bins."""

    names = ("ece",)
    reference = ("tutorlib.transfer.evaluate.expected_calibration_error",)
    hints = (
        "confidence = probs.max(1).values, prediction = probs.argmax(1); bin the examples by confidence into n_bins equal bins on [0, 1].",
        "per non-empty bin: |accuracy − mean confidence|, weighted by the bin's share of the examples (count / N); sum them.",
    )

    def inputs(self, gen: torch.Generator) -> dict:
        return {"probs": torch.softmax(2.5 * torch.randn(200, 3, generator=gen), dim=1),
                "targets": torch.randint(3, (200,), generator=gen), "bins": [10, 5, int(torch.randint(3, 15, (1,), generator=gen))]}

    def call(self, learner: Learner, inputs: dict) -> list:
        fn, dev = learner.function("ece"), learner.device
        return [learner.call(fn, inputs["probs"].to(dev), inputs["targets"].to(dev), n, name="ece") for n in inputs["bins"]]

    def compare(self, inputs: dict, outputs: list) -> None:
        for n_bins, got in zip(inputs["bins"], outputs):
            got = expect_number(got, f"the result of ece(probs, targets, {n_bins})")
            want = expected_calibration_error(inputs["probs"], inputs["targets"], n_bins)
            expect_close(got, want, f"ece(probs, targets, {n_bins})", atol=1e-6, rtol=1e-5,
                         hint="confidence = probs.max(1); bin by confidence into n_bins equal bins on [0, 1]; "
                              "sum over non-empty bins of (count / N) · |accuracy − mean confidence|")


@exercise("ex04_6", points=1, timeout=60)
class ProbeAccuracyCheck:
    """The linear-probe experiment: ``probe`` trained on cached embeddings, ``probe_accuracy`` its test accuracy.

    ``call`` returns the probe's weights and the test embeddings; ``compare`` rebuilds the probe and
    measures its accuracy itself, so a made-up figure fails.
    """

    names = ("probe", "test_emb", "test_y", "probe_accuracy")
    hints = (
        "a linear probe is nn.Linear(embedding size, number of classes) trained on the TRAIN embeddings only.",
        "train it with the Trainer for a few dozen epochs; then probe_accuracy = (probe(test_emb).argmax(1) == test_y).float().mean().item().",
    )

    def inputs(self, gen: torch.Generator) -> dict:
        return {}

    def call(self, learner: Learner, inputs: dict) -> dict:
        probe = learner.get("probe")
        if not isinstance(probe, nn.Linear):
            raise CheckFailed(f"`probe` is {describe(probe)}, expected the nn.Linear you trained on the embeddings")
        return {"weight": probe.weight.detach(), "bias": None if probe.bias is None else probe.bias.detach(),
                "test_emb": learner.get("test_emb"), "test_y": learner.get("test_y"), "acc": learner.get("probe_accuracy")}

    def compare(self, inputs: dict, outputs: dict) -> None:
        test_emb = expect_tensor(outputs["test_emb"], "`test_emb`").detach().cpu().float()
        test_y = expect_tensor(outputs["test_y"], "`test_y`").cpu()
        acc = expect_number(outputs["acc"], "`probe_accuracy`", float)
        weight = expect_tensor(outputs["weight"], "probe.weight").cpu().float()
        if weight.shape[1] != test_emb.shape[1]:
            raise CheckFailed(f"probe.weight has shape {tuple(weight.shape)} but the test embeddings have {test_emb.shape[1]} "
                              "values each: build the probe as nn.Linear(test_emb.shape[1], 2)")
        logits = test_emb @ weight.T
        if outputs["bias"] is not None:
            logits = logits + outputs["bias"].cpu().float()
        want = float((logits.argmax(1) == test_y).float().mean())
        expect_close(acc, want, "`probe_accuracy`", atol=1e-6, rtol=0,
                     hint="the fraction of test embeddings whose argmax prediction equals the label (a fraction, not %)")
        if want < 0.6:
            raise CheckFailed(f"the probe reaches only {want:.3f} test accuracy: train it for more epochs or with a larger "
                              "learning rate (a linear probe on MiniLM embeddings should clearly beat 0.5)")


@exercise("ex04_7", points=1, timeout=30)
class WorstDomainCheck:
    """``worst_domain``: read from the per-domain plot, the domain with the lowest accuracy."""

    names = ("domain_rows", "worst_domain")
    hints = (
        "each bar of the plot is one domain's accuracy; the answer is the name of the shortest bar.",
        "worst_domain is a string, one of the 'group' values in domain_rows.",
    )

    def inputs(self, gen: torch.Generator) -> dict:
        return {}

    def call(self, learner: Learner, inputs: dict) -> dict:
        rows = learner.get("domain_rows")
        if not isinstance(rows, list) or not rows or not all(isinstance(r, dict) and "group" in r and "accuracy" in r for r in rows):
            raise CheckFailed("`domain_rows` should be the list per_group_results(...) returned: run the cell that makes it")
        return {"rows": [{"group": str(r["group"]), "accuracy": float(r["accuracy"])} for r in rows],
                "answer": learner.get("worst_domain")}

    def compare(self, inputs: dict, outputs: dict) -> None:
        rows, answer = outputs["rows"], outputs["answer"]
        if not isinstance(answer, str):
            raise CheckFailed(f"`worst_domain` should be a domain name (a string such as 'hotel'), got {type(answer).__name__}")
        low = min(r["accuracy"] for r in rows)
        worst = sorted(r["group"] for r in rows if r["accuracy"] == low)
        names = [r["group"] for r in rows]
        if answer not in names:
            raise CheckFailed(f"{answer!r} is not one of the domains in the plot: {', '.join(names)}")
        if answer not in worst:
            got = next(r["accuracy"] for r in rows if r["group"] == answer)
            raise CheckFailed(f"{answer!r} has accuracy {got:.3f}; the shortest bar is lower than that: look again")
