"""What every task plug-in of ``tutorlib finetune`` shares: messages, the output-folder and resume checks,
the held-out split, and the model path of a causal LM.

>>> split_indices(10, val_size=3, seed=0)
([0, 1, 3, 4, 6, 8, 9], [2, 5, 7])
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from tutorlib.finetune.options import FinetuneConfig

__all__ = ["say", "is_main", "examples_per_process", "check_out", "split_indices", "causal_lm_folder", "model_arg",
           "RESUME_KEYS"]

#: Settings that must not change between a run and its ``--resume``.
RESUME_KEYS = ("task", "method", "model", "r", "alpha", "target_modules", "text_col", "label_col", "max_length",
               "num_virtual_tokens", "bottleneck", "prompt_col", "completion_col", "chosen_col", "rejected_col",
               "system", "beta")


def is_main() -> bool:
    """True without ``torchrun`` and on its first process."""
    from tutorlib.train import is_main_process

    return is_main_process()


def say(config: FinetuneConfig, msg: str) -> None:
    """Print ``msg`` unless quiet; under ``torchrun`` only the first process prints."""
    if config.verbose and is_main():
        print(msg, flush=True)


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


def check_out(config: FinetuneConfig, out: Path, settings: dict[str, Any]) -> None:
    """Refuse to overwrite an earlier run's checkpoints, and to resume one with other settings."""
    ckpt = out / "checkpoints"
    has_ckpt = ckpt.is_dir() and any(ckpt.glob("step-*"))
    if config.resume:
        if not has_ckpt:
            raise FileNotFoundError(f"--resume given but {ckpt} holds no checkpoint: run without --resume first")
        previous = out / "run_config.json"
        if previous.exists():
            old = json.loads(previous.read_text(encoding="utf-8"))
            changed = [k for k in RESUME_KEYS + ("labels",) if old.get(k) != settings.get(k)]
            if changed:
                details = "; ".join(f"{k}: {old.get(k)!r} then, {settings.get(k)!r} now" for k in changed)
                raise ValueError(f"cannot resume {out}: the run's settings changed ({details}). Use the same options, "
                                 "or start a new run with another --out")
    elif has_ckpt:
        raise FileExistsError(f"{ckpt} already holds checkpoints of an earlier run: add --resume to continue it, "
                              "or choose another --out")


def split_indices(n: int, val_size: int, seed: int = 0) -> tuple[list[int], list[int]]:
    """A seeded random split of ``range(n)`` into sorted train and validation indices (``val_size`` of them)."""
    order = list(range(n))
    random.Random(seed).shuffle(order)
    return sorted(order[val_size:]), sorted(order[:val_size])


def model_arg(name: str) -> str:
    """``--model`` as recorded in the run's settings: an existing path made absolute, else the name."""
    path = Path(name).expanduser()
    return str(path.resolve()) if path.exists() else name


def causal_lm_folder(name: str) -> str:
    """What ``from_pretrained`` loads for ``--model NAME``: the bundled LLM's cached copy for ``smollm2``
    (an existing path of that name wins), a local folder, or a hub id (which fails fast offline)."""
    from tutorlib.models import LLM_NAMES, llm_path, resolve_model_path

    if name in LLM_NAMES and not Path(name).expanduser().exists():
        return llm_path(name)
    return resolve_model_path(name)
