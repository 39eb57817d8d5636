"""Mutant answers for every protocol exercise: plausible wrong answers that the checks must fail.

Each :class:`Case` is one answer: the exercise, a label, a function returning the learner's namespace,
the status it must get (``pass`` for the right answer, ``fail``, ``not_attempted`` for the stub) and a
fragment the message must contain (the helpful part). ``tests/test_mutants.py`` runs them all in
process; ``benchmarks/mutants.py`` counts them per lesson.

Extension point: a lesson adds its cases to :data:`CASES` with :func:`lesson` (lesson 10's owner:
``CASES += lesson("10", [...])``).

:func:`own` turns a library function into "the learner's own copy" (same code, its own globals, its
library callees copied too), so a right answer built from the library is not flagged as using the
library's implementation.
"""

from __future__ import annotations

import math
import types
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class Case:
    exercise: str
    label: str
    namespace: Callable[[], dict[str, Any]]
    status: str = "fail"
    fragment: str = ""

    @property
    def lesson(self) -> str:
        return self.exercise[2:4]

    @property
    def mutant(self) -> bool:
        return self.status != "pass"


def own(fn: Any) -> Any:
    """A copy of ``fn`` (and of the tutorlib functions it calls) that is not the library's object."""
    if not isinstance(fn, types.FunctionType):
        return fn
    g = dict(fn.__globals__)
    new = types.FunctionType(fn.__code__, g, fn.__name__, fn.__defaults__, fn.__closure__)
    new.__kwdefaults__ = fn.__kwdefaults__
    for name in fn.__code__.co_names:
        obj = g.get(name)
        if isinstance(obj, types.FunctionType) and getattr(obj, "__module__", "").startswith("tutorlib") and obj is not fn:
            g[name] = own(obj)
    return new


