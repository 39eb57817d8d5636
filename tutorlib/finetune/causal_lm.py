"""The ``causal-lm`` task of ``tutorlib finetune``: LoRA supervised fine-tuning of a causal LM on your JSONL.

Each line is a prompt/completion pair or a chat::

    {"prompt": "Capital of France?", "completion": "Paris."}
    {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]}

With a chat model (the default, the bundled SmolLM2) both go through its chat template, and the loss
covers the assistant turns only (:func:`tutorlib.llm.sft.chat_example`); a model without a template sees
``prompt + completion + EOS``. Examples are batched by length (:func:`tutorlib.llm.sft.length_batches`),
so little compute goes to padding, and trained with ``peft`` LoRA (r=16 on q/k/v/o, lr 1e-3, batch 8
by default) on the shared ``Trainer`` (:func:`tutorlib.llm.sft.sft_trainer`).

``--out`` receives the adapter (``adapter_model.safetensors``), the tokenizer, ``tutorlib_model.json`` (so
``tutorlib generate --model OUT`` loads the base with the adapter) and ``metrics.json``: validation loss
and next-token accuracy on the answer tokens before (the untuned model) and after, tokens/s, samples.

>>> mask_prompt_labels([5, 6], [7, 8], eos_id=0)
([5, 6, 7, 8, 0], [-100, -100, 7, 8, 0])
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from tutorlib.atomic import atomic_write_json
from tutorlib.finetune.common import (causal_lm_folder, check_out, examples_per_process, is_main, model_arg, say,
                                      split_indices)
from tutorlib.finetune.io import DataFileError, decode_text, jsonl_objects
from tutorlib.finetune.options import FinetuneConfig, auto_val_size
from tutorlib.llm.sft import IGNORE_INDEX, collate, mask_prompt_labels

__all__ = ["SFTRow", "read_sft_file", "PromptCompletions", "read_prompt_completion", "mask_prompt_labels",
           "tokenize_rows", "SFTDataset", "SFTCollator", "lora_targets", "load_causal_lm", "run", "run_causal_lm",
           "IGNORE_INDEX", "DEFAULT_CAUSAL_LR"]

#: LoRA learning rate for causal-LM SFT when ``--lr`` is not given.
DEFAULT_CAUSAL_LR = 1e-3
_ROLES = ("system", "user", "assistant")


@dataclass
class SFTRow:
    """One training example of a file: a prompt/completion pair or chat ``messages``, and its line.

    >>> SFTRow(3, prompt="Hi", completion="Hello").kind
    'pair'
    """

    line: int
    prompt: str | None = None
    completion: str | None = None
    messages: list[dict[str, str]] | None = None

    @property
    def kind(self) -> str:
        return "chat" if self.messages is not None else "pair"


def _read_jsonl(path: str | Path, encoding: str) -> tuple[Path, str]:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"data file {path} does not exist: check the path (relative to {Path.cwd()})")
    if path.is_dir():
        raise DataFileError(f"{path} is a folder: pass the .jsonl file inside it")
    return path, decode_text(path.read_bytes(), path, encoding)


def check_messages(value: Any, where: str) -> list[dict[str, str]]:
    """Validate chat ``messages`` of a training line: roles, strings, an assistant turn with text.

    >>> check_messages([{"role": "user", "content": "Hi"}], "f.jsonl: line 1")
    Traceback (most recent call last):
    ...
    tutorlib.finetune.io.DataFileError: f.jsonl: line 1: the chat has no assistant turn, so there is nothing to learn: end it with {"role": "assistant", "content": "..."}
    """
    example = '[{"role": "user", "content": "..."}, {"role": "assistant", "content": "..."}]'
    if not isinstance(value, list) or not value:
        raise DataFileError(f"{where}: 'messages' must be a non-empty list like {example}")
    for i, m in enumerate(value, start=1):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
            raise DataFileError(f"{where}: message {i} must be an object with string 'role' and 'content', like {example}")
        if m["role"] not in _ROLES:
            raise DataFileError(f"{where}: message {i} has role {m['role']!r}: use one of {', '.join(_ROLES)}")
    answers = [m for m in value if m["role"] == "assistant"]
    if not answers:
        raise DataFileError(f"{where}: the chat has no assistant turn, so there is nothing to learn: end it with "
                            '{"role": "assistant", "content": "..."}')
    if any(not m["content"].strip() for m in answers):
        raise DataFileError(f"{where}: an assistant turn is empty: there is nothing to learn; fill it in or remove it")
    return [{"role": m["role"], "content": m["content"]} for m in value]


def read_sft_file(path: str | Path, prompt_key: str = "prompt", completion_key: str = "completion",
                  encoding: str = "utf-8-sig") -> list[SFTRow]:
    """Read SFT JSONL: each line ``{"prompt": ..., "completion": ...}`` or ``{"messages": [...]}``; every
    problem (bad JSON, a missing key, an empty completion, a chat without an assistant turn) names its line.

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "sft.jsonl"
    >>> _ = p.write_text('{"prompt": "2+2=", "completion": "4"}\\n{"prompt": "3+3="}\\n')
    >>> read_sft_file(p)
    Traceback (most recent call last):
    ...
    tutorlib.finetune.io.DataFileError: ...sft.jsonl: line 2 has no 'completion' key (it has 'prompt'): every line needs {"prompt": "...", "completion": "..."} or {"messages": [...]}
    """
    path, text = _read_jsonl(path, encoding)
    example = '{"%s": "...", "%s": "..."} or {"messages": [...]}' % (prompt_key, completion_key)
    rows: list[SFTRow] = []
    for number, obj in jsonl_objects(text, path, example):
        where = f"{path}: line {number}"
        if "messages" in obj and prompt_key not in obj:
            rows.append(SFTRow(number, messages=check_messages(obj["messages"], where)))
            continue
        for key in (prompt_key, completion_key):
            if key not in obj:
                has = ", ".join(repr(k) for k in obj) or "no keys"
                raise DataFileError(f"{path}: line {number} has no {key!r} key (it has {has}): every line needs {example}")
            if not isinstance(obj[key], str):
                raise DataFileError(f"{where}: {key!r} is a {type(obj[key]).__name__}, expected a string")
        if not obj[completion_key].strip():
            raise DataFileError(f"{where}: {completion_key!r} is empty: there is nothing to learn; "
                                "remove the line or fill in the completion")
        rows.append(SFTRow(number, prompt=obj[prompt_key], completion=obj[completion_key]))
    if not rows:
        raise DataFileError(f"{path} is empty: it needs one JSON object per line like {example}")
    return rows


@dataclass
class PromptCompletions:
    """Prompts and completions read from one file, with the line each came from.

    >>> len(PromptCompletions(["Q:"], [" A"], [1]))
    1
    """

    prompts: list[str]
    completions: list[str]
    lines: list[int]

    def __len__(self) -> int:
        return len(self.prompts)


def read_prompt_completion(path: str | Path, prompt_key: str = "prompt", completion_key: str = "completion",
                           encoding: str = "utf-8-sig") -> PromptCompletions:
    """Only the prompt/completion lines of :func:`read_sft_file` (a chat line is an error here).

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "sft.jsonl"
    >>> _ = p.write_text('{"prompt": "2+2=", "completion": "4"}\\n')
    >>> read_prompt_completion(p).completions
    ['4']
    """
    rows = read_sft_file(path, prompt_key, completion_key, encoding)
    chats = [r.line for r in rows if r.kind == "chat"]
    if chats:
        raise DataFileError(f"{path}: line {chats[0]} is a chat ('messages'): expected prompt/completion pairs")
    return PromptCompletions([r.prompt for r in rows], [r.completion for r in rows], [r.line for r in rows])


def tokenize_rows(rows: Sequence[SFTRow], tokenizer: Any, max_length: int, *, system: str | None = None,
                  source: str = "the data") -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Examples (``input_ids``/``labels``) of ``rows``, and counts: ``cut`` (longer than ``max_length``, their
    ends dropped) and ``dropped`` (so long that no answer token was left: left out). Chats need a chat template.

    >>> from tutorlib.llm import char_tokenizer
    >>> tokenize_rows([SFTRow(1, prompt="ab", completion="cd")], char_tokenizer(), 3)[1]
    {'cut': 1, 'dropped': 0}
    """
    from tutorlib.llm.sft import chat_example, prompt_completion_example

    examples, counts = [], {"cut": 0, "dropped": 0}
    has_template = getattr(tokenizer, "chat_template", None) is not None
    for row in rows:
        try:
            if row.messages is not None:
                if not has_template:
                    raise DataFileError(f"{source}: line {row.line} is a chat ('messages') but the model's tokenizer has "
                                        "no chat template: use prompt/completion lines, or a chat model such as smollm2")
                ex = chat_example(tokenizer, row.messages, system=system, max_length=max_length)
            else:
                ex = prompt_completion_example(tokenizer, row.prompt or "", row.completion or "", system=system,
                                               max_length=max_length)
        except DataFileError:
            raise
        except ValueError as exc:
            if "max_length" in str(exc):
                counts["dropped"] += 1
                continue
            raise DataFileError(f"{source}: line {row.line}: {exc}") from exc
        counts["cut"] += ex["cut"] > 0
        examples.append({"input_ids": ex["input_ids"], "labels": ex["labels"]})
    return examples, counts


