"""Where exercise checks are registered and how ``check("ex00_1")`` runs one in a notebook.

Lesson authors write one module per lesson in ``tutorlib/grading/checks/`` (``ex00.py``,
``ex01.py``, …) with functions decorated by :func:`register`; every module in that folder is found
and imported automatically the first time an id is looked up. A check receives a
:class:`CheckContext` (the learner's namespace, the device, a private seeded generator) and raises
:class:`~tutorlib.grading.compare.CheckFailed` / :class:`~tutorlib.grading.compare.NotAttempted`
or returns normally (optionally with a short success note).

>>> from tutorlib.grading import check
>>> def make_batch(n, device):
...     return torch.rand(n, 1, 8, 8, device=device)
>>> check("ex00_1").status  # doctest: +ELLIPSIS
✅ ex00_1 passed ...
'pass'
"""

from __future__ import annotations

import importlib
import pkgutil
import re
import sys
import traceback
import zlib
from collections import ChainMap
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from .compare import CheckFailed, NotAttempted, expect_callable, expect_defined, preserved_rng

__all__ = [
    "CheckContext",
    "CheckResult",
    "Exercise",
    "UnknownExerciseError",
    "register",
    "get_exercise",
    "exercises",
    "run_check",
    "check",
    "STATUSES",
]

#: Every status an exercise can end with, in the grader's report and in :class:`CheckResult`.
STATUSES = ("pass", "fail", "error", "timeout", "crashed", "missing", "not_attempted")

_ID = re.compile(r"^ex(?P<lesson>\d{2})_(?P<num>\d+)$")
_ICONS = {"pass": "✅", "fail": "❌", "not_attempted": "⏳", "error": "⚠️"}


class UnknownExerciseError(LookupError):
    """``check()`` was given an id that no check module registers."""


@dataclass
class CheckResult:
    """The outcome of one check: ``status`` is one of :data:`STATUSES`; ``score`` is ``max_score`` only on a pass.

    >>> str(CheckResult("ex00_1", "fail", "x has shape (4, 8), expected (4, 1, 8)", 0, 1))
    '❌ ex00_1: x has shape (4, 8), expected (4, 1, 8)'
    """

    id: str
    status: str
    message: str
    score: float
    max_score: float
    _shown: bool = field(default=False, repr=False, compare=False)

    def __str__(self) -> str:
        icon = _ICONS.get(self.status, "❌")
        if self.status == "pass":
            noun = "point" if self.max_score == 1 else "points"
            note = "" if self.message in ("", "passed") else f": {self.message}"
            return f"{icon} {self.id} passed ({self.score:g}/{self.max_score:g} {noun}){note}"
        if self.status == "not_attempted":
            return f"{icon} {self.id} not attempted: {self.message}"
        return f"{icon} {self.id}: {self.message}"

    @property
    def passed(self) -> bool:
        """True only for an explicit pass."""
        return self.status == "pass"

    def to_dict(self) -> dict[str, Any]:
        """The result as JSON-ready data.

        >>> CheckResult("ex00_1", "pass", "passed", 1, 1).to_dict()["status"]
        'pass'
        """
        return {"id": self.id, "status": self.status, "message": self.message, "score": self.score, "max_score": self.max_score}

    def _ipython_display_(self) -> None:
        # check() has printed the line already; showing it again as Out[] would only repeat it.
        if not self._shown:
            print(self)
            self._shown = True


