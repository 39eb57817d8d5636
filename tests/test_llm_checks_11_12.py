"""Lesson 12's newer (lesson 11's are in test_llm_checks_11.py) exercise checks: right answers pass, stubs are not attempted, typical mistakes
fail with a hint, and the experiment checks recompute the measurement."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from tutorlib.finetune.causal_lm import SFTCollator
from tutorlib.grading.registry import run_check
from tutorlib.llm import char_tokenizer, greedy, review_summary_examples, token_f1
from tutorlib.llm.explorers import replay_chat
from tutorlib.llm.sft import completion_loss, mask_prompt_labels
from tutorlib.llm.tasks import best_span
from mutants_table import own

# The learner's own copies: the library's own objects are flagged as "uses the library's implementation".
Collator = type("Collator", (SFTCollator,), {})
greedy, completion_loss, token_f1, best_span = own(greedy), own(completion_loss), own(token_f1), own(best_span)


def stub(*args, **kwargs):
    raise NotImplementedError("write your answer here")


def _until_eos(model, prompt, eos, n):
    new = greedy(model, torch.tensor([prompt]), n, eos_id=eos)[0, len(prompt):].tolist()
    return new[:new.index(eos)] if eos in new else new


RIGHT = {"ex12_3": ("qa_token_f1", token_f1),
         "ex12_4": ("best_span", lambda s, e, k: best_span(s, e, k))}


def _fails(ex, ns, *words):
    res = run_check(ex, ns)
    assert res.status == "fail", (ex, res)
    for w in words:
        assert w in res.message, (ex, res.message)


def test_reference_answers_pass_and_stubs_are_not_attempted():
    for ex, (name, fn) in RIGHT.items():
        assert run_check(ex, {name: fn}).status == "pass", ex
        assert run_check(ex, {name: stub}).status == "not_attempted", ex
        assert run_check(ex, {}).status == "fail", ex


def test_typical_mistakes_are_explained():
    _fails("ex12_3", {"qa_token_f1": lambda p, r: len(set(p.lower().split()) & set(r.lower().split())) / max(1, len(r.split()))})
    _fails("ex12_4", {"best_span": lambda s, e, k: (int(s.argmax()), int(e.argmax()))})


def test_experiment_checks_recompute_the_measurement():
    messages = ["Hi, I am Ada and I keep bees in Lyon.", "What is a decorator?", "How do I read a CSV file?",
                "Where do I keep my bees?"]
    budgets = list(range(40, 301, 20))
    kept = next(b for b in budgets if messages[0] in replay_chat(messages, lambda p: "ok", b).last_prompt)
    ns = {"messages": messages, "budgets": budgets}
    assert run_check("ex12_5", {**ns, "first_kept_budget": kept}).status == "pass"
    _fails("ex12_5", {**ns, "first_kept_budget": kept + 20}, "smaller one")
    _fails("ex12_5", {**ns, "first_kept_budget": budgets[0]})
