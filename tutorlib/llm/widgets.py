"""Lesson 10's widget: a decoding explorer that regenerates text as the sliders move.

The computation is a plain function (:func:`decode_once`) so it is testable without a browser; the
widget collects slider values, calls it, shows the text and a bar chart of the filtered next-token
distribution after the prompt.

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

__all__ = ["decode_once", "plot_next_token", "DecodingExplorer", "decoding_explorer"]


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
        import matplotlib.pyplot as plt
        from IPython.display import clear_output

        from tutorlib.widgets import in_notebook

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
            fig = plot_next_token(self.model, v["prompt"], v["temperature"], v["top_k"], v["top_p"],
                                  v["repetition_penalty"], tokenizer=self.tokenizer)
            with self.plot:
                clear_output(wait=True)
                plt.show()
            plt.close(fig)
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
