"""The ``classification`` task of ``tutorlib finetune``: a text column, a label column, any number of classes.

One run writes, in ``--out``:

- the trained weights: a ``peft`` adapter folder (``adapter_model.safetensors``, kilobytes) for
  ``lora``/``dora``/``ia3``/``prefix``/``prompt``, only the trained tensors for ``head`` and the
  bottleneck adapters, the whole classifier for ``full`` (see :func:`tutorlib.peft.save_trained`);
- ``tutorlib_model.json`` (method, base model, label names, text column, max length) and
  ``labels.json`` (the label map) — everything ``tutorlib predict --model OUT`` needs;
- ``metrics.json``: sizes, settings, per-epoch history, final validation accuracy, macro-F1,
  per-class precision/recall/F1 and the confusion matrix;
- ``checkpoints/``: the ``Trainer``'s atomic checkpoints, for ``--resume``.

>>> import tempfile, pathlib
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> rows = ["text,label"] + [f"review {i} was {'great' if i % 2 else 'awful'},{'pos' if i % 2 else 'neg'}" for i in range(12)]
>>> _ = (folder / "d.csv").write_text("\\n".join(rows) + "\\n")
>>> metrics = run(FinetuneConfig(data=str(folder / "d.csv"), method="head", epochs=1, out=str(folder / "run"),
...                              progress=False, verbose=False))
>>> sorted(metrics["labels"])
['neg', 'pos']
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from tutorlib.atomic import atomic_write_json
from tutorlib.finetune.common import check_out, examples_per_process, is_main, say
from tutorlib.finetune.io import (TextClassificationDataset, check_classes, encode_labels, read_table,
                                  split_train_val)
from tutorlib.finetune.options import MAX_AUTO_VAL, FinetuneConfig

__all__ = ["run"]


def run(config: FinetuneConfig) -> dict[str, Any]:
    """Text classification: one text column, one label column (strings or integers), any number of classes."""
    from tutorlib.data import text_collate
    from tutorlib.models import load_tokenizer, resolve_model_path
    from tutorlib.models import trainable_summary
    from tutorlib.peft.methods import DEFAULT_LR, build_model, save_trained
    from tutorlib.runtime import get_device, seed_everything
    from tutorlib.train import Trainer, confusion_matrix, f1_score, precision_recall_f1

    config = config.resolved()
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
        # a small held-out share: val_fraction, but at most MAX_AUTO_VAL rows
        tr, va = split_train_val(ids, min(config.val_fraction, max(MAX_AUTO_VAL, 1) / len(ids)), config.seed)
        train_ds = TextClassificationDataset([table.texts[i] for i in tr], [ids[i] for i in tr])
        val_ds = TextClassificationDataset([table.texts[i] for i in va], [ids[i] for i in va])
    if table.skipped:
        say(config, f"skipped {len(table.skipped)} row(s) with an empty text or label (lines "
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
    check_out(config, out, settings)
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
    say(config, f"tutorlib finetune: {len(train_ds)} train / {len(val_ds)} validation examples, {len(names)} classes "
                 f"{counts}; method {config.method} ({int(summary['trainable']):,} trainable parameters, "
                 f"{summary['percent']:.2f} %), lr {lr:g}, {config.epochs} epoch(s), batch {config.batch_size}, "
                 f"device {device}")
    if is_main():  # under torchrun the first process alone writes the output folder
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
    say(config, f"done in {seconds:.1f} s: validation accuracy {100 * val_acc:.1f} %, macro-F1 "
                 f"{100 * metrics['val_macro_f1']:.1f} %. Model in {out} — try: tutorlib predict --model {out} \"some text\"")
    return metrics
