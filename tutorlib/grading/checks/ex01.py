"""Checks for lesson 01 (optimizers & schedules): momentum SGD, Adam and LAMB steps, warmup+cosine, LR range plot, a schedule experiment.

The step functions are compared with :mod:`tutorlib.optim` (itself tested against ``torch.optim`` and
the LAMB paper) over several chained steps, on inputs from the check's private generator.

>>> import torch
>>> from tutorlib.optim import sgd_momentum_step
>>> p, b = sgd_momentum_step(torch.ones(2), torch.ones(2), None, 0.1, 0.9)
>>> [round(v, 4) for v in p.tolist()]
[0.9, 0.9]
"""

from __future__ import annotations

import math
from typing import Any

import torch

from tutorlib.optim import adam_step, lamb_step, sgd_momentum_step, warmup_cosine

from ..compare import CheckFailed, call_safely, describe, expect_close, expect_finite, expect_number, expect_tensor
from ..registry import CheckContext, register

__all__: list[str] = []

TOL = {"atol": 1e-5, "rtol": 1e-4}


def _pair(out: Any, n: int, what: str) -> tuple[torch.Tensor, ...]:
    if not isinstance(out, (tuple, list)) or len(out) != n:
        raise CheckFailed(f"{what} returned {describe(out)}, expected a tuple of {n} tensors")
    return tuple(out)


def _close(a: torch.Tensor, b: torch.Tensor, **tol: float) -> bool:
    return a.shape == b.shape and bool(torch.allclose(a.double(), b.double(), **tol))


@register("ex01_1", points=2, timeout=60)
def check_sgd_momentum(ctx: CheckContext) -> str:
    """``sgd_momentum_step(param, grad, buf, lr, momentum, nesterov=False)`` over several steps, both variants."""
    fn = ctx.function("sgd_momentum_step")
    for nesterov in (False, True):
        p_ref = p = ctx.randn(4, 3)
        buf_ref = buf = None
        for step in range(1, 5):
            g = ctx.randn(4, 3)
            call = f"sgd_momentum_step(..., nesterov={nesterov}) at step {step}" + (" (buf=None)" if step == 1 else "")
            out = call_safely(fn, p, g, buf, 0.1, 0.9, nesterov=nesterov, name="sgd_momentum_step")
            new_p, new_buf = _pair(out, 2, call)
            expect_tensor(new_p, f"the new param from {call}", shape=p.shape, dtype=p.dtype, device=p.device)
            expect_tensor(new_buf, f"the new buf from {call}", shape=p.shape, dtype=p.dtype, device=p.device)
            expect_finite(new_p, f"the new param from {call}")
            want_p, want_buf = sgd_momentum_step(p_ref, g, buf_ref, 0.1, 0.9, nesterov=nesterov)
            hint = ""
            if step == 1 and not _close(new_buf, want_buf, **TOL):
                hint = "on the first step (buf is None) the velocity is just the gradient: buf = grad.clone()"
            elif nesterov and buf_ref is not None:
                heavy, _ = sgd_momentum_step(p_ref, g, buf_ref, 0.1, 0.9, nesterov=False)
                if _close(new_p, heavy, **TOL):
                    hint = "with nesterov=True step along grad + momentum * new_buf, not along new_buf"
            elif buf_ref is not None and _close(new_buf, 0.9 * buf_ref + 0.1 * g, **TOL):
                hint = "torch's momentum has no (1 - momentum) factor: new_buf = momentum * buf + grad"
            expect_close(new_buf, want_buf, f"the new buf from {call}", **TOL, hint=hint)
            expect_close(new_p, want_p, f"the new param from {call}", **TOL, hint=hint or "new_param = param - lr * direction")
            p, buf, p_ref, buf_ref = new_p, new_buf, want_p, want_buf
    return "matches torch.optim.SGD(momentum=0.9) with and without Nesterov over 4 steps"


