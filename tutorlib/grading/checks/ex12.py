"""Checks for lesson 12 (LLM applications): ROUGE-L and memory recall by cosine similarity.

The references are :mod:`tutorlib.llm.metrics` and :func:`tutorlib.retrieval.cosine_top_k`; inputs come from
the check's private generator.

>>> reference_rouge_l_f1(["a", "b", "c"], ["a", "c"])
0.8
"""

from __future__ import annotations

from typing import Sequence

import torch

from ..compare import CheckFailed, call_safely, describe, expect_close, expect_number
from ..registry import CheckContext, register

__all__ = ["reference_rouge_l_f1"]


def reference_rouge_l_f1(candidate: Sequence[str], reference: Sequence[str]) -> float:
    """ROUGE-L F1 of two token lists (0 when either is empty).

    >>> reference_rouge_l_f1([], ["a"])
    0.0
    """
    from tutorlib.llm.metrics import lcs_length

    lcs = lcs_length(list(candidate), list(reference))
    if not candidate or not reference or not lcs:
        return 0.0
    p, r = lcs / len(candidate), lcs / len(reference)
    return 2 * p * r / (p + r)


@register("ex12_1", points=2, timeout=60)
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
            from tutorlib.llm.metrics import lcs_length

            lcs = lcs_length(cand, ref)
            if lcs and abs(got - lcs / len(ref)) < 1e-9 and abs(want - lcs / len(ref)) > 1e-9:
                hint = "that is the recall: return the F1 of precision (LCS/len(candidate)) and recall (LCS/len(reference))"
            elif abs(got - len(set(cand) & set(ref)) / len(ref)) < 1e-9 and abs(want - got) > 1e-9:
                hint = "count the longest common subsequence (order matters), not shared words"
        expect_close(float(got), float(want), what, atol=1e-9, rtol=0, hint=hint)


@register("ex12_2", points=1, timeout=60)
def check_recall(ctx: CheckContext) -> None:
    """``recall_top_k(query, memory, k)``: indices of the ``k`` memory rows most cosine-similar to the query."""
    from tutorlib.retrieval import cosine_top_k

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
