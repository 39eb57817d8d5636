"""Training curves and other plots used across lessons (matplotlib; every axis labelled, every figure titled).

>>> import matplotlib; matplotlib.use("Agg")
>>> from tutorlib.viz import plot_history
>>> from tutorlib.train import History
>>> fig = plot_history(History([{"epoch": 0, "train_loss": 1.0, "val_loss": 1.1}, {"epoch": 1, "train_loss": 0.5, "val_loss": 0.7}]))
"""

from __future__ import annotations

from typing import Any, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch

__all__ = ["plot_history", "plot_confusion_matrix", "image_grid", "plot_pareto"]


def _history_dicts(history: Any) -> list[dict]:
    epochs = getattr(history, "epochs", history)
    if not isinstance(epochs, list) or (epochs and not isinstance(epochs[0], dict)):
        raise TypeError("expected a tutorlib.train.History or a list of per-epoch dicts")
    return epochs


def plot_history(history: Any, title: str = "Training curves", ax_loss: Any = None, ax_metric: Any = None):
    """Loss (train/val) and, when present, validation accuracy/F1 against epoch.

    Returns the figure. Pass axes to draw into an existing figure (the live dashboard does).
    """
    epochs = _history_dicts(history)
    if ax_loss is None:
        has_metric = any(k.startswith("val_") and k != "val_loss" for e in epochs for k in e)
        fig, axes = plt.subplots(1, 2 if has_metric else 1, figsize=(10 if has_metric else 5, 3.5))
        axes = np.atleast_1d(axes)
        ax_loss = axes[0]
        ax_metric = axes[1] if has_metric else None
    fig = ax_loss.figure
    xs = [e["epoch"] + 1 for e in epochs]
    for key, style in (("train_loss", "-o"), ("val_loss", "--s")):
        ys = [e.get(key) for e in epochs]
        if any(y is not None for y in ys):
            ax_loss.plot(xs, ys, style, label=key.replace("_", " "))
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("loss")
    ax_loss.set_title(title)
    ax_loss.legend()
    if ax_metric is not None:
        for key in ("val_accuracy", "val_f1"):
            ys = [e.get(key) for e in epochs]
            if any(y is not None for y in ys):
                ax_metric.plot(xs, ys, "-o", label=key.replace("_", " "))
        ax_metric.set_xlabel("epoch")
        ax_metric.set_ylabel("score")
        ax_metric.set_title("Validation metrics")
        ax_metric.legend()
    fig.tight_layout()
    return fig


def plot_confusion_matrix(cm: torch.Tensor | np.ndarray, labels: Sequence[str] | None = None,
                          title: str = "Confusion matrix", ax: Any = None):
    """Heatmap of ``cm[true, predicted]`` with counts written in the cells.

    >>> fig = plot_confusion_matrix(np.array([[3, 1], [0, 4]]), ["neg", "pos"])
    """
    cm = np.asarray(cm)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"a confusion matrix must be square (C, C), got {cm.shape}")
    if ax is None:
        _, ax = plt.subplots(figsize=(1.2 + 0.6 * len(cm), 1 + 0.6 * len(cm)))
    im = ax.imshow(cm, cmap="Blues")
    labels = list(labels) if labels is not None else [str(i) for i in range(len(cm))]
    ax.set_xticks(range(len(cm)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(cm)), labels)
    for (i, j), v in np.ndenumerate(cm):
        ax.text(j, i, f"{v:g}", ha="center", va="center", color="white" if v > cm.max() / 2 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    ax.figure.colorbar(im, ax=ax, fraction=0.046)
    ax.figure.tight_layout()
    return ax.figure


def image_grid(images: torch.Tensor | np.ndarray, titles: Sequence[str] | None = None, ncols: int = 8,
               title: str = "Images", cmap: str = "gray_r"):
    """Show (N, C, H, W) or (N, H, W) images in a grid, optionally with a title per image.

    >>> fig = image_grid(np.zeros((4, 1, 8, 8)), ncols=2)
    """
    imgs = images.detach().cpu().float().numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    if imgs.ndim == 3:
        imgs = imgs[:, None]
    if imgs.ndim != 4:
        raise ValueError(f"expected images (N, C, H, W) or (N, H, W), got shape {imgs.shape}")
    n = len(imgs)
    ncols = max(1, min(ncols, n))
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(1.3 * ncols, 1.4 * nrows + 0.4), squeeze=False)
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k >= n:
            continue
        img = imgs[k]
        if img.shape[0] == 1:
            ax.imshow(img[0], cmap=cmap)
        else:
            ax.imshow(np.clip(img.transpose(1, 2, 0), 0, 1))
        if titles is not None and k < len(titles):
            ax.set_title(str(titles[k]), fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_pareto(points: Sequence[dict], x: str, y: str, label: str = "name", title: str = "Trade-off",
                xlabel: str | None = None, ylabel: str | None = None, higher_y_better: bool = True, ax: Any = None):
    """Scatter of variants (dicts) with their Pareto front (lower x, better y) drawn as a step line.

    >>> fig = plot_pareto([{"name": "a", "ms": 1, "acc": 0.9}, {"name": "b", "ms": 2, "acc": 0.95}], "ms", "acc")
    """
    if not points:
        raise ValueError("no points to plot")
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4))
    xs = np.array([p[x] for p in points], dtype=float)
    ys = np.array([p[y] for p in points], dtype=float)
    ax.scatter(xs, ys, zorder=3)
    for p, xv, yv in zip(points, xs, ys):
        ax.annotate(str(p.get(label, "")), (xv, yv), textcoords="offset points", xytext=(4, 4), fontsize=8)
    order = np.argsort(xs)
    front, best = [], -np.inf if higher_y_better else np.inf
    for i in order:
        better = ys[i] > best if higher_y_better else ys[i] < best
        if better:
            front.append(i)
            best = ys[i]
    ax.step(xs[front], ys[front], where="post", color="C3", label="Pareto front")
    ax.set_xlabel(xlabel or x)
    ax.set_ylabel(ylabel or y)
    ax.set_title(title)
    ax.legend()
    ax.figure.tight_layout()
    return ax.figure
