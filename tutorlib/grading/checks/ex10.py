"""Checks for lesson 10 (inside a Transformer LLM): top-p filtering, beam search and the repetition penalty.

The references are :mod:`tutorlib.llm` (itself checked against ``transformers``' logits processors and
``generate``); inputs come from the check's private generator.

>>> out = reference_beam_search(lambda ids: torch.zeros(ids.shape[0], 5), torch.zeros(1, 2, dtype=torch.long), 2, 2)
>>> tuple(out.shape)
(1, 4)
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from ..compare import CheckFailed, call_safely, describe, expect_close, expect_number, expect_tensor
from ..registry import CheckContext, register

__all__ = ["reference_beam_search"]


def reference_beam_search(next_logits: Any, ids: torch.Tensor, max_new_tokens: int, num_beams: int) -> torch.Tensor:
    """The best beam of :func:`tutorlib.llm.beam_search` for a ``next_logits(ids (n, T)) -> (n, V)`` function."""
    from tutorlib.llm import beam_search

    return beam_search(lambda x: next_logits(x), ids, max_new_tokens, num_beams=num_beams)


def _random_lm(ctx: CheckContext, vocab: int = 12) -> Any:
    """A small deterministic "language model": next-token logits from the last two tokens, random tables."""
    table1 = 2.0 * torch.randn(vocab, vocab, generator=ctx.generator)
    table2 = 2.0 * torch.randn(vocab, vocab, generator=ctx.generator)

    def next_logits(ids: torch.Tensor) -> torch.Tensor:
        if not isinstance(ids, torch.Tensor) or ids.dim() != 2:
            raise CheckFailed(f"next_logits was called with {describe(ids)}: pass the beams as a (n_beams, T) tensor")
        prev = ids[:, -2] if ids.shape[1] > 1 else ids[:, -1]
        return table1[ids[:, -1].cpu()] + table2[prev.cpu()]
    return next_logits


@register("ex10_1", points=2, timeout=60)
def check_top_p(ctx: CheckContext) -> None:
    """``top_p_filter(logits, p)``: -inf outside the nucleus, logits unchanged inside, at least one token kept."""
    from tutorlib.llm import top_p_filter as ref

    fn = ctx.function("top_p_filter")
    for p in (0.9, 0.5, 0.05, 1.0):
        logits = 2 * ctx.randn(3, 20)
        what = f"top_p_filter(logits of shape (3, 20), p={p})"
        out = call_safely(fn, logits, p, name="top_p_filter")
        expect_tensor(out, what, shape=(3, 20), dtype=logits.dtype, device=logits.device)
        want = ref(logits, p)
        got_removed, want_removed = torch.isneginf(out), torch.isneginf(want)
        if not torch.equal(got_removed, want_removed):
            row = int((got_removed != want_removed).any(1).nonzero()[0])
            kept, should = int((~got_removed[row]).sum()), int((~want_removed[row]).sum())
            hint = ""
            if kept == should + 1:
                hint = " (you keep one token too many: a token stays only while the probability of the tokens before it is below p)"
            elif kept == should - 1:
                hint = " (one token too few: keep the token that makes the running total reach p)"
            elif kept == 20 - should:
                hint = " (the kept and removed sets are swapped)"
            raise CheckFailed(f"{what}: row {row} keeps {kept} tokens, expected {should}{hint}")
        expect_close(out[~want_removed], want[~want_removed], f"the kept logits of {what}", atol=1e-6,
                     hint="do not rescale the kept logits: only replace the removed ones by -inf")


@register("ex10_2", points=3, timeout=60)
def check_beam_search(ctx: CheckContext) -> None:
    """``beam_search(next_logits, ids, max_new_tokens, num_beams)``: the same best sequence as the reference."""
    fn = ctx.function("beam_search")
    lm = _random_lm(ctx)
    for num_beams, steps in ((1, 5), (3, 6), (4, 5)):
        ids = ctx.randint(12, 1, 3).cpu()
        what = f"beam_search(next_logits, ids={ids.tolist()}, max_new_tokens={steps}, num_beams={num_beams})"
        out = call_safely(fn, lm, ids, steps, num_beams, name="beam_search")
        expect_tensor(out, what, shape=(1, 3 + steps))
        want = reference_beam_search(lm, ids, steps, num_beams)
        if not torch.equal(out.long().cpu(), want):
            hint = ""
            greedy = ids.clone()
            for _ in range(steps):
                greedy = torch.cat([greedy, lm(greedy).argmax(-1, keepdim=True)], 1)
            if num_beams > 1 and torch.equal(out.long().cpu(), greedy):
                hint = " — that is the greedy answer: keep num_beams candidates, ranked by their total log-probability"
            raise CheckFailed(f"{what} returned {out.tolist()}, expected {want.tolist()}{hint}")


@register("ex10_3", points=1, timeout=60)
def check_repetition_penalty(ctx: CheckContext) -> None:
    """``repetition_penalty(logits, ids, penalty)``: seen tokens' positive logits ÷ penalty, negative × penalty."""
    from tutorlib.llm import apply_repetition_penalty as ref

    fn = ctx.function("repetition_penalty")
    for penalty in (1.5, 1.0, 0.8):
        logits = 3 * ctx.randn(2, 15)
        ids = ctx.randint(15, 2, 6)  # repeated ids included
        what = f"repetition_penalty(logits (2, 15), ids (2, 6), penalty={penalty})"
        out = call_safely(fn, logits, ids, penalty, name="repetition_penalty")
        expect_tensor(out, what, shape=(2, 15), dtype=logits.dtype, device=logits.device)
        want = ref(logits, ids, penalty)
        hint = ""
        if penalty != 1 and out.shape == want.shape:
            divided = logits.scatter(1, ids, torch.gather(logits, 1, ids) / penalty)
            if torch.allclose(out, divided, atol=1e-6):
                hint = "dividing a negative logit makes it larger (more likely): multiply negative logits by the penalty"
        expect_close(out, want, what, atol=1e-5, rtol=1e-5, hint=hint)
