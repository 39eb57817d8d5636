"""Lesson 12's exercise checks: the library's own functions (as the learner's copies) pass, stubs are not attempted,
a missing name fails, and typical mistakes fail with the message that helps (more in tests/mutants_table.py)."""

from __future__ import annotations

import re

from tutorlib.grading.registry import run_check
from tutorlib.llm import rag
from mutants_table import own


def stub(*args, **kwargs):
    raise NotImplementedError("write your answer here")


_flag = own(rag.looks_like_injection)
RIGHT = {"ex12_1": ("chunk_words", own(rag.chunk_words)),
         "ex12_2": ("recall_at_k", own(rag.recall_at_k)),
         "ex12_3": ("unsupported", own(rag.unsupported)),
         "ex12_4": ("paired_gain", own(rag.paired_gain)),
         "ex12_5": ("drop_injections", lambda ps: [p for p in ps if not _flag(p)])}


def test_library_answers_pass_stubs_are_not_attempted_and_missing_names_fail():
    for ex, (name, fn) in RIGHT.items():
        assert run_check(ex, {name: fn}).status == "pass", (ex, run_check(ex, {name: fn}).message)
        assert run_check(ex, {name: stub}).status == "not_attempted", ex
        res = run_check(ex, {})
        assert res.status == "fail" and name in res.message, ex


def test_the_library_itself_is_refused_as_an_answer():
    res = run_check("ex12_2", {"recall_at_k": rag.recall_at_k})
    assert res.status == "fail" and "library" in res.message


def test_typical_mistakes_are_explained():
    res = run_check("ex12_3", {"unsupported": lambda a, ps: bool(set(a.lower().split()) - set(" ".join(ps).lower().split()))})
    assert res.status == "fail" and re.search("function word|normalise", res.message), res.message
    res = run_check("ex12_5", {"drop_injections": lambda ps: list(ps)})
    assert res.status == "fail" and "kept 8 of 8" in res.message
