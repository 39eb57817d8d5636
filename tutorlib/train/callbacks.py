"""Hooks into the training loop: checkpoints, the non-finite-loss guard, early stopping, printing.

The live dashboard lives in ``tutorlib.widgets``. A callback overrides any of the ``on_*`` methods;
each receives the :class:`~tutorlib.train.Trainer` and the latest logs. Setting
``trainer.should_stop = True`` in ``on_step_end`` ends training after that optimizer step; in
``on_epoch_end``, after that epoch. The Trainer adds :class:`NonFiniteGuard` itself, and
:class:`Checkpointing` when it is given a ``checkpoint_dir``.

>>> from tutorlib.train.callbacks import EarlyStopping
>>> es = EarlyStopping(monitor="val_loss", patience=2)
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tutorlib.train.checkpoint import latest_checkpoint, save_checkpoint

if TYPE_CHECKING:  # pragma: no cover
    from tutorlib.train.trainer import Trainer

__all__ = ["Callback", "Checkpointing", "NonFiniteGuard", "NonFiniteLossError", "EarlyStopping", "PrintLogger"]


class NonFiniteLossError(FloatingPointError):
    """Training produced a NaN/Inf loss; the message names the step and learning rate."""


class Callback:
    """Base class: every hook does nothing. Override the ones you need.

    ``on_loss`` sees each micro-batch's loss before the backward pass; ``on_step_end`` each optimizer
    step's logs (``step``, ``loss``, ``lr``).
    """

    def on_fit_start(self, trainer: "Trainer") -> None: ...
    def on_epoch_start(self, trainer: "Trainer", epoch: int) -> None: ...
    def on_loss(self, trainer: "Trainer", loss: float) -> None: ...
    def on_step_end(self, trainer: "Trainer", logs: dict[str, Any]) -> None: ...
    def on_epoch_end(self, trainer: "Trainer", logs: dict[str, Any]) -> None: ...
    def on_fit_end(self, trainer: "Trainer") -> None: ...


class NonFiniteGuard(Callback):
    """Stop training with :class:`NonFiniteLossError` when a loss is NaN or Inf, before it reaches the weights.

    The message names the step, the learning rate and the last good checkpoint (which is kept).

    >>> class T:
    ...     global_step, epoch, batch_index, checkpoint_dir = 4, 0, 9, None
    ...     def current_lr(self): return 0.1
    >>> NonFiniteGuard().on_loss(T(), float("nan"))
    Traceback (most recent call last):
    ...
    tutorlib.train.callbacks.NonFiniteLossError: loss became nan at step 5 (epoch 1, batch 10) with learning rate 0.1. Lower the learning rate, add clip_grad_norm=1.0, or check the inputs for NaN/Inf.
    """

    def on_loss(self, trainer: "Trainer", loss: float) -> None:
        if math.isfinite(loss):
            return
        where = f"step {trainer.global_step + 1} (epoch {trainer.epoch + 1}, batch {trainer.batch_index + 1})"
        last = latest_checkpoint(trainer.checkpoint_dir) if trainer.checkpoint_dir is not None else None
        kept = f" The last good checkpoint is kept in {last}." if last else ""
        raise NonFiniteLossError(
            f"loss became {loss} at {where} with learning rate {trainer.current_lr():.3g}. "
            f"Lower the learning rate, add clip_grad_norm=1.0, or check the inputs for NaN/Inf.{kept}"
        )


class Checkpointing(Callback):
    """Write an atomic checkpoint every ``every`` optimizer steps and at the end of every epoch.

    A checkpoint holds the weights, optimizer, scheduler, scaler, RNG states and where the epoch
    stood, so ``Trainer.fit(..., resume=True)`` continues exactly. Only the main process writes.

    >>> Checkpointing("runs/x", every=100).every
    100
    """

    def __init__(self, directory: str | Path, every: int | None = None, keep_last: int = 2) -> None:
        if every is not None and every < 1:
            raise ValueError(f"checkpoint_every must be at least 1 optimizer step, got {every}")
        self.directory, self.every, self.keep_last = Path(directory), every, keep_last

    def save(self, trainer: "Trainer", epoch: int, next_batch: int) -> None:
        """Save now, recording that training goes on at batch ``next_batch`` of epoch ``epoch``."""
        if not trainer.is_main:
            return
        state = {"epoch": epoch, "next_batch": next_batch, "loss_sum": trainer.loss_sum, "loss_count": trainer.loss_count,
                 "history": trainer.history.to_dict(), "global_step": trainer.global_step}
        save_checkpoint(self.directory, trainer.unwrapped_model, trainer.global_step, state, trainer.optimizer,
                        trainer.scheduler, trainer.scaler, keep_last=self.keep_last)

    def on_step_end(self, trainer: "Trainer", logs: dict[str, Any]) -> None:
        next_batch = trainer.batch_index + 1
        if self.every and trainer.global_step % self.every == 0 and next_batch < trainer.batches_per_epoch:
            self.save(trainer, trainer.epoch, next_batch)

    def on_epoch_end(self, trainer: "Trainer", logs: dict[str, Any]) -> None:
        self.save(trainer, trainer.epoch + 1, 0)


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