class SFTDataset:
    """Tokenised prompt/completion pairs as ``{"input_ids": [...], "labels": [...]}`` items (no chat template).

    >>> from tutorlib.llm import char_tokenizer
    >>> ds = SFTDataset(["ab"], ["c"], char_tokenizer(), max_length=16); ds[0]["labels"]
    [-100, -100, 99, 3]
    """

    def __init__(self, prompts: Sequence[str], completions: Sequence[str], tokenizer: Any, max_length: int = 512) -> None:
        if len(prompts) != len(completions):
            raise ValueError(f"{len(prompts)} prompts but {len(completions)} completions: they must match")
        self.items = []
        for p, c in zip(prompts, completions):
            p_ids = tokenizer(p, add_special_tokens=False)["input_ids"]
            c_ids = tokenizer(c, add_special_tokens=False)["input_ids"]
            ids, labels = mask_prompt_labels(p_ids, c_ids, tokenizer.eos_token_id, max_length)
            self.items.append({"input_ids": ids, "labels": labels})

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, list[int]]:
        return self.items[i]


class SFTCollator:
    """Right-pad a list of SFT items into ``input_ids``, ``attention_mask`` and ``labels`` (-100 on padding):
    :func:`tutorlib.llm.sft.collate` as a ``collate_fn``.

    >>> SFTCollator(pad_id=0)([{"input_ids": [5], "labels": [5]}, {"input_ids": [6, 7], "labels": [-100, 7]}])["labels"]
    tensor([[   5, -100],
            [-100,    7]])
    """

    def __init__(self, pad_id: int) -> None:
        self.pad_id = int(pad_id)

    def __call__(self, items: Sequence[dict[str, list[int]]]) -> dict[str, Any]:
        return collate(items, self.pad_id)


