"""Prompting a chat model for a structured answer: zero-shot and few-shot chat messages, batched greedy generation.

The baselines every tuning gain in lesson 11 is measured against. A few-shot prompt shows ``k`` solved
examples as earlier user/assistant turns of the chat, so the model sees the exact answer format; which
examples are shown (and how the instruction is worded) changes the result, which is why few-shot accuracy is
reported over several draws. :func:`generate_answers` decodes a batch greedily with left padding and an
attention mask (SmolLM2's pad token is its end-of-turn token, so the mask is what tells padding apart).

>>> msgs = few_shot_messages("Great kettle. 5/5.", [("Bad toaster.", '{"sentiment": "negative"}')], system="Reply in JSON.")
>>> [m["role"] for m in msgs]
['system', 'user', 'assistant', 'user']
"""

from __future__ import annotations

import random
from typing import Any, Sequence

import torch

__all__ = ["CharChatTokenizer", "EXTRACTION_SYSTEM", "TUNED_SYSTEM", "few_shot_messages", "draw_shots", "chat_prompts",
           "generate_answers"]

#: The short, explicit system message every method in lesson 11 uses (without one, SmolLM2's chat template
#: inserts its own default system message of about 20 tokens into every example).
EXTRACTION_SYSTEM = ("Reply with JSON only: product, sentiment (positive/negative/mixed), rating (1-5 or null), "
                     "issue (price/quality/service/delay/none), would_recommend (true/false).")

#: The system message of the fine-tuned model: after SFT the schema is learned, so the instruction can be short.
TUNED_SYSTEM = "Extract the review as JSON."


def few_shot_messages(query: str, shots: Sequence[tuple[str, str]] = (), *, system: str | None = EXTRACTION_SYSTEM
                      ) -> list[dict[str, str]]:
    """Chat messages: the system message, each ``(input, answer)`` shot as a user and an assistant turn, then ``query``.

    With no shots this is the zero-shot prompt.

    >>> few_shot_messages("hi", system=None)
    [{'role': 'user', 'content': 'hi'}]
    """
    if not isinstance(query, str):
        raise TypeError(f"query must be a string (the text to answer about), got {type(query).__name__}")
    msgs = [{"role": "system", "content": system}] if system else []
    for shot in shots:
        if len(shot) != 2:
            raise ValueError(f"each shot is an (input, answer) pair, got {shot!r}")
        msgs += [{"role": "user", "content": shot[0]}, {"role": "assistant", "content": shot[1]}]
    return msgs + [{"role": "user", "content": query}]


def draw_shots(pool: Sequence[Any], k: int, seed: int, *, key: Any = None) -> list[Any]:
    """``k`` examples drawn from ``pool`` with ``seed``; with ``key`` (e.g. the label), one per distinct key first.

    Drawing across labels avoids a prompt whose every shot is positive, which biases the answers.

    >>> sorted(x % 3 for x in draw_shots(list(range(10)), 3, seed=0, key=lambda x: x % 3))   # one per key
    [0, 1, 2]
    """
    if not 0 <= k <= len(pool):
        raise ValueError(f"cannot draw {k} shots from a pool of {len(pool)}")
    rng = random.Random(seed)
    order = list(pool)
    rng.shuffle(order)
    if key is None:
        return order[:k]
    picked, seen = [], set()
    for item in order:
        if len(picked) < k and key(item) not in seen:
            picked.append(item)
            seen.add(key(item))
    picked += [x for x in order if x not in picked][:k - len(picked)]
    return picked


def chat_prompts(tokenizer: Any, message_lists: Sequence[Sequence[dict[str, str]]]) -> list[str]:
    """Each message list rendered by the tokenizer's chat template, ending with the assistant's turn opening.

    >>> class T:  # any tokenizer with a chat template
    ...     def apply_chat_template(self, m, add_generation_prompt, tokenize): return m[-1]["content"] + "|A:"
    >>> chat_prompts(T(), [[{"role": "user", "content": "hi"}]])
    ['hi|A:']
    """
    return [tokenizer.apply_chat_template(list(m), add_generation_prompt=True, tokenize=False) for m in message_lists]


