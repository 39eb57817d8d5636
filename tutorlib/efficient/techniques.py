"""Measure every efficiency technique on the same model and data with the course Trainer.

A :class:`Technique` is a Trainer configuration — precision, gradient accumulation, activation
checkpointing, ``torch.compile`` — and :func:`benchmark_techniques` times one optimizer step of
each with :func:`~tutorlib.efficient.measure.measure`. :func:`lm_dataset` makes next-token
training pairs for the tiny GPT from the code corpus.

>>> from tutorlib.models import TinyGPT, GPTConfig
>>> data = lm_dataset(block_size=16, n_sequences=8)
>>> rows = benchmark_techniques(lambda: TinyGPT(GPTConfig(block_size=16, n_layer=1, d_model=32, n_head=2)), data,
...                             [Technique("fp32")], batch_size=4, steps=1, warmup=0, loss_fn=lm_loss, tokens_per_sample=16)
>>> rows[0].name, rows[0].tokens_per_s > 0
('fp32', True)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset, Subset, TensorDataset

from tutorlib.efficient.checkpointing import enable_activation_checkpointing
from tutorlib.efficient.measure import Measurement, measure, transformer_train_flops
from tutorlib.models import count_parameters
from tutorlib.runtime import get_device, seed_everything

__all__ = ["Technique", "DEFAULT_TECHNIQUES", "lm_dataset", "lm_loss", "benchmark_techniques", "techniques_table"]


@dataclass(frozen=True)
class Technique:
    """One training configuration to measure.

    >>> Technique("bf16 autocast", precision="bf16").precision
    'bf16'
    """

    name: str
    precision: str = "fp32"
    grad_accum: int = 1
    checkpointing: bool = False
    compile: bool = False

    def __post_init__(self) -> None:
        if self.precision not in ("fp32", "bf16", "fp16"):
            raise ValueError(f"precision must be 'fp32', 'bf16' or 'fp16', got {self.precision!r}")
        if self.grad_accum < 1:
            raise ValueError(f"grad_accum must be at least 1, got {self.grad_accum}")


DEFAULT_TECHNIQUES: tuple[Technique, ...] = (
    Technique("fp32 baseline"),
    Technique("bf16 autocast", precision="bf16"),
    Technique("grad accumulation x4", grad_accum=4),
    Technique("activation checkpointing", checkpointing=True),
    Technique("torch.compile", compile=True),
)


def lm_dataset(block_size: int = 128, n_sequences: int = 256, text: str | None = None) -> TensorDataset:
    """Next-token pairs ``(x, y)`` of length ``block_size`` cut from the code corpus (byte tokens), ``y`` = ``x`` shifted by one.

    >>> x, y = lm_dataset(block_size=8, n_sequences=2)[0]; bool((x[1:] == y[:-1]).all())
    True
    """
    from tutorlib.data import code_corpus
    from tutorlib.models import ByteTokenizer

    if block_size < 2 or n_sequences < 1:
        raise ValueError(f"need block_size >= 2 and n_sequences >= 1, got {block_size} and {n_sequences}")
    text = text if text is not None else code_corpus(max_chars=(block_size + 1) * n_sequences + 1)
    ids = torch.tensor(ByteTokenizer().encode(text), dtype=torch.long)
    n = min(n_sequences, (len(ids) - 1) // block_size)
    if n < 1:
        raise ValueError(f"text of {len(ids)} tokens is too short for one sequence of {block_size + 1}")
    starts = torch.arange(n) * block_size
    x = torch.stack([ids[s : s + block_size] for s in starts.tolist()])
    y = torch.stack([ids[s + 1 : s + block_size + 1] for s in starts.tolist()])
    return TensorDataset(x, y)


def lm_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Next-token cross-entropy of logits (B, T, V) against targets (B, T).

    >>> float(lm_loss(torch.zeros(2, 3, 4), torch.zeros(2, 3, dtype=torch.long))) == float(torch.log(torch.tensor(4.0)))
    True
    """
    if logits.dim() != 3 or targets.shape != logits.shape[:2]:
        raise ValueError(f"expected logits (B, T, V) and targets (B, T), got {tuple(logits.shape)} and {tuple(targets.shape)}")
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1))


