"""The course's one training loop: device placement, mixed precision, accumulation, clipping, schedules,
callbacks, metrics, NaN guard, atomic checkpoints with exact resume, and DDP under ``torchrun``.

Lessons with a special step (GAN, distillation, contrastive) pass ``step_fn`` instead of copying the loop.

>>> import torch
>>> from tutorlib.data import load_digits
>>> from tutorlib.models import MLP
>>> from tutorlib.train import Trainer
>>> history = Trainer(MLP(64, [32], 10), lr=1e-2, progress=False, log=False).fit(
...     load_digits("train", limit=256), load_digits("val", limit=128), epochs=2)
>>> history["train_loss"][-1] < history["train_loss"][0]
True
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset

from tutorlib.runtime import get_device
from tutorlib.train.callbacks import Callback, Checkpointing, NonFiniteGuard, NonFiniteLossError, PrintLogger
from tutorlib.train.checkpoint import latest_checkpoint, load_checkpoint
from tutorlib.train.distributed import GlobalBatchSampler, init_distributed, wrap_ddp
from tutorlib.train.metrics import accuracy, as_predictions, f1_score

__all__ = ["Trainer", "fit", "History", "NonFiniteLossError", "PRECISIONS"]

PRECISIONS = ("fp32", "bf16", "fp16", "auto")
StepFn = Callable[["Trainer", Any], dict]


@dataclass
class History:
    """What ``fit`` measured: one dict per epoch and one per optimizer step.

    >>> h = History([{"epoch": 0, "train_loss": 1.0}, {"epoch": 1, "train_loss": 0.5}])
    >>> h["train_loss"]
    [1.0, 0.5]
    """

    epochs: list[dict[str, Any]] = field(default_factory=list)
    steps: list[dict[str, float]] = field(default_factory=list)

    def __getitem__(self, key: str) -> list[Any]:
        if self.epochs and key not in self.epochs[-1]:
            raise KeyError(f"no {key!r} in history; available: {sorted(self.epochs[-1])}")
        return [e[key] for e in self.epochs if key in e]

    def last(self, key: str) -> Any:
        """The value of ``key`` at the last epoch."""
        return self[key][-1]

    def to_dict(self) -> dict[str, Any]:
        return {"epochs": self.epochs, "steps": self.steps}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "History":
        return cls(list(d.get("epochs", [])), list(d.get("steps", [])))


def _to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: _to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to_device(v, device) for v in batch)
    return batch


def _batch_size_of(batch: Any) -> int:
    if isinstance(batch, torch.Tensor):
        return batch.shape[0] if batch.dim() else 1
    if isinstance(batch, dict):
        for v in batch.values():
            if isinstance(v, torch.Tensor) and v.dim():
                return v.shape[0]
    if isinstance(batch, (list, tuple)) and batch:
        return _batch_size_of(batch[0])
    return 1


class Trainer:
    """Train ``model`` with one loop for every lesson.

    Batches may be ``(x, y)`` tuples (``model(x)``), dicts with ``labels`` (``model(**inputs)``), or
    anything a ``step_fn(trainer, batch) -> {"loss": …, ["logits": …, "targets": …]}`` understands.
    Models returning an object with ``.loss``/``.logits`` (Hugging Face style) work as is.

    Key arguments: ``precision`` ('fp32', 'bf16', 'fp16' = autocast, with a GradScaler on CUDA, or
    'auto'), ``grad_accum`` (micro-batches per optimizer step), ``clip_grad_norm``, ``scheduler`` (an
    LR scheduler, or a factory ``f(optimizer, total_steps)`` stepped after every optimizer step),
    ``checkpoint_dir``/``checkpoint_every`` (optimizer steps; also at each epoch end: the
    :class:`~tutorlib.train.callbacks.Checkpointing` callback), ``nan_guard`` (stop on a NaN/Inf loss:
    :class:`~tutorlib.train.callbacks.NonFiniteGuard`), ``batch_size`` (global, split over ``torchrun``
    processes), ``live`` (the ipywidgets dashboard).

    >>> t = Trainer(nn.Linear(4, 2), lr=0.1, progress=False, log=False)
    >>> ds = torch.utils.data.TensorDataset(torch.randn(32, 4), torch.randint(0, 2, (32,)))
    >>> len(t.fit(ds, epochs=1).steps)
    1
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer | None = None,
        *,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
        device: str | torch.device | None = None,
        precision: str = "fp32",
        grad_accum: int = 1,
        clip_grad_norm: float | None = None,
        scheduler: Any = None,
        callbacks: Sequence[Callback] = (),
        step_fn: StepFn | None = None,
        manual_optimization: bool = False,
        batch_size: int = 64,
        eval_batch_size: int | None = None,
        collate_fn: Callable | None = None,
        shuffle: bool = True,
        seed: int = 0,
        metrics: Iterable[str] = ("accuracy",),
        checkpoint_dir: str | Path | None = None,
        checkpoint_every: int | None = None,
        keep_last: int = 2,
        progress: bool = True,
        log: bool | str = "auto",
        live: bool = False,
        nan_guard: bool = True,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        if grad_accum < 1 or batch_size < 1:
            raise ValueError(f"grad_accum and batch_size must be at least 1, got {grad_accum} and {batch_size}")
        if clip_grad_norm is not None and clip_grad_norm <= 0:
            raise ValueError(f"clip_grad_norm must be positive, got {clip_grad_norm}")
        unknown = set(metrics) - {"accuracy", "f1"}
        if unknown:
            raise ValueError(f"unknown metric(s) {sorted(unknown)}: use 'accuracy' and/or 'f1'")
        self.device = get_device(device)
        self.dist = init_distributed(self.device)
        if self.dist.enabled and self.device.type == "cuda":
            self.device = torch.device("cuda", self.dist.local_rank)
            torch.cuda.set_device(self.device)
        self.precision = self._resolve_precision(precision)
        self.model = model.to(self.device)
        if self.dist.enabled:
            self.model = wrap_ddp(self, self.model, self.device)
        params = [p for p in self.unwrapped_model.parameters() if p.requires_grad]
        if optimizer is None and not manual_optimization:
            if not params:
                raise ValueError("the model has no trainable parameters (all requires_grad=False): unfreeze something")
            optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
        self.optimizer = optimizer
        self.loss_fn = loss_fn or F.cross_entropy
        self._default_loss = loss_fn is None
        self.grad_accum = grad_accum
        self.clip_grad_norm = clip_grad_norm
        self._scheduler_arg = scheduler
        self.scheduler: Any = None
        self.callbacks: list[Callback] = list(callbacks)
        self.step_fn = step_fn
        self.manual_optimization = manual_optimization
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.collate_fn = collate_fn
        self.shuffle = shuffle
        self.seed = seed
        self.metrics = tuple(metrics)
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
        self.is_main = self.dist.rank == 0
        self.progress = progress and self.is_main
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.precision == "fp16" and self.device.type == "cuda")
        self._micro_sizes: list[int] = []
        self.global_step = 0
        self.total_steps = 0
        self.epoch = 0
        self.batch_index = 0          # the micro-batch being trained, within the epoch
        self.batches_per_epoch = 0
        self.loss_sum, self.loss_count = 0.0, 0  # the running epoch's training loss
        self.examples_seen = 0  # training examples this process has trained on (its share under DDP)
        self.should_stop = False
        self.history = History()
        if live and self.is_main:
            from tutorlib.widgets.dashboard import TrainingDashboard

            self.callbacks.append(TrainingDashboard())
        if (log is True or (log == "auto" and not live)) and self.is_main:
            self.callbacks.append(PrintLogger())
        if nan_guard:
            self.callbacks.append(NonFiniteGuard())
        if self.checkpoint_dir is not None:
            self.callbacks.append(Checkpointing(self.checkpoint_dir, checkpoint_every, keep_last))
        elif checkpoint_every is not None:
            raise ValueError("checkpoint_every needs checkpoint_dir= (the folder to write checkpoints to)")

    # ------------------------------------------------------------------ helpers
    @property
    def unwrapped_model(self) -> nn.Module:
        """The model without its DDP wrapper."""
        return self.model.module if isinstance(self.model, nn.parallel.DistributedDataParallel) else self.model

    def _resolve_precision(self, precision: str) -> str:
        if precision == "auto":
            if self.device.type == "cuda":
                return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
            return "fp32"
        if precision == "fp16" and self.device.type == "cpu":
            raise ValueError("fp16 autocast is for GPUs; on a CPU use precision='bf16' (or 'fp32')")
        if precision == "bf16" and self.device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise ValueError("this GPU does not support bf16; use precision='fp16' (with loss scaling)")
        return precision

    @property
    def amp_dtype(self) -> torch.dtype | None:
        return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.precision)

    def autocast(self) -> contextlib.AbstractContextManager:
        """Autocast context for this trainer's precision (a no-op for fp32). Use it inside a ``step_fn``."""
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def backward(self, loss: torch.Tensor) -> None:
        """Backward pass with loss scaling when fp16 is on (for ``manual_optimization`` step functions)."""
        if self.scaler.is_enabled():
            self.scaler.scale(loss).backward()
        else:
            loss.backward()

    def optimizer_step(self, optimizer: torch.optim.Optimizer, parameters: Iterable[nn.Parameter] | None = None) -> None:
        """Unscale, clip, step and zero one optimizer (for ``manual_optimization`` step functions)."""
        if self.clip_grad_norm is not None:
            if self.scaler.is_enabled():
                self.scaler.unscale_(optimizer)
            params = parameters if parameters is not None else [p for g in optimizer.param_groups for p in g["params"]]
            nn.utils.clip_grad_norm_(list(params), self.clip_grad_norm)
        self._step(optimizer)
        optimizer.zero_grad(set_to_none=True)

    def _step(self, optimizer: torch.optim.Optimizer) -> None:
        if self.scaler.is_enabled():
            self.scaler.step(optimizer)
            self.scaler.update()
        else:
            optimizer.step()

    def _make_loader(self, data: Dataset | DataLoader, train: bool) -> DataLoader:
        if isinstance(data, DataLoader):
            dataset, collate, batch_size = data.dataset, data.collate_fn, data.batch_size or self.batch_size
            shuffle = train and isinstance(data.sampler, torch.utils.data.RandomSampler)
        else:
            dataset, collate = data, self.collate_fn
            batch_size = self.batch_size if train else self.eval_batch_size
            shuffle = train and self.shuffle
        try:
            n = len(dataset)  # type: ignore[arg-type]
        except TypeError as exc:
            raise TypeError("training data must be a sized Dataset or DataLoader (len() must work)") from exc
        if n == 0:
            raise ValueError("the dataset is empty: check the split name and any limit= you passed")
        if train:
            sampler = GlobalBatchSampler(n, batch_size, shuffle=shuffle, seed=self.seed,
                                         rank=self.dist.rank, world_size=self.dist.world_size)
        else:
            sampler = GlobalBatchSampler(n, batch_size, shuffle=False)
        # A private generator: creating a DataLoader iterator would otherwise draw a base seed from the
        # global RNG, which breaks bitwise-exact resume (dropout would see a different stream).
        return DataLoader(dataset, batch_sampler=sampler, collate_fn=collate,
                          generator=torch.Generator().manual_seed(self.seed))

    def compute(self, batch: Any) -> dict[str, Any]:
        """Run the model on one (device-placed) batch and return ``{"loss", "logits", "targets"}``.

        >>> t = Trainer(nn.Linear(3, 2), progress=False, log=False)
        >>> sorted(t.compute((torch.zeros(4, 3), torch.zeros(4, dtype=torch.long))))
        ['logits', 'loss', 'targets']
        """
        if self.step_fn is not None:
            out = self.step_fn(self, batch)
            if not isinstance(out, dict) or "loss" not in out:
                raise TypeError("step_fn must return a dict with at least a 'loss' tensor")
            return out
        targets = None
        if isinstance(batch, dict):
            inputs = dict(batch)
            targets = inputs.pop("labels", None)
            output = self.model(**inputs)
        elif isinstance(batch, (list, tuple)):
            if len(batch) == 0:
                raise ValueError("got an empty batch")
            output = self.model(batch[0])
            targets = batch[1] if len(batch) > 1 else None
        else:
            output = self.model(batch)
        loss = getattr(output, "loss", None)
        logits = getattr(output, "logits", output)
        if loss is None:
            if targets is None:
                raise ValueError(
                    "the batch has no labels (expected (x, y) or a dict with 'labels') and the model returned "
                    "no .loss: pass step_fn= to compute the loss yourself"
                )
            if self._default_loss:
                self._check_classification(logits, targets)
            loss = self.loss_fn(logits, targets)
        return {"loss": loss, "logits": logits, "targets": targets}

    @staticmethod
    def _check_classification(logits: Any, targets: Any) -> None:
        if not isinstance(logits, torch.Tensor):
            raise TypeError(f"the model returned {type(logits).__name__}, expected a logits tensor (B, C)")
        if logits.dim() != 2:
            raise ValueError(f"cross-entropy expects logits of shape (B, C), got {tuple(logits.shape)}: flatten or pass loss_fn=")
        if not isinstance(targets, torch.Tensor) or targets.dtype not in (torch.long, torch.int64, torch.int32):
            got = targets.dtype if isinstance(targets, torch.Tensor) else type(targets).__name__
            raise TypeError(f"labels must be an int64 tensor of class ids, got {got}: use y.long()")
        if targets.shape != logits.shape[:1]:
            raise ValueError(f"logits {tuple(logits.shape)} and labels {tuple(targets.shape)} disagree on the batch size")

    # ------------------------------------------------------------------ evaluation
    @torch.no_grad()
    def evaluate(self, data: Dataset | DataLoader, prefix: str = "val") -> dict[str, float]:
        """Mean loss and the chosen metrics over ``data`` (model in eval mode, autocast on).

        >>> t = Trainer(nn.Linear(3, 2), progress=False, log=False)
        >>> ds = torch.utils.data.TensorDataset(torch.zeros(4, 3), torch.zeros(4, dtype=torch.long))
        >>> sorted(t.evaluate(ds))
        ['val_accuracy', 'val_loss']
        """
        loader = self._make_loader(data, train=False)
        was_training = self.model.training
        self.model.eval()
        total, count = 0.0, 0
        all_preds, all_targets = [], []  # class ids, not logits: batches may differ in width (e.g. CLIP's B×B)
        try:
            for batch in loader:
                batch = _to_device(batch, self.device)
                with self.autocast():
                    out = self.compute(batch)
                n = _batch_size_of(batch)
                total += float(out["loss"].float()) * n
                count += n
                logits, targets = out.get("logits"), out.get("targets")
                if (isinstance(logits, torch.Tensor) and isinstance(targets, torch.Tensor)
                        and logits.dim() == 2 and targets.dim() == 1):
                    all_preds.append(as_predictions(logits).cpu())
                    all_targets.append(targets.cpu())
        finally:
            self.model.train(was_training)
        result = {f"{prefix}_loss": total / max(count, 1)}
        if all_preds:
            preds, targets = torch.cat(all_preds), torch.cat(all_targets)
            if "accuracy" in self.metrics:
                result[f"{prefix}_accuracy"] = accuracy(preds, targets)
            if "f1" in self.metrics:
                result[f"{prefix}_f1"] = f1_score(preds, targets)
        return result

    @torch.no_grad()
    def predict(self, data: Dataset | DataLoader, class_ids: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Concatenated float32 logits (or, with ``class_ids``, predicted class ids) over ``data``, and the
        targets if the batches have them. Class ids work when the logits' width changes between batches
        (e.g. CLIP's in-batch B×B scores), as in :meth:`evaluate`.

        >>> t = Trainer(nn.Linear(3, 2), progress=False, log=False)
        >>> ds = torch.utils.data.TensorDataset(torch.zeros(5, 3), torch.zeros(5, dtype=torch.long))
        >>> tuple(t.predict(ds)[0].shape), tuple(t.predict(ds, class_ids=True)[0].shape)
        ((5, 2), (5,))
        """
        loader = self._make_loader(data, train=False)
        self.model.eval()
        outputs, targets = [], []
        for batch in loader:
            batch = _to_device(batch, self.device)
            with self.autocast():
                out = self.compute(batch)
            logits = out["logits"]
            outputs.append(as_predictions(logits).cpu() if class_ids else logits.float().cpu())
            if isinstance(out.get("targets"), torch.Tensor):
                targets.append(out["targets"].cpu())
        return torch.cat(outputs), (torch.cat(targets) if targets else None)

    # ------------------------------------------------------------------ training
    def _build_scheduler(self, total_steps: int) -> None:
        arg = self._scheduler_arg
        if arg is None or self.optimizer is None:
            self.scheduler = None
        elif hasattr(arg, "step") and hasattr(arg, "state_dict"):
            self.scheduler = arg
        elif callable(arg):
            self.scheduler = arg(self.optimizer, total_steps)
        else:
            raise TypeError("scheduler must be an LR scheduler or a function (optimizer, total_steps) -> scheduler")

    def current_lr(self) -> float:
        """Learning rate of the first parameter group (0.0 without an optimizer)."""
        return float(self.optimizer.param_groups[0]["lr"]) if self.optimizer is not None else 0.0

    def _fire(self, hook: str, *args: Any) -> None:
        for cb in self.callbacks:
            getattr(cb, hook)(self, *args)

    def fit(self, train_data: Dataset | DataLoader, val_data: Dataset | DataLoader | None = None,
            epochs: int = 1, resume: bool = False) -> History:
        """Train for ``epochs`` epochs; with ``resume=True`` continue exactly from the latest checkpoint.

        Returns the :class:`History`: per epoch ``train_loss``, ``val_loss``/``val_accuracy`` (with
        val data), ``lr`` and ``seconds``; per optimizer step ``loss`` and ``lr``. A callback that sets
        ``trainer.should_stop`` ends training after the current optimizer step (or epoch).
        """
        if epochs < 1:
            raise ValueError(f"epochs must be at least 1, got {epochs}")
        loader = self._make_loader(train_data, train=True)
        self._plan(loader, epochs)
        start_epoch, skip = self._restore() if resume else self._start_fresh()
        self._fire("on_fit_start")
        self.model.train()
        if self.optimizer is not None:
            self.optimizer.zero_grad(set_to_none=True)
        try:
            for epoch in range(start_epoch, epochs):
                finished = self._run_epoch(loader, epoch, epochs, skip)
                skip = 0
                if finished:
                    self._end_epoch(val_data)
                if self.should_stop:
                    break
        finally:
            self._fire("on_fit_end")
        return self.history

    def _plan(self, loader: DataLoader, epochs: int) -> None:
        """Work out the number of optimizer steps and build the schedule over them."""
        self.batches_per_epoch = len(loader)
        self.total_steps = math.ceil(self.batches_per_epoch / self.grad_accum) * epochs
        self._build_scheduler(self.total_steps)
        self.should_stop = False

    def _start_fresh(self) -> tuple[int, int]:
        self.global_step, self.history = 0, History()
        self.loss_sum, self.loss_count = 0.0, 0
        return 0, 0

    def _restore(self) -> tuple[int, int]:
        """Load the latest checkpoint (weights, optimizer, scheduler, RNG, history); where to go on from."""
        if self.checkpoint_dir is None:
            raise ValueError("resume=True needs checkpoint_dir= (the folder the interrupted run wrote)")
        ckpt = latest_checkpoint(self.checkpoint_dir)
        if ckpt is None:
            return self._start_fresh()
        meta = load_checkpoint(ckpt, self.unwrapped_model, self.optimizer, self.scheduler, self.scaler, restore_rng=True)
        st = meta["state"]
        self.global_step = int(st["global_step"])
        self.loss_sum, self.loss_count = float(st.get("loss_sum", 0.0)), int(st.get("loss_count", 0))
        self.history = History.from_dict(st.get("history", {}))
        if self.is_main and self.progress:
            print(f"resumed from {ckpt} (epoch {int(st['epoch']) + 1}, step {self.global_step})")
        return int(st["epoch"]), int(st["next_batch"])

    def _run_epoch(self, loader: DataLoader, epoch: int, epochs: int, skip: int) -> bool:
        """Train one epoch from batch ``skip``; False when a callback stopped it part-way."""
        self.epoch = epoch
        loader.batch_sampler.set_epoch(epoch)  # type: ignore[union-attr]
        if self.grad_accum > 1:  # sizes of this epoch's micro-batches, to weight a ragged last group
            self._micro_sizes = [len(b) for b in loader.batch_sampler]  # type: ignore[union-attr]
        self._fire("on_epoch_start", epoch)
        self._epoch_t0 = time.perf_counter()
        bar = None
        if self.progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=self.batches_per_epoch, initial=skip, desc=f"epoch {epoch + 1}/{epochs}", leave=False)
        try:
            for i, batch in enumerate(loader):
                if i < skip:
                    continue
                self.batch_index = i
                at_boundary = (i + 1) % self.grad_accum == 0 or i + 1 == self.batches_per_epoch  # ends a step
                loss_value = self._train_batch(batch, at_boundary)
                self.examples_seen += _batch_size_of(batch)
                self.loss_sum += loss_value
                self.loss_count += 1
                if bar is not None:
                    bar.update(1)
                    if i % 10 == 0:
                        bar.set_postfix(loss=f"{loss_value:.4f}")
                if at_boundary:
                    self._end_step(loss_value)
                    if self.should_stop and i + 1 < self.batches_per_epoch:
                        return False
        finally:
            if bar is not None:
                bar.close()
        return True

    def _end_step(self, loss_value: float) -> None:
        logs = {"step": self.global_step, "loss": loss_value, "lr": self.current_lr()}
        self.history.steps.append(logs)
        self._fire("on_step_end", logs)

    def _end_epoch(self, val_data: Dataset | DataLoader | None) -> None:
        logs: dict[str, Any] = {"epoch": self.epoch, "train_loss": self.loss_sum / max(self.loss_count, 1)}
        if val_data is not None:
            logs.update(self.evaluate(val_data))
        logs["lr"] = self.current_lr()
        logs["seconds"] = time.perf_counter() - self._epoch_t0
        self.history.epochs.append(logs)
        self.loss_sum, self.loss_count = 0.0, 0
        self._fire("on_epoch_end", logs)

    def _train_batch(self, batch: Any, at_boundary: bool) -> float:
        batch = _to_device(batch, self.device)
        sync: contextlib.AbstractContextManager = contextlib.nullcontext()
        ddp = isinstance(self.model, nn.parallel.DistributedDataParallel)
        if ddp and not at_boundary and not self.manual_optimization:
            # Under DDP, skip the gradient all-reduce on all but the last micro-batch of an accumulation
            # group: gradients add up locally and are averaged once, on the backward pass that ends the group.
            sync = self.model.no_sync()
        with sync:
            return self._forward_backward(batch, at_boundary)

    def _forward_backward(self, batch: Any, at_boundary: bool) -> float:
        with self.autocast():
            out = self.compute(batch)
        loss = out["loss"]
        value = float(loss.detach().float())
        self._fire("on_loss", value)  # the NonFiniteGuard stops here, before a NaN reaches the weights
        if self.manual_optimization:
            self.global_step += 1
            return value
        if self.grad_accum > 1:
            # Weight each micro-batch by its share of the examples in its accumulation group, so a group
            # equals one large batch even when the epoch's last group is ragged.
            i = self.batch_index
            start = (i // self.grad_accum) * self.grad_accum
            group = self._micro_sizes[start : start + self.grad_accum]
            loss = loss * (self._micro_sizes[i] / sum(group))
        self.backward(loss)
        if at_boundary:
            if self.clip_grad_norm is not None:
                if self.scaler.is_enabled():
                    self.scaler.unscale_(self.optimizer)
                nn.utils.clip_grad_norm_(self.model.parameters(), self.clip_grad_norm)
            self._step(self.optimizer)
            self.optimizer.zero_grad(set_to_none=True)
            if self.scheduler is not None:
                self.scheduler.step()
            self.global_step += 1
        return value


def fit(model: nn.Module, train_data: Dataset | DataLoader, val_data: Dataset | DataLoader | None = None,
        epochs: int = 1, **trainer_kwargs: Any) -> History:
    """One-line training: ``Trainer(model, **trainer_kwargs).fit(train_data, val_data, epochs)``.

    >>> from tutorlib.data import load_digits
    >>> from tutorlib.models import MLP
    >>> h = fit(MLP(64, [16], 10), load_digits("train", limit=128), epochs=1, progress=False, log=False)
    >>> len(h.epochs)
    1
    """
    return Trainer(model, **trainer_kwargs).fit(train_data, val_data, epochs=epochs)