@torch.no_grad()
def generate_answers(model: Any, tokenizer: Any, message_lists: Sequence[Sequence[dict[str, str]]], *,
                     max_new_tokens: int = 48, batch_size: int = 16, stop: str | None = None,
                     progress: bool = False) -> list[str]:
    """Greedy answers to each chat, decoded in batches (left padding + attention mask), special tokens removed.

    Generation ends at the end-of-turn token, after ``max_new_tokens``, or once every answer in the batch
    contains ``stop`` (the text after ``stop`` is cut off; e.g. ``stop="}"`` for a JSON object).
    Prompts are sorted by length so each batch pads little; answers come back in the input order.
    ``progress`` shows a bar over the batches.

    >>> from transformers import AutoTokenizer  # doctest: +SKIP
    >>> generate_answers(model, tok, [few_shot_messages("Loved the kettle. 5/5.")])  # doctest: +SKIP
    ['{"product": "kettle", ...}']
    """
    if max_new_tokens < 1 or batch_size < 1:
        raise ValueError(f"max_new_tokens and batch_size must be at least 1, got {max_new_tokens} and {batch_size}")
    prompts = chat_prompts(tokenizer, message_lists)
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    answers: list[str] = [""] * len(prompts)
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    batches = range(0, len(order), batch_size)
    if progress:
        from tqdm.auto import tqdm

        batches = tqdm(batches, desc="answering", leave=False)
    try:
        for start in batches:
            idx = order[start:start + batch_size]
            enc = tokenizer([prompts[i] for i in idx], return_tensors="pt", padding=True, add_special_tokens=False).to(device)
            kwargs: dict[str, Any] = {}
            if stop is not None:
                kwargs["stopping_criteria"] = [_AllContain(tokenizer, enc["input_ids"].shape[1], stop)]
            out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False,
                                 pad_token_id=tokenizer.pad_token_id, **kwargs)
            for i, row in zip(idx, out[:, enc["input_ids"].shape[1]:]):
                text = tokenizer.decode(row, skip_special_tokens=True)
                answers[i] = text[:text.index(stop) + len(stop)] if stop is not None and stop in text else text
    finally:
        tokenizer.padding_side = side
        model.train(was_training)
    return answers


class _AllContain:
    """A ``transformers`` stopping criterion: stop once every sequence's new text contains ``stop``."""

    def __init__(self, tokenizer: Any, prompt_len: int, stop: str):
        self.tokenizer, self.prompt_len, self.stop = tokenizer, prompt_len, stop

    def __call__(self, input_ids: torch.Tensor, scores: Any, **kwargs: Any) -> torch.Tensor:
        done = [self.stop in self.tokenizer.decode(row[self.prompt_len:], skip_special_tokens=True) for row in input_ids]
        return torch.tensor(done, device=input_ids.device)


class CharChatTokenizer:
    """A character-level tokenizer with SmolLM2's ChatML chat template, small enough to read token by token
    (exercises and tests): ``<|im_start|>`` is 1, ``<|im_end|>`` 2 (EOS), a newline 3, a printable ASCII
    character ``ord(c) - 28``.

    >>> tok = CharChatTokenizer()
    >>> tok(tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False))["input_ids"][:3]
    [1, 89, 87]
    """

    chat_template = "chatml"
    eos_token_id = 2
    unk_token_id = None
    SPECIAL = {"<|im_start|>": 1, "<|im_end|>": 2}

    def __eq__(self, other: object) -> bool:  # stateless: every instance encodes alike
        return isinstance(other, CharChatTokenizer)

    def __hash__(self) -> int:
        return hash(CharChatTokenizer)

    def apply_chat_template(self, messages: Any, tokenize: bool = False, add_generation_prompt: bool = False) -> Any:
        text = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)
        if add_generation_prompt:
            text += "<|im_start|>assistant\n"
        return self(text)["input_ids"] if tokenize else text

    def _encode(self, text: str) -> list[int]:
        ids, i = [], 0
        while i < len(text):
            for tok, tid in self.SPECIAL.items():
                if text.startswith(tok, i):
                    ids.append(tid)
                    i += len(tok)
                    break
            else:
                ids.append(3 if text[i] == "\n" else ord(text[i]) + 3 - 32 + 1)
                i += 1
        return ids

    def __call__(self, text: str, add_special_tokens: bool = False) -> dict:
        return {"input_ids": self._encode(text)}

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        return self._encode(text)

    def convert_tokens_to_ids(self, token: str) -> int | None:
        return self.SPECIAL.get(token)

    def decode(self, ids: Any, skip_special_tokens: bool = False) -> str:
        inv = {v: k for k, v in self.SPECIAL.items()}
        return "".join("" if (i in inv and skip_special_tokens) else inv.get(i, "\n" if i == 3 else chr(i - 4 + 32))
                       for i in ids)
