"""Every option of ``tutorlib finetune``, declared once: a field of :class:`FinetuneConfig` with its help.

The parser (:mod:`tutorlib.finetune.cli`) builds its arguments from these fields, the driver
(:mod:`tutorlib.finetune.run`) and the task plug-ins read them, and nothing here imports torch, so
``tutorlib finetune --help`` or a usage error answers at once. A default of ``None`` means "the task's
default" (:data:`TASK_DEFAULTS`): the classifier and a Llama want different ranks, targets and rates.

>>> "causal-lm" in TASK_NAMES and "lora" in METHOD_NAMES
True
>>> FinetuneConfig(data="sft.jsonl", task="causal-lm").resolved().target_modules
('q_proj', 'k_proj', 'v_proj', 'o_proj')
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

__all__ = ["DEFAULT_EPOCHS", "TASK_NAMES", "METHOD_NAMES", "TASK_DEFAULTS", "FinetuneConfig", "cli_options",
           "auto_val_size", "MAX_AUTO_VAL"]

#: Tasks, each a plug-in module of :mod:`tutorlib.finetune` (see :data:`tutorlib.finetune.run.PLUGINS`).
TASK_NAMES = ("classification", "causal-lm", "preference")
#: Fine-tuning methods of the classification task (built by :func:`tutorlib.peft.build_model`).
METHOD_NAMES = ("head", "full", "lora", "dora", "ia3", "prefix", "prompt", "houlsby", "pfeiffer", "lora-ours")
#: Epochs of the classification task when ``--epochs`` is not given.
DEFAULT_EPOCHS = 3
_LLAMA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj")
#: Each task's defaults for the options left at ``None``. The causal-LM ones fit a Llama (SmolLM2): a plain
#: loop with LoRA r=16 on q/k/v/o, lr 1e-3 and batch 8 trains it well; ``lr=None`` for classification is
#: the method's measured rate (:data:`tutorlib.peft.DEFAULT_LR`).
TASK_DEFAULTS: dict[str, dict[str, Any]] = {
    "classification": {"model": None, "epochs": DEFAULT_EPOCHS, "lr": None, "batch_size": 16, "max_length": 128,
                       "r": 8, "target_modules": ("query", "value")},
    "causal-lm": {"model": "smollm2", "epochs": 1, "lr": 1e-3, "batch_size": 8, "max_length": 512, "r": 16,
                  "target_modules": _LLAMA_TARGETS},
    "preference": {"model": "smollm2", "epochs": 1, "lr": 2e-4, "batch_size": 4, "max_length": 512, "r": 16,
                   "target_modules": _LLAMA_TARGETS},
}
#: The automatic validation split holds at most this many examples (and at most ``val_fraction`` of them).
MAX_AUTO_VAL = 50


def _opt(default: Any, help: str, *, flag: str | None = None, kind: str = "str", metavar: str | None = None,
         choices: tuple[str, ...] | None = None, tasks: tuple[str, ...] = TASK_NAMES, required: bool = False) -> Any:
    """A dataclass field that is also a command-line option (``kind``: str, int, float, pos_int, pos_float,
    flag, list)."""
    meta = {"help": help, "flag": flag, "kind": kind, "metavar": metavar, "choices": choices, "tasks": tasks,
            "required": required}
    return field(default=default, metadata=meta)


_CLS, _LM, _PREF = ("classification",), ("causal-lm",), ("preference",)


@dataclass
class FinetuneConfig:
    """Every option of ``tutorlib finetune`` (the CLI fills it from its arguments); ``None`` = the task's default.

    >>> FinetuneConfig(data="train.csv").method
    'lora'
    >>> FinetuneConfig(data="train.csv").resolved().r
    8
    """

    data: str = _opt(None, "training file: .csv/.tsv/.jsonl/.json for classification; JSONL for causal-lm "
                           "(prompt/completion or chat messages) and preference (prompt/chosen/rejected)",
                     metavar="FILE", required=True)
    task: str = _opt("classification", "classification; causal-lm: LoRA SFT of a causal LM, loss on the answer tokens "
                                       "only; preference: DPO on prompt/chosen/rejected pairs", choices=TASK_NAMES)
    text_col: str = _opt("text", "column with the text", metavar="C", tasks=_CLS)
    label_col: str = _opt("label", "column with the label, names or ints", metavar="C", tasks=_CLS)
    prompt_col: str = _opt("prompt", "key of the prompt in each JSONL line", metavar="KEY", tasks=_LM + _PREF)
    completion_col: str = _opt("completion", "key of the completion (or use chat 'messages')", metavar="KEY", tasks=_LM)
    chosen_col: str = _opt("chosen", "key of the preferred answer", metavar="KEY", tasks=_PREF)
    rejected_col: str = _opt("rejected", "key of the worse answer", metavar="KEY", tasks=_PREF)
    system: str | None = _opt(None, "a system message for every example without one (default: the chat template's)",
                              metavar="TEXT", tasks=_LM + _PREF)
    val_data: str | None = _opt(None, "validation file (default: hold out a small part of --data)", metavar="FILE")
    val_fraction: float = _opt(0.2, f"share held out for validation when --val-data is absent, at most "
                                    f"{MAX_AUTO_VAL} examples", kind="float", metavar="F")
    method: str = _opt("lora", "head | full | lora | dora | ia3 | prefix | prompt | houlsby | pfeiffer | lora-ours",
                       choices=METHOD_NAMES)
    model: str | None = _opt(None, "base model: a local folder (save_pretrained), a bundled name or a hub id (needs a "
                                   "network); default: the bundled all-MiniLM-L6-v2 for classification, smollm2 "
                                   "(SmolLM2-135M-Instruct) for causal-lm and preference (or a causal-lm run folder)",
                             metavar="PATH_OR_NAME")
    epochs: int | None = _opt(None, "epochs", kind="pos_int")
    lr: float | None = _opt(None, "learning rate", kind="pos_float")
    batch_size: int | None = _opt(None, "batch size (examples, or pairs for preference)", kind="pos_int")
    max_length: int | None = _opt(None, "cut longer examples to this many tokens (the run says how many were cut)",
                                  kind="pos_int")
    r: int | None = _opt(None, "LoRA/DoRA rank", kind="pos_int")
    alpha: float | None = _opt(None, "LoRA/DoRA alpha (default 2·r)", kind="pos_float")
    target_modules: tuple[str, ...] | None = _opt(None, "LoRA/DoRA target layers", kind="list", metavar="NAME")
    beta: float = _opt(0.1, "DPO's β: how far the tuned model may move from the reference", kind="pos_float",
                       tasks=_PREF)
    out: str = _opt("runs/finetune", "output folder", metavar="DIR")
    resume: bool = _opt(False, "continue from the latest checkpoint in --out", kind="flag")
    checkpoint_every: int | None = _opt(None, "also checkpoint every STEPS optimizer steps", kind="pos_int",
                                        metavar="STEPS")
    device: str | None = _opt(None, "cpu, cuda, cuda:1, mps (default: best available or $TUTORLIB_DEVICE)")
    precision: str = _opt("fp32", "autocast precision", choices=("fp32", "bf16", "fp16", "auto"))
    seed: int = _opt(0, "random seed", kind="int")
    encoding: str = _opt("utf-8-sig", "text encoding of the files (default UTF-8)")
    fmt: str | None = _opt(None, "file format (default: from the suffix)", flag="--format",
                           choices=("csv", "tsv", "jsonl", "json"), tasks=_CLS)
    skip_empty: bool = _opt(False, "drop rows whose text or label is empty instead of failing", kind="flag", tasks=_CLS)
    num_virtual_tokens: int = 10
    bottleneck: int = 16
    progress: bool = True
    verbose: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    def resolved(self) -> "FinetuneConfig":
        """A copy with every ``None`` task default filled in (:data:`TASK_DEFAULTS`).

        >>> FinetuneConfig(data="p.jsonl", task="preference", r=4).resolved().r
        4
        """
        if self.task not in TASK_DEFAULTS:
            raise ValueError(f"unknown task {self.task!r}: available {sorted(TASK_DEFAULTS)}")
        changes = {k: v for k, v in TASK_DEFAULTS[self.task].items() if getattr(self, k) is None}
        out = dataclasses.replace(self, **changes)
        if out.target_modules is not None:
            out.target_modules = tuple(out.target_modules)
        for key in ("prompt_col", "completion_col"):  # the old spelling: extra={"prompt_col": ...}
            if key in self.extra:
                setattr(out, key, self.extra[key])
        return out

    def validate(self) -> None:
        """Raise ``ValueError`` for impossible settings (before any slow work starts).

        >>> FinetuneConfig(data="d.csv", epochs=0).validate()
        Traceback (most recent call last):
        ...
        ValueError: --epochs must be at least 1, got 0
        """
        if self.task not in TASK_NAMES:
            raise ValueError(f"unknown task {self.task!r}: available {sorted(TASK_NAMES)}")
        if self.method not in METHOD_NAMES:
            raise ValueError(f"unknown method {self.method!r}: choose one of {', '.join(METHOD_NAMES)}")
        if self.task != "classification" and self.method != "lora":
            raise ValueError(f"--task {self.task} supports --method lora only, got {self.method!r}")
        for name in ("epochs", "batch_size", "max_length", "r"):
            value = getattr(self, name)
            if value is not None and int(value) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
        if self.lr is not None and not self.lr > 0:
            raise ValueError(f"--lr must be positive, got {self.lr}")
        if not self.beta > 0:
            raise ValueError(f"--beta must be positive, got {self.beta}")
        if not 0.0 < self.val_fraction < 1.0:
            raise ValueError(f"--val-fraction must be between 0 and 1, got {self.val_fraction}")
        if self.task == "classification" and self.text_col == self.label_col:
            raise ValueError(f"--text-col and --label-col are both {self.text_col!r}: they must be different columns")


def auto_val_size(n: int, fraction: float = 0.2, cap: int = MAX_AUTO_VAL) -> int:
    """How many of ``n`` examples the automatic validation split holds: ``fraction`` of them, at most ``cap``
    (a user with 1,000 examples keeps 950 for training), at least 1 and never all.

    >>> auto_val_size(1000), auto_val_size(100), auto_val_size(12), auto_val_size(2)
    (50, 20, 2, 1)
    """
    if n < 2:
        raise ValueError(f"{n} example(s): at least 2 are needed to hold one out for validation (or pass --val-data)")
    return min(n - 1, max(1, min(cap, round(fraction * n))))


def cli_options() -> list[tuple[str, dataclasses.Field]]:
    """``(flag, field)`` for every field of :class:`FinetuneConfig` that is a command-line option.

    >>> [flag for flag, _ in cli_options()][:3]
    ['--data', '--task', '--text-col']
    """
    out = []
    for f in dataclasses.fields(FinetuneConfig):
        if "help" in f.metadata:
            out.append((f.metadata["flag"] or "--" + f.name.replace("_", "-"), f))
    return out
