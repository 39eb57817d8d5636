"""Two explorers: type a sentence and see each method's attribution; pick a layer and head and see its attention map.

The drawing logic lives in plain methods (:meth:`ExplainWidget.update`,
:meth:`AttentionViewer.update`, :func:`plot_attention_map`) so tests can drive them by setting
widget values, as a learner would by clicking.

>>> from tutorlib.explain.text import load_review_classifier
>>> model, tok = load_review_classifier()
>>> viewer = AttentionViewer(model, tok, "Not bad at all.")
>>> viewer.layer.value = 6; viewer.head.value = 3; viewer.last_key
(6, 3)
"""

from __future__ import annotations

import time
from typing import Any, Sequence

import numpy as np
import torch

from tutorlib.explain.text import METHODS, attention_maps, explain_text
from tutorlib.widgets import redraw

__all__ = ["ExplainWidget", "explain_widget", "AttentionViewer", "attention_viewer", "plot_attention_map"]

DEFAULT_KWARGS: dict[str, dict[str, Any]] = {"shap": {"max_evals": 200}, "lime": {"num_samples": 200},
                                              "ig": {"steps": 24}, "attention": {}}


def plot_attention_map(tokens: Sequence[str], att: torch.Tensor, layer: int, head: int | str = "mean", ax: Any = None) -> Any:
    """Heatmap of one attention map: rows = query tokens, columns = key tokens; ``layer`` counts from 1.

    ``att`` is (layers, heads, T, T) from :func:`~tutorlib.explain.text.attention_maps`; ``head`` an
    index or ``"mean"`` (average over heads). Returns the figure.

    >>> fig = plot_attention_map(["[CLS]", "hi", "[SEP]"], torch.full((2, 2, 3, 3), 1 / 3), layer=1, head=0)
    >>> fig.axes[0].get_xlabel()
    'key token (attended to)'
    """
    import matplotlib.pyplot as plt

    if att.dim() != 4 or att.shape[-1] != len(tokens):
        raise ValueError(f"att must be (layers, heads, T, T) with T = {len(tokens)} tokens, got {tuple(att.shape)}")
    L, H = att.shape[:2]
    if not 1 <= layer <= L:
        raise ValueError(f"layer must be in 1..{L}, got {layer}")
    if head == "mean":
        m = att[layer - 1].mean(0)
    elif isinstance(head, (int, np.integer)) and 0 <= head < H:
        m = att[layer - 1, int(head)]
    else:
        raise ValueError(f"head must be 'mean' or an index in 0..{H - 1}, got {head!r}")
    if ax is None:
        size = 0.32 * len(tokens) + 2.5
        fig, ax = plt.subplots(figsize=(size + 1, size))
    else:
        fig = ax.figure
    im = ax.imshow(m.numpy(), cmap="viridis", vmin=0, vmax=float(m.max()))
    ax.set_xticks(range(len(tokens)), tokens, rotation=90, fontsize=8)
    ax.set_yticks(range(len(tokens)), tokens, fontsize=8)
    ax.set_xlabel("key token (attended to)")
    ax.set_ylabel("query token")
    ax.set_title(f"layer {layer}, head {head}" + (" (mean of heads)" if head == "mean" else ""))
    fig.colorbar(im, ax=ax, fraction=0.046, label="attention weight")
    return fig


class ExplainWidget:
    """Type a sentence, pick a method, press *Explain*: the attribution appears as coloured tokens.

    Changing the method re-explains at once; editing the text waits for the button (SHAP and LIME
    take seconds). :attr:`last` holds the latest :class:`~tutorlib.explain.attribution.Attribution`.

    >>> from tutorlib.explain.text import load_review_classifier
    >>> model, tok = load_review_classifier()
    >>> w = ExplainWidget(model, tok, "Great food!", methods=("ig", "attention"))
    >>> w.method.value = "attention"; w.last.method
    'attention'
    """

    def __init__(self, model: torch.nn.Module, tokenizer: Any, text: str = "The room was clean but the staff were rude.",
                 methods: Sequence[str] = METHODS, method_kwargs: dict[str, dict[str, Any]] | None = None,
                 method: str | None = None) -> None:
        import ipywidgets as w

        unknown = [m for m in methods if m not in METHODS]
        if unknown or not methods:
            raise ValueError(f"methods must be a non-empty subset of {METHODS}, got {list(methods)}")
        self.model, self.tokenizer = model, tokenizer
        self.kwargs = {m: dict(DEFAULT_KWARGS.get(m, {}), **(method_kwargs or {}).get(m, {})) for m in methods}
        self.text = w.Textarea(value=text, description="sentence", layout=w.Layout(width="95%", height="60px"))
        self.method = w.Dropdown(options=list(methods), value=method or methods[0], description="method")
        self.button = w.Button(description="Explain", button_style="primary", icon="search")
        self.status = w.HTML()
        self.out = w.Output()
        self.last = None
        self.renders = 0
        self.method.observe(lambda _c: self.update(), names="value")
        self.button.on_click(lambda _b: self.update())
        self.box = w.VBox([w.HTML("<b>Explain a prediction</b>: red tokens push towards the predicted class, "
                                  "blue against (attention: orange, unsigned)"),
                           self.text, w.HBox([self.method, self.button, self.status]), self.out])
        self.box.add_class("tutorlib-widget")
        self.update()

    def explain(self) -> Any:
        """Explain the current text with the current method and return the Attribution (no drawing)."""
        m = self.method.value
        return explain_text(self.model, self.tokenizer, self.text.value, method=m, **self.kwargs[m])

    def update(self) -> None:
        """Re-explain and redraw into :attr:`out`; errors (an empty sentence) are shown, not raised."""
        from IPython.display import HTML

        start = time.perf_counter()
        self.status.value = "<i>explaining…</i>"
        try:
            attr = self.explain()
        except (ValueError, TypeError) as exc:
            self.status.value = f"<span style='color:#b00'>{exc}</span>"
            return
        self.last = attr
        self.renders += 1
        self.status.value = f"{time.perf_counter() - start:.1f} s"
        redraw(self.out, HTML(attr.to_html()))

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.box)


