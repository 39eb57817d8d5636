"""The LLM lessons' widgets: a decoding explorer and a next-token + attention explorer for a real LLM (lesson
10), and an extraction explorer that shows one review's JSON answer from several models, field by field (lesson 11).

The computations are plain functions (:func:`decode_once`, :func:`next_token_attention`) so they are
testable without a browser; the widgets collect control values, call them and show the result:
the continuation and a bar chart of the filtered next-token distribution (:func:`decoding_explorer`),
or the top-k next tokens and one attention head's weights over the prompt (:func:`attention_explorer`).

>>> from tutorlib.models import TinyGPT, GPTConfig
>>> box = decoding_explorer(TinyGPT(GPTConfig(block_size=32, n_layer=1, n_head=2, d_model=16)), max_new_tokens=8)
>>> before = box.explorer.text.value
>>> box.explorer.controls["temperature"].value = 1.7
>>> box.explorer.text.value != before, box.explorer.renders
(True, 2)
"""

from __future__ import annotations

import html
from typing import Any

import torch

from tutorlib.llm.decoding import beam_search, filtered_distribution, greedy, next_token_logits, sample
from tutorlib.models import ByteTokenizer

__all__ = ["decode_once", "plot_next_token", "DecodingExplorer", "decoding_explorer", "next_token_attention",
           "draw_next_token_attention", "AttentionExplorer", "attention_explorer", "ExtractionExplorer",
           "extraction_explorer"]


def decode_once(model: Any, prompt: str, strategy: str = "sample", max_new_tokens: int = 80, temperature: float = 1.0,
                top_k: int = 0, top_p: float = 1.0, repetition_penalty: float = 1.0, num_beams: int = 3,
                seed: int = 0, tokenizer: Any = None) -> str:
    """Continue ``prompt`` with one strategy (``greedy``, ``sample`` or ``beam``) and return only the new text.

    >>> from tutorlib.models import TinyGPT, GPTConfig
    >>> len(decode_once(TinyGPT(GPTConfig(n_layer=1, d_model=16, n_head=2)), "x", max_new_tokens=5))
    5
    """
    tok = tokenizer or ByteTokenizer()
    if not prompt:
        raise ValueError("the prompt is empty: type a few characters")
    dev = next(model.parameters()).device
    ids = torch.tensor([tok.encode(prompt)], device=dev)
    if strategy == "greedy":
        out = greedy(model, ids, max_new_tokens, repetition_penalty=repetition_penalty)
    elif strategy == "beam":
        out = beam_search(model, ids, max_new_tokens, num_beams=num_beams)
    elif strategy == "sample":
        g = torch.Generator(device=dev).manual_seed(seed)
        out = sample(model, ids, max_new_tokens, temperature=temperature, top_k=top_k or None,
                     top_p=top_p if top_p < 1 else None, repetition_penalty=repetition_penalty, generator=g)
    else:
        raise ValueError(f"unknown strategy {strategy!r}: use greedy, sample or beam")
    return tok.decode(out[0, ids.shape[1]:])


