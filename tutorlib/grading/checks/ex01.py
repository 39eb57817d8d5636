"""Checks for lesson 01 (optimizers & schedules): momentum SGD, Adam and LAMB steps, warmup+cosine, LR range plot, a schedule experiment.

Every check follows the protocol (:mod:`tutorlib.grading.protocol`): ``inputs`` draws the gradients from
the generator it is given, ``call`` chains the learner's step function over several steps (feeding its
own outputs back) and returns them, ``compare`` replays the chain with :mod:`tutorlib.optim` (itself
tested against ``torch.optim`` and the LAMB paper) and names the first step that differs.

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

from ..compare import CheckFailed, describe, expect_close, expect_finite, expect_number, expect_tensor
from ..protocol import Learner, exercise

__all__: list[str] = []

TOL = {"atol": 1e-5, "rtol": 1e-4}


def _pair(out: Any, n: int, what: str) -> tuple[torch.Tensor, ...]:
    if not isinstance(out, (tuple, list)) or len(out) != n:
        raise CheckFailed(f"{what} returned {describe(out)}, expected a tuple of {n} tensors")
    return tuple(out)


def _close(a: torch.Tensor, b: torch.Tensor, **tol: float) -> bool:
    return a.shape == b.shape and bool(torch.allclose(a.double().cpu(), b.double().cpu(), **tol))


def _ok(out: Any, n: int) -> bool:
    return isinstance(out, (tuple, list)) and len(out) == n and all(isinstance(t, torch.Tensor) for t in out)


def _tensors(out: tuple, p: torch.Tensor, labels: tuple[str, ...], call: str, device: torch.device) -> list[torch.Tensor]:
    got = []
    for t, label in zip(out, labels):
        expect_tensor(t, f"the new {label} from {call}", shape=p.shape, dtype=p.dtype, device=device)
        expect_finite(t, f"the new {label} from {call}")
        got.append(t.detach().cpu())
    return got


@exercise("ex01_1", points=2, timeout=60)
class SGDMomentumCheck:
    """``sgd_momentum_step(param, grad, buf, lr, momentum, nesterov=False)`` over several steps, both variants."""

    names = ("sgd_momentum_step",)
    reference = ("tutorlib.optim.sgd_momentum_step",)
    hints = (
        "the velocity buffer remembers past gradients: on the first step (buf is None) it is just the gradient.",
        "torch's rule has no (1 - momentum) factor: new_buf = momentum * buf + grad; then step along new_buf.",
        "with nesterov=True the step direction is grad + momentum * new_buf; return (new_param, new_buf) as new tensors.",
    )

    def inputs(self, gen: torch.Generator) -> dict:
        return {"lr": 0.1, "momentum": 0.9,
                "runs": [{"nesterov": nest, "p0": torch.randn(4, 3, generator=gen),
                          "grads": [torch.randn(4, 3, generator=gen) for _ in range(4)]} for nest in (False, True)]}

    def call(self, learner: Learner, inputs: dict) -> list:
        fn, dev, runs = learner.function("sgd_momentum_step"), learner.device, []
        for run in inputs["runs"]:
            p, buf, outs = run["p0"].to(dev), None, []
            for g in run["grads"]:
                out = learner.call(fn, p, g.to(dev), buf, inputs["lr"], inputs["momentum"], nesterov=run["nesterov"],
                                   name="sgd_momentum_step")
                outs.append(out)
                if not _ok(out, 2):
                    break
                p, buf = out
            runs.append(outs)
        return runs

    def compare(self, inputs: dict, outputs: list) -> str:
        lr, mom = inputs["lr"], inputs["momentum"]
        for run, outs in zip(inputs["runs"], outputs):
            nesterov = run["nesterov"]
            p_ref, buf_ref = run["p0"], None
            for step, (g, out) in enumerate(zip(run["grads"], outs), start=1):
                call = f"sgd_momentum_step(..., nesterov={nesterov}) at step {step}" + (" (buf=None)" if step == 1 else "")
                new_p, new_buf = _tensors(_pair(out, 2, call), p_ref, ("param", "buf"), call, self.device)
                want_p, want_buf = sgd_momentum_step(p_ref, g, buf_ref, lr, mom, nesterov=nesterov)
                hint = ""
                if step == 1 and not _close(new_buf, want_buf, **TOL):
                    hint = "on the first step (buf is None) the velocity is just the gradient: buf = grad.clone()"
                elif nesterov and buf_ref is not None:
                    heavy, _ = sgd_momentum_step(p_ref, g, buf_ref, lr, mom, nesterov=False)
                    if _close(new_p, heavy, **TOL):
                        hint = "with nesterov=True step along grad + momentum * new_buf, not along new_buf"
                if not hint and buf_ref is not None and _close(new_buf, mom * buf_ref + (1 - mom) * g, **TOL):
                    hint = "torch's momentum has no (1 - momentum) factor: new_buf = momentum * buf + grad"
                expect_close(new_buf, want_buf, f"the new buf from {call}", **TOL, hint=hint)
                expect_close(new_p, want_p, f"the new param from {call}", **TOL, hint=hint or "new_param = param - lr * direction")
                p_ref, buf_ref = want_p, want_buf
            if len(outs) != len(run["grads"]):
                raise CheckFailed(f"sgd_momentum_step(..., nesterov={nesterov}) stopped after {len(outs)} steps")
        return "matches torch.optim.SGD(momentum=0.9) with and without Nesterov over 4 steps"


def _moment_chain(learner: Learner, fn: Any, inputs: dict, extra: tuple, name: str) -> list:
    dev = learner.device
    p = inputs["p0"].to(dev)
    m, v, outs = torch.zeros_like(p), torch.zeros_like(p), []
    for step, g in enumerate(inputs["grads"], start=1):
        out = learner.call(fn, p, g.to(dev), m, v, step, inputs["lr"], inputs["betas"], *extra, name=name)
        outs.append(out)
        if not _ok(out, 3):
            break
        p, m, v = out
    return outs


@exercise("ex01_2", points=2, timeout=60)
class AdamCheck:
    """``adam_step(param, grad, m, v, step, lr, betas=(0.9, 0.999), eps=1e-8)`` over several steps."""

    names = ("adam_step",)
    reference = ("tutorlib.optim.adam_step",)
    hints = (
        "update the two moving averages first: m with the gradient, v with the squared gradient.",
        "m and v start at zero, so early on they are too small: divide by (1 - beta**step) (bias correction).",
        "param - lr * m_hat / (sqrt(v_hat) + eps): eps goes outside the square root.",
    )

    def inputs(self, gen: torch.Generator) -> dict:
        return {"p0": torch.randn(5, 2, generator=gen), "grads": [2 * torch.randn(5, 2, generator=gen) for _ in range(5)],
                "betas": (0.8, 0.99), "lr": 0.05, "eps": 1e-8}

    def call(self, learner: Learner, inputs: dict) -> list:
        return _moment_chain(learner, learner.function("adam_step"), inputs, (inputs["eps"],), "adam_step")

    def compare(self, inputs: dict, outputs: list) -> str:
        betas, lr, eps = tuple(inputs["betas"]), inputs["lr"], inputs["eps"]
        p_ref = inputs["p0"]
        m_ref, v_ref = torch.zeros_like(p_ref), torch.zeros_like(p_ref)
        for step, (g, out) in enumerate(zip(inputs["grads"], outputs), start=1):
            call = f"adam_step(param, grad, m, v, step={step}, lr={lr}, betas={betas})"
            new_p, new_m, new_v = _tensors(_pair(out, 3, call), p_ref, ("param", "m", "v"), call, self.device)
            want_p, want_m, want_v = adam_step(p_ref, g, m_ref, v_ref, step, lr, betas, eps)
            expect_close(new_m, want_m, f"the new m from {call}", **TOL, hint="m = beta1 * m + (1 - beta1) * grad")
            expect_close(new_v, want_v, f"the new v from {call}", **TOL, hint="v = beta2 * v + (1 - beta2) * grad**2")
            hint = ""
            no_bc = p_ref - lr * want_m / (want_v.sqrt() + eps)
            if _close(new_p, no_bc, **TOL):
                hint = "bias-correct the moments first: m_hat = m / (1 - beta1**step), v_hat = v / (1 - beta2**step)"
            else:
                off = adam_step(p_ref, g, m_ref, v_ref, step + 1, lr, betas, eps)[0]
                if _close(new_p, off, **TOL):
                    hint = "`step` is already the number of this update (1 on the first): use beta**step, not beta**(step + 1)"
            hint = hint or "param - lr * m_hat / (sqrt(v_hat) + eps): eps goes outside the square root"
            expect_close(new_p, want_p, f"the new param from {call}", **TOL, hint=hint)
            p_ref, m_ref, v_ref = want_p, want_m, want_v
        if len(outputs) != len(inputs["grads"]):
            raise CheckFailed(f"adam_step stopped after {len(outputs)} steps")
        return "matches torch.optim.Adam over 5 steps"


@exercise("ex01_3", points=2, timeout=60)
class LambCheck:
    """``lamb_step(param, grad, m, v, step, lr, betas, eps=1e-6, weight_decay=0.0)`` over several steps."""

    names = ("lamb_step",)
    reference = ("tutorlib.optim.lamb_step", "tutorlib.optim.adam_step")
    hints = (
        "m and v (and their bias correction) are exactly Adam's; what changes is how the update is scaled.",
        "the update u is Adam's direction plus weight_decay * param; LAMB scales it by a trust ratio, one number per tensor.",
        "trust ratio = ||param|| / ||u|| (both norms of whole tensors); new param = param - lr * ratio * u.",
    )

    def inputs(self, gen: torch.Generator) -> dict:
        return {"p0": torch.randn(6, 4, generator=gen), "grads": [torch.randn(6, 4, generator=gen) for _ in range(4)],
                "betas": (0.9, 0.999), "lr": 0.05, "eps": 1e-6, "wd": 0.01}

    def call(self, learner: Learner, inputs: dict) -> list:
        return _moment_chain(learner, learner.function("lamb_step"), inputs, (inputs["eps"], inputs["wd"]), "lamb_step")

    def compare(self, inputs: dict, outputs: list) -> str:
        betas, lr, eps, wd = tuple(inputs["betas"]), inputs["lr"], inputs["eps"], inputs["wd"]
        p_ref = inputs["p0"]
        m_ref, v_ref = torch.zeros_like(p_ref), torch.zeros_like(p_ref)
        for step, (g, out) in enumerate(zip(inputs["grads"], outputs), start=1):
            call = f"lamb_step(param, grad, m, v, step={step}, lr={lr}, betas={betas}, eps={eps}, weight_decay={wd})"
            new_p, new_m, new_v = _tensors(_pair(out, 3, call), p_ref, ("param", "m", "v"), call, self.device)
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
            elif _close(new_p, p_ref - lr * r, **TOL):
                hint = "that is Adam's update: LAMB adds weight_decay * param and scales by the trust ratio ||param|| / ||update||"
            expect_close(new_p, want_p, f"the new param from {call}", **TOL,
                         hint=hint or "param - lr * (||param|| / ||u||) * u with u = m_hat / (sqrt(v_hat) + eps) + weight_decay * param")
            p_ref, m_ref, v_ref = want_p, want_m, want_v
        if len(outputs) != len(inputs["grads"]):
            raise CheckFailed(f"lamb_step stopped after {len(outputs)} steps")
        return "follows Algorithm 2 of You et al. (2020) over 4 steps"


@exercise("ex01_4", points=1, timeout=60)
class WarmupCosineCheck:
    """``warmup_cosine(step, total_steps, warmup_steps, base_lr, min_lr=0.0)`` on a grid of cases."""

    names = ("warmup_cosine",)
    reference = ("tutorlib.optim.warmup_cosine",)
    hints = (
        "two pieces: a straight line from 0 up to base_lr during warmup, then half a cosine down to min_lr.",
        "during warmup lr = base_lr * step / warmup_steps (0 at step 0); afterwards progress = (step - warmup) / (total - warmup).",
        "after warmup: min_lr + (base_lr - min_lr) * 0.5 * (1 + cos(pi * progress)); return a Python float.",
    )

    def inputs(self, gen: torch.Generator) -> dict:
        total, warm = int(torch.randint(60, 140, (1,), generator=gen)), int(torch.randint(5, 15, (1,), generator=gen))
        cases = [(s, total, warm, 0.1, 0.0) for s in sorted({0, 1, warm // 2, warm - 1, warm, warm + 1, total // 2, total - 1, total})]
        cases += [(s, 50, 0, 1.0, 0.0) for s in (0, 25, 50)]
        cases += [(s, 20, 4, 2e-3, 1e-4) for s in (0, 2, 4, 12, 20)]
        return {"cases": cases}

    def call(self, learner: Learner, inputs: dict) -> list:
        fn = learner.function("warmup_cosine")
        return [learner.call(fn, *c, name="warmup_cosine") for c in inputs["cases"]]

    def compare(self, inputs: dict, outputs: list) -> str:
        for (step, total, warm, base, low), got in zip(inputs["cases"], outputs):
            call = f"warmup_cosine({step}, total_steps={total}, warmup_steps={warm}, base_lr={base}, min_lr={low})"
            got = expect_number(got, f"the result of {call}")
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


@exercise("ex01_5", points=1, timeout=60)
class ChosenLRCheck:
    """``chosen_lr`` read from the LR range plot of ``finder``: inside the region where the loss falls.

    ``call`` returns the curve the learner's ``finder`` measured; ``compare`` finds the curve's minimum
    and flat start itself (the ``min_loss_lr`` the finder reports is not trusted).
    """

    names = ("finder", "chosen_lr")
    hints = (
        "look at the plot of finder: the x axis is the learning rate (log scale), the y axis the smoothed loss.",
        "pick a rate where the smoothed loss falls steeply, well before its minimum (finder.min_loss_lr), not on the flat start.",
        "a rate about 10 times smaller than the minimum's is a good rule of thumb; store it as a Python float in chosen_lr.",
    )

    def inputs(self, gen: torch.Generator) -> dict:
        return {}

    def call(self, learner: Learner, inputs: dict) -> dict:
        finder = learner.get("finder")
        for attr in ("lrs", "smoothed", "min_loss_lr"):
            if not hasattr(finder, attr):
                raise CheckFailed(f"`finder` is {describe(finder)}, expected the result of tutorlib.optim.lr_find(...): "
                                  "run the cell that computes it")
        return {"lrs": [float(v) for v in finder.lrs], "smoothed": [float(v) for v in finder.smoothed],
                "chosen_lr": learner.get("chosen_lr")}

    def compare(self, inputs: dict, outputs: dict) -> str:
        lr = expect_number(outputs["chosen_lr"], "`chosen_lr`")
        if not (lr > 0 and math.isfinite(lr)):
            raise CheckFailed(f"`chosen_lr` is {lr}, expected a positive learning rate such as 3e-3")
        lrs, smooth = list(outputs["lrs"]), list(outputs["smoothed"])
        if len(lrs) < 3 or len(lrs) != len(smooth):
            raise CheckFailed(f"`finder` holds {len(lrs)} rates and {len(smooth)} losses: run lr_find(...) again")
        if lr < lrs[0] or lr > lrs[-1]:
            raise CheckFailed(f"`chosen_lr` = {lr:.3g} lies outside the range the test tried ({lrs[0]:.2g} to {lrs[-1]:.2g}): "
                              "read a rate off the plot's x axis")
        finite = [(s, r) for s, r in zip(smooth, lrs) if math.isfinite(s)]
        low, min_lr = min(finite)
        if lr > min_lr:
            raise CheckFailed(f"`chosen_lr` = {lr:.3g} is past the minimum of the curve (at {min_lr:.3g}): there the "
                              "loss is already rising or about to explode; pick a smaller rate where it still falls steeply")
        start = smooth[0]
        at = smooth[min(range(len(lrs)), key=lambda k: abs(math.log(lrs[k]) - math.log(lr)))]
        if start - at < 0.1 * (start - low):
            raise CheckFailed(f"`chosen_lr` = {lr:.3g} sits on the flat start of the curve (smoothed loss {at:.3f}, start "
                              f"{start:.3f}, minimum {low:.3f}): training would crawl; pick a larger rate where the loss falls fast")
        return f"{lr:.3g} is in the falling part of the curve (minimum at {min_lr:.3g})"


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


@exercise("ex01_6", points=2, timeout=60)
class ScheduleExperimentCheck:
    """``schedule_runs`` (two Trainer histories) and ``best_schedule``: the warmup_cosine run really followed the schedule.

    ``call`` returns the rates and validation accuracies the histories recorded; ``compare`` fits the
    schedule to the recorded rates and picks the better run itself, so a made-up ``best_schedule`` fails.
    """

    names = ("schedule_runs", "best_schedule")
    hints = (
        "train the same model twice for the same epochs: once with a constant rate, once with scheduler=... .",
        "the Trainer calls a scheduler factory f(optimizer, total_steps): build warmup_cosine over that total and step it once per optimizer step.",
        "best_schedule is the key of the run with the higher final val_accuracy in its history (history.epochs[-1]).",
    )

    def inputs(self, gen: torch.Generator) -> dict:
        return {}

    def call(self, learner: Learner, inputs: dict) -> dict:
        runs = learner.get("schedule_runs")
        if not isinstance(runs, dict) or set(runs) != {"constant", "warmup_cosine"}:
            keys = sorted(runs) if isinstance(runs, dict) else describe(runs)
            raise CheckFailed(f"`schedule_runs` should be a dict with keys 'constant' and 'warmup_cosine', got {keys}")
        out: dict[str, Any] = {}
        for name, h in runs.items():
            if not _is_history(h):
                raise CheckFailed(f"schedule_runs[{name!r}] is {describe(h)}, expected the History returned by Trainer.fit(...)")
            out[name] = {"lrs": [float(s["lr"]) for s in h.steps if "lr" in s],
                         "val_accuracy": [e.get("val_accuracy") for e in h.epochs]}
        return {"runs": out, "best": learner.get("best_schedule")}

    def compare(self, inputs: dict, outputs: dict) -> str:
        runs = outputs["runs"]
        for name, h in runs.items():
            if not h["val_accuracy"] or h["val_accuracy"][-1] is None:
                raise CheckFailed(f"schedule_runs[{name!r}] has no val_accuracy: pass the validation set to fit(train, val, ...)")
            if not h["lrs"]:
                raise CheckFailed(f"schedule_runs[{name!r}] recorded no optimizer steps")
        const = runs["constant"]["lrs"]
        if max(const) - min(const) > 1e-12 * max(1.0, max(const)):
            raise CheckFailed(f"the 'constant' run's learning rate changed from {max(const):.3g} to {min(const):.3g}: "
                              "train it without a scheduler")
        if len(runs["constant"]["val_accuracy"]) != len(runs["warmup_cosine"]["val_accuracy"]):
            raise CheckFailed("the two runs trained for different numbers of epochs: use the same epochs for a fair comparison")
        lrs = runs["warmup_cosine"]["lrs"]
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
        best = outputs["best"]
        accs = {k: expect_number(h["val_accuracy"][-1], f"the final val_accuracy of schedule_runs[{k!r}]") for k, h in runs.items()}
        if best not in accs:
            raise CheckFailed(f"`best_schedule` is {best!r}, expected 'constant' or 'warmup_cosine'")
        if accs[best] < max(accs.values()):
            raise CheckFailed(f"`best_schedule` is {best!r} but its final validation accuracy ({accs[best]:.4f}) is below the "
                              f"other run's ({max(accs.values()):.4f}): report the one you measured as better")
        return f"warmup of {matched} steps then cosine over {total}; final val accuracy " + \
            ", ".join(f"{k} {v:.3f}" for k, v in accs.items())
