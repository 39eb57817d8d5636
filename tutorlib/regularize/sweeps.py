"""Run one model under different regularizers and measure the train/validation gap, through the Trainer.

A :class:`RegConfig` names one recipe (dropout rate, L1/L2 penalty in the loss, decoupled weight
decay, label smoothing, augmentation strength, early stopping). :func:`train_regularized` trains a
fresh model with it — same seed, data and optimizer (AdamW; with ``weight_decay=0`` that is Adam) —
while :class:`TrainMetrics` measures the *un-augmented* training set after every epoch, so the
curves show the real gap. :func:`sweep` runs several configs, :func:`dropout_sweep` several rates;
the ``plot_*`` functions draw curves, the gap summary and weight histograms.

>>> from tutorlib.data import load_digits
>>> from tutorlib.models import MLP
>>> res = train_regularized(RegConfig("dropout", dropout=0.3), lambda p: MLP(64, [32], 10, dropout=p),
...                         load_digits("train", limit=64), load_digits("val", limit=64), epochs=2)
>>> sorted(k for k in res.history.epochs[-1] if k.startswith("train"))
['train_accuracy', 'train_eval_loss', 'train_loss']
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from tutorlib.regularize.augment import AugmentedDataset, DigitAugment
from tutorlib.regularize.penalties import RegularizedLoss
from tutorlib.runtime import seed_everything
from tutorlib.train import Callback, EarlyStopping, History, Trainer

__all__ = [
    "RegConfig",
    "RunResult",
    "TrainMetrics",
    "train_regularized",
    "sweep",
    "dropout_sweep",
    "plot_overfitting",
    "plot_curves",
    "plot_gap_summary",
    "plot_weight_histograms",
    "weight_values",
]


@dataclass(frozen=True)
class RegConfig:
    """One regularisation recipe. All off (zero/None) is the unregularised baseline.

    >>> RegConfig("both", dropout=0.5, weight_decay=0.1).describe()
    'dropout 0.5, weight decay 0.1'
    """

    name: str = "baseline"
    dropout: float = 0.0
    l1: float = 0.0
    l2: float = 0.0
    weight_decay: float = 0.0
    label_smoothing: float = 0.0
    augment: float = 0.0
    early_stopping: int | None = None
    lr: float = 1e-3

    def __post_init__(self) -> None:
        for key in ("dropout", "l1", "l2", "weight_decay", "label_smoothing", "augment"):
            if getattr(self, key) < 0:
                raise ValueError(f"RegConfig.{key} must be >= 0, got {getattr(self, key)}")
        if self.dropout >= 1 or self.label_smoothing >= 1:
            raise ValueError(f"dropout and label_smoothing must be < 1, got {self.dropout} and {self.label_smoothing}")
        if self.early_stopping is not None and self.early_stopping < 1:
            raise ValueError(f"early_stopping is a patience in epochs (>= 1) or None, got {self.early_stopping}")
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")

    def describe(self) -> str:
        """A short human-readable list of what is switched on."""
        parts = []
        for key, label in (("dropout", "dropout"), ("l1", "L1"), ("l2", "L2 in loss"), ("weight_decay", "weight decay"),
                           ("label_smoothing", "label smoothing"), ("augment", "augmentation")):
            v = getattr(self, key)
            if v:
                parts.append(f"{label} {v:g}")
        if self.early_stopping:
            parts.append(f"early stopping (patience {self.early_stopping})")
        return ", ".join(parts) or "no regularisation"


class TrainMetrics(Callback):
    """After every epoch, evaluate the clean training set and add ``train_accuracy``/``train_eval_loss`` to the logs.

    The Trainer's own ``train_loss`` is averaged over the epoch in training mode (dropout on,
    augmented inputs, penalties added); this is the model's actual fit to the training data.

    >>> from tutorlib.data import load_digits
    >>> cb = TrainMetrics(load_digits("train", limit=32))
    """

    def __init__(self, train_data: Dataset) -> None:
        self.train_data = train_data

    def on_epoch_end(self, trainer: Any, logs: dict[str, Any]) -> None:
        ev = trainer.evaluate(self.train_data, prefix="train")
        logs["train_eval_loss"] = ev["train_loss"]
        if "train_accuracy" in ev:
            logs["train_accuracy"] = ev["train_accuracy"]


@dataclass
class RunResult:
    """A trained run: its config, history, model and the final (best-restored) train/val numbers.

    >>> r = RunResult(RegConfig(), History(), nn.Linear(1, 1), 1.0, 0.8, 0.01, 0.6)
    >>> round(r.gap, 2)
    0.2
    """

    config: RegConfig
    history: History
    model: nn.Module
    train_accuracy: float
    val_accuracy: float
    train_loss: float
    val_loss: float
    stopped_epoch: int | None = None
    best_epoch: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def gap(self) -> float:
        """Train accuracy minus validation accuracy (what regularisation tries to shrink)."""
        return self.train_accuracy - self.val_accuracy

    @property
    def epochs_run(self) -> int:
        return len(self.history.epochs)


def train_regularized(config: RegConfig, model_fn: Callable[[float], nn.Module], train: Dataset, val: Dataset,
                      epochs: int = 50, batch_size: int = 32, augment_fn: Callable[[float], Callable] | None = None,
                      collate_fn: Callable | None = None, seed: int = 0, device: Any = None,
                      callbacks: Sequence[Callback] = (), cosine: bool = False, progress: bool = False) -> RunResult:
    """Train ``model_fn(config.dropout)`` on ``train`` with ``config``'s regularisers; return a :class:`RunResult`.

    ``augment_fn(strength)`` builds the per-example transform (default :class:`DigitAugment`).
    Early stopping monitors ``val_loss`` and restores the best epoch's weights; the final train/val
    numbers are measured on that restored model. The learning rate is constant (so overfitting shows
    in the curves); with ``cosine=True`` it decays to 0 over the run (``CosineAnnealingLR``).

    >>> from tutorlib.data import load_digits
    >>> from tutorlib.models import MLP
    >>> r = train_regularized(RegConfig(early_stopping=1), lambda p: MLP(64, [16], 10, dropout=p),
    ...                       load_digits("train", limit=64), load_digits("val", limit=32), epochs=3)
    >>> 0 <= r.val_accuracy <= 1
    True
    """
    if not isinstance(config, RegConfig):
        raise TypeError(f"config must be a RegConfig, got {type(config).__name__}")
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    seed_everything(seed)
    model = model_fn(config.dropout)
    if not isinstance(model, nn.Module):
        raise TypeError(f"model_fn must return an nn.Module, got {type(model).__name__}")
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    loss_fn = RegularizedLoss(model, config.l1, config.l2, config.label_smoothing)
    train_data: Dataset = train
    if config.augment:
        make = augment_fn or (lambda s: DigitAugment(strength=s))
        train_data = AugmentedDataset(train, make(config.augment))
    cbs: list[Callback] = [TrainMetrics(train)]
    stopper = None
    if config.early_stopping:
        stopper = EarlyStopping("val_loss", patience=config.early_stopping, restore_best=True)
        cbs.append(stopper)
    cbs.extend(callbacks)
    scheduler = (lambda o, total: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=max(1, total))) if cosine else None
    trainer = Trainer(model, opt, loss_fn=loss_fn, batch_size=batch_size, collate_fn=collate_fn, seed=seed,
                      device=device, callbacks=cbs, scheduler=scheduler, progress=progress, log=False)
    history = trainer.fit(train_data, val, epochs=epochs)
    ev_train = trainer.evaluate(train, prefix="train")
    ev_val = trainer.evaluate(val)
    return RunResult(config, history, trainer.unwrapped_model, ev_train.get("train_accuracy", math.nan),
                     ev_val.get("val_accuracy", math.nan), ev_train["train_loss"], ev_val["val_loss"],
                     stopped_epoch=stopper.stopped_epoch if stopper else None,
                     best_epoch=stopper.best_epoch if stopper else None)


def sweep(configs: Iterable[RegConfig], model_fn: Callable[[float], nn.Module], train: Dataset, val: Dataset,
          epochs: int = 50, progress: bool = True, **kwargs: Any) -> dict[str, RunResult]:
    """:func:`train_regularized` for each config (same seed and data); results keyed by config name.

    >>> from tutorlib.data import load_digits
    >>> from tutorlib.models import MLP
    >>> res = sweep([RegConfig("a"), RegConfig("b", l2=1e-3)], lambda p: MLP(64, [16], 10, dropout=p),
    ...             load_digits("train", limit=32), load_digits("val", limit=32), epochs=1, progress=False)
    >>> list(res)
    ['a', 'b']
    """
    configs = list(configs)
    names = [c.name for c in configs]
    if len(set(names)) != len(names):
        raise ValueError(f"config names must be unique, got {names}")
    it: Iterable[RegConfig] = configs
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(configs, desc="regularizers", leave=False)
    return {c.name: train_regularized(c, model_fn, train, val, epochs, **kwargs) for c in it}


def dropout_sweep(rates: Sequence[float], model_fn: Callable[[float], nn.Module], train: Dataset, val: Dataset,
                  epochs: int = 50, base: RegConfig | None = None, progress: bool = True,
                  **kwargs: Any) -> dict[float, RunResult]:
    """Train once per dropout rate (everything else from ``base``); results keyed by rate.

    >>> from tutorlib.data import load_digits
    >>> from tutorlib.models import MLP
    >>> r = dropout_sweep([0.0, 0.5], lambda p: MLP(64, [16], 10, dropout=p), load_digits("train", limit=32),
    ...                   load_digits("val", limit=32), epochs=1, progress=False)
    >>> sorted(r)
    [0.0, 0.5]
    """
    base = base or RegConfig()
    configs = [replace(base, name=f"dropout {r:g}", dropout=float(r)) for r in rates]
    res = sweep(configs, model_fn, train, val, epochs, progress=progress, **kwargs)
    return {float(r): res[c.name] for r, c in zip(rates, configs)}


def plot_overfitting(history: History, title: str = "Overfitting on a small training set", mark_best: bool = True):
    """Train vs validation loss and accuracy per epoch; ``mark_best`` marks the epoch of lowest validation loss.

    >>> import matplotlib; matplotlib.use("Agg")
    >>> h = History([{"epoch": i, "train_eval_loss": 1 / (i + 1), "val_loss": 1 + (i - 2) ** 2 / 10,
    ...               "train_accuracy": 0.9, "val_accuracy": 0.8} for i in range(5)])
    >>> fig = plot_overfitting(h)
    """
    import matplotlib.pyplot as plt

    eps = history.epochs
    if not eps or "val_loss" not in eps[-1]:
        raise ValueError("the history has no val_loss: train with val data (and TrainMetrics for the train curve)")
    xs = [e["epoch"] + 1 for e in eps]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.8))
    train_key = "train_eval_loss" if "train_eval_loss" in eps[-1] else "train_loss"
    ax1.plot(xs, [e[train_key] for e in eps], "-", label="train")
    ax1.plot(xs, [e["val_loss"] for e in eps], "-", label="validation")
    best = int(np.argmin([e["val_loss"] for e in eps]))
    if mark_best:
        ax1.axvline(xs[best], color="0.5", ls=":", label=f"lowest val loss (epoch {xs[best]})")
    ax1.set_yscale("log")
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("cross-entropy loss (log scale)")
    ax1.set_title(title)
    ax1.legend(fontsize=8)
    if "train_accuracy" in eps[-1]:
        ax2.plot(xs, [e["train_accuracy"] for e in eps], "-", label="train")
    if "val_accuracy" in eps[-1]:
        ax2.plot(xs, [e["val_accuracy"] for e in eps], "-", label="validation")
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("accuracy")
    ax2.set_title("Accuracy: the gap between the curves")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_curves(results: Mapping[Any, RunResult], metric: str = "accuracy", title: str | None = None, ax: Any = None):
    """Train (solid) and validation (dashed) ``metric`` per epoch for every run, one colour per run.

    >>> import matplotlib; matplotlib.use("Agg")
    >>> h = History([{"epoch": 0, "train_accuracy": 1.0, "val_accuracy": 0.8}])
    >>> fig = plot_curves({"a": RunResult(RegConfig(), h, nn.Linear(1, 1), 1.0, 0.8, 0.0, 0.5)})
    """
    import matplotlib.pyplot as plt

    if metric not in ("accuracy", "loss"):
        raise ValueError(f"metric must be 'accuracy' or 'loss', got {metric!r}")
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4))
    tkey = "train_accuracy" if metric == "accuracy" else "train_eval_loss"
    vkey = f"val_{metric}"
    for k, (name, r) in enumerate(results.items()):
        eps = r.history.epochs
        xs = [e["epoch"] + 1 for e in eps]
        mark = "o" if len(xs) < 20 else ""  # short runs: show the points
        ax.plot(xs, [e.get(tkey, np.nan) for e in eps], "-" + mark, ms=3, color=f"C{k % 10}", label=f"{name} train")
        ax.plot(xs, [e.get(vkey, np.nan) for e in eps], "--" + mark, ms=3, color=f"C{k % 10}", label=f"{name} val")
    ax.set_xlabel("epoch")
    ax.set_ylabel(metric)
    if metric == "loss":
        ax.set_yscale("log")
    ax.set_title(title or f"Train (solid) vs validation (dashed) {metric}")
    ax.legend(fontsize=7, ncol=2)
    ax.figure.tight_layout()
    return ax.figure


def plot_gap_summary(results: Mapping[Any, RunResult], title: str = "Regularizers: the train/validation gap"):
    """Two panels per run: final train vs validation accuracy (gap written above) and train vs validation loss.

    >>> import matplotlib; matplotlib.use("Agg")
    >>> fig = plot_gap_summary({"a": RunResult(RegConfig(), History(), nn.Linear(1, 1), 1.0, 0.8, 0.01, 0.5)})
    """
    import matplotlib.pyplot as plt

    if not results:
        raise ValueError("no results to plot")
    names = [str(n) for n in results]
    tr = np.array([r.train_accuracy for r in results.values()])
    va = np.array([r.val_accuracy for r in results.values()])
    trl = np.array([r.train_loss for r in results.values()])
    val = np.array([r.val_loss for r in results.values()])
    xs = np.arange(len(names))
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(max(10, 1.2 * len(names) + 4), 4.4))
    ax1.bar(xs - 0.2, tr, 0.4, label="train", color="C0")
    ax1.bar(xs + 0.2, va, 0.4, label="validation", color="C1")
    for x, t, v in zip(xs, tr, va):
        ax1.text(x, max(t, v) + 0.005, f"gap\n{t - v:+.3f}", ha="center", va="bottom", fontsize=7)
    low = float(min(tr.min(), va.min()))
    ax1.set_ylim(max(0.0, low - 0.05), 1.1)
    ax1.set_ylabel("accuracy")
    ax1.set_title("Final accuracy (gap = train − validation)")
    ax2.bar(xs - 0.2, trl, 0.4, label="train", color="C0")
    ax2.bar(xs + 0.2, val, 0.4, label="validation", color="C1")
    ax2.set_yscale("log")
    ax2.set_ylabel("cross-entropy loss (log scale)")
    ax2.set_title("Final loss (lower is better)")
    for ax in (ax1, ax2):
        ax.set_xticks(xs, names, rotation=30, ha="right")
        ax.set_xlabel("regularizer")
    handles, labels = ax1.get_legend_handles_labels()
    fig.suptitle(title)
    fig.legend(handles, labels, loc="upper right", ncol=2, fontsize=9, frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 0.94))
    return fig


def weight_values(model: nn.Module) -> np.ndarray:
    """All weight-matrix values of ``model`` (biases excluded) as one flat array.

    >>> weight_values(nn.Linear(3, 2)).shape
    (6,)
    """
    vals = [p.detach().float().cpu().flatten() for p in model.parameters() if p.dim() > 1]
    if not vals:
        raise ValueError("the model has no weight matrices")
    return torch.cat(vals).numpy()


def plot_weight_histograms(models: Mapping[str, nn.Module], bins: int = 80, near_zero: float = 1e-3):
    """Overlaid histograms of each model's weights (log counts); the legend gives the share with |w| < ``near_zero``.

    >>> import matplotlib; matplotlib.use("Agg")
    >>> fig = plot_weight_histograms({"a": nn.Linear(10, 10), "b": nn.Linear(10, 10)})
    """
    import matplotlib.pyplot as plt

    if not models:
        raise ValueError("no models to plot")
    arrays = {name: weight_values(m) for name, m in models.items()}
    lim = max(float(np.abs(a).max()) for a in arrays.values())
    edges = np.linspace(-lim, lim, bins + 1)
    fig, ax = plt.subplots(figsize=(7, 4))
    for k, (name, a) in enumerate(arrays.items()):
        share = float((np.abs(a) < near_zero).mean())
        ax.hist(a, bins=edges, histtype="step", lw=1.5, color=f"C{k}",
                label=f"{name}: |w|<{near_zero:g} for {100 * share:.1f}%, ‖w‖={np.linalg.norm(a):.1f}")
    ax.set_yscale("log")
    ax.set_xlabel("weight value")
    ax.set_ylabel("count (log scale)")
    ax.set_title("Weight distributions after training")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
