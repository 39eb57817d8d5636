"""``tutorlib finetune --task causal-lm``: supervised fine-tuning (SFT) of a causal LM on prompt/completion JSONL.

Each line of the data file is one JSON object ``{"prompt": "...", "completion": "..."}``. The model
sees ``prompt + completion + EOS``; the loss is computed on the completion tokens (and the EOS) only:
the prompt positions get the label ``-100``, which ``transformers``' loss ignores
(:func:`mask_prompt_labels`). Training uses LoRA (``peft``) on the attention projections, through
the shared :class:`tutorlib.train.Trainer`. One run writes to ``--out``: the adapter
(``adapter_model.safetensors``, ``adapter_config.json``), the tokenizer, ``tutorlib_model.json`` and
``metrics.json`` (losses, validation perplexity on completion tokens, sample completions).

Any causal LM folder (``save_pretrained``) or hub id works: a tiny GPT-2 built from a config in the
tests, the lesson's TinyGPT exported with :func:`tutorlib.llm.export_hf`, or a real small model.

>>> mask_prompt_labels([5, 6], [7, 8], eos_id=0)
([5, 6, 7, 8, 0], [-100, -100, 7, 8, 0])
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
from torch.utils.data import Dataset

from tutorlib.llm.sft import IGNORE_INDEX, mask_prompt_labels
from tutorlib.finetune.io import DataFileError, decode_text, jsonl_objects
from tutorlib.atomic import atomic_write_json
from tutorlib.finetune.run import FinetuneConfig, _check_out, _is_main, _say, examples_per_process, register_task

__all__ = ["PromptCompletions", "read_prompt_completion", "mask_prompt_labels", "SFTDataset", "SFTCollator",
           "lora_targets", "run_causal_lm", "IGNORE_INDEX", "DEFAULT_CAUSAL_LR"]

#: LoRA learning rate for causal-LM SFT when ``--lr`` is not given.
DEFAULT_CAUSAL_LR = 1e-3


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
    """Read a JSONL file of ``{"prompt": ..., "completion": ...}`` objects; every problem names its line.

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "sft.jsonl"
    >>> _ = p.write_text('{"prompt": "2+2=", "completion": "4"}\\n{"prompt": "3+3="}\\n')
    >>> read_prompt_completion(p)
    Traceback (most recent call last):
    ...
    tutorlib.finetune.io.DataFileError: ...sft.jsonl: line 2 has no 'completion' key (it has 'prompt'): every line needs {"prompt": "...", "completion": "..."}
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"data file {path} does not exist: check the path (relative to {Path.cwd()})")
    if path.is_dir():
        raise DataFileError(f"{path} is a folder: pass the .jsonl file inside it")
    text = decode_text(path.read_bytes(), path, encoding)
    example = '{"%s": "...", "%s": "..."}' % (prompt_key, completion_key)
    prompts, completions, lines = [], [], []
    for number, obj in jsonl_objects(text, path, example):
        for key in (prompt_key, completion_key):
            if key not in obj:
                has = ", ".join(repr(k) for k in obj) or "no keys"
                raise DataFileError(f"{path}: line {number} has no {key!r} key (it has {has}): every line needs {example}")
            if not isinstance(obj[key], str):
                raise DataFileError(f"{path}: line {number}: {key!r} is a {type(obj[key]).__name__}, expected a string")
        if not obj[completion_key].strip():
            raise DataFileError(f"{path}: line {number}: {completion_key!r} is empty: there is nothing to learn; "
                                "remove the line or fill in the completion")
        prompts.append(obj[prompt_key])
        completions.append(obj[completion_key])
        lines.append(number)
    if not prompts:
        raise DataFileError(f"{path} is empty: it needs one JSON object per line like {example}")
    return PromptCompletions(prompts, completions, lines)


