"""Widgets of the LLM lessons 11 and 12: a summary explorer (SFT) and a context-budget explorer (dialogue).

The work is done by plain functions (:func:`summarize_one`, :func:`replay_chat`), testable without a
browser; the widgets only wire sliders to them and show the result.

>>> box = context_explorer(["Hi, I am Ada and I keep bees.", "What is a decorator?", "Where are my bees?"],
...                        respond=lambda prompt: "ok", budget=60)
>>> before = box.explorer.text.value
>>> box.explorer.controls["budget"].value = 200
>>> box.explorer.text.value != before, box.explorer.renders
(True, 2)
"""

from __future__ import annotations

import html
from contextlib import nullcontext
from typing import Any, Callable, Sequence

from tutorlib.llm.dialogue import ChatSession
from tutorlib.llm.metrics import rouge_l
from tutorlib.llm.tasks import summarize

__all__ = ["summarize_one", "SummaryExplorer", "summary_explorer", "replay_chat", "ContextExplorer", "context_explorer"]


def summarize_one(model: Any, tokenizer: Any, row: dict[str, str], adapter: bool = True,
                  max_new_tokens: int = 32) -> dict[str, Any]:
    """Greedy summary of one ``{"prompt", "completion"}`` row, with or without the model's LoRA adapter.

    Returns the generated text, the reference and the ROUGE-L F1 between them. ``adapter=False``
    on a ``peft`` model decodes with the adapter disabled (the base model); on a plain model it is ignored.

    >>> from tutorlib.llm import char_tokenizer, to_gpt2
    >>> from tutorlib.models import TinyGPT, GPTConfig
    >>> gpt2 = to_gpt2(TinyGPT(GPTConfig(block_size=64, n_layer=1, n_head=2, d_model=16)))
    >>> out = summarize_one(gpt2, char_tokenizer(), {"prompt": "Review: good\\nSummary:", "completion": " positive"}, max_new_tokens=4)
    >>> sorted(out), 0.0 <= out["rougeL"] <= 1.0
    (['generated', 'reference', 'rougeL'], True)
    """
    if "prompt" not in row or "completion" not in row:
        raise ValueError(f"expected a row with 'prompt' and 'completion' keys, got {sorted(row)}")
    off = getattr(model, "disable_adapter", None)
    ctx = off() if (not adapter and off is not None) else nullcontext()
    with ctx:
        generated = summarize(model, tokenizer, [row["prompt"]], max_new_tokens=max_new_tokens)[0]
    reference = row["completion"].strip()
    return {"generated": generated, "reference": reference, "rougeL": rouge_l(generated, reference)["f"]}


class SummaryExplorer:
    """The widget behind :func:`summary_explorer`: a review slider, the text, both summaries and their ROUGE-L."""

    def __init__(self, model: Any, tokenizer: Any, rows: Sequence[dict[str, str]], max_new_tokens: int = 32) -> None:
        import ipywidgets as w

        if not rows:
            raise ValueError("no rows to explore: pass the held-out prompt/completion rows")
        self.model, self.tokenizer, self.rows, self.max_new_tokens = model, tokenizer, list(rows), max_new_tokens
        fs = dict(continuous_update=False, style={"description_width": "130px"})
        self.controls: dict[str, Any] = {
            "index": w.IntSlider(value=0, min=0, max=len(self.rows) - 1, description="held-out review", **fs)}
        self.text = w.HTML()
        self.renders = 0
        self.last: dict[str, Any] = {}
        self.controls["index"].observe(lambda _change: self.run(), names="value")
        self.box = w.VBox([self.controls["index"], self.text])
        self.box.add_class("tutorlib-widget")
        self.box.explorer = self  # type: ignore[attr-defined]
        self.run()

    def run(self) -> dict[str, Any]:
        """Summarise the chosen review with and without the adapter; returns both results (also shown)."""
        row = self.rows[self.controls["index"].value]
        tuned = summarize_one(self.model, self.tokenizer, row, True, self.max_new_tokens)
        base = summarize_one(self.model, self.tokenizer, row, False, self.max_new_tokens)
        review = row["prompt"].removeprefix("Review:").split("\nSummary:")[0].strip()
        e = html.escape
        self.text.value = (
            f"<div style='max-width:60em'><b>Review</b>: {e(review[:400])}{'…' if len(review) > 400 else ''}</div>"
            "<table><tr><th style='text-align:left'>model</th><th style='text-align:left'>summary</th><th>ROUGE-L</th></tr>"
            f"<tr><td>reference</td><td><code>{e(tuned['reference'])}</code></td><td></td></tr>"
            f"<tr><td>with the LoRA adapter</td><td><code>{e(tuned['generated'])}</code></td><td>{100 * tuned['rougeL']:.0f}</td></tr>"
            f"<tr><td>base model (adapter off)</td><td><code>{e(base['generated'])}</code></td><td>{100 * base['rougeL']:.0f}</td></tr>"
            "</table>")
        self.renders += 1
        self.last = {"tuned": tuned, "base": base}
        return self.last


