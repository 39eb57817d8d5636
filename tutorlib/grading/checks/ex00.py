"""Checks for lesson 00 (welcome & toolkit): tensors, metrics, parameters, one training step, normalisation.

Each check compares the learner's function with the reference implementation below, on inputs
drawn from the check's own generator, on the device the course runs on.

>>> import torch
>>> tuple(reference_make_batch(2, torch.device("cpu")).shape)
(2, 1, 8, 8)
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from ..compare import CheckFailed, call_safely, expect_close, expect_finite, expect_number, expect_tensor
from ..registry import CheckContext, register

__all__ = [
    "reference_make_batch",
    "reference_accuracy",
    "reference_count_trainable",
    "reference_train_step",
    "reference_normalize",
]


# --------------------------------------------------------------------------- reference answers


def reference_make_batch(n: int, device: torch.device) -> torch.Tensor:
    """``n`` random 8×8 single-channel images, uniform in [0, 1), float32, on ``device``.

    >>> reference_make_batch(3, torch.device("cpu")).dtype
    torch.float32
    """
    return torch.rand(n, 1, 8, 8, device=device)


def reference_accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of rows whose largest logit is at the label's index.

    >>> reference_accuracy(torch.tensor([[2.0, 1.0], [0.0, 3.0]]), torch.tensor([0, 0]))
    0.5
    """
    return (logits.argmax(dim=1) == labels).float().mean().item()


def reference_count_trainable(model: nn.Module) -> int:
    """Number of values in the parameters that will be trained (``requires_grad``).

    >>> reference_count_trainable(nn.Linear(3, 2))
    8
    """
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def reference_train_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor, optimizer: torch.optim.Optimizer) -> float:
    """One optimisation step with cross-entropy; returns the loss before the step.

    >>> m = nn.Linear(4, 3); opt = torch.optim.SGD(m.parameters(), lr=0.1)
    >>> isinstance(reference_train_step(m, torch.randn(5, 4), torch.tensor([0, 1, 2, 0, 1]), opt), float)
    True
    """
    optimizer.zero_grad()
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    optimizer.step()
    return loss.item()


