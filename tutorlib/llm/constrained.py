"""Constrained decoding: greedy generation that can only write a JSON object valid under a fixed schema.

At every step the decoder masks the model's next-token scores so that only tokens keeping the output valid
remain, then takes the best of those. The keys, quotes and commas are forced (fed to the model without a
choice); an enumerated field may only continue one of its allowed values (a walk down the token trie of the
values, :func:`allowed_next_tokens`); a free string field may use any token without a quote or a newline
until the model picks a token that closes the string. The answer therefore always parses and every field
has an allowed value — what the model still decides is which one.

>>> allowed_next_tokens([[5, 1], [5, 2], [7]], [5])
[1, 2]
>>> allowed_next_tokens([[5, 1], [5, 2], [7]], [])
[5, 7]
"""

from __future__ import annotations

import json
from typing import Any, Sequence

import torch

from tutorlib.models.llm import cache_argument

__all__ = ["STRING", "extraction_schema", "allowed_next_tokens", "JsonConstrainer", "constrained_answers"]

#: The spec of a free string field (any text without a quote or a newline).
STRING = "string"


def extraction_schema() -> list[tuple[str, Any]]:
    """The review-extraction schema: ``(key, spec)`` in answer order; spec is :data:`STRING` or the allowed values.

    >>> [k for k, _ in extraction_schema()]
    ['product', 'sentiment', 'rating', 'issue', 'would_recommend']
    """
    from tutorlib.data.instructions import EXTRACTION_CHOICES, EXTRACTION_FIELDS

    return [(k, STRING if k == "product" else tuple(EXTRACTION_CHOICES[k])) for k in EXTRACTION_FIELDS]


def allowed_next_tokens(candidates: Sequence[Sequence[int]], prefix: Sequence[int]) -> list[int]:
    """The token ids that continue ``prefix`` towards at least one candidate (sorted, without repeats).

    ``candidates`` are the token sequences of the allowed values; an empty list means ``prefix`` already is a
    whole candidate (or is no candidate's prefix at all).

    >>> allowed_next_tokens([[3, 4], [3, 4, 9]], [3, 4])
    [9]
    """
    n = len(prefix)
    return sorted({int(c[n]) for c in candidates if len(c) > n and list(c[:n]) == list(prefix)})


