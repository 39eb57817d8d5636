"""Lesson 04 exercise checks: right answers pass, stubs are 'not attempted', typical mistakes get a precise message."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tutorlib.grading.registry import run_check
from tutorlib.transfer import expected_calibration_error, f1_from_confusion, layerwise_lr_groups
from tutorlib.transfer import unfreeze_top as library_unfreeze_top
from mutants_table import own

# The learner's own copies of the library's functions (the library's own objects are flagged as such).
expected_calibration_error, f1_from_confusion, layerwise_lr_groups = (own(expected_calibration_error), own(f1_from_confusion),
                                                                      own(layerwise_lr_groups))
ref_unfreeze_top = own(library_unfreeze_top)


def _stub(*args, **kwargs):
    raise NotImplementedError("ex04_k: write your answer here")


def unfreeze_top(model, k):
    for p in model.parameters():
        p.requires_grad = False
    layers = model.encoder.encoder.layer
    for layer in layers[len(layers) - k:]:
        for p in layer.parameters():
            p.requires_grad = True
    for p in model.head.parameters():
        p.requires_grad = True
    return model


def unfreeze_top_forgets_head(model, k):
    for p in model.parameters():
        p.requires_grad = False
    layers = model.encoder.encoder.layer
    for layer in layers[len(layers) - k:]:
        for p in layer.parameters():
            p.requires_grad = True
    return model


def unfreeze_top_only_adds(model, k):
    layers = model.encoder.encoder.layer
    for layer in layers[len(layers) - k:]:
        for p in layer.parameters():
            p.requires_grad = True
    return model


def llrd_groups(model, lr, decay):
    return [{"params": g["params"], "lr": g["lr"]} for g in layerwise_lr_groups(model, lr, decay)]


def llrd_no_decay(model, lr, decay):
    return [{"params": [p for p in model.parameters() if p.requires_grad], "lr": lr}]


def llrd_with_frozen(model, lr, decay):
    return [{"params": list(model.parameters()), "lr": lr}]


def combined_loss(s, d, sy, dy, w):
    return F.cross_entropy(s, sy) + w * F.cross_entropy(d, dy)


def f1_from_cm(cm):
    return tuple(t.float() for t in f1_from_confusion(cm))


def f1_nan(cm):
    cm = cm.double()
    tp = cm.diag()
    p, r = tp / cm.sum(0), tp / cm.sum(1)
    return p, r, 2 * p * r / (p + r)


def f1_swapped(cm):
    p, r, f = f1_from_confusion(cm)
    return r, p, f


def ece(probs, targets, n_bins):
    return expected_calibration_error(probs, targets, n_bins)


def _run(ex, ns):
    return run_check(ex, ns, device="cpu")


@pytest.mark.parametrize("ex,name,right", [
    ("ex04_1", "unfreeze_top", unfreeze_top), ("ex04_1", "unfreeze_top", ref_unfreeze_top),
    ("ex04_2", "llrd_groups", llrd_groups), ("ex04_3", "combined_loss", combined_loss),
    ("ex04_4", "f1_from_cm", f1_from_cm), ("ex04_5", "ece", ece),
])
def test_function_checks_pass_and_stubs_are_not_attempted(ex, name, right):
    assert "library's own" in _run("ex04_1", {"unfreeze_top": library_unfreeze_top}).message
    state = torch.get_rng_state()
    result = _run(ex, {name: right})
    assert result.status == "pass", result.message
    assert torch.equal(state, torch.get_rng_state())
    assert _run(ex, {name: _stub}).status == "not_attempted"


@pytest.mark.parametrize("ex,name,fn,fragment", [
    ("ex04_1", "unfreeze_top", unfreeze_top_forgets_head, "the head always trains"),
    ("ex04_1", "unfreeze_top", unfreeze_top_only_adds, "first freeze all"),
    ("ex04_2", "llrd_groups", llrd_no_decay, "expected"),
    ("ex04_2", "llrd_groups", llrd_with_frozen, "frozen"),
    ("ex04_3", "combined_loss", lambda s, d, sy, dy, w: combined_loss(s, d, sy, dy, w).item(), "expected a torch.Tensor"),
    ("ex04_3", "combined_loss", lambda s, d, sy, dy, w: F.cross_entropy(s, sy) + F.cross_entropy(d, dy), "domain_weight"),
    ("ex04_4", "f1_from_cm", f1_nan, "NaN"),
    ("ex04_4", "f1_from_cm", f1_swapped, "precision = cm[c, c] / cm[:, c].sum()"),
    ("ex04_5", "ece", lambda p, t, n: float((p.max(1).values - (p.argmax(1) == t).float()).abs().mean()), "non-empty bins"),
])
def test_mistakes_get_precise_messages(ex, name, fn, fragment):
    result = _run(ex, {name: fn})
    assert result.status == "fail" and fragment in result.message, result.message


def test_probe_and_worst_domain_checks():
    torch.manual_seed(0)
    y = torch.arange(40) % 2
    emb = torch.randn(40, 8)
    emb[:, 0] = torch.where(y == 1, emb[:, 0].abs() + 0.1, -emb[:, 0].abs() - 0.1)
    probe = nn.Linear(8, 2)
    with torch.no_grad():
        probe.weight.zero_()
        probe.weight[1, 0] = 5.0
    acc = (probe(emb).argmax(1) == y).float().mean().item()
    ns = {"probe": probe, "test_emb": emb, "test_y": y, "probe_accuracy": acc}
    assert _run("ex04_6", ns).status == "pass"
    assert "fraction" in _run("ex04_6", dict(ns, probe_accuracy=100 * acc)).message
    weak = nn.Linear(8, 2)
    with torch.no_grad():
        weak.weight.zero_()
        weak.bias.copy_(torch.tensor([1.0, 0.0]))
    weak_acc = (weak(emb).argmax(1) == y).float().mean().item()
    assert weak_acc < 0.6 and "train it for more epochs" in _run("ex04_6", dict(ns, probe=weak, probe_accuracy=weak_acc)).message
    rows = [{"group": "hotel", "n": 3, "accuracy": 0.9}, {"group": "book", "n": 3, "accuracy": 0.5}]
    assert _run("ex04_7", {"domain_rows": rows, "worst_domain": "book"}).status == "pass"
    assert "shortest bar" in _run("ex04_7", {"domain_rows": rows, "worst_domain": "hotel"}).message
    assert "not one of the domains" in _run("ex04_7", {"domain_rows": rows, "worst_domain": "Book"}).message
