"""The common result of every text explainer: one score per token, rendered as coloured tokens.

Every method of :func:`tutorlib.explain.explain_text` (SHAP, LIME, integrated gradients,
attention) returns an :class:`Attribution`, so that methods can be compared token by token
(:mod:`tutorlib.explain.agreement`) and tested for faithfulness
(:mod:`tutorlib.explain.faithfulness`). Tokens are the tokenizer's word pieces without ``[CLS]``
and ``[SEP]``; a positive score supports the ``target`` class, a negative one speaks against it.
Attention scores are unsigned (``signed=False``): they say how much a token was looked at, not
in which direction it pushed.

In a notebook an :class:`Attribution` shows itself as coloured tokens (SHAP's convention: red
pushes towards the target class, blue away from it).

>>> a = Attribution(["a", "great", "hotel"], [0.0, 0.8, -0.1], method="toy", target=1, prediction=0.9)
>>> a.top_k(1), a.words()
([1], [('a', 0.0), ('great', 0.8), ('hotel', -0.1)])
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

__all__ = ["Attribution", "attribution_html", "score_colour", "plot_attributions"]


def score_colour(score: float, scale: float, signed: bool = True) -> str:
    """CSS ``rgba`` background for a score: red for positive, blue for negative, opacity ∝ |score| / scale.

    Unsigned scores (attention) are drawn in one colour, orange.

    >>> score_colour(1.0, 1.0), score_colour(-0.5, 1.0)
    ('rgba(230, 50, 50, 0.85)', 'rgba(40, 110, 230, 0.42)')
    """
    if scale <= 0 or not np.isfinite(scale):
        alpha = 0.0
    else:
        alpha = min(abs(float(score)) / scale, 1.0) * 0.85
    if not signed:
        r, g, b = 240, 150, 20
    elif score >= 0:
        r, g, b = 230, 50, 50
    else:
        r, g, b = 40, 110, 230
    return f"rgba({r}, {g}, {b}, {alpha:.2f})"


def _merge_pieces(tokens: Sequence[str]) -> list[tuple[str, list[int]]]:
    """Group word pieces (``##`` continuations) into words: [(word, [token indices])]."""
    words: list[tuple[str, list[int]]] = []
    for i, tok in enumerate(tokens):
        if tok.startswith("##") and words:
            word, idx = words[-1]
            words[-1] = (word + tok[2:], idx + [i])
        else:
            words.append((tok, [i]))
    return words


@dataclass
class Attribution:
    """One explanation of one prediction: ``tokens[i]`` got ``scores[i]`` from ``method`` for class ``target``.

    ``prediction`` is the model's probability of ``target`` on the full text; ``input_ids`` (the
    token ids without special tokens) let :mod:`~tutorlib.explain.faithfulness` delete tokens;
    ``meta`` holds method details (e.g. the integrated-gradients convergence delta).

    >>> a = Attribution(["not", "good"], [-0.2, 0.5], "ig", target=1, prediction=0.7, label_names=("neg", "pos"))
    >>> a.target_name, a.ranking().tolist()
    ('pos', [1, 0])
    """

    tokens: list[str]
    scores: np.ndarray
    method: str
    target: int
    prediction: float
    text: str | None = None
    input_ids: list[int] | None = None
    label_names: tuple[str, ...] | None = None
    signed: bool = True
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.tokens = [str(t) for t in self.tokens]
        scores = np.asarray(self.scores, dtype=np.float64)
        if scores.ndim != 1:
            raise ValueError(f"scores must be 1-D (one per token), got shape {scores.shape}")
        if len(scores) != len(self.tokens):
            raise ValueError(
                f"{len(self.tokens)} tokens but {len(scores)} scores: give exactly one score per token"
            )
        if not np.all(np.isfinite(scores)):
            raise ValueError(f"scores of method {self.method!r} contain NaN or Inf: {scores.tolist()}")
        self.scores = scores
        if self.input_ids is not None:
            self.input_ids = [int(i) for i in self.input_ids]
            if len(self.input_ids) != len(self.tokens):
                raise ValueError(f"{len(self.input_ids)} input_ids for {len(self.tokens)} tokens: they must match")
        self.target = int(self.target)
        self.prediction = float(self.prediction)

    def __len__(self) -> int:
        return len(self.tokens)

    @property
    def target_name(self) -> str:
        """The target class's name (its index as text when no ``label_names`` were given)."""
        if self.label_names and 0 <= self.target < len(self.label_names):
            return str(self.label_names[self.target])
        return str(self.target)

    def ranking(self, by: str = "signed") -> np.ndarray:
        """Token indices from most to least important (``by="signed"``: most supportive first; ``"abs"``: largest |score|).

        Ties keep token order, so rankings are deterministic.

        >>> Attribution(["a", "b", "c"], [0.1, -0.9, 0.5], "x", 1, 0.5).ranking("abs").tolist()
        [1, 2, 0]
        """
        if by not in ("signed", "abs"):
            raise ValueError(f"by must be 'signed' or 'abs', got {by!r}")
        key = self.scores if by == "signed" else np.abs(self.scores)
        return np.argsort(-key, kind="stable")

    def top_k(self, k: int, by: str = "signed") -> list[int]:
        """Indices of the ``k`` most important tokens (see :meth:`ranking`).

        >>> Attribution(["a", "b", "c"], [0.1, -0.9, 0.5], "x", 1, 0.5).top_k(2)
        [2, 0]
        """
        if k < 0:
            raise ValueError(f"k must be ≥ 0, got {k}")
        return [int(i) for i in self.ranking(by)[:k]]

    def normalized(self) -> np.ndarray:
        """Scores divided by the largest absolute score (all zeros stay zeros).

        >>> Attribution(["a", "b"], [2.0, -1.0], "x", 1, 0.5).normalized().tolist()
        [1.0, -0.5]
        """
        scale = float(np.max(np.abs(self.scores))) if len(self.scores) else 0.0
        return self.scores / scale if scale > 0 else self.scores.copy()

    def words(self) -> list[tuple[str, float]]:
        """Word-level scores: word pieces (``great``, ``##ly``) joined and their scores summed.

        >>> Attribution(["great", "##ly", "!"], [0.5, 0.25, 0.0], "x", 1, 0.5).words()
        [('greatly', 0.75), ('!', 0.0)]
        """
        return [(w, float(self.scores[idx].sum())) for w, idx in _merge_pieces(self.tokens)]

    def to_dict(self) -> dict[str, Any]:
        """Plain-data view (JSON-ready).

        >>> Attribution(["a"], [1.0], "x", 0, 0.5).to_dict()["scores"]
        [1.0]
        """
        return {"tokens": list(self.tokens), "scores": self.scores.tolist(), "method": self.method,
                "target": self.target, "target_name": self.target_name, "prediction": self.prediction,
                "text": self.text, "signed": self.signed,
                "meta": {k: v for k, v in self.meta.items() if isinstance(v, (int, float, str, bool, type(None)))}}

    def to_html(self, scale: float | None = None, header: bool = True) -> str:
        """The tokens as coloured HTML spans (hover a token to see its score); see :func:`attribution_html`."""
        return attribution_html(self, scale=scale, header=header)

    def _repr_html_(self) -> str:
        return self.to_html()

    def __repr__(self) -> str:
        top = ", ".join(f"{self.tokens[i]}={self.scores[i]:+.3g}" for i in self.top_k(min(3, len(self))))
        return (f"Attribution(method={self.method!r}, target={self.target_name!r}, p={self.prediction:.3f}, "
                f"{len(self)} tokens, top: {top})")


def attribution_html(attr: Attribution, scale: float | None = None, header: bool = True) -> str:
    """HTML of an attribution: one span per token, coloured by score, word pieces joined without a space.

    ``scale`` fixes the score that gets full colour (default: the largest |score|), so several
    attributions can share one colour scale.

    >>> "great" in attribution_html(Attribution(["great"], [1.0], "x", 1, 0.9))
    True
    """
    scale = float(np.max(np.abs(attr.scores))) if scale is None and len(attr) else (scale or 0.0)
    spans = []
    for i, (tok, s) in enumerate(zip(attr.tokens, attr.scores)):
        piece = tok[2:] if tok.startswith("##") else tok
        sep = "" if (tok.startswith("##") or i == 0) else " "
        spans.append(
            f'{sep}<span title="{html.escape(tok)}: {s:+.4f}" style="background:{score_colour(s, scale, attr.signed)};'
            f'padding:1px 2px;border-radius:3px">{html.escape(piece)}</span>'
        )
    body = "".join(spans)
    head = ""
    if header:
        kind = "red = towards, blue = against" if attr.signed else "unsigned: darker = more attention"
        head = (f'<div style="font-size:85%;color:#555">{html.escape(attr.method)} · target '
                f'<b>{html.escape(attr.target_name)}</b> (p = {attr.prediction:.3f}) · {kind}</div>')
    return f'<div class="tutorlib-attribution" style="line-height:1.9">{head}<div>{body}</div></div>'


def plot_attributions(attributions: Mapping[str, Attribution], title: str = "Token attributions by method",
                      ax: Any = None) -> Any:
    """Grouped bars: each method's scores per token, each scaled by its largest |score| (so methods share one axis).

    All attributions must explain the same tokens. Returns the figure.

    >>> a = Attribution(["not", "bad"], [-0.2, 0.4], "ig", 1, 0.7)
    >>> plot_attributions({"ig": a}).axes[0].get_ylabel()
    'score / max |score| of the method'
    """
    import matplotlib.pyplot as plt

    if not attributions:
        raise ValueError("attributions is empty: pass {method: Attribution}")
    first = next(iter(attributions.values()))
    for name, a in attributions.items():
        if a.tokens != first.tokens:
            raise ValueError(f"{name!r} explains different tokens than {first.method!r}: plot one text at a time")
    n, m = len(first), len(attributions)
    if ax is None:
        fig, ax = plt.subplots(figsize=(max(6.0, 0.55 * n * max(m, 2) / 2 + 2), 3.8))
    else:
        fig = ax.figure
    width = 0.8 / m
    x = np.arange(n)
    for k, (name, a) in enumerate(attributions.items()):
        ax.bar(x + (k - (m - 1) / 2) * width, a.normalized(), width, label=name + ("" if a.signed else " (unsigned)"))
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xticks(x, first.tokens, rotation=60, ha="right")
    ax.set_xlabel("token")
    ax.set_ylabel("score / max |score| of the method")
    ax.set_title(f"{title} (target: {first.target_name}, p = {first.prediction:.2f})")
    ax.legend(fontsize=8, ncol=min(m, 4))
    fig.tight_layout()
    return fig