@dataclass
class CheckContext:
    """What a check gets: the learner's namespace, the device to test on, and a private generator.

    Use :attr:`generator` (a CPU ``torch.Generator`` seeded per exercise) for every random input so
    that checks never touch the learner's global random state.

    >>> ctx = CheckContext({"f": len}, torch.device("cpu"), 0)
    >>> ctx.function("f") is len, tuple(ctx.randn(2, 3).shape)
    (True, (2, 3))
    """

    ns: Mapping[str, Any]
    device: torch.device
    seed: int
    generator: torch.Generator = field(init=False)

    def __post_init__(self) -> None:
        self.generator = torch.Generator().manual_seed(self.seed)

    def get(self, name: str) -> Any:
        """The learner's object called ``name``; fails with "not defined" when it is missing."""
        return expect_defined(self.ns, name)

    def function(self, name: str) -> Callable[..., Any]:
        """The learner's function ``name``; fails with "not defined" or "not callable"."""
        return expect_callable(self.get(name), name)

    def randn(self, *shape: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Standard-normal values from the private generator, on :attr:`device`."""
        return torch.randn(*shape, generator=self.generator, dtype=dtype).to(self.device)

    def randint(self, high: int, *shape: int) -> torch.Tensor:
        """Integers in ``[0, high)`` (int64) from the private generator, on :attr:`device`."""
        return torch.randint(high, shape, generator=self.generator).to(self.device)


CheckFn = Callable[[CheckContext], "str | None"]


@dataclass(frozen=True)
class Exercise:
    """A registered check: its id, function, points and time limit in seconds."""

    id: str
    func: CheckFn
    points: float
    timeout: float
    single_thread: bool = True
    #: The check object of a protocol exercise (:func:`tutorlib.grading.protocol.exercise`); None for ``@register``.
    check: Any = None
    #: Hints shown one at a time by ``hint(id)``.
    hints: tuple[str, ...] = ()

    @property
    def lesson(self) -> str:
        """The two-digit lesson number, ``"00"`` for ``ex00_1``."""
        return _ID.match(self.id).group("lesson")  # type: ignore[union-attr]


_REGISTRY: dict[str, Exercise] = {}
_IMPORT_ERRORS: dict[str, str] = {}
_DISCOVERED = False


def register(
    exercise_id: str,
    *,
    points: float = 1,
    timeout: float = 60.0,
    single_thread: bool = True,
    hints: tuple[str, ...] = (),
    _check: Any = None,
) -> Callable[[CheckFn], CheckFn]:
    """Decorator that registers ``func`` as the check of ``exercise_id`` (``exNN_k``).

    ``timeout`` is the grader's time limit (seconds) for the answer cell and the check together.
    ``hints`` are shown one at a time by ``hint(exercise_id)``. New checks use
    :func:`tutorlib.grading.protocol.exercise` instead, whose decision is made in the grader's process.
    With ``single_thread`` (the default) the check runs with one torch thread: check inputs are
    tiny, and on a busy machine several threads spinning on small ops are many times slower.

    >>> @register("ex99_1", points=2, timeout=30)
    ... def _check(ctx):
    ...     ctx.function("my_answer")
    >>> get_exercise("ex99_1").points
    2
    """
    if not _ID.match(exercise_id):
        raise ValueError(f"exercise id {exercise_id!r} must look like 'ex05_2' (two-digit lesson, underscore, number)")
    if points <= 0 or timeout <= 0:
        raise ValueError(f"{exercise_id}: points and timeout must be positive, got points={points}, timeout={timeout}")

    def decorate(func: CheckFn) -> CheckFn:
        old = _REGISTRY.get(exercise_id)
        if old is not None and (old.func.__module__, old.func.__qualname__) != (func.__module__, func.__qualname__):
            raise ValueError(
                f"exercise id {exercise_id!r} is registered twice: by {old.func.__module__}.{old.func.__qualname__} "
                f"and by {func.__module__}.{func.__qualname__}; give one of them another id"
            )
        _REGISTRY[exercise_id] = Exercise(exercise_id, func, points, float(timeout), single_thread, _check, tuple(hints))
        return func

    return decorate


def _discover() -> None:
    global _DISCOVERED
    if _DISCOVERED:
        return
    _DISCOVERED = True
    package = importlib.import_module("tutorlib.grading.checks")
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        name = f"{package.__name__}.{info.name}"
        try:
            importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001 - one broken lesson must not break the others
            _IMPORT_ERRORS[name] = f"{type(exc).__name__}: {exc}"


def exercises(lesson: str | None = None) -> list[Exercise]:
    """All registered exercises (of one two-digit ``lesson`` if given), sorted by lesson and number.

    >>> [e.id for e in exercises("00")][:2]
    ['ex00_1', 'ex00_2']
    """
    _discover()
    found = [e for e in _REGISTRY.values() if lesson is None or e.lesson == lesson]
    return sorted(found, key=lambda e: (e.lesson, int(_ID.match(e.id).group("num"))))  # type: ignore[union-attr]


def get_exercise(exercise_id: str) -> Exercise:
    """The registered exercise ``exercise_id``; an unknown id raises :class:`UnknownExerciseError` listing the known ones.

    >>> get_exercise("ex00_1").id
    'ex00_1'
    """
    _discover()
    if exercise_id in _REGISTRY:
        return _REGISTRY[exercise_id]
    match = _ID.match(exercise_id) if isinstance(exercise_id, str) else None
    lesson = match.group("lesson") if match else None
    same = [e.id for e in exercises(lesson)] if lesson else []
    msg = f"unknown exercise id {exercise_id!r}"
    if same:
        msg += f": lesson {lesson} has {', '.join(same)}"
    else:
        msg += f": known ids are {', '.join(e.id for e in exercises()) or 'none'}"
    broken = {k: v for k, v in _IMPORT_ERRORS.items() if lesson is None or k.endswith(f".ex{lesson}")}
    if broken:
        msg += "; these check modules failed to import: " + "; ".join(f"{k} ({v})" for k, v in broken.items())
    raise UnknownExerciseError(msg + ". Copy the id from the exercise's cell.")


def default_seed(exercise_id: str) -> int:
    """The fixed seed of an exercise's private generator, so messages are the same on every run.

    >>> default_seed("ex00_1") == default_seed("ex00_1")
    True
    """
    return zlib.crc32(exercise_id.encode()) & 0x7FFFFFFF


def _default_device() -> torch.device:
    from tutorlib import runtime

    return runtime.get_device()


def run_check(
    exercise_id: str,
    namespace: Mapping[str, Any],
    *,
    seed: int | None = None,
    device: torch.device | str | None = None,
) -> CheckResult:
    """Run the registered check of ``exercise_id`` against ``namespace`` and return the result (prints nothing).

    The learner's random state (Python, NumPy, torch) and torch's thread count are the same
    afterwards as before. A bug in the check itself gives status ``"error"`` with the traceback's
    last line.

    >>> import math
    >>> run_check("ex00_2", {}).message
    '`accuracy` is not defined: run the cell where you define it (and the cells above it), then check again'
    """
    exercise = get_exercise(exercise_id)
    dev = torch.device(device) if device is not None else _default_device()
    ctx = CheckContext(namespace, dev, default_seed(exercise_id) if seed is None else seed)
    threads = torch.get_num_threads()
    with preserved_rng():
        try:
            if exercise.single_thread and threads != 1:
                torch.set_num_threads(1)
            note = exercise.func(ctx)
        except NotAttempted as exc:
            return CheckResult(exercise_id, "not_attempted", str(exc), 0, exercise.points)
        except CheckFailed as exc:
            return CheckResult(exercise_id, "fail", str(exc), 0, exercise.points)
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # noqa: BLE001 - a crashing check must still give a result
            last = traceback.format_exception_only(type(exc), exc)[-1].strip()
            return CheckResult(
                exercise_id,
                "error",
                f"the check itself crashed ({last}); your answer may use an object the check does not expect. "
                "If you think your answer is right, report this to the course authors",
                0,
                exercise.points,
            )
        finally:
            if torch.get_num_threads() != threads:
                torch.set_num_threads(threads)
    return CheckResult(exercise_id, "pass", note or "passed", exercise.points, exercise.points)


def _ipython_user_ns() -> Mapping[str, Any] | None:
    ipython_mod = sys.modules.get("IPython")
    if ipython_mod is None:
        return None
    try:
        shell = ipython_mod.get_ipython()
    except Exception:  # noqa: BLE001
        return None
    return getattr(shell, "user_ns", None) if shell is not None else None


def check(exercise_id: str, namespace: Mapping[str, Any] | None = None) -> CheckResult:
    """Check your answer to ``exercise_id`` and print one line: ✅ passed, ❌ the first thing wrong, or ⏳ not attempted.

    Looks your objects up in the notebook's namespace (or the caller's globals outside IPython, or
    ``namespace`` if given). Returns a :class:`CheckResult`.

    >>> def accuracy(logits, labels):
    ...     return (logits.argmax(dim=1) == labels).float().mean().item()
    >>> check("ex00_2").passed
    ✅ ex00_2 passed (1/1 point)
    True
    """
    if namespace is None:
        namespace = _ipython_user_ns()
    if namespace is None:
        frame = sys._getframe(1)
        namespace = ChainMap(dict(frame.f_locals), frame.f_globals)
    result = run_check(exercise_id, namespace)
    print(result, flush=True)
    result._shown = True
    return result