def stub(exercise: str) -> Callable[..., Any]:
    def answer(*args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{exercise}: write your answer here")
    return answer


def lesson(number: str, cases: list[Case]) -> list[Case]:
    bad = [c.exercise for c in cases if c.lesson != number]
    if bad:
        raise ValueError(f"cases {bad} are not in lesson {number}")
    return cases


CASES: list[Case] = []

# --------------------------------------------------------------------------- lesson 01


def _l01() -> list[Case]:
    from tutorlib.optim import adam_step, lamb_step, sgd_momentum_step, warmup_cosine
    from tutorlib.train import History

    sgd, adam, lamb, wc = own(sgd_momentum_step), own(adam_step), own(lamb_step), own(warmup_cosine)

    def dampened(param, grad, buf, lr, momentum, nesterov=False):
        new_buf = grad.clone() if buf is None else momentum * buf + (1 - momentum) * grad
        return param - lr * new_buf, new_buf

    def no_nesterov(param, grad, buf, lr, momentum, nesterov=False):
        return sgd(param, grad, buf, lr, momentum, nesterov=False)

    def in_place(param, grad, buf, lr, momentum, nesterov=False):
        new_p, new_b = sgd(param, grad, buf, lr, momentum, nesterov)
        param.copy_(new_p)
        return param, new_b

    def plus_lr(param, grad, buf, lr, momentum, nesterov=False):
        new_p, new_b = sgd(param, grad, buf, lr, momentum, nesterov)
        return param + (param - new_p), new_b

    def no_bias_correction(param, grad, m, v, step, lr, betas=(0.9, 0.999), eps=1e-8):
        m = betas[0] * m + (1 - betas[0]) * grad
        v = betas[1] * v + (1 - betas[1]) * grad**2
        return param - lr * m / (v.sqrt() + eps), m, v

    def step_plus_one(param, grad, m, v, step, lr, betas=(0.9, 0.999), eps=1e-8):
        return adam(param, grad, m, v, step + 1, lr, betas, eps)

    def eps_inside(param, grad, m, v, step, lr, betas=(0.9, 0.999), eps=1e-8):
        m = betas[0] * m + (1 - betas[0]) * grad
        v = betas[1] * v + (1 - betas[1]) * grad**2
        mh, vh = m / (1 - betas[0] ** step), v / (1 - betas[1] ** step)
        return param - lr * mh / (vh + 1e-2).sqrt(), m, v

    def no_trust_ratio(param, grad, m, v, step, lr, betas=(0.9, 0.999), eps=1e-6, weight_decay=0.0):
        new_p, m, v = adam(param, grad, m, v, step, lr, betas, eps)
        return new_p - lr * weight_decay * param, m, v

    def ratio_of_r(param, grad, m, v, step, lr, betas=(0.9, 0.999), eps=1e-6, weight_decay=0.0):
        m = betas[0] * m + (1 - betas[0]) * grad
        v = betas[1] * v + (1 - betas[1]) * grad**2
        r = (m / (1 - betas[0] ** step)) / ((v / (1 - betas[1] ** step)).sqrt() + eps)
        u = r + weight_decay * param
        return param - lr * param.norm() / r.norm() * u, m, v

    def adam_as_lamb(param, grad, m, v, step, lr, betas=(0.9, 0.999), eps=1e-6, weight_decay=0.0):
        return adam(param, grad, m, v, step, lr, betas, eps)

    def wc_off_by_one(step, total_steps, warmup_steps, base_lr, min_lr=0.0):
        if step < warmup_steps:
            return base_lr * (step + 1) / warmup_steps
        return wc(step, total_steps, warmup_steps, base_lr, min_lr)

    def wc_no_min(step, total_steps, warmup_steps, base_lr, min_lr=0.0):
        return wc(step, total_steps, warmup_steps, base_lr, 0.0)

    def wc_progress_from_zero(step, total_steps, warmup_steps, base_lr, min_lr=0.0):
        if step < warmup_steps:
            return base_lr * step / warmup_steps
        return min_lr + (base_lr - min_lr) * 0.5 * (1 + math.cos(math.pi * step / total_steps))

    class Finder:
        lrs = [10 ** (-5 + 0.1 * i) for i in range(50)]
        smoothed = [2.3 - 1.5 / (1 + math.exp(-3 * (math.log10(lr) + 3))) + max(0.0, math.log10(lr) + 1) * 3 for lr in lrs]
        min_loss_lr = lrs[smoothed.index(min(smoothed))]

    class LyingFinder(Finder):
        min_loss_lr = 1.0  # a made-up minimum: the check finds the curve's own

    def hist(lrs: list[float], acc: float) -> History:
        return History([{"epoch": 0, "train_loss": 1.0, "val_accuracy": acc}],
                       [{"step": i, "loss": 1.0, "lr": lr} for i, lr in enumerate(lrs)])

    good = [wc(i + 1, 20, 2, 3e-3) for i in range(20)]
    runs = lambda: {"constant": hist([3e-3] * 20, 0.9), "warmup_cosine": hist(good, 0.92)}  # noqa: E731
    wrong_total = [wc(i + 1, 40, 2, 3e-3) for i in range(20)]
    return lesson("01", [
        Case("ex01_1", "right", lambda: {"sgd_momentum_step": sgd}, "pass"),
        Case("ex01_1", "stub", lambda: {"sgd_momentum_step": stub("ex01_1")}, "not_attempted", "NotImplementedError"),
        Case("ex01_1", "(1 - momentum) damping", lambda: {"sgd_momentum_step": dampened}, "fail", "(1 - momentum)"),
        Case("ex01_1", "Nesterov ignored", lambda: {"sgd_momentum_step": no_nesterov}, "fail", "nesterov=True"),
        Case("ex01_1", "param changed in place", lambda: {"sgd_momentum_step": in_place}, "fail", "in place"),
        Case("ex01_1", "steps uphill (+ lr)", lambda: {"sgd_momentum_step": plus_lr}, "fail", "param - lr * direction"),
        Case("ex01_1", "library's own", lambda: {"sgd_momentum_step": sgd_momentum_step}, "fail", "library's own"),
        Case("ex01_2", "right", lambda: {"adam_step": adam}, "pass"),
        Case("ex01_2", "stub", lambda: {"adam_step": stub("ex01_2")}, "not_attempted", "NotImplementedError"),
        Case("ex01_2", "no bias correction", lambda: {"adam_step": no_bias_correction}, "fail", "bias-correct"),
        Case("ex01_2", "step off by one", lambda: {"adam_step": step_plus_one}, "fail", "beta**step"),
        Case("ex01_2", "eps inside the root", lambda: {"adam_step": eps_inside}, "fail", "eps goes outside"),
        Case("ex01_3", "right", lambda: {"lamb_step": lamb}, "pass"),
        Case("ex01_3", "stub", lambda: {"lamb_step": stub("ex01_3")}, "not_attempted", "NotImplementedError"),
        Case("ex01_3", "no trust ratio", lambda: {"lamb_step": no_trust_ratio}, "fail", "trust ratio"),
        Case("ex01_3", "ratio of r alone", lambda: {"lamb_step": ratio_of_r}, "fail", "norm of the whole update"),
        Case("ex01_3", "plain Adam", lambda: {"lamb_step": adam_as_lamb}, "fail", "trust ratio"),
        Case("ex01_4", "right", lambda: {"warmup_cosine": wc}, "pass"),
        Case("ex01_4", "stub", lambda: {"warmup_cosine": stub("ex01_4")}, "not_attempted", "NotImplementedError"),
        Case("ex01_4", "warmup off by one", lambda: {"warmup_cosine": wc_off_by_one}, "fail", "warmup starts at 0"),
        Case("ex01_4", "min_lr ignored", lambda: {"warmup_cosine": wc_no_min}, "fail", "decay towards min_lr"),
        Case("ex01_4", "progress from step 0", lambda: {"warmup_cosine": wc_progress_from_zero}, "fail", "end of warmup"),
        Case("ex01_4", "a tensor, not a float", lambda: {"warmup_cosine": lambda *a: torch.tensor(0.1)}, "fail", "Python float"),
        Case("ex01_5", "right", lambda: {"finder": Finder(), "chosen_lr": 1e-3}, "pass"),
        Case("ex01_5", "on the flat start", lambda: {"finder": Finder(), "chosen_lr": 2e-5}, "fail", "flat start"),
        Case("ex01_5", "past the minimum", lambda: {"finder": Finder(), "chosen_lr": 0.5}, "fail", "past the minimum"),
        Case("ex01_5", "past the real minimum (finder's min made up)", lambda: {"finder": LyingFinder(), "chosen_lr": 0.5},
             "fail", "past the minimum"),
        Case("ex01_5", "a tensor", lambda: {"finder": Finder(), "chosen_lr": torch.tensor(1e-3)}, "fail", "Python float"),
        Case("ex01_5", "no finder", lambda: {"chosen_lr": 1e-3}, "fail", "not defined"),
        Case("ex01_6", "right", lambda: {"schedule_runs": runs(), "best_schedule": "warmup_cosine"}, "pass"),
        Case("ex01_6", "made-up best", lambda: {"schedule_runs": runs(), "best_schedule": "constant"}, "fail", "below the other run"),
        Case("ex01_6", "schedule built for the wrong total",
             lambda: {"schedule_runs": {**runs(), "warmup_cosine": hist(wrong_total, 0.92)}, "best_schedule": "warmup_cosine"},
             "fail", "do not follow warmup_cosine"),
        Case("ex01_6", "no scheduler", lambda: {"schedule_runs": {**runs(), "warmup_cosine": hist([3e-3] * 20, 0.92)},
                                                "best_schedule": "warmup_cosine"}, "fail", "never changed"),
        Case("ex01_6", "wrong keys", lambda: {"schedule_runs": {}, "best_schedule": "x"}, "fail", "keys 'constant' and 'warmup_cosine'"),
    ])


CASES += _l01()

# --------------------------------------------------------------------------- lesson 03


def _l03() -> list[Case]:
    import copy

    import torch.nn.functional as F
    from torch.utils.checkpoint import checkpoint

    def amp_step(model, x, y, optimizer, scaler, dtype, *, autocast=True, scale=True, via_scaler=True, update=True):
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device_type=x.device.type, dtype=dtype, enabled=autocast):
            loss = F.cross_entropy(model(x), y)
        (scaler.scale(loss) if scale else loss).backward()
        if via_scaler:
            scaler.step(optimizer)
        else:
            scaler.unscale_(optimizer)
            optimizer.step()
        if update:
            scaler.update()
        return loss.item()

    def amp(**kw):
        return lambda model, x, y, optimizer, scaler, dtype: amp_step(model, x, y, optimizer, scaler, dtype, **kw)

    def accumulate(model, x, y, optimizer, micro_batches, weight="share", whole=False, zero_each=False):
        optimizer.zero_grad()
        total = 0.0
        pieces = [(x, y)] if whole else list(zip(x.chunk(micro_batches), y.chunk(micro_batches)))
        for xb, yb in pieces:
            if zero_each:
                optimizer.zero_grad()
            w = len(xb) / len(x) if weight == "share" else (1 / micro_batches if weight == "equal" else 1.0)
            loss = F.cross_entropy(model(xb), yb) * w
            loss.backward()
            total += loss.item()
        optimizer.step()
        return total

    def acc(**kw):
        return lambda model, x, y, optimizer, micro_batches: accumulate(model, x, y, optimizer, micro_batches, **kw)

    def mfu(n, l, d, t, tps, peak):
        return (6 * n + 12 * l * d * t) * tps / peak

    def ckpt_forward(blocks, x):
        for b in blocks:
            x = checkpoint(b, x, use_reentrant=False)
        return x

    def plain_forward(blocks, x):
        for b in blocks:
            x = b(x)
        return x

    def no_grad_forward(blocks, x):
        with torch.no_grad():
            return plain_forward(blocks, x)

    def skip_last(blocks, x):
        return ckpt_forward(blocks[:-1], x)

    def saving_ns(**override):
        from tutorlib.efficient import enable_activation_checkpointing, saved_activation_bytes
        from tutorlib.models import GPTConfig, TinyGPT

        torch.manual_seed(0)
        model = TinyGPT(GPTConfig(block_size=32, n_layer=2, n_head=2, d_model=32))
        x = torch.randint(0, 128, (4, 33))
        plain = saved_activation_bytes(lambda: model.loss(x), model)
        ck = enable_activation_checkpointing(copy.deepcopy(model))
        ckpt = saved_activation_bytes(lambda: ck.loss(x), ck)
        ns = {"exp_model": model, "exp_x": x, "bytes_plain": plain, "bytes_ckpt": ckpt, "saving": 1 - ckpt / plain}
        for k, v in override.items():
            ns[k] = v(ns) if callable(v) else v
        return ns

    def scale_ns(delta: Any) -> dict:
        from tutorlib.efficient import smallest_safe_scale

        values = torch.logspace(-11, -2, 5000)
        k = smallest_safe_scale(values, "fp16", 1e-4)
        return {"grad_values": values, "safe_log2_scale": delta(k) if callable(delta) else delta}

    return lesson("03", [
        Case("ex03_1", "right", lambda: {"amp_step": amp()}, "pass"),
        Case("ex03_1", "stub", lambda: {"amp_step": stub("ex03_1")}, "not_attempted", "NotImplementedError"),
        Case("ex03_1", "loss not scaled", lambda: {"amp_step": amp(scale=False)}, "fail", "did not use scaler.scale"),
        Case("ex03_1", "no autocast", lambda: {"amp_step": amp(autocast=False)}, "fail", "without autocast"),
        Case("ex03_1", "optimizer.step, not scaler.step", lambda: {"amp_step": amp(via_scaler=False)}, "fail", "changed the weights"),
        Case("ex03_1", "no scaler.update", lambda: {"amp_step": amp(update=False)}, "fail", "since the last update()"),
        Case("ex03_2", "right", lambda: {"accumulate_step": acc()}, "pass"),
        Case("ex03_2", "stub", lambda: {"accumulate_step": stub("ex03_2")}, "not_attempted", "NotImplementedError"),
        Case("ex03_2", "equal weights for unequal chunks", lambda: {"accumulate_step": acc(weight="equal")}, "fail", "share of the batch"),
        Case("ex03_2", "no weighting (missing scale)", lambda: {"accumulate_step": acc(weight="none")}, "fail", "share of the batch"),
        Case("ex03_2", "the whole batch at once", lambda: {"accumulate_step": acc(whole=True)}, "fail", "split x and y"),
        Case("ex03_2", "zero_grad inside the loop", lambda: {"accumulate_step": acc(zero_each=True)}, "fail", "zero_grad() once"),
        Case("ex03_3", "right", lambda: {"estimate_mfu": mfu}, "pass"),
        Case("ex03_3", "stub", lambda: {"estimate_mfu": stub("ex03_3")}, "not_attempted", "NotImplementedError"),
        Case("ex03_3", "no attention term", lambda: {"estimate_mfu": lambda n, l, d, t, tps, peak: 6 * n * tps / peak}, "fail",
             "attention term"),
        Case("ex03_3", "a percentage", lambda: {"estimate_mfu": lambda *a: 100 * mfu(*a)}, "fail", "percentage"),
        Case("ex03_3", "2 FLOPs per parameter", lambda: {"estimate_mfu": lambda n, l, d, t, tps, peak:
                                                         (2 * n + 12 * l * d * t) * tps / peak}, "fail", "6 FLOPs per parameter"),
        Case("ex03_4", "right", lambda: {"checkpointed_forward": ckpt_forward}, "pass"),
        Case("ex03_4", "stub", lambda: {"checkpointed_forward": stub("ex03_4")}, "not_attempted", "NotImplementedError"),
        Case("ex03_4", "no checkpointing", lambda: {"checkpointed_forward": plain_forward}, "fail", "torch.utils.checkpoint"),
        Case("ex03_4", "under no_grad", lambda: {"checkpointed_forward": no_grad_forward}, "fail", "torch.no_grad()"),
        Case("ex03_4", "a block left out (off by one)", lambda: {"checkpointed_forward": skip_last}, "fail", "apply every block"),
        Case("ex03_5", "right", saving_ns, "pass"),
        Case("ex03_5", "a percentage", lambda: saving_ns(saving=lambda ns: 100 * ns["saving"]), "fail", "1 - bytes_ckpt / bytes_plain"),
        Case("ex03_5", "measured after enabling (both checkpointed)", lambda: saving_ns(bytes_plain=lambda ns: ns["bytes_ckpt"]),
             "fail", "before enabling checkpointing"),
        Case("ex03_5", "made-up bytes", lambda: saving_ns(bytes_ckpt=lambda ns: ns["bytes_ckpt"] // 2), "fail", "`bytes_ckpt`"),
        Case("ex03_5", "saving inverted", lambda: saving_ns(saving=lambda ns: ns["bytes_ckpt"] / ns["bytes_plain"]), "fail",
             "1 - bytes_ckpt"),
        Case("ex03_6", "right", lambda: scale_ns(lambda k: k), "pass"),
        Case("ex03_6", "far too large", lambda: scale_ns(lambda k: k + 5), "fail", "smaller"),
        Case("ex03_6", "far too small", lambda: scale_ns(lambda k: k - 4), "fail", "larger"),
        Case("ex03_6", "a string", lambda: scale_ns("12"), "fail", "expected a Python int"),
        Case("ex03_6", "no grad_values", lambda: {"safe_log2_scale": 12}, "fail", "not defined"),
    ])


CASES += _l03()

# --------------------------------------------------------------------------- lesson 04


def _l04() -> list[Case]:
    import torch.nn.functional as F
    from torch import nn

    from tutorlib.transfer import expected_calibration_error, f1_from_confusion, layerwise_lr_groups

    groups_ref, f1_ref, ece_ref = own(layerwise_lr_groups), own(f1_from_confusion), own(expected_calibration_error)

    def unfreeze(model, k, *, head=True, freeze_first=True, slice_bug=False, ret=True):
        if freeze_first:
            for p in model.parameters():
                p.requires_grad = False
        layers = model.encoder.encoder.layer
        top = layers[-k:] if slice_bug else layers[len(layers) - k:]
        for layer in top:
            for p in layer.parameters():
                p.requires_grad = True
        if head:
            for p in model.head.parameters():
                p.requires_grad = True
        return model if ret else torch.nn.Linear(1, 1)

    def uf(**kw):
        return lambda model, k: unfreeze(model, k, **kw)

    def llrd_no_decay(model, lr, decay):
        return [{"params": [p for p in model.parameters() if p.requires_grad], "lr": lr}]

    def llrd_with_frozen(model, lr, decay):
        return [{"params": list(model.parameters()), "lr": lr}]

    def llrd_off_by_one(model, lr, decay):
        return [{"params": g["params"], "lr": g["lr"] * decay} for g in groups_ref(model, lr, decay)]

    def combined(s, d, sy, dy, w):
        return F.cross_entropy(s, sy) + w * F.cross_entropy(d, dy)

    def combined_in_place(s, d, sy, dy, w):
        with torch.no_grad():
            d.mul_(1.0)
            d[0, 0] += 1.0
        return combined(s, d, sy, dy, w)

    def f1_nan(cm):
        cm = cm.double()
        tp = cm.diag()
        p, r = tp / cm.sum(0), tp / cm.sum(1)
        return p, r, 2 * p * r / (p + r)

    def f1_swapped(cm):
        p, r, f = f1_ref(cm)
        return r, p, f

    def f1_pair(cm):
        return f1_ref(cm)[:2]

    def ece_unbinned(p, t, n):
        return float((p.max(1).values - (p.argmax(1) == t).float()).abs().mean())

    def ece_unweighted(p, t, n):
        conf, pred = p.max(1)
        acc = (pred == t).float()
        edges = torch.linspace(0, 1, n + 1)
        gaps = []
        for lo, hi in zip(edges[:-1], edges[1:]):
            m = (conf > lo) & (conf <= hi)
            if m.any():
                gaps.append((acc[m].mean() - conf[m].mean()).abs())
        return float(torch.stack(gaps).mean())

    def probe_ns(**override):
        g = torch.Generator().manual_seed(0)
        y = torch.arange(40) % 2
        emb = torch.randn(40, 8, generator=g)
        emb[:, 0] = torch.where(y == 1, emb[:, 0].abs() + 0.1, -emb[:, 0].abs() - 0.1)
        probe = nn.Linear(8, 2)
        with torch.no_grad():
            probe.weight.zero_()
            probe.bias.zero_()
            probe.weight[1, 0] = 5.0
            probe.weight[0, 1] = 0.3
        acc = (probe(emb).argmax(1) == y).float().mean().item()
        ns = {"probe": probe, "test_emb": emb, "test_y": y, "probe_accuracy": acc}
        for k, v in override.items():
            ns[k] = v(ns) if callable(v) and k != "probe" else v
        return ns

    weak = nn.Linear(8, 2)
    with torch.no_grad():
        weak.weight.zero_()
        weak.bias.copy_(torch.tensor([1.0, 0.0]))

    rows = [{"group": "hotel", "n": 3, "accuracy": 0.9}, {"group": "book", "n": 3, "accuracy": 0.5},
            {"group": "dvd", "n": 3, "accuracy": 0.7}]
    return lesson("04", [
        Case("ex04_1", "right", lambda: {"unfreeze_top": uf()}, "pass"),
        Case("ex04_1", "stub", lambda: {"unfreeze_top": stub("ex04_1")}, "not_attempted", "NotImplementedError"),
        Case("ex04_1", "head left frozen", lambda: {"unfreeze_top": uf(head=False)}, "fail", "the head always trains"),
        Case("ex04_1", "only adds (no freeze first)", lambda: {"unfreeze_top": uf(freeze_first=False)}, "fail", "first freeze all"),
        Case("ex04_1", "layers[-k:] with k = 0", lambda: {"unfreeze_top": uf(slice_bug=True)}, "fail", "with k=0"),
        Case("ex04_1", "returns a new model", lambda: {"unfreeze_top": uf(ret=False)}, "fail", "in place"),
        Case("ex04_2", "right", lambda: {"llrd_groups": lambda m, lr, d: [dict(g) for g in groups_ref(m, lr, d)]}, "pass"),
        Case("ex04_2", "stub", lambda: {"llrd_groups": stub("ex04_2")}, "not_attempted", "NotImplementedError"),
        Case("ex04_2", "no decay", lambda: {"llrd_groups": llrd_no_decay}, "fail", "expected"),
        Case("ex04_2", "frozen parameters included", lambda: {"llrd_groups": llrd_with_frozen}, "fail", "frozen"),
        Case("ex04_2", "depth off by one", lambda: {"llrd_groups": llrd_off_by_one}, "fail", "decay^(L − i)"),
        Case("ex04_2", "a dict, not a list", lambda: {"llrd_groups": lambda m, lr, d: {"lr": lr}}, "fail", "list of dicts"),
        Case("ex04_3", "right", lambda: {"combined_loss": combined}, "pass"),
        Case("ex04_3", "stub", lambda: {"combined_loss": stub("ex04_3")}, "not_attempted", "NotImplementedError"),
        Case("ex04_3", "loss.item()", lambda: {"combined_loss": lambda *a: combined(*a).item()}, "fail", "expected a torch.Tensor"),
        Case("ex04_3", "weight ignored", lambda: {"combined_loss": lambda s, d, sy, dy, w: F.cross_entropy(s, sy) + F.cross_entropy(d, dy)},
             "fail", "domain_weight"),
        Case("ex04_3", "weight on the wrong loss", lambda: {"combined_loss": lambda s, d, sy, dy, w:
                                                            w * F.cross_entropy(s, sy) + F.cross_entropy(d, dy)}, "fail", "domain_weight"),
        Case("ex04_3", "logits changed in place", lambda: {"combined_loss": combined_in_place}, "fail", "in place"),
        Case("ex04_4", "right", lambda: {"f1_from_cm": lambda cm: tuple(t.float() for t in f1_ref(cm))}, "pass"),
        Case("ex04_4", "stub", lambda: {"f1_from_cm": stub("ex04_4")}, "not_attempted", "NotImplementedError"),
        Case("ex04_4", "NaN for empty classes", lambda: {"f1_from_cm": f1_nan}, "fail", "NaN"),
        Case("ex04_4", "rows and columns swapped", lambda: {"f1_from_cm": f1_swapped}, "fail", "precision = cm[c, c] / cm[:, c].sum()"),
        Case("ex04_4", "two tensors", lambda: {"f1_from_cm": f1_pair}, "fail", "three tensors"),
        Case("ex04_5", "right", lambda: {"ece": ece_ref}, "pass"),
        Case("ex04_5", "stub", lambda: {"ece": stub("ex04_5")}, "not_attempted", "NotImplementedError"),
        Case("ex04_5", "no bins", lambda: {"ece": ece_unbinned}, "fail", "non-empty bins"),
        Case("ex04_5", "bins not weighted by count", lambda: {"ece": ece_unweighted}, "fail", "count / N"),
        Case("ex04_5", "a tensor", lambda: {"ece": lambda p, t, n: torch.tensor(ece_ref(p, t, n))}, "fail", "Python float"),
        Case("ex04_6", "right", probe_ns, "pass"),
        Case("ex04_6", "a percentage", lambda: probe_ns(probe_accuracy=lambda ns: 100 * ns["probe_accuracy"]), "fail", "fraction"),
        Case("ex04_6", "made-up accuracy", lambda: probe_ns(probe_accuracy=0.97), "fail", "`probe_accuracy`"),
        Case("ex04_6", "untrained probe", lambda: probe_ns(probe=weak, probe_accuracy=0.5), "fail", "train it for more epochs"),
        Case("ex04_6", "a Sequential, not the Linear", lambda: probe_ns(probe=nn.Sequential(nn.Linear(8, 2))), "fail", "nn.Linear"),
        Case("ex04_7", "right", lambda: {"domain_rows": rows, "worst_domain": "book"}, "pass"),
        Case("ex04_7", "the best domain", lambda: {"domain_rows": rows, "worst_domain": "hotel"}, "fail", "shortest bar"),
        Case("ex04_7", "the middle one", lambda: {"domain_rows": rows, "worst_domain": "dvd"}, "fail", "shortest bar"),
        Case("ex04_7", "misspelt", lambda: {"domain_rows": rows, "worst_domain": "Book"}, "fail", "not one of the domains"),
        Case("ex04_7", "its accuracy, not its name", lambda: {"domain_rows": rows, "worst_domain": 0.5}, "fail", "a string"),
    ])


CASES += _l04()

# --------------------------------------------------------------------------- lesson 05


def _l05() -> list[Case]:
    import copy

    import torch.nn.functional as F
    from torch import nn

    from tutorlib.compress import (dequantize, distillation_loss, global_magnitude_masks, magnitude_mask, make_permanent,
                                   prune_magnitude, quantize, remove_neurons, smallest_above)

    qz, dq, gmm, rn, dl, sa = (own(quantize), own(dequantize), own(global_magnitude_masks), own(remove_neurons),
                               own(distillation_loss), own(smallest_above))

    def q_ns(q=None, d=None):
        return {"quantize_int8": q or qz, "dequantize_int8": d or dq}

    def q_floor(x, scale, zp):
        return torch.clamp(torch.floor(x / scale) + zp, -128, 127).to(torch.int8)

    def q_unclamped(x, scale, zp):
        return (torch.round(x / scale) + zp).to(torch.int8)

    def q_times(x, scale, zp):
        return torch.clamp(torch.round(x * scale) + zp, -128, 127).to(torch.int8)

    def dq_order(q, scale, zp):
        return q.float() * scale - zp

    def prune_layerwise(weights, sparsity):
        return [own(magnitude_mask)(w, sparsity) for w in weights]

    def prune_largest(weights, sparsity):
        return [1 - m for m in gmm(weights, 1 - sparsity)]

    def prune_signed(weights, sparsity):
        flat = torch.cat([w.flatten() for w in weights])
        k = round(sparsity * flat.numel())
        if k == 0:
            return [torch.ones_like(w) for w in weights]
        thr = flat.kthvalue(k).values
        return [(w > thr).float() for w in weights]

    def rn_cols(fc1, fc2, keep):
        a, b = rn(fc1, fc2, keep)
        with torch.no_grad():
            b.weight.copy_(fc2.weight[:, keep].flip(1))
        return a, b

    def rn_no_bias(fc1, fc2, keep):
        a = nn.Linear(fc1.in_features, len(keep), bias=False)
        b = nn.Linear(len(keep), fc2.out_features, bias=False)
        with torch.no_grad():
            a.weight.copy_(fc1.weight[keep])
            b.weight.copy_(fc2.weight[:, keep])
        return a, b

    def rn_masked(fc1, fc2, keep):
        a, b = copy.deepcopy(fc1), copy.deepcopy(fc2)
        drop = [i for i in range(fc1.out_features) if i not in keep.tolist()]
        with torch.no_grad():
            a.weight[drop] = 0
            a.bias[drop] = 0
        return a, b

    def kd(s, t, y, T, alpha, *, t2=True, flip=False, swap_alpha=False, mean=False):
        p_t, log_s = torch.softmax(t / T, -1), torch.log_softmax(s / T, -1)
        if flip:
            soft = (torch.softmax(s / T, -1) * (log_s - torch.log(p_t))).sum(-1).mean()
        else:
            soft = F.kl_div(log_s, p_t, reduction="mean" if mean else "batchmean")
        a = (1 - alpha) if swap_alpha else alpha
        return a * (T * T if t2 else 1) * soft + (1 - a) * F.cross_entropy(s, y)

    def kdf(**kw):
        return lambda s, t, y, T, alpha: kd(s, t, y, T, alpha, **kw)

    def sa_strict(points, bar):
        ok = [p for p in points if p["accuracy"] > bar]
        return min(ok, key=lambda p: p["bytes"])["name"] if ok else None

    def sa_most_accurate(points, bar):
        ok = [p for p in points if p["accuracy"] >= bar]
        return max(ok, key=lambda p: p["accuracy"])["name"] if ok else None

    def sa_ignores_bar(points, bar):
        return min(points, key=lambda p: p["bytes"])["name"]

    def sweep_ns(kind: str = "right"):
        from tutorlib.data import load_digits
        from tutorlib.models import SmallCNN

        torch.manual_seed(0)
        cnn = SmallCNN(width=8)
        val = load_digits("train" if kind == "train split" else "val")
        x, y = val.tensors
        sweep = {}
        for s in (0.0, 0.3, 0.5, 0.7, 0.9):
            m = copy.deepcopy(cnn).eval()
            if s > 0:
                prune_magnitude(m, s, scope="global")
                make_permanent(m)
            with torch.no_grad():
                sweep[s] = (m(x).argmax(1) == y).float().mean().item()
        if kind == "made up":
            sweep = {s: round(1.0 - 0.1 * s, 3) for s in sweep}
        if kind == "percent":
            sweep = {s: 100 * v for s, v in sweep.items()}
        dense = sweep[0.0]
        safe = max(s for s in sweep if sweep[s] >= dense - 0.01)
        if kind == "largest":
            safe = max(sweep)
        return {"cnn": cnn, "sweep": sweep, "max_safe_sparsity": safe}

    class M:
        def __init__(self, name, b, a):
            self.name, self.bytes, self.accuracy = name, b, a

    variants = [M("dense", 100, 0.95), M("int8", 30, 0.94), M("pruned", 60, 0.93), M("student", 20, 0.80), M("tiny", 25, 0.70)]
    return lesson("05", [
        Case("ex05_1", "right", q_ns, "pass"),
        Case("ex05_1", "stub", lambda: q_ns(q=stub("ex05_1")), "not_attempted", "NotImplementedError"),
        Case("ex05_1", "floor instead of round", lambda: q_ns(q=q_floor), "fail", "rounded down"),
        Case("ex05_1", "no clamp (wraps around)", lambda: q_ns(q=q_unclamped), "fail", "clamp to [-128, 127]"),
        Case("ex05_1", "multiplies by the scale", lambda: q_ns(q=q_times), "fail", "DIVIDES"),
        Case("ex05_1", "zero point after the scale", lambda: q_ns(d=dq_order), "fail", "BEFORE multiplying"),
        Case("ex05_2", "right", lambda: {"global_magnitude_prune": gmm}, "pass"),
        Case("ex05_2", "stub", lambda: {"global_magnitude_prune": stub("ex05_2")}, "not_attempted", "NotImplementedError"),
        Case("ex05_2", "per layer (wrong reduction)", lambda: {"global_magnitude_prune": prune_layerwise}, "fail", "ONE threshold"),
        Case("ex05_2", "prunes the largest", lambda: {"global_magnitude_prune": prune_largest}, "fail", "LARGEST"),
        Case("ex05_2", "ranks by w, not |w|", lambda: {"global_magnitude_prune": prune_signed}, "fail", "w.abs()"),
        Case("ex05_2", "a single mask", lambda: {"global_magnitude_prune": lambda w, s: torch.ones(3)}, "fail", "one mask per"),
        Case("ex05_3", "right", lambda: {"remove_neurons": rn}, "pass"),
        Case("ex05_3", "stub", lambda: {"remove_neurons": stub("ex05_3")}, "not_attempted", "NotImplementedError"),
        Case("ex05_3", "columns in the wrong order", lambda: {"remove_neurons": rn_cols}, "fail", "kept COLUMNS"),
        Case("ex05_3", "biases dropped", lambda: {"remove_neurons": rn_no_bias}, "fail", "no bias"),
        Case("ex05_3", "masked, not removed", lambda: {"remove_neurons": rn_masked}, "fail", "expected 6 → 4"),
        Case("ex05_3", "returns the old layers", lambda: {"remove_neurons": lambda a, b, k: (a, b)}, "fail", "expected 6 → 4"),
        Case("ex05_4", "right", lambda: {"distillation_loss": dl}, "pass"),
        Case("ex05_4", "stub", lambda: {"distillation_loss": stub("ex05_4")}, "not_attempted", "NotImplementedError"),
        Case("ex05_4", "no T² (missing scale)", lambda: {"distillation_loss": kdf(t2=False)}, "fail", "T²"),
        Case("ex05_4", "KL the wrong way", lambda: {"distillation_loss": kdf(flip=True)}, "fail", "other way"),
        Case("ex05_4", "alpha on the hard term", lambda: {"distillation_loss": kdf(swap_alpha=True)}, "fail", "alpha weighs the SOFT"),
        Case("ex05_4", "mean over elements (wrong reduction)", lambda: {"distillation_loss": kdf(mean=True)}, "fail", "batchmean"),
        Case("ex05_4", "loss.item()", lambda: {"distillation_loss": lambda *a: dl(*a).item()}, "fail", "Python number"),
        Case("ex05_5", "right", lambda: {"smallest_above": sa}, "pass"),
        Case("ex05_5", "stub", lambda: {"smallest_above": stub("ex05_5")}, "not_attempted", "NotImplementedError"),
        Case("ex05_5", "> instead of >= (off by one)", lambda: {"smallest_above": sa_strict}, "fail", "expected"),
        Case("ex05_5", "most accurate, not smallest", lambda: {"smallest_above": sa_most_accurate}, "fail", "smaller"),
        Case("ex05_5", "bar ignored", lambda: {"smallest_above": sa_ignores_bar}, "fail", "expected"),
        Case("ex05_6", "right", sweep_ns, "pass"),
        Case("ex05_6", "made-up sweep", lambda: sweep_ns("made up"), "fail", "prune a fresh COPY"),
        Case("ex05_6", "percentages", lambda: sweep_ns("percent"), "fail", "not percent"),
        Case("ex05_6", "max sparsity, not max safe", lambda: sweep_ns("largest"), "fail", "dense − 0.01"),
        Case("ex05_6", "measured on the training split", lambda: sweep_ns("train split"), "fail", "validation split"),
        Case("ex05_7", "right", lambda: {"variants": variants, "on_front": ["student", "int8", "dense"]}, "pass"),
        Case("ex05_7", "a dominated variant added", lambda: {"variants": variants, "on_front": ["student", "int8", "pruned", "dense"]},
             "fail", "'pruned' is not on the front"),
        Case("ex05_7", "one missing", lambda: {"variants": variants, "on_front": ["student", "int8"]}, "fail", "on the front too"),
        Case("ex05_7", "made-up name", lambda: {"variants": variants, "on_front": ["student", "int4"]}, "fail", "not variant names"),
        Case("ex05_7", "the smallest only (one axis)", lambda: {"variants": variants, "on_front": ["student"]}, "fail", "on the front too"),
    ])


CASES += _l05()

# --------------------------------------------------------------------------- lesson 07


def _l07() -> list[Case]:
    from functools import lru_cache, partial

    import torch.nn.functional as F

    from tutorlib import multimodal as mm

    own_recall = own(mm.recall_at_k)

    def clip_loss(i, t, s, *, norm=True, both=True, exp=True, halve=True):
        if norm:
            i, t = F.normalize(i, dim=-1), F.normalize(t, dim=-1)
        logits = (s.exp() if exp else s) * i @ t.T
        y = torch.arange(len(logits), device=logits.device)
        if not both:
            return F.cross_entropy(logits, y)
        total = F.cross_entropy(logits, y) + F.cross_entropy(logits.T, y)
        return total / 2 if halve else total

    def cl(**kw):
        return lambda i, t, s: clip_loss(i, t, s, **kw)

    def clip_step(trainer, batch, *, one_way=False, detach=False):
        out = trainer.model(pixel_values=batch["pixel_values"], input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        logits = out.logits_per_image
        y = torch.arange(len(logits), device=logits.device)
        loss = F.cross_entropy(logits, y) if one_way else (F.cross_entropy(logits, y) + F.cross_entropy(logits.T, y)) / 2
        return {"loss": loss.detach() if detach else loss}

    def cs(**kw):
        return lambda trainer, batch: clip_step(trainer, batch, **kw)

    def fixed_scale_step(trainer, batch):
        out = trainer.model(pixel_values=batch["pixel_values"], input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        img, txt = out.image_embeds, out.text_embeds
        return {"loss": clip_loss(img, txt, torch.tensor(math.log(1 / 0.07), device=img.device))}

    def ens(enc, classes, templates, *, pre=True, post=True, mixed=False):
        prompts = [t.format(c) for t in templates for c in classes] if mixed else [t.format(c) for c in classes for t in templates]
        emb = enc(prompts).float()
        if pre:
            emb = F.normalize(emb, dim=-1)
        mean = emb.reshape(len(classes), len(templates), -1).mean(1)
        return F.normalize(mean, dim=-1) if post else mean

    def ew(**kw):
        return lambda enc, classes, templates: ens(enc, classes, templates, **kw)

    def recall(sim, pos, k):
        return pos.gather(1, sim.topk(k, dim=1).indices).any(dim=1).float().mean().item()

    def precision(sim, pos, k):
        return pos.gather(1, sim.topk(k, dim=1).indices).float().mean().item()

    def diagonal(sim, pos, k):
        return own_recall(sim, k, torch.eye(*sim.shape, dtype=torch.bool))

    def columns(sim, pos, k):
        return pos.gather(1, sim.topk(k + 1, dim=1).indices).any(dim=1).float().mean().item()

    @lru_cache(maxsize=1)
    def experiment():
        from tutorlib.data import ShapesDataset

        tok = mm.build_caption_tokenizer()
        model = mm.build_clip(tok, width=32, layers=1, heads=2, patch_size=8, seed=3)
        ds = ShapesDataset(40, seed=3, only=mm.HELD_OUT_PAIRS)
        img, _, _ = mm.embed_pairs(model, tok, ds)
        ns = {"model": model, "tokenizer": tok, "heldout_img_emb": img, "heldout_labels": mm.shape_labels(ds)}
        enc = partial(mm.encode_texts, model, tok)
        single = mm.zero_shot_accuracy(img, ns["heldout_labels"], mm.zero_shot_weights(enc, mm.SHAPE_CLASSNAMES, mm.SHAPE_TEMPLATES[:1]))
        ensemble = mm.zero_shot_accuracy(img, ns["heldout_labels"], mm.zero_shot_weights(enc, mm.SHAPE_CLASSNAMES, mm.SHAPE_TEMPLATES))
        from tutorlib.grading.checks.ex07 import reference_heldout_confusion

        table = reference_heldout_confusion(model, tok, img, ns["heldout_labels"], mm.held_out_classnames())
        return ns, single, ensemble, table

    def exp_ns(single_delta=0.0, ens_delta=0.0, gain=None, scale=1.0):
        ns, single, ensemble, _ = experiment()
        s, e = (single + single_delta) * scale, (ensemble + ens_delta) * scale
        return dict(ns, single_acc=s, ensemble_acc=e, ensemble_gain=(e - s) if gain is None else gain)

    def conf_ns(which="worst", mistaken="top"):
        ns, _, _, table = experiment()
        order = sorted(table, key=lambda k: table[k]["accuracy"])
        worst = {"worst": order[0], "best": order[-1], "made up": "pink circle"}[which]
        m = table[order[0]]["mistakes"]
        top = m.most_common(1)[0][0] if m else None
        rare = min(m, key=m.get) if m and len(set(m.values())) > 1 else "blue star"
        return dict(ns, worst_class=worst, mistaken_for={"top": top, "rare": rare, "self": order[0]}[mistaken])

    return lesson("07", [
        Case("ex07_1", "right", lambda: {"clip_loss": cl()}, "pass"),
        Case("ex07_1", "stub", lambda: {"clip_loss": stub("ex07_1")}, "not_attempted", "NotImplementedError"),
        Case("ex07_1", "not normalised", lambda: {"clip_loss": cl(norm=False)}, "fail", "L2-normalise"),
        Case("ex07_1", "one direction only", lambda: {"clip_loss": cl(both=False)}, "fail", "symmetric"),
        Case("ex07_1", "logit_scale without exp (missing scale)", lambda: {"clip_loss": cl(exp=False)}, "fail", "logit_scale.exp()"),
        Case("ex07_1", "sum of the directions", lambda: {"clip_loss": cl(halve=False)}, "fail", "divide their sum by 2"),
        Case("ex07_1", "loss.item()", lambda: {"clip_loss": lambda i, t, s: clip_loss(i, t, s).item()}, "fail", "expected a torch.Tensor"),
        Case("ex07_2", "right", lambda: {"clip_step": cs()}, "pass"),
        Case("ex07_2", "stub", lambda: {"clip_step": stub("ex07_2")}, "not_attempted", "NotImplementedError"),
        Case("ex07_2", "one direction only", lambda: {"clip_step": cs(one_way=True)}, "fail", "image→text half"),
        Case("ex07_2", "detached loss", lambda: {"clip_step": cs(detach=True)}, "fail", "grad_fn is None"),
        Case("ex07_2", "a fixed temperature", lambda: {"clip_step": fixed_scale_step}, "fail", "logits_per_image"),
        Case("ex07_2", "the bare loss, no dict", lambda: {"clip_step": lambda tr, b: clip_step(tr, b)["loss"]}, "fail", "{'loss': loss}"),
        Case("ex07_3", "right", lambda: {"ensemble_weights": ew()}, "pass"),
        Case("ex07_3", "stub", lambda: {"ensemble_weights": stub("ex07_3")}, "not_attempted", "NotImplementedError"),
        Case("ex07_3", "no normalisation before the mean", lambda: {"ensemble_weights": ew(pre=False)}, "fail", "before averaging"),
        Case("ex07_3", "no normalisation after the mean", lambda: {"ensemble_weights": ew(post=False)}, "fail", "expected 1"),
        Case("ex07_3", "prompts of classes mixed", lambda: {"ensemble_weights": ew(mixed=True)}, "fail", "class by class"),
        Case("ex07_4", "right", lambda: {"recall_at_k": recall}, "pass"),
        Case("ex07_4", "stub", lambda: {"recall_at_k": stub("ex07_4")}, "not_attempted", "NotImplementedError"),
        Case("ex07_4", "precision@k", lambda: {"recall_at_k": precision}, "fail", "precision@k"),
        Case("ex07_4", "only the diagonal", lambda: {"recall_at_k": diagonal}, "fail", "use the positives matrix"),
        Case("ex07_4", "k + 1 items (off by one)", lambda: {"recall_at_k": columns}, "fail", "top k + 1"),
        Case("ex07_4", "a tensor", lambda: {"recall_at_k": lambda s, p, k: torch.tensor(recall(s, p, k))}, "fail", "call .item()"),
        Case("ex07_5", "right", exp_ns, "pass"),
        Case("ex07_5", "made-up ensemble accuracy", lambda: exp_ns(ens_delta=0.1), "fail", "`ensemble_acc`"),
        Case("ex07_5", "made-up single accuracy", lambda: exp_ns(single_delta=-0.05), "fail", "`single_acc`"),
        Case("ex07_5", "gain the wrong way round", lambda: exp_ns(gain=-1.0), "fail", "ensemble_acc - single_acc"),
        Case("ex07_5", "nothing measured", lambda: experiment()[0], "fail", "is not defined"),
        Case("ex07_6", "right", conf_ns, "pass"),
        Case("ex07_6", "a made-up class", lambda: conf_ns("made up"), "fail", "expected one of the held-out class names"),
        Case("ex07_6", "the class itself as its mistake", lambda: conf_ns(mistaken="self"), "fail", "mistaken_for"),
        Case("ex07_6", "a rare mistake", lambda: conf_ns(mistaken="rare"), "fail", "most often predicted"),
    ])


CASES += _l07()

# --------------------------------------------------------------------------- lesson 09


def _l09() -> list[Case]:
    import itertools
    from math import factorial

    import numpy as np

    from tutorlib.explain.attribution import Attribution
    from tutorlib.explain.faithfulness import DeletionCurve
    from tutorlib.explain.gradients import integrated_gradients
    from tutorlib.explain.surrogate import fit_local_surrogate, lime_kernel
    from tutorlib.explain.tabular import LimeStability
    from tutorlib.explain.text import attention_rollout

    def shapley(f, x, baseline, *, weights=True, loo=False):
        d = len(x)
        phi = np.zeros(d)
        for i in range(d):
            if loo:
                phi[i] = f(x[None])[0] - f(np.where(np.arange(d) == i, baseline, x)[None])[0]
                continue
            others = [j for j in range(d) if j != i]
            for r in range(d):
                for S in itertools.combinations(others, r):
                    z = baseline.copy()
                    z[list(S)] = x[list(S)]
                    zi = z.copy()
                    zi[i] = x[i]
                    w = factorial(r) * factorial(d - r - 1) / factorial(d) if weights else 1 / 2 ** (d - 1)
                    phi[i] += w * (f(zi[None])[0] - f(z[None])[0])
        return phi

    def sv(**kw):
        return lambda f, x, b: shapley(f, x, b, **kw)

    kernel, fit = own(lime_kernel), own(fit_local_surrogate)

    def lime_ns(k=None, f=None):
        return {"lime_kernel": k or kernel, "fit_local_surrogate": f or fit}

    def fit_unweighted(Z, y, w, alpha):
        return fit(Z, y, np.ones_like(w), alpha)

    def fit_list(Z, y, w, alpha):
        b, c = fit(Z, y, w, alpha)
        return [b, c]

    ig_ref = own(integrated_gradients)

    def ig(method="riemann_middle"):
        return lambda f, x, b, steps: ig_ref(f, x, b, steps=steps, method=method)[0]

    def grad_x_input(f, x, b, steps):
        xg = x.clone().requires_grad_(True)
        return torch.autograd.grad(f(xg).sum(), xg)[0] * (x - b)

    def ig_no_scale(f, x, b, steps):
        return ig_ref(f, x, b, steps=steps, method="riemann_middle")[0] / (x - b)

    def curve(prob_fn, ids, order, *, rev=False, skip0=False):
        order = order[::-1] if rev else order
        probs = []
        for k in range(0 if not skip0 else 1, len(ids) + 1):
            gone = set(order[:k])
            probs.append(prob_fn([[t for p, t in enumerate(ids) if p not in gone]])[0])
        return np.array(probs)

    def auc(probs):
        return float(np.trapezoid(probs, np.linspace(0, 1, len(probs))))

    def del_ns(c=None, a=None):
        return {"deletion_curve": c or curve, "curve_auc": a or auc}

    roll = own(attention_rollout)

    def roll_plain(att):
        r = torch.eye(att.shape[-1])
        for layer in att.mean(1):
            r = layer @ r
        return r

    def roll_reversed(att):
        eye = torch.eye(att.shape[-1])
        r = eye
        for layer in att.mean(1):
            a = 0.5 * layer + 0.5 * eye
            r = r @ (a / a.sum(-1, keepdim=True))
        return r

    def roll_max_heads(att):
        eye = torch.eye(att.shape[-1])
        r = eye
        for layer in att.max(1).values:
            a = 0.5 * layer + 0.5 * eye
            r = (a / a.sum(-1, keepdim=True)) @ r
        return r

    spear = np.array([[0.5, 0.6, 0.7], [0.8, 0.9, 0.85], [0.3, 0.4, 0.45]])
    stab = LimeStability([0.5, 1.0, 3.0], [100, 500, 2000], [0, 1, 2], np.zeros((3, 3, 3, 2)), spear, spear, 2, ["a", "b"])

    def stab_ns(setting=(1.0, 500), noisy=3.0):
        return {"stability": stab, "most_stable_setting": setting, "noisiest_width": noisy}

    def disagree_ns(rho_shift=0.0, text_pick="lowest", answer="ig", pred_shift=0.0):
        texts = ["a fine film", "not bad at all", "dull and slow"]
        a_ig = Attribution(["not", "bad", "at", "all"], [0.1, 0.8, -0.2, 0.3], "ig", 1, 0.9, text="not bad at all")
        a_att = Attribution(["not", "bad", "at", "all"], [0.5, 0.1, 0.4, 0.05], "attention", 1, 0.9, text="not bad at all")
        from tutorlib.explain.agreement import spearman

        rho = {"a fine film": 0.8, "not bad at all": spearman(a_ig, a_att) + rho_shift, "dull and slow": 0.5}
        fr = np.linspace(0, 1, 5)
        curves = {"ig": DeletionCurve(fr, np.array([0.9 + pred_shift, 0.3, 0.2, 0.1, 0.1]), "ig"),
                  "attention": DeletionCurve(fr, np.array([0.9 + pred_shift, 0.8, 0.6, 0.3, 0.1]), "attention")}
        text = {"lowest": "not bad at all", "highest": "a fine film"}[text_pick]
        return {"candidates": texts, "rho_by_text": rho, "disagree_text": text, "disagree_attrs": {"ig": a_ig, "attention": a_att},
                "curves": curves, "more_faithful": answer}

    return lesson("09", [
        Case("ex09_1", "right", lambda: {"shapley_values": sv()}, "pass"),
        Case("ex09_1", "stub", lambda: {"shapley_values": stub("ex09_1")}, "not_attempted", "NotImplementedError"),
        Case("ex09_1", "leave-one-out", lambda: {"shapley_values": sv(loo=True)}, "fail", "leave-one-out"),
        Case("ex09_1", "equal coalition weights", lambda: {"shapley_values": sv(weights=False)}, "fail", "|S|!(d−|S|−1)!/d!"),
        Case("ex09_1", "a list of the wrong length", lambda: {"shapley_values": lambda f, x, b: [0.0]}, "fail", "has shape"),
        Case("ex09_2", "right", lime_ns, "pass"),
        Case("ex09_2", "stub", lambda: lime_ns(k=stub("ex09_2")), "not_attempted", "NotImplementedError"),
        Case("ex09_2", "no square root", lambda: lime_ns(k=lambda d, w: np.exp(-d ** 2 / w ** 2)), "fail", "square root"),
        Case("ex09_2", "distance not squared", lambda: lime_ns(k=lambda d, w: np.exp(-d / w)), "fail", "square the distance"),
        Case("ex09_2", "weights ignored", lambda: lime_ns(f=fit_unweighted), "fail", "ignores the weights"),
        Case("ex09_2", "a list, not a tuple", lambda: lime_ns(f=fit_list), "fail", "tuple (intercept, coef)"),
        Case("ex09_3", "right", lambda: {"integrated_gradients": ig()}, "pass"),
        Case("ex09_3", "stub", lambda: {"integrated_gradients": stub("ex09_3")}, "not_attempted", "NotImplementedError"),
        Case("ex09_3", "left Riemann sum (off by one)", lambda: {"integrated_gradients": ig("riemann_left")}, "fail", "midpoints"),
        Case("ex09_3", "gradient × input", lambda: {"integrated_gradients": grad_x_input}, "fail", "gradient × input"),
        Case("ex09_3", "not multiplied by x − baseline", lambda: {"integrated_gradients": ig_no_scale}, "fail", "(x − baseline)"),
        Case("ex09_4", "right", del_ns, "pass"),
        Case("ex09_4", "stub", lambda: del_ns(c=stub("ex09_4")), "not_attempted", "NotImplementedError"),
        Case("ex09_4", "k = 0 left out (off by one)", lambda: del_ns(c=lambda p, i, o: curve(p, i, o, skip0=True)), "fail", "include k = 0"),
        Case("ex09_4", "removes from the end of order", lambda: del_ns(c=lambda p, i, o: curve(p, i, o, rev=True)), "fail", "order[0]"),
        Case("ex09_4", "the mean, not the area", lambda: del_ns(a=lambda p: float(np.mean(p))), "fail", "trapezoid"),
        Case("ex09_4", "x from 0 to n (missing scale)", lambda: del_ns(a=lambda p: float(np.trapezoid(p))), "fail", "from 0 to 1"),
        Case("ex09_5", "right", lambda: {"rollout": roll}, "pass"),
        Case("ex09_5", "stub", lambda: {"rollout": stub("ex09_5")}, "not_attempted", "NotImplementedError"),
        Case("ex09_5", "no residual identity", lambda: {"rollout": roll_plain}, "fail", "identity"),
        Case("ex09_5", "multiplied in the wrong order", lambda: {"rollout": roll_reversed}, "fail", "other order"),
        Case("ex09_5", "max over heads (wrong reduction)", lambda: {"rollout": roll_max_heads}, "fail", "rollout(att)"),
        Case("ex09_6", "right", stab_ns, "pass"),
        Case("ex09_6", "a less stable setting", lambda: stab_ns(setting=(1.0, 2000)), "fail", "highest point"),
        Case("ex09_6", "a setting not run", lambda: stab_ns(setting=(2.0, 500)), "fail", "not a setting you ran"),
        Case("ex09_6", "the most stable width as noisiest", lambda: stab_ns(noisy=1.0), "fail", "lowest curve"),
        Case("ex09_6", "a list, not a tuple", lambda: stab_ns(setting=[1.0, 500]), "fail", "must be a tuple"),
        Case("ex09_7", "right", disagree_ns, "pass"),
        Case("ex09_7", "made-up ρ", lambda: disagree_ns(rho_shift=-0.5), "fail", "spearman(ig, attention)"),
        Case("ex09_7", "the most agreeing sentence", lambda: disagree_ns(text_pick="highest"), "fail", "lowest ρ"),
        Case("ex09_7", "the less faithful method", lambda: disagree_ns(answer="attention"), "fail", "lower area"),
        Case("ex09_7", "curves from another model", lambda: disagree_ns(pred_shift=-0.2), "fail", "same model and sentence"),
    ])


CASES += _l09()

# --------------------------------------------------------------------------- lesson 06


def _l06() -> list[Case]:
    from functools import lru_cache

    from torch import nn

    class LoRA(nn.Module):
        def __init__(self, base, r=8, alpha=16.0):
            super().__init__()
            self.base = base
            self.base.requires_grad_(False)
            self.lora_A = nn.Linear(base.in_features, r, bias=False)
            self.lora_B = nn.Linear(r, base.out_features, bias=False)
            nn.init.zeros_(self.lora_B.weight)
            self.scaling = alpha / r

        def forward(self, x):
            return self.base(x) + self.scaling * self.lora_B(self.lora_A(x))

    class NoScaling(LoRA):
        def forward(self, x):
            return self.base(x) + self.lora_B(self.lora_A(x))

    class OnlyUpdate(LoRA):
        def forward(self, x):
            return self.scaling * self.lora_B(self.lora_A(x))

    class Detached(LoRA):
        def forward(self, x):
            return self.base(x) + self.scaling * self.lora_B(self.lora_A(x)).detach()

    class Unfrozen(LoRA):
        def __init__(self, base, r=8, alpha=16.0):
            super().__init__(base, r, alpha)
            self.base.requires_grad_(True)

    class Stub(LoRA):
        def forward(self, x):
            raise NotImplementedError("ex06_1: write your answer here")

    def merged(layer, scale=True, bias=True):
        out = nn.Linear(layer.base.in_features, layer.base.out_features, bias=bias and layer.base.bias is not None)
        with torch.no_grad():
            out.weight.copy_(layer.base.weight + (layer.scaling if scale else 1.0) * layer.lora_B.weight @ layer.lora_A.weight)
            if out.bias is not None:
                out.bias.copy_(layer.base.bias)
        return out

    def merged_in_place(layer):
        with torch.no_grad():
            layer.base.weight += layer.scaling * layer.lora_B.weight @ layer.lora_A.weight
        return layer.base

    def count(model, targets, r, *, how="suffix"):
        match = {"suffix": lambda n, t: n == t or n.endswith("." + t), "substring": lambda n, t: t in n,
                 "no dot": lambda n, t: n.endswith(t)}[how]
        return sum(r * (m.in_features + m.out_features) for n, m in model.named_modules()
                   if isinstance(m, nn.Linear) and any(match(n, t) for t in targets))

    def full_matrices(model, targets, r):
        return sum(m.in_features * m.out_features for n, m in model.named_modules()
                   if isinstance(m, nn.Linear) and any(n.endswith("." + t) for t in targets))

    from test_peft_checks import Adapter, NoActivation, NoResidual, NoZeroInit

    class AdapterStub(nn.Module):
        def __init__(self, hidden, bottleneck):
            raise NotImplementedError("ex06_4: write your answer here")

    def rank(model, targets, budget):
        per = count(model, targets, 1)
        return budget // per if per else 0

    @lru_cache(maxsize=1)
    def experiment():
        from transformers import BertConfig, BertModel

        from tutorlib.data import load_reviews, text_collate
        from tutorlib.models import load_tokenizer, trainable_summary
        from tutorlib.peft import build_model
        from tutorlib.train import Trainer

        torch.manual_seed(0)
        enc = BertModel(BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                   intermediate_size=64))
        val = load_reviews("val", limit=64)
        model = build_model("lora", r=4, encoder=enc)
        hist = Trainer(model, lr=1e-2, batch_size=8, collate_fn=text_collate(load_tokenizer(), 32), progress=False,
                       log=False).fit(load_reviews("train", limit=8), val, epochs=1)
        r2 = build_model("lora", r=2, encoder=enc)
        return model, val, trainable_summary(model)["percent"], hist["val_accuracy"][-1], r2

    def exp_ns(**override):
        model, val, pct, acc, r2 = experiment()
        ns = {"exp_model": model, "exp_val": val, "exp_trainable_percent": pct, "exp_val_accuracy": acc}
        for k, v in override.items():
            ns[k] = v(ns) if isinstance(v, types.FunctionType) else v
        return ns

    def made_up_acc(ns):
        a = ns["exp_val_accuracy"]
        return min(1.0, a + 0.25) if a < 0.75 else a - 0.25

    def res():
        from tutorlib.peft import MethodResult

        return [MethodResult("full", "full", 9, 9, 100.0, 400, 1.0, 0.80), MethodResult("lora", "LoRA", 1, 9, 1.0, 100, 1.0, 0.79),
                MethodResult("head", "head", 1, 9, 0.1, 50, 1.0, 0.70)]

    def table(ratio=4.0, good="lora"):
        return {"table_results": res(), "memory_ratio": ratio, "cheapest_good": good}

    return lesson("06", [
        Case("ex06_1", "right", lambda: {"LoRA": LoRA}, "pass"),
        Case("ex06_1", "stub", lambda: {"LoRA": Stub}, "not_attempted", "NotImplementedError"),
        Case("ex06_1", "no scaling (missing scale)", lambda: {"LoRA": NoScaling}, "fail", "multiplied by self.scaling"),
        Case("ex06_1", "only the update", lambda: {"LoRA": OnlyUpdate}, "fail", "add the base output"),
        Case("ex06_1", "update detached", lambda: {"LoRA": Detached}, "fail", "no gradient reached lora_A"),
        Case("ex06_1", "base left trainable", lambda: {"LoRA": Unfrozen}, "fail", "LoRA freezes them"),
        Case("ex06_2", "right", lambda: {"merged_linear": merged}, "pass"),
        Case("ex06_2", "stub", lambda: {"merged_linear": stub("ex06_2")}, "not_attempted", "NotImplementedError"),
        Case("ex06_2", "no scaling", lambda: {"merged_linear": lambda l: merged(l, scale=False)}, "fail", "multiply B @ A by layer.scaling"),
        Case("ex06_2", "base changed in place", lambda: {"merged_linear": merged_in_place}, "fail", "changed its input"),
        Case("ex06_2", "bias dropped", lambda: {"merged_linear": lambda l: merged(l, bias=False)}, "fail", "keep the base's bias"),
        Case("ex06_2", "a weight, not a layer", lambda: {"merged_linear": lambda l: l.base.weight}, "fail", "expected a plain nn.Linear"),
        Case("ex06_3", "right", lambda: {"count_lora_parameters": count}, "pass"),
        Case("ex06_3", "stub", lambda: {"count_lora_parameters": stub("ex06_3")}, "not_attempted", "NotImplementedError"),
        Case("ex06_3", "full matrices", lambda: {"count_lora_parameters": full_matrices}, "fail", "counted the full weight matrices"),
        Case("ex06_3", "substring match", lambda: {"count_lora_parameters": lambda m, t, r: count(m, t, r, how="substring")},
             "fail", "merely contain a target"),
        Case("ex06_3", "suffix without the dot", lambda: {"count_lora_parameters": lambda m, t, r: count(m, t, r, how="no dot")},
             "fail", "'subquery' ends with 'query'"),
        Case("ex06_3", "a float", lambda: {"count_lora_parameters": lambda m, t, r: 1.5}, "fail", "expected a Python int"),
        Case("ex06_4", "right", lambda: {"Adapter": Adapter}, "pass"),
        Case("ex06_4", "stub", lambda: {"Adapter": AdapterStub}, "not_attempted", "NotImplementedError"),
        Case("ex06_4", "no residual", lambda: {"Adapter": NoResidual}, "fail", "start as the identity"),
        Case("ex06_4", "up not zero-initialised", lambda: {"Adapter": NoZeroInit}, "fail", "start as the identity"),
        Case("ex06_4", "no activation", lambda: {"Adapter": NoActivation}, "fail", "GELU"),
        Case("ex06_5", "right", lambda: {"largest_rank": rank, "count_lora_parameters": count}, "pass"),
        Case("ex06_5", "stub", lambda: {"largest_rank": stub("ex06_5"), "count_lora_parameters": count}, "not_attempted",
             "NotImplementedError"),
        Case("ex06_5", "one over (off by one)", lambda: {"largest_rank": lambda m, t, b: rank(m, t, b) + 1}, "fail", "more than the budget"),
        Case("ex06_5", "one under", lambda: {"largest_rank": lambda m, t, b: max(rank(m, t, b) - 1, 0)}, "fail", "largest_rank"),
        Case("ex06_5", "a float division", lambda: {"largest_rank": lambda m, t, b: b / count(m, t, 1)}, "fail", "int"),
        Case("ex06_6", "right", exp_ns, "pass"),
        Case("ex06_6", "made-up accuracy", lambda: exp_ns(exp_val_accuracy=made_up_acc), "fail", "re-measured"),
        Case("ex06_6", "percent as a fraction", lambda: exp_ns(exp_trainable_percent=lambda ns: ns["exp_trainable_percent"] / 100),
             "fail", "exp_trainable_percent"),
        Case("ex06_6", "a model of another rank", lambda: exp_ns(exp_model=experiment()[4]), "fail", "r=4"),
        Case("ex06_6", "not a model", lambda: exp_ns(exp_model=3), "fail", "should be the model you trained"),
        Case("ex06_7", "right", table, "pass"),
        Case("ex06_7", "ratio upside down", lambda: table(ratio=0.25), "fail", "other way round"),
        Case("ex06_7", "the cheapest, too inaccurate", lambda: table(good="head"), "fail", "more than 2 points"),
        Case("ex06_7", "the most accurate, not the cheapest", lambda: table(good="full"), "fail", "needs less peak memory"),
        Case("ex06_7", "a made-up method", lambda: table(good="qlora"), "fail", "not a method of the table"),
    ])


CASES += _l06()

# --------------------------------------------------------------------------- answers made from the solution notebooks
#
# For lessons whose exercises are small functions, the right answer is the solution notebook's own cell
# and each mutant is that cell with one plausible edit (``sol(ex, old, new)``): the table stays short and
# follows the solutions when they change.

_ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]


def solution_source(exercise: str) -> str:
    import nbformat

    path = sorted((_ROOT / "solutions").glob(f"{exercise[2:4]}_*.ipynb"))[0]
    for cell in nbformat.read(path, as_version=4).cells:
        if cell.cell_type == "code" and cell.get("metadata", {}).get("tutorlib", {}).get("exercise") == exercise:
            return cell.source
    raise KeyError(f"{exercise} has no cell in {path.name}")


def sol(exercise: str, *edits: tuple[str, str]) -> Callable[[], dict[str, Any]]:
    """The namespace of the solution cell of ``exercise`` with each ``(old, new)`` edit applied (old must occur)."""
    def namespace() -> dict[str, Any]:
        import numpy as np
        import scipy.linalg
        import torch.nn.functional as F
        from torch import nn

        src = solution_source(exercise)
        for old, new in edits:
            if old not in src:
                raise AssertionError(f"{exercise}: the solution cell no longer contains {old!r}")
            src = src.replace(old, new)
        ns: dict[str, Any] = {"torch": torch, "F": F, "nn": nn, "np": np, "scipy": scipy, "math": math}
        exec(compile(src, f"<{exercise} solution>", "exec"), ns)
        return ns
    return namespace


STUB = ("# BEGIN SOLUTION", "raise NotImplementedError('write your answer here')\n    # BEGIN SOLUTION")


def _l00() -> list[Case]:
    return lesson("00", [
        Case("ex00_1", "right", sol("ex00_1"), "pass"),
        Case("ex00_1", "stub", sol("ex00_1", STUB), "not_attempted", "NotImplementedError"),
        Case("ex00_1", "randn, not rand", sol("ex00_1", ("torch.rand(", "torch.randn(")), "fail", "torch.rand"),
        Case("ex00_1", "no channel dimension", sol("ex00_1", ("n, 1, 8, 8", "n, 8, 8")), "fail", "expected (4, 1, 8, 8)"),
        Case("ex00_1", "NumPy's generator", sol("ex00_1", ("return torch.rand(n, 1, 8, 8, device=device)",
                                                            "return torch.from_numpy(np.random.rand(n, 1, 8, 8).astype('float32')).to(device)")),
             "fail", "reproducible"),
        Case("ex00_2", "right", sol("ex00_2"), "pass"),
        Case("ex00_2", "stub", sol("ex00_2", STUB), "not_attempted", "NotImplementedError"),
        Case("ex00_2", "count, not fraction", sol("ex00_2", (".float().mean().item()", ".float().sum().item()")), "fail",
             "divide by the batch size"),
        Case("ex00_2", "a percentage", sol("ex00_2", (".float().mean().item()", ".float().mean().item() * 100")), "fail", "percentage"),
        Case("ex00_2", "a tensor", sol("ex00_2", (".float().mean().item()", ".float().mean()")), "fail", "call .item()"),
        Case("ex00_2", "argmax over the batch (wrong axis)", sol("ex00_2", ("argmax(dim=1)", "argmax(dim=0)[:1]")), "fail", "accuracy"),
        Case("ex00_3", "right", sol("ex00_3"), "pass"),
        Case("ex00_3", "stub", sol("ex00_3", ("return sum(", "raise NotImplementedError('write your answer here')\n    return sum(")),
             "not_attempted", "NotImplementedError"),
        Case("ex00_3", "frozen ones counted", sol("ex00_3", (" if p.requires_grad", "")), "fail", "frozen parameters too"),
        Case("ex00_3", "tensors counted", sol("ex00_3", ("p.numel()", "1")), "fail", "counted parameter tensors"),
        Case("ex00_3", "state_dict with buffers", sol("ex00_3", ("p.numel() for p in model.parameters() if p.requires_grad",
                                                                 "v.numel() for v in model.state_dict().values()")), "fail", "buffers"),
        Case("ex00_4", "right", sol("ex00_4"), "pass"),
        Case("ex00_4", "stub", sol("ex00_4", STUB), "not_attempted", "NotImplementedError"),
        Case("ex00_4", "no zero_grad", sol("ex00_4", ("    optimizer.zero_grad()\n", "")), "fail", "zero_grad"),
        Case("ex00_4", "no step", sol("ex00_4", ("    optimizer.step()\n", "")), "fail", "parameters unchanged"),
        Case("ex00_4", "loss after the step", sol("ex00_4", ("return loss.item()", "return F.cross_entropy(model(x), y).item()")),
             "fail", "before the step"),
        Case("ex00_5", "right", sol("ex00_5"), "pass"),
        Case("ex00_5", "stub", sol("ex00_5", STUB), "not_attempted", "NotImplementedError"),
        Case("ex00_5", "unbiased std", sol("ex00_5", (", correction=0", "")), "fail", "correction=0"),
        Case("ex00_5", "the whole batch at once (wrong axis)", sol("ex00_5", ("dims = tuple(range(1, x.dim()))", "dims = tuple(range(x.dim()))")),
             "fail", "whole batch"),
        Case("ex00_5", "input changed in place", sol("ex00_5", ("return (x - mean) / (std + eps)", "x -= mean\n    return x / (std + eps)")),
             "fail", "in place"),
    ])


def _l02() -> list[Case]:
    return lesson("02", [
        Case("ex02_1", "right", sol("ex02_1"), "pass"),
        Case("ex02_1", "stub", sol("ex02_1", STUB), "not_attempted", "NotImplementedError"),
        Case("ex02_1", "mean, not sum (wrong reduction)", sol("ex02_1", ("p.abs().sum()", "p.abs().mean()")), "fail", "sum p.abs().sum()"),
        Case("ex02_1", "a Python number", sol("ex02_1", ("return sum(", "return float(sum("), ("p.dim() > 1)", "p.dim() > 1))")),
             "fail", "no .item()"),
        Case("ex02_1", "squares (L2)", sol("ex02_1", ("p.abs().sum()", "p.pow(2).sum()")), "fail", "l1_penalty"),
        Case("ex02_2", "right", sol("ex02_2"), "pass"),
        Case("ex02_2", "stub", sol("ex02_2", STUB), "not_attempted", "NotImplementedError"),
        Case("ex02_2", "no 1/(1 - p) (missing scale)", sol("ex02_2", (" / (1 - p)", "")), "fail", "divide them by (1 - p)"),
        Case("ex02_2", "p is the keep rate", sol("ex02_2", (">= p", "< p")), "fail", "probability to DROP"),
        Case("ex02_2", "dropout at evaluation", sol("ex02_2", ("if not training or p == 0:", "if p == 0:")), "fail", "not training"),
        Case("ex02_3", "right", sol("ex02_3"), "pass"),
        Case("ex02_3", "stub", sol("ex02_3", STUB), "not_attempted", "NotImplementedError"),
        Case("ex02_3", "torch.roll wraps around", sol("ex02_3", ("    h, w = x.shape[-2], x.shape[-1]",
                                                                 "    return torch.roll(x, (dy, dx), (-2, -1))")), "fail", "torch.roll"),
        Case("ex02_3", "dx and dy swapped (wrong axis)", sol("ex02_3", ("def shift_image(x, dx, dy):", "def shift_image(x, dy, dx):")),
             "fail", "dx moves along the width"),
        Case("ex02_3", "shifted the other way", sol("ex02_3", ("def shift_image(x, dx, dy):", "def shift_image(x, dx, dy):\n    dx, dy = -dx, -dy")),
             "fail", "positive dx moves the content to the right"),
        Case("ex02_4", "right", sol("ex02_4"), "pass"),
        Case("ex02_4", "stub", sol("ex02_4", STUB), "not_attempted", "NotImplementedError"),
        Case("ex02_4", "rows do not sum to 1", sol("ex02_4", ("eps / num_classes", "eps")), "fail", "sum to 1"),
        Case("ex02_4", "summed over the batch", sol("ex02_4", (".sum(dim=1).mean()", ".sum(dim=1).sum()")), "fail", "take the mean"),
        Case("ex02_4", "plus instead of minus", sol("ex02_4", ("return -(soft", "return (soft")), "fail", "minus the sum"),
    ])


def _l08() -> list[Case]:
    return lesson("08", [
        Case("ex08_1", "right", sol("ex08_1"), "pass"),
        Case("ex08_1", "stub", sol("ex08_1", STUB), "not_attempted", "NotImplementedError"),
        Case("ex08_1", "logvar as the std", sol("ex08_1", ("torch.exp(0.5 * logvar)", "logvar")), "fail", "reparameterize"),
        Case("ex08_1", "exp(logvar), not its root (missing scale)", sol("ex08_1", ("torch.exp(0.5 * logvar)", "torch.exp(logvar)")),
             "fail", "reparameterize"),
        Case("ex08_1", "fresh noise, not eps", sol("ex08_1", ("* eps", "* torch.randn_like(mu)")), "fail", "reparameterize"),
        Case("ex08_2", "right", sol("ex08_2"), "pass"),
        Case("ex08_2", "stub", sol("ex08_2", STUB), "not_attempted", "NotImplementedError"),
        Case("ex08_2", "mean over the batch too (wrong reduction)", sol("ex08_2", (".sum(dim=1)", ".sum(dim=1).mean()")), "fail",
             "kl_to_standard_normal"),
        Case("ex08_2", "no 0.5", sol("ex08_2", ("0.5 * (", "(")), "fail", "kl_to_standard_normal"),
        Case("ex08_2", "summed over the batch (wrong axis)", sol("ex08_2", (".sum(dim=1)", ".sum(dim=0)")), "fail", "kl_to_standard_normal"),
        Case("ex08_4", "right", sol("ex08_4"), "pass"),
        Case("ex08_4", "stub", sol("ex08_4", STUB), "not_attempted", "NotImplementedError"),
        Case("ex08_4", "linear interpolation", sol("ex08_4", ("return (torch.sin((1 - t) * omega) * z0 + torch.sin(t * omega) * z1) / torch.sin(omega)",
                                                              "return (1 - t) * z0 + t * z1")), "fail", "slerp"),
        Case("ex08_4", "ends swapped", sol("ex08_4", ("torch.sin((1 - t) * omega) * z0 + torch.sin(t * omega) * z1",
                                                      "torch.sin(t * omega) * z0 + torch.sin((1 - t) * omega) * z1")), "fail", "slerp"),
        Case("ex08_4", "angle not clamped to the norms", sol("ex08_4", ("cos = torch.dot(z0, z1) / (z0.norm() * z1.norm())",
                                                                        "cos = torch.dot(z0, z1)")), "fail", "slerp"),
        Case("ex08_5", "right", sol("ex08_5"), "pass"),
        Case("ex08_5", "stub", sol("ex08_5", STUB), "not_attempted", "NotImplementedError"),
        Case("ex08_5", "no covariance term", sol("ex08_5", ("+ np.trace(sigma_a) + np.trace(sigma_b) - 2 * np.trace(covmean)", "")),
             "fail", "frechet_distance"),
        Case("ex08_5", "covariance of the transpose (wrong axis)", sol("ex08_5", ("rowvar=False), np.cov(b, rowvar=False)",
                                                                                 "rowvar=True), np.cov(b, rowvar=True)")),
             "fail", "frechet_distance"),
        Case("ex08_5", "root of the means' distance", sol("ex08_5", ("((mu_a - mu_b) ** 2).sum()", "np.sqrt(((mu_a - mu_b) ** 2).sum())")),
             "fail", "frechet_distance"),
    ])


def _l13() -> list[Case]:
    return lesson("13", [
        Case("ex13_1", "right", sol("ex13_1"), "pass"),
        Case("ex13_1", "stub", sol("ex13_1", STUB), "not_attempted", "NotImplementedError"),
        Case("ex13_1", "window off by one", sol("ex13_1", ("(d < window)", "(d <= window)")), "fail", "sliding_window_mask"),
        Case("ex13_1", "looks at the future", sol("ex13_1", ("(d >= 0) & ", "")), "fail", "sliding_window_mask"),
        Case("ex13_1", "transposed", sol("ex13_1", ("d = i[:, None] - i[None, :]", "d = i[None, :] - i[:, None]")), "fail",
             "sliding_window_mask"),
        Case("ex13_2", "right", sol("ex13_2"), "pass"),
        Case("ex13_2", "stub", sol("ex13_2", STUB), "not_attempted", "NotImplementedError"),
        Case("ex13_2", "weights not renormalised", sol("ex13_2", ("return top_p / top_p.sum(-1, keepdim=True), idx, probs",
                                                                  "return top_p, idx, probs")), "fail", "top_k_routing"),
        Case("ex13_2", "no n_experts factor (missing scale)", sol("ex13_2", ("return n_experts * (f * probs.mean(0)).sum()",
                                                                             "return (f * probs.mean(0)).sum()")), "fail", "load_balancing_loss"),
        Case("ex13_2", "softmax over tokens (wrong axis)", sol("ex13_2", ("torch.softmax(logits, dim=-1)", "torch.softmax(logits, dim=0)")),
             "fail", "top_k_routing"),
        Case("ex13_3", "right", sol("ex13_3"), "pass"),
        Case("ex13_3", "stub", sol("ex13_3", STUB), "not_attempted", "NotImplementedError"),
        Case("ex13_3", "descends the loss", sol("ex13_3", ("x.detach() + eps", "x.detach() - eps")), "fail", "fgsm"),
        Case("ex13_3", "raw gradient, not its sign", sol("ex13_3", ("grad.sign()", "grad")), "fail", "fgsm"),
        Case("ex13_3", "not clamped to [0, 1]", sol("ex13_3", (".clamp(0, 1)", "")), "fail", "fgsm"),
        Case("ex13_4", "right", sol("ex13_4"), "pass"),
        Case("ex13_4", "stub", sol("ex13_4", STUB), "not_attempted", "NotImplementedError"),
        Case("ex13_4", "TPR gap only", sol("ex13_4", ("max(gap(tprs), gap(fprs))", "gap(tprs)")), "fail", "equalized_odds_gap"),
        Case("ex13_4", "mean of the gaps (wrong reduction)", sol("ex13_4", ("max(gap(tprs), gap(fprs))", "(gap(tprs) + gap(fprs)) / 2")),
             "fail", "equalized_odds_gap"),
        Case("ex13_4", "accuracy gap", sol("ex13_4", ("    tprs, fprs = [], []", "    return float(max(abs((y_pred[groups == g] == y_true[groups == g]).mean() - (y_pred == y_true).mean()) for g in np.unique(groups)))\n    tprs, fprs = [], []")),
             "fail", "equalized_odds_gap"),
        Case("ex13_5", "right", sol("ex13_5"), "pass"),
        Case("ex13_5", "stub", sol("ex13_5", STUB), "not_attempted", "NotImplementedError"),
        Case("ex13_5", "clipped per tensor", sol("ex13_5", ("    norms = torch.sqrt(sum(g.flatten(1).pow(2).sum(1) for g in grads.values()))\n    factor = (max_norm / (norms + 1e-6)).clamp(max=1.0)\n    return {n: g * factor.view(-1, *([1] * (g.dim() - 1))) for n, g in grads.items()}",
                                                                "    return {n: g * (max_norm / (g.flatten(1).norm(dim=1) + 1e-6)).clamp(max=1.0).view(-1, *([1] * (g.dim() - 1))) for n, g in grads.items()}")),
             "fail", "clip_per_sample"),
        Case("ex13_5", "small gradients scaled up", sol("ex13_5", (".clamp(max=1.0)", "")), "fail", "clip_per_sample"),
        Case("ex13_5", "one norm for the whole batch (wrong axis)", sol("ex13_5", ("g.flatten(1).pow(2).sum(1)", "g.pow(2).sum()")),
             "fail", "clip_per_sample"),
        Case("ex13_6", "right", sol("ex13_6"), "pass"),
        Case("ex13_6", "stub", sol("ex13_6", STUB), "not_attempted", "NotImplementedError"),
        Case("ex13_6", "unweighted mean", sol("ex13_6", ("(w / total) * s[name]", "s[name] / len(states)")), "fail", "fedavg"),
        Case("ex13_6", "weights not normalised (missing scale)", sol("ex13_6", ("(w / total)", "w")), "fail", "fedavg"),
        Case("ex13_6", "only the first client", sol("ex13_6", ("zip(weights, states)", "zip(weights[:1], states[:1])")), "fail", "fedavg"),
    ])


CASES += _l00() + _l02() + _l08() + _l13()


def _l02_08_more() -> list[Case]:
    from tutorlib.train import History

    val = [1.0, 0.7, 0.5, 0.45, 0.52, 0.6, 0.75, 0.9]
    train = [1.0, 0.6, 0.4, 0.3, 0.2, 0.15, 0.1, 0.05]
    hist = lambda: History([{"epoch": i, "train_loss": t, "val_loss": v} for i, (t, v) in enumerate(zip(train, val))], [])  # noqa: E731
    gan = "ex08_3"
    return lesson("02", [
        Case("ex02_6", "right", lambda: {"overfit_history": hist(), "best_epoch": 4}, "pass"),
        Case("ex02_6", "right: an epoch next to the lowest (within 10 % of the range, tolerated)", lambda: {"overfit_history": hist(), "best_epoch": 3}, "pass"),
        Case("ex02_6", "the training curve's bottom", lambda: {"overfit_history": hist(), "best_epoch": 8}, "fail", "not of the training curve"),
        Case("ex02_6", "the first epoch", lambda: {"overfit_history": hist(), "best_epoch": 1}, "fail", "well above its lowest"),
        Case("ex02_6", "past the run", lambda: {"overfit_history": hist(), "best_epoch": 9}, "fail", "epochs 1 to 8"),
        Case("ex02_6", "a string", lambda: {"overfit_history": hist(), "best_epoch": "4"}, "fail", "expected a Python int"),
    ]) + lesson("08", [
        Case(gan, "right", sol(gan), "pass"),
        Case(gan, "stub", sol(gan, STUB), "not_attempted", "NotImplementedError"),
        Case(gan, "fakes not detached in the D step", sol(gan, ("D(fake.detach())", "D(fake)")), "fail", "gan_train_step"),
        Case(gan, "no loss on the fakes", sol(gan, ("\n              + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits)))", ")")),
             "fail", "add the loss on the fakes"),
        Case(gan, "saturating G loss (labels 0, minimised)", sol(gan, ("g_loss = F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))",
                                                                        "g_loss = -F.binary_cross_entropy_with_logits(logits, torch.zeros_like(logits))")),
             "fail", "non-saturating"),
        Case(gan, "G never steps", sol(gan, ("    opt_g.step()\n", "")), "fail", "generator's parameters did not change"),
    ])


CASES += _l02_08_more()


def _l11() -> list[Case]:
    return lesson("11", [
        Case("ex11_1", "right", sol("ex11_1"), "pass"),
        Case("ex11_1", "stub", sol("ex11_1", STUB), "not_attempted", "NotImplementedError"),
        Case("ex11_1", "system message always", sol("ex11_1", (" if system is not None else []", "")), "fail", "no system message"),
        Case("ex11_1", "shots all as user turns", sol("ex11_1", ('{"role": "assistant", "content": answer}', '{"role": "user", "content": answer}')),
             "fail", "roles"),
        Case("ex11_1", "query first", sol("ex11_1", ('messages = [{"role": "system", "content": system}] if system is not None else []',
                                                     'messages = [{"role": "user", "content": query}] + ([{"role": "system", "content": system}] if system is not None else [])'),
                                          ('    messages.append({"role": "user", "content": query})\n', '')), "fail", "first message is the system"),
        Case("ex11_2", "right", sol("ex11_2"), "pass"),
        Case("ex11_2", "stub", sol("ex11_2", STUB), "not_attempted", "NotImplementedError"),
        Case("ex11_2", "everything labelled", sol("ex11_2", ("labels = [-100] * len(input_ids)", "labels = list(input_ids)")), "fail", "must be -100"),
        Case("ex11_2", "assistant header labelled", sol("ex11_2", ("start = len(render(messages[:k], gen=True))", "start = len(render(messages[:k]))")),
             "fail", "header"),
        Case("ex11_2", "no end-of-turn token", sol("ex11_2", ("stop = input_ids.index(tokenizer.eos_token_id, start) + 1",
                                                               "stop = input_ids.index(tokenizer.eos_token_id, start)")), "fail", "end-of-turn"),
        Case("ex11_2", "last answer only", sol("ex11_2", ("        if m[\"role\"] != \"assistant\":\n            continue",
                                                           "        if k != len(messages) - 1:\n            continue")), "fail", "every assistant turn"),
        Case("ex11_2", "labels shifted", sol("ex11_2", ("return input_ids, labels", "return input_ids, labels[1:] + [-100]")), "fail", "shift"),
        Case("ex11_3", "right", sol("ex11_3"), "pass"),
        Case("ex11_3", "stub", sol("ex11_3", STUB), "not_attempted", "NotImplementedError"),
        Case("ex11_3", "prefix not checked", sol("ex11_3", (" and list(c[:n]) == list(prefix)", "")), "fail", "equal the prefix"),
        Case("ex11_3", "finished values kept", sol("ex11_3", ("if len(c) > n and", "if len(c) >= n and"), ("{c[n] for", "{c[min(n, len(c) - 1)] for")),
             "fail", "expected"),
        Case("ex11_3", "unsorted with repeats", sol("ex11_3", ("allowed = {c[n] for", "allowed = [c[n] for"), ("list(prefix)}", "list(prefix)]"),
                                                    ("return sorted(allowed)", "return allowed[::-1]")), "fail", "sorted"),
        Case("ex11_4", "right", sol("ex11_4"), "pass"),
        Case("ex11_4", "stub", sol("ex11_4", STUB), "not_attempted", "NotImplementedError"),
        Case("ex11_4", "population sd", sol("ex11_4", ("/ (n - 1))", "/ n)")), "fail", "n - 1"),
        Case("ex11_4", "divided by n", sol("ex11_4", ("sd / math.sqrt(n)", "sd / n")), "fail", "sqrt(n), not n"),
        Case("ex11_4", "no division", sol("ex11_4", ("sd / math.sqrt(n)", "sd")), "fail", "divide the standard deviation"),
        Case("ex11_4", "unpaired", sol("ex11_4", ("    return mean, sd / math.sqrt(n)",
                                                  "    va = sum((x - sum(a) / n) ** 2 for x in a) / (n - 1)\n"
                                                  "    vb = sum((x - sum(b) / n) ** 2 for x in b) / (n - 1)\n"
                                                  "    return mean, math.sqrt((va + vb) / n)")), "fail", "unpaired"),
        Case("ex11_5", "right", sol("ex11_5"), "pass"),
        Case("ex11_5", "stub", sol("ex11_5", STUB), "not_attempted", "NotImplementedError"),
        Case("ex11_5", "no reference", sol("ex11_5", ("(policy_chosen - ref_chosen)", "policy_chosen"),
                                           ("(policy_rejected - ref_rejected)", "policy_rejected")), "fail", "reference"),
        Case("ex11_5", "margin reversed", sol("ex11_5", ("chosen_reward - rejected_reward", "rejected_reward - chosen_reward")), "fail", "chosen minus rejected"),
        Case("ex11_5", "no beta", sol("ex11_5", ("beta * (policy_chosen", "(policy_chosen"), ("beta * (policy_rejected", "(policy_rejected")),
             "fail", "beta"),
        Case("ex11_5", "summed", sol("ex11_5", (").mean()", ").sum()")), "fail", "average"),
        Case("ex11_6", "right", sol("ex11_6"), "pass"),
        Case("ex11_6", "stub", sol("ex11_6", STUB), "not_attempted", "NotImplementedError"),
        Case("ex11_6", "one scale for all", sol("ex11_6", ("scales = blocks.abs().amax(dim=1)", "scales = blocks.abs().amax().expand(blocks.shape[0])")),
             "fail", "the block scales"),
        Case("ex11_6", "max, not absmax", sol("ex11_6", ("scales = blocks.abs().amax(dim=1)", "scales = blocks.amax(dim=1)")), "fail", "ABSOLUTE"),
        Case("ex11_6", "not scaled before rounding", sol("ex11_6", ("scaled = blocks / safe.unsqueeze(-1)", "scaled = blocks")), "fail", "codes differ"),
        Case("ex11_6", "not scaled back", sol("ex11_6", ("back = levels[codes] * scales.unsqueeze(-1)", "back = levels[codes]")),
             "fail", "block's scale"),
    ])


CASES += _l11()


def _l12() -> list[Case]:
    import re

    from tutorlib.llm.metrics import normalize_answer
    from tutorlib.llm.rag import STOPWORDS

    def sol(exercise: str, *edits: tuple[str, str]) -> Callable[[], dict[str, Any]]:
        """The solution cell's namespace with the names the lesson's setup cell imports."""
        def namespace() -> dict[str, Any]:
            ns = _sol(exercise, *edits)()
            ns.update(re=re, normalize_answer=normalize_answer, STOPWORDS=STOPWORDS)   # the functions' own globals
            return ns
        return namespace

    return lesson("12", [
        Case("ex12_1", "right", sol("ex12_1"), "pass"),
        Case("ex12_1", "stub", sol("ex12_1", STUB), "not_attempted", "NotImplementedError"),
        Case("ex12_1", "no overlap (steps by size)", sol("ex12_1", ("step = size - overlap", "step = size")), "fail", "do not overlap"),
        Case("ex12_1", "a window of overlap only at the end", sol("ex12_1", ("        if start + size >= len(words):\n            break\n", "")),
             "fail", "window too many"),
        Case("ex12_1", "windows one word too long", sol("ex12_1", ("words[start:start + size]", "words[start:start + size + 1]")),
             "fail", "more than size"),
        Case("ex12_2", "right", sol("ex12_2"), "pass"),
        Case("ex12_2", "stub", sol("ex12_2", STUB), "not_attempted", "NotImplementedError"),
        Case("ex12_2", "precision@k", sol("ex12_2", ("sum(any(r[:k]) for r in relevant) / len(relevant)",
                                                     "sum(sum(r[:k]) for r in relevant) / (k * len(relevant))")), "fail", "precision@k"),
        Case("ex12_2", "only position k", sol("ex12_2", ("any(r[:k])", "r[k - 1]")), "fail", "only at position k"),
        Case("ex12_2", "k ignored", sol("ex12_2", ("any(r[:k])", "any(r)")), "fail", "k is ignored"),
        Case("ex12_3", "right", sol("ex12_3"), "pass"),
        Case("ex12_3", "stub", sol("ex12_3", STUB), "not_attempted", "NotImplementedError"),
        Case("ex12_3", "function words counted", sol("ex12_3", (" - STOPWORDS", "")), "fail", "function word"),
        Case("ex12_3", "not normalised", sol("ex12_3", ("set(normalize_answer(p).split())", "set(p.split())"),
                                             ("set(normalize_answer(answer).split())", "set(answer.split())")), "fail", "normalise"),
        Case("ex12_3", "one shared word is enough", sol("ex12_3", ("return bool(claims - seen)", "return bool(claims) and not (claims & seen)")),
             "fail", "EVERY content word"),
        Case("ex12_3", "substring of the passages", sol("ex12_3", ("return bool(claims - seen)",
                                                                   "return normalize_answer(answer) not in normalize_answer(' '.join(passages))")),
             "fail", "expected"),
        Case("ex12_4", "right", sol("ex12_4"), "pass"),
        Case("ex12_4", "stub", sol("ex12_4", STUB), "not_attempted", "NotImplementedError"),
        Case("ex12_4", "unpaired standard error", sol("ex12_4", ("    return mean, sd / math.sqrt(n)",
              "    se = lambda x: math.sqrt(sum((v - sum(x) / n) ** 2 for v in x) / (n - 1) / n)\n"
              "    return mean, math.hypot(se(system), se(baseline))")), "fail", "different questions"),
        Case("ex12_4", "population standard deviation", sol("ex12_4", ("/ (n - 1))", "/ n)")), "fail", "ddof=1"),
        Case("ex12_4", "divided by n", sol("ex12_4", ("sd / math.sqrt(n)", "sd / n")), "fail", "√n, not n"),
        Case("ex12_4", "baseline minus system", sol("ex12_4", ("a - b for a, b", "b - a for a, b")), "fail", "system minus baseline"),
        Case("ex12_5", "right", sol("ex12_5"), "pass"),
        Case("ex12_5", "stub", sol("ex12_5", STUB), "not_attempted", "NotImplementedError"),
        Case("ex12_5", "flags single words", lambda: {"drop_injections": lambda ps: [p for p in ps if not any(
            w in p.lower() for w in ("ignore", "disregard", "forget", "instruction", "answer", "system"))]}, "fail", "dropped"),
        Case("ex12_5", "only 'ignore previous instructions'", lambda: {"drop_injections": lambda ps: [
            p for p in ps if "previous instructions" not in p.lower()]}, "fail", "kept"),
        Case("ex12_5", "returns the injections", sol("ex12_5", ("if not any(", "if any(")), "fail", "kept"),
    ])


_sol = sol
CASES += _l12()


def _l02_sweep() -> list[Case]:
    import dataclasses
    from functools import lru_cache

    from torch import nn

    @lru_cache(maxsize=1)
    def real():
        from tutorlib.data import load_digits
        from tutorlib.models import MLP
        from tutorlib.regularize import RegConfig, dropout_sweep

        with torch.random.fork_rng():
            torch.manual_seed(0)
            return dropout_sweep([0.0, 0.4, 0.8], lambda p: MLP(64, [256, 256], 10, dropout=p), load_digits("train", limit=48),
                                 load_digits("val"), epochs=3, base=RegConfig(lr=3e-3), progress=False)

    def ns(kind="right"):
        from tutorlib.regularize import RegConfig, RunResult
        from tutorlib.train import History

        results = dict(real())
        best = max(results, key=lambda k: (results[k].val_accuracy, -results[k].val_loss))
        if kind == "made up":
            fake = lambda tr, va: RunResult(RegConfig(), History([{"epoch": 0, "val_loss": 1.0}]), nn.Linear(1, 1), tr, va, 0.1, 0.5)  # noqa: E731
            results, best = {0.0: fake(1.0, 0.8), 0.3: fake(0.97, 0.85), 0.6: fake(0.9, 0.86)}, 0.6
        if kind == "edited":
            worse = min(results, key=lambda k: (results[k].val_accuracy, -results[k].val_loss))
            results[worse] = dataclasses.replace(results[worse], val_accuracy=results[worse].val_accuracy + 0.2)
            best = worse
        gaps = {k: r.train_accuracy - r.val_accuracy for k, r in results.items()}
        if kind == "flipped":
            gaps = {k: -v for k, v in gaps.items()}
        if kind == "not swept":
            best = 0.5
        return {"sweep_results": results, "gaps": gaps, "best_rate": best}

    return lesson("02", [
        Case("ex02_5", "right", ns, "pass"),
        Case("ex02_5", "gaps the wrong way round", lambda: ns("flipped"), "fail", "wrong sign"),
        Case("ex02_5", "made-up runs", lambda: ns("made up"), "fail", "is not the lesson's MLP"),
        Case("ex02_5", "an edited validation accuracy", lambda: ns("edited"), "fail", "its own model measures"),
        Case("ex02_5", "a rate that was not swept", lambda: ns("not swept"), "fail", "one of the swept rates"),
    ])


CASES += _l02_sweep()


def _l08_13_experiments() -> list[Case]:
    from functools import lru_cache

    @lru_cache(maxsize=1)
    def vae_sweep():
        from tutorlib.data import load_digits
        from tutorlib.generative import ConvVAE, beta_sweep

        with torch.random.fork_rng():
            torch.manual_seed(0)
            return beta_sweep([0.5, 1.0, 2.0, 4.0, 8.0], load_digits("train", limit=64), load_digits("val"),
                              lambda: ConvVAE(latent_dim=8), epochs=1, progress=False, log=False)

    def beta_ns(kind="right"):
        sweep = [dict(s) for s in vae_sweep()]
        best = max(r["beta"] for r in sweep if r["recon"] <= 1.25 * min(r["recon"] for r in sweep))
        if kind == "wrong beta":
            best = 0.5 if best != 0.5 else 8.0
        if kind == "edited":
            sweep[2]["recon"] *= 0.8
        if kind == "hand typed":
            sweep = [{"beta": b, "recon": r, "kl": k} for b, r, k in [(0.5, 20, 30), (1, 22, 25), (2, 24, 18), (4, 27, 10), (8, 40, 4)]]
            best = 2.0
        if kind == "short":
            sweep = sweep[1:4]
        return {"sweep": sweep, "chosen_beta": best}

    @lru_cache(maxsize=1)
    def dp():
        from test_frontiers_checks import _dp_run  # the experiment as the exercise asks for it, small

        return _dp_run()

    def dp_ns(kind="right"):
        runs, models, q, steps = dp()
        runs = dict(runs)
        best = min(s for s, (e, _) in runs.items() if e <= 2)
        if kind == "wrong sigma":
            best = 2.0 if best != 2.0 else 0.5
        if kind == "wrong epsilon":
            runs[1.0] = (runs[1.0][0] * 2, runs[1.0][1])
        if kind == "made-up accuracy":
            runs[1.0] = (runs[1.0][0], min(1.0, runs[1.0][1] + 0.3))
        return {"dp_runs": runs, "dp_models": {} if kind == "no models" else models, "q_dp": q, "dp_steps": steps,
                "sigma_for_budget": best}

    return lesson("08", [
        Case("ex08_6", "right", beta_ns, "pass"),
        Case("ex08_6", "a β the rule does not pick", lambda: beta_ns("wrong beta"), "fail", "chosen_beta is"),
        Case("ex08_6", "an edited reconstruction", lambda: beta_ns("edited"), "fail", "its own model measures"),
        Case("ex08_6", "a hand-typed sweep", lambda: beta_ns("hand typed"), "fail", "no trained 'model'"),
        Case("ex08_6", "too few βs", lambda: beta_ns("short"), "fail", "at least 4"),
    ]) + lesson("13", [
        Case("ex13_7", "right", dp_ns, "pass"),
        Case("ex13_7", "not the smallest σ within budget", lambda: dp_ns("wrong sigma"), "fail", "smallest"),
        Case("ex13_7", "a wrong ε", lambda: dp_ns("wrong epsilon"), "fail", "dp_epsilon"),
        Case("ex13_7", "a made-up accuracy", lambda: dp_ns("made-up accuracy"), "fail", "measures"),
        Case("ex13_7", "no models to re-measure", lambda: dp_ns("no models"), "fail", "`dp_models`"),
    ])


CASES += _l08_13_experiments()

# --------------------------------------------------------------------------- lesson 10


def _l10() -> list[Case]:
    from functools import lru_cache

    @lru_cache(maxsize=1)
    def smollm2_shaped():
        """A randomly initialised Llama with SmolLM2-135M's KV-cache sizes (30 layers, 3 KV heads of 64), tiny elsewhere:
        what ``ours`` is to the KV cache, without loading the bundled model."""
        from tutorlib.llm import Llama, LlamaConfig

        with torch.random.fork_rng():
            torch.manual_seed(0)
            return Llama(LlamaConfig(vocab_size=64, d_model=32, n_layer=30, n_head=9, n_kv_head=3, d_ff=32,
                                     head_dim=64)).eval()

    def kv(*edits: tuple[str, str], model: Callable[[], Any] = smollm2_shaped) -> Callable[[], dict[str, Any]]:
        """The solution cell of ex10_9 (with edits), run against ``ours`` = ``model()`` and the library's KVCache."""
        def namespace() -> dict[str, Any]:
            from tutorlib.llm import KVCache

            ns = sol("ex10_9", *edits)()
            ns.update(ours=model(), KVCache=KVCache)   # the function's globals are this dict: looked up at call time
            return ns
        return namespace

    def bf16():
        import copy

        return copy.deepcopy(smollm2_shaped()).to(torch.bfloat16)

    top_p_one_too_many = ("    remove[..., 0] = False",
                          "    remove[..., 1:] = remove[..., :-1].clone()   # the shift of the inclusive recipe, again\n"
                          "    remove[..., 0] = False")
    interleaved = (("angle = torch.cat([angle, angle], dim=-1)", "angle = angle.repeat_interleave(2, dim=-1)"),
                   ("torch.cat([-x2, x1], dim=-1)", "torch.stack([-x[..., 1::2], x[..., 0::2]], dim=-1).flatten(-2)"))
    return lesson("10", [
        Case("ex10_1", "right", sol("ex10_1"), "pass"),
        Case("ex10_1", "stub", sol("ex10_1", STUB), "not_attempted", "NotImplementedError"),
        Case("ex10_1", "running total includes the token (one too few)",
             sol("ex10_1", ("before = probs.cumsum(dim=-1) - probs", "before = probs.cumsum(dim=-1)")), "fail", "one token too few"),
        Case("ex10_1", "shifted twice (one too many)", sol("ex10_1", top_p_one_too_many), "fail", "one token too many"),
        Case("ex10_1", "ascending sort", sol("ex10_1", ("descending=True", "descending=False")), "fail", "DESCENDING"),
        Case("ex10_1", "mask left in sorted order", sol("ex10_1", ("mask = torch.zeros_like(remove).scatter(-1, order, remove)",
                                                                   "mask = remove")), "fail", "scatter(-1, order, remove)"),
        Case("ex10_1", "zeros, not -inf", sol("ex10_1", ('float("-inf")', "0.0")), "fail", "float('-inf')"),
        Case("ex10_1", "kept logits renormalised", sol("ex10_1", ('logits.masked_fill(mask, float("-inf"))',
                                                                  'logits.masked_fill(mask, float("-inf")).log_softmax(-1)')),
             "fail", "do not rescale"),
        Case("ex10_1", "logits changed in place", sol("ex10_1", ("logits.masked_fill(", "logits.masked_fill_(")), "fail", "in place"),
        Case("ex10_1", "library's own", sol("ex10_1", ("def top_p_filter", "from tutorlib.llm import top_p_filter as nucleus\n\n\ndef top_p_filter"),
                                            ("    # BEGIN SOLUTION", "    return nucleus(logits, p)")),
             "fail", "library's own"),
        Case("ex10_2", "right", sol("ex10_2"), "pass"),
        Case("ex10_2", "stub", sol("ex10_2", STUB), "not_attempted", "NotImplementedError"),
        Case("ex10_2", "greedy (one beam kept)", sol("ex10_2", ("min(num_beams, total.numel())", "1")), "fail", "greedy"),
        Case("ex10_2", "scores not accumulated", sol("ex10_2", ("total = (scores[:, None] + logp)", "total = (0 * scores[:, None] + logp)")),
             "fail", "TOTAL log-probability"),
        Case("ex10_2", "probabilities added", sol("ex10_2", ("torch.log_softmax(", "torch.softmax(")), "fail", "not probabilities"),
        Case("ex10_2", "raw logits added", sol("ex10_2", ("torch.log_softmax(next_logits(beams), dim=-1)", "next_logits(beams)")),
             "fail", "not on the same scale"),
        Case("ex10_2", "the last beam, not the best", sol("ex10_2", ("return beams[:1]", "return beams[-1:]")), "fail",
             "not the best"),
        Case("ex10_2", "only the new tokens", sol("ex10_2", ("return beams[:1]", "return beams[:1, ids.shape[1]:]")), "fail",
             "the prompt followed by them"),
        Case("ex10_2", "all the beams", sol("ex10_2", ("return beams[:1]", "return beams")), "fail", "only the best one"),
        Case("ex10_2", "library's own", sol("ex10_2", ("def beam_search", "from tutorlib.llm import generate\n\n\ndef beam_search"),
                                            ("    # BEGIN SOLUTION", "    return generate(next_logits, ids, max_new_tokens, strategy='beam', "
                                                                     "num_beams=num_beams)")),
             "fail", "library's own"),
        Case("ex10_3", "right", sol("ex10_3"), "pass"),
        Case("ex10_3", "stub", sol("ex10_3", STUB), "not_attempted", "NotImplementedError"),
        Case("ex10_3", "every seen logit divided", sol("ex10_3", ("torch.where(seen < 0, seen * penalty, seen / penalty)", "seen / penalty")),
             "fail", "multiply negative logits"),
        Case("ex10_3", "every seen logit multiplied", sol("ex10_3", ("torch.where(seen < 0, seen * penalty, seen / penalty)", "seen * penalty")),
             "fail", "divide positive logits"),
        Case("ex10_3", "the two cases swapped", sol("ex10_3", ("seen < 0", "seen > 0")), "fail", "MORE likely"),
        Case("ex10_3", "the whole vocabulary penalised", sol("ex10_3", ("return logits.scatter(1, ids, seen)",
                                                                        "return torch.where(logits < 0, logits * penalty, logits / penalty)")),
             "fail", "only the tokens that appear in ids"),
        Case("ex10_3", "penalised once per occurrence",
             sol("ex10_3", ("    seen = torch.gather(logits, 1, ids)\n    seen = torch.where(seen < 0, seen * penalty, seen / penalty)\n"
                            "    return logits.scatter(1, ids, seen)",
                            "    out = logits.clone()\n    for b in range(ids.shape[0]):\n        for j in ids[b].tolist():\n"
                            "            out[b, j] = out[b, j] * penalty if out[b, j] < 0 else out[b, j] / penalty\n    return out")),
             "fail", "once, not once per occurrence"),
        Case("ex10_3", "logits changed in place", sol("ex10_3", ("logits.scatter(", "logits.scatter_(")), "fail", "in place"),
        Case("ex10_3", "library's own", sol("ex10_3", ("def repetition_penalty", "from tutorlib.llm import apply_repetition_penalty\n\n\n"
                                                                               "def repetition_penalty"),
                                            ("    # BEGIN SOLUTION", "    return apply_repetition_penalty(logits, ids, penalty)")),
             "fail", "library's own"),
        Case("ex10_4", "right", sol("ex10_4"), "pass"),
        Case("ex10_4", "stub", sol("ex10_4", STUB), "not_attempted", "NotImplementedError"),
        Case("ex10_4", "ties broken by sorting", sol("ex10_4", ("best = max(counts, key=counts.get)", "best = max(sorted(counts), key=counts.get)")),
             "fail", "seen first"),
        Case("ex10_4", "merged tokens reused (step by 1)", sol("ex10_4", ("i += 2", "i += 1")), "fail", "skip both"),
        Case("ex10_4", "pairs counted by twos", sol("ex10_4", ("zip(ids, ids[1:])", "zip(ids[::2], ids[1::2])")), "fail",
             "expected the most frequent one"),
        Case("ex10_4", "input emptied in place", sol("ex10_4", ("    return best, merged", "    ids.clear()\n    return best, merged")),
             "fail", "in place"),
        Case("ex10_4", "nothing merged", sol("ex10_4", ("    return best, merged", "    return best, ids")), "fail", "nothing was merged"),
        Case("ex10_4", "library's own", sol("ex10_4", ("def bpe_merge_step", "from tutorlib.llm.bpe import merge_pair\n\n\ndef bpe_merge_step"),
                                            ("    return best, merged", "    return best, merge_pair(ids, best, new_id)")),
             "fail", "library's own"),
        Case("ex10_5", "right", sol("ex10_5"), "pass"),
        Case("ex10_5", "stub", sol("ex10_5", STUB), "not_attempted", "NotImplementedError"),
        Case("ex10_5", "sum of squares (wrong reduction)", sol("ex10_5", (".mean(dim=-1", ".sum(dim=-1")), "fail", "SUM"),
        Case("ex10_5", "eps outside the root", sol("ex10_5", ("torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + eps)",
                                                              "1 / (x.pow(2).mean(dim=-1, keepdim=True).sqrt() + eps)")),
             "fail", "inside the square root"),
        Case("ex10_5", "no weight (missing scale)", sol("ex10_5", (" * weight", "")), "fail", "weight"),
        Case("ex10_5", "mean over dimension 0 (wrong axis)", sol("ex10_5", ("dim=-1", "dim=0")), "fail", "LAST dimension"),
        Case("ex10_5", "mean subtracted (LayerNorm)", sol("ex10_5", ("return x * torch.rsqrt(x.pow(2)",
                                                                     "x = x - x.mean(dim=-1, keepdim=True)\n    return x * torch.rsqrt(x.pow(2)")),
             "fail", "LayerNorm"),
        Case("ex10_5", "input changed in place", sol("ex10_5", ("return x * torch.rsqrt(", "return x.mul_(torch.rsqrt("),
                                                               (" + eps) * weight", " + eps)) * weight")), "fail", "in place"),
        Case("ex10_5", "library's own", sol("ex10_5", ("return x * torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + eps) * weight",
                                                       "return F.rms_norm(x, (x.shape[-1],), weight, eps)")), "fail", "library's own"),
        Case("ex10_6", "right", sol("ex10_6"), "pass"),
        Case("ex10_6", "stub", sol("ex10_6", STUB), "not_attempted", "NotImplementedError"),
        Case("ex10_6", "rotated by minus the angle", sol("ex10_6", ("torch.cat([-x2, x1], dim=-1)", "torch.cat([x2, -x1], dim=-1)")),
             "fail", "minus the angle"),
        Case("ex10_6", "adjacent pairs (interleaved)", sol("ex10_6", *interleaved), "fail", "rotate-half"),
        Case("ex10_6", "positions + 1 (off by one)", sol("ex10_6", ("positions.float()[:, None]", "(positions.float() + 1)[:, None]")),
             "fail", "not t + 1"),
        Case("ex10_6", "0, 1, 2, … instead of the positions", sol("ex10_6", ("positions.float()[:, None]",
                                                                             "torch.arange(x.shape[2]).float()[:, None]")),
             "fail", "not 0, 1, 2"),
        Case("ex10_6", "frequency exponent j / D", sol("ex10_6", ("torch.arange(0, D, 2, device=x.device)", "torch.arange(0, D // 2, device=x.device)")),
             "fail", "theta ** (-2j / D)"),
        Case("ex10_6", "library's own", sol("ex10_6", ("def rope", "from tutorlib.llm import layers\n\n\ndef rope"),
                                            ("    # BEGIN SOLUTION", "    return layers.apply_rope(x, *layers.rope_cos_sin(positions, x.shape[-1], theta))")),
             "fail", "library's own"),
        Case("ex10_7", "right", sol("ex10_7"), "pass"),
        Case("ex10_7", "stub", sol("ex10_7", STUB), "not_attempted", "NotImplementedError"),
        Case("ex10_7", "no causal mask", sol("ex10_7", ('    scores = scores.masked_fill(~causal, float("-inf"))\n', "")), "fail",
             "no causal mask"),
        Case("ex10_7", "KV heads tiled, not interleaved", sol("ex10_7", ("k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)",
                                                                         "k.repeat(1, rep, 1, 1), v.repeat(1, rep, 1, 1)")),
             "fail", "repeat_interleave"),
        Case("ex10_7", "no 1/sqrt(D) (missing scale)", sol("ex10_7", (" / math.sqrt(q.shape[-1])", "")), "fail", "1 / sqrt(head_dim)"),
        Case("ex10_7", "diagonal masked (off by one)", sol("ex10_7", (".tril()", ".tril(-1)")), "fail", "diagonal"),
        Case("ex10_7", "weights returned too", sol("ex10_7", ("return scores.softmax(dim=-1) @ v", "return scores.softmax(dim=-1) @ v, scores")),
             "fail", "only the output tensor"),
        Case("ex10_7", "library's own", sol("ex10_7", ("    # BEGIN SOLUTION", "    return F.scaled_dot_product_attention(q, k, v, is_causal=True, "
                                                                                "enable_gqa=True)")),
             "fail", "library's own"),
        Case("ex10_8", "right", sol("ex10_8"), "pass"),
        Case("ex10_8", "stub", sol("ex10_8", STUB), "not_attempted", "NotImplementedError"),
        Case("ex10_8", "attends before appending", sol("ex10_8", ("    k_cache = torch.cat([k_cache, k_new], dim=2)\n"
                                                                  "    v_cache = torch.cat([v_cache, v_new], dim=2)\n", ""),
                                                       ("return scores.softmax(dim=-1) @ v, k_cache, v_cache",
                                                        "return scores.softmax(dim=-1) @ v, torch.cat([k_cache, k_new], dim=2), "
                                                        "torch.cat([v_cache, v_new], dim=2)")),
             "fail", "BEFORE attending"),
        Case("ex10_8", "a causal mask of shape (1, T)", sol("ex10_8", ("# (B, H, 1, T + 1): no mask needed",
                                                                       "\n    scores = scores.masked_fill(~torch.ones(1, scores.shape[-1], "
                                                                       "dtype=torch.bool).tril(), float('-inf'))")),
             "fail", "hides every key but the first"),
        Case("ex10_8", "the old caches returned", sol("ex10_8", ("return scores.softmax(dim=-1) @ v, k_cache, v_cache",
                                                                 "return scores.softmax(dim=-1) @ v, k_cache[:, :, :-1], v_cache[:, :, :-1]")),
             "fail", "still has"),
        Case("ex10_8", "new token first", sol("ex10_8", ("torch.cat([k_cache, k_new]", "torch.cat([k_new, k_cache]"),
                                                        ("torch.cat([v_cache, v_new]", "torch.cat([v_new, v_cache]")),
             "fail", "puts the new token first"),
        Case("ex10_8", "query dimension squeezed", sol("ex10_8", ("return scores.softmax(dim=-1) @ v,", "return (scores.softmax(dim=-1) @ v).squeeze(2),")),
             "fail", "expected (1, 4, 1, 8)"),
        Case("ex10_8", "no 1/sqrt(D) (missing scale)", sol("ex10_8", (" / math.sqrt(q_new.shape[-1])", "")), "fail", "1 / sqrt(head_dim)"),
        Case("ex10_9", "right (a model with SmolLM2's KV sizes)", kv(), "pass"),
        Case("ex10_9", "stub", kv(STUB), "not_attempted", "NotImplementedError"),
        Case("ex10_9", "a typed number", kv(("measured = cache.nbytes()", "measured = 1_000_000")), "fail", "do not type a number"),
        Case("ex10_9", "a bfloat16 model (half)", kv(model=bf16), "fail", "2-byte numbers"),
        Case("ex10_9", "formula with the query heads", kv(("measured = cache.nbytes()",
                                                           "c = ours.config\n    measured = 2 * c.n_layer * c.n_head * c.head_dim * 4 * n_tokens")),
             "fail", "3 KV heads"),
        Case("ex10_9", "one token more (a BOS added)", kv(("(1, n_tokens)", "(1, n_tokens + 1)")), "fail", "exactly the"),
        Case("ex10_9", "numbers per token, not bytes", kv(("measured / n_tokens", "measured / n_tokens / 4")), "fail",
             "bytes_per_token"),
        Case("ex10_9", "a number, not a dict", kv(('return {"measured_bytes": measured, "bytes_per_token": measured / n_tokens}',
                                                   "return measured")), "fail", "return a dict"),
        Case("ex10_9", "library's formula", kv(("measured = cache.nbytes()", "measured = kv_cache_bytes(ours.config, n_tokens)"),
                                               ("def measure_kv_cache", "from tutorlib.llm.kv_cache import kv_cache_bytes\n\n\n"
                                                                        "def measure_kv_cache")),
             "fail", "library's own"),
    ])


CASES += _l10()