@register("ex01_2", points=2, timeout=60)
def check_adam(ctx: CheckContext) -> str:
    """``adam_step(param, grad, m, v, step, lr, betas=(0.9, 0.999), eps=1e-8)`` over several steps."""
    fn = ctx.function("adam_step")
    p = p_ref = ctx.randn(5, 2)
    m = m_ref = torch.zeros_like(p)
    v = v_ref = torch.zeros_like(p)
    betas, lr, eps = (0.8, 0.99), 0.05, 1e-8
    for step in range(1, 6):
        g = ctx.randn(5, 2) * 2
        call = f"adam_step(param, grad, m, v, step={step}, lr={lr}, betas={betas})"
        out = call_safely(fn, p, g, m, v, step, lr, betas, eps, name="adam_step")
        new_p, new_m, new_v = _pair(out, 3, call)
        for t, label in ((new_p, "param"), (new_m, "m"), (new_v, "v")):
            expect_tensor(t, f"the new {label} from {call}", shape=p.shape, dtype=p.dtype, device=p.device)
            expect_finite(t, f"the new {label} from {call}")
        want_p, want_m, want_v = adam_step(p_ref, g, m_ref, v_ref, step, lr, betas, eps)
        expect_close(new_m, want_m, f"the new m from {call}", **TOL, hint="m = beta1 * m + (1 - beta1) * grad")
        expect_close(new_v, want_v, f"the new v from {call}", **TOL, hint="v = beta2 * v + (1 - beta2) * grad**2")
        hint = ""
        no_bc = p_ref - lr * want_m / (want_v.sqrt() + eps)
        if _close(new_p, no_bc, **TOL):
            hint = "bias-correct the moments first: m_hat = m / (1 - beta1**step), v_hat = v / (1 - beta2**step)"
        elif step > 1:
            off = adam_step(p_ref, g, m_ref, v_ref, step + 1, lr, betas, eps)[0]
            if _close(new_p, off, **TOL):
                hint = "`step` is already the number of this update (1 on the first): use beta**step, not beta**(step + 1)"
        hint = hint or "param - lr * m_hat / (sqrt(v_hat) + eps): eps goes outside the square root"
        expect_close(new_p, want_p, f"the new param from {call}", **TOL, hint=hint)
        p, m, v, p_ref, m_ref, v_ref = new_p, new_m, new_v, want_p, want_m, want_v
    return "matches torch.optim.Adam over 5 steps"


@register("ex01_3", points=2, timeout=60)
def check_lamb(ctx: CheckContext) -> str:
    """``lamb_step(param, grad, m, v, step, lr, betas, eps=1e-6, weight_decay=0.0)`` over several steps."""
    fn = ctx.function("lamb_step")
    p = p_ref = ctx.randn(6, 4)
    m = m_ref = torch.zeros_like(p)
    v = v_ref = torch.zeros_like(p)
    betas, lr, eps, wd = (0.9, 0.999), 0.05, 1e-6, 0.01
    for step in range(1, 5):
        g = ctx.randn(6, 4)
        call = f"lamb_step(param, grad, m, v, step={step}, lr={lr}, betas={betas}, eps={eps}, weight_decay={wd})"
        out = call_safely(fn, p, g, m, v, step, lr, betas, eps, wd, name="lamb_step")
        new_p, new_m, new_v = _pair(out, 3, call)
        for t, label in ((new_p, "param"), (new_m, "m"), (new_v, "v")):
            expect_tensor(t, f"the new {label} from {call}", shape=p.shape, dtype=p.dtype, device=p.device)
            expect_finite(t, f"the new {label} from {call}")
        want_p, want_m, want_v = lamb_step(p_ref, g, m_ref, v_ref, step, lr, betas, eps, wd)
        expect_close(new_m, want_m, f"the new m from {call}", **TOL, hint="m and v are updated exactly as in Adam")
        expect_close(new_v, want_v, f"the new v from {call}", **TOL, hint="m and v are updated exactly as in Adam")
        m_hat, v_hat = want_m / (1 - betas[0] ** step), want_v / (1 - betas[1] ** step)
        r = m_hat / (v_hat.sqrt() + eps)
        u = r + wd * p_ref
        hint = ""
        if _close(new_p, p_ref - lr * u, **TOL):
            hint = "you left out the trust ratio: scale the update by ||param|| / ||update|| (one number per layer)"
        elif _close(new_p, p_ref - lr * p_ref.norm() / r.norm() * u, **TOL):
            hint = "the trust ratio divides by the norm of the whole update r + weight_decay * param, not of r alone"
        elif _close(new_p, p_ref - lr * p_ref.norm() / u.norm() * r, **TOL):
            hint = "apply the weight decay inside the scaled update: param - lr * ratio * (r + weight_decay * param)"
        expect_close(new_p, want_p, f"the new param from {call}", **TOL,
                     hint=hint or "param - lr * (||param|| / ||u||) * u with u = m_hat / (sqrt(v_hat) + eps) + weight_decay * param")
        p, m, v, p_ref, m_ref, v_ref = new_p, new_m, new_v, want_p, want_m, want_v
    return "follows Algorithm 2 of You et al. (2020) over 4 steps"


