"""The pruning explorer: a sparsity slider that prunes a copy of the model, re-measures it and redraws.

The work happens in :func:`prune_and_measure` (a plain function, testable without a browser);
:class:`SparsityExplorer` wires it to a slider, a method dropdown and an ``Output`` with the plots.

>>> import torch
>>> from torch import nn
>>> model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 2))
>>> r = prune_and_measure(model, 0.5, "global", evaluate=lambda m: 1.0)
>>> round(r["sparsity_measured"], 2), r["accuracy"]
(0.5, 1.0)
"""

from __future__ import annotations

import copy
from typing import Any, Callable, Iterable, Sequence

import torch
from torch import nn

from tutorlib.compress.measure import count_weights, latency_ms
from tutorlib.widgets import redraw
from tutorlib.compress.prune import (DEFAULT_TYPES, bert_layers, layer_sparsities, make_permanent, prune_ffn_neurons,
                                     prune_magnitude, shrink_small_cnn, weight_sparsity)

__all__ = ["METHODS", "prune_and_measure", "SparsityExplorer", "sparsity_explorer"]

#: What the dropdown offers: label → method key.
METHODS = {"global magnitude (unstructured)": "global", "layer-wise magnitude (unstructured)": "layer",
           "remove neurons/channels (structured)": "structured"}


def _structured(model: nn.Module, fraction_removed: float) -> nn.Module:
    keep = max(1.0 - fraction_removed, 1e-6)
    if hasattr(model, "features") and hasattr(model, "classifier"):
        return shrink_small_cnn(model, keep)
    try:
        bert_layers(model)
    except TypeError as exc:
        raise TypeError(f"structured pruning here supports SmallCNN and BERT-style models, not {type(model).__name__}") from exc
    return prune_ffn_neurons(copy.deepcopy(model), keep)


def prune_and_measure(model: nn.Module, sparsity: float, method: str, evaluate: Callable[[nn.Module], float],
                      example: Any = None, types: Sequence[type[nn.Module]] = DEFAULT_TYPES, skip: Iterable[str] = (),
                      repeats: int = 5) -> dict[str, Any]:
    """Prune a copy of ``model`` to ``sparsity`` with ``method`` ('global', 'layer', 'structured') and measure it.

    Returns accuracy (from ``evaluate(pruned_model)``), the measured fraction of zero weights, the
    remaining and non-zero parameter counts, per-layer sparsity and, with ``example``, the latency.
    The original model is not changed.

    >>> r = prune_and_measure(nn.Linear(10, 10), 0.3, "layer", evaluate=lambda m: 0.5)
    >>> round(r["sparsity_measured"], 1)
    0.3
    """
    if method not in ("global", "layer", "structured"):
        raise ValueError(f"method must be 'global', 'layer' or 'structured', got {method!r}")
    if not 0.0 <= sparsity < 1.0:
        raise ValueError(f"sparsity must be in [0, 1), got {sparsity}")
    skip = tuple(skip)
    if method == "structured":
        pruned = _structured(model, sparsity) if sparsity > 0 else copy.deepcopy(model)
    else:
        pruned = copy.deepcopy(model)
        if sparsity > 0:
            prune_magnitude(pruned, sparsity, scope=method, types=types, skip=skip)
            make_permanent(pruned)
    pruned.eval()
    total, nonzero = count_weights(pruned)
    result: dict[str, Any] = {
        "sparsity": float(sparsity), "method": method, "accuracy": float(evaluate(pruned)),
        "params": total, "nonzero": nonzero,
        "sparsity_measured": weight_sparsity(pruned, types, skip),
        "layers": layer_sparsities(pruned, types, skip),
    }
    if example is not None:
        result["latency_ms"] = latency_ms(pruned, example, repeats=repeats, warmup=1)
    return result


