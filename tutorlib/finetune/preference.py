"""The ``preference`` task of ``tutorlib finetune``: DPO with LoRA on prompt/chosen/rejected JSONL.

Each line holds a prompt (text, or chat messages ending with the user's turn) and two answers::

    {"prompt": "Capital of France?", "chosen": "Paris.", "rejected": "Probably Lyon."}

(``trl``'s conversational form, ``"chosen": [{"role": "assistant", "content": "Paris."}]``, is read too.)
The model (SmolLM2 by default, or an earlier ``causal-lm`` run folder, whose adapter then trains further)
is the reference: its answer log-probs are computed once (:func:`tutorlib.llm.preference.reference_logprobs`),
then :func:`tutorlib.llm.preference.dpo_train` trains LoRA adapters on the shared ``Trainer``.
``metrics.json`` reports the validation DPO loss and how often the model prefers the chosen answer, before
and after; ``tutorlib generate --model OUT`` uses the result.

>>> import tempfile, pathlib
>>> p = pathlib.Path(tempfile.mkdtemp()) / "pairs.jsonl"
>>> _ = p.write_text('{"prompt": "Hi", "chosen": "Hello!", "rejected": ""}\\n')
>>> read_pairs(p)
Traceback (most recent call last):
...
tutorlib.finetune.io.DataFileError: ...pairs.jsonl: line 1: 'rejected' is empty: a pair needs two non-empty answers
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from tutorlib.atomic import atomic_write_json
from tutorlib.finetune.causal_lm import _read_jsonl, load_causal_lm
from tutorlib.finetune.common import check_out, is_main, model_arg, say, split_indices
from tutorlib.finetune.io import DataFileError, jsonl_objects
from tutorlib.finetune.options import FinetuneConfig, auto_val_size

__all__ = ["PairRow", "read_pairs", "tokenize_pairs", "run"]


@dataclass
class PairRow:
    """One preference pair of a file and its line.

    >>> PairRow(1, [{"role": "user", "content": "Hi"}], "Hello!", "Go away.").chosen
    'Hello!'
    """

    line: int
    prompt: list[dict[str, str]]
    chosen: str
    rejected: str


def _answer(value: Any, key: str, where: str) -> str:
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], dict) and value[0].get("role") == "assistant":
        value = value[0].get("content")
    if not isinstance(value, str):
        raise DataFileError(f"{where}: {key!r} must be a string (or [{{\"role\": \"assistant\", \"content\": \"...\"}}])")
    if not value.strip():
        raise DataFileError(f"{where}: {key!r} is empty: a pair needs two non-empty answers")
    return value


def read_pairs(path: str | Path, prompt_key: str = "prompt", chosen_key: str = "chosen", rejected_key: str = "rejected",
               encoding: str = "utf-8-sig") -> list[PairRow]:
    """Read preference JSONL; every problem (a missing key, an empty answer, identical answers) names its line.

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "pairs.jsonl"
    >>> _ = p.write_text('{"prompt": "Hi", "chosen": "Hello!", "rejected": "Go away."}\\n')
    >>> read_pairs(p)[0].prompt
    [{'role': 'user', 'content': 'Hi'}]
    """
    path, text = _read_jsonl(path, encoding)
    example = '{"%s": "...", "%s": "...", "%s": "..."}' % (prompt_key, chosen_key, rejected_key)
    rows: list[PairRow] = []
    for number, obj in jsonl_objects(text, path, example):
        where = f"{path}: line {number}"
        for key in (prompt_key, chosen_key, rejected_key):
            if key not in obj:
                has = ", ".join(repr(k) for k in obj) or "no keys"
                raise DataFileError(f"{path}: line {number} has no {key!r} key (it has {has}): every line needs {example}")
        prompt = obj[prompt_key]
        if isinstance(prompt, str):
            if not prompt.strip():
                raise DataFileError(f"{where}: {prompt_key!r} is empty")
            messages = [{"role": "user", "content": prompt}]
        elif isinstance(prompt, list) and prompt and all(isinstance(m, dict) and isinstance(m.get("content"), str)
                                                         and m.get("role") in ("system", "user", "assistant")
                                                         for m in prompt):
            messages = [{"role": m["role"], "content": m["content"]} for m in prompt]
            if messages[-1]["role"] != "user":
                raise DataFileError(f"{where}: the prompt's last message is the {messages[-1]['role']}'s: it must be the "
                                    "user's, which the chosen and rejected answers reply to")
        else:
            raise DataFileError(f"{where}: {prompt_key!r} must be a string or a list of chat messages "
                                '[{"role": "user", "content": "..."}]')
        chosen, rejected = _answer(obj[chosen_key], chosen_key, where), _answer(obj[rejected_key], rejected_key, where)
        if chosen == rejected:
            raise DataFileError(f"{where}: {chosen_key!r} and {rejected_key!r} are the same answer: the pair teaches "
                                "nothing; remove the line")
        rows.append(PairRow(number, messages, chosen, rejected))
    if not rows:
        raise DataFileError(f"{path} is empty: it needs one JSON object per line like {example}")
    return rows


def tokenize_pairs(rows: Sequence[PairRow], tokenizer: Any, max_length: int, *, system: str | None = None,
                   source: str = "the data") -> tuple[list[dict[str, Any]], dict[str, int]]:
    """:func:`tutorlib.llm.preference.preference_example` of each row, and counts of pairs ``cut`` (an answer
    longer than ``max_length`` tokens lost its end) and ``dropped`` (an answer started after ``max_length``)."""
    from tutorlib.llm.preference import preference_example

    if getattr(tokenizer, "chat_template", None) is None:
        raise DataFileError(f"{source}: the model's tokenizer has no chat template; the preference task needs a chat "
                            "model such as smollm2")
    examples, counts = [], {"cut": 0, "dropped": 0}
    for row in rows:
        try:
            ex = preference_example(tokenizer, row.prompt, row.chosen, row.rejected, system=system,
                                    max_length=max_length)
        except ValueError as exc:
            if "max_length" in str(exc):
                counts["dropped"] += 1
                continue
            raise DataFileError(f"{source}: line {row.line}: {exc}") from exc
        counts["cut"] += bool(ex["chosen"]["cut"] or ex["rejected"]["cut"])
        examples.append({k: {"input_ids": v["input_ids"], "labels": v["labels"]} for k, v in ex.items()})
    return examples, counts


def run(config: FinetuneConfig) -> dict[str, Any]:
    """DPO with LoRA on preference pairs; the reference log-probs are computed once, before training."""
    from tutorlib.llm.preference import dpo_loss, dpo_train, pair_logprobs, reference_logprobs
    from tutorlib.runtime import get_device, seed_everything

    config = config.resolved()
    config.validate()
    out = Path(config.out)
    keys = (config.prompt_col, config.chosen_col, config.rejected_col)
    rows = read_pairs(config.data, *keys, encoding=config.encoding)
    if config.val_data:
        train_rows, val_rows = rows, read_pairs(config.val_data, *keys, encoding=config.encoding)
    else:
        tr, va = split_indices(len(rows), auto_val_size(len(rows), config.val_fraction), config.seed)
        train_rows, val_rows = [rows[i] for i in tr], [rows[i] for i in va]
    settings = {"task": config.task, "method": "lora", "model": model_arg(config.model), "r": config.r,
                "alpha": config.alpha if config.alpha is not None else 2.0 * config.r,
                "target_modules": list(config.target_modules), "prompt_col": config.prompt_col,
                "chosen_col": config.chosen_col, "rejected_col": config.rejected_col, "max_length": config.max_length,
                "system": config.system, "beta": config.beta}
    check_out(config, out, settings)
    device = get_device(config.device)
    seed_everything(config.seed)
    model, tokenizer, base_arg, targets = load_causal_lm(config.model, config, trainable_adapter=True)
    train, train_counts = tokenize_pairs(train_rows, tokenizer, config.max_length, system=config.system,
                                         source=str(config.data))
    val, val_counts = tokenize_pairs(val_rows, tokenizer, config.max_length, system=config.system,
                                     source=str(config.val_data or config.data))
    for name, n, counts in (("training", len(train_rows), train_counts), ("validation", len(val_rows), val_counts)):
        if counts["cut"]:
            say(config, f"{counts['cut']} of {n} {name} pairs had an answer longer than --max-length "
                        f"{config.max_length} tokens: it was cut (its end dropped)")
        if counts["dropped"]:
            say(config, f"{counts['dropped']} of {n} {name} pairs were left out: an answer starts after --max-length "
                        f"{config.max_length} tokens (raise --max-length to keep them)")
    if not train or not val:
        raise DataFileError(f"no {'training' if not train else 'validation'} pair fits in --max-length "
                            f"{config.max_length} tokens: raise --max-length")
    pad_id = int(tokenizer.pad_token_id)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    say(config, f"tutorlib finetune (preference, DPO β={config.beta:g}): {len(train)} train / {len(val)} validation "
                f"pairs; LoRA r={config.r} on {targets} ({trainable:,} trainable parameters), lr {config.lr:g}, "
                f"{config.epochs} epoch(s), batch {config.batch_size} pairs, device {device}")
    if is_main():
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out / "run_config.json", settings)
    model.to(device)
    t0 = time.perf_counter()
    reference = reference_logprobs(model, train, batch_size=config.batch_size, pad_id=pad_id)  # once, before training
    val_reference = reference_logprobs(model, val, batch_size=config.batch_size, pad_id=pad_id)
    ref_seconds = time.perf_counter() - t0
    history = dpo_train(model, train, beta=config.beta, epochs=config.epochs, lr=config.lr,
                        batch_size=config.batch_size, seed=config.seed, reference=reference, pad_id=pad_id,
                        progress=config.progress, device=device, precision=config.precision,
                        checkpoint_dir=out / "checkpoints", checkpoint_every=config.checkpoint_every,
                        log=config.verbose, resume=config.resume)
    seconds = time.perf_counter() - t0
    model.eval()
    after = pair_logprobs(model, val, batch_size=config.batch_size, pad_id=pad_id)
    val_dpo = dpo_loss(after[:, 0], after[:, 1], val_reference[:, 0], val_reference[:, 1], beta=config.beta)
    prefers_before = float((val_reference[:, 0] > val_reference[:, 1]).float().mean())
    prefers_after = float((after[:, 0] > after[:, 1]).float().mean())
    reward_acc = float((val_dpo.chosen_rewards > val_dpo.rejected_rewards).float().mean())
    if not is_main():
        return {**settings, "val_loss": float(val_dpo.loss)}
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    atomic_write_json(out / "tutorlib_model.json", {"task": "causal-lm", "trained_with": "preference",
                                                    "method": "lora", "base": base_arg,
                                                    "max_length": config.max_length, "system": config.system})
    metrics = {**settings, "data": str(config.data), "val_data": config.val_data, "train_size": len(train),
               "val_size": len(val), "cut": {"train": train_counts, "val": val_counts}, "lr": config.lr,
               "epochs": config.epochs, "batch_size": config.batch_size, "seed": config.seed, "device": str(device),
               "lora_target_modules": targets, "trainable_parameters": trainable, "total_parameters": total,
               "seconds": seconds, "reference_seconds": ref_seconds, "val_dpo_loss_before": 0.6931471805599453,
               "val_dpo_loss": float(val_dpo.loss), "val_prefers_chosen_before": prefers_before,
               "val_prefers_chosen": prefers_after, "val_reward_accuracy": reward_acc,
               "val_reward_margin": float((val_dpo.chosen_rewards - val_dpo.rejected_rewards).mean()),
               "history": history.to_dict()}
    atomic_write_json(out / "metrics.json", metrics)
    say(config, f"done in {seconds:.1f} s: validation DPO loss 0.693 → {val_dpo.loss:.3f}; the model prefers the "
                f"chosen answer in {100 * prefers_before:.0f} % → {100 * prefers_after:.0f} % of validation pairs "
                f"(reward accuracy {100 * reward_acc:.0f} %). Adapter in {out} — try: tutorlib generate --model {out} "
                "\"your prompt\"")
    return metrics
