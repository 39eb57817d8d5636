"""Plots of lesson 08: the 2-D latent space, the β sweep, GAN training curves, class histograms, score bars.

Every figure has labelled axes and a title.

>>> import matplotlib; matplotlib.use("Agg")
>>> import torch
>>> fig = plot_latent_2d(torch.randn(20, 2), torch.arange(20) % 10)
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch

__all__ = ["image_mosaic", "plot_latent_2d", "plot_latent_manifold", "plot_beta_sweep", "plot_gan_runs", "plot_class_histograms",
           "plot_scores", "smooth"]


def smooth(values: Sequence[float], window: int = 20) -> np.ndarray:
    """Moving average over ``window`` steps (shorter at the start), for noisy GAN losses.

    >>> smooth([0, 2, 4], window=2).tolist()
    [0.0, 1.0, 3.0]
    """
    v = np.asarray(values, dtype=float)
    if len(v) == 0:
        return v
    window = max(1, min(window, len(v)))
    c = np.cumsum(np.insert(v, 0, 0.0))
    out = np.empty_like(v)
    for i in range(len(v)):
        lo = max(0, i - window + 1)
        out[i] = (c[i + 1] - c[lo]) / (i + 1 - lo)
    return out


def image_mosaic(images: torch.Tensor, ncols: int = 8, title: str = "Images", row_labels: Sequence[str] | None = None,
                 col_labels: Sequence[str] | None = None, xlabel: str = "", ylabel: str = "", pad: int = 1,
                 scale: float = 0.55, ax: Any = None):
    """Many small images as ONE picture (one ``imshow``: far faster than a subplot per image), with optional
    labels for the rows and columns.

    >>> fig = image_mosaic(torch.rand(6, 3, 8, 8), ncols=3, row_labels=["a", "b"], col_labels=["x", "y", "z"])
    """
    imgs = images.detach().float().cpu().clamp(0, 1)
    if imgs.dim() != 4:
        raise ValueError(f"expected images (N, C, H, W), got {tuple(imgs.shape)}")
    n, c, h, w = imgs.shape
    if c not in (1, 3):
        raise ValueError(f"images must have 1 or 3 channels, got {c}")
    ncols = max(1, min(ncols, n))
    nrows = -(-n // ncols)
    canvas = torch.ones(c, nrows * (h + pad) + pad, ncols * (w + pad) + pad)
    for k in range(n):
        r, q = divmod(k, ncols)
        y, x = pad + r * (h + pad), pad + q * (w + pad)
        canvas[:, y:y + h, x:x + w] = imgs[k]
    if ax is None:
        cell = scale * (max(h, w, 8) / 8) ** 0.5  # inches per image: 8 px → scale, 32 px → 2·scale
        _, ax = plt.subplots(figsize=(max(3.0, cell * ncols + (2.2 if row_labels else 0.4)),
                                      max(1.6, cell * nrows + 0.8)))
    if c == 1:
        ax.imshow(canvas[0].numpy(), cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
    else:
        ax.imshow(canvas.permute(1, 2, 0).numpy(), interpolation="nearest")
    ax.set_xticks([pad + q * (w + pad) + w / 2 for q in range(ncols)] if col_labels else [])
    if col_labels:
        ax.set_xticklabels(list(col_labels)[:ncols], fontsize=7)
    ax.set_yticks([pad + r * (h + pad) + h / 2 for r in range(nrows)] if row_labels else [])
    if row_labels:
        ax.set_yticklabels(list(row_labels)[:nrows], fontsize=7)
    ax.tick_params(length=0)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.figure.tight_layout()
    return ax.figure


def plot_latent_2d(mu: torch.Tensor, labels: torch.Tensor | None = None, title: str = "VAE latent space", ax: Any = None):
    """Scatter of 2-D posterior means coloured by class.

    >>> fig = plot_latent_2d(torch.zeros(3, 2))
    """
    if mu.dim() != 2 or mu.shape[1] != 2:
        raise ValueError(f"expected 2-D latent codes (N, 2), got {tuple(mu.shape)}: train a VAE with latent_dim=2")
    if ax is None:
        _, ax = plt.subplots(figsize=(5.5, 4.5))
    pts = mu.detach().cpu().numpy()
    sc = ax.scatter(pts[:, 0], pts[:, 1], c=None if labels is None else labels.cpu().numpy(), cmap="tab10", s=8,
                    vmin=-0.5, vmax=9.5)
    if labels is not None:
        ax.figure.colorbar(sc, ax=ax, ticks=range(10), label="digit class")
    ax.set_xlabel("z[0] (posterior mean)")
    ax.set_ylabel("z[1] (posterior mean)")
    ax.set_title(title)
    ax.figure.tight_layout()
    return ax.figure


def plot_latent_manifold(decode: Callable[[torch.Tensor], torch.Tensor], extent: float = 2.5, n: int = 12,
                         title: str = "Decoded 2-D latent grid", ax: Any = None):
    """Decode an ``n``×``n`` grid of 2-D latent points in [-extent, extent]² into one mosaic.

    >>> from tutorlib.generative.vae import ConvVAE
    >>> fig = plot_latent_manifold(ConvVAE(latent_dim=2).decode, n=3)
    """
    lin = torch.linspace(-extent, extent, n)
    zz = torch.stack(torch.meshgrid(lin, lin.flip(0), indexing="xy"), -1).reshape(-1, 2)
    with torch.no_grad():
        imgs = decode(zz).cpu()
    if imgs.shape[1] != 1:
        raise ValueError("the manifold plot is for single-channel images")
    h, w = imgs.shape[-2:]
    mosaic = imgs[:, 0].reshape(n, n, h, w).permute(0, 2, 1, 3).reshape(n * h, n * w).numpy()
    if ax is None:
        _, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.imshow(mosaic, cmap="gray_r", extent=(-extent, extent, -extent, extent))
    ax.set_xlabel("z[0]")
    ax.set_ylabel("z[1]")
    ax.set_title(title)
    ax.figure.tight_layout()
    return ax.figure


def plot_beta_sweep(rows: Sequence[Mapping[str, Any]], title: str = "β-VAE: reconstruction vs KL"):
    """Left: reconstruction against KL per β (the trade-off curve). Right: active latent dimensions per β.

    >>> fig = plot_beta_sweep([{"beta": 1, "recon": 20, "kl": 10, "active_dims": 5}, {"beta": 4, "recon": 25, "kl": 5, "active_dims": 3}])
    """
    if not rows:
        raise ValueError("no sweep results to plot")
    betas = [r["beta"] for r in rows]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.8))
    a1.plot([r["kl"] for r in rows], [r["recon"] for r in rows], "-o")
    for r in rows:
        a1.annotate(f"β={r['beta']:g}", (r["kl"], r["recon"]), textcoords="offset points", xytext=(5, 4), fontsize=8)
    a1.set_xlabel("KL(q(z|x) ‖ N(0, I)) on val (nats / image)")
    a1.set_ylabel("reconstruction NLL on val (nats / image)")
    a1.set_title(title)
    a2.bar([f"{b:g}" for b in betas], [r["active_dims"] for r in rows], color="C1")
    a2.set_xlabel("β")
    a2.set_ylabel("active latent dims (KL > 0.01 nats)")
    a2.set_title("How many latent dimensions are used")
    fig.tight_layout()
    return fig


def plot_gan_runs(runs: Mapping[str, Any], window: int = 20, title: str = "GAN training"):
    """D loss, the generator's −log D(G(z)) and D's mean outputs on real and fake images, per step, for several runs.

    ``runs`` maps a name to a :class:`~tutorlib.generative.gan.GANRun` (or anything with ``.series``).

    >>> from tutorlib.generative.gan import GANRun
    >>> from tutorlib.train import History
    >>> fig = plot_gan_runs({"a": GANRun(History(), [{"d_loss": 1.0, "g_fool": 1.0, "d_real": 0.5, "d_fake": 0.5}])})
    """
    if not runs:
        raise ValueError("no runs to plot")
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    for i, (name, run) in enumerate(runs.items()):
        color = f"C{i}"
        axes[0].plot(smooth(run.series("d_loss"), window), color=color, label=name)
        axes[1].plot(smooth(run.series("g_fool"), window), color=color, label=name)
        axes[2].plot(smooth(run.series("d_real"), window), color=color, label=f"{name}: D(real)")
        axes[2].plot(smooth(run.series("d_fake"), window), color=color, ls="--", label=f"{name}: D(fake)")
    for ax, ylabel, sub in zip(axes, ("discriminator loss", "−log D(G(z)) on the generator's fakes", "mean D output"),
                               ("D loss", "G loss", "D's confidence (solid real, dashed fake)")):
        ax.set_xlabel("training step")
        ax.set_ylabel(ylabel)
        ax.set_title(f"{title}: {sub}", fontsize=10)
    axes[0].legend(fontsize=8)
    axes[2].legend(fontsize=6, ncol=2)
    fig.tight_layout()
    return fig


def plot_class_histograms(counts: Mapping[str, Sequence[int]], title: str = "Which digits does each generator draw?"):
    """Grouped bars: for each named sample set, how many samples the classifier puts in each class.

    >>> fig = plot_class_histograms({"real": [5] * 10, "collapsed": [0] * 9 + [50]})
    """
    if not counts:
        raise ValueError("no histograms to plot")
    k = len(counts)
    n_classes = len(next(iter(counts.values())))
    width = 0.8 / k
    fig, ax = plt.subplots(figsize=(10, 3.6))
    for i, (name, c) in enumerate(counts.items()):
        c = np.asarray(c, dtype=float)
        ax.bar(np.arange(n_classes) + i * width - 0.4 + width / 2, c / c.sum(), width, label=name)
    ax.axhline(1 / n_classes, color="k", ls=":", lw=1, label="uniform")
    ax.set_xticks(range(n_classes))
    ax.set_xlabel("class predicted by the digit classifier")
    ax.set_ylabel("fraction of samples")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_scores(scores: Mapping[str, Mapping[str, Any]], key: str = "fd", floor: float | None = None,
                title: str = "Fréchet distance in the classifier's feature space (lower is better)",
                ylabel: str = "Fréchet distance"):
    """Horizontal bars of one score per named sample set, with the real-data floor as a line.

    >>> fig = plot_scores({"a": {"fd": 3.0, "n_modes": 10}, "b": {"fd": 9.0, "n_modes": 6}}, floor=1.0)
    """
    if not scores:
        raise ValueError("no scores to plot")
    names = list(scores)
    vals = [float(scores[n][key]) for n in names]
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(names) + 1.4))
    ax.barh(names, vals, color=[f"C{i}" for i in range(len(names))])
    for i, n in enumerate(names):
        extra = f"  ({scores[n]['n_modes']} classes)" if "n_modes" in scores[n] else ""
        ax.text(vals[i], i, f" {vals[i]:.1f}{extra}", va="center", fontsize=8)
    if floor is not None:
        ax.axvline(floor, color="k", ls=":", label=f"real held-out images: {floor:.1f}")
        ax.legend(fontsize=8, loc="lower right")
    ax.invert_yaxis()
    ax.set_xlabel(ylabel)
    ax.set_ylabel("sample set")
    ax.set_title(title)
    fig.tight_layout()
    return fig