def explain_widget(model: torch.nn.Module, tokenizer: Any, text: str = "The room was clean but the staff were rude.",
                   methods: Sequence[str] = METHODS, **kw: Any) -> ExplainWidget:
    """Build an :class:`ExplainWidget` (display it in a notebook cell).

    >>> from tutorlib.explain.text import load_review_classifier
    >>> model, tok = load_review_classifier()
    >>> explain_widget(model, tok, "Fine.", methods=("attention",)).last.tokens
    ['fine', '.']
    """
    return ExplainWidget(model, tokenizer, text, methods, **kw)


class AttentionViewer:
    """Pick a layer (slider) and a head (dropdown, or the mean of heads) and see that attention map for a sentence.

    :attr:`last_key` is the (layer, head) last drawn; :attr:`last_figure` its figure.

    >>> from tutorlib.explain.text import load_review_classifier
    >>> model, tok = load_review_classifier()
    >>> v = AttentionViewer(model, tok, "Great food!")
    >>> v.head.value = "mean"; v.last_key
    (1, 'mean')
    """

    def __init__(self, model: torch.nn.Module, tokenizer: Any, text: str = "The room was clean but the staff were rude.") -> None:
        import ipywidgets as w

        self.model, self.tokenizer = model, tokenizer
        self.tokens, self.att = attention_maps(model, tokenizer, text)
        L, H = self.att.shape[:2]
        self.text = w.Text(value=text, description="sentence", layout=w.Layout(width="70%"))
        self.button = w.Button(description="Use sentence", icon="refresh")
        self.layer = w.IntSlider(value=1, min=1, max=L, description="layer", continuous_update=False)
        self.head = w.Dropdown(options=["mean"] + list(range(H)), value=0, description="head")
        self.out = w.Output()
        self.last_key: tuple[int, int | str] | None = None
        self.last_figure = None
        self.renders = 0
        self.layer.observe(lambda _c: self.update(), names="value")
        self.head.observe(lambda _c: self.update(), names="value")
        self.button.on_click(lambda _b: self.set_text(self.text.value))
        self.box = w.VBox([w.HTML("<b>Attention maps of MiniLM</b>: row = query token, column = the token it attends to"),
                           w.HBox([self.text, self.button]), w.HBox([self.layer, self.head]), self.out])
        self.box.add_class("tutorlib-widget")
        self.update()

    def set_text(self, text: str) -> None:
        """Recompute the attention maps for a new sentence and redraw."""
        self.tokens, self.att = attention_maps(self.model, self.tokenizer, text)
        self.update()

    def render(self) -> Any:
        """Draw the selected map and return the figure."""
        fig = plot_attention_map(self.tokens, self.att, int(self.layer.value), self.head.value)
        self.last_key = (int(self.layer.value), self.head.value)
        self.last_figure = fig
        self.renders += 1
        return fig

    def update(self) -> None:
        """Redraw into :attr:`out` (called by the slider, the dropdown and the button)."""
        redraw(self.out, self.render())

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.box)


def attention_viewer(model: torch.nn.Module, tokenizer: Any, text: str = "The room was clean but the staff were rude.") -> AttentionViewer:
    """Build an :class:`AttentionViewer` (display it in a notebook cell).

    >>> from tutorlib.explain.text import load_review_classifier
    >>> model, tok = load_review_classifier()
    >>> attention_viewer(model, tok, "Fine.").att.shape[0]
    6
    """
    return AttentionViewer(model, tokenizer, text)
