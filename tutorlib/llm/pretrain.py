"""Pretraining the TinyGPT on the code corpus with the shared ``Trainer``, tracking perplexity and samples.

Training data are random windows of ``block_size + 1`` characters; the loss is next-character
cross-entropy (nats per character) and perplexity is ``exp(loss)``: the number of equally likely
characters the model is, on average, choosing between. A callback measures validation perplexity
on fixed held-out windows and draws a sample every ``eval_every`` steps.

>>> from tutorlib.models import GPTConfig
>>> res = pretrain_gpt("def f(x):\\n    return x\\n" * 40, GPTConfig(block_size=16, n_layer=1, n_head=2, d_model=32),
...                    steps=20, batch_size=8, eval_every=10, sample_chars=8)
>>> [e["step"] for e in res.evals], res.evals[-1]["val_ppl"] < res.evals[0]["val_ppl"]
([0, 10, 20], True)
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils.data import Dataset

from tutorlib.models import ByteTokenizer, GPTConfig, TinyGPT
from tutorlib.train import Trainer
from tutorlib.train.callbacks import Callback

__all__ = ["CharWindows", "encode_corpus", "perplexity", "PretrainResult", "pretrain_gpt", "cosine_warmup"]


def encode_corpus(text: str, tokenizer: ByteTokenizer | None = None) -> torch.Tensor:
    """The corpus as a 1-D int64 tensor of token ids.

    >>> encode_corpus("ab").tolist()
    [97, 98]
    """
    if not isinstance(text, str) or not text:
        raise ValueError("the corpus must be a non-empty string")
    return torch.tensor((tokenizer or ByteTokenizer()).encode(text), dtype=torch.long)


class CharWindows(Dataset):
    """``n`` windows of ``block_size + 1`` consecutive tokens at seeded random offsets of ``data``.

    >>> ds = CharWindows(torch.arange(100), block_size=8, n=5); ds[0].shape
    torch.Size([9])
    """

    def __init__(self, data: torch.Tensor, block_size: int, n: int, seed: int = 0) -> None:
        if data.dim() != 1 or data.numel() <= block_size + 1:
            raise ValueError(f"need a 1-D token tensor longer than block_size + 1 = {block_size + 1}, got "
                             f"{tuple(data.shape)}: use more text or a smaller block_size")
        g = torch.Generator().manual_seed(seed)
        self.data, self.block_size = data, block_size
        self.starts = torch.randint(0, data.numel() - block_size - 1, (n,), generator=g)

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, i: int) -> torch.Tensor:
        s = int(self.starts[i])
        return self.data[s:s + self.block_size + 1]


@torch.no_grad()
def perplexity(model: TinyGPT, windows: torch.Tensor, batch_size: int = 64) -> float:
    """``exp`` of the mean next-token loss of ``model`` over a (N, T+1) tensor of windows.

    >>> m = TinyGPT(GPTConfig(block_size=8, n_layer=1, n_head=2, d_model=16))
    >>> 200 < perplexity(m, torch.randint(0, 256, (4, 9))) < 400   # untrained: about the vocabulary size (256)
    True
    """
    was = model.training
    model.eval()
    dev = next(model.parameters()).device
    total = 0.0
    for i in range(0, len(windows), batch_size):
        chunk = windows[i:i + batch_size].to(dev)
        total += float(model.loss(chunk)) * len(chunk)
    model.train(was)
    return math.exp(total / len(windows))


def cosine_warmup(warmup: int) -> Any:
    """A scheduler factory for the ``Trainer``: linear warmup over ``warmup`` steps, then cosine decay to 10 %.

    >>> opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    >>> s = cosine_warmup(2)(opt, 10); [round(x, 2) for x in (s.get_last_lr()[0],)]
    [0.5]
    """
    def factory(optimizer: torch.optim.Optimizer, total_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
        def f(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            t = (step - warmup) / max(1, total_steps - warmup)
            return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))
        return torch.optim.lr_scheduler.LambdaLR(optimizer, f)
    return factory


@dataclass
class PretrainResult:
    """What :func:`pretrain_gpt` returns: the model, per-step losses, periodic evaluations, seconds."""

    model: TinyGPT
    steps: list[dict[str, float]]
    evals: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def final_val_ppl(self) -> float:
        return self.evals[-1]["val_ppl"]


class _Track(Callback):
    def __init__(self, every: int, val: torch.Tensor, prompt: str, chars: int, seed: int) -> None:
        self.every, self.val, self.prompt, self.chars, self.seed = every, val, prompt, chars, seed
        self.evals: list[dict[str, Any]] = []
        self.t0 = time.perf_counter()

    def measure(self, trainer: Trainer, step: int, train_loss: float | None) -> None:
        from tutorlib.llm.decoding import sample

        model = trainer.unwrapped_model
        tok = ByteTokenizer()
        dev = next(model.parameters()).device
        model.eval()
        g = torch.Generator(device=dev).manual_seed(self.seed)
        ids = torch.tensor([tok.encode(self.prompt)], device=dev)
        text = tok.decode(sample(model, ids, self.chars, temperature=0.8, top_k=20, generator=g)[0])
        model.train()
        self.evals.append({"step": step, "train_loss": train_loss, "val_ppl": perplexity(model, self.val),
                           "seconds": time.perf_counter() - self.t0, "sample": text})

    def on_fit_start(self, trainer: Trainer) -> None:
        self.t0 = time.perf_counter()
        self.measure(trainer, 0, None)

    def on_step_end(self, trainer: Trainer, logs: dict[str, Any]) -> None:
        step = int(trainer.global_step)
        if step % self.every == 0 or step == trainer.total_steps:
            recent = [s["loss"] for s in trainer.history.steps[-self.every:]]
            self.measure(trainer, step, sum(recent) / len(recent))


def pretrain_gpt(text: str, cfg: GPTConfig | None = None, steps: int = 1000, batch_size: int = 32, lr: float = 3e-3,
                 eval_every: int = 100, val_fraction: float = 0.1, val_windows: int = 64, prompt: str = "def ",
                 sample_chars: int = 120, seed: int = 0, device: str | torch.device | None = None,
                 progress: bool = False) -> PretrainResult:
    """Pretrain a TinyGPT on ``text`` (the last ``val_fraction`` is held out) for ``steps`` optimizer steps.

    Uses the shared :class:`~tutorlib.train.Trainer` with a language-modelling ``step_fn``, AdamW
    (weight decay 0.1), gradient clipping at 1 and :func:`cosine_warmup`. ``evals`` holds, every
    ``eval_every`` steps (and at step 0), the mean recent training loss, validation perplexity and a
    sample continuing ``prompt`` (temperature 0.8, top-k 20).
    """
    from tutorlib.runtime import seed_everything

    if steps < 1 or batch_size < 1 or eval_every < 1:
        raise ValueError(f"steps, batch_size and eval_every must be >= 1, got {steps}, {batch_size}, {eval_every}")
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    cfg = cfg or GPTConfig()
    data = encode_corpus(text)
    cut = int(len(data) * (1 - val_fraction))
    train_ds = CharWindows(data[:cut], cfg.block_size, steps * batch_size, seed=seed)
    val_ds = CharWindows(data[cut:], cfg.block_size, val_windows, seed=seed + 1)
    val = torch.stack([val_ds[i] for i in range(len(val_ds))])
    seed_everything(seed)
    model = TinyGPT(cfg)
    track = _Track(eval_every, val, prompt, sample_chars, seed)

    def step_fn(trainer: Trainer, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"loss": trainer.model.loss(batch)}

    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=lr, betas=(0.9, 0.95))
    trainer = Trainer(model, opt, step_fn=step_fn, batch_size=batch_size, device=device, clip_grad_norm=1.0,
                      scheduler=cosine_warmup(max(1, steps // 20)), callbacks=[track], progress=progress, log=False,
                      seed=seed, shuffle=False)
    t0 = time.perf_counter()
    history = trainer.fit(train_ds, epochs=1)
    return PretrainResult(trainer.unwrapped_model.eval(), history.steps, track.evals, time.perf_counter() - t0)
