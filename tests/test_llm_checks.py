"""The LLM lessons' (10–12) exercise checks: right answers pass, stubs are not attempted, typical mistakes fail with a hint."""

from __future__ import annotations

import torch

from tutorlib.llm.sft import mask_prompt_labels
from tutorlib.llm import apply_repetition_penalty, beam_search as ref_beam, top_p_filter
from tutorlib.retrieval import cosine_top_k
from tutorlib.grading.checks.ex12 import reference_rouge_l_f1
from tutorlib.grading.registry import run_check
from mutants_table import own

# The learner's copies: ex11_1 and ex12_1/2 flag the library's own functions.
mask_prompt_labels, reference_rouge_l_f1, cosine_top_k = own(mask_prompt_labels), own(reference_rouge_l_f1), own(cosine_top_k)


def stub(*args, **kwargs):
    raise NotImplementedError("write your answer here")


RIGHT = {
    "top_p_filter": top_p_filter,
    "beam_search": lambda f, ids, n, k: ref_beam(f, ids, n, num_beams=k),
    "repetition_penalty": apply_repetition_penalty,
    "completion_labels": lambda p, c, e: mask_prompt_labels(p, c, e),
    "rouge_l_f1": reference_rouge_l_f1,
    "recall_top_k": lambda q, m, k: cosine_top_k(q, m, k)[1],
}
IDS = {"ex10_1": "top_p_filter", "ex10_2": "beam_search", "ex10_3": "repetition_penalty",
       "ex11_1": "completion_labels", "ex12_1": "rouge_l_f1", "ex12_2": "recall_top_k"}


def test_reference_answers_pass_and_stubs_are_not_attempted():
    for ex, name in IDS.items():
        assert run_check(ex, {name: RIGHT[name]}).status == "pass", ex
        assert run_check(ex, {name: stub}).status == "not_attempted", ex
        assert run_check(ex, {}).status == "fail", ex


def _fails(ex, name, fn, *words):
    res = run_check(ex, {name: fn})
    assert res.status == "fail", (ex, res)
    for w in words:
        assert w in res.message, (ex, res.message)


def test_typical_mistakes_are_explained():
    def top_p_one_too_many(logits, p):
        s, order = torch.sort(logits, descending=True)
        c = s.softmax(-1).cumsum(-1)
        remove = torch.zeros_like(c, dtype=torch.bool)
        remove[..., 1:] = c[..., :-1] > p  # keeps the token after the nucleus too
        remove[..., 1:] &= (c[..., :-1] - s.softmax(-1)[..., :-1]) >= p
        return logits.masked_fill(torch.zeros_like(remove).scatter(-1, order, remove), float("-inf"))
    _fails("ex10_1", "top_p_filter", top_p_one_too_many, "too many")

    def greedy_only(f, ids, n, k):
        for _ in range(n):
            ids = torch.cat([ids, f(ids).argmax(-1, keepdim=True)], 1)
        return ids
    _fails("ex10_2", "beam_search", greedy_only, "greedy")

    def divide_all(logits, ids, penalty):
        return logits.scatter(1, ids, torch.gather(logits, 1, ids) / penalty)
    _fails("ex10_3", "repetition_penalty", divide_all, "multiply negative logits")

    _fails("ex11_1", "completion_labels", lambda p, c, e: (p + c + [e], p + c + [e]), "-100")
    _fails("ex11_1", "completion_labels", lambda p, c, e: (p + c, [-100] * len(p) + c), "append eos_id")

    def recall_only(c, r):
        from tutorlib.llm.metrics import lcs_length
        return lcs_length(c, r) / len(r) if r else 0.0
    _fails("ex12_1", "rouge_l_f1", recall_only, "recall")

    _fails("ex12_2", "recall_top_k", lambda q, m, k: torch.topk(m @ q, k).indices, "dot product")