class SFTDataset(Dataset):
    """Tokenised prompt/completion pairs as ``{"input_ids": [...], "labels": [...]}`` items.

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
    """Right-pad a list of SFT items into ``input_ids``, ``attention_mask`` and ``labels`` (-100 on padding).

    >>> SFTCollator(pad_id=0)([{"input_ids": [5], "labels": [5]}, {"input_ids": [6, 7], "labels": [-100, 7]}])["labels"]
    tensor([[   5, -100],
            [-100,    7]])
    """

    def __init__(self, pad_id: int) -> None:
        self.pad_id = int(pad_id)

    def __call__(self, items: Sequence[dict[str, list[int]]]) -> dict[str, torch.Tensor]:
        n = max(len(it["input_ids"]) for it in items)
        ids = torch.full((len(items), n), self.pad_id, dtype=torch.long)
        labels = torch.full((len(items), n), IGNORE_INDEX, dtype=torch.long)
        mask = torch.zeros((len(items), n), dtype=torch.long)
        for i, it in enumerate(items):
            k = len(it["input_ids"])
            ids[i, :k] = torch.tensor(it["input_ids"])
            labels[i, :k] = torch.tensor(it["labels"])
            mask[i, :k] = 1
        return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def lora_targets(model: torch.nn.Module, requested: Sequence[str]) -> list[str] | str | None:
    """The LoRA target modules: ``requested`` when the model has such layers, else peft's default for the
    architecture (``None``), else every linear layer (``"all-linear"``).

    >>> from transformers import GPT2Config, GPT2LMHeadModel
    >>> lora_targets(GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=10)), ["query", "value"])
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


def _causal_lm_folder(name: str) -> str:
    """What ``from_pretrained`` loads for ``--model NAME``: the bundled LLM's cached copy for ``smollm2``
    (an existing path of that name wins), a local folder, or a hub id (which fails fast offline)."""
    from tutorlib.models import LLM_NAMES, llm_path, resolve_model_path

    if name in LLM_NAMES and not Path(name).expanduser().exists():
        return llm_path(name)
    return resolve_model_path(name)


@torch.no_grad()
def _complete(model: Any, tokenizer: Any, prompt: str, max_new_tokens: int, device: torch.device) -> str:
    from tutorlib.llm.decoding import greedy

    ids = torch.tensor([tokenizer(prompt, add_special_tokens=False)["input_ids"]], device=device)
    limit = getattr(model.config, "n_positions", None) or getattr(model.config, "max_position_embeddings", None)
    if limit:
        max_new_tokens = max(0, min(max_new_tokens, int(limit) - ids.shape[1]))
    out = greedy(model, ids, max_new_tokens, eos_id=tokenizer.eos_token_id)[0, ids.shape[1]:].tolist()
    if tokenizer.eos_token_id in out:
        out = out[:out.index(tokenizer.eos_token_id)]
    return tokenizer.decode(out, skip_special_tokens=True)


