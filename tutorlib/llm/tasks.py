"""Summarization and extractive question answering with the model classes (transformers 5 has no such pipelines).

Both small tasks are built from the bundled reviews:

- **extractive QA** (:func:`review_qa_examples`): the context is three reviews of different
  products; the question asks for the one about a product ("Which review is about a hotel?") or
  with a sentiment ("Which review is negative?"); the answer is that review, a span of the context.
  A pretrained MiniLM with a span head (``AutoModelForQuestionAnswering``) learns to point at it
  (:func:`train_qa`, :func:`answer_question`), scored by exact match and token F1.
- **summarization** (:func:`review_summary_examples`): the "summary" of a review is its gist, e.g.
  ``"negative review of a hotel"``; a causal LM learns it as prompt/completion SFT and is scored by
  ROUGE-1/2/L against the reference (:func:`summarize`).

>>> ex = review_qa_examples("train", n=2)[0]
>>> ex.context[ex.answer_start:ex.answer_start + len(ex.answer)] == ex.answer
True
>>> review_summary_examples("train", n=1)[0]["completion"].split()[1:3]
['review', 'of']
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Sequence

import torch
from torch.utils.data import Dataset

__all__ = ["QAExample", "DOMAIN_PHRASES", "review_qa_examples", "QAFeatures", "qa_collate", "build_qa_model",
           "train_qa", "answer_question", "best_span", "evaluate_qa", "review_summary_examples", "summary_prompt", "summarize"]

#: How the questions and summaries name each review domain.
DOMAIN_PHRASES = {"movie": "a movie", "hotel": "a hotel", "airline": "an airline", "software": "an app",
                  "electronics": "a gadget", "book": "a book", "clothing": "clothes", "restaurant": "a restaurant"}


@dataclass
class QAExample:
    """One extractive QA item: the answer is ``context[answer_start : answer_start + len(answer)]``."""

    question: str
    context: str
    answer: str
    answer_start: int
    reviews: tuple[str, ...] = ()


def review_qa_examples(split: str = "train", n: int | None = None, seed: int = 0, per_context: int = 3) -> list[QAExample]:
    """Questions over groups of ``per_context`` reviews from different domains (see the module docstring).

    >>> len(review_qa_examples("val", n=5))
    5
    """
    from tutorlib.data import load_reviews

    ds = load_reviews(split)
    rng = random.Random(seed)
    order = list(range(len(ds)))
    out: list[QAExample] = []
    labels = ds.label_names
    while n is None or len(out) < n:
        rng.shuffle(order)
        pool = list(order)
        while len(pool) >= per_context and (n is None or len(out) < n):
            group: list[int] = []
            for i in list(pool):
                if ds.domains[i] not in {ds.domains[j] for j in group}:
                    group.append(i)
                    pool.remove(i)
                if len(group) == per_context:
                    break
            if len(group) < per_context:
                break
            texts = [ds.texts[i] for i in group]
            context = " ".join(texts)
            sentiments = [ds.labels[i] for i in group]
            lone = [s for s in set(sentiments) if sentiments.count(s) == 1]
            if lone and rng.random() < 0.4:
                target = sentiments.index(lone[0])
                question = f"Which review is {labels[lone[0]]}?"
            else:
                target = rng.randrange(per_context)
                question = f"Which review is about {DOMAIN_PHRASES.get(ds.domains[group[target]], ds.domains[group[target]])}?"
            start = sum(len(t) + 1 for t in texts[:target])
            out.append(QAExample(question, context, texts[target], start, tuple(texts)))
        if n is None:
            break
    return out


class QAFeatures(Dataset):
    """Tokenised ``(question, context)`` pairs with the answer's start/end token positions (fast tokenizer).

    >>> from tutorlib.models import load_tokenizer
    >>> f = QAFeatures(review_qa_examples("val", n=2), load_tokenizer()); sorted(f[0])[-2:]
    ['start_positions', 'token_type_ids']
    """

    def __init__(self, examples: Sequence[QAExample], tokenizer: Any, max_length: int = 192) -> None:
        if not getattr(tokenizer, "is_fast", False):
            raise TypeError("QAFeatures needs a fast tokenizer (offset mapping): load it with AutoTokenizer")
        self.items = []
        for ex in examples:
            enc = tokenizer(ex.question, ex.context, truncation="only_second", max_length=max_length,
                            return_offsets_mapping=True)
            seq = enc.sequence_ids()
            a0, a1 = ex.answer_start, ex.answer_start + len(ex.answer)
            start = end = 0  # the [CLS] token: "answer not in this window"
            for t, (s, e) in enumerate(enc["offset_mapping"]):
                if seq[t] != 1:
                    continue
                if s <= a0 < e or (start == 0 and s >= a0):
                    start = start or t
                if s < a1:
                    end = t
            if end < start:
                start = end = 0
            item = {k: enc[k] for k in ("input_ids", "attention_mask", "token_type_ids") if k in enc}
            item.update(start_positions=start, end_positions=end)
            self.items.append(item)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.items[i]


def qa_collate(items: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """Pad token lists with zeros and stack the start/end positions.

    >>> qa_collate([{"input_ids": [1, 2], "start_positions": 1, "end_positions": 1},
    ...             {"input_ids": [3], "start_positions": 0, "end_positions": 0}])["input_ids"]
    tensor([[1, 2],
            [3, 0]])
    """
    n = max(len(it["input_ids"]) for it in items)
    out: dict[str, torch.Tensor] = {}
    for key in items[0]:
        if key in ("start_positions", "end_positions"):
            out[key] = torch.tensor([it[key] for it in items], dtype=torch.long)
        else:
            out[key] = torch.tensor([list(it[key]) + [0] * (n - len(it[key])) for it in items], dtype=torch.long)
    return out


def build_qa_model(base: str | None = None) -> Any:
    """``AutoModelForQuestionAnswering`` on the bundled MiniLM (or ``base``): encoder pretrained, span head new.

    >>> build_qa_model().qa_outputs.out_features
    2
    """
    from transformers import AutoModelForQuestionAnswering
    from transformers.utils import logging as hf_logging

    from tutorlib.models import resolve_model_path

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # "some weights are newly initialized": the span head, as intended
    try:
        return AutoModelForQuestionAnswering.from_pretrained(resolve_model_path(base))
    finally:
        hf_logging.set_verbosity(level)


def train_qa(train: Sequence[QAExample], val: Sequence[QAExample] | None = None, epochs: int = 2, lr: float = 5e-5,
             batch_size: int = 16, max_length: int = 192, base: str | None = None, seed: int = 0,
             device: str | torch.device | None = None, progress: bool = False) -> tuple[Any, Any, Any]:
    """Fine-tune a span-prediction model with the shared ``Trainer``; returns ``(model, tokenizer, history)``.

    The model's own loss (cross-entropy of the start and end positions, averaged) is used.
    """
    from tutorlib.models import load_tokenizer
    from tutorlib.runtime import seed_everything
    from tutorlib.train import Trainer

    if not train:
        raise ValueError("no training examples")
    seed_everything(seed)
    tok = load_tokenizer(base)
    model = build_qa_model(base)
    trainer = Trainer(model, lr=lr, batch_size=batch_size, collate_fn=qa_collate, device=device, seed=seed,
                      progress=progress, log=False, weight_decay=0.01)
    val_ds = QAFeatures(val, tok, max_length) if val else None
    history = trainer.fit(QAFeatures(train, tok, max_length), val_ds, epochs=epochs)
    return trainer.unwrapped_model.eval(), tok, history


@torch.no_grad()
def answer_question(model: Any, tokenizer: Any, question: str, context: str, max_answer_tokens: int = 96,
                    max_length: int = 192) -> str:
    """The context span with the highest start + end score (start ≤ end, inside the context, not too long).

    >>> from tutorlib.models import load_tokenizer
    >>> ans = answer_question(build_qa_model(), load_tokenizer(), "Which?", "Cold soup. Great view.")
    >>> ans in "Cold soup. Great view."
    True
    """
    enc = tokenizer(question, context, truncation="only_second", max_length=max_length, return_offsets_mapping=True,
                    return_tensors="pt")
    offsets = enc.pop("offset_mapping")[0].tolist()
    seq = enc.sequence_ids(0)
    dev = next(model.parameters()).device
    out = model(**{k: v.to(dev) for k, v in enc.items()})
    start, end = out.start_logits[0].float().cpu(), out.end_logits[0].float().cpu()
    ctx = torch.tensor([s == 1 for s in seq])
    if not ctx.any():
        return ""
    s, e = best_span(start, end, max_answer_tokens, allowed=ctx)
    return context[offsets[s][0]:offsets[e][1]]


def best_span(start_logits: torch.Tensor, end_logits: torch.Tensor, max_answer_tokens: int,
              allowed: torch.Tensor | None = None) -> tuple[int, int]:
    """``(s, e)`` maximising ``start_logits[s] + end_logits[e]`` with ``s ≤ e < s + max_answer_tokens``.

    ``allowed`` (bool, same length) marks the positions a span may use (the context's tokens); ties go
    to the first pair in row-major order (smallest ``s``, then smallest ``e``).

    >>> best_span(torch.tensor([0.0, 3.0, 1.0]), torch.tensor([4.0, 0.0, 2.0]), max_answer_tokens=3)  # (1, 0) scores 7 but ends before it starts
    (1, 2)
    """
    if start_logits.dim() != 1 or start_logits.shape != end_logits.shape:
        raise ValueError(f"expected two 1-D score vectors of the same length, got {tuple(start_logits.shape)} "
                         f"and {tuple(end_logits.shape)}")
    if max_answer_tokens < 1:
        raise ValueError(f"max_answer_tokens must be at least 1, got {max_answer_tokens}")
    start, end = start_logits.float().cpu(), end_logits.float().cpu()
    if allowed is not None:
        allowed = allowed.bool().cpu()
        if not allowed.any():
            raise ValueError("no position is allowed: the span must lie somewhere")
        start = start.masked_fill(~allowed, float("-inf"))
        end = end.masked_fill(~allowed, float("-inf"))
    n = len(start)
    scores = start[:, None] + end[None, :]
    i, j = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
    scores = scores.masked_fill((j < i) | (j - i >= max_answer_tokens), float("-inf"))
    s, e = divmod(int(scores.argmax()), n)
    return s, e


def evaluate_qa(model: Any, tokenizer: Any, examples: Sequence[QAExample]) -> dict[str, Any]:
    """Exact match and token F1 (in %) of :func:`answer_question` over ``examples``, with the predictions.

    >>> from tutorlib.models import load_tokenizer
    >>> sorted(evaluate_qa(build_qa_model(), load_tokenizer(), review_qa_examples("val", n=1)))
    ['exact_match', 'predictions', 'token_f1']
    """
    from tutorlib.llm.metrics import exact_match, token_f1

    if not examples:
        raise ValueError("no examples to evaluate")
    preds = [answer_question(model, tokenizer, ex.question, ex.context) for ex in examples]
    em = sum(exact_match(p, ex.answer) for p, ex in zip(preds, examples)) / len(examples)
    f1 = sum(token_f1(p, ex.answer) for p, ex in zip(preds, examples)) / len(examples)
    return {"exact_match": 100 * em, "token_f1": 100 * f1, "predictions": preds}


def summary_prompt(text: str) -> str:
    """The prompt format of the summarization task.

    >>> summary_prompt("Great.")
    'Review: Great.\\nSummary:'
    """
    return f"Review: {text}\nSummary:"


def review_summary_examples(split: str = "train", n: int | None = None, seed: int = 0) -> list[dict[str, str]]:
    """Prompt/completion pairs: a review, and its gist ``" positive review of a hotel"`` (plus the reference).

    >>> review_summary_examples("val", n=1)[0]["prompt"].startswith("Review: ")
    True
    """
    from tutorlib.data import load_reviews

    ds = load_reviews(split)
    order = list(range(len(ds)))
    random.Random(seed).shuffle(order)
    rows = []
    for i in order[:n]:
        gist = f" {ds.label_names[ds.labels[i]]} review of {DOMAIN_PHRASES.get(ds.domains[i], ds.domains[i])}"
        rows.append({"prompt": summary_prompt(ds.texts[i]), "completion": gist})
    return rows


@torch.no_grad()
def summarize(model: Any, tokenizer: Any, prompts: Sequence[str], max_new_tokens: int = 32,
              num_beams: int = 1) -> list[str]:
    """Greedy (or beam) completions of ``prompts`` by a Hugging Face causal LM, cut at EOS or a newline.

    Uses the model's own ``generate()`` (with its key/value cache: several times faster than our
    cache-free decoders, and token-for-token the same as :func:`~tutorlib.llm.greedy` /
    :func:`~tutorlib.llm.beam_search`, as the tests check). Prompts longer than the model's
    context are cut from the left.
    """
    limit = getattr(model.config, "n_positions", None) or getattr(model.config, "max_position_embeddings", 2048)
    dev = next(model.parameters()).device
    eos = tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    out = []
    for p in prompts:
        ids = tokenizer(p, add_special_tokens=False)["input_ids"][-(int(limit) - max_new_tokens):]
        x = torch.tensor([ids], device=dev)
        y = model.generate(input_ids=x, attention_mask=torch.ones_like(x), max_new_tokens=max_new_tokens,
                           do_sample=False, num_beams=num_beams, eos_token_id=eos, pad_token_id=pad)
        new = y[0, x.shape[1]:].tolist()
        if eos in new:
            new = new[:new.index(eos)]
        out.append(tokenizer.decode(new, skip_special_tokens=True).split("\n")[0].strip())
    return out