def plot_next_token(model: Any, prompt: str, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
                    repetition_penalty: float = 1.0, n: int = 15, ax: Any = None, tokenizer: Any = None) -> Any:
    """Bar chart of the ``n`` most likely next characters: raw softmax vs after the filters. Returns the figure.

    >>> import matplotlib; matplotlib.use("Agg")
    >>> from tutorlib.models import TinyGPT, GPTConfig
    >>> fig = plot_next_token(TinyGPT(GPTConfig(n_layer=1, d_model=16, n_head=2)), "def", top_k=5)
    """
    import matplotlib.pyplot as plt

    tok = tokenizer or ByteTokenizer()
    dev = next(model.parameters()).device
    ids = torch.tensor([tok.encode(prompt)], device=dev)
    logits = next_token_logits(model, ids)
    raw = logits.softmax(-1)[0].cpu()
    filt = filtered_distribution(logits, ids, temperature, top_k or None, top_p if top_p < 1 else None,
                                 repetition_penalty)[0].cpu()
    order = torch.argsort(raw, descending=True)[:n].tolist()
    labels = [repr(tok.decode([i]))[1:-1] or "∅" for i in order]
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 3))
    x = torch.arange(len(order)).float()
    ax.bar(x - 0.2, raw[order].numpy(), width=0.4, label="raw softmax")
    ax.bar(x + 0.2, filt[order].numpy(), width=0.4, label="after filters (sampled from)")
    ax.set_xticks(x.numpy(), labels, fontfamily="monospace")
    ax.set_xlabel("next character (most likely first)")
    ax.set_ylabel("probability")
    kept = int((filt > 0).sum())
    ax.set_title(f"Next-character distribution after {prompt[-20:]!r}: {kept} of {len(filt)} characters can be sampled")
    ax.legend()
    ax.figure.tight_layout()
    return ax.figure


class DecodingExplorer:
    """The widget behind :func:`decoding_explorer`: controls, generated text, a distribution plot."""

    def __init__(self, model: Any, prompt: str = "def ", max_new_tokens: int = 120, tokenizer: Any = None) -> None:
        import ipywidgets as w

        self.model, self.tokenizer, self.max_new_tokens = model, tokenizer, max_new_tokens
        style = {"description_width": "130px"}
        fs = dict(continuous_update=False, style=style)
        self.controls: dict[str, Any] = {
            "temperature": w.FloatSlider(value=0.8, min=0.1, max=2.0, step=0.05, description="temperature", **fs),
            "top_k": w.IntSlider(value=0, min=0, max=128, step=1, description="top-k (0 = off)", **fs),
            "top_p": w.FloatSlider(value=1.0, min=0.05, max=1.0, step=0.05, description="top-p (1 = off)", **fs),
            "repetition_penalty": w.FloatSlider(value=1.0, min=1.0, max=2.0, step=0.05, description="repetition penalty", **fs),
            "strategy": w.ToggleButtons(options=["sample", "greedy", "beam"], value="sample", description="strategy"),
            "num_beams": w.IntSlider(value=3, min=1, max=8, description="beams", **fs),
            "seed": w.IntSlider(value=0, min=0, max=20, description="seed", **fs),
            "prompt": w.Text(value=prompt, description="prompt", continuous_update=False, style=style),
        }
        self.button = w.Button(description="sample again", icon="refresh")
        self.button.on_click(lambda _b: self._next_seed())
        self.text = w.HTML()
        self.plot = w.Output()
        self.renders = 0
        self.last: dict[str, Any] = {}
        for ctl in self.controls.values():
            ctl.observe(lambda _change: self.run(), names="value")
        c = self.controls
        left = w.VBox([c["temperature"], c["top_k"], c["top_p"], c["repetition_penalty"]])
        right = w.VBox([c["strategy"], c["num_beams"], c["seed"], c["prompt"], self.button])
        self.box = w.VBox([w.HBox([left, right]), self.text, self.plot])
        self.box.add_class("tutorlib-widget")
        self.box.explorer = self  # type: ignore[attr-defined]
        self.run()

    def _next_seed(self) -> None:
        s = self.controls["seed"]
        s.value = (s.value + 1) % (s.max + 1)

    def values(self) -> dict[str, Any]:
        """Current control values, as :func:`decode_once` takes them."""
        return {k: c.value for k, c in self.controls.items()}

    def run(self) -> str:
        """Regenerate for the current values; returns the new text (also shown in the widget)."""
        from tutorlib.widgets import in_notebook, redraw

        v = self.values()
        try:
            new = decode_once(self.model, v["prompt"], v["strategy"], self.max_new_tokens, v["temperature"], v["top_k"],
                              v["top_p"], v["repetition_penalty"], v["num_beams"], v["seed"], self.tokenizer)
        except ValueError as exc:
            self.text.value = f"<b>{html.escape(str(exc))}</b>"
            return ""
        settings = (f"{v['strategy']}" + (f", temperature {v['temperature']:.2f}, top-k {v['top_k'] or 'off'}, "
                                          f"top-p {v['top_p']:.2f}, seed {v['seed']}" if v["strategy"] == "sample" else "")
                    + (f", {v['num_beams']} beams" if v["strategy"] == "beam" else "")
                    + f", repetition penalty {v['repetition_penalty']:.2f}")
        self.text.value = (f"<div style='font-size:90%'>{html.escape(settings)}</div><pre style='line-height:1.2'>"
                           f"<span style='color:#888'>{html.escape(v['prompt'])}</span>{html.escape(new)}</pre>")
        if in_notebook():
            redraw(self.plot, plot_next_token(self.model, v["prompt"], v["temperature"], v["top_k"], v["top_p"],
                                              v["repetition_penalty"], tokenizer=self.tokenizer))
        self.renders += 1
        self.last = dict(v, text=new)
        return new