def summary_explorer(model: Any, tokenizer: Any, rows: Sequence[dict[str, str]], max_new_tokens: int = 32):  # noqa: ANN201
    """A widget: pick a held-out review, see the summary of the model with its LoRA adapter, without it, and the reference.

    >>> from tutorlib.llm import char_tokenizer, to_gpt2
    >>> from tutorlib.models import TinyGPT, GPTConfig
    >>> gpt2 = to_gpt2(TinyGPT(GPTConfig(block_size=64, n_layer=1, n_head=2, d_model=16)))
    >>> summary_explorer(gpt2, char_tokenizer(), [{"prompt": "Review: ok\\nSummary:", "completion": " fine"}], 4).explorer.renders
    1
    """
    return SummaryExplorer(model, tokenizer, rows, max_new_tokens).box


def replay_chat(messages: Sequence[str], respond: Callable[[str], str], budget: int, strategy: str = "truncate",
                count_tokens: Callable[[str], int] = len, system: str = "", reply_tokens: int = 0) -> ChatSession:
    """Send ``messages`` one by one to a fresh :class:`ChatSession` with this ``budget`` and ``strategy``; return it.

    >>> chat = replay_chat(["one two three", "four five six"], lambda p: "ok", budget=40)
    >>> [e["tokens"] <= 40 for e in chat.log]
    [True, True]
    """
    chat = ChatSession(respond, max_tokens=budget, count_tokens=count_tokens, strategy=strategy, system=system,
                       reply_tokens=reply_tokens)
    for m in messages:
        chat.send(m)
    return chat


class ContextExplorer:
    """The widget behind :func:`context_explorer`: budget slider, strategy buttons, the last prompt and its sizes."""

    def __init__(self, messages: Sequence[str], respond: Callable[[str], str], count_tokens: Callable[[str], int] = len,
                 system: str = "", reply_tokens: int = 0, budget: int = 300) -> None:
        import ipywidgets as w

        if not messages:
            raise ValueError("no messages to replay: pass the user's messages of the conversation")
        self.messages, self.respond, self.count_tokens = list(messages), respond, count_tokens
        self.system, self.reply_tokens = system, reply_tokens
        fs = dict(continuous_update=False, style={"description_width": "130px"})
        self.controls: dict[str, Any] = {
            "budget": w.IntSlider(value=budget, min=reply_tokens + 20, max=max(budget * 3, reply_tokens + 40), step=20,
                                  description="context budget", **fs),
            "strategy": w.ToggleButtons(options=["truncate", "summarize"], value="truncate", description="strategy"),
        }
        self.text = w.HTML()
        self.renders = 0
        self.chat: ChatSession | None = None
        for ctl in self.controls.values():
            ctl.observe(lambda _change: self.run(), names="value")
        self.box = w.VBox([w.HBox([self.controls["budget"], self.controls["strategy"]]), self.text])
        self.box.add_class("tutorlib-widget")
        self.box.explorer = self  # type: ignore[attr-defined]
        self.run()

    def run(self) -> ChatSession:
        """Replay the conversation with the current budget and strategy; returns the session (also shown)."""
        budget, strategy = self.controls["budget"].value, self.controls["strategy"].value
        chat = replay_chat(self.messages, self.respond, budget, strategy, self.count_tokens, self.system, self.reply_tokens)
        sizes = [e["tokens"] for e in chat.log]
        first = self.messages[0]
        kept = "verbatim" if first in chat.last_prompt else ("in the summary" if first[:20] in chat.last_prompt else "gone")
        self.text.value = (
            f"<div>prompt sizes per turn: {sizes} (budget {budget - self.reply_tokens} for the prompt, "
            f"{self.reply_tokens} kept for the reply); the first message is <b>{kept}</b> in the last prompt</div>"
            f"<pre style='line-height:1.2; white-space:pre-wrap'>{html.escape(chat.last_prompt)}</pre>")
        self.renders += 1
        self.chat = chat
        return chat


def context_explorer(messages: Sequence[str], respond: Callable[[str], str], count_tokens: Callable[[str], int] = len,
                     system: str = "", reply_tokens: int = 0, budget: int = 300):  # noqa: ANN201
    """A widget: replay a conversation under a context budget (slider) with truncation or a summary, see the last prompt.

    >>> context_explorer(["hello there", "how are you?"], lambda p: "fine", budget=80).explorer.renders
    1
    """
    return ContextExplorer(messages, respond, count_tokens, system, reply_tokens, budget).box
