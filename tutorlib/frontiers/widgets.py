"""Lesson 13's widgets: an attention-pattern explorer and a DP-SGD privacy-budget explorer.

Drawing is done by plain functions (:func:`draw_attention_pattern`, :func:`draw_privacy_curve`) so it
can be tested without a browser; the widgets collect slider values, call them, and show the figure
plus a one-line summary that changes with every control.

>>> box = attention_explorer()
>>> box.explorer.controls["window"].value = 8
>>> box.explorer.last["window"], box.explorer.renders
(8, 2)
"""

from __future__ import annotations

import math
from typing import Any

import torch

from tutorlib.widgets import redraw

from .attention import block_layout_from_mask, block_sparse_mask, full_mask, mask_density, sliding_window_mask
from .privacy import dp_epsilon

__all__ = ["PATTERNS", "pattern_mask", "draw_attention_pattern", "attention_explorer", "AttentionExplorer",
           "draw_privacy_curve", "privacy_explorer", "PrivacyExplorer"]

PATTERNS = ("full", "sliding window", "block-sparse (BigBird)")


def pattern_mask(pattern: str, T: int, window: int, block: int, n_global: int = 1) -> torch.Tensor:
    """The causal token mask of ``pattern`` (one of :data:`PATTERNS`).

    >>> pattern_mask("sliding window", 6, 2, 2).sum().item()
    11
    """
    if pattern == "full":
        return full_mask(T)
    if pattern == "sliding window":
        return sliding_window_mask(T, window)
    if pattern == "block-sparse (BigBird)":
        return block_sparse_mask(T, block, local=max(1, math.ceil(window / block) - 1), n_global=n_global)
    raise ValueError(f"unknown pattern {pattern!r}: use one of {PATTERNS}")


def draw_attention_pattern(pattern: str, T: int, window: int, block: int, n_global: int = 1, ax: Any = None):
    """Draw the mask of ``pattern`` with its block grid; returns ``(figure, summary dict)``.

    The summary has ``density`` (pairs kept / T²), ``tiles`` (block tiles computed by the block-sparse
    kernel) and ``tiles_full`` (tiles of the dense causal mask).

    >>> import matplotlib; matplotlib.use("Agg")
    >>> fig, s = draw_attention_pattern("full", 16, 4, 4); s["tiles"] == s["tiles_full"] == 10
    True
    """
    import matplotlib.pyplot as plt

    m = pattern_mask(pattern, T, window, block, n_global)
    tiles = int(block_layout_from_mask(m, block).sum())
    tiles_full = int(block_layout_from_mask(full_mask(T), block).sum())
    summary = {"density": mask_density(m), "tiles": tiles, "tiles_full": tiles_full, "pairs": int(m.sum())}
    if ax is None:
        fig, ax = plt.subplots(figsize=(4.6, 4.2))
    else:
        fig = ax.figure
    ax.imshow(m.numpy(), cmap="Blues", interpolation="nearest")
    for b in range(block, T, block):
        ax.axhline(b - 0.5, color="0.8", lw=0.5)
        ax.axvline(b - 0.5, color="0.8", lw=0.5)
    ax.set_xlabel("key position j")
    ax.set_ylabel("query position i")
    ax.set_title(f"{pattern}: {summary['density']:.0%} of pairs, {tiles}/{tiles_full} tiles")
    return fig, summary


class _SliderExplorer:
    """Controls on the left, a status line beside them, the figure below; every change calls ``run()``.

    Subclasses build their controls and pass them to :meth:`_mount`; ``last`` keeps what the latest
    ``run()`` computed and ``renders`` counts the redraws.
    """

    controls: dict[str, Any]

    def _mount(self, controls: dict[str, Any]) -> None:
        import ipywidgets as w

        self.controls = controls
        self.output = w.Output()
        self.status = w.HTML()
        self.last: dict[str, Any] = {}
        self.renders = 0
        for ctl in controls.values():
            ctl.observe(lambda _c: self.run(), names="value")
        self.box = w.VBox([w.HBox([w.VBox(list(controls.values())), self.status]), self.output])
        self.box.add_class("tutorlib-widget")
        self.box.explorer = self  # type: ignore[attr-defined]
        self.run()

    def values(self) -> dict[str, Any]:
        """The controls' current values, by name."""
        return {k: c.value for k, c in self.controls.items()}

    def run(self) -> Any:  # pragma: no cover - every subclass draws
        raise NotImplementedError