def lora_targets(model: Any, requested: Sequence[str]) -> list[str] | str | None:
    """The LoRA target modules: ``requested`` when the model has such layers, else peft's default for the
    architecture, else every linear layer (``"all-linear"``).

    >>> from transformers import GPT2Config, GPT2LMHeadModel
    >>> lora_targets(GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=10)), ["q_proj", "v_proj"])
    ['c_attn']
    """
    names = {n.rsplit(".", 1)[-1] for n, _ in model.named_modules()}
    if requested and all(t in names for t in requested):
        return list(requested)
    from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as MAP

    model_type = getattr(getattr(model, "config", None), "model_type", None)
    if model_type in MAP:
        return list(MAP[model_type])
    return "all-linear"


def load_causal_lm(name: str, config: FinetuneConfig, *, trainable_adapter: bool = False) -> tuple[Any, Any, str, Any]:
    """``(model with LoRA, tokenizer, recorded base, LoRA targets)`` for ``--model NAME``.

    ``NAME`` may also be an earlier ``causal-lm`` run folder: its adapter is loaded on its base and trained
    further when ``trainable_adapter`` (``preference`` after SFT), so the result is again one adapter on the
    original base, which ``tutorlib generate --model OUT`` loads.
    """
    import json

    import torch
    from peft import LoraConfig, PeftModel, TaskType, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tutorlib.models import model_folder_kind

    folder = Path(name).expanduser()
    if trainable_adapter and folder.is_dir() and model_folder_kind(folder) == "adapter":
        meta = json.loads((folder / "tutorlib_model.json").read_text(encoding="utf-8"))
        base_name = meta["base"]
        tokenizer = AutoTokenizer.from_pretrained(folder)
        base = AutoModelForCausalLM.from_pretrained(causal_lm_folder(base_name), dtype=torch.float32)
        model = PeftModel.from_pretrained(base, str(folder), is_trainable=True)
        targets = list(model.peft_config["default"].target_modules)
        return model, tokenizer, base_name, targets
    base_path = causal_lm_folder(name)
    tokenizer = AutoTokenizer.from_pretrained(base_path)
    if tokenizer.eos_token_id is None:
        raise ValueError(f"the tokenizer of {base_path} has no EOS token: set tokenizer.eos_token and save it again")
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(base_path, dtype=torch.float32)
    targets = lora_targets(model, config.target_modules or ())
    conv1d = any(type(m).__name__ == "Conv1D" for m in model.modules())  # GPT-2 style (in, out) weights
    alpha = config.alpha if config.alpha is not None else 2.0 * config.r
    lora = LoraConfig(r=config.r, lora_alpha=alpha, lora_dropout=0.0, target_modules=targets,
                      task_type=TaskType.CAUSAL_LM, fan_in_fan_out=conv1d)
    return get_peft_model(model, lora), tokenizer, model_arg(name), targets