def benchmark_techniques(make_model: Callable[[], nn.Module], data: Dataset, techniques: Sequence[Technique], *,
                         batch_size: int, steps: int = 3, warmup: int = 1, device: str | torch.device | None = None,
                         lr: float = 1e-4, collate_fn: Callable | None = None, loss_fn: Callable | None = None,
                         tokens_per_sample: float | None = None, seed: int = 0,
                         progress: bool = False) -> list[Measurement]:
    """Time one optimizer step (``batch_size`` examples) of each technique with the Trainer; returns one Measurement each.

    A fresh model comes from ``make_model()`` per technique (same seed). Gradient accumulation keeps
    the effective batch: micro-batches of ``batch_size // grad_accum``. FLOPs per step are
    ``6 · N · tokens`` (non-embedding parameters) when ``tokens_per_sample`` is given, so MFU appears
    on GPUs with a known peak. Techniques the device cannot run (fp16 on a CPU) are skipped with a note.
    """
    from tutorlib.train import Trainer

    if batch_size < 1 or len(data) < batch_size:  # type: ignore[arg-type]
        raise ValueError(f"need at least batch_size={batch_size} examples, got {len(data)}")  # type: ignore[arg-type]
    dev = get_device(device)
    one_batch = Subset(data, range(batch_size))
    rows: list[Measurement] = []
    iterator = techniques
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(techniques, desc="techniques")
    for tech in iterator:
        if tech.precision == "fp16" and dev.type == "cpu":
            print(f"skipped {tech.name!r}: fp16 autocast is for GPUs (use bf16 on a CPU)")
            continue
        if batch_size % tech.grad_accum:
            raise ValueError(f"{tech.name}: batch_size {batch_size} is not divisible by grad_accum {tech.grad_accum}")
        seed_everything(seed)
        model = make_model()
        n_params = count_parameters(model).non_embedding
        if tech.checkpointing:
            enable_activation_checkpointing(model)
        if tech.compile:
            model = torch.compile(model)  # type: ignore[assignment]
        trainer = Trainer(model, lr=lr, precision=tech.precision, grad_accum=tech.grad_accum,
                          batch_size=batch_size // tech.grad_accum, device=dev, collate_fn=collate_fn,
                          loss_fn=loss_fn, shuffle=False, progress=False, log=False)
        tokens = tokens_per_sample * batch_size if tokens_per_sample else None
        flops = transformer_train_flops(n_params, int(tokens)) if tokens else None
        rows.append(measure(lambda: trainer.fit(one_batch, epochs=1), steps=steps, warmup=warmup,
                            samples_per_step=batch_size, tokens_per_step=int(tokens) if tokens else None,
                            flops_per_step=flops, device=dev, name=tech.name))
        del trainer, model
    return rows


def techniques_table(rows: Sequence[Measurement], baseline: str | None = None) -> str:
    """A Markdown table of measurements with speed-up and memory relative to ``baseline`` (default: the first row).

    >>> r = [Measurement("a", "cpu", 1, 1.0, 8.0, None, 100.0, 10.0, "process RSS"),
    ...      Measurement("b", "cpu", 1, 0.5, 16.0, None, 90.0, 5.0, "process RSS")]
    >>> print(techniques_table(r).splitlines()[3])
    | b | 500.0 | 16.0 | – | 2.00× | 5 | 0.50× | – |
    >>> print(techniques_table(r, baseline="b").splitlines()[2].split(" | ")[4])
    0.50×
    """
    if not rows:
        raise ValueError("no measurements to tabulate")
    base = next((r for r in rows if r.name == baseline), rows[0]) if baseline else rows[0]
    lines = ["| technique | ms/step | samples/s | tokens/s | speed-up | peak mem delta MiB | memory vs base | MFU |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        tok = f"{r.tokens_per_s:,.0f}" if r.tokens_per_s else "–"
        mem_ratio = f"{r.memory_delta_mb / base.memory_delta_mb:.2f}×" if base.memory_delta_mb >= 1 else "–"
        mfu_s = f"{r.mfu:.1%}" if r.mfu is not None else "–"
        lines.append(f"| {r.name} | {r.seconds_per_step * 1e3:.1f} | {r.samples_per_s:,.1f} | {tok} | "
                     f"{r.samples_per_s / base.samples_per_s:.2f}× | {r.memory_delta_mb:,.0f} | {mem_ratio} | {mfu_s} |")
    return "\n".join(lines)