class AttentionExplorer(_SliderExplorer):
    """The widget behind :func:`attention_explorer`: ``controls``, ``output``, ``status``, ``last``, ``renders``."""

    def __init__(self, pattern: str = "sliding window", T: int = 64, window: int = 12, block: int = 8) -> None:
        import ipywidgets as w

        st = {"description_width": "90px"}
        self._mount({
            "window": w.IntSlider(value=window, min=1, max=64, description="window", style=st, continuous_update=False),
            "pattern": w.Dropdown(options=list(PATTERNS), value=pattern, description="pattern", style=st),
            "T": w.IntSlider(value=T, min=16, max=256, step=16, description="sequence T", style=st, continuous_update=False),
            "block": w.IntSlider(value=block, min=2, max=32, description="block", style=st, continuous_update=False),
            "n_global": w.IntSlider(value=1, min=0, max=4, description="global blocks", style=st, continuous_update=False),
        })

    def run(self) -> dict[str, Any]:
        """Redraw for the current controls; returns the summary."""

        vals = self.values()
        fig, s = draw_attention_pattern(**vals)
        redraw(self.output, fig)
        self.renders += 1
        self.last = dict(vals, **s)
        self.status.value = (f"<b>{vals['pattern']}</b>, window {vals['window']}, T = {vals['T']}<br>"
                             f"pairs kept: {s['pairs']} ({s['density']:.1%})<br>"
                             f"block-sparse tiles: {s['tiles']} of {s['tiles_full']} "
                             f"({s['tiles'] / s['tiles_full']:.0%} of the dense work)")
        return s


def attention_explorer(**kw: Any):
    """A widget: choose a pattern, window, length, block size and global blocks; see the mask and its cost.

    Returns the top container (``box.explorer`` is the :class:`AttentionExplorer`).
    """
    return AttentionExplorer(**kw).box


def draw_privacy_curve(noise_multiplier: float, sample_rate: float, steps: int, delta: float = 1e-5, ax: Any = None):
    """Plot ε spent against DP-SGD steps (integer RDP orders 2–63); returns ``(figure, final ε)``.

    >>> import matplotlib; matplotlib.use("Agg")
    >>> _, eps = draw_privacy_curve(1.0, 0.01, 100); eps > 0
    True
    """
    import matplotlib.pyplot as plt

    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    orders = list(range(2, 64))
    xs = sorted({max(1, int(steps * f)) for f in (0.05, 0.1, 0.2, 0.35, 0.5, 0.7, 0.85, 1.0)})
    eps = [dp_epsilon(sample_rate, noise_multiplier, s, delta, orders) for s in xs]
    if ax is None:
        fig, ax = plt.subplots(figsize=(5, 3.4))
    else:
        fig = ax.figure
    ax.plot(xs, eps, marker="o")
    ax.set_xlabel("DP-SGD steps")
    ax.set_ylabel(f"ε at δ = {delta:g}")
    ax.set_title(f"privacy spent: σ = {noise_multiplier:g}, q = {sample_rate:g}")
    ax.grid(alpha=0.3)
    return fig, eps[-1]


class PrivacyExplorer(_SliderExplorer):
    """The widget behind :func:`privacy_explorer`."""

    def __init__(self, noise_multiplier: float = 1.0, sample_rate: float = 0.05, steps: int = 500) -> None:
        import ipywidgets as w

        st = {"description_width": "110px"}
        self._mount({
            "noise_multiplier": w.FloatSlider(value=noise_multiplier, min=0.3, max=4.0, step=0.1, description="noise σ",
                                              style=st, continuous_update=False),
            "sample_rate": w.FloatLogSlider(value=sample_rate, base=10, min=-3, max=0, step=0.1, description="sample rate q",
                                            style=st, continuous_update=False, readout_format=".3f"),
            "steps": w.IntSlider(value=steps, min=10, max=5000, step=10, description="steps", style=st,
                                 continuous_update=False),
        })

    def run(self) -> float:
        """Recompute ε for the current controls and redraw; returns the final ε."""

        vals = self.values()
        fig, eps = draw_privacy_curve(**vals)
        redraw(self.output, fig)
        self.renders += 1
        self.last = dict(vals, epsilon=eps)
        self.status.value = (f"after {vals['steps']} steps (≈ {vals['steps'] * vals['sample_rate']:.1f} epochs):"
                             f"<br><b>ε = {eps:.2f}</b> at δ = 1e-5")
        return eps


def privacy_explorer(**kw: Any):
    """A widget: noise multiplier, sampling rate and steps → the ε the RDP accountant charges.

    Returns the top container (``box.explorer`` is the :class:`PrivacyExplorer`).
    """
    return PrivacyExplorer(**kw).box