def decoding_explorer(model: Any, prompt: str = "def ", max_new_tokens: int = 120, tokenizer: Any = None):
    """A widget: temperature, top-k, top-p, repetition penalty, strategy, beams, seed and prompt; the model's
    continuation is regenerated whenever one changes. ``box.explorer.run()`` regenerates by hand.

    >>> from tutorlib.models import TinyGPT, GPTConfig
    >>> decoding_explorer(TinyGPT(GPTConfig(n_layer=1, d_model=16, n_head=2)), max_new_tokens=4).explorer.renders
    1
    """
    return DecodingExplorer(model, prompt, max_new_tokens, tokenizer).box


def _model_shape(model: Any) -> tuple[int, int]:
    """(number of layers, number of query heads) of a Hugging Face causal LM or a :class:`tutorlib.llm.Llama`."""
    cfg = getattr(model, "config", None) or getattr(model, "cfg", None)
    for layers, heads in (("num_hidden_layers", "num_attention_heads"), ("n_layer", "n_head"), ("n_layers", "n_heads")):
        if cfg is not None and hasattr(cfg, layers) and hasattr(cfg, heads):
            return int(getattr(cfg, layers)), int(getattr(cfg, heads))
    raise TypeError(f"cannot read the number of layers and heads of a {type(model).__name__}: "
                    "pass a Hugging Face causal LM or a tutorlib.llm.Llama")


