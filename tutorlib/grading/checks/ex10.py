"""Checks for lesson 10 (generation & LLM applications): top-p filtering, beam search, repetition penalty,
completion-only label masking, ROUGE-L and memory recall by cosine similarity.

The references are :mod:`tutorlib.generation` (itself checked against ``transformers``' logits processors
and ``generate``) and :func:`tutorlib.finetune.causal_lm.mask_prompt_labels`; inputs come from the
check's private generator.

>>> reference_rouge_l_f1(["a", "b", "c"], ["a", "c"])
0.8
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from ..compare import CheckFailed, call_safely, describe, expect_close, expect_number, expect_tensor
from ..registry import CheckContext, register

__all__ = ["reference_rouge_l_f1", "reference_beam_search"]


def reference_rouge_l_f1(candidate: Sequence[str], reference: Sequence[str]) -> float:
    """ROUGE-L F1 of two token lists (0 when either is empty).

    >>> reference_rouge_l_f1([], ["a"])
    0.0
    """
    from tutorlib.generation.metrics import lcs_length

    lcs = lcs_length(list(candidate), list(reference))
    if not candidate or not reference or not lcs:
        return 0.0
    p, r = lcs / len(candidate), lcs / len(reference)
    return 2 * p * r / (p + r)


def reference_beam_search(next_logits: Any, ids: torch.Tensor, max_new_tokens: int, num_beams: int) -> torch.Tensor:
    """The best beam of :func:`tutorlib.generation.beam_search` for a ``next_logits(ids (n, T)) -> (n, V)`` function."""
    from tutorlib.generation import beam_search

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
    from tutorlib.generation import top_p_filter as ref

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
    from tutorlib.generation import apply_repetition_penalty as ref

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


@register("ex10_4", points=2, timeout=60)
def check_completion_labels(ctx: CheckContext) -> None:
    """``completion_labels(prompt_ids, completion_ids, eos_id)``: ids = prompt + completion + [eos], labels -100 on the prompt."""
    from tutorlib.finetune.causal_lm import IGNORE_INDEX, mask_prompt_labels

    fn = ctx.function("completion_labels")
    for n_p, n_c in ((4, 3), (1, 5), (6, 1)):
        prompt = ctx.randint(50, n_p).tolist()
        completion = ctx.randint(50, n_c).tolist()
        what = f"completion_labels({prompt}, {completion}, eos_id=99)"
        out = call_safely(fn, prompt, completion, 99, name="completion_labels")
        if not isinstance(out, (tuple, list)) or len(out) != 2:
            raise CheckFailed(f"{what} returned {describe(out)}, expected a pair (input_ids, labels)")
        ids, labels = ([int(v) for v in (x.tolist() if isinstance(x, torch.Tensor) else x)] for x in out)
        want_ids, want_labels = mask_prompt_labels(prompt, completion, eos_id=99)
        if ids != want_ids:
            hint = " (append eos_id after the completion)" if ids == prompt + completion else ""
            raise CheckFailed(f"{what}: input_ids are {ids}, expected {want_ids}{hint}")
        if labels != want_labels:
            hint = ""
            if labels == want_ids:
                hint = f" — the prompt positions must be {IGNORE_INDEX} so the loss ignores them"
            elif labels[1:] == want_labels[:-1] or labels[:-1] == want_labels[1:]:
                hint = " — do not shift the labels: the model shifts them itself"
            raise CheckFailed(f"{what}: labels are {labels}, expected {want_labels}{hint}")


@register("ex10_5", points=2, timeout=60)
def check_rouge_l(ctx: CheckContext) -> None:
    """``rouge_l_f1(candidate_tokens, reference_tokens)``: F1 of LCS precision and recall."""
    fn = ctx.function("rouge_l_f1")
    words = ["the", "cat", "sat", "on", "mat", "a", "dog", "ran"]
    cases = [(["the", "cat", "sat"], ["the", "cat", "sat"]), (["cat", "the"], ["the", "cat"]),
             (["a", "b"], ["c", "d"]), ([], ["the"])]
    for _ in range(6):
        n, m = int(ctx.randint(8, 1)) + 2, int(ctx.randint(8, 1)) + 2
        cases.append(([words[i] for i in ctx.randint(8, n).tolist()], [words[i] for i in ctx.randint(8, m).tolist()]))
    for cand, ref in cases:
        what = f"rouge_l_f1({cand}, {ref})"
        got = expect_number(call_safely(fn, cand, ref, name="rouge_l_f1"), what)
        want = reference_rouge_l_f1(cand, ref)
        hint = ""
        if cand and ref:
            from tutorlib.generation.metrics import lcs_length

            lcs = lcs_length(cand, ref)
            if lcs and abs(got - lcs / len(ref)) < 1e-9 and abs(want - lcs / len(ref)) > 1e-9:
                hint = "that is the recall: return the F1 of precision (LCS/len(candidate)) and recall (LCS/len(reference))"
            elif abs(got - len(set(cand) & set(ref)) / len(ref)) < 1e-9 and abs(want - got) > 1e-9:
                hint = "count the longest common subsequence (order matters), not shared words"
        expect_close(float(got), float(want), what, atol=1e-9, rtol=0, hint=hint)


@register("ex10_6", points=1, timeout=60)
def check_recall(ctx: CheckContext) -> None:
    """``recall_top_k(query, memory, k)``: indices of the ``k`` memory rows most cosine-similar to the query."""
    from tutorlib.generation import cosine_top_k

    fn = ctx.function("recall_top_k")
    for k in (1, 3):
        memory = ctx.randn(10, 6) * (torch.rand(10, 1, generator=ctx.generator) * 5 + 0.1).to(ctx.device)
        query = ctx.randn(6)
        what = f"recall_top_k(query (6,), memory (10, 6), k={k})"
        out = call_safely(fn, query, memory, k, name="recall_top_k")
        got = out.tolist() if isinstance(out, torch.Tensor) else list(out) if isinstance(out, (list, tuple)) else out
        if not isinstance(got, list) or len(got) != k:
            raise CheckFailed(f"{what} returned {describe(out)}, expected {k} indices")
        want = cosine_top_k(query, memory, k)[1].tolist()
        if [int(i) for i in got] != want:
            dot = torch.topk(memory @ query, k).indices.tolist()
            hint = " — that ranks by the dot product: divide by both vectors' norms" if [int(i) for i in got] == dot else ""
            hint = hint or (" — best first: sort by decreasing similarity" if sorted(map(int, got)) == sorted(want) else "")
            raise CheckFailed(f"{what} returned {[int(i) for i in got]}, expected {want}{hint}")
