"""Exercises and grading: ``check()`` in notebooks, the exercise builder and the notebook grader.

In a notebook, after answering an exercise::

    from tutorlib.grading import check
    check("ex00_1")      # prints ✅ passed, ❌ the first thing wrong, or ⏳ not attempted
    hint("ex00_1")       # prints the next hint, one at a time

From the shell: ``tutorlib build-exercises`` writes ``exercises/`` from ``solutions/``, and
``tutorlib grade NOTEBOOK…`` grades whole notebooks in fresh kernels (see :mod:`.grader`); a class at once,
in parallel and resumable, with a CSV gradebook and feedback per student: :mod:`.classroom`, :mod:`.gradebook`.

>>> from tutorlib.grading import check, register, CheckResult
>>> callable(check)
True
"""

from __future__ import annotations

from tutorlib.command import lazy_exports

# Imported when first used (PEP 562): `tutorlib grade --help` and the command's usage errors need no torch.
_EXPORTS = {
    "CheckFailed": "compare", "NotAttempted": "compare", "Learner": "protocol", "exercise": "protocol",
    "hint": "protocol", "CheckContext": "registry", "CheckResult": "registry", "UnknownExerciseError": "registry",
    "check": "registry", "register": "registry",
}


__getattr__ = lazy_exports("tutorlib.grading", _EXPORTS)

__all__ = ["check", "hint", "exercise", "Learner", "register", "CheckResult", "CheckContext", "CheckFailed", "NotAttempted", "UnknownExerciseError"]