class JsonConstrainer:
    """Schema-constrained greedy decoding of one JSON object for a ``transformers`` causal LM and its tokenizer.

    ``schema``: ``[(key, spec), ...]`` with spec :data:`STRING` or a tuple of allowed JSON values (strings,
    ints, ``True``/``False``, ``None``). ``max_string_tokens`` bounds a free string.

    >>> c = JsonConstrainer(tok, extraction_schema())          # doctest: +SKIP
    >>> c.decode(model, prompt_ids)                             # doctest: +SKIP
    '{"product": "kettle", "sentiment": "positive", "rating": 5, "issue": "none", "would_recommend": true}'
    """

    def __init__(self, tokenizer: Any, schema: Sequence[tuple[str, Any]], max_string_tokens: int = 12):
        if not schema:
            raise ValueError("the schema has no fields: pass [(key, spec), ...]")
        self.tok, self.schema, self.max_string_tokens = tokenizer, list(schema), max_string_tokens
        self.candidates: dict[str, list[list[int]]] = {}
        self.values: dict[str, dict[tuple[int, ...], Any]] = {}
        for key, spec in self.schema:
            if spec == STRING:
                continue
            if not isinstance(spec, (tuple, list)) or not spec:
                raise ValueError(f"field {key!r}: spec must be {STRING!r} or a non-empty tuple of allowed values, got {spec!r}")
            seqs = {tuple(self._encode(" " + json.dumps(v))): v for v in spec}
            for s in seqs:
                if any(len(o) > len(s) and o[:len(s)] == s for o in seqs):
                    raise ValueError(f"field {key!r}: the tokens of {seqs[s]!r} are a prefix of another value's; "
                                     "the decoder could not tell where the value ends")
            self.candidates[key] = [list(s) for s in seqs]
            self.values[key] = seqs
        vocab = self._vocab_texts()
        special = set(getattr(tokenizer, "all_special_ids", []))
        self.string_ok = torch.tensor([('"' not in t and "\n" not in t and "\\" not in t and i not in special and t != "")
                                       for i, t in enumerate(vocab)])
        self.string_close = torch.tensor([t.startswith('"') and i not in special for i, t in enumerate(vocab)])
        if not bool(self.string_close.any()):
            raise ValueError("the tokenizer has no token starting with a quote: a string field could never close")

    def _encode(self, text: str) -> list[int]:
        return list(self.tok.encode(text, add_special_tokens=False))

    def _vocab_texts(self) -> list[str]:
        n = len(self.tok)
        return [self.tok.decode([i]) for i in range(n)]

    def _segments(self, i: int) -> str:
        """The forced text before field ``i``'s value (``len(schema)`` gives the closing brace)."""
        if i == len(self.schema):
            return "}" if self.schema[-1][1] != STRING else '"}'
        key, spec = self.schema[i]
        lead = "{" if i == 0 else ('", ' if self.schema[i - 1][1] == STRING else ", ")
        return lead + json.dumps(key) + (': "' if spec == STRING else ":")

    @torch.no_grad()
    def decode(self, model: Any, prompt_ids: Sequence[int]) -> str:
        """The constrained greedy answer (a JSON string) to one prompt, given as token ids."""
        device = next(model.parameters()).device
        past, values = None, {}

        pending: list[int] = []  # tokens fixed but not yet fed: fed together once their scores are needed
        key_name = cache_argument(model)

        def feed(ids: list[int]) -> torch.Tensor:
            nonlocal past
            ids, pending[:] = pending + ids, []
            out = model(input_ids=torch.tensor([ids], device=device), use_cache=True, **{key_name: past})
            past = getattr(out, key_name)
            return out.logits[0, -1].float()

        logits = None
        pending += list(prompt_ids)
        for i, (key, spec) in enumerate(self.schema):
            pending += self._encode(self._segments(i))
            if spec == STRING:
                logits = feed([])
                chosen: list[int] = []
                while len(chosen) < self.max_string_tokens:
                    ok = self.string_ok | (self.string_close if chosen else torch.zeros_like(self.string_close))
                    nxt = int(logits[:len(ok)].masked_fill(~ok.to(logits.device), float("-inf")).argmax())
                    if bool(self.string_close[nxt]):
                        break
                    chosen.append(nxt)
                    logits = feed([nxt])
                values[key] = self.tok.decode(chosen).strip()
            else:
                prefix: list[int] = []
                while allowed := allowed_next_tokens(self.candidates[key], prefix):
                    if len(allowed) > 1:
                        logits = feed([])
                        nxt = allowed[int(logits[allowed].argmax())]
                    else:
                        nxt = allowed[0]
                    prefix.append(nxt)
                    pending.append(nxt)
                values[key] = self.values[key][tuple(prefix)]
        return json.dumps({k: values[k] for k, _ in self.schema})


def constrained_answers(model: Any, tokenizer: Any, message_lists: Sequence[Sequence[dict[str, str]]],
                        schema: Sequence[tuple[str, Any]] | None = None, *, constrainer: JsonConstrainer | None = None
                        ) -> list[str]:
    """Schema-valid JSON answers to each chat (default schema: :func:`extraction_schema`), one prompt at a time.

    >>> constrained_answers(model, tok, [few_shot_messages("Loved the kettle.")])  # doctest: +SKIP
    ['{"product": "kettle", "sentiment": "positive", "rating": null, "issue": "none", "would_recommend": true}']
    """
    c = constrainer or JsonConstrainer(tokenizer, schema if schema is not None else extraction_schema())
    was_training = model.training
    model.eval()
    try:
        out = []
        for msgs in message_lists:
            text = tokenizer.apply_chat_template(list(msgs), add_generation_prompt=True, tokenize=False)
            out.append(c.decode(model, tokenizer.encode(text, add_special_tokens=False)))
        return out
    finally:
        model.train(was_training)