@torch.no_grad()
def _logits_and_attention(model: Any, ids: torch.Tensor, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Next-token logits (V,) after ``ids`` (1, T) and the attention weights (H, T, T) of ``layer``."""
    if hasattr(model, "config") and hasattr(model, "set_attn_implementation"):   # a transformers model
        out = model(input_ids=ids, output_attentions=True)
        if not out.attentions:   # fused attention kernels do not return weights: switch to the explicit math
            impl = model.config._attn_implementation
            model.set_attn_implementation("eager")
            try:
                out = model(input_ids=ids, output_attentions=True)
            finally:
                model.set_attn_implementation(impl)
        return out.logits[0, -1].float(), out.attentions[layer][0].float()
    out = model(ids, return_attention=layer)   # tutorlib.llm.Llama
    logits = getattr(out, "logits", out[0] if isinstance(out, tuple) else out)
    att = getattr(out, "attention", None)
    if att is None and isinstance(out, tuple):
        att = out[1]
    return logits[0, -1].float(), att[0].float()


def next_token_attention(model: Any, tokenizer: Any, prompt: str, layer: int = 0, k: int = 10,
                         max_tokens: int = 48) -> dict[str, Any]:
    """The ``k`` most likely next tokens after ``prompt`` and every head's attention in ``layer``.

    Returns a dict: ``tokens`` (the prompt's token strings), ``top_tokens``, ``top_ids``, ``top_probs`` (k),
    ``attention`` (H, T, T; row i = where token i looks), ``layer``. Prompts longer than ``max_tokens`` tokens
    keep their last ``max_tokens`` (the heatmap would be unreadable).

    >>> import torch
    >>> from transformers import LlamaConfig, LlamaForCausalLM
    >>> from tutorlib.models import ByteTokenizer
    >>> m = LlamaForCausalLM(LlamaConfig(vocab_size=128, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
    ...                                  num_attention_heads=4, num_key_value_heads=2)).eval()
    >>> r = next_token_attention(m, ByteTokenizer(), "hello", layer=1, k=3)
    >>> r["attention"].shape, len(r["top_tokens"]), round(float(r["attention"][0].sum(-1)[-1]), 4)
    (torch.Size([4, 5, 5]), 3, 1.0)
    """
    if not prompt:
        raise ValueError("the prompt is empty: type a few words")
    n_layer, _ = _model_shape(model)
    if not 0 <= layer < n_layer:
        raise ValueError(f"layer must be in 0..{n_layer - 1}, got {layer}")
    enc = getattr(tokenizer, "encode")
    try:
        ids = enc(prompt, add_special_tokens=False)
    except TypeError:   # a course tokenizer without special tokens
        ids = enc(prompt)
    ids = list(ids)[-max_tokens:]
    dev = next(model.parameters()).device
    logits, att = _logits_and_attention(model, torch.tensor([ids], device=dev), layer)
    probs = logits.softmax(-1).cpu()
    top = torch.topk(probs, min(k, probs.numel()))
    show = lambda i: tokenizer.decode([int(i)])  # noqa: E731
    return {"tokens": [show(i) for i in ids], "top_tokens": [show(i) for i in top.indices],
            "top_ids": top.indices.tolist(), "top_probs": top.values.tolist(), "attention": att.cpu(),
            "layer": layer}


def draw_next_token_attention(result: dict[str, Any], head: int = 0, axes: Any = None):
    """Two panels: the top-k next-token probabilities, and head ``head``'s attention over the prompt tokens.

    >>> import matplotlib; matplotlib.use("Agg")
    >>> r = {"tokens": ["a", "b"], "top_tokens": ["c"], "top_probs": [0.5], "attention": torch.ones(1, 2, 2) / 2,
    ...      "layer": 0}
    >>> fig = draw_next_token_attention(r); [ax.get_xlabel() for ax in fig.axes[:2]]
    ['probability', 'key: the token looked at']
    """
    import matplotlib.pyplot as plt

    att = result["attention"]
    if not 0 <= head < att.shape[0]:
        raise ValueError(f"head must be in 0..{att.shape[0] - 1}, got {head}")
    if axes is None:
        T = len(result["tokens"])
        _, axes = plt.subplots(1, 2, figsize=(12, max(3.2, 0.22 * T + 1.5)), gridspec_kw={"width_ratios": [1, 1.6]})
    ax1, ax2 = axes
    labels = [repr(t)[1:-1] or "∅" for t in result["tokens"]]
    top = [repr(t)[1:-1] or "∅" for t in result["top_tokens"]]
    y = list(range(len(top)))[::-1]
    ax1.barh(y, result["top_probs"], color="tab:blue")
    ax1.set_yticks(y, top, fontfamily="monospace")
    ax1.set_xlabel("probability")
    ax1.set_title(f"next token after {labels[-1]!r}: top {len(top)}")
    im = ax2.imshow(att[head].numpy(), cmap="viridis", vmin=0, vmax=1, aspect="auto")
    ax2.set_xticks(range(len(labels)), labels, rotation=90, fontfamily="monospace", fontsize=7)
    ax2.set_yticks(range(len(labels)), labels, fontfamily="monospace", fontsize=7)
    ax2.set_xlabel("key: the token looked at")
    ax2.set_ylabel("query: the token looking")
    ax2.set_title(f"attention weights, layer {result['layer']}, head {head}")
    ax2.figure.colorbar(im, ax=ax2, fraction=0.04)
    ax2.figure.tight_layout()
    return ax2.figure


class AttentionExplorer:
    """The widget behind :func:`attention_explorer`: ``controls``, ``plot``, ``status``, ``last``, ``renders``."""

    def __init__(self, model: Any, tokenizer: Any, prompt: str = "The capital of France is", layer: int = 0,
                 head: int = 0, k: int = 10) -> None:
        import ipywidgets as w

        self.model, self.tokenizer = model, tokenizer
        n_layer, n_head = _model_shape(model)
        st = {"description_width": "90px"}
        self.controls: dict[str, Any] = {
            "layer": w.IntSlider(value=layer, min=0, max=n_layer - 1, description="layer", style=st,
                                 continuous_update=False),
            "head": w.IntSlider(value=head, min=0, max=n_head - 1, description="head", style=st,
                                continuous_update=False),
            "k": w.IntSlider(value=k, min=3, max=25, description="top-k shown", style=st, continuous_update=False),
            "prompt": w.Text(value=prompt, description="prompt", style=st, continuous_update=False,
                             layout=w.Layout(width="60%")),
        }
        self.status = w.HTML()
        self.plot = w.Output()
        self.renders = 0
        self.last: dict[str, Any] = {}
        self._cache: dict[tuple[str, int, int], dict[str, Any]] = {}
        for ctl in self.controls.values():
            ctl.observe(lambda _change: self.run(), names="value")
        c = self.controls
        self.box = w.VBox([w.HBox([c["layer"], c["head"], c["k"]]), c["prompt"], self.status, self.plot])
        self.box.add_class("tutorlib-widget")
        self.box.explorer = self  # type: ignore[attr-defined]
        self.run()

    def values(self) -> dict[str, Any]:
        """Current control values."""
        return {k: c.value for k, c in self.controls.items()}

    def run(self) -> dict[str, Any]:
        """Recompute (a forward pass, cached per prompt/layer/k) and redraw; returns the result."""
        from tutorlib.widgets import in_notebook, redraw

        v = self.values()
        key = (v["prompt"], v["layer"], v["k"])
        try:
            if key not in self._cache:
                self._cache = {key: next_token_attention(self.model, self.tokenizer, v["prompt"], v["layer"], v["k"])}
            r = self._cache[key]
        except ValueError as exc:
            self.status.value = f"<b>{html.escape(str(exc))}</b>"
            return {}
        att = r["attention"][v["head"]]
        looked = int(att[-1].argmax())
        self.status.value = (
            f"most likely next token: <b>{html.escape(repr(r['top_tokens'][0]))}</b> "
            f"(p = {r['top_probs'][0]:.3f})<br>layer {v['layer']}, head {v['head']}: the last token "
            f"{html.escape(repr(r['tokens'][-1]))} puts {float(att[-1, looked]):.0%} of its attention on token "
            f"{looked} {html.escape(repr(r['tokens'][looked]))}")
        if in_notebook():
            redraw(self.plot, draw_next_token_attention(r, v["head"]))
        self.renders += 1
        self.last = dict(v, top_token=r["top_tokens"][0], top_prob=r["top_probs"][0], looked_at=looked,
                         attention=att.clone())
        return r


def attention_explorer(model: Any, tokenizer: Any, prompt: str = "The capital of France is", layer: int = 0,
                       head: int = 0, k: int = 10):
    """A widget: type a prompt, pick a layer and a head; see the top-k next tokens and that head's attention map.

    Works with a ``transformers`` causal LM (attention weights via the eager implementation) or a
    :class:`tutorlib.llm.Llama`. Returns the top container (``box.explorer`` is the :class:`AttentionExplorer`).
    """
    return AttentionExplorer(model, tokenizer, prompt, layer, head, k).box


class ExtractionExplorer:
    """Pick a review and a model: see the model's JSON answer and which fields it got right against the gold.

    ``answerers`` maps a model's name to a function ``review -> answer text``; answers are cached, so flipping
    between models costs one generation per (review, model). :meth:`update` works without a browser and
    returns ``{"review", "model", "answer", "fields"}``.

    >>> ex = ExtractionExplorer(["great phone", "bad soup"], [{"sentiment": "positive"}, {"sentiment": "negative"}],
    ...                         {"always positive": lambda r: '{"sentiment": "positive"}'})
    >>> ex.update(index=1)["fields"]
    {'sentiment': 0.0}
    """

    def __init__(self, reviews: list[str], golds: list[dict], answerers: dict[str, Any]) -> None:
        if len(reviews) != len(golds) or not reviews:
            raise ValueError(f"expected as many gold answers as reviews (and at least one), got {len(reviews)} reviews "
                             f"and {len(golds)} golds")
        if not answerers:
            raise ValueError("answerers is empty: pass {'model name': function(review) -> answer text}")
        self.reviews, self.golds, self.answerers = list(reviews), list(golds), dict(answerers)
        self.index, self.model = 0, next(iter(self.answerers))
        self._cache: dict[tuple[int, str], str] = {}
        self.last: dict[str, Any] = {}
        self.box = None
        try:
            import ipywidgets as w
        except ImportError:  # the computation still works without ipywidgets
            return
        self.pick = w.IntSlider(value=0, min=0, max=len(self.reviews) - 1, description="review #",
                                continuous_update=False)
        self.which = w.ToggleButtons(options=list(self.answerers), description="model")
        self.view = w.HTML()
        self.pick.observe(lambda change: self.update(index=change["new"]), names="value")
        self.which.observe(lambda change: self.update(model=change["new"]), names="value")
        self.box = w.VBox([self.pick, self.which, self.view])
        self.box.add_class("tutorlib-widget")
        self.box.explorer = self

    def update(self, index: int | None = None, model: str | None = None) -> dict[str, Any]:
        """Answer review ``index`` with ``model`` (the current ones when not given) and show it."""
        from tutorlib.llm.structured import field_scores, parse_json_object

        self.index = self.index if index is None else int(index)
        self.model = self.model if model is None else model
        if self.model not in self.answerers:
            raise ValueError(f"unknown model {self.model!r}: choose one of {list(self.answerers)}")
        key = (self.index, self.model)
        if key not in self._cache:
            self._cache[key] = self.answerers[self.model](self.reviews[self.index])
        answer = self._cache[key]
        gold = self.golds[self.index]
        fields = field_scores(parse_json_object(answer), gold)
        self.last = {"review": self.reviews[self.index], "model": self.model, "answer": answer, "fields": fields}
        if self.box is not None:
            self.pick.value, self.which.value = self.index, self.model   # controls follow a call from code
            rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(str(gold[k]))}</td>"
                           f"<td>{'right' if v else 'wrong'}</td></tr>" for k, v in fields.items())
            self.view.value = (f"<p><b>review:</b> {html.escape(self.last['review'])}</p>"
                               f"<p><b>{html.escape(self.model)}:</b> <code>{html.escape(answer)}</code></p>"
                               f"<table><tr><th>field</th><th>gold</th><th>answer</th></tr>{rows}</table>"
                               f"<p>{int(sum(fields.values()))} of {len(fields)} fields right</p>")
        return self.last


def extraction_explorer(reviews: list[str], golds: list[dict], answerers: dict[str, Any]):
    """The :class:`ExtractionExplorer` widget (its ``.box``), showing the first review's answer at once.

    >>> box = extraction_explorer(["ok"], [{"a": 1}], {"m": lambda r: '{"a": 1}'})
    >>> box.explorer.last["fields"]
    {'a': 1.0}
    """
    ex = ExtractionExplorer(reviews, golds, answerers)
    ex.update()
    return ex.box if ex.box is not None else ex
