"""Learning-rate schedules: warmup + cosine from scratch, and the library ones by name, ready for the Trainer.

:func:`warmup_cosine` is the schedule as a plain function of the step (it follows the convention of
``transformers.get_cosine_schedule_with_warmup``: the rate rises linearly from 0 over
``warmup_steps`` then follows half a cosine down to ``min_lr``). :func:`make_scheduler` builds any
of :data:`SCHEDULE_NAMES` for an optimizer (``transformers.get_scheduler`` for the warmup
schedules, ``torch.optim.lr_scheduler`` for step decay and one-cycle), :func:`scheduler_factory`
wraps it in the ``f(optimizer, total_steps)`` form that :class:`tutorlib.train.Trainer` accepts, and
:func:`lr_trace` / :func:`plot_schedules` show the curves without training anything.

>>> [round(warmup_cosine(s, total_steps=10, warmup_steps=2), 3) for s in (0, 1, 2, 6, 10)]
[0.0, 0.5, 1.0, 0.5, 0.0]
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch

__all__ = ["warmup_cosine", "make_scheduler", "scheduler_factory", "lr_trace", "plot_schedules", "SCHEDULE_NAMES"]

#: Schedules :func:`make_scheduler` knows.
SCHEDULE_NAMES = ("constant", "step", "linear", "cosine", "one_cycle", "warmup_cosine")


def warmup_cosine(step: int, total_steps: int, warmup_steps: int = 0, base_lr: float = 1.0,
                  min_lr: float = 0.0) -> float:
    """Learning rate at optimizer step ``step`` (0-based): linear warmup from 0, then cosine decay to ``min_lr``.

    During warmup (``step < warmup_steps``) the rate is ``base_lr * step / warmup_steps``; afterwards,
    with ``progress = (step - warmup_steps) / (total_steps - warmup_steps)`` clipped to [0, 1], it is
    ``min_lr + (base_lr - min_lr) * 0.5 * (1 + cos(pi * progress))``. With ``min_lr=0`` this is exactly
    ``transformers.get_cosine_schedule_with_warmup``.

    >>> warmup_cosine(0, 100, warmup_steps=10, base_lr=0.1), warmup_cosine(10, 100, 10, base_lr=0.1)
    (0.0, 0.1)
    >>> round(warmup_cosine(100, 100, 10, base_lr=0.1, min_lr=0.01), 6)
    0.01
    """
    if total_steps < 1:
        raise ValueError(f"total_steps must be >= 1, got {total_steps}")
    if not 0 <= warmup_steps <= total_steps:
        raise ValueError(f"warmup_steps must be in [0, total_steps={total_steps}], got {warmup_steps}")
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    if min_lr > base_lr:
        raise ValueError(f"min_lr ({min_lr}) must not exceed base_lr ({base_lr})")
    if step < warmup_steps:
        return base_lr * step / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return min_lr + (base_lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


def make_scheduler(name: str, optimizer: torch.optim.Optimizer, total_steps: int, warmup_steps: int = 0,
                   min_lr_ratio: float = 0.0) -> torch.optim.lr_scheduler.LRScheduler:
    """Build schedule ``name`` (one of :data:`SCHEDULE_NAMES`) for ``optimizer`` over ``total_steps`` steps.

    - ``constant``: the optimizer's rate throughout (``constant_with_warmup`` when ``warmup_steps``);
    - ``step``: ``torch.optim.lr_scheduler.StepLR``, ×0.1 after each third of training;
    - ``linear`` / ``cosine``: ``transformers.get_scheduler`` with linear warmup then linear/cosine decay to 0;
    - ``one_cycle``: ``torch.optim.lr_scheduler.OneCycleLR`` peaking at the optimizer's rate
      (its warmup fraction is ``warmup_steps / total_steps``, 0.3 when 0);
    - ``warmup_cosine``: :func:`warmup_cosine` via ``LambdaLR``, decaying to ``min_lr_ratio`` × the rate.

    Step it after every ``optimizer.step()`` (the Trainer does).

    >>> opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    >>> sched = make_scheduler("cosine", opt, total_steps=100, warmup_steps=10)
    >>> opt.param_groups[0]["lr"]  # warmup starts at 0
    0.0
    """
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"expected a torch.optim.Optimizer, got {type(optimizer).__name__}")
    if total_steps < 1:
        raise ValueError(f"total_steps must be >= 1, got {total_steps}")
    if not 0 <= warmup_steps <= total_steps:
        raise ValueError(f"warmup_steps must be in [0, total_steps={total_steps}], got {warmup_steps}")
    key = name.lower().replace("-", "_")
    if key == "onecycle":
        key = "one_cycle"
    if key not in SCHEDULE_NAMES:
        raise ValueError(f"unknown schedule {name!r}: use one of {', '.join(SCHEDULE_NAMES)}")
    if key == "constant" and warmup_steps == 0:
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
    if key in ("constant", "linear", "cosine"):
        from transformers import get_scheduler

        hf_name = "constant_with_warmup" if key == "constant" else key
        return get_scheduler(hf_name, optimizer, num_warmup_steps=warmup_steps, num_training_steps=total_steps)
    if key == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=max(1, math.ceil(total_steps / 3)), gamma=0.1)
    if key == "one_cycle":
        max_lrs = [g["lr"] for g in optimizer.param_groups]
        pct = warmup_steps / total_steps if warmup_steps else 0.3
        cycle_momentum = all("momentum" in g or "betas" in g for g in optimizer.param_groups) and any(
            g.get("momentum", 1.0) > 0 for g in optimizer.param_groups)
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=max_lrs, total_steps=total_steps,
                                                   pct_start=max(pct, 1e-3), cycle_momentum=cycle_momentum)
    if not 0.0 <= min_lr_ratio <= 1.0:
        raise ValueError(f"min_lr_ratio must be in [0, 1], got {min_lr_ratio}")
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: warmup_cosine(s, total_steps, warmup_steps, 1.0, min_lr_ratio))


def scheduler_factory(name: str, warmup: float | int = 0.0, min_lr_ratio: float = 0.0
                      ) -> Callable[[torch.optim.Optimizer, int], torch.optim.lr_scheduler.LRScheduler]:
    """A ``f(optimizer, total_steps) -> scheduler`` for ``Trainer(scheduler=...)``.

    ``warmup`` is a fraction of the total steps when < 1, else a number of steps.

    >>> from tutorlib.train import Trainer
    >>> t = Trainer(torch.nn.Linear(2, 2), scheduler=scheduler_factory("linear", warmup=0.1), progress=False, log=False)
    """
    if warmup < 0:
        raise ValueError(f"warmup must be >= 0 (a fraction < 1 or a number of steps), got {warmup}")
    if name.lower().replace("-", "_") not in SCHEDULE_NAMES + ("onecycle",):
        raise ValueError(f"unknown schedule {name!r}: use one of {', '.join(SCHEDULE_NAMES)}")

    def factory(optimizer: torch.optim.Optimizer, total_steps: int) -> torch.optim.lr_scheduler.LRScheduler:
        steps = int(round(warmup * total_steps)) if warmup < 1 else int(warmup)
        return make_scheduler(name, optimizer, total_steps, min(steps, total_steps), min_lr_ratio)

    return factory


def lr_trace(name: str, total_steps: int, base_lr: float = 1e-3, warmup_steps: int = 0,
             min_lr_ratio: float = 0.0) -> list[float]:
    """The learning rate of each of ``total_steps`` optimizer steps under schedule ``name`` (no training).

    >>> tr = lr_trace("linear", total_steps=10, base_lr=1.0, warmup_steps=2); [round(x, 3) for x in tr[:4]]
    [0.0, 0.5, 1.0, 0.875]
    """
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=base_lr, momentum=0.9)
    sched = make_scheduler(name, opt, total_steps, warmup_steps, min_lr_ratio)
    lrs = []
    for _ in range(total_steps):
        lrs.append(float(opt.param_groups[0]["lr"]))
        opt.step()
        sched.step()
    return lrs


def plot_schedules(names: Sequence[str] = SCHEDULE_NAMES, total_steps: int = 200, base_lr: float = 1e-3,
                   warmup_steps: int = 20, ax: Any = None):
    """Plot :func:`lr_trace` of several schedules on one axis; returns the figure.

    >>> import matplotlib; matplotlib.use("Agg")
    >>> fig = plot_schedules(["constant", "cosine"], total_steps=50, warmup_steps=5)
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(7, 3.5))
    for name in names:
        ax.plot(lr_trace(name, total_steps, base_lr, warmup_steps), label=name)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("learning rate")
    ax.set_title(f"Learning-rate schedules ({warmup_steps} warmup steps where used)")
    ax.legend()
    ax.figure.tight_layout()
    return ax.figure