def complete(model: Any, tokenizer: Any, row: SFTRow, max_new_tokens: int, system: str | None = None) -> str:
    """The model's greedy answer to a row's prompt (its chat up to the last assistant turn)."""
    import torch

    from tutorlib.llm.decoding import greedy

    if getattr(tokenizer, "chat_template", None) is not None:
        msgs = (row.messages[:max(i for i, m in enumerate(row.messages) if m["role"] == "assistant")]
                if row.messages is not None else [{"role": "user", "content": row.prompt or ""}])
        if system is not None and msgs[0]["role"] != "system":
            msgs = [{"role": "system", "content": system}] + msgs
        text = tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    else:
        text = row.prompt or ""
    device = next(model.parameters()).device
    ids = torch.tensor([tokenizer(text, add_special_tokens=False)["input_ids"]], device=device)
    limit = getattr(model.config, "n_positions", None) or getattr(model.config, "max_position_embeddings", None)
    if limit:
        max_new_tokens = max(0, min(max_new_tokens, int(limit) - ids.shape[1]))
    with torch.no_grad():
        out = greedy(model, ids, max_new_tokens, eos_id=tokenizer.eos_token_id)[0, ids.shape[1]:].tolist()
    if tokenizer.eos_token_id in out:
        out = out[:out.index(tokenizer.eos_token_id)]
    return tokenizer.decode(out, skip_special_tokens=True)


def _say_counts(config: FinetuneConfig, name: str, n: int, counts: dict[str, int]) -> None:
    if counts["cut"]:
        say(config, f"{counts['cut']} of {n} {name} examples were longer than --max-length {config.max_length} tokens "
                    "and were cut (their ends dropped)")
    if counts["dropped"]:
        say(config, f"{counts['dropped']} of {n} {name} examples were left out: their answer starts after "
                    f"--max-length {config.max_length} tokens (raise --max-length to keep them)")


