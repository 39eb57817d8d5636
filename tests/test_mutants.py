"""Every mutant answer in tests/mutants_table.py fails with a helpful message; every right answer passes.

Run in process through ``run_check`` (no kernel per mutant), and for one exercise per lesson also
through the grader's split: inputs made here, ``call`` on the learner's side, the wire round trip, ``judge``.
"""

from __future__ import annotations

import pytest
import torch

from mutants_table import CASES, Case
from tutorlib.grading import wire
from tutorlib.grading.compare import CheckFailed, NotAttempted
from tutorlib.grading.protocol import judge, make_inputs, run_call
from tutorlib.grading.registry import get_exercise, run_check


def _id(case: Case) -> str:
    return f"{case.exercise}-{case.label}"


@pytest.mark.parametrize("case", CASES, ids=_id)
def test_answer_gets_its_status_and_a_helpful_message(case: Case) -> None:
    result = run_check(case.exercise, case.namespace(), device="cpu")
    assert result.status == case.status, f"{case.label}: {result.status}: {result.message}"
    assert case.fragment in result.message, result.message
    if case.mutant:
        assert result.score == 0


def split(case: Case, seed: int = 20261205) -> tuple[str, str]:
    """The grader's path: make the inputs here, run ``call`` "in the kernel", cross the wire, ``judge`` here."""
    check = get_exercise(case.exercise).check
    inputs = make_inputs(check, seed)
    sent = wire.roundtrip(inputs, "the check's inputs")
    try:
        outputs = run_call(check, case.namespace(), torch.device("cpu"), sent)
    except NotAttempted as exc:
        return "not_attempted", str(exc)
    except CheckFailed as exc:
        return "fail", str(exc)
    return judge(check, inputs, wire.roundtrip(outputs, "the outputs"))


SPLIT = {}
for _c in CASES:
    SPLIT.setdefault(_c.lesson, _c.exercise)


@pytest.mark.parametrize("case", [c for c in CASES if SPLIT[c.lesson] == c.exercise], ids=_id)
def test_the_grader_split_gives_the_same_verdict(case: Case) -> None:
    status, message = split(case)
    assert status == case.status, f"{case.label}: {status}: {message}"
    assert case.fragment in message


def test_every_exercise_has_a_right_answer_and_three_mutants() -> None:
    seen: dict[str, list[Case]] = {}
    for c in CASES:
        seen.setdefault(c.exercise, []).append(c)
    for ex, cases in seen.items():
        assert any(not c.mutant for c in cases), f"{ex} has no right answer"
        assert sum(c.mutant for c in cases) >= 3, f"{ex} has fewer than 3 mutants"
        assert get_exercise(ex).check is not None, f"{ex} is not on the protocol"
