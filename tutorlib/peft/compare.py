"""The lesson's one table: for each fine-tuning method, trainable %, peak training memory, time per epoch, accuracy.

Peak training memory is *measured*, for one optimizer step (forward, backward, AdamW update) on
the same batch for every method:

- on CUDA with ``torch.cuda.max_memory_allocated``;
- on a CPU, where PyTorch keeps no allocator statistics, with :class:`tutorlib.measure.LiveTensorMemory`, a
  ``TorchDispatchMode`` that adds up the bytes of every tensor storage created during the step and
  subtracts them when the storage is freed. The model's own parameters and buffers (allocated
  before the step) are added to its peak.

Both count tensors only (weights, gradients, optimizer state, saved activations, temporaries), not
the Python interpreter or the allocator's cache, so they compare methods fairly but are lower than
the process's resident memory.

>>> from torch import nn
>>> measure_training_memory(nn.Linear(256, 2), [(torch.randn(256), 1)] * 4) > 0
True
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Sequence

import torch
from torch import nn

from tutorlib.measure import LiveTensorMemory
from tutorlib.models import trainable_summary
from tutorlib.peft.methods import DEFAULT_LR, MethodConfig, build_model
from tutorlib.runtime import get_device, seed_everything
from tutorlib.train import Callback, Trainer

__all__ = [
    "measure_training_memory",
    "EpochTimer",
    "MethodResult",
    "compare_methods",
    "results_table",
    "plot_comparison",
    "METHOD_LABELS",
]

METHOD_LABELS: dict[str, str] = {
    "head": "head only", "full": "full fine-tuning", "lora-ours": "LoRA (ours)", "lora": "LoRA (peft)",
    "dora": "DoRA", "ia3": "IA³", "prefix": "prefix tuning", "prompt": "prompt tuning",
    "houlsby": "adapter (Houlsby)", "pfeiffer": "adapter (Pfeiffer)",
}


def _model_bytes(model: nn.Module) -> int:
    seen, total = set(), 0
    for t in list(model.parameters()) + list(model.buffers()):
        key = (str(t.device), t.untyped_storage().data_ptr())
        if key not in seen:
            seen.add(key)
            total += t.untyped_storage().nbytes()
    return total


def measure_training_memory(model: nn.Module, batch: Sequence[Any], *, lr: float = 1e-3,
                            collate_fn: Callable | None = None, device: str | torch.device | None = None) -> int:
    """Peak bytes of one training step (forward, backward, AdamW step) of ``model`` on ``batch`` (a list of examples).

    ``model`` is trained one step in place: pass a copy if you need it untouched.

    >>> m = nn.Linear(256, 2)
    >>> data = [(torch.randn(256), 0), (torch.randn(256), 1)]
    >>> measure_training_memory(m, data) > 3 * (256 * 2 + 2) * 4      # weights + grads + 2 Adam moments
    True
    """
    if len(batch) == 0:
        raise ValueError("batch is empty: pass a list of a few training examples")
    dev = get_device(device)
    trainer = Trainer(model, lr=lr, device=dev, batch_size=len(batch), collate_fn=collate_fn, shuffle=False,
                      progress=False, log=False)
    if dev.type == "cuda":
        # Count only this model and its step: other tensors already on the GPU are subtracted.
        torch.cuda.synchronize(dev)
        other = torch.cuda.memory_allocated(dev) - _model_bytes(trainer.unwrapped_model)
        torch.cuda.reset_peak_memory_stats(dev)
        trainer.fit(list(batch), epochs=1)
        torch.cuda.synchronize(dev)
        return int(torch.cuda.max_memory_allocated(dev) - other)
    static = _model_bytes(trainer.unwrapped_model)
    with LiveTensorMemory() as mem:
        trainer.fit(list(batch), epochs=1)
    return static + mem.peak_bytes


class EpochTimer(Callback):
    """Seconds of training (not evaluation) per epoch, from the epoch start to its last optimizer step.

    >>> EpochTimer().seconds
    []
    """

    def __init__(self) -> None:
        self.seconds: list[float] = []
        self._start = 0.0
        self._last = 0.0

    def on_epoch_start(self, trainer: Any, epoch: int) -> None:
        self._start = self._last = time.perf_counter()

    def on_step_end(self, trainer: Any, logs: dict[str, Any]) -> None:
        self._last = time.perf_counter()

    def on_epoch_end(self, trainer: Any, logs: dict[str, Any]) -> None:
        self.seconds.append(self._last - self._start)


@dataclass
class MethodResult:
    """One row of the comparison table.

    >>> MethodResult("lora", "LoRA", 1, 100, 1.0, 2e6, 3.0, 0.9).row()["trainable %"]
    '1.000'
    """

    method: str
    label: str
    trainable: int
    total: int
    percent: float
    peak_bytes: int
    seconds_per_epoch: float
    val_accuracy: float
    test_accuracy: float | None = None
    lr: float = 0.0
    history: list[dict[str, Any]] = field(default_factory=list)
    model: Any = field(default=None, repr=False, compare=False)

    def row(self) -> dict[str, str]:
        """The formatted table row."""
        return {
            "method": self.label,
            "trainable": f"{self.trainable:,}",
            "trainable %": f"{self.percent:.3f}",
            "peak train MiB": f"{self.peak_bytes / 2**20:.0f}",
            "s / epoch": f"{self.seconds_per_epoch:.1f}",
            "val acc": f"{100 * self.val_accuracy:.1f}",
            "test acc": "" if self.test_accuracy is None else f"{100 * self.test_accuracy:.1f}",
            "lr": f"{self.lr:g}",
        }

    def to_dict(self) -> dict[str, Any]:
        """Everything but the trained model, JSON-ready."""
        return {k: v for k, v in asdict(self).items() if k != "model"}


def compare_methods(methods: Sequence[str | MethodConfig], train: Any, val: Any, test: Any = None, *,
                    epochs: int = 1, batch_size: int = 32, max_length: int = 64, lr: dict[str, float] | None = None,
                    num_labels: int = 2, encoder: nn.Module | None = None, seed: int = 0,
                    device: str | torch.device | None = None, precision: str = "fp32", progress: bool = True,
                    keep: Sequence[str] = (),
                    on_result: Callable[[MethodResult], None] | None = None) -> list[MethodResult]:
    """Train each method on ``train`` with the shared ``Trainer`` and measure the table's four columns.

    ``train``/``val``/``test`` hold ``(text, label)`` items (e.g. ``load_reviews(...)``). ``lr`` maps
    a method to its learning rate (default :data:`~tutorlib.peft.methods.DEFAULT_LR`). Every method
    starts from the same pretrained encoder and seed; memory is measured on the first ``batch_size``
    training examples. The trained models of the methods named in ``keep`` stay in ``result.model``
    (the others are freed). A :class:`MethodConfig` with ``extra={"label": …}`` sets the row's label.

    >>> from tutorlib.data import load_reviews
    >>> rows = compare_methods(["head"], load_reviews("train", limit=16), load_reviews("val", limit=16),
    ...                        batch_size=8, progress=False)
    >>> rows[0].method, 0 <= rows[0].val_accuracy <= 1
    ('head', True)
    """
    from tqdm.auto import tqdm

    from tutorlib.data import text_collate
    from tutorlib.models import load_encoder, load_tokenizer

    if not methods:
        raise ValueError("methods is empty: pass e.g. ['head', 'full', 'lora']")
    dev = get_device(device)
    enc = encoder if encoder is not None else load_encoder()
    collate = text_collate(load_tokenizer(), max_length=max_length)
    rates = dict(DEFAULT_LR, **(lr or {}))
    probe = [train[i] for i in range(min(batch_size, len(train)))]
    results = []
    bar = tqdm(methods, desc="methods", disable=not progress)
    for spec in bar:
        cfg = spec if isinstance(spec, MethodConfig) else MethodConfig(spec)
        bar.set_postfix(method=cfg.method)
        rate = float(cfg.extra.get("lr", rates[cfg.method]))
        seed_everything(seed)
        peak = measure_training_memory(build_model(cfg, num_labels, encoder=enc), probe, lr=rate,
                                       collate_fn=collate, device=dev)
        seed_everything(seed)
        model = build_model(cfg, num_labels, encoder=enc)
        summary = trainable_summary(model)
        timer = EpochTimer()
        trainer = Trainer(model, lr=rate, device=dev, precision=precision, batch_size=batch_size,
                          collate_fn=collate, seed=seed, callbacks=[timer], progress=False, log=False)
        history = trainer.fit(train, val, epochs=epochs)
        test_acc = trainer.evaluate(test, prefix="test")["test_accuracy"] if test is not None else None
        label = cfg.extra.get("label") or METHOD_LABELS.get(cfg.method, cfg.method)
        res = MethodResult(cfg.method, label, int(summary["trainable"]),
                           int(summary["total"]), float(summary["percent"]), peak,
                           sum(timer.seconds) / len(timer.seconds), float(history["val_accuracy"][-1]), test_acc,
                           rate, copy.deepcopy(history.epochs),
                           model=trainer.unwrapped_model.eval() if cfg.method in keep else None)
        results.append(res)
        if on_result is not None:
            on_result(res)
        del trainer, model
    return results


def results_table(results: Sequence[MethodResult]) -> str:
    """The results as a Markdown table.

    >>> print(results_table([MethodResult("lora", "LoRA", 1, 100, 1.0, 2**20, 3.0, 0.9)]).splitlines()[0])
    | method | trainable | trainable % | peak train MiB | s / epoch | val acc | test acc | lr |
    """
    if not results:
        raise ValueError("no results to tabulate")
    rows = [r.row() for r in results]
    head = list(rows[0])
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(r[h] for h in head) + " |" for r in rows]
    return "\n".join(lines)


def plot_comparison(results: Sequence[MethodResult], title: str = "Fine-tuning methods on the review classifier"):
    """Three panels: accuracy vs trainable % (log scale), peak training memory, time per epoch.

    >>> fig = plot_comparison([MethodResult("lora", "LoRA", 1, 100, 1.0, 2**20, 3.0, 0.9)])
    """
    import matplotlib.pyplot as plt

    if not results:
        raise ValueError("no results to plot")
    labels = [r.label for r in results]
    acc = [100 * (r.test_accuracy if r.test_accuracy is not None else r.val_accuracy) for r in results]
    which = "test" if all(r.test_accuracy is not None for r in results) else "validation"
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    ax = axes[0]
    ax.scatter([r.percent for r in results], acc, zorder=3)
    for r, a in zip(results, acc):
        ax.annotate(r.label, (r.percent, a), textcoords="offset points", xytext=(4, 3), fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("trainable parameters (% of the model, log scale)")
    ax.set_ylabel(f"{which} accuracy (%)")
    ax.set_title("accuracy vs trainable parameters")
    ax.grid(alpha=0.3)
    y = range(len(results))
    axes[1].barh(y, [r.peak_bytes / 2**20 for r in results], color="C1")
    axes[1].set_yticks(list(y), labels)
    axes[1].invert_yaxis()
    axes[1].set_xlabel("peak training memory (MiB, one step)")
    axes[1].set_title("memory")
    axes[2].barh(y, [r.seconds_per_epoch for r in results], color="C2")
    axes[2].set_yticks(list(y), labels)
    axes[2].invert_yaxis()
    axes[2].set_xlabel("seconds per epoch")
    axes[2].set_title("time")
    fig.suptitle(title)
    fig.tight_layout()
    return fig
