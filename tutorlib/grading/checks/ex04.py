"""Checks for lesson 04 (transfer learning): freezing the top k layers, layer-wise LR decay groups, a multi-task
loss, F1 from a confusion matrix, expected calibration error, a linear-probe experiment and reading the per-domain plot.

Each check compares the learner's code with the reference in :mod:`tutorlib.transfer`, on tiny models
and inputs built from the check's own generator.

>>> m = tiny_classifier(torch.device("cpu"), torch.Generator().manual_seed(0))
>>> len(m.encoder.encoder.layer)
3
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from tutorlib.transfer.evaluate import expected_calibration_error, f1_from_confusion
from tutorlib.transfer.freeze import layerwise_lr_groups, unfreeze_top

from ..compare import CheckFailed, call_safely, expect_close, expect_finite, expect_number, expect_tensor
from ..registry import CheckContext, register

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


@register("ex04_1", points=2, timeout=60)
def check_unfreeze_top(ctx: CheckContext) -> None:
    """``unfreeze_top(model, k)``: freezes everything, then unfreezes the top k layers and the head, in place."""
    fn = ctx.function("unfreeze_top")
    for k in (0, 1, 3, 2):
        model = tiny_classifier(ctx.device, ctx.generator)
        if k == 2:  # start from a partly frozen model: the function must set every flag, not only add some
            for p in model.encoder.encoder.layer[0].parameters():
                p.requires_grad_(False)
            model.head.requires_grad_(False)
        ref = unfreeze_top(copy.deepcopy(model), k)
        result = call_safely(fn, model, k, name="unfreeze_top", mutable=(0,))
        if result is not None and result is not model:
            raise CheckFailed("unfreeze_top should change the model in place and return that same model (return model)")
        for (name, p), r in zip(model.named_parameters(), ref.parameters()):
            if p.requires_grad != r.requires_grad:
                state = "trainable" if r.requires_grad else "frozen"
                where = ("the head always trains" if name.startswith("head") else
                         "embeddings stay frozen" if "embeddings" in name else
                         f"with k={k} only the top {k} of the 3 layers train")
                raise CheckFailed(f"with k={k}, parameter {name} should be {state} ({where}): set p.requires_grad "
                                  "for every parameter — first freeze all, then unfreeze the top k layers and the head")


@register("ex04_2", points=2, timeout=60)
def check_llrd_groups(ctx: CheckContext) -> None:
    """``llrd_groups(model, lr, decay)``: every trainable parameter once, with lr · decay^(L + 1 − depth)."""
    fn = ctx.function("llrd_groups")
    model = tiny_classifier(ctx.device, ctx.generator)
    model.encoder.pooler.requires_grad_(False)  # unused by mean pooling
    lr, decay = 1e-3, 0.5
    groups = call_safely(fn, model, lr, decay, name="llrd_groups", mutable=(0,))
    if not isinstance(groups, (list, tuple)) or not all(isinstance(g, dict) for g in groups):
        raise CheckFailed("llrd_groups should return a list of dicts like {'params': [...], 'lr': ...}")
    names = {id(p): n for n, p in model.named_parameters()}
    got: dict[str, float] = {}
    for i, g in enumerate(groups):
        if "params" not in g or "lr" not in g:
            raise CheckFailed(f"group {i} lacks 'params' or 'lr': each group is {{'params': [tensors], 'lr': float}}")
        for p in g["params"]:
            name = names.get(id(p))
            if name is None:
                raise CheckFailed(f"group {i} holds a tensor that is not a parameter of the model")
            if name in got:
                raise CheckFailed(f"parameter {name} is in two groups: each parameter may appear once")
            got[name] = float(g["lr"])
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


@register("ex04_3", points=1, timeout=30)
def check_combined_loss(ctx: CheckContext) -> None:
    """``combined_loss(sentiment_logits, domain_logits, sentiment_y, domain_y, domain_weight)``: weighted sum of two CEs."""
    fn = ctx.function("combined_loss")
    s_logits = ctx.randn(12, 2).requires_grad_(True)
    d_logits = ctx.randn(12, 8).requires_grad_(True)
    s_y, d_y = ctx.randint(2, 12), ctx.randint(8, 12)
    pristine = [t.detach().clone() for t in (s_logits, d_logits, s_y, d_y)]
    for w in (0.5, 0.0, 2.0):
        call = f"combined_loss(..., domain_weight={w})"
        # The logits are passed as they are (copies would carry no gradient); they are compared afterwards.
        out = call_safely(fn, s_logits, d_logits, s_y, d_y, w, name="combined_loss", mutable=(0, 1))
        if any(not torch.equal(t.detach(), c) for t, c in zip((s_logits, d_logits, s_y, d_y), pristine)):
            raise CheckFailed("combined_loss changed its inputs in place: compute the losses without modifying the logits or labels")
        expect_tensor(out, f"the result of {call}", shape=())
        expect_finite(out, f"the result of {call}")
        if not out.requires_grad:
            raise CheckFailed(f"the result of {call} has no gradient: return the loss tensor, not loss.item()")
        want = reference_combined_loss(s_logits, d_logits, s_y, d_y, w)
        expect_close(out.detach(), want.detach(), f"the result of {call}", atol=1e-5, rtol=1e-5,
                     hint="cross-entropy of the sentiment head plus domain_weight times the cross-entropy of the domain head")


@register("ex04_4", points=2, timeout=30)
def check_f1_from_cm(ctx: CheckContext) -> None:
    """``f1_from_cm(cm)``: per-class (precision, recall, f1), 0 where a class is never predicted or never present."""
    fn = ctx.function("f1_from_cm")
    random_cm = torch.randint(0, 20, (4, 4), generator=ctx.generator)
    empty = random_cm.clone()
    empty[2, :] = 0
    empty[:, 2] = 0  # class 2 never occurs and is never predicted
    never_predicted = random_cm.clone()
    never_predicted[:, 1] = 0
    for label, cm in (("a random 4×4 confusion matrix", random_cm), ("a matrix where class 2 never occurs", empty),
                      ("a matrix where class 1 is never predicted", never_predicted)):
        out = call_safely(fn, cm, name="f1_from_cm")
        if not isinstance(out, (tuple, list)) or len(out) != 3:
            raise CheckFailed(f"f1_from_cm should return three tensors (precision, recall, f1); got {type(out).__name__}")
        want = f1_from_confusion(cm)
        for name, got, ref in zip(("precision", "recall", "f1"), out, want):
            what = f"{name} for {label}"
            expect_tensor(got, what, shape=ref.shape)
            if bool(torch.isnan(got.double()).any()):
                raise CheckFailed(f"{what} contains NaN: when a denominator is 0 the value is defined as 0 (use torch.where)")
            hint = ""
            if name == "precision":
                hint = "precision = cm[c, c] / cm[:, c].sum() (the column: everything predicted as c)"
            elif name == "recall":
                hint = "recall = cm[c, c] / cm[c, :].sum() (the row: everything that truly is c)"
            expect_close(got.double(), ref, what, atol=1e-6, rtol=1e-6, hint=hint)


@register("ex04_5", points=1, timeout=30)
def check_ece(ctx: CheckContext) -> None:
    """``ece(probs, targets, n_bins)``: count-weighted mean |accuracy − confidence| over equal-width confidence bins."""
    fn = ctx.function("ece")
    probs = torch.softmax(2.5 * ctx.randn(200, 3), dim=1)
    targets = ctx.randint(3, 200)
    for n_bins in (10, 5):
        got = expect_number(call_safely(fn, probs, targets, n_bins, name="ece"), f"the result of ece(probs, targets, {n_bins})")
        want = expected_calibration_error(probs, targets, n_bins)
        expect_close(got, want, f"ece(probs, targets, {n_bins})", atol=1e-6, rtol=1e-5,
                     hint="confidence = probs.max(1); bin by confidence into n_bins equal bins on [0, 1]; "
                          "sum over non-empty bins of (count / N) · |accuracy − mean confidence|")


@register("ex04_6", points=1, timeout=60)
def check_probe_accuracy(ctx: CheckContext) -> None:
    """The linear-probe experiment: ``probe`` trained on cached embeddings, ``probe_accuracy`` its test accuracy."""
    probe = ctx.get("probe")
    test_emb = expect_tensor(ctx.get("test_emb"), "`test_emb`")
    test_y = expect_tensor(ctx.get("test_y"), "`test_y`")
    if not isinstance(probe, nn.Module):
        raise CheckFailed("`probe` should be the nn.Linear you trained on the embeddings")
    acc = expect_number(ctx.get("probe_accuracy"), "`probe_accuracy`", float)
    with torch.no_grad():
        dev = next(probe.parameters()).device
        want = float((probe(test_emb.to(dev)).argmax(1).cpu() == test_y.cpu()).float().mean())
    expect_close(acc, want, "`probe_accuracy`", atol=1e-6, rtol=0,
                 hint="the fraction of test embeddings whose argmax prediction equals the label (a fraction, not %)")
    if want < 0.6:
        raise CheckFailed(f"the probe reaches only {want:.3f} test accuracy: train it for more epochs or with a larger "
                          "learning rate (a linear probe on MiniLM embeddings should clearly beat 0.5)")


@register("ex04_7", points=1, timeout=30)
def check_worst_domain(ctx: CheckContext) -> None:
    """``worst_domain``: read from the per-domain plot, the domain with the lowest accuracy."""
    rows = ctx.get("domain_rows")
    answer = ctx.get("worst_domain")
    if not isinstance(rows, list) or not rows or not all(isinstance(r, dict) and "group" in r for r in rows):
        raise CheckFailed("`domain_rows` should be the list per_group_results(...) returned: run the cell that makes it")
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