class SparsityExplorer:
    """A slider (sparsity), a dropdown (method) and a plot of accuracy against sparsity for what you tried.

    ``evaluate(model) -> accuracy`` should be quick (a small validation set). Every change prunes
    a fresh copy, re-measures and redraws; ``history`` keeps every result.

    >>> ex = SparsityExplorer(nn.Linear(4, 4), evaluate=lambda m: 1.0)
    >>> ex.slider.value = 0.5            # the same as moving the slider
    >>> ex.history[-1]["sparsity"]
    0.5
    """

    def __init__(self, model: nn.Module, evaluate: Callable[[nn.Module], float], example: Any = None,
                 types: Sequence[type[nn.Module]] = DEFAULT_TYPES, skip: Iterable[str] = (),
                 methods: Sequence[str] | None = None, max_sparsity: float = 0.95, step: float = 0.05,
                 title: str = "Pruning explorer") -> None:
        import ipywidgets as widgets

        if not callable(evaluate):
            raise TypeError("evaluate must be a function model -> accuracy")
        self.model, self.evaluate, self.example = model, evaluate, example
        self.types, self.skip, self.title = tuple(types), tuple(skip), title
        labels = [k for k, v in METHODS.items() if methods is None or v in methods]
        if not labels:
            raise ValueError(f"methods must be a subset of {sorted(METHODS.values())}")
        self.history: list[dict[str, Any]] = []
        self.baseline = float(evaluate(model))
        self.slider = widgets.FloatSlider(value=0.0, min=0.0, max=max_sparsity, step=step, description="sparsity",
                                          continuous_update=False, readout_format=".2f")
        self.dropdown = widgets.Dropdown(options=[(k, METHODS[k]) for k in labels], value=METHODS[labels[0]],
                                         description="method", layout=widgets.Layout(width="420px"))
        self.info = widgets.HTML()
        self.out = widgets.Output()
        self.slider.observe(self._on_change, names="value")
        self.dropdown.observe(self._on_change, names="value")
        self.box = widgets.VBox([widgets.HBox([self.slider, self.dropdown]), self.info, self.out])
        self.box.add_class("tutorlib-widget")

    def _on_change(self, _change: Any) -> None:
        self.update()

    def update(self, sparsity: float | None = None, method: str | None = None) -> dict[str, Any]:
        """Prune at ``sparsity`` with ``method`` (default: the widgets' values), record, redraw; returns the result."""

        s = float(self.slider.value if sparsity is None else sparsity)
        meth = self.dropdown.value if method is None else method
        result = prune_and_measure(self.model, s, meth, self.evaluate, self.example, self.types, self.skip)
        self.history.append(result)
        latency = f" · latency {result['latency_ms']:.1f} ms" if "latency_ms" in result else ""
        self.info.value = (f"<b>{meth}</b> at {s:.0%}: accuracy <b>{result['accuracy']:.1%}</b> "
                           f"(dense {self.baseline:.1%}) · weights zero {result['sparsity_measured']:.1%} · "
                           f"parameters {result['params']:,} ({result['nonzero']:,} non-zero){latency}")
        self.figure = self.draw(result)
        redraw(self.out, self.figure)
        return result

    def draw(self, current: dict[str, Any]):
        """The figure: accuracy vs sparsity per method tried (left), per-layer sparsity now (right)."""
        import matplotlib.pyplot as plt

        fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 3.6))
        for meth in dict.fromkeys(r["method"] for r in self.history):
            pts = sorted({r["sparsity"]: r["accuracy"] for r in self.history if r["method"] == meth}.items())
            ax.plot([0.0] + [p[0] for p in pts], [self.baseline] + [p[1] for p in pts], "-o", label=meth)
        ax.scatter([current["sparsity"]], [current["accuracy"]], s=140, facecolors="none", edgecolors="k",
                   zorder=5, label="current")
        ax.axhline(self.baseline - 0.01, ls=":", color="gray", label="dense − 1 point")
        ax.set_xlabel("fraction of weights (or neurons/channels) removed")
        ax.set_ylabel("accuracy")
        ax.set_title(self.title)
        ax.legend(fontsize=8)
        names = list(current["layers"])
        ax2.barh(range(len(names)), [current["layers"][n] for n in names])
        ax2.set_yticks(range(len(names)), [n[-28:] for n in names], fontsize=6 if len(names) > 12 else 8)
        ax2.set_xlim(0, 1)
        ax2.set_xlabel("fraction of zero weights in the layer")
        ax2.set_title("Per-layer sparsity" + (" (structured: removed, not zeroed)" if current["method"] == "structured" else ""))
        fig.tight_layout()
        return fig

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.box)


def sparsity_explorer(model: nn.Module, evaluate: Callable[[nn.Module], float], example: Any = None,
                      **kwargs: Any):
    """Build a :class:`SparsityExplorer`, draw its first view (dense) and return the widget container.

    >>> box = sparsity_explorer(nn.Linear(4, 4), evaluate=lambda m: 1.0)
    >>> "tutorlib-widget" in box._dom_classes
    True
    """
    explorer = SparsityExplorer(model, evaluate, example, **kwargs)
    explorer.update()
    explorer.box.explorer = explorer  # keep a handle for scripting: box.explorer.update(0.5)
    return explorer.box