@register("ex01_4", points=1, timeout=60)
def check_warmup_cosine(ctx: CheckContext) -> str:
    """``warmup_cosine(step, total_steps, warmup_steps, base_lr, min_lr=0.0)`` on a grid of cases."""
    fn = ctx.function("warmup_cosine")
    cases = [(s, 100, 10, 0.1, 0.0) for s in (0, 1, 5, 9, 10, 11, 40, 55, 99, 100)]
    cases += [(s, 50, 0, 1.0, 0.0) for s in (0, 25, 50)]
    cases += [(s, 20, 4, 2e-3, 1e-4) for s in (0, 2, 4, 12, 20)]
    for step, total, warm, base, low in cases:
        call = f"warmup_cosine({step}, total_steps={total}, warmup_steps={warm}, base_lr={base}, min_lr={low})"
        got = expect_number(call_safely(fn, step, total, warm, base, low, name="warmup_cosine"), f"the result of {call}")
        want = warmup_cosine(step, total, warm, base, low)
        hint = ""
        if step < warm and abs(got - base * (step + 1) / warm) < 1e-9:
            hint = "warmup starts at 0: lr = base_lr * step / warmup_steps (the first step has lr 0, as in transformers)"
        elif step >= warm and low and abs(got - base * 0.5 * (1 + math.cos(math.pi * (step - warm) / (total - warm)))) < 1e-9:
            hint = "decay towards min_lr: min_lr + (base_lr - min_lr) * 0.5 * (1 + cos(pi * progress))"
        elif step >= warm and abs(got - (low + (base - low) * 0.5 * (1 + math.cos(math.pi * step / total)))) < 1e-9 and warm:
            hint = "measure progress from the end of warmup: progress = (step - warmup_steps) / (total_steps - warmup_steps)"
        expect_close(got, want, f"the result of {call}", atol=1e-9, rtol=1e-7, hint=hint)
    return "linear warmup then cosine decay, as transformers.get_cosine_schedule_with_warmup"


@register("ex01_5", points=1, timeout=60)
def check_chosen_lr(ctx: CheckContext) -> str:
    """``chosen_lr`` read from the LR range plot of ``finder``: inside the region where the loss falls."""
    finder = ctx.get("finder")
    for attr in ("lrs", "smoothed", "min_loss_lr"):
        if not hasattr(finder, attr):
            raise CheckFailed(f"`finder` is {describe(finder)}, expected the result of tutorlib.optim.lr_find(...): "
                              "run the cell that computes it")
    lr = expect_number(ctx.get("chosen_lr"), "`chosen_lr`")
    if not (lr > 0 and math.isfinite(lr)):
        raise CheckFailed(f"`chosen_lr` is {lr}, expected a positive learning rate such as 3e-3")
    lrs, smooth = list(finder.lrs), list(finder.smoothed)
    if lr < lrs[0] or lr > lrs[-1]:
        raise CheckFailed(f"`chosen_lr` = {lr:.3g} lies outside the range the test tried ({lrs[0]:.2g} to {lrs[-1]:.2g}): "
                          "read a rate off the plot's x axis")
    if lr > finder.min_loss_lr:
        raise CheckFailed(f"`chosen_lr` = {lr:.3g} is past the minimum of the curve (at {finder.min_loss_lr:.3g}): there the "
                          "loss is already rising or about to explode; pick a smaller rate where it still falls steeply")
    start, low = smooth[0], min(s for s in smooth if math.isfinite(s))
    at = finder.loss_at(lr)
    if start - at < 0.1 * (start - low):
        raise CheckFailed(f"`chosen_lr` = {lr:.3g} sits on the flat start of the curve (smoothed loss {at:.3f}, start "
                          f"{start:.3f}, minimum {low:.3f}): training would crawl; pick a larger rate where the loss falls fast")
    return f"{lr:.3g} is in the falling part of the curve (minimum at {finder.min_loss_lr:.3g})"


