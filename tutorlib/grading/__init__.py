"""Exercises and grading: ``check()`` in notebooks, the exercise builder and the notebook grader.

In a notebook, after answering an exercise::

    from tutorlib.grading import check
    check("ex00_1")      # prints ✅ passed, ❌ the first thing wrong, or ⏳ not attempted
    hint("ex00_1")       # prints the next hint, one at a time

From the shell: ``tutorlib build-exercises`` writes ``exercises/`` from ``solutions/``, and
``tutorlib grade NOTEBOOK…`` grades whole notebooks in fresh kernels (see :mod:`.grader`).

>>> from tutorlib.grading import check, register, CheckResult
>>> callable(check)
True
"""

from __future__ import annotations

from .compare import CheckFailed, NotAttempted
from .protocol import Learner, exercise, hint
from .registry import CheckContext, CheckResult, UnknownExerciseError, check, register

__all__ = ["check", "hint", "exercise", "Learner", "register", "CheckResult", "CheckContext", "CheckFailed", "NotAttempted", "UnknownExerciseError"]
