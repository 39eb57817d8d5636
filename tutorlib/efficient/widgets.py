"""Loss-scale explorer: where a model's real gradient values fall in a number format's range, at any loss scale.

:func:`plot_underflow` is the plain function (a histogram of ``log2 |g · scale|`` with the format's
underflow and overflow limits marked); :class:`LossScaleExplorer` wraps it in ipywidgets — a format
dropdown and a ``log2(scale)`` slider — with the drawing in :meth:`LossScaleExplorer.update` so
tests can drive it.

>>> ex = LossScaleExplorer(torch.logspace(-10, -2, 1000))
>>> ex.scale.value = 16; round(ex.last["underflow"], 3)
0.0
"""

from __future__ import annotations

import math
from typing import Any

import torch

from tutorlib.efficient.formats import FORMATS, get_format, overflow_fraction, underflow_fraction
from tutorlib.widgets import redraw

__all__ = ["plot_underflow", "LossScaleExplorer", "loss_scale_explorer"]


def plot_underflow(values: torch.Tensor, fmt: str = "fp16", log2_scale: int = 0, ax: Any = None,
                   title: str = "Gradient values vs the number format") -> dict[str, float]:
    """Histogram of ``log2 |values · 2^log2_scale|`` (non-zero values) with ``fmt``'s limits; returns the fractions lost.

    The shaded band on the left is flushed to 0 when stored in ``fmt`` (below half the smallest
    subnormal), the band on the right overflows to inf.

    >>> import matplotlib; matplotlib.use("Agg")
    >>> sorted(plot_underflow(torch.tensor([1e-9, 1e-3]), "fp16", 0))
    ['log2_scale', 'overflow', 'underflow']
    """
    import matplotlib.pyplot as plt

    f = get_format(fmt)
    v = values.detach().float().flatten()
    v = v[v != 0]
    if v.numel() == 0:
        raise ValueError("values has no non-zero entries to plot")
    if not -64 <= log2_scale <= 64:
        raise ValueError(f"log2_scale must be in [-64, 64], got {log2_scale}")
    scale = 2.0**log2_scale
    logs = torch.log2(v.abs().double() * scale)
    under = underflow_fraction(v, f, scale)
    over = overflow_fraction(v, f, scale)
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 3.2))
    lo_limit = math.log2(f.smallest_subnormal) - 1
    hi_limit = math.log2(f.max)
    left = min(float(logs.min()), lo_limit) - 2
    right = max(float(logs.max()), min(hi_limit, 40.0)) + 2
    ax.hist(logs.numpy(), bins=120, range=(left, right), color="tab:blue", alpha=0.8)
    ax.axvspan(left, lo_limit, color="tab:red", alpha=0.15, label=f"flushed to 0 in {f.name}")
    ax.axvline(math.log2(f.smallest_normal), color="tab:orange", ls="--", lw=1, label="smallest normal")
    if hi_limit < right:
        ax.axvspan(hi_limit, right, color="tab:purple", alpha=0.15, label=f"overflow to inf in {f.name}")
    ax.set_xlim(left, right)
    ax.set_xlabel(f"log2 |gradient × 2^{log2_scale}|")
    ax.set_ylabel("number of values")
    ax.set_title(f"{title}: {f.name}, scale 2^{log2_scale} → {under:.3%} underflow, {over:.3%} overflow")
    ax.legend(loc="upper left", fontsize=8)
    return {"underflow": under, "overflow": over, "log2_scale": float(log2_scale)}


class LossScaleExplorer:
    """A format dropdown and a loss-scale slider over a fixed tensor of gradient values.

    :attr:`last` holds the fractions of the last drawing (``underflow``, ``overflow``,
    ``log2_scale``), :attr:`last_figure` its matplotlib figure, :attr:`box` the widget.

    >>> ex = LossScaleExplorer(torch.tensor([1e-9, 1e-3])); ex.fmt.value = "bf16"; ex.last["underflow"]
    0.0
    """

    def __init__(self, values: torch.Tensor, fmt: str = "fp16", log2_scale: int = 0, max_log2_scale: int = 24,
                 title: str = "Gradient values vs the number format") -> None:
        import ipywidgets as w

        if not isinstance(values, torch.Tensor):
            raise TypeError(f"values must be a tensor of gradient values, got {type(values).__name__}")
        get_format(fmt)
        v = values.detach().float().flatten().cpu()
        if int((v != 0).sum()) == 0:
            raise ValueError("values has no non-zero entries: pass real gradients (collect_gradients(model))")
        if v.numel() > 2_000_000:  # a fixed random subsample keeps redraws fast
            idx = torch.randperm(v.numel(), generator=torch.Generator().manual_seed(0))[:2_000_000]
            v = v[idx]
        self.values, self.title = v, title
        self.fmt = w.Dropdown(options=list(FORMATS), value=fmt, description="format")
        self.scale = w.IntSlider(value=log2_scale, min=0, max=max_log2_scale, step=1, description="log2(scale)",
                                 continuous_update=False)
        self.out = w.Output()
        self.last: dict[str, float] = {}
        self.last_figure: Any = None
        self.box = w.VBox([w.HBox([self.fmt, self.scale]), self.out])
        self.box.add_class("tutorlib-widget")
        self.fmt.observe(lambda _: self.update(), names="value")
        self.scale.observe(lambda _: self.update(), names="value")
        self.update()

    def update(self) -> dict[str, float]:
        """Redraw for the current dropdown and slider values; returns (and stores) the fractions."""
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(8, 3.2))
        self.last = plot_underflow(self.values, self.fmt.value, int(self.scale.value), ax=ax, title=self.title)
        self.last_figure = fig
        redraw(self.out, fig)
        return self.last


def loss_scale_explorer(values: torch.Tensor, fmt: str = "fp16", log2_scale: int = 0) -> Any:
    """The explorer's widget box, ready to display (keep the :class:`LossScaleExplorer` if you need its state).

    >>> box = loss_scale_explorer(torch.tensor([1e-6, 1e-3])); "tutorlib-widget" in box._dom_classes
    True
    """
    return LossScaleExplorer(values, fmt, log2_scale).box
