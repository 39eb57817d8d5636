"""Checks for lesson 12 (LLM applications): ROUGE-L, memory recall by cosine similarity, SQuAD token F1,
the best answer span of extractive QA, and an experiment with the context budget.

Every check follows the protocol (:mod:`tutorlib.grading.protocol`): ``inputs`` draws the data from the
generator it is given, ``call`` runs the learner's code and returns plain data, ``compare`` checks it
against :mod:`tutorlib.llm.metrics`, :func:`tutorlib.retrieval.cosine_top_k`,
:func:`tutorlib.llm.tasks.best_span` and :func:`tutorlib.llm.explorers.replay_chat`.

>>> reference_rouge_l_f1(["a", "b", "c"], ["a", "c"])
0.8
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from ..compare import CheckFailed, describe, expect_close, expect_number
from ..protocol import Learner, exercise

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


_WORDS = ["the", "cat", "sat", "on", "mat", "a", "dog", "ran"]


@exercise("ex12_1", points=2, timeout=60)
class RougeLCheck:
    """``rouge_l_f1(candidate_tokens, reference_tokens)``: F1 of LCS precision and recall."""

    names = ("rouge_l_f1",)
    reference = ("tutorlib.llm.metrics.lcs_length", "tutorlib.grading.checks.ex12.reference_rouge_l_f1")
    hints = (
        "ROUGE-L is built on the longest common subsequence (order matters, gaps allowed): compute its length by dynamic programming.",
        "precision = LCS / len(candidate), recall = LCS / len(reference); return their F1 (0.0 when either list is empty or LCS is 0).",
    )

    def inputs(self, gen: torch.Generator) -> dict:
        cases = [(["the", "cat", "sat"], ["the", "cat", "sat"]), (["cat", "the"], ["the", "cat"]),
                 (["a", "b"], ["c", "d"]), ([], ["the"])]
        for _ in range(6):
            n, m = int(torch.randint(8, (1,), generator=gen)) + 2, int(torch.randint(8, (1,), generator=gen)) + 2
            cases.append(([_WORDS[i] for i in torch.randint(8, (n,), generator=gen).tolist()],
                          [_WORDS[i] for i in torch.randint(8, (m,), generator=gen).tolist()]))
        return {"cases": cases}

    def call(self, learner: Learner, inputs: dict) -> list:
        fn = learner.function("rouge_l_f1")
        return [learner.call(fn, list(c), list(r), name="rouge_l_f1") for c, r in inputs["cases"]]

    def compare(self, inputs: dict, outputs: list) -> None:
        from tutorlib.llm.metrics import lcs_length

        for (cand, ref), got in zip(inputs["cases"], outputs):
            what = f"rouge_l_f1({cand}, {ref})"
            got = expect_number(got, what)
            want = reference_rouge_l_f1(cand, ref)
            hint = ""
            if cand and ref:
                lcs = lcs_length(cand, ref)
                if lcs and abs(got - lcs / len(ref)) < 1e-9 and abs(want - lcs / len(ref)) > 1e-9:
                    hint = "that is the recall: return the F1 of precision (LCS/len(candidate)) and recall (LCS/len(reference))"
                elif abs(got - len(set(cand) & set(ref)) / len(ref)) < 1e-9 and abs(want - got) > 1e-9:
                    hint = "count the longest common subsequence (order matters), not shared words"
            expect_close(float(got), float(want), what, atol=1e-9, rtol=0, hint=hint)


def _indices(out: Any) -> Any:
    if isinstance(out, torch.Tensor):
        return [int(i) for i in out.flatten().tolist()]
    if isinstance(out, (list, tuple)) and all(isinstance(i, (int, torch.Tensor)) for i in out):
        return [int(i) for i in out]
    return describe(out)


@exercise("ex12_2", points=1, timeout=60)
class RecallCheck:
    """``recall_top_k(query, memory, k)``: indices of the ``k`` memory rows most cosine-similar to the query."""

    names = ("recall_top_k",)
    reference = ("tutorlib.retrieval.cosine_top_k",)
    hints = (
        "cosine similarity divides the dot product by both vectors' norms, so long memory rows do not win just for their length.",
        "return the indices of the k largest similarities, best first: torch.topk(sims, k).indices.",
    )

    def inputs(self, gen: torch.Generator) -> dict:
        return {"cases": [{"k": k, "memory": torch.randn(10, 6, generator=gen) * (torch.rand(10, 1, generator=gen) * 5 + 0.1),
                           "query": torch.randn(6, generator=gen)} for k in (1, 3)]}

    def call(self, learner: Learner, inputs: dict) -> list:
        fn, dev = learner.function("recall_top_k"), learner.device
        return [_indices(learner.call(fn, c["query"].to(dev), c["memory"].to(dev), c["k"], name="recall_top_k"))
                for c in inputs["cases"]]

    def compare(self, inputs: dict, outputs: list) -> None:
        from tutorlib.retrieval import cosine_top_k

        for c, got in zip(inputs["cases"], outputs):
            k, memory, query = c["k"], c["memory"], c["query"]
            what = f"recall_top_k(query (6,), memory (10, 6), k={k})"
            if not isinstance(got, list) or len(got) != k:
                raise CheckFailed(f"{what} returned {got if isinstance(got, str) else describe(got)}, expected {k} indices")
            want = cosine_top_k(query, memory, k)[1].tolist()
            if got != want:
                dot = torch.topk(memory @ query, k).indices.tolist()
                hint = " — that ranks by the dot product: divide by both vectors' norms" if got == dot else ""
                hint = hint or (" — best first: sort by decreasing similarity" if sorted(got) == sorted(want) else "")
                raise CheckFailed(f"{what} returned {got}, expected {want}{hint}")


_QA_WORDS = ["The", "room", "was", "cold", "soup", "a", "great", "view", "an", "hotel"]


@exercise("ex12_3", points=2, timeout=60)
class TokenF1Check:
    """``qa_token_f1(prediction, reference)``: SQuAD token F1 after ``normalize_answer``."""

    names = ("qa_token_f1",)
    reference = ("tutorlib.llm.metrics.token_f1",)
    hints = (
        "normalise both texts first with normalize_answer (lower case, no punctuation, no articles), then split into tokens.",
        "shared tokens count with multiplicity: sum((Counter(p) & Counter(r)).values()); return the F1 of precision and recall.",
        "when either side is empty after normalisation, the F1 is 1.0 if both are empty, else 0.0.",
    )

    def inputs(self, gen: torch.Generator) -> dict:
        cases = [("The room!", "room"), ("cold soup", "soup"), ("", ""), ("the", "a room"), ("soup soup", "soup")]
        for _ in range(6):
            n, m = int(torch.randint(5, (1,), generator=gen)) + 1, int(torch.randint(5, (1,), generator=gen)) + 1
            cases.append((" ".join(_QA_WORDS[i] for i in torch.randint(10, (n,), generator=gen).tolist()) + ".",
                          " ".join(_QA_WORDS[i] for i in torch.randint(10, (m,), generator=gen).tolist())))
        return {"cases": cases}

    def call(self, learner: Learner, inputs: dict) -> list:
        fn = learner.function("qa_token_f1")
        return [learner.call(fn, p, r, name="qa_token_f1") for p, r in inputs["cases"]]

    def compare(self, inputs: dict, outputs: list) -> None:
        from tutorlib.llm.metrics import normalize_answer, token_f1

        for (pred, ref), got in zip(inputs["cases"], outputs):
            what = f"qa_token_f1({pred!r}, {ref!r})"
            got = expect_number(got, what)
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


@exercise("ex12_4", points=2, timeout=60)
class BestSpanCheck:
    """``best_span(start_logits, end_logits, max_answer_tokens)``: the best (s, e) with s ≤ e < s + max."""

    names = ("best_span",)
    reference = ("tutorlib.llm.tasks.best_span",)
    hints = (
        "score every pair (s, e) by start_logits[s] + end_logits[e]; an outer sum gives all of them at once.",
        "only pairs with s ≤ e < s + max_answer_tokens are answers: mask the others with -inf before the argmax.",
        "divmod(flat argmax, n) gives (s, e); return them as Python ints.",
    )

    def inputs(self, gen: torch.Generator) -> dict:
        cases = []
        for n, k in ((6, 3), (10, 2), (8, 8), (5, 1)):
            start, end = torch.randn(n, generator=gen), torch.randn(n, generator=gen)
            end[0] += 6.0                                  # tempting: an end before most starts
            cases.append({"start": start, "end": end, "k": k})
        start, end = torch.randn(7, generator=gen), torch.randn(7, generator=gen)
        start[0] += 6.0
        end[6] += 6.0                                      # tempting: a span longer than allowed
        cases.append({"start": start, "end": end, "k": 2})
        return {"cases": cases}

    def call(self, learner: Learner, inputs: dict) -> list:
        fn, dev, outs = learner.function("best_span"), learner.device, []
        for c in inputs["cases"]:
            out = learner.call(fn, c["start"].to(dev), c["end"].to(dev), c["k"], name="best_span")
            try:
                outs.append([int(v) for v in out])
            except (TypeError, ValueError):
                outs.append(describe(out))
        return outs

    def compare(self, inputs: dict, outputs: list) -> None:
        from tutorlib.llm.tasks import best_span

        for c, got in zip(inputs["cases"], outputs):
            start, end, k = c["start"], c["end"], c["k"]
            n = len(start)
            what = f"best_span(start_logits ({n},), end_logits ({n},), max_answer_tokens={k})"
            if isinstance(got, str):
                raise CheckFailed(f"{what} returned {got}, expected a pair (s, e) of ints")
            got = tuple(got)
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


@exercise("ex12_5", points=1, timeout=120)
class BudgetExperimentCheck:
    """``first_kept_budget``: the smallest budget in ``budgets`` whose last truncated prompt still holds the first message.

    ``call`` returns the messages, the budgets and the answer; ``compare`` replays the chat itself.
    """

    names = ("messages", "budgets", "first_kept_budget")
    hints = (
        "for each budget, smallest first, replay the chat with replay_chat(messages, respond, budget, 'truncate').",
        "first_kept_budget is the first budget whose last prompt still contains messages[0] (None if none does).",
    )

    def inputs(self, gen: torch.Generator) -> dict:
        return {}

    def call(self, learner: Learner, inputs: dict) -> dict:
        messages, budgets = learner.get("messages"), learner.get("budgets")
        if not isinstance(messages, (list, tuple)) or not messages or not all(isinstance(m, str) for m in messages):
            raise CheckFailed(f"`messages` is {describe(messages)}: keep the list of the conversation's messages")
        if not isinstance(budgets, (list, tuple, range)) or not budgets:
            raise CheckFailed(f"`budgets` is {describe(budgets)}: keep the list of budgets to try")
        got = learner.get("first_kept_budget")
        return {"messages": list(messages), "budgets": [int(b) for b in budgets],
                "got": got if got is None or isinstance(got, (int, float, str)) else describe(got)}

    def compare(self, inputs: dict, outputs: dict) -> None:
        from tutorlib.llm.explorers import replay_chat

        messages, got = outputs["messages"], outputs["got"]
        want = None
        for b in sorted(outputs["budgets"]):
            chat = replay_chat(messages, lambda prompt: "ok", b, "truncate", len, "", 0)
            if messages[0] in chat.last_prompt:
                want = b
                break
        if got != want:
            hint = ""
            if want is not None and isinstance(got, int) and got > want:
                hint = " — that budget keeps it, but a smaller one in `budgets` already does"
            raise CheckFailed(f"`first_kept_budget` is {got if isinstance(got, str) else repr(got)}, expected {want}{hint}")