@register_task("causal-lm")
def run_causal_lm(config: FinetuneConfig) -> dict[str, Any]:
    """LoRA SFT of a causal LM (``--model``) on prompt/completion JSONL, loss on completion tokens only."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from peft import LoraConfig, TaskType, get_peft_model

    from tutorlib.runtime import get_device, seed_everything
    from tutorlib.train import Trainer

    config.validate()
    if config.method != "lora":
        raise ValueError(f"--task causal-lm supports --method lora only, got {config.method!r}")
    model_name = config.model or "smollm2"  # the bundled SmolLM2-135M-Instruct unless --model says otherwise
    out = Path(config.out)
    prompt_key = config.extra.get("prompt_col", "prompt")
    completion_key = config.extra.get("completion_col", "completion")
    data = read_prompt_completion(config.data, prompt_key, completion_key, encoding=config.encoding)
    if config.val_data:
        val = read_prompt_completion(config.val_data, prompt_key, completion_key, encoding=config.encoding)
        train_idx, val_pairs = list(range(len(data))), val
    else:
        if len(data) < 2:
            raise DataFileError(f"{config.data} has {len(data)} example: at least 2 are needed to hold one out "
                                "for validation (or pass --val-data)")
        order = list(range(len(data)))
        random.Random(config.seed).shuffle(order)
        n_val = min(len(data) - 1, max(1, round(config.val_fraction * len(data))))
        train_idx = sorted(order[n_val:])
        keep = sorted(order[:n_val])
        val_pairs = PromptCompletions([data.prompts[i] for i in keep], [data.completions[i] for i in keep],
                                      [data.lines[i] for i in keep])
    model_arg = model_name
    if Path(model_arg).expanduser().exists():
        model_arg = str(Path(model_arg).expanduser().resolve())
    alpha = config.alpha if config.alpha is not None else 2.0 * config.r
    settings = {"task": config.task, "method": config.method, "model": model_arg, "r": config.r, "alpha": alpha,
                "target_modules": list(config.target_modules), "prompt_col": prompt_key,
                "completion_col": completion_key, "max_length": config.max_length}
    _check_out(config, out, settings)
    base = _causal_lm_folder(model_name)
    device = get_device(config.device)
    seed_everything(config.seed)
    tokenizer = AutoTokenizer.from_pretrained(base)
    if tokenizer.eos_token_id is None:
        raise ValueError(f"the tokenizer of {base} has no EOS token: set tokenizer.eos_token and save it again")
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    targets = lora_targets(model, config.target_modules)
    conv1d = any(type(m).__name__ == "Conv1D" for m in model.modules())  # GPT-2 style (in, out) weights
    lora = LoraConfig(r=config.r, lora_alpha=alpha, lora_dropout=0.0, target_modules=targets,
                      task_type=TaskType.CAUSAL_LM, fan_in_fan_out=conv1d)
    model = get_peft_model(model, lora)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    train_ds = SFTDataset([data.prompts[i] for i in train_idx], [data.completions[i] for i in train_idx], tokenizer,
                          config.max_length)
    val_ds = SFTDataset(val_pairs.prompts, val_pairs.completions, tokenizer, config.max_length)
    lr = config.lr if config.lr is not None else DEFAULT_CAUSAL_LR
    completion_tokens = sum(sum(1 for y in it["labels"] if y != IGNORE_INDEX) for it in train_ds.items)
    all_tokens = sum(len(it["labels"]) for it in train_ds.items)
    _say(config, f"tutorlib finetune (causal-lm): {len(train_ds)} train / {len(val_ds)} validation examples; "
                 f"loss on {completion_tokens:,} of {all_tokens:,} tokens (the completions); LoRA r={config.r} on "
                 f"{targets} ({trainable:,} trainable parameters, {100 * trainable / total:.2f} %), lr {lr:g}, "
                 f"{config.epochs} epoch(s), batch {config.batch_size}, device {device}")
    if _is_main():  # under torchrun the first process alone writes the output folder
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out / "run_config.json", settings)

    def step(trainer: Trainer, batch: dict[str, torch.Tensor]) -> dict[str, Any]:
        return {"loss": trainer.model(**batch).loss}

    trainer = Trainer(model, lr=lr, device=device, precision=config.precision, batch_size=config.batch_size,
                      collate_fn=SFTCollator(tokenizer.pad_token_id), seed=config.seed, step_fn=step,
                      checkpoint_dir=out / "checkpoints", checkpoint_every=config.checkpoint_every,
                      progress=config.progress, log=config.verbose, clip_grad_norm=1.0)
    t0 = time.perf_counter()
    history = trainer.fit(train_ds, val_ds, epochs=config.epochs, resume=config.resume)
    seconds = time.perf_counter() - t0
    val_loss = trainer.evaluate(val_ds)["val_loss"]
    seen = examples_per_process(trainer)
    if not trainer.is_main:
        return {**settings, "val_loss": val_loss, "processes": len(seen), "examples_per_process": seen}
    model = trainer.unwrapped_model.eval()
    samples = [{"prompt": p, "reference": c, "generated": _complete(model, tokenizer, p, 64, device)}
               for p, c in list(zip(val_pairs.prompts, val_pairs.completions))[:3]]
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    atomic_write_json(out / "tutorlib_model.json", {"task": config.task, "method": "lora", "base": model_arg,
                                                "prompt_col": prompt_key, "completion_col": completion_key,
                                                "max_length": config.max_length})
    metrics = {**settings, "data": str(config.data), "val_data": config.val_data, "train_size": len(train_ds),
               "val_size": len(val_ds), "lr": lr, "epochs": config.epochs, "batch_size": config.batch_size,
               "seed": config.seed, "device": str(device), "lora_target_modules": targets,
               "trainable_parameters": trainable, "total_parameters": total,
               "trainable_percent": 100 * trainable / total, "completion_tokens": completion_tokens,
               "total_tokens": all_tokens, "seconds": seconds, "val_loss": val_loss,
               "val_perplexity": math.exp(min(val_loss, 50.0)), "samples": samples, "history": history.to_dict(),
               "processes": len(seen), "examples_per_process": seen}
    atomic_write_json(out / "metrics.json", metrics)
    _say(config, f"done in {seconds:.1f} s: validation loss {val_loss:.3f} on completion tokens (perplexity "
                 f"{metrics['val_perplexity']:.2f}). Adapter in {out}")
    return metrics
