"""Plots for the multimodal lesson: similarity matrices and the joint image–text embedding space.

>>> import matplotlib; matplotlib.use("Agg")
>>> import torch
>>> from tutorlib.multimodal.viz import plot_similarity_matrix
>>> fig = plot_similarity_matrix(torch.eye(3), ["a", "b", "c"], ["x", "y", "z"])
"""

from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch

__all__ = ["plot_similarity_matrix", "project_2d", "plot_joint_embedding", "plot_accuracy_bars", "plot_photo_zero_shot"]


def plot_similarity_matrix(similarity: torch.Tensor, row_labels: Sequence[str], col_labels: Sequence[str],
                           title: str = "Cosine similarity", xlabel: str = "texts", ylabel: str = "images",
                           annotate: bool | None = None, fmt: str = ".2f", cmap: str = "viridis", ax=None):
    """A heatmap of a (rows, cols) similarity matrix with labelled axes; returns the figure.

    >>> fig = plot_similarity_matrix(torch.rand(2, 3), ["i0", "i1"], ["t0", "t1", "t2"], annotate=True)
    """
    sim = torch.as_tensor(similarity).detach().float().cpu().numpy()
    if sim.ndim != 2 or sim.shape != (len(row_labels), len(col_labels)):
        raise ValueError(f"similarity {sim.shape} does not match {len(row_labels)} row and {len(col_labels)} column labels")
    if ax is None:
        h, w = sim.shape
        _, ax = plt.subplots(figsize=(min(2 + 0.45 * w, 14), min(1.5 + 0.35 * h, 12)))
    im = ax.imshow(sim, cmap=cmap, aspect="auto")
    ax.set_xticks(range(sim.shape[1]), col_labels, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(sim.shape[0]), row_labels, fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if annotate if annotate is not None else sim.size <= 120:
        for (i, j), v in np.ndenumerate(sim):
            ax.text(j, i, format(v, fmt), ha="center", va="center", fontsize=6,
                    color="white" if v < (sim.min() + sim.max()) / 2 else "black")
    ax.figure.colorbar(im, ax=ax, fraction=0.04)
    ax.figure.tight_layout()
    return ax.figure


def project_2d(image_emb: torch.Tensor, text_emb: torch.Tensor, method: str = "pca", remove_gap: bool = False,
               seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Project image and text embeddings *jointly* to 2-D (PCA or t-SNE); returns (image_xy, text_xy).

    ``remove_gap`` subtracts each modality's mean first: CLIP's two modalities sit in separate
    cones (the "modality gap"), which otherwise dominates the first principal component.

    >>> a, b = project_2d(torch.randn(10, 8), torch.randn(4, 8)); a.shape, b.shape
    ((10, 2), (4, 2))
    """
    if image_emb.dim() != 2 or text_emb.dim() != 2 or image_emb.shape[1] != text_emb.shape[1]:
        raise ValueError(f"expected (N, D) and (M, D) embeddings, got {tuple(image_emb.shape)} and {tuple(text_emb.shape)}")
    img, txt = image_emb.detach().float().cpu(), text_emb.detach().float().cpu()
    if remove_gap:
        img, txt = img - img.mean(0), txt - txt.mean(0)
    both = torch.cat([img, txt]).numpy()
    if method == "pca":
        from sklearn.decomposition import PCA

        xy = PCA(n_components=2, random_state=seed).fit_transform(both)
    elif method == "tsne":
        from sklearn.manifold import TSNE
        from threadpoolctl import threadpool_limits

        # One OpenMP thread: for a few hundred points it is as fast, and on a busy machine spinning
        # worker threads made t-SNE ~10x slower in our measurements.
        with threadpool_limits(limits=1):
            xy = TSNE(n_components=2, perplexity=min(30.0, max(2.0, (len(both) - 1) / 3)), init="pca",
                      random_state=seed).fit_transform(both)
    else:
        raise ValueError(f"method must be 'pca' or 'tsne', got {method!r}")
    return xy[: len(img)], xy[len(img):]


def plot_joint_embedding(image_emb: torch.Tensor, text_emb: torch.Tensor, image_groups: Sequence[str],
                         text_labels: Sequence[str], text_groups: Sequence[str] | None = None,
                         method: str = "pca", remove_gap: bool = False, title: str | None = None,
                         images: torch.Tensor | None = None, n_thumbnails: int = 0, ax=None):
    """Images (dots, coloured by group) and texts (stars, labelled) in one 2-D projection; returns the figure.

    ``images`` (N, 3, H, W) in [0, 1] with ``n_thumbnails`` > 0 draws some images as thumbnails.

    >>> fig = plot_joint_embedding(torch.randn(6, 4), torch.randn(2, 4), ["a", "a", "a", "b", "b", "b"], ["a", "b"])
    """
    from matplotlib.offsetbox import AnnotationBbox, OffsetImage

    if len(image_groups) != image_emb.shape[0] or len(text_labels) != text_emb.shape[0]:
        raise ValueError("need one group per image and one label per text")
    text_groups = list(text_groups) if text_groups is not None else list(text_labels)
    img_xy, txt_xy = project_2d(image_emb, text_emb, method=method, remove_gap=remove_gap)
    groups = sorted(set(image_groups) | set(text_groups))
    cmap = plt.get_cmap("tab20" if len(groups) > 10 else "tab10")
    colour = {g: cmap(i % cmap.N) for i, g in enumerate(groups)}
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 6.5))
    for g in groups:
        idx = [i for i, x in enumerate(image_groups) if x == g]
        if idx:
            ax.scatter(img_xy[idx, 0], img_xy[idx, 1], s=12, alpha=0.55, color=colour[g])
    for (x, y), label, g in zip(txt_xy, text_labels, text_groups):
        ax.scatter([x], [y], marker="*", s=220, color=colour[g], edgecolor="black", linewidth=0.8, zorder=3)
        ax.annotate(label, (x, y), xytext=(4, 4), textcoords="offset points", fontsize=7, zorder=4)
    if images is not None and n_thumbnails > 0:
        pick = np.linspace(0, len(img_xy) - 1, min(n_thumbnails, len(img_xy))).astype(int)
        for i in pick:
            thumb = images[i].detach().float().clamp(0, 1).permute(1, 2, 0).numpy()
            ax.add_artist(AnnotationBbox(OffsetImage(thumb, zoom=0.7), img_xy[i], frameon=False, zorder=2))
    ax.scatter([], [], s=12, color="grey", label="images (dots)")
    ax.scatter([], [], marker="*", s=120, color="grey", edgecolor="black", label="texts (stars)")
    ax.legend(loc="best", fontsize=8)
    name = "PCA" if method == "pca" else "t-SNE"
    ax.set_xlabel(f"{name} 1")
    ax.set_ylabel(f"{name} 2")
    ax.set_title(title or f"Joint embedding space ({name}{', modality means removed' if remove_gap else ''})")
    ax.figure.tight_layout()
    return ax.figure


def plot_accuracy_bars(results: dict[str, dict[str, float]], metric: str = "accuracy", chance: float | None = None,
                       title: str = "Zero-shot accuracy", ylabel: str = "accuracy"):
    """Grouped bars: one group per outer key (e.g. test set), one bar per inner key (e.g. prompt); returns the figure.

    >>> fig = plot_accuracy_bars({"seen": {"one": 0.5, "ensemble": 0.7}, "held out": {"one": 0.2, "ensemble": 0.4}})
    """
    if not results:
        raise ValueError("results is empty")
    groups = list(results)
    bars = list(dict.fromkeys(k for g in groups for k in results[g]))
    fig, ax = plt.subplots(figsize=(max(5, 1.8 * len(groups) * max(1, len(bars)) / 2), 3.6))
    width = 0.8 / len(bars)
    for j, b in enumerate(bars):
        vals = [results[g].get(b, np.nan) for g in groups]
        vals = [v[metric] if isinstance(v, dict) else v for v in vals]
        xs = np.arange(len(groups)) + (j - (len(bars) - 1) / 2) * width
        ax.bar(xs, vals, width=width, label=b)
        for x, v in zip(xs, vals):
            if np.isfinite(v):
                ax.text(x, v + 0.01, f"{v:.2f}", ha="center", fontsize=7)
    if chance is not None:
        ax.axhline(chance, color="grey", linestyle="--", linewidth=1, label=f"chance ({chance:.2f})")
    ax.set_xticks(range(len(groups)), groups)
    ax.set_ylim(0, 1.25)
    ax.set_ylabel(ylabel)
    ax.set_xlabel("test set")
    ax.set_title(title)
    ax.legend(fontsize=8, loc="upper center", ncol=len(bars) + (chance is not None), frameon=False)
    fig.tight_layout()
    return fig


def plot_photo_zero_shot(photos: Sequence[tuple[str, np.ndarray]], probs: torch.Tensor | None, labels: Sequence[str],
                         true_labels: Sequence[str] | None = None, top: int = 3, ncols: int = 4,
                         title: str = "Zero-shot predictions"):
    """Each photo with its ``top`` most probable labels (green when it is the true label); returns the figure.

    With ``probs=None`` only the photos and their names are shown.

    >>> fig = plot_photo_zero_shot([("x", np.zeros((8, 8, 3), np.uint8))], torch.tensor([[0.7, 0.3]]), ["a", "b"])
    """
    if not photos:
        raise ValueError("no photos to show")
    if probs is not None:
        probs = torch.as_tensor(probs).detach().float().cpu()
    if probs is not None and probs.shape != (len(photos), len(labels)):
        raise ValueError(f"probs {tuple(probs.shape)} must be (photos, labels) = ({len(photos)}, {len(labels)})")
    top = min(top, len(labels))
    ncols = max(1, min(ncols, len(photos)))
    nrows = int(np.ceil(len(photos) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.8 * ncols, 2.9 * nrows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for k, (name, img) in enumerate(photos):
        ax = axes.flat[k]
        ax.imshow(img)
        if probs is None:
            ax.set_title(name, fontsize=8)
            continue
        vals, idx = probs[k].topk(top)
        truth = true_labels[k] if true_labels is not None else None
        lines = [f"{labels[i]}: {v:.2f}" for v, i in zip(vals.tolist(), idx.tolist())]
        ok = truth is not None and labels[int(idx[0])] == truth
        ax.set_title(f"{name}\n" + "\n".join(lines), fontsize=8, color="green" if ok else "black")
    fig.suptitle(title)
    fig.tight_layout()
    return fig