def reference_normalize(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Standardise each sample (dim 0) to mean 0 and standard deviation 1 over all its other dims.

    >>> reference_normalize(torch.tensor([[1.0, 3.0]]))
    tensor([[-1.0000,  1.0000]])
    """
    dims = tuple(range(1, x.dim()))
    mean = x.mean(dim=dims, keepdim=True)
    std = x.std(dim=dims, keepdim=True, correction=0)
    return (x - mean) / (std + eps)


# --------------------------------------------------------------------------- checks


@register("ex00_1", points=1, timeout=60)
def check_make_batch(ctx: CheckContext) -> None:
    """``make_batch(n, device)``: shape, dtype, device, values in [0, 1), random and seedable."""
    make_batch = ctx.function("make_batch")
    for n in (4, 1):
        call = f"make_batch({n}, {ctx.device})"
        out = call_safely(make_batch, n, ctx.device, name=call)
        ref = reference_make_batch(n, ctx.device)
        what = f"the result of {call}"
        expect_tensor(out, what, shape=ref.shape, dtype=ref.dtype, device=ref.device)
        expect_finite(out, what)
        low, high = out.min().item(), out.max().item()
        if low < 0 or high >= 1:
            raise CheckFailed(
                f"{what} has values from {low:.3g} to {high:.3g}, expected them in [0, 1): use torch.rand (not torch.randn)"
            )
    batch = call_safely(make_batch, 64, ctx.device, name=f"make_batch(64, {ctx.device})")
    if torch.unique(batch).numel() < batch.numel() // 2:
        raise CheckFailed(
            f"make_batch(64, {ctx.device}) has only {torch.unique(batch).numel()} distinct values in {batch.numel()}: "
            "the images should be random (torch.rand)"
        )
    torch.manual_seed(1234)  # run_check restores the learner's random state afterwards
    first = call_safely(make_batch, 4, ctx.device, name="make_batch")
    torch.manual_seed(1234)
    second = call_safely(make_batch, 4, ctx.device, name="make_batch")
    if not torch.equal(first, second):
        raise CheckFailed(
            "make_batch(4, device) gives different images after the same torch.manual_seed(...): "
            "draw the values with torch's generator (torch.rand), not Python's random or NumPy, so runs are reproducible"
        )


@register("ex00_2", points=1, timeout=60)
def check_accuracy(ctx: CheckContext) -> None:
    """``accuracy(logits, labels)``: a Python float equal to the reference on random, perfect and all-wrong batches."""
    accuracy = ctx.function("accuracy")
    logits = ctx.randn(37, 5)
    labels = ctx.randint(5, 37)
    perfect = logits.argmax(dim=1)
    wrong = (perfect + 1) % 5
    for name, lab in (("random labels", labels), ("labels that all match", perfect), ("labels that never match", wrong)):
        call = f"accuracy(logits, labels) with {name}"
        got = expect_number(call_safely(accuracy, logits, lab, name="accuracy"), f"the result of {call}", float)
        want = reference_accuracy(logits, lab)
        if abs(got - want) > 1e-6:
            hint = ""
            correct = round(want * len(lab))
            if abs(got - correct) < 1e-6 and correct not in (0, 1):
                hint = "you returned the number of correct predictions: divide by the batch size"
            elif abs(got - 100 * want) < 1e-4 and want > 0:
                hint = "return a fraction between 0 and 1, not a percentage"
            expect_close(got, want, f"the result of {call}", atol=1e-6, rtol=0, hint=hint)


def _frozen_model(ctx: CheckContext) -> nn.Module:
    model = nn.Sequential(nn.Linear(10, 20), nn.BatchNorm1d(20), nn.ReLU(), nn.Linear(20, 7), nn.Linear(7, 3))
    model[0].requires_grad_(False)  # a frozen first layer, as in transfer learning
    return model.to(ctx.device)


@register("ex00_3", points=1, timeout=60)
def check_count_trainable(ctx: CheckContext) -> None:
    """``count_trainable(model)``: an int equal to the number of trainable values, frozen ones excluded."""
    count_trainable = ctx.function("count_trainable")
    all_frozen = nn.Linear(5, 5).to(ctx.device).requires_grad_(False)
    for label, model in (("a model whose first layer is frozen", _frozen_model(ctx)), ("a fully frozen model", all_frozen)):
        got = expect_number(
            call_safely(count_trainable, model, name="count_trainable"), f"the result of count_trainable on {label}", int
        )
        want = reference_count_trainable(model)
        if got == want:
            continue
        everything = sum(p.numel() for p in model.parameters())
        if got == everything:
            hint = "you counted the frozen parameters too: only count parameters with p.requires_grad"
        elif got == sum(1 for p in model.parameters() if p.requires_grad) or got == len(list(model.parameters())):
            hint = "you counted parameter tensors: add up the number of values in each (p.numel())"
        elif got == sum(v.numel() for v in model.state_dict().values()):
            hint = "state_dict() also holds buffers such as BatchNorm's running statistics: use model.parameters()"
        else:
            hint = "add p.numel() over model.parameters() for the p with p.requires_grad"
        raise CheckFailed(f"wrong trainable-parameter count on {label}: got {got:,}, expected {want:,}: {hint}")


def _small_classifier(ctx: CheckContext) -> nn.Module:
    model = nn.Sequential(nn.Linear(16, 32), nn.Tanh(), nn.Linear(32, 4))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(0.3 * torch.randn(p.shape, generator=ctx.generator))
    return model.to(ctx.device)


def _grads(model: nn.Module) -> list[torch.Tensor | None]:
    return [None if p.grad is None else p.grad.detach().clone() for p in model.parameters()]


@register("ex00_4", points=2, timeout=60)
def check_train_step(ctx: CheckContext) -> None:
    """``train_step(model, x, y, optimizer)``: gradients flow, parameters move like the reference's, the loss falls."""
    train_step = ctx.function("train_step")
    model = _small_classifier(ctx)
    ref_model = copy.deepcopy(model)
    start = [p.detach().clone() for p in model.parameters()]
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    ref_opt = torch.optim.SGD(ref_model.parameters(), lr=0.5)
    x, y = ctx.randn(32, 16), ctx.randint(4, 32)
    tol = {"atol": 1e-5, "rtol": 1e-4}

    for step in (1, 2):
        loss = call_safely(train_step, model, x, y, opt, name="train_step", mutable=(0, 3))
        loss = expect_number(loss, f"the value train_step returned (call {step})", float)
        ref_before = _grads(ref_model)
        ref_loss = reference_train_step(ref_model, x, y, ref_opt)
        grads = _grads(model)
        if any(g is None for g in grads):
            raise CheckFailed(
                "gradient missing: after train_step some parameters have no .grad: call loss.backward() "
                "before optimizer.step() (and do not zero the gradients after the step)"
            )
        if step == 1 and all(torch.equal(p.detach(), s) for p, s in zip(model.parameters(), start)):
            raise CheckFailed("parameters unchanged after train_step: call optimizer.step() after loss.backward()")
        expect_close(
            loss, ref_loss, f"the loss train_step returned (call {step})", **tol,
            hint="return the cross-entropy of model(x) and y computed before the step, as loss.item()",
        )
        ref_grads = _grads(ref_model)
        if step == 2 and all(
            g is not None and r is not None and b is not None and torch.allclose(g, r + b, **tol)
            for g, r, b in zip(grads, ref_grads, ref_before)
        ):
            raise CheckFailed(
                "the gradients of the second call include those of the first: call optimizer.zero_grad() "
                "at the start of train_step, otherwise gradients add up across steps"
            )
        for (name, p), r in zip(model.named_parameters(), ref_model.parameters()):
            expect_close(
                p.detach(), r.detach(), f"parameter {name} after call {step} of train_step", **tol,
                hint="one step should be: optimizer.zero_grad(); loss = F.cross_entropy(model(x), y); loss.backward(); optimizer.step()",
            )

    losses = [call_safely(train_step, model, x, y, opt, name="train_step", mutable=(0, 3)) for _ in range(15)]
    if not losses[-1] < losses[0]:
        raise CheckFailed(
            f"the loss did not fall over 15 more calls of train_step (from {losses[0]:.4f} to {losses[-1]:.4f})"
        )


@register("ex00_5", points=2, timeout=60)
def check_normalize(ctx: CheckContext) -> None:
    """``normalize(x)``: per-sample standardisation, same values as the reference, input left unchanged."""
    normalize = ctx.function("normalize")
    images = 3 * ctx.randn(6, 1, 8, 8) + 2
    table = ctx.randn(5, 10) * torch.linspace(0.5, 4, 10, device=ctx.device)
    table[2] = 7.0  # a constant sample: its standard deviation is 0
    cases = (("a batch of images of shape (6, 1, 8, 8)", images), ("a table of shape (5, 10) with a constant row", table),
             ("a float64 batch", images.double()))
    for label, x in cases:
        what = f"normalize(x) for {label}"
        out = call_safely(normalize, x, name="normalize")
        ref = reference_normalize(x)
        expect_tensor(out, what, shape=ref.shape, dtype=ref.dtype, device=ref.device)
        expect_finite(out, what)
        hint = ""
        dims = tuple(range(1, x.dim()))
        unbiased = (x - x.mean(dim=dims, keepdim=True)) / (x.std(dim=dims, keepdim=True) + 1e-5)
        whole = (x - x.mean()) / (x.std(correction=0) + 1e-5)
        if torch.allclose(out, unbiased, atol=1e-5, rtol=1e-4):
            hint = "you used the unbiased standard deviation: pass correction=0 (unbiased=False)"
        elif torch.allclose(out, whole, atol=1e-5, rtol=1e-4):
            hint = ("you normalised the whole batch at once: take the mean and std of each sample over "
                    "dims 1.. (dim=tuple(range(1, x.dim())), keepdim=True)")
        expect_close(out, ref, what, atol=1e-5, rtol=1e-4, hint=hint)
