"""Hooks into the training loop: early stopping, printing; the live dashboard lives in ``tutorlib.widgets``.

A callback overrides any of the ``on_*`` methods; each receives the :class:`~tutorlib.train.Trainer`
and a dict of the latest logs. Setting ``trainer.should_stop = True`` ends training after the epoch.

>>> from tutorlib.train.callbacks import EarlyStopping
>>> es = EarlyStopping(monitor="val_loss", patience=2)
"""

from __future__ import annotations

import copy
import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from tutorlib.train.trainer import Trainer

__all__ = ["Callback", "EarlyStopping", "PrintLogger"]


class Callback:
    """Base class: every hook does nothing. Override the ones you need."""

    def on_fit_start(self, trainer: "Trainer") -> None: ...
    def on_epoch_start(self, trainer: "Trainer", epoch: int) -> None: ...
    def on_step_end(self, trainer: "Trainer", logs: dict[str, Any]) -> None: ...
    def on_epoch_end(self, trainer: "Trainer", logs: dict[str, Any]) -> None: ...
    def on_fit_end(self, trainer: "Trainer") -> None: ...


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by ``min_delta`` for ``patience`` epochs; restore the best weights.

    >>> EarlyStopping("val_accuracy", mode="max").mode
    'max'
    """

    def __init__(self, monitor: str = "val_loss", patience: int = 3, mode: str = "auto", min_delta: float = 0.0,
                 restore_best: bool = True) -> None:
        if patience < 1:
            raise ValueError(f"patience must be at least 1, got {patience}")
        if mode == "auto":
            mode = "min" if "loss" in monitor else "max"
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min', 'max' or 'auto', got {mode!r}")
        self.monitor, self.patience, self.mode, self.min_delta, self.restore_best = monitor, patience, mode, min_delta, restore_best
        self.best: float = math.inf if mode == "min" else -math.inf
        self.best_epoch: int | None = None
        self.wait = 0
        self._best_state: dict | None = None
        self.stopped_epoch: int | None = None

    def _improved(self, value: float) -> bool:
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def on_fit_start(self, trainer: "Trainer") -> None:
        self.best = math.inf if self.mode == "min" else -math.inf
        self.best_epoch, self.wait, self._best_state, self.stopped_epoch = None, 0, None, None

    def on_epoch_end(self, trainer: "Trainer", logs: dict[str, Any]) -> None:
        if self.monitor not in logs:
            raise KeyError(
                f"EarlyStopping monitors {self.monitor!r} but the epoch logs only have {sorted(logs)}: "
                "pass val_data to fit() or monitor one of those keys"
            )
        value = float(logs[self.monitor])
        if self._improved(value):
            self.best, self.best_epoch, self.wait = value, int(logs["epoch"]), 0
            if self.restore_best:
                self._best_state = copy.deepcopy(trainer.unwrapped_model.state_dict())
        else:
            self.wait += 1
            if self.wait >= self.patience:
                trainer.should_stop = True
                self.stopped_epoch = int(logs["epoch"])

    def on_fit_end(self, trainer: "Trainer") -> None:
        if self.restore_best and self._best_state is not None:
            trainer.unwrapped_model.load_state_dict(self._best_state)


class PrintLogger(Callback):
    """Print one line per epoch (used when there is no notebook or no dashboard).

    >>> PrintLogger().on_epoch_end(None, {"epoch": 0, "train_loss": 1.0})
    epoch 1 | train_loss 1.0000
    """

    def on_epoch_end(self, trainer: "Trainer", logs: dict[str, Any]) -> None:
        parts = [f"epoch {int(logs['epoch']) + 1}"]
        for k, v in logs.items():
            if k == "epoch" or not isinstance(v, (int, float)):
                continue
            parts.append(f"{k} {v:.4g}" if k in ("lr", "seconds") else f"{k} {v:.4f}")
        print(" | ".join(parts), flush=True)
