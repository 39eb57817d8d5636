"""The learning-rate range test (Smith, 2017; popularised by fastai): find a good learning rate in one short run.

Train for ``num_steps`` mini-batches while the learning rate grows geometrically from ``start_lr``
to ``end_lr``; record the (exponentially smoothed) training loss at each rate; stop once the loss
explodes. The loss first barely moves (rate too small), then falls fast, then blows up (too
large). A good rate sits where the smoothed loss falls fastest, well before its minimum.
The run goes through :class:`tutorlib.train.Trainer` with a ``LambdaLR`` schedule, and the model's
weights are restored afterwards.

>>> from tutorlib.data import load_digits
>>> from tutorlib.models import MLP
>>> res = lr_find(MLP(64, [32], 10), load_digits("train"), num_steps=30, progress=False)
>>> 1e-7 <= res.suggestion <= 10
True
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from tutorlib.optim.optimizers import make_optimizer
from tutorlib.train import Callback, Trainer

__all__ = ["lr_find", "LRFindResult", "suggest_lr"]

OptimizerSpec = str | Callable[[Iterable[nn.Parameter], float], torch.optim.Optimizer]


@dataclass
class LRFindResult:
    """What :func:`lr_find` measured: the rates tried, raw and smoothed losses, and the suggested rate.

    >>> r = LRFindResult([1e-3, 1e-2, 1e-1], [2.0, 1.0, 3.0], [2.0, 1.0, 3.0], 1e-2, 1e-2)
    >>> r.min_loss_lr
    0.01
    """

    lrs: list[float]
    losses: list[float]
    smoothed: list[float]
    suggestion: float
    min_loss_lr: float
    stopped_early: bool = False
    method: str = "steepest"
    extra: dict[str, Any] = field(default_factory=dict)

    def loss_at(self, lr: float) -> float:
        """Smoothed loss at the tried rate nearest to ``lr`` (on a log scale).

        >>> LRFindResult([1e-3, 1e-2], [2.0, 1.0], [2.0, 1.0], 1e-3, 1e-2).loss_at(0.009)
        1.0
        """
        if lr <= 0:
            raise ValueError(f"lr must be > 0, got {lr}")
        i = int(np.argmin(np.abs(np.log(np.asarray(self.lrs)) - math.log(lr))))
        return float(self.smoothed[i])

    def plot(self, ax: Any = None, show_suggestion: bool = True):
        """Smoothed loss against the learning rate (log scale), the suggestion marked; returns the figure.

        >>> import matplotlib; matplotlib.use("Agg")
        >>> fig = LRFindResult([1e-3, 1e-2, 1e-1], [2.0, 1.0, 3.0], [2.0, 1.0, 3.0], 1e-2, 1e-2).plot()
        """
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(6.5, 4))
        ax.plot(self.lrs, self.losses, color="0.75", lw=0.8, label="loss per batch")
        ax.plot(self.lrs, self.smoothed, color="C0", lw=2, label="smoothed loss")
        ax.set_xscale("log")
        ax.axvline(self.min_loss_lr, color="0.5", ls=":", label=f"minimum loss at {self.min_loss_lr:.2g}")
        if show_suggestion:
            ax.plot([self.suggestion], [self.loss_at(self.suggestion)], "o", color="C3", ms=9,
                    label=f"suggested lr {self.suggestion:.2g} ({self.method})")
        finite = [v for v in self.smoothed if math.isfinite(v)]
        if finite:
            low, start = min(finite), finite[0]
            ax.set_ylim(low - 0.1 * abs(start - low) - 1e-3, start + 0.6 * abs(start - low) + 1e-3)
        ax.set_xlabel("learning rate (log scale)")
        ax.set_ylabel("training loss")
        ax.set_title("LR range test")
        ax.legend(fontsize=8)
        ax.figure.tight_layout()
        return ax.figure


def suggest_lr(lrs: list[float], smoothed: list[float], method: str = "steepest", skip_start: float = 0.1) -> float:
    """Pick a learning rate from a range-test curve.

    ``"steepest"``: where the smoothed loss falls fastest per decade of rate, looking only before the
    minimum and skipping the first ``skip_start`` fraction of points (noisy). ``"min/10"``: a tenth of
    the rate with the lowest smoothed loss (fastai's older rule of thumb).

    >>> lrs = list(np.logspace(-5, 0, 50)); losses = [2 - np.tanh(3 * (np.log10(l) + 2.5)) for l in lrs]
    >>> 1e-3 < suggest_lr(lrs, losses) < 1e-2
    True
    """
    if len(lrs) != len(smoothed) or len(lrs) < 3:
        raise ValueError(f"need at least 3 (lr, loss) points of equal length, got {len(lrs)} and {len(smoothed)}")
    loss = np.asarray(smoothed, dtype=float)
    finite = np.isfinite(loss)
    loss = np.where(finite, loss, np.inf)
    i_min = int(np.argmin(loss))
    if method == "min/10":
        return float(lrs[i_min]) / 10
    if method != "steepest":
        raise ValueError(f"unknown method {method!r}: use 'steepest' or 'min/10'")
    start = int(skip_start * len(lrs))
    if i_min - start < 2:
        return float(lrs[i_min]) / 10
    seg = loss[start : i_min + 1]
    x = np.log10(np.asarray(lrs[start : i_min + 1], dtype=float))
    slope = np.gradient(seg, x)[:-1]  # the minimum itself is never the suggestion
    return float(lrs[start + int(np.argmin(slope))])


class _Recorder(Callback):
    def __init__(self, lrs: list[float], beta: float, diverge_factor: float, min_steps: int) -> None:
        self.lr_schedule, self.beta, self.factor, self.min_steps = lrs, beta, diverge_factor, min_steps
        self.lrs: list[float] = []
        self.losses: list[float] = []
        self.smoothed: list[float] = []
        self._avg = 0.0
        self._best = math.inf
        self.stopped = False

    def on_step_end(self, trainer: Any, logs: dict[str, Any]) -> None:
        i = len(self.losses)
        loss = float(logs["loss"])
        self._avg = self.beta * self._avg + (1 - self.beta) * loss
        smooth = self._avg / (1 - self.beta ** (i + 1))
        self.lrs.append(self.lr_schedule[i])
        self.losses.append(loss)
        self.smoothed.append(smooth)
        self._best = min(self._best, smooth)
        if not math.isfinite(smooth) or (i >= self.min_steps and smooth > self.factor * self._best):
            self.stopped = trainer.should_stop = True  # the loss has exploded: end the range test here


def lr_find(
    model: nn.Module,
    train_data: Dataset | DataLoader,
    optimizer: OptimizerSpec = "adam",
    start_lr: float = 1e-6,
    end_lr: float = 10.0,
    num_steps: int = 100,
    batch_size: int = 64,
    beta: float = 0.9,
    diverge_factor: float = 4.0,
    method: str = "steepest",
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    collate_fn: Callable | None = None,
    device: str | torch.device | None = None,
    seed: int = 0,
    progress: bool = True,
) -> LRFindResult:
    """Run the LR range test on ``model`` and return an :class:`LRFindResult` (call ``.plot()`` on it).

    ``optimizer`` is a name for :func:`~tutorlib.optim.make_optimizer` or ``f(params, lr) -> optimizer``.
    The model's weights are the same afterwards as before (they are restored).

    >>> from tutorlib.data import load_digits
    >>> from tutorlib.models import MLP
    >>> r = lr_find(MLP(64, [16], 10), load_digits("train", limit=256), "sgd", num_steps=20, progress=False)
    >>> len(r.lrs) <= 20
    True
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not 0 < start_lr < end_lr:
        raise ValueError(f"need 0 < start_lr < end_lr, got start_lr={start_lr}, end_lr={end_lr}")
    if num_steps < 5:
        raise ValueError(f"num_steps must be at least 5 to draw a curve, got {num_steps}")
    if not 0 <= beta < 1:
        raise ValueError(f"beta (the smoothing factor) must be in [0, 1), got {beta}")
    if isinstance(train_data, DataLoader):
        dataset, collate_fn = train_data.dataset, collate_fn or train_data.collate_fn
    else:
        dataset = train_data
    n = len(dataset)  # type: ignore[arg-type]
    if n == 0:
        raise ValueError("the training data is empty")
    gen = torch.Generator().manual_seed(seed)
    reps = math.ceil(num_steps * batch_size / n)
    order = torch.cat([torch.randperm(n, generator=gen) for _ in range(reps)])[: num_steps * batch_size]
    stream = Subset(dataset, order.tolist())

    params = [p for p in model.parameters() if p.requires_grad]
    opt = make_optimizer(optimizer, params, lr=start_lr) if isinstance(optimizer, str) else optimizer(params, start_lr)
    for g in opt.param_groups:
        g["lr"] = start_lr
    gamma = (end_lr / start_lr) ** (1 / (num_steps - 1))
    schedule = [start_lr * gamma**i for i in range(num_steps)]
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: gamma ** min(s, num_steps - 1))
    recorder = _Recorder(schedule, beta, diverge_factor, min_steps=max(3, num_steps // 10))

    saved = copy.deepcopy(model.state_dict())
    # no NaN guard: a non-finite loss is the recorder's signal to stop (the weights are restored anyway)
    trainer = Trainer(model, opt, scheduler=sched, batch_size=batch_size, shuffle=False, collate_fn=collate_fn,
                      loss_fn=loss_fn, device=device, callbacks=[recorder], progress=progress, log=False, seed=seed,
                      nan_guard=False)
    try:
        trainer.fit(stream, epochs=1)
    finally:
        model.load_state_dict(saved)
    stopped = recorder.stopped
    if len(recorder.lrs) < 3:
        raise RuntimeError(
            f"the loss exploded after {len(recorder.lrs)} steps: lower start_lr (now {start_lr:g}) and try again")
    lrs, smoothed = recorder.lrs, recorder.smoothed
    if stopped:  # drop the exploding tail for the suggestion, keep it in the plot
        keep = len(lrs) - 1
    else:
        keep = len(lrs)
    suggestion = suggest_lr(lrs[:keep], smoothed[:keep], method)
    finite = [s if math.isfinite(s) else math.inf for s in smoothed]
    return LRFindResult(lrs, recorder.losses, smoothed, suggestion, float(lrs[int(np.argmin(finite))]), stopped, method)
