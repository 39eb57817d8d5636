"""Lesson 11's exercise checks: the library's answers (as learner copies) pass, stubs are not attempted, the
library's own objects are flagged, and typical mistakes fail with a hint (more mistakes: tests/mutants_table.py)."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from tutorlib.grading.registry import run_check
from tutorlib.llm.constrained import allowed_next_tokens
from tutorlib.llm.nf4 import dequantize_nf4, quantize_nf4, unpack_codes
from tutorlib.llm.preference import dpo_loss
from tutorlib.llm.prompting import few_shot_messages
from tutorlib.llm.sft import chat_example
from tutorlib.llm.structured import paired_gain
from mutants_table import own

RIGHT = {
    "ex11_1": ("few_shot_messages", (lambda f: lambda q, shots, system: f(q, shots, system=system))(own(few_shot_messages))),
    "ex11_2": ("chat_labels", (lambda f: lambda tok, msgs: (lambda e: (e["input_ids"], e["labels"]))(f(tok, msgs)))(own(chat_example))),
    "ex11_3": ("allowed_next_tokens", own(allowed_next_tokens)),
    "ex11_4": ("paired_gain", own(paired_gain)),
    "ex11_5": ("dpo_loss", (lambda f: lambda a, b, c, d, beta: f(a, b, c, d, beta=beta).loss)(own(dpo_loss))),
    "ex11_6": ("nf4_blocks", (lambda q, dq, un: lambda w, bs, lv: (lambda x: (un(x.codes), x.scales, dq(x)))(q(w, block_size=bs, levels=lv)))(
        own(quantize_nf4), own(dequantize_nf4), own(unpack_codes))),
}
LIBRARY = {"ex11_3": allowed_next_tokens, "ex11_4": paired_gain}


def stub(*args, **kwargs):
    raise NotImplementedError("write your answer here")


def _fails(ex, fn, *words):
    res = run_check(ex, {RIGHT[ex][0]: fn})
    assert res.status == "fail", (ex, res)
    for w in words:
        assert w in res.message, (ex, res.message)


def test_reference_answers_pass_and_stubs_are_not_attempted():
    for ex, (name, fn) in RIGHT.items():
        assert run_check(ex, {name: fn}).status == "pass", (ex, run_check(ex, {name: fn}))
        assert run_check(ex, {name: stub}).status == "not_attempted", ex
        assert run_check(ex, {}).status == "fail", ex


def test_the_library_itself_is_not_an_answer():
    for ex, fn in LIBRARY.items():
        res = run_check(ex, {RIGHT[ex][0]: fn})
        assert res.status != "pass", (ex, res)


def test_typical_mistakes_are_explained():
    _fails("ex11_1", lambda q, shots, system: [{"role": "user", "content": q}], "roles")

    def whole_chat_labelled(tok, msgs):
        ids = tok(tok.apply_chat_template(msgs, tokenize=False))["input_ids"]
        return ids, list(ids)
    _fails("ex11_2", whole_chat_labelled, "-100")

    _fails("ex11_3", lambda cands, prefix: sorted({c[len(prefix)] for c in cands if len(c) > len(prefix)}), "prefix")

    def unpaired(a, b):
        ta, tb = torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64)
        return float((ta - tb).mean()), float((ta.var() / len(a) + tb.var() / len(b)).sqrt())
    _fails("ex11_4", unpaired, "unpaired")

    _fails("ex11_5", lambda pc, pr, rc, rr, beta: -F.logsigmoid(beta * (pc - pr)).mean(), "reference")

    def global_scale(w, bs, lv):
        blocks = w.reshape(-1, bs)
        s = blocks.abs().max().expand(blocks.shape[0])
        codes = (blocks.unsqueeze(-1) / s[0] - lv).abs().argmin(-1)
        return codes.reshape(-1), s, (lv[codes] * s[0]).reshape(w.shape)
    _fails("ex11_6", global_scale, "block scales")
