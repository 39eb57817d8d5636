"""The fine-tuning driver behind ``tutorlib finetune``: read the user's file, train with the shared ``Trainer``, save.

One run writes, in ``--out``:

- the trained weights: a ``peft`` adapter folder (``adapter_model.safetensors``, kilobytes) for
  ``lora``/``dora``/``ia3``/``prefix``/``prompt``, only the trained tensors for ``head`` and the
  bottleneck adapters, the whole classifier for ``full`` (see :func:`tutorlib.peft.save_trained`);
- ``tutorlib_model.json`` (method, base model, label names, text column, max length) and
  ``labels.json`` (the label map) — everything ``tutorlib predict --model OUT`` needs;
- ``metrics.json``: sizes, settings, per-epoch history, final validation accuracy, macro-F1,
  per-class precision/recall/F1 and the confusion matrix;
- ``checkpoints/``: the ``Trainer``'s atomic checkpoints, for ``--resume``.

Tasks are dispatched through :data:`TASKS`: ``classification`` (here) and ``causal-lm``
(prompt/completion JSONL, LoRA SFT of a causal LM, :mod:`tutorlib.finetune.causal_lm`). A task is a
function ``f(config) -> metrics dict`` that reads its data, builds its model, trains with the
``Trainer`` (a ``step_fn`` for language modelling) and writes its artefacts.

>>> import tempfile, pathlib
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> rows = ["text,label"] + [f"review {i} was {'great' if i % 2 else 'awful'},{'pos' if i % 2 else 'neg'}" for i in range(12)]
>>> _ = (folder / "d.csv").write_text("\\n".join(rows) + "\\n")
>>> metrics = finetune(FinetuneConfig(data=str(folder / "d.csv"), method="head", epochs=1, out=str(folder / "run"),
...                                   progress=False, verbose=False))
>>> sorted(metrics["labels"])
['neg', 'pos']
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from tutorlib.atomic import atomic_write_json
from tutorlib.finetune.options import DEFAULT_EPOCHS
from tutorlib.finetune.io import (TextClassificationDataset, check_classes, encode_labels, read_table,
                                  split_train_val)

__all__ = ["FinetuneConfig", "finetune", "TASKS", "register_task", "DEFAULT_EPOCHS"]


#: Settings that must not change between a run and its ``--resume``.
_RESUME_KEYS = ("task", "method", "model", "r", "alpha", "target_modules", "text_col", "label_col", "max_length",
                "num_virtual_tokens", "bottleneck")


@dataclass
class FinetuneConfig:
    """Every option of ``tutorlib finetune`` (the CLI fills it from its arguments).

    ``lr=None`` takes the method's measured default (:data:`tutorlib.peft.DEFAULT_LR`: LoRA 2e-3,
    full fine-tuning 5e-5, …). ``model=None`` is the bundled MiniLM; a hub id needs a network.

    >>> FinetuneConfig(data="train.csv").method
    'lora'
    """

    data: str
    text_col: str = "text"
    label_col: str = "label"
    val_data: str | None = None
    val_fraction: float = 0.2
    task: str = "classification"
    method: str = "lora"
    model: str | None = None
    epochs: int = DEFAULT_EPOCHS
    lr: float | None = None
    batch_size: int = 16
    max_length: int = 128
    out: str = "runs/finetune"
    resume: bool = False
    seed: int = 0
    device: str | None = None
    precision: str = "fp32"
    r: int = 8
    alpha: float | None = None
    target_modules: tuple[str, ...] = ("query", "value")
    num_virtual_tokens: int = 10
    bottleneck: int = 16
    encoding: str = "utf-8-sig"
    fmt: str | None = None
    skip_empty: bool = False
    checkpoint_every: int | None = None
    progress: bool = True
    verbose: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        """Raise ``ValueError`` for impossible settings (before any slow work starts)."""
        from tutorlib.peft.methods import METHODS

        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}: choose one of {', '.join(METHODS)}")
        for name in ("epochs", "batch_size", "max_length", "r"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if self.lr is not None and not self.lr > 0:
            raise ValueError(f"--lr must be positive, got {self.lr}")
        if not 0.0 < self.val_fraction < 1.0:
            raise ValueError(f"--val-fraction must be between 0 and 1, got {self.val_fraction}")
        if self.text_col == self.label_col:
            raise ValueError(f"--text-col and --label-col are both {self.text_col!r}: they must be different columns")


TaskFn = Callable[[FinetuneConfig], dict]
TASKS: dict[str, TaskFn] = {}


def register_task(name: str) -> Callable[[TaskFn], TaskFn]:
    """Decorator adding a task (``--task NAME``) to :data:`TASKS`.

    >>> sorted(TASKS)
    ['causal-lm', 'classification']
    """
    def deco(fn: TaskFn) -> TaskFn:
        TASKS[name] = fn
        return fn

    return deco


def finetune(config: FinetuneConfig) -> dict[str, Any]:
    """Run one fine-tuning job described by ``config``; returns the metrics also written to ``metrics.json``.

    >>> finetune(FinetuneConfig(data="x.csv", task="translation"))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: unknown task 'translation': ...
    """
    if config.task not in TASKS:
        raise ValueError(f"unknown task {config.task!r}: available {sorted(TASKS)}")
    return TASKS[config.task](config)


def _say(config: FinetuneConfig, msg: str) -> None:
    """Print ``msg`` unless quiet; under ``torchrun`` only the first process prints."""
    if config.verbose and _is_main():
        print(msg, flush=True)


def _is_main() -> bool:
    from tutorlib.train import is_main_process

    return is_main_process()


def examples_per_process(trainer: Any) -> list[int]:
    """How many training examples each process trained on (one entry without ``torchrun``).

    >>> class T: examples_seen = 12; dist = type("D", (), {"enabled": False})()
    >>> examples_per_process(T())
    [12]
    """
    if not trainer.dist.enabled:
        return [int(trainer.examples_seen)]
    import torch.distributed as dist

    seen: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(seen, int(trainer.examples_seen))
    return [int(n) for n in seen]


def _check_out(config: FinetuneConfig, out: Path, settings: dict[str, Any]) -> None:
    ckpt = out / "checkpoints"
    has_ckpt = ckpt.is_dir() and any(ckpt.glob("step-*"))
    if config.resume:
        if not has_ckpt:
            raise FileNotFoundError(f"--resume given but {ckpt} holds no checkpoint: run without --resume first")
        previous = out / "run_config.json"
        if previous.exists():
            old = json.loads(previous.read_text(encoding="utf-8"))
            changed = [k for k in _RESUME_KEYS + ("labels",) if old.get(k) != settings.get(k)]
            if changed:
                details = "; ".join(f"{k}: {old.get(k)!r} then, {settings.get(k)!r} now" for k in changed)
                raise ValueError(f"cannot resume {out}: the run's settings changed ({details}). Use the same options, "
                                 "or start a new run with another --out")
    elif has_ckpt:
        raise FileExistsError(f"{ckpt} already holds checkpoints of an earlier run: add --resume to continue it, "
                              "or choose another --out")


@register_task("classification")
def run_classification(config: FinetuneConfig) -> dict[str, Any]:
    """Text classification: one text column, one label column (strings or integers), any number of classes."""
    from tutorlib.data import text_collate
    from tutorlib.models import load_tokenizer, resolve_model_path
    from tutorlib.models import trainable_summary
    from tutorlib.peft.methods import DEFAULT_LR, build_model, save_trained
    from tutorlib.runtime import get_device, seed_everything
    from tutorlib.train import Trainer, confusion_matrix, f1_score, precision_recall_f1

    config.validate()
    out = Path(config.out)
    # 1. data: every file problem is reported before the model loads
    table = read_table(config.data, config.text_col, config.label_col, encoding=config.encoding, fmt=config.fmt,
                       skip_empty=config.skip_empty)
    names = check_classes(table)
    ids = encode_labels(table, names)
    if config.val_data:
        val_table = read_table(config.val_data, config.text_col, config.label_col, encoding=config.encoding,
                               fmt=config.fmt, skip_empty=config.skip_empty)
        train_ds = TextClassificationDataset(table.texts, ids)
        val_ds = TextClassificationDataset(val_table.texts, encode_labels(val_table, names))
    else:
        tr, va = split_train_val(ids, config.val_fraction, config.seed)
        train_ds = TextClassificationDataset([table.texts[i] for i in tr], [ids[i] for i in tr])
        val_ds = TextClassificationDataset([table.texts[i] for i in va], [ids[i] for i in va])
    if table.skipped:
        _say(config, f"skipped {len(table.skipped)} row(s) with an empty text or label (lines "
                     f"{', '.join(map(str, table.skipped[:10]))}{' …' if len(table.skipped) > 10 else ''})")
    # 2. settings, and the resume check
    model_arg = config.model
    if model_arg is not None and Path(model_arg).expanduser().exists():
        model_arg = str(Path(model_arg).expanduser().resolve())
    settings = {"task": config.task, "method": config.method, "model": model_arg, "r": config.r,
                "alpha": config.alpha if config.alpha is not None else 2.0 * config.r,
                "target_modules": list(config.target_modules), "text_col": config.text_col,
                "label_col": config.label_col, "max_length": config.max_length,
                "num_virtual_tokens": config.num_virtual_tokens, "bottleneck": config.bottleneck, "labels": names}
    _check_out(config, out, settings)
    # 3. model (a hub id fails fast offline, naming the bundled default)
    base = resolve_model_path(config.model)
    device = get_device(config.device)
    seed_everything(config.seed)
    tokenizer = load_tokenizer(base)
    model = build_model(config.method, num_labels=len(names), base=base, r=config.r, alpha=config.alpha,
                        target_modules=config.target_modules, num_virtual_tokens=config.num_virtual_tokens,
                        bottleneck=config.bottleneck)
    summary = trainable_summary(model)
    lr = config.lr if config.lr is not None else DEFAULT_LR[config.method]
    counts = {n: ids.count(i) for i, n in enumerate(names)}
    _say(config, f"tutorlib finetune: {len(train_ds)} train / {len(val_ds)} validation examples, {len(names)} classes "
                 f"{counts}; method {config.method} ({int(summary['trainable']):,} trainable parameters, "
                 f"{summary['percent']:.2f} %), lr {lr:g}, {config.epochs} epoch(s), batch {config.batch_size}, "
                 f"device {device}")
    if _is_main():  # under torchrun the first process alone writes the output folder
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out / "run_config.json", settings)
    trainer = Trainer(model, lr=lr, device=device, precision=config.precision, batch_size=config.batch_size,
                      collate_fn=text_collate(tokenizer, config.max_length), seed=config.seed,
                      metrics=("accuracy", "f1"), checkpoint_dir=out / "checkpoints",
                      checkpoint_every=config.checkpoint_every, progress=config.progress, log=config.verbose)
    t0 = time.perf_counter()
    history = trainer.fit(train_ds, val_ds, epochs=config.epochs, resume=config.resume)
    seconds = time.perf_counter() - t0
    # 4. final evaluation on the validation data
    logits, targets = trainer.predict(val_ds)
    if targets is None:  # pragma: no cover - the validation batches always carry labels
        raise RuntimeError("the validation data produced no labels")
    prec, rec, f1 = precision_recall_f1(logits, targets, num_classes=len(names))
    cm = confusion_matrix(logits, targets, num_classes=len(names))
    per_class = {n: {"precision": float(prec[i]), "recall": float(rec[i]), "f1": float(f1[i]),
                     "support": int((targets == i).sum())} for i, n in enumerate(names)}
    val_acc = float((logits.argmax(1) == targets).float().mean())
    seen = examples_per_process(trainer)
    # 5. artefacts (the first process only)
    extra = {"task": config.task, "labels": names, "text_col": config.text_col, "label_col": config.label_col,
             "max_length": config.max_length}
    metrics = {
        **settings, "data": str(config.data), "val_data": config.val_data, "train_size": len(train_ds),
        "val_size": len(val_ds), "class_counts": counts, "lr": lr, "epochs": config.epochs,
        "batch_size": config.batch_size, "seed": config.seed, "device": str(device), "precision": trainer.precision,
        "trainable_parameters": int(summary["trainable"]), "total_parameters": int(summary["total"]),
        "trainable_percent": float(summary["percent"]), "seconds": seconds,
        "val_accuracy": val_acc, "val_macro_f1": f1_score(logits, targets, num_classes=len(names)),
        "per_class": per_class, "confusion_matrix": cm.tolist(), "history": history.to_dict(),
        "processes": len(seen), "examples_per_process": seen,
    }
    if not trainer.is_main:
        return metrics
    save_trained(trainer.unwrapped_model, out, base=model_arg, extra=extra)
    atomic_write_json(out / "labels.json", {"labels": names, "label_to_id": {n: i for i, n in enumerate(names)}})
    atomic_write_json(out / "metrics.json", metrics)
    _say(config, f"done in {seconds:.1f} s: validation accuracy {100 * val_acc:.1f} %, macro-F1 "
                 f"{100 * metrics['val_macro_f1']:.1f} %. Model in {out} — try: tutorlib predict --model {out} \"some text\"")
    return metrics


# registers --task causal-lm (imported last: it builds on the helpers above)
from tutorlib.finetune import causal_lm as _causal_lm  # noqa: E402,F401