def run(config: FinetuneConfig) -> dict[str, Any]:
    """LoRA SFT of a causal LM (``--model``, SmolLM2 by default) on prompt/completion or chat JSONL."""
    from tutorlib.llm.sft import BatchedExamples, evaluate_sft, sft_trainer
    from tutorlib.runtime import get_device, seed_everything

    config = config.resolved()
    config.validate()
    out = Path(config.out)
    rows = read_sft_file(config.data, config.prompt_col, config.completion_col, encoding=config.encoding)
    if config.val_data:
        val_rows = read_sft_file(config.val_data, config.prompt_col, config.completion_col, encoding=config.encoding)
        train_rows = rows
    else:
        tr, va = split_indices(len(rows), auto_val_size(len(rows), config.val_fraction), config.seed)
        train_rows, val_rows = [rows[i] for i in tr], [rows[i] for i in va]
    settings = {"task": config.task, "method": "lora", "model": model_arg(config.model), "r": config.r,
                "alpha": config.alpha if config.alpha is not None else 2.0 * config.r,
                "target_modules": list(config.target_modules), "prompt_col": config.prompt_col,
                "completion_col": config.completion_col, "max_length": config.max_length, "system": config.system}
    check_out(config, out, settings)
    device = get_device(config.device)
    seed_everything(config.seed)
    model, tokenizer, base_arg, targets = load_causal_lm(config.model, config)
    train, train_counts = tokenize_rows(train_rows, tokenizer, config.max_length, system=config.system,
                                        source=str(config.data))
    val, val_counts = tokenize_rows(val_rows, tokenizer, config.max_length, system=config.system,
                                    source=str(config.val_data or config.data))
    _say_counts(config, "training", len(train_rows), train_counts)
    _say_counts(config, "validation", len(val_rows), val_counts)
    if not train or not val:
        raise DataFileError(f"no {'training' if not train else 'validation'} example fits in --max-length "
                            f"{config.max_length} tokens: raise --max-length")
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    answer_tokens = sum(sum(1 for y in e["labels"] if y != IGNORE_INDEX) for e in train)
    all_tokens = sum(len(e["labels"]) for e in train)
    pad_id = int(tokenizer.pad_token_id)
    say(config, f"tutorlib finetune (causal-lm): {len(train)} train / {len(val)} validation examples; loss on "
                f"{answer_tokens:,} of {all_tokens:,} tokens (the answers); LoRA r={config.r} on {targets} "
                f"({trainable:,} trainable parameters, {100 * trainable / total:.2f} %), lr {config.lr:g}, "
                f"{config.epochs} epoch(s), batch {config.batch_size} (bucketed by length), device {device}")
    if is_main():  # under torchrun the first process alone writes the output folder
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out / "run_config.json", settings)
    model.to(device)
    with model.disable_adapter():
        before = evaluate_sft(model, val, batch_size=config.batch_size, pad_id=pad_id)
    trainer = sft_trainer(model, lr=config.lr, seed=config.seed, progress=config.progress, pad_id=pad_id,
                          device=device, precision=config.precision, checkpoint_dir=out / "checkpoints",
                          checkpoint_every=config.checkpoint_every, log=config.verbose)
    t0 = time.perf_counter()
    history = trainer.fit(BatchedExamples(train, config.batch_size, seed=config.seed),
                          BatchedExamples(val, config.batch_size, seed=config.seed), epochs=config.epochs,
                          resume=config.resume)
    seconds = time.perf_counter() - t0
    model = trainer.unwrapped_model.eval()
    after = evaluate_sft(model, val, batch_size=config.batch_size, pad_id=pad_id)
    seen = examples_per_process(trainer)
    trained_tokens = sum(s.get("tokens", 0) for s in history.steps)
    if not trainer.is_main:
        return {**settings, "val_loss": after["loss"], "processes": len(seen), "examples_per_process": seen}
    samples = [{"line": r.line, "prompt": r.prompt if r.messages is None else r.messages,
                "reference": r.completion if r.messages is None else
                [m for m in r.messages if m["role"] == "assistant"][-1]["content"],
                "generated": complete(model, tokenizer, r, 48, config.system)} for r in val_rows[:3]]
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    atomic_write_json(out / "tutorlib_model.json", {"task": "causal-lm", "method": "lora", "base": base_arg,
                                                    "prompt_col": config.prompt_col,
                                                    "completion_col": config.completion_col,
                                                    "max_length": config.max_length, "system": config.system})
    metrics = {**settings, "data": str(config.data), "val_data": config.val_data, "train_size": len(train),
               "val_size": len(val), "cut": {"train": train_counts, "val": val_counts}, "lr": config.lr,
               "epochs": config.epochs, "batch_size": config.batch_size, "seed": config.seed, "device": str(device),
               "lora_target_modules": targets, "trainable_parameters": trainable, "total_parameters": total,
               "trainable_percent": 100 * trainable / total, "answer_tokens": answer_tokens,
               "completion_tokens": answer_tokens, "total_tokens": all_tokens, "seconds": seconds,
               "trained_tokens": trained_tokens, "tokens_per_s": trained_tokens / max(seconds, 1e-9),
               "untuned_val_loss": before["loss"], "untuned_val_token_accuracy": before["token_accuracy"],
               "val_loss": after["loss"], "val_token_accuracy": after["token_accuracy"],
               "val_answer_tokens": after["tokens"], "val_perplexity": math.exp(min(after["loss"], 50.0)),
               "samples": samples, "history": history.to_dict(), "processes": len(seen), "examples_per_process": seen}
    atomic_write_json(out / "metrics.json", metrics)
    say(config, f"done in {seconds:.1f} s ({metrics['tokens_per_s']:.0f} tokens/s): validation loss on the answer "
                f"tokens {before['loss']:.3f} → {after['loss']:.3f}, next-token accuracy "
                f"{100 * before['token_accuracy']:.1f} % → {100 * after['token_accuracy']:.1f} % (untuned → tuned). "
                f"Adapter in {out} — try: tutorlib generate --model {out} \"your prompt\"")
    return metrics


#: The old name of :func:`run`.
run_causal_lm = run
