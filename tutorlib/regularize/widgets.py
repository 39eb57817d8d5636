"""Lesson 02's widget: choose regularizers and their strength, train, and watch the train/validation curves.

Training takes a few seconds, so the widget trains when you press the button rather than on every
slider move. The logic is in plain functions (:func:`draw_runs`) and in
:meth:`RegularizationExplorer.train`, which a test can call without a browser.

>>> from tutorlib.data import load_digits
>>> from tutorlib.models import MLP
>>> box = regularization_explorer(load_digits("train", limit=32), load_digits("val", limit=32),
...                               lambda p: MLP(64, [16], 10, dropout=p), epochs=2)
>>> box.explorer.controls["dropout"].value = 0.5
>>> box.explorer.train().config.dropout
0.5
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from torch import nn
from torch.utils.data import Dataset

from tutorlib.regularize.sweeps import RegConfig, RunResult, train_regularized
from tutorlib.widgets import redraw

__all__ = ["draw_runs", "RegularizationExplorer", "regularization_explorer"]


def draw_runs(runs: Sequence[tuple[str, RunResult]], ax: Any = None, keep: int = 3):
    """Train (solid) and validation (dashed) accuracy of the last run in colour and up to ``keep - 1`` earlier runs in grey.

    >>> import matplotlib; matplotlib.use("Agg")
    >>> from tutorlib.train import History
    >>> h = History([{"epoch": 0, "train_accuracy": 1.0, "val_accuracy": 0.8}])
    >>> fig = draw_runs([("a", RunResult(RegConfig(), h, nn.Linear(1, 1), 1.0, 0.8, 0.0, 0.5))])
    """
    import matplotlib.pyplot as plt

    if not runs:
        raise ValueError("no runs to draw: train at least once")
    if ax is None:
        _, ax = plt.subplots(figsize=(7.5, 4))
    shown = list(runs)[-keep:]
    for k, (label, r) in enumerate(shown):
        last = k == len(shown) - 1
        eps = r.history.epochs
        xs = [e["epoch"] + 1 for e in eps]
        color = "C0" if last else str(0.55 + 0.15 * (len(shown) - 2 - k))
        lw = 2 if last else 1
        tag = "this run" if last else f"earlier: {label}"
        ax.plot(xs, [e.get("train_accuracy") for e in eps], "-", color=color, lw=lw, label=f"{tag} — train")
        ax.plot(xs, [e.get("val_accuracy") for e in eps], "--", color="C1" if last else color, lw=lw,
                label=f"{tag} — validation")
    r = shown[-1][1]
    ax.set_xlabel("epoch")
    ax.set_ylabel("accuracy")
    ax.set_title(f"{shown[-1][0]}: train {r.train_accuracy:.3f}, val {r.val_accuracy:.3f}, gap {r.gap:+.3f}")
    ax.legend(fontsize=7)
    ax.figure.tight_layout()
    return ax.figure


class RegularizationExplorer:
    """The widget behind :func:`regularization_explorer`; ``train()`` runs one configuration and redraws."""

    def __init__(self, train: Dataset, val: Dataset, model_fn: Callable[[float], nn.Module], epochs: int = 60,
                 lr: float = 3e-3, **train_kwargs: Any) -> None:
        import ipywidgets as w

        self.train_data, self.val_data, self.model_fn = train, val, model_fn
        self.lr, self.train_kwargs = lr, train_kwargs
        style = {"description_width": "120px"}
        self.controls: dict[str, Any] = {
            "dropout": w.FloatSlider(value=0.0, min=0.0, max=0.9, step=0.05, description="dropout", style=style),
            "l1": w.SelectionSlider(options=[0.0, 1e-5, 3e-5, 1e-4, 3e-4, 1e-3], value=0.0, description="L1 (in loss)",
                                    style=style),
            "l2": w.SelectionSlider(options=[0.0, 1e-4, 1e-3, 3e-3, 1e-2, 3e-2], value=0.0, description="L2 (in loss)",
                                    style=style),
            "weight_decay": w.SelectionSlider(options=[0.0, 0.01, 0.1, 0.3, 1.0], value=0.0,
                                              description="weight decay (AdamW)", style=style),
            "label_smoothing": w.FloatSlider(value=0.0, min=0.0, max=0.3, step=0.05, description="label smoothing",
                                             style=style),
            "augment": w.FloatSlider(value=0.0, min=0.0, max=1.5, step=0.25, description="augmentation", style=style),
            "early_stopping": w.Dropdown(options=[("off", None), ("patience 5", 5), ("patience 10", 10),
                                                  ("patience 20", 20)], value=None, description="early stopping",
                                         style=style),
            "epochs": w.IntSlider(value=epochs, min=1, max=max(200, epochs), step=1, description="epochs", style=style),
        }
        self.button = w.Button(description="Train", button_style="primary", icon="play")
        self.button.on_click(lambda _b: self.train())
        self.output = w.Output()
        self.status = w.HTML("Choose regularizers, then press <b>Train</b> (a run takes a few seconds).")
        self.runs: list[tuple[str, RunResult]] = []
        left = w.VBox([self.controls[k] for k in ("dropout", "l1", "l2", "weight_decay")])
        right = w.VBox([self.controls[k] for k in ("label_smoothing", "augment", "early_stopping", "epochs")])
        self.box = w.VBox([w.HBox([left, right]), w.HBox([self.button, self.status]), self.output])
        self.box.add_class("tutorlib-widget")
        self.box.explorer = self  # type: ignore[attr-defined]

    def config(self) -> RegConfig:
        """The :class:`RegConfig` the controls describe."""
        c = self.controls
        cfg = RegConfig("run", dropout=c["dropout"].value, l1=c["l1"].value, l2=c["l2"].value,
                        weight_decay=c["weight_decay"].value, label_smoothing=c["label_smoothing"].value,
                        augment=c["augment"].value, early_stopping=c["early_stopping"].value, lr=self.lr)
        return RegConfig(cfg.describe(), **{k: getattr(cfg, k) for k in (
            "dropout", "l1", "l2", "weight_decay", "label_smoothing", "augment", "early_stopping", "lr")})

    def train(self) -> RunResult:
        """Train once with the current settings, add the run to the plot, and return it."""

        cfg = self.config()
        self.button.disabled = True
        self.status.value = f"training: {cfg.describe()} …"
        try:
            result = train_regularized(cfg, self.model_fn, self.train_data, self.val_data,
                                       epochs=self.controls["epochs"].value, **self.train_kwargs)
        finally:
            self.button.disabled = False
        self.runs.append((cfg.name, result))
        redraw(self.output, draw_runs(self.runs))
        stop = f", stopped after epoch {result.epochs_run}, best epoch {result.best_epoch + 1} restored" \
            if result.best_epoch is not None and result.stopped_epoch is not None else ""
        self.status.value = (f"<b>{cfg.describe()}</b>: train acc {result.train_accuracy:.3f}, val acc "
                             f"{result.val_accuracy:.3f}, gap {result.gap:+.3f}, val loss {result.val_loss:.3f}{stop}")
        return result


def regularization_explorer(train: Dataset, val: Dataset, model_fn: Callable[[float], nn.Module], epochs: int = 60,
                            lr: float = 3e-3, **train_kwargs: Any):
    """A widget: sliders for dropout, L1, L2, weight decay, label smoothing, augmentation and early stopping, and a Train button.

    ``model_fn(dropout_rate)`` builds the model; extra keyword arguments go to
    :func:`~tutorlib.regularize.train_regularized` (e.g. ``batch_size``). Returns the top container;
    ``box.explorer`` is the :class:`RegularizationExplorer`.

    >>> from tutorlib.data import load_digits
    >>> from tutorlib.models import MLP
    >>> box = regularization_explorer(load_digits("train", limit=16), load_digits("val", limit=16),
    ...                               lambda p: MLP(64, [8], 10, dropout=p), epochs=1)
    >>> box.explorer.runs
    []
    """
    return RegularizationExplorer(train, val, model_fn, epochs, lr, **train_kwargs).box
