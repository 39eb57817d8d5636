"""Checks for lesson 12 (LLM applications): ROUGE-L, memory recall by cosine similarity, SQuAD token F1,
the best answer span of extractive QA, and an experiment with the context budget.

The references are :mod:`tutorlib.llm.metrics`, :func:`tutorlib.retrieval.cosine_top_k`,
:func:`tutorlib.llm.tasks.best_span` and :func:`tutorlib.llm.explorers.replay_chat`; inputs come from
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


@register("ex12_3", points=2, timeout=60)
def check_token_f1(ctx: CheckContext) -> None:
    """``qa_token_f1(prediction, reference)``: SQuAD token F1 after ``normalize_answer``."""
    from tutorlib.llm.metrics import normalize_answer, token_f1

    fn = ctx.function("qa_token_f1")
    words = ["The", "room", "was", "cold", "soup", "a", "great", "view", "an", "hotel"]
    cases = [("The room!", "room"), ("cold soup", "soup"), ("", ""), ("the", "a room"), ("soup soup", "soup")]
    for _ in range(6):
        n, m = int(ctx.randint(5, 1)) + 1, int(ctx.randint(5, 1)) + 1
        cases.append((" ".join(words[i] for i in ctx.randint(10, n).tolist()) + ".",
                      " ".join(words[i] for i in ctx.randint(10, m).tolist())))
    for pred, ref in cases:
        what = f"qa_token_f1({pred!r}, {ref!r})"
        got = expect_number(call_safely(fn, pred, ref, name="qa_token_f1"), what)
        want = token_f1(pred, ref)
        hint = ""
        p, r = normalize_answer(pred).split(), normalize_answer(ref).split()
        if p and r and abs(got - len(set(p) & set(r)) / len(r)) < 1e-9 and abs(want - got) > 1e-9:
            hint = "count shared tokens with multiplicity (Counter(p) & Counter(r)) and return the F1 of precision and recall"
        elif (not p or not r) and abs(want - got) > 1e-9:
            hint = "when either side is empty after normalisation, the F1 is 1.0 if both are empty, else 0.0"
        elif abs(want - got) > 1e-9 and pred.lower() != normalize_answer(pred):
            hint = "normalise both texts first with normalize_answer (lower case, no punctuation, no articles)"
        expect_close(float(got), float(want), what, atol=1e-9, rtol=0, hint=hint)


@register("ex12_4", points=2, timeout=60)
def check_best_span(ctx: CheckContext) -> None:
    """``best_span(start_logits, end_logits, max_answer_tokens)``: the best (s, e) with s ≤ e < s + max."""
    from tutorlib.llm.tasks import best_span

    fn = ctx.function("best_span")
    for n, k in ((6, 3), (10, 2), (8, 8), (5, 1)):
        start, end = ctx.randn(n), ctx.randn(n)
        end[0] += 6.0                                  # tempting: an end before most starts
        what = f"best_span(start_logits ({n},), end_logits ({n},), max_answer_tokens={k})"
        out = call_safely(fn, start, end, k, name="best_span")
        try:
            got = tuple(int(v) for v in out)
        except (TypeError, ValueError):
            raise CheckFailed(f"{what} returned {describe(out)}, expected a pair (s, e) of ints") from None
        want = best_span(start, end, k)
        if got != want:
            hint = ""
            if len(got) == 2 and got[1] < got[0]:
                hint = " — the answer cannot end before it starts: require s ≤ e"
            elif len(got) == 2 and got[1] - got[0] >= k:
                hint = f" — the span may have at most {k} tokens: require e < s + max_answer_tokens"
            elif len(got) == 2 and got == (int(start.argmax()), int(end.argmax())):
                hint = " — choose the pair with the best start + end score, not each argmax on its own"
            raise CheckFailed(f"{what} returned {got}, expected {want}{hint}")


@register("ex12_5", points=1, timeout=120)
def check_budget_experiment(ctx: CheckContext) -> None:
    """``first_kept_budget``: the smallest budget in ``budgets`` whose last truncated prompt still holds the first message."""
    from tutorlib.llm.explorers import replay_chat

    messages = ctx.get("messages")
    budgets = ctx.get("budgets")
    if not isinstance(messages, (list, tuple)) or not messages or not all(isinstance(m, str) for m in messages):
        raise CheckFailed(f"`messages` is {describe(messages)}: keep the list of the conversation's messages")
    if not isinstance(budgets, (list, tuple, range)) or not budgets:
        raise CheckFailed(f"`budgets` is {describe(budgets)}: keep the list of budgets to try")
    got = ctx.get("first_kept_budget")
    want = None
    for b in sorted(int(b) for b in budgets):
        chat = replay_chat(messages, lambda prompt: "ok", b, "truncate", len, "", 0)
        if messages[0] in chat.last_prompt:
            want = b
            break
    if got != want:
        hint = ""
        if want is not None and isinstance(got, int) and got > want:
            hint = " — that budget keeps it, but a smaller one in `budgets` already does"
        raise CheckFailed(f"`first_kept_budget` is {describe(got)}, expected {want}{hint}")