def _match_warmup_cosine(lrs: list[float]) -> int | None:
    """The warmup length for which ``lrs`` (rates after steps 1..n) fit ``warmup_cosine`` with some base and min rate."""
    total = len(lrs)
    y = torch.tensor(lrs, dtype=torch.float64)
    scale = float(y.abs().max())
    for warm in range(0, total + 1):
        a, b = [], []
        for i in range(total):
            s_ = i + 1
            if s_ < warm:
                a.append(s_ / warm)
                b.append(0.0)
            else:
                c = warmup_cosine(s_, total, warm, 1.0, 0.0)
                a.append(c)
                b.append(1.0 - c)
        design = torch.tensor([a, b], dtype=torch.float64).T
        coef = torch.linalg.lstsq(design, y.unsqueeze(1)).solution
        resid = float((design @ coef - y.unsqueeze(1)).abs().max())
        if resid <= 1e-6 * scale and float(coef[0]) >= float(coef[1]) - 1e-12:
            return warm
    return None


def _is_history(h: Any) -> bool:
    return hasattr(h, "epochs") and hasattr(h, "steps") and isinstance(getattr(h, "epochs"), list)


@register("ex01_6", points=2, timeout=60)
def check_schedule_experiment(ctx: CheckContext) -> str:
    """``schedule_runs`` (two Trainer histories) and ``best_schedule``: the warmup_cosine run really followed the schedule."""
    runs = ctx.get("schedule_runs")
    if not isinstance(runs, dict) or set(runs) != {"constant", "warmup_cosine"}:
        keys = sorted(runs) if isinstance(runs, dict) else describe(runs)
        raise CheckFailed(f"`schedule_runs` should be a dict with keys 'constant' and 'warmup_cosine', got {keys}")
    for name, h in runs.items():
        if not _is_history(h):
            raise CheckFailed(f"schedule_runs[{name!r}] is {describe(h)}, expected the History returned by Trainer.fit(...)")
        if not h.epochs or "val_accuracy" not in h.epochs[-1]:
            raise CheckFailed(f"schedule_runs[{name!r}] has no val_accuracy: pass the validation set to fit(train, val, ...)")
        if not h.steps:
            raise CheckFailed(f"schedule_runs[{name!r}] recorded no optimizer steps")
    const = [s["lr"] for s in runs["constant"].steps]
    if max(const) - min(const) > 1e-12 * max(1.0, max(const)):
        raise CheckFailed(f"the 'constant' run's learning rate changed from {max(const):.3g} to {min(const):.3g}: "
                          "train it without a scheduler")
    if len(runs["constant"].epochs) != len(runs["warmup_cosine"].epochs):
        raise CheckFailed("the two runs trained for different numbers of epochs: use the same epochs for a fair comparison")
    lrs = [s["lr"] for s in runs["warmup_cosine"].steps]
    total = len(lrs)
    if max(lrs) - min(lrs) < 1e-12:
        raise CheckFailed("the 'warmup_cosine' run's learning rate never changed: pass scheduler=... to the Trainer "
                          "(e.g. lambda opt, total: LambdaLR(opt, lambda s: warmup_cosine(s, total, warmup, 1.0)))")
    matched = _match_warmup_cosine(lrs)
    if matched is None:
        raise CheckFailed(
            f"the learning rates the Trainer recorded for 'warmup_cosine' (history.steps: {total} steps, from "
            f"{lrs[0]:.3g}, peak {max(lrs):.3g}, last {lrs[-1]:.3g}) do not follow warmup_cosine over the run's "
            f"{total} optimizer steps: build the schedule with the total number of steps (the Trainer passes it to a "
            "scheduler factory f(optimizer, total_steps)) and step it once per optimizer step")
    best = ctx.get("best_schedule")
    accs = {k: float(h.epochs[-1]["val_accuracy"]) for k, h in runs.items()}
    if best not in accs:
        raise CheckFailed(f"`best_schedule` is {best!r}, expected 'constant' or 'warmup_cosine'")
    if accs[best] < max(accs.values()):
        raise CheckFailed(f"`best_schedule` is {best!r} but its final validation accuracy ({accs[best]:.4f}) is below the "
                          f"other run's ({max(accs.values()):.4f}): report the one you measured as better")
    return f"warmup of {matched} steps then cosine over {total}; final val accuracy " + \
        ", ".join(f"{k} {v:.3f}" for k, v in accs.items())
