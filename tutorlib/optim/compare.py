"""Optimizers on real training: the same model, data and seed, one optimizer at a time, through the Trainer.

:func:`compare_optimizers` trains a fresh model per optimizer and returns the histories;
:func:`plot_comparison` draws their loss and accuracy curves side by side. For the text task,
:func:`frozen_embeddings` runs the pretrained MiniLM once over a review set and returns mean-pooled
sentence embeddings, so that classifier heads can then be trained on the (N, 384) tensors in
seconds. :func:`batch_size_sweep` measures how the best learning rate moves with the batch size.

>>> import torch
>>> from tutorlib.data import load_digits
>>> from tutorlib.models import MLP
>>> runs = compare_optimizers(lambda: MLP(64, [32], 10), {"sgd": 0.1, "adam": 1e-3},
...                           load_digits("train", limit=128), load_digits("val", limit=64), epochs=1, progress=False)
>>> sorted(runs)
['adam', 'sgd']
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset, TensorDataset

from tutorlib.optim.optimizers import make_optimizer
from tutorlib.runtime import seed_everything
from tutorlib.train import History, Trainer

__all__ = ["compare_optimizers", "plot_comparison", "frozen_embeddings", "batch_size_sweep", "plot_batch_size_sweep",
           "weight_norm"]

OptimizerSpec = float | tuple[str, Mapping[str, Any]] | Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]


def _build(name: str, spec: OptimizerSpec, params: list[nn.Parameter]) -> torch.optim.Optimizer:
    if isinstance(spec, (int, float)):
        return make_optimizer(name, params, lr=float(spec))
    if isinstance(spec, tuple) and len(spec) == 2 and isinstance(spec[0], str):
        return make_optimizer(spec[0], params, **dict(spec[1]))
    if callable(spec):
        return spec(params)
    raise TypeError(
        f"optimizer spec for {name!r} must be a learning rate (name is an optimizer name), "
        f"(optimizer_name, kwargs) or f(params) -> optimizer; got {type(spec).__name__}")


def compare_optimizers(model_fn: Callable[[], nn.Module], optimizers: Mapping[str, OptimizerSpec], train: Dataset,
                       val: Dataset | None = None, epochs: int = 5, seed: int = 0, progress: bool = True,
                       models: dict[str, nn.Module] | None = None, **trainer_kwargs: Any) -> dict[str, History]:
    """Train ``model_fn()`` once per entry of ``optimizers`` (same seed, data order and initial weights).

    Each value is a learning rate (the key is then an optimizer name such as ``"adamw"``),
    ``(name, kwargs)`` for :func:`~tutorlib.optim.make_optimizer`, or ``f(params) -> optimizer``.
    Extra keyword arguments go to :class:`~tutorlib.train.Trainer`. Pass a dict as ``models`` to get
    the trained models back.

    >>> from tutorlib.data import load_digits
    >>> from tutorlib.models import MLP
    >>> h = compare_optimizers(lambda: MLP(64, [16], 10), {"w/ L2": ("adam", {"lr": 1e-3, "weight_decay": 0.1})},
    ...                        load_digits("train", limit=64), epochs=1, progress=False)
    >>> list(h)
    ['w/ L2']
    """
    if not optimizers:
        raise ValueError("optimizers is empty: pass e.g. {'sgd': 0.1, 'adam': 1e-3}")
    trainer_kwargs.setdefault("log", False)
    histories: dict[str, History] = {}
    items = list(optimizers.items())
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(items, desc="optimizers", leave=False)
    for name, spec in items:
        seed_everything(seed)
        model = model_fn()
        opt = _build(name, spec, [p for p in model.parameters() if p.requires_grad])
        trainer = Trainer(model, opt, seed=seed, progress=False, **trainer_kwargs)
        try:
            histories[name] = trainer.fit(train, val, epochs=epochs)
        except FloatingPointError as exc:
            histories[name] = trainer.history
            histories[name].epochs.append({"epoch": len(trainer.history.epochs), "train_loss": math.nan,
                                           "diverged": str(exc).splitlines()[0]})
        if models is not None:
            models[name] = trainer.unwrapped_model
        if bar is not None:
            bar.update(1)
            bar.set_postfix(last=name)
    if bar is not None:
        bar.close()
    return histories


def plot_comparison(histories: Mapping[str, History], title: str = "Optimizers compared", per_step: bool = False,
                    smooth: int = 10):
    """Training loss (per epoch, or per step smoothed over ``smooth`` steps) and validation accuracy, side by side.

    >>> import matplotlib; matplotlib.use("Agg")
    >>> fig = plot_comparison({"a": History([{"epoch": 0, "train_loss": 1.0, "val_accuracy": 0.5}])})
    """
    import matplotlib.pyplot as plt

    has_acc = any("val_accuracy" in e for h in histories.values() for e in h.epochs)
    fig, axes = plt.subplots(1, 2 if has_acc else 1, figsize=(11 if has_acc else 6, 3.8), squeeze=False)
    ax_loss = axes[0][0]
    for k, (name, h) in enumerate(histories.items()):
        if per_step and h.steps:
            losses = np.array([s["loss"] for s in h.steps], dtype=float)
            w = max(1, min(smooth, len(losses)))
            ys = np.convolve(losses, np.ones(w) / w, mode="valid")
            ax_loss.plot(np.arange(w, len(losses) + 1), ys, color=f"C{k}", label=name)
        else:
            eps = [e for e in h.epochs if "train_loss" in e]
            ax_loss.plot([e["epoch"] + 1 for e in eps], [e["train_loss"] for e in eps], "-o", ms=3, color=f"C{k}",
                         label=name)
    ax_loss.set_xlabel("optimizer step" if per_step else "epoch")
    ax_loss.set_ylabel("training loss")
    ax_loss.set_yscale("log")
    ax_loss.set_title(title)
    ax_loss.legend(fontsize=8)
    if has_acc:
        ax = axes[0][1]
        for k, (name, h) in enumerate(histories.items()):
            eps = [e for e in h.epochs if "val_accuracy" in e]
            ax.plot([e["epoch"] + 1 for e in eps], [e["val_accuracy"] for e in eps], "-o", ms=3, color=f"C{k}",
                    label=name)
        ax.set_xlabel("epoch")
        ax.set_ylabel("validation accuracy")
        ax.set_title("Validation accuracy")
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


@torch.inference_mode()
def frozen_embeddings(data: Dataset, encoder: nn.Module | None = None, tokenizer: Any = None, batch_size: int = 64,
                      max_length: int = 64, device: str | torch.device | None = None,
                      progress: bool = True) -> TensorDataset:
    """Mean-pooled MiniLM sentence embeddings of a ``(text, label)`` dataset, as a ``TensorDataset(emb, labels)``.

    Run the frozen encoder once, then train any head on the (N, 384) embeddings: the same result
    as training ``MiniLMClassifier(freeze_encoder=True)`` without running the transformer every epoch.

    >>> from tutorlib.data import load_reviews
    >>> ds = frozen_embeddings(load_reviews("val", limit=4), progress=False)
    >>> tuple(ds.tensors[0].shape)
    (4, 384)
    """
    from tutorlib.models import load_encoder, load_tokenizer, mean_pool
    from tutorlib.runtime import get_device

    if len(data) == 0:  # type: ignore[arg-type]
        raise ValueError("the dataset is empty")
    first = data[0]
    if not (isinstance(first, tuple) and len(first) == 2 and isinstance(first[0], str)):
        raise TypeError(f"expected a dataset of (text, label) pairs such as load_reviews(...), got items like {first!r:.80}")
    dev = get_device(device)
    encoder = (encoder if encoder is not None else load_encoder()).to(dev)
    tokenizer = tokenizer if tokenizer is not None else load_tokenizer()
    was_training = encoder.training
    encoder.eval()
    texts = [data[i][0] for i in range(len(data))]  # type: ignore[arg-type]
    labels = torch.tensor([int(data[i][1]) for i in range(len(data))], dtype=torch.long)  # type: ignore[arg-type]
    chunks = range(0, len(texts), batch_size)
    if progress:
        from tqdm.auto import tqdm

        chunks = tqdm(chunks, desc="embedding", leave=False)
    out = []
    for i in chunks:
        enc = tokenizer(texts[i : i + batch_size], padding=True, truncation=True, max_length=max_length,
                        return_tensors="pt").to(dev)
        hidden = encoder(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).last_hidden_state
        out.append(mean_pool(hidden, enc["attention_mask"]).float().cpu())
    encoder.train(was_training)
    return TensorDataset(torch.cat(out), labels)


def batch_size_sweep(model_fn: Callable[[], nn.Module], batch_sizes: Sequence[int], lrs: Sequence[float],
                     train: Dataset, val: Dataset, epochs: int = 5, optimizer: str = "sgd", seed: int = 0,
                     progress: bool = True) -> dict[tuple[int, float], float]:
    """Final validation accuracy for every (batch size, learning rate) pair, same number of epochs each.

    Larger batches take fewer steps per epoch; the linear scaling rule (Goyal et al., 2017) says the
    best rate grows roughly in proportion to the batch size for SGD.

    >>> from tutorlib.data import load_digits
    >>> from tutorlib.models import MLP
    >>> r = batch_size_sweep(lambda: MLP(64, [16], 10), [16, 64], [0.1], load_digits("train", limit=64),
    ...                      load_digits("val", limit=32), epochs=1, progress=False)
    >>> sorted(r)
    [(16, 0.1), (64, 0.1)]
    """
    if not batch_sizes or not lrs:
        raise ValueError("batch_sizes and lrs must each hold at least one value")
    results: dict[tuple[int, float], float] = {}
    pairs = [(b, lr) for b in batch_sizes for lr in lrs]
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(pairs), desc="batch size × lr", leave=False)
    for b, lr in pairs:
        seed_everything(seed)
        model = model_fn()
        opt = make_optimizer(optimizer, model.parameters(), lr=lr)
        trainer = Trainer(model, opt, batch_size=b, seed=seed, progress=False, log=False)
        try:
            h = trainer.fit(train, val, epochs=epochs)
            results[(b, lr)] = float(h["val_accuracy"][-1])
        except FloatingPointError:
            results[(b, lr)] = float("nan")
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return results


def plot_batch_size_sweep(results: Mapping[tuple[int, float], float], title: str = "Batch size vs learning rate"):
    """Heatmap of validation accuracy over (batch size, lr) with each batch size's best rate marked.

    >>> import matplotlib; matplotlib.use("Agg")
    >>> fig = plot_batch_size_sweep({(16, 0.1): 0.8, (16, 0.3): 0.7, (64, 0.1): 0.6, (64, 0.3): 0.75})
    """
    import matplotlib.pyplot as plt

    bss = sorted({b for b, _ in results})
    lrs = sorted({lr for _, lr in results})
    grid = np.array([[results.get((b, lr), np.nan) for lr in lrs] for b in bss], dtype=float)
    fig, ax = plt.subplots(figsize=(1.2 * len(lrs) + 2.5, 0.7 * len(bss) + 1.8))
    im = ax.imshow(grid, cmap="viridis", aspect="auto", vmin=np.nanmin(grid) if np.isfinite(grid).any() else 0, vmax=1)
    for i in range(len(bss)):
        for j in range(len(lrs)):
            v = grid[i, j]
            ax.text(j, i, "nan" if not np.isfinite(v) else f"{v:.2f}", ha="center", va="center",
                    color="w" if np.isfinite(v) and v < np.nanmax(grid) - 0.1 else "k", fontsize=8)
        if np.isfinite(grid[i]).any():
            best = int(np.nanargmax(grid[i]))
            ax.add_patch(plt.Rectangle((best - 0.5, i - 0.5), 1, 1, fill=False, ec="red", lw=2))
    ax.set_xticks(range(len(lrs)), [f"{lr:g}" for lr in lrs])
    ax.set_yticks(range(len(bss)), [str(b) for b in bss])
    ax.set_xlabel("learning rate")
    ax.set_ylabel("batch size")
    ax.set_title(title + " (red: best rate per batch size)")
    fig.colorbar(im, ax=ax, label="validation accuracy")
    fig.tight_layout()
    return fig


def weight_norm(model: nn.Module, only_weights: bool = True) -> float:
    """L2 norm of all (weight-matrix) parameters of ``model``: how much weight decay shrank it.

    >>> round(weight_norm(nn.Linear(2, 1, bias=False).requires_grad_(False).apply(lambda m: nn.init.ones_(m.weight))), 4)
    1.4142
    """
    sq = sum(float(p.detach().float().pow(2).sum()) for p in model.parameters() if p.dim() > 1 or not only_weights)
    return math.sqrt(sq)
